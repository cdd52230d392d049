/**
 * SQL `where` fragments at load (docs/safety.md §18, "Bad input"): a resource's `where` and a protect
 * rule's `where` are one self-contained boolean expression in the resource's own dialect.
 * Every fragment of the hostile corpus is refused with `file:line: key: message` (exit 2),
 * as a location `where`, as a protect `where` and as an inherited `defaults.protect` rule;
 * every ordinary fragment loads.
 */
import { describe, expect, it } from 'vitest';
import { ExitCode, formatManifestIssue, ManifestError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';
import { ACCEPTED, HOSTILE, type Dialect } from './support/hostile-sql.js';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

/** A manifest whose one resource (line 7) has its location on line 8 and `extra` from line 10. */
function manifest(dialect: Dialect, location: string, ...extra: string[]): string {
  return yaml(
    'version: 1', //                                                 1
    'connections:', //                                               2
    '  pg: { kind: postgres, url: "postgres://app@db/app" }', //     3
    '  my: { kind: mysql, url: "mysql://app@db/app" }', //           4
    'defaults: {}', //                                               5
    'resources:', //                                                 6
    '  - name: rows', //                                             7
    `    ${dialect}: { connection: ${dialect === 'postgres' ? 'pg' : 'my'}, table: items, id: id, createdAt: created_at${location} }`, // 8
    '    owner: { column: owner }', //                               9
    ...extra,
  );
}

/** The one issue of a rejected manifest, formatted; fails the test when it loads. */
function refusal(text: string): string {
  let caught: unknown;
  try {
    parseManifest(text, { file: 'reaper.yaml', baseDir: '/srv' });
  } catch (error) {
    caught = error;
  }
  expect(caught, 'the manifest was accepted').toBeInstanceOf(ManifestError);
  const error = caught as ManifestError;
  expect(error.exitCode).toBe(ExitCode.usage);
  expect(error.issues).toHaveLength(1);
  return formatManifestIssue(error.issues[0]!);
}

// JSON strings are YAML double-quoted scalars: every fragment goes in byte for byte.
const q = (sql: string) => JSON.stringify(sql);

describe('hostile where fragments are refused at load', () => {
  for (const fragment of HOSTILE) {
    for (const dialect of fragment.dialects) {
      it(`${dialect}: ${fragment.label}`, () => {
        expect(refusal(manifest(dialect, `, where: ${q(fragment.sql)}`))).toMatch(new RegExp(`^reaper\\.yaml:8: resources\\[0\\]\\.${dialect}\\.where: .+`));
        expect(refusal(manifest(dialect, '', `    protect: [{ where: ${q(fragment.sql)} }]`))).toMatch(/^reaper\.yaml:10: resources\[0\]\.protect\[0\]\.where: .+/);
        const inherited = manifest(dialect, '').replace('defaults: {}', `defaults: { protect: [{ where: ${q(fragment.sql)} }] }`);
        expect(refusal(inherited)).toMatch(/^reaper\.yaml:5: defaults\.protect\[0\]\.where: .+ \(inherited by rows\)$/);
      });
    }
  }
});

describe('the messages say what is wrong and where', () => {
  const where = (dialect: Dialect, sql: string) => refusal(manifest(dialect, `, where: ${q(sql)}`)).replace(/^reaper\.yaml:8: resources\[0\]\.\w+\.where: /, '');

  it('an OR lifted out of the statement', () => {
    expect(where('postgres', "owner <> 'nobody') OR (true")).toBe(
      'the ")" at character 18 closes a parenthesis the fragment did not open; a where is one self-contained boolean expression',
    );
    expect(where('mysql', "(owner = 'a'")).toBe('the "(" at character 1 is never closed; a where is one self-contained boolean expression');
  });

  it('comments, statement ends, keywords and placeholders', () => {
    expect(where('postgres', "owner = 'a' -- x")).toBe('a comment ("--" at character 13) is not allowed in a where');
    expect(where('mysql', "owner = 'a' # x")).toBe('a comment ("#" at character 13) is not allowed in a where');
    expect(where('mysql', 'true; DELETE FROM items')).toBe('";" (at character 5) is not allowed in a where: it is one expression, not a statement');
    expect(where('postgres', 'true ORDER BY 1')).toBe('ORDER (at character 6) would end the WHERE clause; a where is one boolean expression (use it inside a sub-select)');
    expect(where('postgres', 'owner = $1')).toBe('a bound parameter ($1 at character 9) is not allowed in a where; write the value');
  });

  it('a backslash before a quote, whose meaning depends on the server', () => {
    expect(where('postgres', "owner = 'a\\' OR owner = 'b'")).toBe(
      "a backslash before a quote reads differently depending on the server's settings (standard_conforming_strings, NO_BACKSLASH_ESCAPES); write a quote inside a string as ''",
    );
  });
});

describe('ordinary where fragments load', () => {
  for (const fragment of ACCEPTED) {
    for (const dialect of fragment.dialects) {
      it(`${dialect}: ${fragment.label}`, () => {
        const m = parseManifest(manifest(dialect, `, where: ${q(fragment.sql)}`, `    protect: [{ where: ${q(fragment.sql)} }]`), { file: 'reaper.yaml', baseDir: '/srv' });
        expect(m.resources[0]!.location).toMatchObject({ where: fragment.sql });
        expect(m.resources[0]!.protect).toEqual([{ kind: 'where', sql: fragment.sql }]);
      });
    }
  }
});
