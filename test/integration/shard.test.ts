/**
 * `--shard i/N` (docs/scale-out.md): on the real servers (moto, PostgreSQL, MariaDB, files),
 * the union of the N shards' findings is exactly the unsharded audit: nothing twice, nothing
 * missed, with keys equal to split points, shards whose ranges are empty, types without split
 * points, more shards than resources, and MariaDB string keys in a case-insensitive collation
 * (their order is not byte order).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/engine/types.js';
import { parseManifest } from '../../src/manifest/load.js';
import type { Manifest } from '../../src/manifest/types.js';
import { runAudit } from '../../src/run/audit.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import type { StateStore } from '../../src/state/types.js';
import { freshBucket, freshMysqlDatabase, freshPgDatabase, runCleanups, s3Settings, serviceAvailable } from './support/services.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const all = serviceAvailable('postgres') && serviceAvailable('mysql') && serviceAvailable('s3');

/** The non-live findings of an audit, as `type/id` keys, and the scanned count per type. */
async function audit(manifest: Manifest, store: StateStore, shard: { index: number; count: number } | null): Promise<{ ids: string[]; scanned: Record<string, number> }> {
  const ids: string[] = [];
  const doc = await runAudit(manifest, { store, shard, onFinding: (f: Finding) => void ids.push(`${f.resource}/${f.id}`) });
  for (const r of doc.resources) expect(r.status, `${r.name}: ${r.error ?? ''}`).toBe('ok');
  return { ids, scanned: Object.fromEntries(doc.resources.map((r) => [r.name, r.scanned])) };
}

/** Audit unsharded and as each of `count` shards: the shards' findings are the unsharded ones, each exactly once. */
async function expectPartition(manifest: Manifest, store: StateStore, count: number): Promise<string[][]> {
  const whole = await audit(manifest, store, null);
  const parts: string[][] = [];
  const scanned: Record<string, number> = {};
  for (let index = 0; index < count; index++) {
    const part = await audit(manifest, store, { index, count });
    parts.push(part.ids);
    for (const [name, n] of Object.entries(part.scanned)) scanned[name] = (scanned[name] ?? 0) + n;
  }
  const union = parts.flat();
  expect(union.length, 'no finding twice').toBe(new Set(union).size);
  expect([...union].sort()).toEqual([...whole.ids].sort());
  expect(scanned, 'every resource scanned once, live ones too').toEqual(whole.scanned);
  return parts;
}

describe.skipIf(!all)('sharded audits on the real servers', () => {
  it('4 shards find exactly what the unsharded audit finds, split points and boundary keys included', async () => {
    const pgUrl = await freshPgDatabase(cleanups);
    const { default: pg } = await import('pg');
    const pgc = new pg.Client({ connectionString: pgUrl });
    await pgc.connect();
    // Ids 1..40: 10, 20 and 30 are split points themselves; owner 'live' on every 7th row.
    await pgc.query(`CREATE TABLE uploads (id bigint PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO uploads SELECT g, CASE WHEN g % 7 = 0 THEN 'live' ELSE 'dead' END, now() - interval '1 day' FROM generate_series(1, 40) g;
      CREATE TABLE lonely (id text PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO lonely VALUES ('only', 'dead', now() - interval '1 day');`);
    await pgc.end();

    const myUrl = await freshMysqlDatabase(cleanups);
    const mysql = await import('mysql2/promise');
    const my = await mysql.createConnection({ uri: myUrl });
    // A case-insensitive collation: 'alpha' < 'Beta' < 'charlie' < 'Delta' there, not in byte order.
    await my.query('CREATE TABLE jobs (id VARCHAR(32) COLLATE utf8mb4_general_ci PRIMARY KEY, worker VARCHAR(32), created_at DATETIME NOT NULL)');
    const names = ['alpha', 'Beta', 'beta2', 'charlie', 'Delta', 'echo', 'Foxtrot', 'golf', 'Hotel', 'india', 'Zulu'];
    await my.query(`INSERT INTO jobs VALUES ${names.map(() => '(?, ?, NOW() - INTERVAL 1 DAY)').join(', ')}`, names.flatMap((n, i) => [n, i % 3 === 0 ? 'live' : 'dead']));
    await my.end();

    const { client, bucket } = await freshBucket(cleanups, 'shard');
    const keys = [...Array.from({ length: 30 }, (_, i) => `tmp/k${String(i).padStart(2, '0')}`), 'tmp/k07/inner', 'tmp/é', 'tmp/live/x'];
    for (const key of keys) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));

    const dir = testTempDir('reaper-shard-');
    for (const top of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'live']) {
      for (const leaf of ['1', '2', 'deep/3']) {
        const file = path.join(dir, 'scratch', top, leaf);
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, 'x');
      }
    }
    writeFileSync(path.join(dir, 'scratch', 'root-file'), 'x');

    const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
    cleanups.push(() => store.close());
    const cfg = s3Settings();
    const manifest = parseManifest(
      `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s, batchSize: 3 }
connections:
  blobs: { kind: s3, endpoint: "${cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
  main: { kind: postgres, url: "${pgUrl}" }
  legacy: { kind: mysql, url: "${myUrl}" }
owners:
  - static: [live]
resources:
  - name: uploads
    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }
    owner: { column: owner }
    shard: { splitPoints: [10, 20, "30"] }
  - name: uploads-two-ranges
    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }
    owner: { column: owner }
    shard: { splitPoints: [25] }
  - name: uploads-unsplit
    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }
    owner: { column: owner }
  - name: lonely
    postgres: { connection: main, table: lonely, id: id, createdAt: created_at }
    owner: { column: owner }
    shard: { splitPoints: ["a", "m", "z"] }
  - name: jobs
    mysql: { connection: legacy, table: jobs, id: id, createdAt: created_at }
    owner: { column: worker }
    shard: { splitPoints: [beta, Delta, golf] }
  - name: blobs
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)" }
    shard: { splitPoints: [tmp/k07, tmp/k15, tmp/k22, tmp/zzz] }
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)" }
`,
      { file: 'shard.yaml', baseDir: dir },
    );

    const parts = await expectPartition(manifest, store, 4);
    const of = (shard: number, type: string) => parts[shard]!.filter((id) => id.startsWith(`${type}/`)).map((id) => id.slice(type.length + 1));
    // A key equal to a split point closes its range: 10 on shard 0, 11 on shard 1.
    expect(of(0, 'uploads')).toContain('10');
    expect(of(1, 'uploads')).toContain('11');
    expect(of(0, 'blobs')).toContain('tmp/k07');
    expect(of(1, 'blobs')).toEqual(expect.arrayContaining(['tmp/k07/inner', 'tmp/k08']));
    // In the column's case-insensitive order: 'beta' closes shard 0's range, 'Beta' is equal to it.
    expect(of(0, 'jobs').sort()).toEqual(['Beta']);
    expect(of(1, 'jobs').sort()).toEqual(['Delta', 'beta2']);
    // 2 ranges over 4 shards: two shards have none of the type.
    expect(parts.map((p) => p.some((id) => id.startsWith('uploads-two-ranges/')))).toEqual([false, true, false, true]);
    // Unsplit: the whole type on one shard.
    expect(parts.filter((p) => p.some((id) => id.startsWith('uploads-unsplit/'))).length).toBe(1);
    // More shards than resources: the one row is on exactly one shard.
    expect(parts.flat().filter((id) => id.startsWith('lonely/'))).toEqual(['lonely/only']);

    // And with more shards than any type has ranges or entries.
    await expectPartition(manifest, store, 7);
  });
});
