/**
 * `reaper validate` checks, read-only, every part an audit and a reap will touch: the
 * state store (reachable; its schema — or that the first run creates it), the leases
 * source, each resource type's first page, and for S3 what a reap relies on. Through the
 * built CLI, on the real servers.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { reaperSync } from './support/cli.js';
import { freshBucket, freshMysqlDatabase, freshPgDatabase, pgQuery, runCleanups, s3Settings, serviceAvailable, uniqueName } from './support/services.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

interface Validation {
  ok: boolean;
  checks: { what: string; ok: boolean; status: 'ok' | 'warn' | 'fail'; detail: string }[];
}

function sandbox(state: string, extra: string[] = []): { dir: string; manifest: string } {
  const dir = testTempDir('reaper-validate-');
  mkdirSync(path.join(dir, 'scratch'));
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      `state: "${state}"`,
      'owners: [{ leases: {} }, { static: [platform] }]',
      'resources:',
      '  - name: scratch',
      '    fs: { path: ./scratch }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      ...extra,
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

function validate(dir: string, manifest: string): { code: number | null; doc: Validation; check: (what: string) => { ok: boolean; detail: string } } {
  const r = reaperSync(['validate', '-c', manifest, '--output', 'json'], { cwd: dir, env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  const doc = JSON.parse(r.stdout) as Validation;
  return {
    code: r.code,
    doc,
    check: (what) => {
      const found = doc.checks.find((c) => c.what === what);
      if (!found) throw new Error(`no check of ${what}: ${r.stdout}`);
      return found;
    },
  };
}

/** The URL of a database on the same server that does not exist. */
function absentDatabase(url: string): string {
  const u = new URL(url);
  u.pathname = `/${uniqueName('absent').toLowerCase()}`;
  return u.toString();
}

describe('reaper validate', () => {
  it('says a SQLite store that does not exist will be created, and does not create it', () => {
    const { dir, manifest } = sandbox('sqlite:.reaper/state.db');
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    expect(v.check('state store')).toMatchObject({ ok: true, detail: expect.stringContaining('does not exist yet; the first audit or reap creates it') });
    // No leases yet: fewer than minLiveKeys (1), so a reap would refuse — a warning, not a failure (exit 0).
    expect(v.check('leases')).toMatchObject({ ok: true, status: 'warn', detail: expect.stringMatching(/^0 live key\(s\): the state store holds no leases yet; fewer than minLiveKeys \(1\): a reap refuses/) });
    expect(v.check('scratch')).toMatchObject({ ok: true, status: 'ok' });
    expect(v.doc.ok).toBe(true);
    const table = reaperSync(['validate', '-c', manifest, '--output', 'table'], { cwd: dir });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^WARN leases: 0 live key\(s\).*a reap refuses/m);
    expect(table.stdout).not.toMatch(/^ok +leases/m);
    expect(existsSync(path.join(dir, '.reaper'))).toBe(false);
  });

  it('counts the live leases of an existing SQLite store', () => {
    const { dir, manifest } = sandbox('sqlite:.reaper/state.db');
    expect(reaperSync(['lease', 'acquire', 'session:a', '--ttl', '10m', '-c', manifest], { cwd: dir }).code).toBe(0);
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    expect(v.check('state store').detail).toMatch(/reachable, schema version \d+/);
    expect(v.check('leases')).toEqual({ what: 'leases', ok: true, status: 'ok', detail: '1 live key(s)' });
  });

  it('warns of a source with fewer live keys than minLiveKeys that a reap will refuse (the breaker), and exits 0', () => {
    const { dir, manifest } = sandbox('sqlite:.reaper/state.db');
    const acquired = reaperSync(['lease', 'acquire', 'session:a', '--ttl', '10m', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(reaperSync(['lease', 'release', (JSON.parse(acquired.stdout) as { leaseId: string }).leaseId, '-c', manifest], { cwd: dir }).code).toBe(0);
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('resources:\n', 'defaults: { breaker: { minLiveKeys: 2 } }\nresources:\n'));
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    const refuses = (n: number) => `${n} live key(s); fewer than minLiveKeys (2): a reap refuses until more are live (the registry-outage breaker; --allow-liveness-drop for a deliberate run)`;
    expect(v.check('leases')).toEqual({ what: 'leases', ok: true, status: 'warn', detail: refuses(0) });
    expect(v.check('static#1')).toEqual({ what: 'static#1', ok: true, status: 'warn', detail: refuses(1) });
    const table = reaperSync(['validate', '-c', manifest, '--output', 'table'], { cwd: dir });
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`WARN leases: ${refuses(0)}\n`);
    expect(table.stdout).toContain(`WARN static#1: ${refuses(1)}\n`);
  });

  it.skipIf(!serviceAvailable('postgres'))('fails a PostgreSQL store whose database does not exist, and the leases it holds', async () => {
    const { dir, manifest } = sandbox(absentDatabase(await freshPgDatabase(cleanups)));
    const v = validate(dir, manifest);
    expect(v.code).toBe(3);
    expect(v.doc.ok).toBe(false);
    expect(v.check('state store')).toMatchObject({ ok: false, detail: expect.stringMatching(/does not exist/) });
    expect(v.check('leases')).toMatchObject({ ok: false, detail: expect.stringContaining('cannot be read') });
    expect(v.check('scratch').ok).toBe(true);
  });

  it.skipIf(!serviceAvailable('postgres'))('says an empty PostgreSQL database gets its tables at the first run, and creates none', async () => {
    const url = await freshPgDatabase(cleanups);
    const { dir, manifest } = sandbox(url);
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    expect(v.check('state store').detail).toContain("without reaper's tables yet");
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'");
    await client.end();
    expect(rows[0].n).toBe(0);
  });

  it.skipIf(!serviceAvailable('postgres'))('says which archive table a reap of a SQL type copies deleted rows into, and that the first delete creates it', async () => {
    const url = await freshPgDatabase(cleanups);
    const sql = (text: string) => pgQuery(url, text);
    await sql('CREATE TABLE uploads (id int PRIMARY KEY, session_id text, created_at timestamptz NOT NULL DEFAULT now())');
    const { dir, manifest } = sandbox('sqlite:.reaper/state.db', [
      '  - name: upload-rows',
      '    postgres: { connection: app, table: uploads, id: id, createdAt: created_at }',
      '    owner: { column: session_id }',
      '    archive: true',
    ]);
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('resources:\n', `connections: { app: { kind: postgres, url: "${url}" } }\nresources:\n`));
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    expect(v.check('upload-rows')).toMatchObject({
      ok: true,
      detail: 'postgres public.uploads is readable; archive: deleted rows are copied into public.uploads_reaper_archive, which the first reap that deletes creates if it does not exist',
    });
    expect(v.check('scratch').detail).not.toContain('archive');
    expect(await sql("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'uploads_reaper_archive'")).toEqual([{ n: 0 }]);
  });

  it.skipIf(!serviceAvailable('mysql'))('fails a MySQL store it cannot enter', async () => {
    const { dir, manifest } = sandbox(absentDatabase(await freshMysqlDatabase(cleanups)));
    const v = validate(dir, manifest);
    expect(v.code).toBe(3);
    expect(v.check('state store')).toMatchObject({ ok: false, detail: expect.stringMatching(/Unknown database/i) });
  });

  it.skipIf(!serviceAvailable('s3'))('shows what a reap of an S3 type relies on, without writing to the bucket', async () => {
    const cfg = s3Settings();
    const { client: s3, bucket } = await freshBucket(cleanups, 'validate');
    const { dir, manifest } = sandbox('sqlite:.reaper/state.db', [
      '  - name: blobs',
      `    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }`,
      '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
      'connections:',
      `  blobs: { kind: s3, endpoint: "${cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }`,
    ]);
    const v = validate(dir, manifest);
    expect(v.code).toBe(0);
    expect(v.check('blobs').detail).toContain('versioning never enabled');
    expect(v.check('blobs').detail).toContain('deletes: probed at the first reap --execute');
    expect((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount ?? 0).toBe(0);
  });
});
