/** Lazy ${VAR} resolution: an unset variable is an error only where its value is used. */
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';
import { requireVariables, USES_EVERYTHING } from '../../src/manifest/variables.js';

const text = [
  'version: 1', //                                                                  1
  'state: "${STATE_URL}"', //                                                         2
  'connections:', //                                                                  3
  '  blobs: { kind: s3, endpoint: "${S3_ENDPOINT}" }', //                             4
  '  main-db: { kind: postgres, url: "${DATABASE_URL}" }', //                         5
  '  legacy: { kind: mysql, url: "${LEGACY_URL}" }', //                               6
  'owners:', //                                                                       7
  '  - sql: { connection: main-db, query: "SELECT 1" }', //                           8
  'resources:', //                                                                    9
  '  - name: uploads', //                                                            10
  '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }', //                 11
  '    owner: { metadata: owner }', //                                               12
  '  - name: thumbs', //                                                             13
  '    s3: { connection: blobs, bucket: uploads, prefix: thumbs/ }', //               14
  '    owner: { ref: rows, keyPattern: "^thumbs/(?<owner>[^/.]+)" }', //             15
  '  - name: rows', //                                                               16
  '    mysql: { connection: legacy, table: t, id: id, createdAt: c }', //            17
  '    owner: { column: owner }', //                                                 18
  '  - name: scratch', //                                                            19
  '    fs: { path: "./${SCRATCH}" }', //                                              20
  '    owner: { pathPattern: "^(?<owner>[^/]+)/" }', //                              21
  '',
].join('\n');

const lazy = (env: Record<string, string> = {}) => parseManifest(text, { file: 'reaper.yaml', baseDir: '/srv', env, lazyEnv: true });
const missing = (fn: () => void) => {
  try {
    fn();
    return [];
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    return error.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
  }
};

describe('lazy ${VAR} resolution', () => {
  it('loads with variables unset, and an eager load still reports every one of them', () => {
    expect(lazy().unresolved?.map((u) => u.issue.path)).toEqual(['state', 'connections.blobs.endpoint', 'connections.main-db.url', 'connections.legacy.url', 'resources[3].fs.path']);
    expect(missing(() => parseManifest(text, { file: 'reaper.yaml', baseDir: '/srv', env: {} }))).toHaveLength(5);
    expect(lazy({ STATE_URL: 'sqlite:s.db', S3_ENDPOINT: 'http://s3', DATABASE_URL: 'postgres://db', LEGACY_URL: 'mysql://db', SCRATCH: 'x' }).unresolved).toBeUndefined();
  });

  it('reports the variables a use reads, with line and key', () => {
    const m = lazy();
    expect(missing(() => requireVariables(m, { state: true, owners: false, resources: [] }))).toEqual(['2: state: environment variable STATE_URL is not set']);
    expect(missing(() => requireVariables(m, { state: false, owners: true, resources: [] }))).toEqual(['5: connections.main-db.url: environment variable DATABASE_URL is not set']);
    expect(missing(() => requireVariables(m, { state: false, owners: false, resources: ['scratch'] }))).toEqual(['20: resources[3].fs.path: environment variable SCRATCH is not set']);
    expect(missing(() => requireVariables(m, { state: false, owners: false, resources: [] }))).toEqual([]);
    expect(missing(() => requireVariables(m, { state: false, owners: false, connections: false }))).toEqual(['20: resources[3].fs.path: environment variable SCRATCH is not set']);
    expect(missing(() => requireVariables(m, USES_EVERYTHING))).toHaveLength(5);
  });

  it('a type owned through ref needs the connection of the type it refers to', () => {
    const m = lazy({ S3_ENDPOINT: 'http://s3' });
    expect(missing(() => requireVariables(m, { state: false, owners: false, resources: ['thumbs'] }))).toEqual(['6: connections.legacy.url: environment variable LEGACY_URL is not set']);
  });

  it('a value the schema cannot take unresolved is reported at load, as the unset variable', () => {
    const t = text.replace('batch', 'batch').replace('  - name: uploads\n', '  - name: uploads\n    ttl: "${TTL}"\n');
    expect(missing(() => parseManifest(t, { file: 'reaper.yaml', baseDir: '/srv', env: {}, lazyEnv: true }))).toEqual(['11: resources[0].ttl: environment variable TTL is not set']);
  });

  it('checks URL schemes after interpolation, and not in a value whose variable is unset', () => {
    expect(missing(() => lazy({ DATABASE_URL: 'postgress://db/app' }))).toEqual([
      '5: connections.main-db.url: unknown scheme "postgress://"; a postgres connection URL starts with postgres:// or postgresql://',
    ]);
    expect(missing(() => lazy({ STATE_URL: 'mysq://db' }))).toEqual(['2: state: expected sqlite:PATH, postgres://… or mysql://…']);
    expect(missing(() => lazy({ S3_ENDPOINT: 'ftp://s3' }))).toEqual(['4: connections.blobs.endpoint: unknown scheme "ftp://"; an S3 endpoint starts with http:// or https://']);
    // A password never appears in the message.
    expect(missing(() => lazy({ DATABASE_URL: 'postgress://app:s3cret@db/app' })).join()).not.toContain('s3cret');
  });
});
