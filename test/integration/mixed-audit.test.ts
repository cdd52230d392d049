/**
 * One manifest mixing all four backends and all three liveness sources, audited against
 * the real servers: every resource classified correctly, and the per-type telemetry has
 * the same shape whatever the backend.
 */
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/manifest/load.js';
import { runAudit } from '../../src/run/audit.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, s3Settings, serviceAvailable, uniqueName } from './support/services.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const all = serviceAvailable('postgres') && serviceAvailable('mysql') && serviceAvailable('s3');

describe.skipIf(!all)('an audit of one manifest mixing s3, postgres, mysql and fs', () => {
  it('classifies every resource and reports the same telemetry shape per backend', async () => {
    // PostgreSQL: a sessions registry (the sql liveness source) and upload rows owned by sessions.
    const pgUrl = await freshPgDatabase(cleanups);
    const { default: pg } = await import('pg');
    const pgc = new pg.Client({ connectionString: pgUrl });
    await pgc.connect();
    await pgc.query(`CREATE TABLE sessions (id text PRIMARY KEY, expires_at timestamptz NOT NULL);
      INSERT INTO sessions VALUES ('s-live', now() + interval '1 hour'), ('s-expired', now() - interval '1 hour');
      CREATE TABLE uploads (id bigint PRIMARY KEY, session_id text, keep boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL);
      INSERT INTO uploads VALUES
        (1, 's-live', false, now() - interval '2 hours'),
        (2, 's-expired', false, now() - interval '2 hours'),
        (3, NULL, false, now() - interval '2 hours'),
        (4, 's-expired', true, now() - interval '2 hours'),
        (5, 's-expired', false, now());`);
    await pgc.end();

    // MariaDB: job rows owned by leased workers.
    const myUrl = await freshMysqlDatabase(cleanups);
    const mysql = await import('mysql2/promise');
    const my = await mysql.createConnection({ uri: myUrl });
    await my.query('CREATE TABLE jobs (id INT PRIMARY KEY, worker VARCHAR(64), created_at DATETIME(3) NOT NULL)');
    await my.query('INSERT INTO jobs VALUES (1, ?, NOW(3) - INTERVAL 2 DAY), (2, ?, NOW(3) - INTERVAL 2 HOUR)', ['w-live', 'w-dead']);
    await my.end();

    // S3: objects owned through a key pattern, one protected by tag.
    const cfg = s3Settings();
    const s3 = new S3Client({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } });
    const bucket = uniqueName('mixed').toLowerCase().replace(/_/g, '-');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    cleanups.push(async () => {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      s3.destroy();
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/platform/a.bin', Body: 'aa' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/s-expired/b.bin', Body: 'bbbb' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/s-expired/keep.bin', Body: 'k', Tagging: 'keep=true' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'elsewhere/c.bin', Body: 'c' }));

    // Files: scratch owned by leased workers.
    const dir = testTempDir('reaper-mixed-');
    const old = new Date(Date.now() - 3 * 3_600_000);
    for (const [file, when] of [['w-live/x.part', old], ['w-dead/y.part', old], ['stray.part', old]] as const) {
      const full = path.join(dir, 'scratch', file);
      mkdirSync(path.dirname(full), { recursive: true });
      writeFileSync(full, 'data');
      utimesSync(full, when, when);
    }

    const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
    cleanups.push(() => store.close());
    await store.acquireLease({ key: 'worker:w-live', holder: 'test', ttlMs: 3_600_000 });

    const manifest = parseManifest(
      `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s }
connections:
  blobs: { kind: s3, endpoint: "${cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
  main: { kind: postgres, url: "${pgUrl}" }
  legacy: { kind: mysql, url: "${myUrl}" }
owners:
  - leases: {}
  - sql: { connection: main, query: "SELECT id FROM sessions WHERE expires_at > now()" }
  - static: [platform]
resources:
  - name: upload-rows
    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }
    owner: { column: session_id }
    minAge: 10m
    protect: [{ where: "keep" }]
  - name: jobs
    mysql: { connection: legacy, table: jobs, id: id, createdAt: created_at }
    owner: { column: worker, key: "worker:{value}" }
    ttl: 1d
  - name: blobs
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }
    protect: [{ tag: { keep: "true" } }]
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "worker:{value}" }
`,
      { file: 'mixed.yaml', baseDir: dir },
    );
    const doc = await runAudit(manifest, { store });

    const status = Object.fromEntries(doc.findings.map((f) => [`${f.resource}/${f.id}`, `${f.status}/${f.reason}`]));
    expect(status).toEqual({
      'upload-rows/2': 'orphaned/owner-dead',
      'upload-rows/3': 'orphaned/no-owner',
      'upload-rows/4': 'protected/protect[0]',
      'upload-rows/5': 'young/min-age',
      'jobs/1': 'expired/ttl',
      'jobs/2': 'orphaned/owner-dead',
      'blobs/tmp/s-expired/b.bin': 'orphaned/owner-dead',
      'blobs/tmp/s-expired/keep.bin': 'protected/protect[0]',
      'scratch/w-dead/y.part': 'orphaned/owner-dead',
      'scratch/stray.part': 'orphaned/no-owner',
    });
    const counts = Object.fromEntries(doc.resources.map((r) => [r.name, [r.scanned, r.live, r.orphaned, r.expired, r.protected, r.young, r.unknown]]));
    expect(counts).toEqual({
      'upload-rows': [5, 1, 2, 0, 1, 1, 0],
      jobs: [2, 0, 1, 1, 0, 0, 0],
      blobs: [3, 1, 1, 0, 1, 0, 0],
      scratch: [3, 1, 2, 0, 0, 0, 0],
    });
    expect(doc.summary).toMatchObject({ scanned: 13, live: 3, orphaned: 6, expired: 1, protected: 2, young: 1, unknown: 0 });
    expect(doc.resources.find((r) => r.name === 'blobs')!.orphanBytes).toBe(4);
    expect(doc.sources).toEqual({ leases: 1, 'sql:main#1': 1, 'static#2': 1 });

    // Telemetry has one shape for every backend.
    const shapes = new Set(doc.resources.map((r) => Object.keys(r).sort().join(',')));
    expect(shapes.size).toBe(1);
    expect(new Set(doc.resources.map((r) => r.backend))).toEqual(new Set(['postgres', 'mysql', 's3', 'fs']));
  });
});
