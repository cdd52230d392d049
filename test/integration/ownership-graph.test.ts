/**
 * The ownership graph across real backends: S3 thumbnails owned by PostgreSQL rows,
 * files owned by MariaDB rows, and a two-table cycle that is reaped only without a root.
 * The thumbnails' reap keeps its state in MariaDB: a whole mark → write-ahead → delete run on
 * the MySQL state store (the others use SQLite).
 */
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/manifest/load.js';
import { runAudit } from '../../src/run/audit.js';
import { runExplain } from '../../src/run/explain.js';
import { runReap } from '../../src/run/reap.js';
import { openStateStore } from '../../src/state/open.js';
import type { StateStore } from '../../src/state/types.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, s3Settings, serviceAvailable, uniqueName } from './support/services.js';
import { waitStoreTime } from './support/reap-fixture.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

async function pgExec(url: string, sql: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function pgIds(url: string, table: string): Promise<string[]> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(`SELECT id::text AS id FROM ${table} ORDER BY id`)).rows.map((r: { id: string }) => r.id);
  } finally {
    await c.end();
  }
}

/** The state store at `url` (by default SQLite in `dir`), holding a lease on each of `liveKeys`. */
async function store(dir: string, liveKeys: string[], url = `sqlite:${path.join(dir, 'state.db')}`): Promise<StateStore> {
  const s = await openStateStore(url);
  for (const key of liveKeys) await s.acquireLease({ key, holder: 'test', ttlMs: 3_600_000 });
  cleanups.push(() => s.close());
  return s;
}

function tmp(): string {
  return testTempDir('reaper-graph-');
}

describe.skipIf(!serviceAvailable('postgres') || !serviceAvailable('s3') || !serviceAvailable('mysql'))('S3 thumbnails owned by PostgreSQL rows, state on MySQL', () => {
  it('are live while their row is live, unreachable when the row is dead or missing', async () => {
    const db = await freshPgDatabase(cleanups);
    await pgExec(
      db,
      `CREATE TABLE images (id int PRIMARY KEY, session_id text, created_at timestamptz NOT NULL);
       INSERT INTO images VALUES (1, 'alive', now() - interval '1 hour'), (2, 'gone', now() - interval '1 hour');`,
    );
    const s3cfg = s3Settings();
    const s3 = new S3Client({ endpoint: s3cfg.endpoint, region: s3cfg.region, forcePathStyle: true, credentials: { accessKeyId: s3cfg.accessKeyId, secretAccessKey: s3cfg.secretAccessKey } });
    const bucket = uniqueName('graph').toLowerCase().replace(/_/g, '-');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    cleanups.push(async () => {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      s3.destroy();
    });
    for (const id of ['1', '2', '3']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `thumbs/${id}.jpg`, Body: 'x' }));

    const dir = tmp();
    const stateUrl = await freshMysqlDatabase(cleanups);
    const st = await store(dir, ['session:alive'], stateUrl);
    const manifest = parseManifest(
      `version: 1
state: "${stateUrl}"
defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }
connections:
  blobs: { kind: s3, endpoint: "${s3cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
  db: { kind: postgres, url: "${db}" }
resources:
  - name: images
    postgres: { connection: db, table: images, id: id, createdAt: created_at }
    owner: { column: session_id, key: "session:{value}" }
  - name: thumbnails
    s3: { connection: blobs, bucket: ${bucket}, prefix: thumbs/ }
    owner: { ref: images, keyPattern: "^thumbs/(?<owner>[^/.]+)" }
`,
      { file: 'graph.yaml', baseDir: dir },
    );
    const doc = await runAudit(manifest, { store: st });
    const byId = new Map(doc.findings.map((f) => [`${f.resource}/${f.id}`, f]));
    expect(byId.get('images/1')).toBeUndefined(); // live
    expect(byId.get('images/2')).toMatchObject({ status: 'orphaned', reason: 'owner-dead', owner: 'session:gone' });
    expect(byId.get('thumbnails/thumbs/1.jpg')).toBeUndefined(); // live through images/1
    expect(byId.get('thumbnails/thumbs/2.jpg')).toMatchObject({ status: 'orphaned', reason: 'unreachable', owner: 'images/2' });
    expect(byId.get('thumbnails/thumbs/3.jpg')).toMatchObject({ status: 'orphaned', reason: 'unreachable', owner: 'images/3' });
    expect(doc.resources.find((r) => r.name === 'thumbnails')).toMatchObject({ scanned: 3, live: 1, orphaned: 2 });

    const why = await runExplain(manifest, 'thumbnails', 'thumbs/1.jpg', { store: st });
    expect(why.finding?.status).toBe('live');
    const owner = why.owners[0]!;
    expect(owner.kind).toBe('ref');
    expect(owner.ref).toMatchObject({ resource: 'images', id: '1', found: true, finding: { status: 'live' } });

    // Reaping: dependents are handled before their owners; the thumbnail of the live row stays.
    const dry = await runReap(manifest, { execute: false, store: st });
    expect(dry.resources.map((r) => r.name)).toEqual(['thumbnails', 'images']);
    const marked = await runReap(manifest, { execute: true, store: st });
    expect(marked.outcomes.marked).toBe(3);
    await waitStoreTime(st, 1_100);
    const swept = await runReap(manifest, { execute: true, store: st });
    expect(swept.outcomes.deleted).toBe(3);
    // The write-ahead journal in MySQL: each delete's intent, then its outcome.
    const journal = await st.journal({});
    expect(journal.filter((e) => e.outcome === 'deleted').map((e) => `${e.resource}/${e.resourceId}`).sort()).toEqual(['images/2', 'thumbnails/thumbs/2.jpg', 'thumbnails/thumbs/3.jpg']);
    expect(await pgIds(db, 'images')).toEqual(['1']);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect((left.Contents ?? []).map((o) => o.Key)).toEqual(['thumbs/1.jpg']);
  });
});

describe.skipIf(!serviceAvailable('mysql'))('files owned by MariaDB rows', () => {
  it('follow their row: live, or unreachable when the row is orphaned or missing', async () => {
    const db = await freshMysqlDatabase(cleanups);
    const mysql = await import('mysql2/promise');
    const conn = await mysql.createConnection({ uri: db });
    await conn.query('CREATE TABLE jobs (id INT PRIMARY KEY, owner VARCHAR(64), created_at DATETIME(3) NOT NULL)');
    await conn.query('INSERT INTO jobs VALUES (10, ?, NOW(3) - INTERVAL 1 HOUR), (20, ?, NOW(3) - INTERVAL 1 HOUR)', ['svc-a', 'svc-b']);
    await conn.end();

    const dir = tmp();
    const old = new Date(Date.now() - 3_600_000);
    for (const f of ['10/out.csv', '20/out.csv', '30/out.csv']) {
      const file = path.join(dir, 'exports', f);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, 'x');
      utimesSync(file, old, old);
    }
    const st = await store(dir, ['svc-a']);
    const manifest = parseManifest(
      `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s }
connections:
  legacy: { kind: mysql, url: "${db}" }
resources:
  - name: jobs
    mysql: { connection: legacy, table: jobs, id: id, createdAt: created_at }
    owner: { column: owner }
  - name: exports
    fs: { path: ./exports }
    owner: { ref: jobs, pathPattern: "^(?<owner>[0-9]+)/" }
`,
      { file: 'graph.yaml', baseDir: dir },
    );
    const doc = await runAudit(manifest, { store: st });
    const statuses = Object.fromEntries(doc.findings.map((f) => [`${f.resource}/${f.id}`, `${f.status}/${f.reason}`]));
    expect(statuses).toEqual({
      'jobs/20': 'orphaned/owner-dead',
      'exports/20/out.csv': 'orphaned/unreachable',
      'exports/30/out.csv': 'orphaned/unreachable',
    });
  });
});

describe.skipIf(!serviceAvailable('postgres'))('a two-table ownership cycle', () => {
  async function cycle(liveRoot: boolean) {
    const db = await freshPgDatabase(cleanups);
    await pgExec(
      db,
      `CREATE TABLE a (id int PRIMARY KEY, b_id text, created_at timestamptz NOT NULL);
       CREATE TABLE b (id int PRIMARY KEY, a_id text, session text, created_at timestamptz NOT NULL);
       INSERT INTO a VALUES (1, '1', now() - interval '1 hour');
       INSERT INTO b VALUES (1, '1', 'root', now() - interval '1 hour');`,
    );
    const dir = tmp();
    // An unrelated live lease keeps the registry-outage breaker quiet when the root is dead.
    const st = await store(dir, liveRoot ? ['root', 'bystander'] : ['bystander']);
    const manifest = parseManifest(
      `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }
connections:
  db: { kind: postgres, url: "${db}" }
resources:
  - name: a
    postgres: { connection: db, table: a, id: id, createdAt: created_at }
    owner: { ref: b, column: b_id }
  - name: b
    postgres: { connection: db, table: b, id: id, createdAt: created_at }
    owner: [{ ref: a, column: a_id }, { column: session }]
`,
      { file: 'cycle.yaml', baseDir: dir },
    );
    await runReap(manifest, { execute: true, store: st });
    await new Promise((r) => setTimeout(r, 1_100));
    const report = await runReap(manifest, { execute: true, store: st });
    return { report, a: await pgIds(db, 'a'), b: await pgIds(db, 'b') };
  }

  it('is reaped when nothing outside the cycle keeps it alive', async () => {
    const { report, a, b } = await cycle(false);
    expect(report.outcomes.deleted).toBe(2);
    expect(a).toEqual([]);
    expect(b).toEqual([]);
  });

  it('is kept when one member has a live root', async () => {
    const { report, a, b } = await cycle(true);
    expect(report.outcomes.deleted).toBe(0);
    expect(report.outcomes.marked).toBe(0);
    expect(a).toEqual(['1']);
    expect(b).toEqual(['1']);
  });
});
