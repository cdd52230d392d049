/**
 * Do a resource type's owner keys and a liveness source's keys share a shape? A manifest
 * that reads `42` from a row and builds the key `session:42` with `key: "session:{value}"`,
 * while its SQL source returns bare ids, matches no key and judges nearly everything
 * orphaned. Pure: it compares samples; the caller reads them.
 *
 * A key's shape is its prefix up to the first ":" (`session:…`), or for a key without one
 * what it is made of: digits, a UUID, hex, or other text.
 */

export function keyShape(key: string): string {
  const colon = key.indexOf(':');
  if (colon > 0 && colon < key.length - 1) return `${key.slice(0, colon + 1)}…`;
  if (/^\d+$/.test(key)) return '<digits>';
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(key)) return '<uuid>';
  if (/^[0-9a-f]{16,}$/i.test(key)) return '<hex>';
  return '<text>';
}

/** Up to three shapes of `keys`, each shown as its prefix or as an example key. */
function looksLike(keys: readonly string[]): string {
  const examples = new Map<string, string>();
  for (const key of keys) if (!examples.has(keyShape(key))) examples.set(keyShape(key), key);
  const shown = [...examples].slice(0, 3).map(([shape, example]) => {
    const text = shape.startsWith('<') ? example : shape;
    return `\`${[...text].length > 40 ? `${[...text].slice(0, 39).join('')}…` : text}\``;
  });
  return shown.join(' or ') + (examples.size > 3 ? ' …' : '');
}

export interface KeySample {
  /** The liveness source (`leases`, `sql:main-db#1`). */
  name: string;
  keys: readonly string[];
}

/**
 * A warning when none of the sampled owner keys of `resource` is live and every source
 * that returned keys returns keys of other shapes; null otherwise (or when a side has no
 * sample to compare).
 */
export function keyShapeMismatch(input: { resource: string; ownerKeys: readonly string[]; anyLive: boolean; sources: readonly KeySample[] }): string | null {
  const sources = input.sources.filter((s) => s.keys.length > 0);
  if (input.anyLive || input.ownerKeys.length === 0 || sources.length === 0) return null;
  const owners = new Set(input.ownerKeys.map(keyShape));
  if (sources.some((s) => s.keys.some((k) => owners.has(keyShape(k))))) return null;
  const returned = sources.map((s) => `source ${s.name} returns keys like ${looksLike(s.keys)}`).join(', ');
  return (
    `${input.resource}: owner keys look like ${looksLike(input.ownerKeys)}, ${returned}: no key matched ` +
    `(none of ${input.ownerKeys.length} sampled owner key${input.ownerKeys.length === 1 ? '' : 's'} is live). ` +
    'Check the owner\'s key template (owner.key) against what the source returns.'
  );
}
