/**
 * What a reap says when it cannot do its work, on the real servers:
 * - deletes that fail name their cause (the first distinct errors, counted), not only how
 *   many failed: here PostgreSQL kills the connection in the middle of the DELETE;
 * - `requireVersioning: true` on an S3 type refuses to reap (exit 4, nothing marked) from a
 *   bucket whose versioning is not enabled, and `validate` reports it (moto).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { BackendError, ExitCode, SafetyError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/load.js';
import type { ReapReport } from '../../src/report/reap-report.js';
import { runReap } from '../../src/run/reap.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { freshBucket } from './support/s3-bucket.js';
import { freshPgDatabase, runCleanups, s3Settings, serviceAvailable } from './support/services.js';

const BIN = path.resolve(__dirname, '../../bin/reaper');
const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

/** A manifest file in a fresh directory, with its SQLite state store beside it. */
function manifestFile(body: string): { dir: string; file: string } {
  const dir = testTempDir('reaper-messages-');
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(file, `version: 1\nowners: [{ static: [platform] }]\ndefaults: { minAge: 0s, grace: 0s, maxDeleteFraction: 1 }\n${body}`);
  return { dir, file };
}

async function store(dir: string): Promise<SqliteStateStore> {
  const s = await SqliteStateStore.open(path.join(dir, '.reaper', 'state.db'));
  cleanups.push(() => s.close());
  return s;
}

describe.skipIf(!serviceAvailable('postgres'))('failed deletes', () => {
  it('name their cause when the connection is killed during the DELETE', async () => {
    const url = await freshPgDatabase(cleanups);
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    cleanups.push(() => admin.end());
    await admin.query(`CREATE TABLE items (id bigint PRIMARY KEY, owner text, created_at timestamptz NOT NULL DEFAULT now() - interval '1 hour');
      INSERT INTO items (id, owner) SELECT g, 'gone' FROM generate_series(1, 5) g`);
    const { file } = manifestFile(`connections:
  db: { kind: postgres, url: "${url}" }
resources:
  - name: items
    postgres: { connection: db, table: items, id: id, createdAt: created_at }
    owner: { column: owner }
`);
    const manifest = await loadManifest(file);
    const first = await runReap(manifest, { execute: true });
    expect(first.outcomes.marked).toBe(5);

    // Every DELETE on the table now kills its own connection.
    await admin.query(`CREATE FUNCTION kill_own_connection() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN OLD; END $$;
      CREATE TRIGGER kill_own_connection BEFORE DELETE ON items FOR EACH ROW EXECUTE FUNCTION kill_own_connection()`);
    const error = await runReap(manifest, { execute: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    const report = (error as { report: ReapReport }).report;
    expect(report.outcomes.failed).toBe(5);
    expect(report.errors).toEqual([
      'items: 5 delete(s) failed (postgres public.items (connection "db"): terminating connection due to administrator command ×5); the batch stopped and the rest of items waits for the next run',
    ]);
    expect((await admin.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(5);
  });
});

describe('a state-store write that fails mid-sweep', () => {
  it('still gives the report of what was recorded, records the run failed with it, and the next run reports the deletes in flight once', async () => {
    const { dir, file } = manifestFile(`resources:
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)/" }
`);
    for (const name of ['gone/a.part', 'gone/b.part', 'gone/c.part', 'platform/keep.part']) {
      mkdirSync(path.dirname(path.join(dir, 'scratch', name)), { recursive: true });
      writeFileSync(path.join(dir, 'scratch', name), 'data');
    }
    const manifest = await loadManifest(file);
    expect((await runReap(manifest, { execute: true })).outcomes.marked).toBe(3);

    // The batch's outcomes, written after its deletes, are refused: the deletes are done, the ledger does not say so.
    const db = new Database(path.join(dir, '.reaper', 'state.db'));
    cleanups.push(async () => void db.close());
    db.exec(`CREATE TRIGGER refuse_outcomes BEFORE UPDATE OF state ON reap_batches WHEN NEW.state = 'done' BEGIN SELECT RAISE(ABORT, 'outcomes refused by the test'); END`);
    const error = await runReap(manifest, { execute: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as Error).message).toContain('outcomes refused by the test');
    const report = (error as { report?: ReapReport }).report;
    expect(report, 'a report with the error').toBeDefined();
    expect(existsSync(path.join(dir, 'scratch/gone/a.part'))).toBe(false);
    // Not counted here: the ledger holds them as in flight, and the next run reads them back and counts them.
    expect(report!.outcomes).toMatchObject({ deleted: 0, failed: 0 });
    expect(report!.errors).toEqual([expect.stringMatching(/^applying stopped: .*outcomes refused by the test; 3 delete\(s\) of scratch were sent and their outcomes are not recorded: the next run reads them back and reports them$/)]);
    const run = await (await store(dir)).getRun(report!.runId);
    expect(run).toMatchObject({ status: 'failed', error: report!.errors[0], summary: { outcomes: report!.outcomes } });

    db.exec('DROP TRIGGER refuse_outcomes');
    const next = await runReap(manifest, { execute: true });
    expect(next.outcomes).toMatchObject({ deleted: 3, failed: 0 });
    expect(existsSync(path.join(dir, 'scratch/platform/keep.part'))).toBe(true);
  });
});

describe.skipIf(!serviceAvailable('s3'))('requireVersioning (S3)', () => {
  const cfg = () => s3Settings();

  async function bucketWith(versioning: 'Enabled' | 'Suspended' | null): Promise<string> {
    const { s3, bucket } = await freshBucket(cleanups, versioning);
    for (const key of ['tmp/gone/a.bin', 'tmp/gone/b.bin']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'same bytes' }));
    return bucket;
  }

  const manifestFor = (bucket: string) =>
    manifestFile(`connections:
  blobs: { kind: s3, endpoint: "${cfg().endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
resources:
  - name: blobs
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/, requireVersioning: true, deleteMode: per-object-if-match }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }
`);

  for (const versioning of [null, 'Suspended'] as const) {
    it(`refuses to reap from a bucket whose versioning is ${versioning === null ? 'never enabled' : 'suspended'}: exit 4, nothing marked`, async () => {
      const bucket = await bucketWith(versioning);
      const { dir, file } = manifestFor(bucket);
      const error = await runReap(await loadManifest(file), { execute: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SafetyError);
      expect((error as SafetyError).exitCode).toBe(ExitCode.safety);
      const refusal =
        `requireVersioning is set, but versioning of bucket ${bucket} is ${versioning === null ? 'not enabled' : 'suspended'}: ` +
        "without it, a key recreated with identical bytes (the same ETag) would be deleted against its predecessor's tombstone; enable versioning on the bucket";
      expect((error as Error).message).toBe(`blobs: ${refusal} (nothing was marked or deleted)`);
      expect(await (await store(dir)).countTombstones('blobs')).toMatchObject({ marked: 0, deleting: 0 });

      const validate = spawnSync(process.execPath, [BIN, 'validate', '-c', file, '--output', 'table'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
      expect(validate.status).toBe(ExitCode.runtime);
      expect(validate.stdout).toContain(`FAIL blobs: ${refusal}\n`);
    });
  }

  it('reaps from a bucket with versioning enabled', async () => {
    const bucket = await bucketWith('Enabled');
    const { dir, file } = manifestFor(bucket);
    const report = await runReap(await loadManifest(file), { execute: true });
    expect(report.outcomes.marked).toBe(2);
    expect(await (await store(dir)).countTombstones('blobs')).toMatchObject({ marked: 2 });
    const validate = spawnSync(process.execPath, [BIN, 'validate', '-c', file, '--output', 'table'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    expect(validate.stdout).toContain(`ok   blobs: s3://${bucket}/tmp/ is readable`);
    expect(validate.status).toBe(ExitCode.ok);
  });
});
