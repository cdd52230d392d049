/** Escaping for the HTML report: text into markup and attributes, JSON into a script data block. */
import { visible } from '../../util/format.js';

const HTML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for an element's content or a quoted attribute value; controls and bidirectional overrides are shown as escapes (`\u202e`). */
export function esc(text: string | number): string {
  return visible(String(text)).replace(/[&<>"']/g, (c) => HTML[c]!);
}

/**
 * JSON for `<script type="application/json">`: `<`, `>`, `&` and the line separators are
 * written as \u escapes, so no value can close the element or open a comment in it.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
