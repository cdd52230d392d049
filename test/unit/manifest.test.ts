/**
 * The manifest loader (docs/manifest.md; docs/safety.md "Bad input", §5, §6, §18): every rejection is a
 * ManifestError (exit 2) whose lines read exactly `file:LINE: key.path: message`, and a
 * valid manifest comes back normalised, resolved and frozen. Manifests are written line by
 * line so that the line numbers asserted below can be counted.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, formatManifestIssue, ManifestError } from '../../src/errors.js';
import { loadManifest, parseManifest } from '../../src/manifest/load.js';
import { resolveStateUrl } from '../../src/manifest/normalize.js';
import { MAX_MANIFEST_BYTES, type Env } from '../../src/manifest/yaml.js';
import { BUILTIN_DEFAULTS, type Manifest } from '../../src/manifest/types.js';

const FILE = 'reaper.yaml';
const BASE = '/srv/reaper';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;
const parse = (text: string, env: Env = {}): Manifest => parseManifest(text, { file: FILE, baseDir: BASE, env });

/** The formatted issues of a rejected manifest; fails the test when it is accepted or throws anything else. */
function rejects(text: string, env: Env = {}): string[] {
  let caught: unknown;
  try {
    parse(text, env);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'the manifest was accepted').toBeInstanceOf(ManifestError);
  const error = caught as ManifestError;
  expect(error.exitCode).toBe(ExitCode.usage);
  const lines = error.issues.map(formatManifestIssue);
  expect(error.message).toBe(lines.join('\n'));
  return lines;
}

// One resource of each backend, each valid; tests replace or append lines.
const HEAD = [
  'version: 1', //                                                       1
  'connections:', //                                                     2
  '  blobs: { kind: s3, region: us-east-1 }', //                         3
  '  main-db: { kind: postgres, url: "postgres://app@db/app" }', //      4
  '  legacy: { kind: mysql, url: "mysql://app@db/app" }', //             5
  'resources:', //                                                       6
];
const S3 = ['  - name: blobs', '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }', '    owner: { tag: owner }'];
const PG = ['  - name: rows', '    postgres: { connection: main-db, table: public.images, id: id, createdAt: created_at }', '    owner: { column: session_id }'];
const MY = ['  - name: legacy-rows', '    mysql: { connection: legacy, table: images, id: id, createdAt: created_at }', '    owner: { column: session_id }'];
const FS = ['  - name: scratch', '    fs: { path: ./scratch }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }'];
/** HEAD then one resource: its name is on line 7, its location on 8, its owner on 9, extra lines from 10. */
const one = (resource: string[], ...extra: string[]) => yaml(...HEAD, ...resource, ...extra);

describe('a valid baseline', () => {
  it('accepts each backend alone (the rejections below differ from it in one place)', () => {
    for (const r of [S3, PG, MY, FS]) expect(parse(one(r)).resources).toHaveLength(1);
  });
});

describe('unknown keys', () => {
  it('a manifest with an unknown key on line 6 exits 2 with a message naming line 6 and the key', () => {
    const text = yaml(
      'version: 1',
      'connections:',
      '  blobs: { kind: s3 }',
      'resources:',
      '  - name: upload-blobs',
      '    colour: red',
      '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }',
      '    owner: { tag: owner }',
    );
    expect(rejects(text)).toEqual(['reaper.yaml:6: resources[0].colour: unknown key "colour"']);
  });

  it('names a key nested in a flow mapping, on the line of the key itself', () => {
    expect(rejects(one(S3.map((l) => l.replace('{ tag: owner }', '{ tag: owner, colour: red }'))))).toEqual([
      'reaper.yaml:9: resources[0].owner.colour: unknown key "colour"',
    ]);
    const multiLine = one(['  - name: blobs', '    s3: { connection: blobs,', '          bucket: uploads, prefix: tmp/, regoin: x }', '    owner: { tag: owner }']);
    expect(rejects(multiLine)).toEqual(['reaper.yaml:9: resources[0].s3.regoin: unknown key "regoin"']);
  });

  it('names unknown keys at the top, in defaults, in a connection, in a liveness source and in an owner list', () => {
    const text = yaml(
      'version: 1', //                                          1
      'defaults: { minAge: 10m, gracePeriod: 1h }', //           2
      'connections:', //                                        3
      '  blobs: { kind: s3, regoin: us-east-1 }', //             4
      'owners:', //                                             5
      '  - leases: { ttl: 30s }', //                            6
      'resources:', //                                          7
      '  - name: blobs', //                                     8
      '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }',
      '    owner:', //                                          10
      '      - tag: owner', //                                  11
      '        colour: red', //                                 12
      'extra: true', //                                         13
    );
    expect(rejects(text)).toEqual([
      'reaper.yaml:2: defaults.gracePeriod: unknown key "gracePeriod"',
      'reaper.yaml:4: connections.blobs.regoin: unknown key "regoin" (did you mean region?)',
      'reaper.yaml:6: owners[0].leases.ttl: unknown key "ttl"',
      'reaper.yaml:12: resources[0].owner[0].colour: unknown key "colour"',
      'reaper.yaml:13: extra: unknown key "extra"',
    ]);
  });

  it('suggests the key meant, from the keys allowed where the typo is, and nothing when none is close', () => {
    expect(rejects(one(FS, '    tll: 6h'))).toEqual(['reaper.yaml:10: resources[0].tll: unknown key "tll" (did you mean ttl?)']);
    expect(rejects(one(FS.map((l) => l.replace('{ path: ./scratch }', '{ pth: ./scratch }'))))).toContain('reaper.yaml:8: resources[0].fs.pth: unknown key "pth" (did you mean path?)');
    expect(rejects(yaml('version: 1', 'defaults: { Grace: 1h }', 'resources: []'))[0]).toBe('reaper.yaml:2: defaults.Grace: unknown key "Grace" (did you mean grace?)');
    expect(rejects(one(PG.map((l) => l.replace('createdAt: created_at', 'createAt: created_at'))))).toContain(
      'reaper.yaml:8: resources[0].postgres.createAt: unknown key "createAt" (did you mean createdAt?)',
    );
    // An S3 location has no region (its connection has): no hint from another level.
    expect(rejects(one(S3.map((l) => l.replace('prefix: tmp/ }', 'prefix: tmp/, regoin: x }'))))).toEqual(['reaper.yaml:8: resources[0].s3.regoin: unknown key "regoin"']);
  });

  it('reports one issue per unknown key, in line order', () => {
    expect(rejects(one(FS, '    colour: red', '    size: big'))).toEqual([
      'reaper.yaml:10: resources[0].colour: unknown key "colour"',
      'reaper.yaml:11: resources[0].size: unknown key "size"',
    ]);
  });
});

describe('wrong types and values', () => {
  it('names what was expected and what was found', () => {
    expect(rejects(one(FS, '    batchSize: lots'))).toEqual(['reaper.yaml:10: resources[0].batchSize: expected number, received string']);
    expect(rejects(one(FS, '    batchSize: 2.5'))).toEqual(['reaper.yaml:10: resources[0].batchSize: expected a whole number']);
    expect(rejects(one(FS, '    maxDeleteFraction: 2'))).toEqual(['reaper.yaml:10: resources[0].maxDeleteFraction: at most 1, got 2']);
    expect(rejects(one(FS, '    onExpired: delete'))).toEqual(['reaper.yaml:10: resources[0].onExpired: expected "report" or "reap", got "delete"']);
    expect(rejects(one(FS, '    ageFrom: birthtime'))).toEqual(['reaper.yaml:10: resources[0].ageFrom: expected "mtime", "ctime" or "atime", got "birthtime"']);
  });

  it('says what a number must be within, and what it got', () => {
    expect(rejects(one(FS, '    batchSize: 1000000000'))).toEqual(['reaper.yaml:10: resources[0].batchSize: at most 10000, got 1000000000']);
    expect(rejects(one(FS, '    batchSize: 0'))).toEqual(['reaper.yaml:10: resources[0].batchSize: more than 0, got 0']);
    expect(rejects(one(FS, '    maxDeleteFraction: 0'))).toEqual(['reaper.yaml:10: resources[0].maxDeleteFraction: more than 0, got 0']);
  });

  it('a number written as a string or a percentage says how to write it', () => {
    expect(rejects(one(FS, '    batchSize: "500"'))).toEqual(['reaper.yaml:10: resources[0].batchSize: expected a number, got the string "500": write it without quotes']);
    expect(rejects(one(FS, '    maxDeleteFraction: 50%'))).toEqual(['reaper.yaml:10: resources[0].maxDeleteFraction: expected a number, got "50%": write a fraction, 0.5']);
  });

  it('a mapping where a list belongs says how a YAML list is written', () => {
    expect(rejects(one(FS, '    protect: { pathPattern: "^keep/" }'))).toEqual(['reaper.yaml:10: resources[0].protect: expected a list (one "- " line per item), received a mapping']);
    expect(rejects(yaml('version: 1', 'owners:', '  leases: {}', 'resources:', ...FS))).toEqual(['reaper.yaml:2: owners: expected a list (one "- " line per item), received a mapping']);
  });

  it('says what an S3 bucket name is made of', () => {
    expect(rejects(one(S3.map((l) => l.replace(/bucket: [^,}]+/, 'bucket: b'))))).toEqual([
      'reaper.yaml:8: resources[0].s3.bucket: expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit',
    ]);
  });

  it('checks nested values and connection fields', () => {
    const text = yaml('version: 1', 'connections:', '  blobs: { kind: s3, forcePathStyle: "yes" }', 'resources:', ...S3);
    expect(rejects(text)).toEqual(['reaper.yaml:3: connections.blobs.forcePathStyle: expected boolean, received string']);
    const protect = one(S3, '    protect:', '      - tag: { keep: true }');
    expect(rejects(protect)).toEqual(['reaper.yaml:11: resources[0].protect[0].tag.keep: expected string, received boolean']);
  });

  it('explains a union value that is neither of its shapes', () => {
    expect(rejects(one(FS.map((l) => l.replace(/owner: .*/, 'owner: pathPattern'))))).toEqual([
      'reaper.yaml:9: resources[0].owner: expected object or array, received string',
    ]);
    expect(rejects(one(S3, '    mark: 5'))).toEqual(['reaper.yaml:10: resources[0].mark: expected "tag" or object, received number']);
    expect(rejects(one(PG, '    archive: "yes"'))).toEqual(['reaper.yaml:10: resources[0].archive: expected boolean or object, received string']);
    expect(rejects(one(FS.map((l) => l.replace(/owner: .*/, 'owner: []'))))).toEqual(['reaper.yaml:9: resources[0].owner: a list of owners needs at least one']);
  });

  it('reports the closest branch of a union, not "Invalid input"', () => {
    expect(rejects(one(PG, '    mark: { column: "a b" }'))).toEqual([
      'reaper.yaml:10: resources[0].mark.column: expected an SQL identifier: a letter or _, then letters, digits or _ (at most 63)',
    ]);
  });

  it('wants version 1 and a list of resources', () => {
    expect(rejects(yaml('version: 2', 'resources:', ...FS))).toEqual(['reaper.yaml:1: version: expected version: 1']);
    expect(rejects(yaml('version: "1"', 'resources:', ...FS))).toEqual(['reaper.yaml:1: version: expected version: 1']);
    expect(rejects(yaml('version: 1', 'resources: {}'))).toEqual(['reaper.yaml:2: resources: expected a list (one "- " line per item), received a mapping']);
    expect(rejects(yaml('version: 1', 'resources: []'))).toEqual(['reaper.yaml:2: resources: a manifest declares at least one resource']);
  });

  it('rejects an unknown connection kind and a connection name that is not a name', () => {
    const text = yaml('version: 1', 'connections:', '  cache: { kind: redis }', '  "bad name": { kind: s3 }', 'resources:', ...FS);
    expect(rejects(text)).toEqual([
      'reaper.yaml:3: connections.cache.kind: expected kind: s3, postgres or mysql',
      'reaper.yaml:4: connections.bad name: expected a connection name of letters, digits, "-", "_" or "." (at most 63)',
    ]);
  });

  it('a misspelt connection kind or choice names the one meant', () => {
    const text = yaml('version: 1', 'connections:', '  db: { kind: postgress, url: "postgres://u@h/app" }', '  blobs: { region: eu-west-1 }', 'resources:', ...FS);
    expect(rejects(text)).toEqual([
      'reaper.yaml:3: connections.db.kind: expected kind: s3, postgres or mysql (did you mean postgres?)',
      'reaper.yaml:4: connections.blobs.kind: expected kind: s3, postgres or mysql',
    ]);
    expect(rejects(one(FS, '    onExpired: repot'))).toEqual(['reaper.yaml:10: resources[0].onExpired: expected "report" or "reap", got "repot" (did you mean report?)']);
  });

  it('rejects a state URL of another scheme, or sqlite: without a path', () => {
    expect(rejects(yaml('version: 1', 'state: redis://cache:6379', 'resources:', ...FS))).toEqual([
      'reaper.yaml:2: state: expected sqlite:PATH, postgres://… or mysql://…',
    ]);
    expect(rejects(yaml('version: 1', 'state: "sqlite:"', 'resources:', ...FS))).toEqual(['reaper.yaml:2: state: expected sqlite:PATH, postgres://… or mysql://…']);
  });
});

describe('missing required keys', () => {
  it('says "is required" at the line of the mapping that lacks the key', () => {
    expect(rejects(yaml(...HEAD, ...FS.slice(0, 2)))).toEqual(['reaper.yaml:7: resources[0].owner: is required']);
    expect(rejects(yaml(...HEAD, ...FS.slice(1).map((l, i) => (i === 0 ? l.replace('    fs', '  - fs') : l))))).toEqual([
      'reaper.yaml:7: resources[0].name: is required',
    ]);
    expect(rejects(one(['  - name: blobs', '    s3: { connection: blobs, prefix: tmp/ }', '    owner: { tag: owner }']))).toEqual([
      'reaper.yaml:8: resources[0].s3.bucket: is required',
    ]);
    expect(rejects(one(['  - name: rows', '    postgres: { connection: main-db, table: t, createdAt: c }', '    owner: { column: o }']))).toEqual([
      'reaper.yaml:8: resources[0].postgres.id: is required',
    ]);
    expect(rejects(yaml('version: 1', 'connections:', '  db: { kind: postgres }', 'resources:', ...FS))).toEqual([
      'reaper.yaml:3: connections.db.url: is required',
    ]);
  });

  it('names missing top-level keys at line 1', () => {
    expect(rejects(yaml('version: 1'))).toEqual(['reaper.yaml:1: resources: is required']);
    expect(rejects(yaml('resources:', ...FS))).toEqual(['reaper.yaml:1: version: expected version: 1']);
  });

  it('wants exactly one location and exactly one owner extractor', () => {
    expect(rejects(one([...FS.slice(0, 2), '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }', FS[2]!]))).toEqual([
      'reaper.yaml:7: resources[0]: a resource has exactly one location: s3, postgres, mysql, fs, command or http (found s3, fs)',
    ]);
    expect(rejects(one([FS[0]!, FS[2]!]))).toEqual(['reaper.yaml:7: resources[0]: a resource has exactly one location: s3, postgres, mysql, fs, command or http (found none)']);
    expect(rejects(one([...S3.slice(0, 2), '    owner: { tag: owner, metadata: owner }']))).toEqual([
      'reaper.yaml:9: resources[0].owner: an owner has exactly one of: metadata, tag, keyPattern (found metadata, tag)',
    ]);
    expect(rejects(one([...S3.slice(0, 2), '    owner: { key: "s:{value}" }']))).toEqual([
      'reaper.yaml:9: resources[0].owner: an owner has exactly one of: metadata, tag, keyPattern (found none)',
    ]);
  });
});

describe('invalid YAML', () => {
  it('names the line of a syntax error', () => {
    expect(rejects(yaml('version: 1', 'resources:', '\t- name: a'))).toEqual(['reaper.yaml:3: invalid YAML: Tabs are not allowed as indentation']);
    expect(rejects(yaml('version: 1', 'state: sqlite:a.db', 'state2 x: : y', 'resources: []'))).toEqual([
      'reaper.yaml:3: invalid YAML: Nested mappings are not allowed in compact mappings',
    ]);
  });

  it('names the line where an unclosed quote or flow collection opened, not where it was noticed', () => {
    const text = yaml('version: 1', 'resources:', '  - name: scratch', '    fs: { path: ./scratch', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }');
    expect(rejects(text)).toEqual(['reaper.yaml:4: resources[0].fs: invalid YAML: Flow map in block collection must be sufficiently indented and end with a }']);
    expect(rejects(yaml('version: 1', 'resources: [a, b', 'state: x'))).toEqual([
      'reaper.yaml:2: resources: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(rejects(yaml('version: 1', 'state: "unterminated', 'resources: []'))).toEqual(['reaper.yaml:2: state: invalid YAML: Missing closing "quote']);
    expect(rejects(yaml('version: 1', "state: 'unterminated", 'resources: []'))).toEqual(["reaper.yaml:2: state: invalid YAML: Missing closing 'quote"]);
  });

  it('rejects several documents, an empty file and a document that is not a mapping', () => {
    expect(rejects(yaml(...HEAD, ...FS, '---', 'version: 1'))).toEqual([
      'reaper.yaml:10: invalid YAML: Source contains multiple documents; please use YAML.parseAllDocuments()',
    ]);
    expect(rejects('')).toEqual(['reaper.yaml:1: a manifest is a YAML mapping with version, resources, …']);
    expect(rejects(yaml('- version: 1'))).toEqual(['reaper.yaml:1: a manifest is a YAML mapping with version, resources, …']);
  });

  it('rejects duplicate keys at the second one, saying where the first is', () => {
    expect(rejects(one(FS, '    name: again'))).toEqual(['reaper.yaml:10: resources[0].name: duplicate key "name" (first on line 7)']);
    expect(rejects(one(FS.map((l) => l.replace('{ path: ./scratch }', '{ path: ./scratch, path: / }'))))).toEqual([
      'reaper.yaml:8: resources[0].fs.path: duplicate key "path" (first on line 8)',
    ]);
    expect(rejects(yaml('version: 1', 'version: 1', 'resources:', ...FS))).toEqual(['reaper.yaml:2: version: duplicate key "version" (first on line 1)']);
    // Keys are compared as the YAML would load: after interpolation, and 1 and "1" alike.
    expect(rejects(yaml('version: 1', '${KEY}: 2', 'resources:', ...FS), { KEY: 'version' })).toEqual(['reaper.yaml:2: version: duplicate key "version" (first on line 1)']);
    expect(rejects(one(S3, '    protect: [{ tag: { 1: a, "1": b } }]'))).toEqual(['reaper.yaml:10: resources[0].protect[0].tag.1: duplicate key "1" (first on line 10)']);
  });

  it('rejects a billion-laughs alias bomb quickly, without expanding it, at the first alias', () => {
    const levels = 'abcdefghij'.split('');
    const bomb = yaml(
      'version: 1',
      `${levels[0]}: &${levels[0]} [${Array(9).fill('"lol"').join(', ')}]`,
      ...levels.slice(1).map((l, i) => `${l}: &${l} [${Array(9).fill(`*${levels[i]}`).join(', ')}]`),
      'resources:',
      ...FS,
    );
    const started = performance.now();
    expect(rejects(bomb)).toEqual(['reaper.yaml:3: b[0]: invalid YAML: aliases expand too far (a YAML alias bomb?); aliased content may be repeated at most 50 times']);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('rejects an alias without an anchor and an alias inside its own anchor', () => {
    expect(rejects(one(FS, '    ttl: *nope'))).toEqual(['reaper.yaml:10: resources[0].ttl: invalid YAML: alias *nope has no anchor &nope before it']);
    expect(rejects(yaml('version: 1', 'loop: &l [1, *l]', 'resources:', ...FS))).toEqual([
      'reaper.yaml:2: loop[1]: invalid YAML: alias *l refers to a node that contains it',
    ]);
  });

  it('accepts a modest alias, as YAML allows', () => {
    const text = yaml(...HEAD, '  - name: a', '    fs: { path: ./a }', '    owner: &owner { pathPattern: "^(?<owner>[^/]+)/" }', '  - name: b', '    fs: { path: ./b }', '    owner: *owner');
    expect(parse(text).resources.map((r) => r.owners)).toEqual([
      [{ extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } }],
      [{ extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } }],
    ]);
  });

  it('rejects input over 1 MiB before parsing it, counting bytes rather than characters', () => {
    const big = yaml(...HEAD, ...FS, `# ${'x'.repeat(MAX_MANIFEST_BYTES)}`);
    expect(rejects(big)).toEqual([`reaper.yaml: the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`]);
    const wide = yaml(...HEAD, ...FS, `# ${'é'.repeat(MAX_MANIFEST_BYTES / 2)}`);
    expect(wide.length).toBeLessThan(MAX_MANIFEST_BYTES);
    expect(rejects(wide)).toEqual([`reaper.yaml: the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`]);
  });

  it('rejects absurdly deep nesting as a manifest error, not a crash', () => {
    const deep = yaml('version: 1', `x: ${'['.repeat(5_000)}${']'.repeat(5_000)}`, 'resources:', ...FS);
    expect(rejects(deep)).toEqual([expect.stringMatching(/^reaper\.yaml(:2)?: invalid YAML: (Maximum call stack size exceeded|the manifest nests too deeply)$/)]);
  });

  it('reports at most 100 issues and how many more there were', () => {
    const text = yaml(...HEAD, ...FS, ...Array.from({ length: 150 }, (_, i) => `    extra${i}: 1`));
    const issues = rejects(text);
    expect(issues).toHaveLength(101);
    expect(issues[0]).toBe('reaper.yaml:10: resources[0].extra0: unknown key "extra0"');
    expect(issues[99]).toBe('reaper.yaml:109: resources[0].extra99: unknown key "extra99"');
    expect(issues[100]).toBe('reaper.yaml: … and 50 more issues');
  });

  it('stays fast on a mapping with thousands of unknown or duplicate keys', () => {
    const started = performance.now();
    expect(rejects(yaml(...HEAD, ...FS, ...Array.from({ length: 5_000 }, (_, i) => `k${i}: 1`))).at(-1)).toBe('reaper.yaml: … and 4900 more issues');
    expect(rejects(yaml(...HEAD, ...FS, ...Array.from({ length: 5_000 }, () => 'k: 1'))).at(-1)).toBe('reaper.yaml: … and 4899 more issues');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('durations', () => {
  it('rejects a duration without a unit, written as a number or as a string', () => {
    expect(rejects(one(FS, '    minAge: 600'))).toEqual(['reaper.yaml:10: resources[0].minAge: "600" has no unit; write e.g. 600s, 600m or 600h']);
    expect(rejects(one(FS, '    grace: "90"'))).toEqual(['reaper.yaml:10: resources[0].grace: "90" has no unit; write e.g. 90s, 90m or 90h']);
    expect(rejects(yaml('version: 1', 'defaults: { ttl: 24 }', 'resources:', ...FS))).toEqual(['reaper.yaml:2: defaults.ttl: "24" has no unit; write e.g. 24s, 24m or 24h']);
  });

  it('rejects negative durations and garbage', () => {
    expect(rejects(one(FS, '    ttl: -5m', '    grace: -5', '    minAge: soon', '    retain: 1.5h', '    quarantine: ./q'))).toEqual([
      'reaper.yaml:10: resources[0].ttl: "-5m" is negative; durations are zero or more',
      'reaper.yaml:11: resources[0].grace: "-5" is negative; durations are zero or more',
      'reaper.yaml:12: resources[0].minAge: "soon" is not a duration; write a whole number and a unit: 30s, 10m, 24h, 7d',
      'reaper.yaml:13: resources[0].retain: "1.5h" is not a duration; write a whole number and a unit: 30s, 10m, 24h, 7d',
    ]);
    expect(rejects(one(FS, '    ttl: true'))).toEqual(['reaper.yaml:10: resources[0].ttl: expected a duration such as 30s, 10m, 24h or 7d']);
  });

  it('rejects a zero ttl on a resource and under defaults, but allows a zero minAge', () => {
    expect(rejects(one(FS, '    ttl: 0s'))).toEqual(['reaper.yaml:10: resources[0].ttl: a ttl of zero would expire everything at birth; omit ttl for none']);
    expect(rejects(yaml('version: 1', 'defaults: { ttl: 0m }', 'resources:', ...FS))).toEqual([
      'reaper.yaml:2: defaults.ttl: a ttl of zero would expire everything at birth; omit ttl for none',
    ]);
    expect(parse(one(FS, '    minAge: 0s', '    grace: 0m')).resources[0]).toMatchObject({ minAgeMs: 0, graceMs: 0 });
  });

  it('checks statementTimeout on SQL connections too', () => {
    const text = yaml('version: 1', 'connections:', '  db: { kind: postgres, url: "postgres://x", statementTimeout: 30 }', 'resources:', ...FS);
    expect(rejects(text)).toEqual(['reaper.yaml:3: connections.db.statementTimeout: "30" has no unit; write e.g. 30s, 30m or 30h']);
  });
});

describe('SQL identifiers (§18)', () => {
  const pg = (location: string, owner = '{ column: session_id }') => one(['  - name: rows', `    postgres: { connection: main-db, ${location} }`, `    owner: ${owner}`]);
  const TABLE = 'expected a table name "table" or "schema.table" made of SQL identifiers';
  const IDENT = 'expected an SQL identifier: a letter or _, then letters, digits or _ (at most 63)';

  it('rejects injection-shaped and three-part table names', () => {
    expect(rejects(pg('table: "users; DROP TABLE x", id: id, createdAt: c'))).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
    expect(rejects(pg('table: a.b.c, id: id, createdAt: c'))).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
    expect(rejects(pg('table: "images\\"", id: id, createdAt: c'))).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
    expect(rejects(pg('table: ".images", id: id, createdAt: c'))).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
  });

  it('rejects 64-character names and accepts 63', () => {
    const n63 = `a${'b'.repeat(62)}`;
    const n64 = `${n63}c`;
    expect(rejects(pg(`table: ${n64}, id: ${n64}, createdAt: c`))).toEqual([
      `reaper.yaml:8: resources[0].postgres.table: ${TABLE}`,
      `reaper.yaml:8: resources[0].postgres.id: ${IDENT}`,
    ]);
    expect(rejects(pg(`table: s.${n64}, id: id, createdAt: c`))).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
    expect(parse(pg(`table: ${n63}.${n63}, id: ${n63}, createdAt: ${n63}`)).resources[0]!.location).toMatchObject({ table: `${n63}.${n63}`, id: n63 });
  });

  it('rejects injection-shaped column names in location, owner and mark', () => {
    expect(rejects(pg('table: t, id: "id--", createdAt: "created at"', '{ column: "o;--" }'))).toEqual([
      `reaper.yaml:8: resources[0].postgres.id: ${IDENT}`,
      `reaper.yaml:8: resources[0].postgres.createdAt: ${IDENT}`,
      `reaper.yaml:9: resources[0].owner.column: ${IDENT}`,
    ]);
    expect(rejects(pg('table: t, id: id, createdAt: c, version: "1v"'))).toEqual([`reaper.yaml:8: resources[0].postgres.version: ${IDENT}`]);
  });

  it('rejects a where with a second statement', () => {
    expect(rejects(pg('table: t, id: id, createdAt: c, where: "1=1; DROP TABLE t"'))).toEqual([
      'reaper.yaml:8: resources[0].postgres.where: ";" (at character 4) is not allowed in a where: it is one expression, not a statement',
    ]);
  });

  it('validates identifiers after ${VAR} interpolation', () => {
    expect(rejects(pg('table: "${TABLE}", id: id, createdAt: c'), { TABLE: 'x; DROP TABLE y' })).toEqual([`reaper.yaml:8: resources[0].postgres.table: ${TABLE}`]);
    expect(parse(pg('table: "${TABLE}", id: id, createdAt: c'), { TABLE: 'app.images' }).resources[0]!.location).toMatchObject({ table: 'app.images' });
  });
});

describe('scope confinement (§6)', () => {
  const EMPTY = 'an empty prefix scopes the whole bucket; set a prefix, or allowEmptyPrefix: true if that is meant';

  it('refuses an S3 resource without a prefix, or with an empty one, unless allowEmptyPrefix', () => {
    expect(rejects(one(['  - name: blobs', '    s3: { connection: blobs, bucket: uploads }', '    owner: { tag: owner }']))).toEqual([
      `reaper.yaml:8: resources[0].s3.prefix: ${EMPTY}`,
    ]);
    expect(rejects(one(['  - name: blobs', '    s3: { connection: blobs, bucket: uploads, prefix: "" }', '    owner: { tag: owner }']))).toEqual([
      `reaper.yaml:8: resources[0].s3.prefix: ${EMPTY}`,
    ]);
    expect(rejects(one(['  - name: blobs', '    s3: { connection: blobs, bucket: uploads, allowEmptyPrefix: false }', '    owner: { tag: owner }']))).toEqual([
      `reaper.yaml:8: resources[0].s3.prefix: ${EMPTY}`,
    ]);
    const allowed = parse(one(['  - name: blobs', '    s3: { connection: blobs, bucket: uploads, allowEmptyPrefix: true }', '    owner: { tag: owner }']));
    expect(allowed.resources[0]!.location).toEqual({ kind: 's3', connection: 'blobs', bucket: 'uploads', prefix: '', deleteMode: 'auto' });
  });

  it('keeps requireVersioning on an S3 location, and refuses it elsewhere', () => {
    const s3 = (extra: string) => one(['  - name: blobs', `    s3: { connection: blobs, bucket: uploads, prefix: tmp/${extra} }`, '    owner: { tag: owner }']);
    expect(parse(s3(', requireVersioning: true')).resources[0]!.location).toMatchObject({ kind: 's3', requireVersioning: true });
    expect(parse(s3('')).resources[0]!.location).not.toHaveProperty('requireVersioning');
    expect(rejects(one(['  - name: scratch', '    fs: { path: ./scratch, requireVersioning: true }', FS[2]!]))).toEqual([
      'reaper.yaml:8: resources[0].fs.requireVersioning: unknown key "requireVersioning"',
    ]);
  });

  it('refuses a filesystem root, however it is spelt, unless allowRoot', () => {
    const fsAt = (p: string, extra = '') => one(['  - name: scratch', `    fs: { path: "${p}"${extra} }`, FS[2]!]);
    expect(rejects(fsAt('/'))).toEqual(['reaper.yaml:8: resources[0].fs.path: "/" is a filesystem root; name a directory, or allowRoot: true if that is meant']);
    expect(rejects(fsAt('../..'))).toEqual(['reaper.yaml:8: resources[0].fs.path: "../.." is a filesystem root; name a directory, or allowRoot: true if that is meant']);
    expect(rejects(fsAt('/tmp/..'))).toEqual(['reaper.yaml:8: resources[0].fs.path: "/tmp/.." is a filesystem root; name a directory, or allowRoot: true if that is meant']);
    expect(parse(fsAt('/', ', allowRoot: true')).resources[0]!.location).toEqual({ kind: 'fs', path: '/', glob: undefined, allowRoot: true });
  });

  it('refuses a path that resolves to a filesystem root through a symlink, unless allowRoot', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'reaper-rootlink-'));
    try {
      await symlink('/', path.join(dir, 'rootlink'));
      await symlink(path.join(dir, 'rootlink'), path.join(dir, 'chain'));
      await mkdir(path.join(dir, 'real'));
      await symlink(path.join(dir, 'real'), path.join(dir, 'scratch'));
      const file = path.join(dir, 'reaper.yaml');
      const load = async (p: string, extra = '') => {
        await writeFile(file, one(['  - name: scratch', `    fs: { path: "${p}"${extra} }`, FS[2]!]));
        return loadManifest(file);
      };
      for (const p of ['./rootlink', 'chain', './rootlink/']) {
        await expect(load(p)).rejects.toThrow(
          new ManifestError([
            { file, line: 8, path: 'resources[0].fs.path', message: `"${p}" resolves to the filesystem root / (through a symlink); name a directory, or allowRoot: true if that is meant` },
          ]),
        );
      }
      expect((await load('./rootlink', ', allowRoot: true')).resources[0]!.location).toMatchObject({ kind: 'fs', path: path.join(dir, 'rootlink') });
      // A symlink to an ordinary directory is a scope like any other; the path stays as written.
      expect((await load('./scratch')).resources[0]!.location).toMatchObject({ kind: 'fs', path: path.join(dir, 'scratch') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a glob that climbs out of fs.path', () => {
    const globbed = (g: string) => one(['  - name: scratch', `    fs: { path: ./scratch, glob: "${g}" }`, FS[2]!]);
    expect(rejects(globbed('../**'))).toEqual(['reaper.yaml:8: resources[0].fs.glob: a glob is relative to fs.path and may not contain ".."']);
    expect(rejects(globbed('/etc/*'))).toEqual(['reaper.yaml:8: resources[0].fs.glob: a glob is relative to fs.path and may not contain ".."']);
    expect(parse(globbed('**/*.part')).resources[0]!.location).toMatchObject({ glob: '**/*.part' });
  });

  it('rejects a bucket name S3 would not accept', () => {
    expect(rejects(one(['  - name: blobs', '    s3: { connection: blobs, bucket: Uploads_1, prefix: tmp/ }', '    owner: { tag: owner }']))).toEqual([
      'reaper.yaml:8: resources[0].s3.bucket: expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit',
    ]);
  });
});

describe('owners and protect rules the backend cannot evaluate (§5)', () => {
  const withOwner = (r: string[], owner: string) => one([r[0]!, r[1]!, `    owner: ${owner}`]);

  it('rejects owner extractors the backend cannot read, naming the ones it can', () => {
    expect(rejects(withOwner(PG, '{ tag: owner }'))).toEqual(['reaper.yaml:9: resources[0].owner.tag: a postgres resource cannot read its owner from tag; use column']);
    expect(rejects(withOwner(S3, '{ column: owner }'))).toEqual([
      'reaper.yaml:9: resources[0].owner.column: an s3 resource cannot read its owner from column; use metadata or tag or keyPattern',
    ]);
    expect(rejects(withOwner(S3, '{ pathPattern: "^(?<owner>[^/]+)/" }'))).toEqual([
      'reaper.yaml:9: resources[0].owner.pathPattern: an s3 resource cannot read its owner from pathPattern; use metadata or tag or keyPattern',
    ]);
    expect(rejects(withOwner(FS, '{ keyPattern: "^(?<owner>[^/]+)/" }'))).toEqual([
      'reaper.yaml:9: resources[0].owner.keyPattern: an fs resource cannot read its owner from keyPattern; use pathPattern',
    ]);
    expect(rejects(withOwner(MY, '{ metadata: owner }'))).toEqual(['reaper.yaml:9: resources[0].owner.metadata: a mysql resource cannot read its owner from metadata; use column']);
  });

  it('checks every owner of a list, at its own index', () => {
    const text = one([S3[0]!, S3[1]!, '    owner:', '      - { tag: owner }', '      - { column: owner }']);
    expect(rejects(text)).toEqual([
      'reaper.yaml:11: resources[0].owner[1].column: an s3 resource cannot read its owner from column; use metadata or tag or keyPattern',
    ]);
  });

  it('rejects protect rules the backend cannot evaluate', () => {
    expect(rejects(one(FS, '    protect: [{ where: "keep = 1" }]'))).toEqual(['reaper.yaml:10: resources[0].protect[0].where: an fs resource cannot be protected by where; use pathPattern']);
    expect(rejects(one(MY, '    protect:', '      - tag: { keep: "true" }'))).toEqual(['reaper.yaml:11: resources[0].protect[0].tag: a mysql resource cannot be protected by tag; use where']);
    expect(rejects(one(PG, '    protect: [{ where: "keep" }, { metadata: { keep: "1" } }]'))).toEqual([
      'reaper.yaml:10: resources[0].protect[1].metadata: a postgres resource cannot be protected by metadata; use where',
    ]);
    expect(rejects(one(S3, '    protect: [{ pathPattern: "^keep/" }]'))).toEqual([
      'reaper.yaml:10: resources[0].protect[0].pathPattern: an s3 resource cannot be protected by pathPattern; use tag or metadata or keyPattern',
    ]);
  });

  it('wants exactly one condition per protect rule', () => {
    expect(rejects(one(S3, '    protect: [{ tag: { keep: "1" }, keyPattern: "^keep/" }]'))).toEqual([
      'reaper.yaml:10: resources[0].protect[0]: a protect rule has exactly one of: tag, metadata, keyPattern',
    ]);
    expect(rejects(one(S3, '    protect: [{}]'))).toEqual(['reaper.yaml:10: resources[0].protect[0]: a protect rule has exactly one of: tag, metadata, keyPattern']);
  });
});

describe('regular expressions', () => {
  const fsOwner = (pattern: string) => one([FS[0]!, FS[1]!, `    owner: { pathPattern: '${pattern}' }`]);
  const NO_GROUP = 'the pattern needs a named group "owner", e.g. ^(?<owner>[^/]+)/';

  it('wants a named group "owner" in an owner pattern', () => {
    expect(rejects(fsOwner('^([^/]+)/'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${NO_GROUP}`]);
    expect(rejects(fsOwner('^(?<who>[^/]+)/'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${NO_GROUP}`]);
  });

  it('is not fooled by text that only looks like the group (it would read no owner from anything)', () => {
    expect(rejects(fsOwner('^\\(?<owner>x'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${NO_GROUP}`]);
    expect(rejects(fsOwner('^[(?<owner>]x'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${NO_GROUP}`]);
  });

  it('accepts the group anywhere in the pattern', () => {
    expect(parse(fsOwner('^(?:tmp|scratch)/(?:(?<owner>[a-z]+)-)?')).resources[0]!.owners).toEqual([
      { extractor: { from: 'pathPattern', pattern: '^(?:tmp|scratch)/(?:(?<owner>[a-z]+)-)?' } },
    ]);
  });

  it('rejects an invalid pattern, in owners and in protect rules, in RE2 syntax', () => {
    const INVALID = 'invalid regular expression (RE2 syntax: no lookaround or backreferences)';
    expect(rejects(fsOwner('^(?<owner>[^/]+/'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${INVALID}: missing closing ): \`^(?<owner>[^/]+/\``]);
    expect(rejects(one(S3, "    protect: [{ keyPattern: '\\p{Nope}' }]"))).toEqual([
      `reaper.yaml:10: resources[0].protect[0].keyPattern: ${INVALID}: invalid character class range: \`\\p{Nope}\``,
    ]);
  });

  it('rejects what a linear-time engine cannot do: lookaround and backreferences', () => {
    const INVALID = 'invalid regular expression (RE2 syntax: no lookaround or backreferences)';
    expect(rejects(fsOwner('^(?<owner>[^/]+)(?=/)'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${INVALID}: invalid or unsupported Perl syntax: \`(?=\``]);
    expect(rejects(fsOwner('^(?<owner>[a-z])\\1'))).toEqual([`reaper.yaml:9: resources[0].owner.pathPattern: ${INVALID}: invalid escape sequence: \`\\1\``]);
  });

  it('accepts nested quantifiers: they cost linear time (test/unit/patterns.test.ts)', () => {
    expect(parse(fsOwner('^(?<owner>(a+)+)b')).resources[0]!.owners).toEqual([{ extractor: { from: 'pathPattern', pattern: '^(?<owner>(a+)+)b' } }]);
  });
});

describe('references and connections', () => {
  it('rejects a ref to an unknown resource, and a key template on a ref', () => {
    const text = yaml(
      ...HEAD,
      ...PG,
      '  - name: thumbs', //                                                      10
      '    s3: { connection: blobs, bucket: uploads, prefix: thumbs/ }',
      '    owner: { ref: image-rows, keyPattern: "^thumbs/(?<owner>[^/.]+)" }', // 12
      '  - name: previews', //                                                    13
      '    s3: { connection: blobs, bucket: uploads, prefix: previews/ }',
      '    owner: { ref: rows, key: "row:{value}", keyPattern: "^previews/(?<owner>[^/.]+)" }', // 15
    );
    expect(rejects(text)).toEqual([
      'reaper.yaml:12: resources[1].owner.ref: no resource named "image-rows"',
      'reaper.yaml:15: resources[2].owner.key: a ref owner is a resource id, not a key; drop key',
    ]);
  });

  it('wants {value} in a key template', () => {
    expect(rejects(one([PG[0]!, PG[1]!, '    owner: { column: session_id, key: "session" }']))).toEqual([
      'reaper.yaml:9: resources[0].owner.key: a key template must contain {value}',
    ]);
  });

  it('rejects a missing connection and one of the wrong kind, for resources and liveness sources', () => {
    const text = yaml(
      'version: 1',
      'connections:',
      '  blobs: { kind: s3 }',
      '  main-db: { kind: postgres, url: "postgres://x" }',
      'owners:',
      '  - sql: { connection: blobs, query: "SELECT 1" }', //   6
      '  - sql: { connection: registry, query: "SELECT 1" }', // 7
      'resources:',
      '  - name: rows',
      '    postgres: { connection: blobs, table: t, id: id, createdAt: c }', // 10
      '    owner: { column: o }',
      '  - name: legacy',
      '    mysql: { connection: main-db, table: t, id: id, createdAt: c }', // 13
      '    owner: { column: o }',
      '  - name: blobs',
      '    s3: { connection: archive, bucket: uploads, prefix: p/ }', // 16
      '    owner: { tag: o }',
    );
    expect(rejects(text)).toEqual([
      'reaper.yaml:6: owners[0].sql.connection: connection "blobs" is s3; an sql source needs postgres or mysql',
      'reaper.yaml:7: owners[1].sql.connection: no connection named "registry"',
      'reaper.yaml:10: resources[0].postgres.connection: connection "blobs" is s3, not postgres',
      'reaper.yaml:13: resources[1].mysql.connection: connection "main-db" is postgres, not mysql',
      'reaper.yaml:16: resources[2].s3.connection: no connection named "archive"',
    ]);
  });

  it('wants exactly one kind per liveness source', () => {
    expect(rejects(yaml('version: 1', 'owners:', '  - leases: {}', '    static: [platform]', '  - {}', 'resources:', ...FS))).toEqual([
      'reaper.yaml:3: owners[0]: each liveness source has exactly one of: leases, sql, static',
      'reaper.yaml:5: owners[1]: each liveness source has exactly one of: leases, sql, static',
    ]);
  });

  it('rejects duplicate resource names at the second', () => {
    expect(rejects(yaml(...HEAD, ...FS, ...FS.map((l) => l.replace('./scratch', './other'))))).toEqual([
      'reaper.yaml:10: resources[1].name: duplicate resource name "scratch" (also resources[0])',
    ]);
  });

  it('rejects resource names that are not names', () => {
    expect(rejects(one(['  - name: "../etc"', ...FS.slice(1)]))).toEqual([
      'reaper.yaml:7: resources[0].name: expected a name of letters, digits, "-", "_" or "." (at most 63)',
    ]);
  });
});

describe('${VAR} interpolation', () => {
  it('names the line and key of each scalar whose variable is missing', () => {
    const text = yaml(
      'version: 1',
      'connections:',
      '  blobs: { kind: s3, endpoint: "${S3_ENDPOINT}" }',
      '  main-db:',
      '    kind: postgres',
      '    url: "postgres://${DB_USER}:${DB_PASSWORD}@db/app"',
      'resources:',
      ...FS,
    );
    expect(rejects(text, { DB_USER: 'app' })).toEqual([
      'reaper.yaml:3: connections.blobs.endpoint: environment variable S3_ENDPOINT is not set',
      'reaper.yaml:6: connections.main-db.url: environment variable DB_PASSWORD is not set',
    ]);
  });

  it('interpolates present variables, every occurrence, once (values are not re-read)', () => {
    const text = yaml(
      'version: 1',
      'connections:',
      '  blobs: { kind: s3, endpoint: "${S3_ENDPOINT}" }',
      '  main-db: { kind: postgres, url: "postgres://${DB_USER}:${DB_USER}@db/${DB}" }',
      'resources:',
      ...FS.map((l) => l.replace('./scratch', '"${SCRATCH}/$HOME"')),
    );
    const manifest = parse(text, { S3_ENDPOINT: 'http://127.0.0.1:9000', DB_USER: 'app', DB: '${S3_ENDPOINT}', SCRATCH: '/data/scratch' });
    expect(manifest.connections['blobs']).toMatchObject({ endpoint: 'http://127.0.0.1:9000' });
    expect(manifest.connections['main-db']).toMatchObject({ url: 'postgres://app:app@db/${S3_ENDPOINT}' });
    expect(manifest.resources[0]!.location).toMatchObject({ path: '/data/scratch/$HOME' });
  });

  it('validates the interpolated value', () => {
    const text = yaml('version: 1', 'connections:', '  blobs: { kind: s3, endpoint: "${S3_ENDPOINT}" }', 'resources:', ...FS);
    expect(rejects(text, { S3_ENDPOINT: 'not a url' })).toEqual(['reaper.yaml:3: connections.blobs.endpoint: expected an http:// or https:// URL']);
  });
});

describe('settings on the wrong backend', () => {
  it('rejects ageFrom, mark, archive, quarantine and retain where they do not apply', () => {
    expect(rejects(one(S3, '    ageFrom: ctime'))).toEqual(['reaper.yaml:10: resources[0].ageFrom: ageFrom applies to fs resources only']);
    expect(rejects(one(PG, '    ageFrom: mtime'))).toEqual(['reaper.yaml:10: resources[0].ageFrom: ageFrom applies to fs resources only']);
    expect(rejects(one(FS, '    mark: tag'))).toEqual(['reaper.yaml:10: resources[0].mark: fs resources take no visible mark; their tombstone is in the state store']);
    expect(rejects(one(S3, '    mark: { column: reaped }'))).toEqual(['reaper.yaml:10: resources[0].mark: an s3 resource is marked with a tag: mark: tag']);
    expect(rejects(one(PG, '    mark: tag'))).toEqual(['reaper.yaml:10: resources[0].mark: a postgres resource is marked in a column: mark: { column: NAME }']);
    expect(rejects(one(MY, '    mark: { tag: reaped }'))).toEqual(['reaper.yaml:10: resources[0].mark: a mysql resource is marked in a column: mark: { column: NAME }']);
    expect(rejects(one(S3, '    archive: true'))).toEqual(['reaper.yaml:10: resources[0].archive: archive applies to postgres and mysql resources only']);
    expect(rejects(one(FS, '    archive: { table: old }'))).toEqual(['reaper.yaml:10: resources[0].archive: archive applies to postgres and mysql resources only']);
    expect(rejects(one(S3, '    quarantine: ./q'))).toEqual(['reaper.yaml:10: resources[0].quarantine: quarantine applies to fs resources only']);
    expect(rejects(one(FS, '    retain: 7d'))).toEqual(['reaper.yaml:10: resources[0].retain: retain needs a quarantine directory']);
  });
});

// One manifest with every kind of location, liveness source and owner rule (close to the README's example).
const FULL_EXAMPLE = yaml(
  'version: 1',
  'state: sqlite:.reaper/state.db',
  'defaults: { minAge: 10m, grace: 1h, batchSize: 500 }',
  'connections:',
  '  blobs:   { kind: s3, region: us-east-1, endpoint: "${S3_ENDPOINT}", forcePathStyle: true }',
  '  main-db: { kind: postgres, url: "${DATABASE_URL}" }',
  '  legacy:  { kind: mysql, url: "mysql://app@db:3306/app" }',
  'owners:',
  '  - leases: {}',
  '  - sql: { connection: main-db, query: "SELECT id::text FROM sessions WHERE expires_at > now()" }',
  '  - static: [platform]',
  'resources:',
  '  - name: upload-blobs', //                                                                  13
  '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }',
  '    owner: { metadata: owner }',
  '    ttl: 24h',
  '    protect: [{ tag: { keep: "true" } }]',
  '  - name: image-rows', //                                                                    18
  '    postgres: { connection: main-db, table: public.images, id: id, createdAt: created_at, where: "kind = \'upload\'" }',
  '    owner: { column: session_id, key: "session:{value}" }',
  '    onExpired: report',
  '  - name: thumbnails', //                                                                    22
  '    s3: { connection: blobs, bucket: uploads, prefix: thumbs/ }',
  '    owner: { ref: image-rows, keyPattern: "^thumbs/(?<owner>[^/.]+)" }',
  '  - name: scratch', //                                                                       25
  '    fs: { path: ./scratch, glob: "**/*.part" }',
  '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
  '    ttl: 6h',
);
const FULL_ENV = { S3_ENDPOINT: 'http://127.0.0.1:9000', DATABASE_URL: 'postgres://app:secret@db:5432/app' };

describe('valid manifests', () => {
  it('loads a full example manifest, normalised', () => {
    const m = parse(FULL_EXAMPLE, FULL_ENV);
    const HOUR = 3_600_000;
    const policy = { minAgeMs: 10 * 60_000, graceMs: HOUR, batchSize: 500, maxDeletesPerRun: 10_000, maxDeleteFraction: 0.5, onExpired: 'report', ageFrom: 'mtime', protect: [] };
    expect(m).toEqual({
      file: FILE,
      version: 1,
      state: 'sqlite:/srv/reaper/.reaper/state.db',
      connections: {
        blobs: { name: 'blobs', kind: 's3', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
        'main-db': { name: 'main-db', kind: 'postgres', url: 'postgres://app:secret@db:5432/app' },
        legacy: { name: 'legacy', kind: 'mysql', url: 'mysql://app@db:3306/app' },
      },
      owners: [
        { kind: 'leases' },
        { kind: 'sql', connection: 'main-db', query: 'SELECT id::text FROM sessions WHERE expires_at > now()' },
        { kind: 'static', keys: ['platform'] },
      ],
      resources: [
        {
          ...policy,
          name: 'upload-blobs',
          location: { kind: 's3', connection: 'blobs', bucket: 'uploads', prefix: 'tmp/', deleteMode: 'auto' },
          owners: [{ extractor: { from: 'metadata', name: 'owner' } }],
          ttlMs: 24 * HOUR,
          protect: [{ kind: 'tag', match: { keep: 'true' } }],
          line: 13,
        },
        {
          ...policy,
          name: 'image-rows',
          location: { kind: 'postgres', connection: 'main-db', table: 'public.images', id: 'id', createdAt: 'created_at', where: "kind = 'upload'" },
          owners: [{ extractor: { from: 'column', name: 'session_id' }, keyTemplate: 'session:{value}' }],
          line: 18,
        },
        {
          ...policy,
          name: 'thumbnails',
          location: { kind: 's3', connection: 'blobs', bucket: 'uploads', prefix: 'thumbs/', deleteMode: 'auto' },
          owners: [{ extractor: { from: 'keyPattern', pattern: '^thumbs/(?<owner>[^/.]+)' }, ref: 'image-rows' }],
          line: 22,
        },
        {
          ...policy,
          name: 'scratch',
          location: { kind: 'fs', path: '/srv/reaper/scratch', glob: '**/*.part' },
          owners: [{ extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } }],
          ttlMs: 6 * HOUR,
          line: 25,
        },
      ],
      breaker: { maxDrop: 0.5, minLiveKeys: 1 },
      digest: createHash('sha256').update(FULL_EXAMPLE).digest('hex'),
    });
    expect(m.resources.map((r) => r.ttlMs)).toEqual([24 * HOUR, undefined, undefined, 6 * HOUR]);
  });

  it('names each missing variable of the example', () => {
    expect(rejects(FULL_EXAMPLE, {})).toEqual([
      'reaper.yaml:5: connections.blobs.endpoint: environment variable S3_ENDPOINT is not set',
      'reaper.yaml:6: connections.main-db.url: environment variable DATABASE_URL is not set',
    ]);
  });

  it('applies defaults with precedence resource > defaults > built-in', () => {
    const text = yaml(
      'version: 1',
      'defaults: { ttl: 2h, minAge: 5m, grace: 30m, batchSize: 100, maxDeletesPerRun: 50, maxDeleteFraction: 0.2, onExpired: reap, breaker: { maxDrop: 0.3 } }',
      'resources:',
      '  - name: inherits',
      '    fs: { path: ./a }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '  - name: overrides',
      '    fs: { path: ./b }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '    ttl: 3d',
      '    minAge: 1m',
      '    grace: 2h',
      '    batchSize: 7',
      '    maxDeletesPerRun: 3',
      '    maxDeleteFraction: 1',
      '    onExpired: report',
    );
    const [inherits, overrides] = parse(text).resources;
    expect(inherits).toMatchObject({ ttlMs: 2 * 3_600_000, minAgeMs: 5 * 60_000, graceMs: 30 * 60_000, batchSize: 100, maxDeletesPerRun: 50, maxDeleteFraction: 0.2, onExpired: 'reap' });
    expect(overrides).toMatchObject({ ttlMs: 3 * 86_400_000, minAgeMs: 60_000, graceMs: 2 * 3_600_000, batchSize: 7, maxDeletesPerRun: 3, maxDeleteFraction: 1, onExpired: 'report' });
    expect(parse(text).breaker).toEqual({ maxDrop: 0.3, minLiveKeys: BUILTIN_DEFAULTS.breaker.minLiveKeys });

    const bare = parse(yaml('version: 1', 'resources:', ...FS));
    expect(bare.resources[0]).toMatchObject({
      minAgeMs: BUILTIN_DEFAULTS.minAgeMs,
      graceMs: BUILTIN_DEFAULTS.graceMs,
      batchSize: BUILTIN_DEFAULTS.batchSize,
      maxDeletesPerRun: BUILTIN_DEFAULTS.maxDeletesPerRun,
      maxDeleteFraction: BUILTIN_DEFAULTS.maxDeleteFraction,
      onExpired: BUILTIN_DEFAULTS.onExpired,
      ageFrom: 'mtime',
      protect: [],
    });
    expect(bare.resources[0]!.ttlMs).toBeUndefined();
    expect(bare.owners).toEqual([{ kind: 'leases' }]);
    expect(bare.state).toBe(`sqlite:${BASE}/.reaper/state.db`);
    expect(bare.breaker).toEqual(BUILTIN_DEFAULTS.breaker);
  });

  it('resolves relative fs paths, quarantine and sqlite: state against baseDir, leaving the rest alone', () => {
    const text = yaml(
      'version: 1',
      'state: sqlite:state/reaper.db',
      'resources:',
      '  - name: rel',
      '    fs: { path: ../shared/tmp }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '    quarantine: .quarantine',
      '    retain: 7d',
      '  - name: abs',
      '    fs: { path: /var/tmp/jobs }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
    );
    const m = parse(text);
    expect(m.state).toBe('sqlite:/srv/reaper/state/reaper.db');
    expect(m.resources[0]).toMatchObject({ location: { kind: 'fs', path: '/srv/shared/tmp' }, quarantine: '/srv/reaper/.quarantine', retainMs: 7 * 86_400_000 });
    expect(m.resources[1]!.location).toMatchObject({ path: '/var/tmp/jobs' });
    expect(parse(text.replace('sqlite:state/reaper.db', 'sqlite:/abs/state.db')).state).toBe('sqlite:/abs/state.db');
    expect(parse(text.replace('sqlite:state/reaper.db', '"sqlite::memory:"')).state).toBe('sqlite::memory:');
    expect(parse(text.replace('sqlite:state/reaper.db', 'postgres://app@db/reaper')).state).toBe('postgres://app@db/reaper');
    expect(resolveStateUrl('mysql://app@db/reaper', BASE)).toBe('mysql://app@db/reaper');
  });

  it('returns a deeply frozen manifest', () => {
    const m = parse(FULL_EXAMPLE, FULL_ENV);
    const frozen = [m, m.connections, m.connections['blobs'], m.owners, m.owners[2], m.resources, m.resources[0], m.resources[0]!.location, m.resources[0]!.owners[0]!.extractor, m.resources[0]!.protect[0], m.breaker];
    for (const value of frozen) expect(Object.isFrozen(value)).toBe(true);
    const protect = m.resources[0]!.protect[0]!;
    expect(protect.kind === 'tag' && Object.isFrozen(protect.match)).toBe(true);
    expect(() => {
      (m.resources[0] as { ttlMs?: number }).ttlMs = 1;
    }).toThrow(TypeError);
    expect(() => (m.resources as unknown as unknown[]).push({})).toThrow(TypeError);
    expect(m.resources[0]!.ttlMs).toBe(24 * 3_600_000);
  });

  it('normalises a single owner and a list of owners alike, keeping key templates and refs', () => {
    const text = yaml(
      ...HEAD,
      ...PG,
      '  - name: blobs',
      '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }',
      '    owner:',
      '      - { metadata: Owner, key: "session:{value}" }',
      '      - { tag: job, key: "job:{value}:{value}" }',
      '      - { keyPattern: "^tmp/(?<owner>[^/]+)/", ref: rows }',
    );
    const [rows, blobs] = parse(text).resources;
    expect(rows!.owners).toEqual([{ extractor: { from: 'column', name: 'session_id' } }]);
    expect(blobs!.owners).toEqual([
      { extractor: { from: 'metadata', name: 'Owner' }, keyTemplate: 'session:{value}' },
      { extractor: { from: 'tag', name: 'job' }, keyTemplate: 'job:{value}:{value}' },
      { extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>[^/]+)/' }, ref: 'rows' },
    ]);
  });

  it('normalises reap-side keys: mark, archive, quarantine, retain; statementTimeout', () => {
    const text = yaml(
      'version: 1',
      'connections:',
      '  blobs: { kind: s3 }',
      '  main-db: { kind: postgres, url: "postgres://x", statementTimeout: 30s }',
      'resources:',
      '  - name: blobs',
      '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }',
      '    owner: { tag: owner }',
      '    mark: tag',
      '  - name: blobs2',
      '    s3: { connection: blobs, bucket: uploads, prefix: tmp2/ }',
      '    owner: { tag: owner }',
      '    mark: { tag: doomed }',
      '  - name: rows',
      '    postgres: { connection: main-db, table: public.images, id: id, createdAt: created_at }',
      '    owner: { column: session_id }',
      '    mark: { column: reaped_at }',
      '    archive: true',
      '  - name: rows2',
      '    postgres: { connection: main-db, table: images2, id: id, createdAt: created_at }',
      '    owner: { column: session_id }',
      '    archive: { table: graveyard.images }',
      '  - name: rows3',
      '    postgres: { connection: main-db, table: images3, id: id, createdAt: created_at }',
      '    owner: { column: session_id }',
      '    archive: false',
    );
    const m = parse(text);
    expect(m.connections['main-db']).toEqual({ name: 'main-db', kind: 'postgres', url: 'postgres://x', statementTimeoutMs: 30_000 });
    expect(m.resources.map((r) => r.mark)).toEqual([{ kind: 'tag', tag: 'reaper-tombstone' }, { kind: 'tag', tag: 'doomed' }, { kind: 'column', column: 'reaped_at' }, undefined, undefined]);
    expect(m.resources.map((r) => r.archive)).toEqual([undefined, undefined, { table: 'public.images_reaper_archive' }, { table: 'graveyard.images' }, undefined]);
  });

  it('records a digest of the text', () => {
    const a = parse(FULL_EXAMPLE, FULL_ENV);
    const b = parse(`${FULL_EXAMPLE}# a comment\n`, FULL_ENV);
    expect(a.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(b.digest).not.toBe(a.digest);
  });
});

describe('loadManifest', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'reaper-manifest-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file and resolves relative paths against its directory', async () => {
    await mkdir(path.join(dir, 'conf'));
    const file = path.join(dir, 'conf', 'reaper.yaml');
    await writeFile(file, yaml('version: 1', 'state: sqlite:state.db', 'resources:', ...FS));
    const m = await loadManifest(file);
    expect(m.file).toBe(file);
    expect(m.state).toBe(`sqlite:${path.join(dir, 'conf', 'state.db')}`);
    expect(m.resources[0]!.location).toMatchObject({ path: path.join(dir, 'conf', 'scratch') });
  });

  it('passes env to interpolation and names the file in errors', async () => {
    const file = path.join(dir, 'env.yaml');
    await writeFile(file, yaml('version: 1', 'connections:', '  db: { kind: postgres, url: "${DATABASE_URL}" }', 'resources:', ...FS));
    expect((await loadManifest(file, { DATABASE_URL: 'postgres://db/app' })).connections['db']).toMatchObject({ url: 'postgres://db/app' });
    await expect(loadManifest(file)).rejects.toThrow(new ManifestError([{ file, line: 3, path: 'connections.db.url', message: 'environment variable DATABASE_URL is not set' }]).message);
    await expect(loadManifest(file)).rejects.toThrow(`${file}:3: connections.db.url: environment variable DATABASE_URL is not set`);
  });

  it('refuses a missing file', async () => {
    const file = path.join(dir, 'missing.yaml');
    const error = await loadManifest(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).exitCode).toBe(ExitCode.usage);
    expect((error as ManifestError).message).toBe(`${file}: cannot read the manifest: no such file`);
  });

  it('refuses a file over 1 MiB without reading it', async () => {
    const file = path.join(dir, 'big.yaml');
    const text = yaml(...HEAD, ...FS);
    await writeFile(file, text + '#'.repeat(MAX_MANIFEST_BYTES + 1 - Buffer.byteLength(text)));
    const error = await loadManifest(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).message).toBe(`${file}: the manifest is ${MAX_MANIFEST_BYTES + 1} bytes; the limit is ${MAX_MANIFEST_BYTES}`);
  });

  it('accepts a file of exactly 1 MiB', async () => {
    const file = path.join(dir, 'edge.yaml');
    const text = yaml(...HEAD, ...FS);
    await writeFile(file, text + '#'.repeat(MAX_MANIFEST_BYTES - Buffer.byteLength(text)));
    expect((await loadManifest(file)).resources).toHaveLength(1);
  });
});

describe('defaults.protect', () => {
  it('applies to resources without their own rules; a resource\'s own rules replace it', () => {
    const m = parse(
      yaml(
        'version: 1',
        'defaults: { protect: [{ pathPattern: "^keep/" }] }',
        'resources:',
        ...FS,
        '  - name: own',
        '    fs: { path: ./own }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '    protect: [{ pathPattern: "^golden/" }]',
      ),
    );
    expect(m.resources[0]!.protect).toEqual([{ kind: 'pathPattern', pattern: '^keep/' }]);
    expect(m.resources[1]!.protect).toEqual([{ kind: 'pathPattern', pattern: '^golden/' }]);
  });

  it('is an error where a resource inheriting it cannot evaluate a rule (§5)', () => {
    expect(rejects(yaml('version: 1', 'defaults: { protect: [{ tag: { keep: "true" } }] }', 'resources:', ...FS))).toEqual([
      'reaper.yaml:2: defaults.protect[0].tag: an fs resource cannot be protected by tag; use pathPattern (inherited by scratch)',
    ]);
  });
});
