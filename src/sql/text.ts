/**
 * Building blocks for the statements the SQL backends and the state stores write: identifier quoting (the one
 * place names enter SQL text), chunking of id lists, and the fixed list sizes MySQL
 * statements are padded to so that a few prepared statements serve every chunk.
 */

export type Dialect = 'postgres' | 'mysql';

const QUOTE: Record<Dialect, string> = { postgres: '"', mysql: '`' };

/**
 * Quote one identifier for a dialect. Names come from the validated manifest or from the
 * server's own catalog; the quote character is doubled all the same, and NUL is refused.
 */
export function quoteIdentifier(dialect: Dialect, name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new Error(`invalid SQL identifier ${JSON.stringify(name)}`);
  const q = QUOTE[dialect];
  return q + name.split(q).join(q + q) + q;
}

/** Quote a possibly qualified name given as parts (`["public", "images"]` → `"public"."images"`). */
export function quoteQualified(dialect: Dialect, parts: readonly string[]): string {
  return parts.map((part) => quoteIdentifier(dialect, part)).join('.');
}

/** Split a manifest table name (`table` or `schema.table`) into its schema (or null) and table. */
export function splitTableName(name: string): { schema: string | null; table: string } {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: null, table: name } : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/** Split a list into runs of at most `size` (default: the longest id list in one statement). */
export function chunk<T>(items: readonly T[], size: number = MAX_IDS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Longest id list in one statement: keeps every statement short and every lock set small. */
export const MAX_IDS_PER_STATEMENT = 500;

/** The list lengths MySQL `IN (…)` lists are padded to (see `padList`). */
const LIST_SIZES = [1, 10, 50, 200, MAX_IDS_PER_STATEMENT] as const;

/**
 * Pad a non-empty list to the next fixed size by repeating its last element, so that
 * statements with `IN (?, …)` come in a handful of shapes (each one a server-side
 * prepared statement per connection). Repeating a value inside `IN` changes nothing.
 */
export function padList<T>(values: readonly T[]): T[] {
  if (values.length === 0) throw new Error('padList needs at least one value');
  if (values.length > MAX_IDS_PER_STATEMENT) throw new Error(`at most ${MAX_IDS_PER_STATEMENT} values per statement`);
  const size = LIST_SIZES.find((n) => n >= values.length)!;
  const out = values.slice();
  while (out.length < size) out.push(values[values.length - 1]!);
  return out;
}

/** `n` copies of a placeholder expression, comma-separated (`CAST(? AS SIGNED), …`). */
export function placeholders(expression: string, n: number): string {
  return Array.from({ length: n }, () => expression).join(', ');
}

/** An `IN (…)` list for these values, padded (see `padList`): the placeholders and the values to bind. */
export function inList<T>(values: readonly T[]): { marks: string; values: T[] } {
  const padded = padList(values);
  return { marks: placeholders('?', padded.length), values: padded };
}
