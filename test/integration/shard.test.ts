/**
 * `--shard i/N` (docs/scale-out.md): on the real servers (moto, PostgreSQL, MariaDB, files),
 * the union of the N shards' findings is exactly the unsharded audit: nothing twice, nothing
 * missed, with keys equal to split points, shards whose ranges are empty, types without split
 * points, more shards than resources, and MariaDB string keys in a case-insensitive collation
 * (their order is not byte order).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { writeOutputs } from '../../src/cli/outputs.js';
import { fnv1a } from '../../src/engine/shard.js';
import type { Finding } from '../../src/engine/types.js';
import { parseManifest } from '../../src/manifest/load.js';
import type { Manifest } from '../../src/manifest/types.js';
import type { ReapReport } from '../../src/report/reap-report.js';
import { runAudit } from '../../src/run/audit.js';
import { runsTable } from '../../src/report/table.js';
import { runReap } from '../../src/run/reap.js';
import { openStateStore } from '../../src/state/open.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import type { StateStore } from '../../src/state/types.js';
import { reaper } from './support/cli.js';
import { waitStoreTime } from './support/reap-fixture.js';
import { freshBucket, freshMysqlDatabase, freshPgDatabase, runCleanups, s3Settings, serviceAvailable } from './support/services.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const all = serviceAvailable('postgres') && serviceAvailable('mysql') && serviceAvailable('s3');

/** The non-live findings of an audit, as `type/id` keys, and the scanned count per type. */
async function audit(manifest: Manifest, store: StateStore, shard: { index: number; count: number } | null, job?: string): Promise<{ ids: string[]; scanned: Record<string, number> }> {
  const ids: string[] = [];
  const doc = await runAudit(manifest, { store, shard, ...(job === undefined ? {} : { job }), onFinding: (f: Finding) => void ids.push(`${f.resource}/${f.id}`) });
  for (const r of doc.resources) expect(r.status, `${r.name}: ${r.error ?? ''}`).toBe('ok');
  return { ids, scanned: Object.fromEntries(doc.resources.map((r) => [r.name, r.scanned])) };
}

/**
 * Audit unsharded, then as `count` shards of job `job` at once, shard i over `stores[i % stores.length]`
 * (each pod of an Indexed Job has its own connection to the shared store): the shards' findings are
 * the unsharded ones, each exactly once.
 */
async function expectPartition(manifest: Manifest, stores: readonly StateStore[], count: number, job: string): Promise<string[][]> {
  const whole = await audit(manifest, stores[0]!, null);
  const shards = await Promise.all(Array.from({ length: count }, (_, index) => audit(manifest, stores[index % stores.length]!, { index, count }, job)));
  const parts = shards.map((part) => part.ids);
  const scanned: Record<string, number> = {};
  for (const part of shards) for (const [name, n] of Object.entries(part.scanned)) scanned[name] = (scanned[name] ?? 0) + n;
  const union = parts.flat();
  expect(union.length, 'no finding twice').toBe(new Set(union).size);
  expect([...union].sort()).toEqual([...whole.ids].sort());
  expect(scanned, 'every resource scanned once, live ones too').toEqual(whole.scanned);
  return parts;
}

interface World {
  dir: string;
  pgUrl: string;
  myUrl: string;
  bucket: string;
  client: S3Client;
  /** The manifest's text with this state store URL and these extra `defaults` keys. */
  manifestText(state: string, defaults?: string): string;
}

/**
 * PostgreSQL rows with integer ids (10, 20 and 30 are split points themselves), a table of one
 * row, MariaDB string ids in a case-insensitive collation, S3 keys around their split points
 * (one equal to a split point, one just after it, one past every split point), and top-level
 * fs entries. Owner `live` is the one live key.
 */
async function buildWorld(): Promise<World> {
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

  const cfg = s3Settings();
  const manifestText = (state: string, defaults = '') => `version: 1
state: ${state}
defaults: { minAge: 0s, batchSize: 3${defaults} }
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
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/, deleteMode: per-object-if-match }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)" }
    shard: { splitPoints: [tmp/k07, tmp/k15, tmp/k22, tmp/zzz] }
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)" }
`;

  return { dir, pgUrl, myUrl, bucket, client, manifestText };
}

/** A manifest of one files type, ./scratch, owned by its top-level entry; `live` is the live owner. */
const scratchManifest = (state: string, defaults: string) => `version: 1
state: ${state}
defaults: { minAge: 0s, maxDeleteFraction: 1, ${defaults} }
owners:
  - static: [live]
resources:
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)/" }
`;

/** ./scratch in `dir`: entries a to h and live, three files each (shard 1 of 4 holds b and f). */
function scratchTree(dir: string): void {
  for (const top of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'live']) {
    mkdirSync(path.join(dir, 'scratch', top), { recursive: true });
    for (const leaf of ['1', '2', '3']) writeFileSync(path.join(dir, 'scratch', top, leaf), 'x');
  }
}

/** The world with a fresh PostgreSQL state store, a manifest for reaping it (grace 1s, caps open) and a store to look at. */
async function reapWorld(): Promise<{ world: World; manifest: Manifest; observer: StateStore; withCap: (cap: number) => Manifest }> {
  const world = await buildWorld();
  const stateUrl = await freshPgDatabase(cleanups);
  const withCap = (cap: number) => parseManifest(world.manifestText(stateUrl, `, grace: 1s, maxDeleteFraction: 1, maxDeletesPerRun: ${cap}`), { file: 'shard.yaml', baseDir: world.dir });
  const observer = await openStateStore(stateUrl);
  cleanups.push(() => observer.close());
  return { world, manifest: withCap(1000), observer, withCap };
}

/** Each of 4 shards of `job` reaping `resources` at once: the reports of those that finished, the errors of those refused. */
async function reapJob(manifest: Manifest, job: string, resources: readonly string[]): Promise<{ done: ReapReport[]; refused: Error[] }> {
  const settled = await Promise.allSettled([0, 1, 2, 3].map((index) => runReap(manifest, { execute: true, resources, shard: { index, count: 4 }, job })));
  return {
    done: settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    refused: settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : [])),
  };
}

describe.skipIf(!all)('sharded audits on the real servers', () => {
  it('4 concurrent shards on a shared PostgreSQL state store find exactly what the unsharded audit finds, split points and boundary keys included', async () => {
    const world = await buildWorld();
    const stateUrl = await freshPgDatabase(cleanups);
    const stores: StateStore[] = [];
    for (let i = 0; i < 4; i++) {
      const store = await openStateStore(stateUrl);
      cleanups.push(() => store.close());
      stores.push(store);
    }
    const manifest = parseManifest(world.manifestText(`"${stateUrl}"`), { file: 'shard.yaml', baseDir: world.dir });
    const parts = await expectPartition(manifest, stores, 4, 'audit-4');
    // The shared store holds each shard's run under the one job.
    const runs = await stores[0]!.listRuns({ kind: 'audit', limit: 10 });
    expect(runs.map((r) => (r.summary as { job?: { shard: string } }).job?.shard ?? null).sort()).toEqual(['0/4', '1/4', '2/4', '3/4', null]);
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
    await expectPartition(manifest, stores, 7, 'audit-7');
  });

  it('4 concurrent shards on a PostgreSQL state store mark and delete each orphan exactly once, and settle only their own gone resources', async () => {
    const { world, manifest, observer } = await reapWorld();
    const types = ['uploads', 'jobs', 'blobs', 'scratch'];
    const orphans = (await audit(manifest, observer, null)).ids.filter((id) => types.some((t) => id.startsWith(`${t}/`)));
    const reapAll = async () => {
      const reports = await Promise.all([0, 1, 2, 3].map((index) => runReap(manifest, { execute: true, resources: types, shard: { index, count: 4 } })));
      for (const r of reports) expect(r.errors).toEqual([]);
      const sum = (field: 'marked' | 'deleted' | 'lifted') => reports.reduce((n, r) => n + r.outcomes[field], 0);
      return { marked: sum('marked'), deleted: sum('deleted'), lifted: sum('lifted') };
    };

    // First run: every orphan marked once (the shards' locks are their own: none refuses another).
    expect(await reapAll()).toEqual({ marked: orphans.length, deleted: 0, lifted: 0 });
    let marked = 0;
    for (const t of types) marked += (await observer.countTombstones(t)).marked;
    expect(marked).toBe(orphans.length);

    // Two marked resources vanish by hand: the scans meet them no more, and exactly one shard
    // (the one whose range holds each) settles its tombstone.
    const pgc = new (await import('pg')).default.Client({ connectionString: world.pgUrl });
    await pgc.connect();
    await pgc.query('DELETE FROM uploads WHERE id IN (10, 11)');
    await pgc.end();
    await waitStoreTime(observer, 1_100);

    // Second run: the rest deleted, each exactly once; the two gone ones lifted, once each.
    expect(await reapAll()).toEqual({ marked: 0, deleted: orphans.length - 2, lifted: 2 });
    for (const t of types) expect(await observer.countTombstones(t)).toMatchObject({ marked: 0, deleting: 0 });
    const left = await audit(manifest, observer, null);
    expect(left.ids.filter((id) => types.some((t) => id.startsWith(`${t}/`)))).toEqual([]);
    expect(left.scanned).toMatchObject({ uploads: 5, jobs: 4, blobs: 1, scratch: 3 });
  });

  it('refuses a second run of the same shard, and a run whose part overlaps it, not the other shards', async () => {
    const { world, manifest, observer } = await reapWorld();
    // Another run holds shard 1/4 of blobs.
    expect(await observer.acquireLock('blobs@1/4', 'another-run', 60_000)).toBe(true);
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 1, count: 4 } })).rejects.toThrow(/holds the lock on blobs@1\/4/);
    // A run whose part overlaps shard 1/4 is refused too: the type unsharded, or cut in 2.
    await expect(runReap(manifest, { execute: true, resources: ['blobs'] })).rejects.toThrow(/holds the lock on blobs@1\/4, whose part of blobs overlaps this run's \(blobs\)/);
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 0, count: 2 } })).rejects.toThrow(/holds the lock on blobs@1\/4, whose part of blobs overlaps this run's \(blobs@0\/2\)/);
    const other = await runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 2, count: 4 } });
    expect(other.errors).toEqual([]);
    expect(other.outcomes.marked).toBeGreaterThan(0);
    // The refused runs let go of their own locks: only the other run's is left.
    expect((await observer.liveLocks()).map((l) => [l.resource, l.runId])).toEqual([['blobs@1/4', 'another-run']]);
    // An unsharded run holding the type keeps every shard out.
    await observer.releaseLock('blobs@1/4', 'another-run');
    expect(await observer.acquireLock('blobs', 'another-run', 60_000)).toBe(true);
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 2, count: 4 } })).rejects.toThrow(/holds the lock on blobs, whose part of blobs overlaps this run's \(blobs@2\/4\)/);
    await observer.releaseLock('blobs', 'another-run');
    // A saved plan is applied by the shard that made it.
    const planOut = path.join(world.dir, 'shard-3.plan');
    await runReap(manifest, { execute: false, resources: ['blobs'], shard: { index: 3, count: 4 }, planOut });
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 2, count: 4 }, planIn: planOut })).rejects.toThrow(/made by shard 3\/4; apply it with --shard 3\/4/);
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], planIn: planOut })).rejects.toThrow(/made by shard 3\/4/);
    const applied = await runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 3, count: 4 }, planIn: planOut });
    expect(applied.outcomes.marked).toBeGreaterThan(0);
    // Started together, an unsharded run and a shard never both go on: each takes its lock and
    // then looks, so when both have taken theirs before either looks, both see the other.
    let taken = 0;
    let bothTaken!: () => void;
    const barrier = new Promise<void>((resolve) => (bothTaken = resolve));
    const racing = new Proxy(observer, {
      get(target, key, receiver) {
        if (key === 'acquireLock') {
          return async (...args: Parameters<StateStore['acquireLock']>) => {
            const got = await target.acquireLock(...args);
            if (++taken === 2) bothTaken();
            return got;
          };
        }
        if (key === 'liveLocks') return async () => (await barrier, target.liveLocks());
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const raced = await Promise.allSettled([
      runReap(manifest, { execute: true, resources: ['blobs'], store: racing }),
      runReap(manifest, { execute: true, resources: ['blobs'], shard: { index: 1, count: 4 }, store: racing }),
    ]);
    expect(raced.map((r) => (r.status === 'rejected' ? String(r.reason).match(/holds the lock on (\S+), whose part/)?.[1] : 'went on'))).toEqual(['blobs@1/4', 'blobs']);
    expect(await observer.liveLocks()).toEqual([]);

    // A run whose lock lapsed and that finds, at its next batch, a run of another layout that
    // started in the gap stops before acting further.
    const intruding = new Proxy(observer, {
      get(target, key, receiver) {
        if (key === 'refreshLock') {
          return async (...args: Parameters<StateStore['refreshLock']>) => {
            await target.acquireLock('blobs@0/2', 'started-in-the-gap', 60_000);
            return target.refreshLock(...args);
          };
        }
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const marks = (await observer.findTombstones({ resource: 'blobs' })).length;
    await expect(runReap(manifest, { execute: true, resources: ['blobs'], store: intruding })).rejects.toThrow(
      /holds the lock on blobs@0\/2, whose part of blobs overlaps this run's \(blobs\); stopping before acting further/,
    );
    expect((await observer.findTombstones({ resource: 'blobs' })).length, 'nothing marked').toBe(marks);
  });

  // reaper split-points: equal-count ranges read from the resources, in the order the shards compare (SQL: the id
  // column's, here a case-insensitive collation; S3: bytes), which the manifest takes and the shards then partition by.
  it('split-points prints equal-count ranges in each backend\'s key order, which partition the shards evenly', async () => {
    const world = await buildWorld();
    const state = path.join(world.dir, 'split-state.db');
    const file = path.join(world.dir, 'split.yaml');
    writeFileSync(file, world.manifestText(`sqlite:${state}`));
    const split = (type: string, ranges: number) => {
      const r = reaper(['split-points', '-c', file, '--type', type, '--ranges', String(ranges), '--output', 'json'], { cwd: world.dir });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { counted: number; splitPoints: string[]; scope: string; leftOut: { key: string; why: string }[] };
    };
    expect(split('uploads', 4)).toMatchObject({ counted: 40, splitPoints: ['10', '20', '30'] });
    // 11 ids in the column's order (alpha, Beta, beta2, charlie, Delta, echo, Foxtrot, golf, Hotel, india, Zulu): 3+3+3+2.
    expect(split('jobs', 4)).toMatchObject({ counted: 11, splitPoints: ['beta2', 'echo', 'Hotel'] });
    // 33 keys in byte order: k00…k07, k07/inner, k08…k29, live/x, é: positions 10 and 21.
    expect(split('blobs', 3)).toMatchObject({ counted: 33, splitPoints: ['tmp/k09', 'tmp/k20'] });
    // More ranges than rows: one row, no point.
    expect(split('lonely', 4)).toMatchObject({ counted: 1, splitPoints: [] });

    // The table (text) form, a terminal's default, is what goes under the type in the manifest; with it, 3 shards scan 11 keys each.
    const text = reaper(['split-points', '-c', file, '--type', 'blobs', '--ranges', '3', '--output', 'table'], { cwd: world.dir });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('blobs (s3://');
    expect(text.stdout).toContain('33 resources in 3 ranges of about 11');
    expect(text.stdout).toContain('shard:\n  splitPoints:\n    - "tmp/k09"\n    - "tmp/k20"\n');
    const manifest = parseManifest(world.manifestText(`sqlite:${state}`).replace('shard: { splitPoints: [tmp/k07, tmp/k15, tmp/k22, tmp/zzz] }', 'shard: { splitPoints: ["tmp/k09", "tmp/k20"] }'), {
      file: 'split.yaml',
      baseDir: world.dir,
    });
    const store = await SqliteStateStore.open(path.join(world.dir, 'split-audit.db'));
    cleanups.push(() => store.close());
    const shards = await Promise.all([0, 1, 2].map((index) => runAudit(manifest, { store, resources: ['blobs'], shard: { index, count: 3 } })));
    expect(shards.map((doc) => doc.resources[0]!.scanned)).toEqual([11, 11, 11]);

    // Types that take no split points, and a type the manifest does not have: exit 2, nothing touched.
    const refused = [
      ['scratch', /scratch is an fs resource: fs types are split by top-level entry and take no split points/],
      ['upload', /no resource type named "upload" in .*split\.yaml \(did you mean uploads\?\)/],
    ] as const;
    for (const [type, message] of refused) {
      const r = reaper(['split-points', '-c', file, '--type', type], { cwd: world.dir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const badRanges = reaper(['split-points', '-c', file, '--type', 'uploads', '--ranges', '1'], { cwd: world.dir });
    expect(badRanges.code).toBe(2);
    expect(badRanges.stderr).toMatch(/--ranges: a whole number from 2 to 4096 \(got 1\)/);

    // Keys a manifest cannot hold are left out, their ranges joining the next: '' and one the loader would read
    // as an environment variable. MariaDB ids the shards cannot compare apart from the table (UUID) are refused.
    const { default: pg } = await import('pg');
    const pgc = new pg.Client({ connectionString: world.pgUrl });
    await pgc.connect();
    await pgc.query(`CREATE TABLE odd (id text PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO odd SELECT k, 'dead', now() FROM unnest(ARRAY['', 'a', 'b\${HOME}', 'c', 'd', 'e', 'f', 'g']) AS k`);
    await pgc.end();
    const mysql = await import('mysql2/promise');
    const my = await mysql.createConnection({ uri: world.myUrl });
    await my.query('CREATE TABLE uu (id UUID PRIMARY KEY, worker VARCHAR(32), created_at DATETIME NOT NULL)');
    await my.end();
    writeFileSync(
      file,
      world.manifestText(`sqlite:${state}`) +
        `  - name: odd
    postgres: { connection: main, table: odd, id: id, createdAt: created_at }
    owner: { column: owner }
  - name: uu
    mysql: { connection: legacy, table: uu, id: id, createdAt: created_at }
    owner: { column: worker }
`,
    );
    expect(split('odd', 8)).toMatchObject({
      counted: 8,
      splitPoints: ['a', 'c', 'd', 'e', 'f'],
      leftOut: [
        { key: '', why: 'the manifest takes no empty split point' },
        { key: 'b${HOME}', why: 'it holds "${", which the manifest would read as an environment variable' },
      ],
    });
    const uuid = reaper(['split-points', '-c', file, '--type', 'uu'], { cwd: world.dir });
    expect(uuid.code, uuid.stderr).toBe(2);
    expect(uuid.stderr).toMatch(/ids of this type cannot be compared apart from the table, so it cannot be split into key ranges/);
    expect(existsSync(state), 'no state store opened').toBe(false);
  });

  it('exits 2 naming the key on bad --shard, half a Kubernetes pair, or split points the key column orders otherwise, touching nothing', async () => {
    const world = await buildWorld();
    const state = path.join(world.dir, 'cli-state.db');
    const file = path.join(world.dir, 'shard.yaml');
    // 'b' before 'a' is no order the manifest can judge (SQL text): the server refuses it.
    writeFileSync(file, world.manifestText(`sqlite:${state}`).replace('shard: { splitPoints: ["a", "m", "z"] }', 'shard: { splitPoints: ["m", "b"] }'));
    const run = (args: string[], env: Record<string, string> = {}) => reaper(['audit', '-c', file, '--output', 'json', ...args], { cwd: world.dir, env });
    const refused = [
      [run(['--shard', '4/4']), /--shard: the shard index must be 0 to 3/],
      [run(['--shard', 'two/4']), /--shard: expected i\/N/],
      [run([], { JOB_COMPLETION_INDEX: '1' }), /\$REAPER_SHARDS is not/],
      [run([], { JOB_COMPLETION_INDEX: '1', REAPER_SHARDS: 'x' }), /\$REAPER_SHARDS: expected a whole number/],
      [run([], { JOB_COMPLETION_INDEX: '4', REAPER_SHARDS: '4' }), /\$JOB_COMPLETION_INDEX\/\$REAPER_SHARDS \(4\/4\): the shard index must be 0 to 3/],
    ] as const;
    for (const [r, message] of refused) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(state), 'nothing touched').toBe(false);
    const unordered = run(['--shard', '0/4', '--resource', 'lonely']);
    expect(unordered.code, unordered.stderr).toBe(2);
    expect(unordered.stderr).toMatch(/resource lonely \(line \d+\): shard\.splitPoints\[1\]: "b" is not above "m"/);
    // The same job from the environment: shard 1 of 4.
    const fromEnv = run(['--resource', 'uploads'], { JOB_COMPLETION_INDEX: '1', REAPER_SHARDS: '4' });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(JSON.parse(fromEnv.stdout).resources[0].scanned).toBe(10);
  });

  it('records the job and shard with the run, and pushes each shard to its own Pushgateway group', async () => {
    const world = await buildWorld();
    const store = await SqliteStateStore.open(path.join(world.dir, 'state.db'));
    cleanups.push(() => store.close());
    const manifest = parseManifest(world.manifestText(`sqlite:${path.join(world.dir, 'state.db')}`), { file: 'shard.yaml', baseDir: world.dir });
    const pushes: { url: string; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        pushes.push({ url: req.url ?? '', body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
    const gateway = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const io = { signal: undefined } as unknown as CliIO;
    for (const index of [0, 1]) {
      const doc = await runAudit(manifest, { store, shard: { index, count: 4 }, job: 'nightly-1' });
      expect(doc.job).toEqual({ id: 'nightly-1', shard: `${index}/4` });
      await writeOutputs(io, { pushgateway: gateway, pushgatewayJob: 'reaper' }, { doc, gates: [], durationSeconds: doc.durationSeconds });
    }
    expect(pushes.map((p) => p.url)).toEqual(['/metrics/job/reaper/shard/0', '/metrics/job/reaper/shard/1']);
    expect(pushes[1]!.body).toContain('reaper_shard_info{job_id="nightly-1",shard="1",shards="4"} 1');
    // Store-wide figures come from shard 0 alone; per-type figures from every shard.
    expect(pushes[0]!.body).toContain('reaper_leases{');
    expect(pushes[1]!.body).not.toContain('reaper_leases{');
    expect(pushes[1]!.body).toContain('reaper_resources{resource="uploads"');

    const runs = await store.listRuns({ limit: 2 });
    expect(runs.map((r) => (r.summary as { job?: unknown }).job)).toEqual([
      { id: 'nightly-1', shard: '1/4' },
      { id: 'nightly-1', shard: '0/4' },
    ]);
    expect(runsTable(runs)).toMatch(/job[\s\S]*nightly-1 shard 1\/4/);
  });

  it('without a job id, holds maxDeletesPerRun for the whole job by static shares: each shard plans within its share', async () => {
    const dir = testTempDir('reaper-shard-cap-');
    for (let i = 0; i < 40; i++) {
      mkdirSync(path.join(dir, 'scratch', `o${i}`), { recursive: true });
      writeFileSync(path.join(dir, 'scratch', `o${i}`, 'f'), 'x');
    }
    const manifest = parseManifest(scratchManifest(`sqlite:${path.join(dir, 'state.db')}`, 'maxDeletesPerRun: 12'), { file: 'cap.yaml', baseDir: dir });
    // 40 orphans over 4 shards, about 10 each: each over its share of 12 / 4 = 3, though under 12.
    for (const index of [0, 1, 2, 3]) {
      await expect(runReap(manifest, { execute: true, shard: { index, count: 4 } })).rejects.toThrow(/exceeds maxDeletesPerRun 3 \(this shard's share: maxDeletesPerRun 12 over 4 shards\)/);
    }
    const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
    cleanups.push(() => store.close());
    expect(await store.countTombstones('scratch')).toMatchObject({ marked: 0 });
  });

  it('a shard killed mid-sweep holds up only itself, and its rerun converges', async () => {
    const dir = testTempDir('reaper-shard-kill-');
    scratchTree(dir);
    const stateUrl = await freshPgDatabase(cleanups);
    const file = path.join(dir, 'reaper.yaml');
    writeFileSync(file, scratchManifest(`"${stateUrl}"`, 'grace: 1s, batchSize: 2'));
    const observer = await openStateStore(stateUrl);
    cleanups.push(() => observer.close());
    const reap = (shard: string, env: Record<string, string> = {}) => reaper(['reap', '-c', file, '--execute', '--lock-ttl', '2s', '--output', 'json', '--shard', shard], { cwd: dir, env });
    const present = (top: string) => ['1', '2', '3'].filter((leaf) => existsSync(path.join(dir, 'scratch', top, leaf))).length;
    const tops = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const ofShard1 = tops.filter((top) => fnv1a(top) % 4 === 1);
    expect(ofShard1.length, 'the fixture gives shard 1 some entries').toBeGreaterThan(0);

    expect(reap('1/4').code).toBe(0); // marks shard 1's orphans
    await waitStoreTime(observer, 1_100);
    const killed = reap('1/4', { REAPER_FAILPOINT: 'after-journal' });
    expect(killed.code, 'killed by its failpoint').toBeNull();
    const deleting = async () => (await observer.findTombstones({ resource: 'scratch', states: ['deleting'] })).map((t) => t.resourceId).sort();
    const inFlight = await deleting();
    expect(inFlight.length).toBeGreaterThan(0);

    // Shard 0 is not held up by the dead shard's lock, and leaves its batch alone: within the
    // lock ttl the dead run may be a frozen one, its delete still to come.
    const other = reap('0/4');
    expect(other.code, other.stderr).toBe(0);
    expect(await deleting()).toEqual(inFlight);
    // Once the dead run's lock has run out, shard 1's rerun resolves the journal and finishes.
    await waitStoreTime(observer, 2_100);
    const rerun = reap('1/4');
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await observer.pendingBatches('scratch')).toEqual([]);
    for (const top of ofShard1) expect(present(top), top).toBe(0);
    expect(present('live')).toBe(3);
    // Shards 2 and 3 never ran: their entries are untouched and unmarked.
    const untouched = tops.filter((top) => fnv1a(top) % 4 >= 2);
    for (const top of untouched) expect(present(top), top).toBe(3);
  });
  it('holds maxDeletesPerRun for a whole job of 4 concurrent shards by claims on the store: within the cap, each orphan deleted once', async () => {
    const { manifest, observer, withCap } = await reapWorld();
    const types = ['uploads', 'jobs', 'blobs'] as const;
    const orphans = (await audit(manifest, observer, null)).ids.filter((id) => types.some((t) => id.startsWith(`${t}/`)));
    const marking = await reapJob(manifest, 'mark-1', types);
    expect(marking.refused).toEqual([]);
    expect(marking.done.reduce((n, r) => n + r.outcomes.marked, 0)).toBe(orphans.length);
    await waitStoreTime(observer, 1_100);

    // Each type swept by a job whose cap is above what any one shard holds of it, and below
    // what the 4 hold together: the shards that claim first sweep, the others are refused.
    const caps = { uploads: 12, jobs: 3, blobs: 16 };
    for (const type of types) {
      const cap = caps[type];
      const job = `sweep-${type}`;
      const { done, refused } = await reapJob(withCap(cap), job, [type]);
      const deleted = done.map((r) => r.outcomes.deleted);
      expect(done.length, `${type}: some shard swept`).toBeGreaterThan(0);
      expect(refused.length, `${type}: some shard was refused`).toBeGreaterThan(0);
      for (const error of refused) expect(error.message).toMatch(new RegExp(`${type}: \\d+ to mark or sweep exceeds what is left of job ${job}'s maxDeletesPerRun ${cap}: its shards hold \\d+`));
      expect(deleted.reduce((a, b) => a + b, 0), `${type}: within the job's cap`).toBeLessThanOrEqual(cap);
      // Not a static share: one shard used more than ⌊cap / 4⌋.
      expect(Math.max(...deleted)).toBeGreaterThan(Math.floor(cap / 4));
      const held = await observer.claimJobDeletes({ job, resource: type, shard: 'observer', runId: 'observer', want: 0, cap });
      expect(held.claimed).toBeLessThanOrEqual(cap);
    }

    // A later job, its cap open, sweeps the rest; over the jobs each orphan was deleted exactly once.
    expect((await reapJob(manifest, 'sweep-rest', types)).refused).toEqual([]);
    const deletedIds: string[] = [];
    for (const type of types) {
      for (const entry of await observer.journal({ resource: type })) if (entry.outcome === 'deleted') deletedIds.push(`${type}/${entry.resourceId}`);
      expect(await observer.countTombstones(type)).toMatchObject({ marked: 0, deleting: 0 });
    }
    expect(deletedIds.length, 'no orphan deleted twice').toBe(new Set(deletedIds).size);
    expect(deletedIds.sort()).toEqual([...orphans].sort());
  });

  it('judges the registry-outage breaker once per job: a trip stops every shard, a healthy verdict is checked against its counts', async () => {
    const dir = testTempDir('reaper-shard-breaker-');
    for (const top of ['p', 'q', 'r', 's', 'x', 'y', 'z', 'w']) {
      mkdirSync(path.join(dir, 'scratch', top), { recursive: true });
      writeFileSync(path.join(dir, 'scratch', top, 'f'), 'x');
    }
    const stateUrl = await freshPgDatabase(cleanups);
    const text = `version: 1
state: "${stateUrl}"
defaults: { minAge: 0s, grace: 1h, maxDeleteFraction: 1, breaker: { maxDrop: 0.5, minLiveKeys: 1 } }
owners:
  - leases: {}
resources:
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)/" }
`;
    const manifest = parseManifest(text, { file: 'breaker.yaml', baseDir: dir });
    const observer = await openStateStore(stateUrl);
    cleanups.push(() => observer.close());
    const held = new Map<string, string>();
    const hold = async (keys: string[]) => {
      for (const key of keys) held.set(key, (await observer.acquireLease({ key, holder: 'test', ttlMs: 600_000 })).leaseId);
    };
    const drop = async (keys: string[]) => {
      for (const key of keys) await observer.releaseLease(held.get(key)!);
    };
    const shard = (job: string, index: number) => runReap(manifest, { execute: true, shard: { index, count: 2 }, job });
    await hold(['p', 'q', 'r', 's']);
    await runReap(manifest, { execute: true }); // the baseline: 4 live keys

    // Shard 0 judges the registry healthy; then 3 of the 4 keys go before shard 1 starts: the
    // healthy verdict is not taken on trust, shard 1 judges its own counts against the 4 shard 0
    // saw and trips; with a fourth key still held, a smaller drop passes.
    const healthy = await shard('healthy', 0);
    await drop(['p', 'q', 'r']);
    await expect(shard('healthy', 1)).rejects.toThrow(new RegExp(`leases fell from 4 to 1 live keys .*\\(against the counts job healthy's run ${healthy.runId} judged\\)`));
    await hold(['p', 'q']);
    const passed = await shard('healthy', 1);
    expect(passed.sources).toEqual({ leases: 3 });
    const [second] = await observer.listRuns({ job: 'healthy', limit: 1 });
    expect(second).toMatchObject({ runId: passed.runId, shard: '1/2', status: 'ok', sourceCounts: { leases: 3 } });
    await drop(['p', 'q']);

    // Shard 0 of the next job trips (the registry fell to 1 of the last reap's 3); the keys come
    // back: shard 1 would judge the registry healthy, but adopts the trip.
    const first = await shard('outage', 0).catch((error: Error) => error);
    expect(first).toBeInstanceOf(Error);
    expect((first as Error).message).toMatch(/registry-outage breaker: nothing reaped[\s\S]*leases fell from 3 to 1/);
    await hold(['p', 'q', 'r']);
    const verdict = await observer.jobVerdict('outage', 3_600_000);
    await expect(shard('outage', 1)).rejects.toThrow(new RegExp(`leases fell from 3 to 1 live keys .*\\(judged for job outage by its run ${verdict!.runId}\\)`));
    // An unsharded run judges for itself, and the registry is healthy again.
    expect((await runReap(manifest, { execute: true })).errors).toEqual([]);
  });

  it('a shard of a job killed mid-sweep is rerun: it resumes its run, keeps its claim, and converges', async () => {
    const dir = testTempDir('reaper-shard-resume-');
    scratchTree(dir);
    const stateUrl = await freshPgDatabase(cleanups);
    const observer = await openStateStore(stateUrl);
    cleanups.push(() => observer.close());
    const tops = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const ofShard1 = tops.filter((top) => fnv1a(top) % 4 === 1);
    const orphans = ofShard1.length * 3;
    expect(orphans, 'the fixture gives shard 1 three sweep batches').toBe(6);
    const open = path.join(dir, 'open.yaml');
    const tight = path.join(dir, 'tight.yaml');
    writeFileSync(open, scratchManifest(`"${stateUrl}"`, 'grace: 1s, batchSize: 2'));
    // The sweep job's cap is exactly shard 1's orphans: the killed run claims all of it.
    writeFileSync(tight, scratchManifest(`"${stateUrl}"`, `grace: 1s, batchSize: 2, maxDeletesPerRun: ${orphans}`));
    const reap = (file: string, job: string, env: Record<string, string> = {}) =>
      reaper(['reap', '-c', file, '--execute', '--lock-ttl', '2s', '--output', 'json', '--shard', '1/4', '--job', job], { cwd: dir, env });
    const present = (top: string) => ['1', '2', '3'].filter((leaf) => existsSync(path.join(dir, 'scratch', top, leaf))).length;

    const marked = reap(open, 'mark-1');
    expect(marked.code, marked.stderr).toBe(0);
    await waitStoreTime(observer, 1_100);
    // Killed after the second batch's deletes, before their outcomes are recorded.
    const killed = reap(tight, 'sweep-1', { REAPER_FAILPOINT: 'after-delete:2' });
    expect(killed.code, `killed by its failpoint: ${killed.stderr}`).toBeNull();
    const [dead] = await observer.listRuns({ job: 'sweep-1' });
    expect(await observer.loadCheckpoint(dead!.runId, 'scratch', 'sweep')).toBeDefined();

    await waitStoreTime(observer, 2_100);
    const rerun = reap(tight, 'sweep-1');
    expect(rerun.code, rerun.stderr).toBe(0);
    for (const top of ofShard1) expect(present(top), top).toBe(0);
    expect(present('live')).toBe(3);
    for (const top of tops.filter((t) => !ofShard1.includes(t))) expect(present(top), top).toBe(3);
    const deleted = (await observer.journal({ resource: 'scratch' })).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId);
    expect(deleted.length, 'each orphan deleted once').toBe(orphans);
    expect(new Set(deleted).size).toBe(orphans);
    // The rerun continued the killed run (its checkpoints, its claim: the job never held more than its cap).
    const runs = await observer.listRuns({ job: 'sweep-1' });
    expect(runs.map((r) => [r.status, r.shard])).toEqual([
      ['ok', '1/4'],
      ['abandoned', '1/4'],
    ]);
    expect((runs[0]!.summary as { job?: unknown }).job).toEqual({ id: 'sweep-1', shard: '1/4', resumes: dead!.runId });
    const held = await observer.claimJobDeletes({ job: 'sweep-1', resource: 'scratch', shard: 'observer', runId: 'observer', want: 0, cap: orphans });
    expect(held).toMatchObject({ claimed: orphans, cap: orphans });
    // `reaper runs --job` lists the job's runs, with the shard, the killed one too.
    const listed = reaper(['runs', '-c', tight, '--job', 'sweep-1', '--output', 'json'], { cwd: dir });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { runId: string; job: string; shard: string }[]).map((r) => [r.runId, r.job, r.shard])).toEqual(runs.map((r) => [r.runId, 'sweep-1', '1/4']));
    const table = reaper(['runs', '-c', tight, '--job', 'sweep-1', '--output', 'table'], { cwd: dir, env: { COLUMNS: '200' } });
    expect(table.stdout).toMatch(/abandoned[\s\S]*sweep-1 shard 1\/4/);
    // The job id used again for a new execution: refused before anything is read or marked.
    // Refused as often as it is tried: the refusal is a run of the shard too, and never one to resume.
    for (let attempt = 0; attempt < 2; attempt++) {
      const again = reap(open, 'sweep-1');
      expect(again.code, again.stderr).toBe(4);
      expect(again.stderr).toMatch(new RegExp(`job sweep-1's shard 1/4 already ran to the end \\(run ${runs[0]!.runId}, .*give the next execution its own id`));
    }
    expect((await observer.listRuns({ job: 'sweep-1' })).map((r) => r.status)).toEqual(['refused', 'refused', 'ok', 'abandoned']);
  });
});
