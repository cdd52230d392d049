/**
 * The `where` lexer (src/manifest/sql-fragment.ts), by property: well-formed fragments built
 * from every quoting form of each dialect are accepted, and no accepted fragment can be
 * followed by text that closes the statement's parenthesis or opens a comment.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqlFragmentProblem, type SqlDialect } from '../../src/manifest/sql-fragment.js';

const DIALECTS: readonly SqlDialect[] = ['postgres', 'mysql'];
const accepted = (sql: string, dialect: SqlDialect) => sqlFragmentProblem(sql, dialect) === null;

/** Characters that matter to a lexer, and some that do not. */
const tricky = fc.constantFrom("'", '"', '`', '\\', '(', ')', '[', ']', '$', '-', '/', '*', '#', ';', '?', 'E', 'e', ' ', '\n', 'a', '1', 'OR', 'ORDER', 'tag', 'é');
const trickyText = fc.array(tricky, { maxLength: 24 }).map((parts) => parts.join(''));
/** Literal content: anything but a backslash (whose meaning depends on server settings) and NUL. */
const content = fc.array(fc.oneof(tricky, fc.string({ maxLength: 3 })), { maxLength: 8 }).map((parts) => parts.join('').replace(/[\\\0]/g, ''));

/** A well-formed boolean expression of `dialect`, built from its literal and identifier forms. */
function expression(dialect: SqlDialect): fc.Arbitrary<string> {
  const literal = fc.oneof(
    content.map((v) => `'${v.replaceAll("'", "''")}'`),
    ...(dialect === 'postgres'
      ? [
          content.filter((v) => !v.includes('$q$')).map((v) => `$q$${v}$q$`),
          content.map((v) => `E'${v.replaceAll("'", "\\'")}'`),
          content.map((v) => `"${v.replaceAll('"', '""')}" IS NULL`),
        ]
      : [content.map((v) => `\`${v.replaceAll('`', '``')}\` IS NULL`), content.map((v) => `"${v.replaceAll('"', '""')}"`)]),
  );
  const atom = fc.oneof(literal.map((l) => `owner = ${l}`), fc.constantFrom('keep', 'id > 1', 'owner IS NULL', 'id - -1 > 0'));
  const { expr } = fc.letrec<{ expr: string }>((tie) => ({
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      atom,
      fc.tuple(tie('expr'), fc.constantFrom(' AND ', ' OR '), tie('expr')).map(([a, op, b]) => `${a}${op}${b}`),
      tie('expr').map((e) => `NOT (${e})`),
      tie('expr').map((e) => `EXISTS (SELECT 1 FROM t WHERE ${e} ORDER BY 1 LIMIT 1)`),
    ),
  }));
  return expr;
}

describe('sqlFragmentProblem', () => {
  for (const dialect of DIALECTS) {
    describe(dialect, () => {
      it('accepts every well-formed expression, and refuses it once text closes the parenthesis around it', () => {
        fc.assert(
          fc.property(expression(dialect), expression(dialect), (a, b) => {
            expect(sqlFragmentProblem(a, dialect)).toBeNull();
            expect(accepted(`(${a}) AND (${b})`, dialect)).toBe(true);
            expect(accepted(`${a}) OR (${b}`, dialect)).toBe(false);
            expect(accepted(`${a} -- ${b}`, dialect)).toBe(false);
            expect(accepted(`${a} /* ${b} */`, dialect)).toBe(false);
            expect(accepted(`${a}; ${b}`, dialect)).toBe(false);
            expect(accepted(`${a} UNION SELECT 1`, dialect)).toBe(false);
          }),
          { numRuns: 300 },
        );
      });

      it('never lets an accepted fragment be followed by a ")" (whatever it holds)', () => {
        fc.assert(
          fc.property(trickyText, (text) => {
            if (!accepted(text, dialect)) return;
            expect(accepted(`${text})`, dialect)).toBe(false);
            expect(accepted(`(${text})`, dialect)).toBe(true);
          }),
          { numRuns: 2_000 },
        );
      });

      it('reads a backslash before a quote both ways and refuses what the two readings disagree on', () => {
        expect(sqlFragmentProblem("owner = 'a\\'", dialect)).toMatch(/backslash|never closed/);
        expect(accepted("owner = 'a\\\\'", dialect)).toBe(true);
      });
    });
  }

  it('refuses a NUL even inside a literal: drivers would cut the statement there', () => {
    expect(sqlFragmentProblem("owner = 'a\u0000b'", 'postgres')).toBe('a NUL character (at character 11) is not allowed in a where');
  });

  it('knows each dialect: # is a comment in MySQL and an operator in PostgreSQL; ? a placeholder in MySQL only', () => {
    expect(accepted('id # 1 > 0', 'postgres')).toBe(true);
    expect(accepted('id # 1 > 0', 'mysql')).toBe(false);
    expect(accepted("data ? 'k'", 'postgres')).toBe(true);
    expect(accepted("data ? 'k'", 'mysql')).toBe(false);
    expect(accepted('`a)` = 1', 'mysql')).toBe(true);
    expect(accepted('$$)$$ = x', 'postgres')).toBe(true);
    expect(accepted('a$b$ = 1', 'postgres')).toBe(true);
    expect(accepted('1$a$ ) $a$ = 1', 'postgres')).toBe(true);
  });
});
