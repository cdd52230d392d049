/**
 * Tables that fit the terminal. A table narrower than the width is drawn as it is; a
 * wider one first gives up width in the columns that may be cut (ids, owners; cut with
 * "…"), and when that is not enough each row becomes a short block of `name value`
 * fields wrapped to the width, so no number is lost on a narrow terminal.
 */
import Table from 'cli-table3';

export type Cell = string | number;

export interface TableSpec {
  head: readonly string[];
  rows: readonly (readonly Cell[])[];
  /** Alignment per column (default left). */
  aligns?: readonly ('left' | 'right')[];
  /** Columns that may be cut to fit, most expendable first. */
  shrink?: readonly number[];
  /** In the block layout, how many leading cells title each block (default 1). */
  titleCells?: number;
}

const plain = { style: { head: [] as string[], border: [] as string[], compact: true } };
/** A cut column keeps at least this much (padding included): less of an id helps nobody. */
const MIN_CUT_WIDTH = 14;

const textWidth = (text: string) => [...text].length;

/** The widest visible line of a rendered table. */
export function renderedWidth(text: string): number {
  return Math.max(0, ...text.split('\n').map(textWidth));
}

function draw(spec: TableSpec, colWidths?: number[]): string {
  const table = new Table({
    ...plain,
    head: [...spec.head],
    ...(spec.aligns ? { colAligns: [...spec.aligns] } : {}),
    ...(colWidths ? { colWidths, wordWrap: false } : {}),
  });
  for (const row of spec.rows) table.push([...row]);
  return table.toString();
}

/**
 * Column widths (padding included) that bring the table within `width` by cutting the
 * shrinkable columns, widest first, none below MIN_CUT_WIDTH; null when that is not enough.
 */
function cutWidths(spec: TableSpec, width: number): number[] | null {
  const widths = spec.head.map((h, i) => Math.max(textWidth(h), ...spec.rows.map((r) => textWidth(String(r[i] ?? '')))) + 2);
  const floor = (i: number) => Math.max(MIN_CUT_WIDTH, textWidth(spec.head[i]!) + 2);
  let excess = widths.reduce((a, b) => a + b, 0) + widths.length + 1 - width;
  const shrinkable = [...(spec.shrink ?? [])];
  while (excess > 0) {
    const widest = shrinkable.filter((i) => widths[i]! > floor(i)).sort((a, b) => widths[b]! - widths[a]!)[0];
    if (widest === undefined) return null;
    widths[widest]!--;
    excess--;
  }
  return widths;
}

/**
 * Each line of `text` broken at spaces into lines of at most `width`, continuation lines
 * indented two more than their line; a line that fits (a row of the block layout) is left whole.
 */
export function wrapText(text: string, width: number | undefined): string {
  if (width === undefined) return text;
  return text
    .split('\n')
    .map((line) => wrapLine(line, width))
    .join('\n');
}

function wrapLine(text: string, width: number): string {
  if (textWidth(text) <= width) return text;
  const indent = /^ */.exec(text)![0];
  const lines: string[] = [];
  let line = '';
  for (const word of text.slice(indent.length).split(' ')) {
    if (line && textWidth(line) + 1 + textWidth(word) > width) {
      lines.push(line);
      line = `${indent}  ${word}`;
    } else {
      line = line ? `${line} ${word}` : `${indent}${word}`;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** Each row as a title line and `name value` fields joined by " · ", wrapped at `width`. */
function blocks(spec: TableSpec, width: number): string {
  const titleCells = spec.titleCells ?? 1;
  const cut = (text: string, max: number) => (textWidth(text) <= max ? text : `${[...text].slice(0, Math.max(1, max - 1)).join('')}…`);
  const out: string[] = [];
  for (const row of spec.rows) {
    out.push(cut(row.slice(0, titleCells).map(String).filter((c) => c !== '').join('  '), width));
    let line = '';
    for (let i = titleCells; i < spec.head.length; i++) {
      if (String(row[i] ?? '') === '') continue;
      const field = cut(`${spec.head[i]} ${String(row[i] ?? '')}`, width - 2);
      if (line && textWidth(line) + 3 + textWidth(field) > width - 2) {
        out.push(`  ${line}`);
        line = field;
      } else {
        line = line ? `${line} · ${field}` : field;
      }
    }
    if (line) out.push(`  ${line}`);
  }
  return out.join('\n');
}

/** Render `spec` within `width` columns (no limit when `width` is undefined). */
export function fitTable(spec: TableSpec, width?: number): string {
  const whole = draw(spec);
  if (width === undefined || renderedWidth(whole) <= width) return whole;
  const widths = cutWidths(spec, width);
  if (widths) return draw(spec, widths);
  return blocks(spec, width);
}
