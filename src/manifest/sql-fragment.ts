/**
 * Is an SQL `where` fragment one self-contained boolean expression? (docs/safety.md §18)
 *
 * A manifest's `where` (and a protect rule's) is the author's SQL, placed inside reaper's
 * statements. It must not reach outside them: its parentheses and brackets balance outside
 * string literals and quoted identifiers, it holds no comment, no `;`, no bound parameter,
 * and no keyword at its top level that would end a WHERE clause (`) OR (true` would lift an
 * OR to the top of a DELETE; `true UNION …`, `true ORDER BY …` would change the statement).
 *
 * The lexer follows each dialect's quoting: PostgreSQL '…' (E'…' with backslash escapes),
 * $tag$…$tag$ and "…"; MySQL '…' and "…" with backslash escapes, and `…`. Whether a
 * backslash escapes a quote depends on server settings (standard_conforming_strings,
 * NO_BACKSLASH_ESCAPES, ANSI_QUOTES), so a fragment is read both ways and must pass both:
 * whichever the server uses, it sees the same self-contained expression. Where the two
 * readings differ the fragment is refused rather than guessed.
 *
 * This is the first guard; the SQL backends are the second: they build every statement so
 * that a fragment can only narrow what an id- and fingerprint-keyed statement matches.
 * Pure: no I/O, linear in the fragment's length.
 */

export type SqlDialect = 'postgres' | 'mysql';

/** Keywords that end or extend a WHERE clause: refused outside parentheses. */
const CLAUSE_KEYWORDS = new Set([
  'SELECT',
  'WHERE',
  'GROUP',
  'HAVING',
  'WINDOW',
  'ORDER',
  'LIMIT',
  'OFFSET',
  'FETCH',
  'FOR',
  'INTO',
  'UNION',
  'INTERSECT',
  'EXCEPT',
  'MINUS',
  'RETURNING',
  'LOCK',
  'PROCEDURE',
]);

const SELF_CONTAINED = 'a where is one self-contained boolean expression';
const BACKSLASH =
  "a backslash before a quote reads differently depending on the server's settings (standard_conforming_strings, NO_BACKSLASH_ESCAPES); write a quote inside a string as ''";

/** Why `text` is not a self-contained boolean expression in `dialect`, or null when it is. */
export function sqlFragmentProblem(text: string, dialect: SqlDialect): string | null {
  // Drivers send statements as C strings: a NUL anywhere, even in a literal, would cut the statement short.
  const nul = text.indexOf('\0');
  if (nul >= 0) return `a NUL character (at character ${nul + 1}) is not allowed in a where`;
  // The server's default reading first (its message is the one to show), then the other.
  const usual = dialect === 'mysql';
  const first = scan(text, dialect, usual);
  if (first !== null) return first;
  return scan(text, dialect, !usual) === null ? null : BACKSLASH;
}

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isWordStart = (c: string | undefined) => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c >= '\u0080');
const isWordPart = (c: string | undefined) => isWordStart(c) || isDigit(c) || c === '$';
/** A PostgreSQL dollar-quote delimiter starting at `i` (`$$` or `$tag$`), or null. */
const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;

/**
 * One reading of the fragment. `backslashEscapes`: whether a backslash escapes the next
 * character inside '…' (and, on MySQL, "…"). PostgreSQL's E'…' always escapes; quoted
 * identifiers and dollar quotes never do.
 */
function scan(text: string, dialect: SqlDialect, backslashEscapes: boolean): string | null {
  const open: { char: string; at: number }[] = [];
  const at = (i: number) => `character ${i + 1}`;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (isSpace(c)) {
      i++;
    } else if (c === "'" || c === '"' || (c === '`' && dialect === 'mysql')) {
      // PostgreSQL "…" is an identifier; MySQL "…" a string (or, under ANSI_QUOTES, an identifier: the other reading).
      const escapes = c === "'" || (c === '"' && dialect === 'mysql') ? backslashEscapes : false;
      const end = closingQuote(text, i, c, escapes);
      if (end < 0) return `the ${c === '`' || (c === '"' && dialect === 'postgres') ? 'quoted identifier' : 'string'} opened at ${at(i)} is never closed`;
      i = end + 1;
    } else if (dialect === 'postgres' && c === '$') {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(text)?.[0];
      if (tag === undefined) {
        return isDigit(next) ? `a bound parameter (${/^\$\d+/.exec(text.slice(i))![0]} at ${at(i)}) is not allowed in a where; write the value` : `the "$" at ${at(i)} is neither a dollar quote nor part of a name`;
      }
      const end = text.indexOf(tag, i + tag.length);
      if (end < 0) return `the dollar quote ${tag} opened at ${at(i)} is never closed`;
      i = end + tag.length;
    } else if ((c === '-' && next === '-') || (c === '/' && next === '*') || (c === '#' && dialect === 'mysql')) {
      return `a comment ("${c === '#' ? '#' : c + next}" at ${at(i)}) is not allowed in a where`;
    } else if (c === ';') {
      return `";" (at ${at(i)}) is not allowed in a where: it is one expression, not a statement`;
    } else if (c === '?' && dialect === 'mysql') {
      return `a placeholder ("?" at ${at(i)}) is not allowed in a where; write the value`;
    } else if (c === '(' || c === '[') {
      open.push({ char: c, at: i });
      i++;
    } else if (c === ')' || c === ']') {
      const expected = c === ')' ? '(' : '[';
      const top = open.pop();
      if (top === undefined) return `the "${c}" at ${at(i)} closes a parenthesis the fragment did not open; ${SELF_CONTAINED}`;
      if (top.char !== expected) return `the "${c}" at ${at(i)} does not match the "${top.char}" at ${at(top.at)}; ${SELF_CONTAINED}`;
      i++;
    } else if (isWordStart(c)) {
      let end = i + 1;
      while (isWordPart(text[end])) end++;
      const word = text.slice(i, end);
      if (dialect === 'postgres' && (word === 'E' || word === 'e') && text[end] === "'") {
        const close = closingQuote(text, end, "'", true);
        if (close < 0) return `the string opened at ${at(i)} is never closed`;
        i = close + 1;
        continue;
      }
      if (open.length === 0 && CLAUSE_KEYWORDS.has(word.toUpperCase())) {
        return `${word.toUpperCase()} (at ${at(i)}) would end the WHERE clause; a where is one boolean expression (use it inside a sub-select)`;
      }
      i = end;
    } else if (isDigit(c)) {
      // A number ends where a letter starts: `1union` is the number 1 and the word union, as MySQL may read it.
      while (isDigit(text[i]) || text[i] === '.') i++;
    } else {
      i++;
    }
  }
  const unclosed = open[open.length - 1];
  return unclosed === undefined ? null : `the "${unclosed.char}" at ${at(unclosed.at)} is never closed; ${SELF_CONTAINED}`;
}

/** Index of the quote closing the literal that opens at `start`, or -1. A doubled quote stands for itself. */
function closingQuote(text: string, start: number, quote: string, backslashEscapes: boolean): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && backslashEscapes) i++;
    else if (c === quote) {
      if (text[i + 1] !== quote) return i;
      i++;
    }
  }
  return -1;
}
