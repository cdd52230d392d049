/**
 * SQL `where` fragments for the manifest and the SQL backends (docs/safety.md §18).
 *
 * HOSTILE: each must be refused when the manifest is loaded. The integration suite also
 * hands each one to the backends unvalidated, where it may make the backend refuse to open
 * but must never widen an id- and fingerprint-keyed statement. The table they are aimed at
 * has the columns of test/integration/sql-fragments.test.ts: id, owner, kind, keep, mark.
 *
 * ACCEPTED: ordinary fragments (and a few that look odd but are one expression) that must
 * load, so the rules refuse what is dangerous and nothing a person would write.
 */
export type Dialect = 'postgres' | 'mysql';

export interface Fragment {
  label: string;
  sql: string;
  dialects: readonly Dialect[];
}

const both: readonly Dialect[] = ['postgres', 'mysql'];

export const HOSTILE: readonly Fragment[] = [
  // Parentheses that close what the statement opened.
  { label: 'the reported fragment: ) OR ( lifts an OR out of the parentheses', sql: "owner <> 'nobody') OR (true", dialects: both },
  { label: 'two levels out', sql: "owner = 'a')) OR ((1 = 1", dialects: both },
  { label: 'a wrapper-aware escape out of CASE WHEN (…) THEN', sql: 'true) THEN 1 ELSE 0 END = 1 OR (1 = 1) OR CASE WHEN (true', dialects: both },
  { label: 'an unclosed parenthesis', sql: "(owner = 'a'", dialects: both },
  { label: 'a parenthesis closing nothing', sql: "owner = 'a')", dialects: both },
  { label: 'brackets that do not nest with parentheses', sql: "owner = ANY(ARRAY['a')]", dialects: ['postgres'] },
  // Comments and statement ends.
  { label: 'a -- comment', sql: "owner = 'a' -- the rest of the line", dialects: both },
  { label: 'a -- comment hiding a closing parenthesis', sql: 'true) OR (true --', dialects: both },
  { label: 'a /* */ comment', sql: "owner = 'a' /* note */ OR 1 = 1", dialects: both },
  { label: 'an unterminated /* comment', sql: 'true) OR (true /*', dialects: both },
  { label: 'a MySQL executable comment', sql: "owner = 'a' /*! OR 1 = 1 */", dialects: ['mysql'] },
  { label: 'a MySQL # comment', sql: "owner = 'a' # the rest of the line", dialects: ['mysql'] },
  { label: 'a second statement', sql: 'true; DELETE FROM items', dialects: both },
  { label: 'a second statement after closing the parenthesis', sql: 'true); DELETE FROM items; SELECT (1', dialects: both },
  // Keywords that end a WHERE clause.
  { label: 'UNION', sql: 'true UNION SELECT 1', dialects: both },
  { label: 'ORDER BY', sql: 'true ORDER BY 1', dialects: both },
  { label: 'GROUP BY … HAVING', sql: 'true GROUP BY id HAVING true', dialects: both },
  { label: 'LIMIT', sql: 'true LIMIT 1', dialects: both },
  { label: 'OFFSET / FETCH', sql: 'true OFFSET 0 ROWS FETCH FIRST 1 ROWS ONLY', dialects: ['postgres'] },
  { label: 'FOR UPDATE', sql: 'true FOR UPDATE', dialects: both },
  { label: 'INTO', sql: 'true INTO @x', dialects: ['mysql'] },
  { label: 'RETURNING', sql: 'true RETURNING id', dialects: ['postgres'] },
  { label: 'WINDOW', sql: 'true WINDOW w AS ()', dialects: ['postgres'] },
  { label: 'a keyword glued to a number', sql: 'owner = 1 OR 1union SELECT 1', dialects: ['mysql'] },
  // Literals and quoted identifiers a careless lexer reads differently from the server.
  { label: 'a quoted identifier hiding nothing but the parentheses around it', sql: '"a") OR ("b"', dialects: ['postgres'] },
  { label: 'backticks around the escape', sql: '`owner`) OR (`owner`', dialects: ['mysql'] },
  { label: 'a backslash before a quote (its meaning depends on server settings)', sql: "owner = 'a\\' OR 1 = 1 OR owner = 'b'", dialects: both },
  { label: 'a backslash-escaped quote hiding ) OR (', sql: "owner = 'a\\') OR (true OR \\''", dialects: ['mysql'] },
  { label: 'a dollar-quoted string hiding a quote', sql: "owner = $$' $$ ) OR (true OR owner = $$ ' $$", dialects: ['postgres'] },
  { label: 'an unterminated dollar quote', sql: 'owner = $a$ ) OR (true', dialects: ['postgres'] },
  { label: 'an unterminated string', sql: "owner = 'a) OR (true", dialects: both },
  // Placeholders that would take reaper's own bound values.
  { label: 'a PostgreSQL parameter', sql: 'owner = $1', dialects: ['postgres'] },
  { label: 'a MySQL placeholder', sql: 'owner = ?', dialects: ['mysql'] },
  { label: 'a NUL character', sql: "owner = 'a'\u0000) OR (true", dialects: both },
];

export const ACCEPTED: readonly Fragment[] = [
  { label: 'a comparison', sql: "kind = 'upload'", dialects: both },
  { label: 'a list and a negation', sql: "kind IN ('a', 'b') AND NOT keep", dialects: both },
  { label: 'nested parentheses and OR inside them', sql: "(owner IS NULL OR owner <> 'x') AND (kind = 'a' OR (kind = 'b' AND keep))", dialects: both },
  { label: 'a doubled quote', sql: "owner = 'it''s'", dialects: both },
  { label: 'a LIKE escape without a quote after the backslash', sql: "owner LIKE 'a\\_%'", dialects: both },
  { label: 'parentheses inside a string', sql: "owner = ') OR (true'", dialects: both },
  { label: 'keywords inside a sub-select', sql: 'EXISTS (SELECT 1 FROM items o WHERE o.owner = owner GROUP BY o.id HAVING true ORDER BY 1 LIMIT 1)', dialects: both },
  { label: 'a keyword inside a string', sql: "kind <> 'union; -- order by /* limit'", dialects: both },
  { label: 'a quoted identifier with a parenthesis', sql: '"kind" <> \') x\' AND "owner" IS NOT NULL', dialects: ['postgres'] },
  { label: 'a backticked identifier', sql: "`kind` = 'a'", dialects: ['mysql'] },
  { label: 'a double-quoted MySQL string', sql: 'kind = "a"', dialects: ['mysql'] },
  { label: 'dollar quotes', sql: "owner <> $$a ) b$$ AND owner <> $t$ $$ ' ) $t$", dialects: ['postgres'] },
  { label: 'an escape string', sql: "owner <> E'a\\') OR (b'", dialects: ['postgres'] },
  { label: 'IS DISTINCT FROM', sql: "owner IS DISTINCT FROM 'a'", dialects: ['postgres'] },
  { label: 'FROM and FOR inside a function call', sql: "substring(owner FROM 1 FOR 2) <> 'zz'", dialects: both },
  { label: 'a cast and a jsonb-style ? operator', sql: "owner::text <> 'a' AND NOT ('{}'::jsonb ? 'k')", dialects: ['postgres'] },
  { label: 'an interval', sql: "created_at < now() - interval '1 day'", dialects: ['postgres'] },
  { label: 'a MySQL interval', sql: 'created_at < NOW() - INTERVAL 1 DAY', dialects: ['mysql'] },
  { label: 'a minus before a negative number', sql: 'id - -1 > 0', dialects: both },
  { label: 'a PostgreSQL # operator', sql: 'id # 1 > 0', dialects: ['postgres'] },
  { label: 'a column whose name contains a keyword', sql: 'keep OR "order_for" IS NULL', dialects: ['postgres'] },
];
