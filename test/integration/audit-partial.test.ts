/**
 * One bad part never hides the rest (docs/safety.md §21): through the built CLI, an audit
 * reports every resource type it could read, marks what it could not — in the table, the
 * JSON document, Prometheus text, JUnit and Markdown — and exits 3; what could not be read
 * is never judged orphaned. Reap refuses what it cannot judge, per type, and reaps the rest.
 *
 * The unreadable directory is real: the tests run as root, which ignores permissions, so
 * the CLI runs as `nobody` through setpriv (as itself when the tests are not root).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { reaperSync, type CliOptions } from './support/cli.js';
import { freshBucket, freshPgDatabase, runCleanups, s3Settings, serviceAvailable, uniqueName } from './support/services.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const OLD = new Date(Date.now() - 3 * 3_600_000);
const isRoot = process.getuid?.() === 0;
const haveSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const NOBODY = { uid: 65534, gid: 65534, user: 'nobody', group: 'nogroup' };

function put(dir: string, file: string): void {
  const full = path.join(dir, file);
  mkdirSync(path.dirname(full), { recursive: true });
  writeFileSync(full, 'data');
  utimesSync(full, OLD, OLD);
}

/** Every file and directory under `dir` (and itself) owned by `nobody`, so the unprivileged CLI can write its state and quarantine. */
function giveToNobody(dir: string): void {
  if (!isRoot) return;
  chownSync(dir, NOBODY.uid, NOBODY.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) giveToNobody(full);
    else chownSync(full, NOBODY.uid, NOBODY.gid);
  }
}

interface TypeReport {
  name: string;
  status: string;
  error: string | null;
  unreadable: number;
  scanned: number;
  orphaned: number;
  unknown: number;
}

interface Doc {
  complete: boolean;
  resources: TypeReport[];
  sourceErrors: Record<string, string>;
  findings: { resource: string; id: string; status: string; reason: string | null }[];
}

const typeOf = (doc: Doc, name: string) => doc.resources.find((r) => r.name === name)!;

describe('an audit with a directory it cannot read', () => {
  it('can run the CLI as an unprivileged user (required under CI when the tests run as root)', () => {
    if (isRoot) expect(haveSetpriv, 'setpriv (util-linux) is needed to run the scan as nobody').toBe(true);
  });

  const runnable = !isRoot || haveSetpriv;
  it.skipIf(!runnable)('reports both types, counts the unreadable entries, judges none of them orphaned, exits 3; reap reaps the rest', () => {
    const base = testTempDir('reaper-partial-');
    chmodSync(base, 0o755);
    const dir = path.join(base, 'w');
    put(dir, 'scratch/alice/live.part');
    put(dir, 'scratch/bob/orphan.part');
    put(dir, 'scratch/locked/hidden.part'); // a directory that cannot be opened
    put(dir, 'scratch/nosearch/unseen.part'); // listed, but cannot be stat'ed
    put(dir, 'other/bob/orphan.part');
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        'defaults: { minAge: 1m, grace: 0s, maxDeleteFraction: 1 }',
        'owners: [{ static: [alice] }]',
        'resources:',
        '  - name: scratch',
        '    fs: { path: ./scratch }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '  - name: other',
        '    fs: { path: ./other }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '',
      ].join('\n'),
    );
    giveToNobody(dir);
    chmodSync(path.join(dir, 'scratch/locked'), 0o000);
    chmodSync(path.join(dir, 'scratch/nosearch'), 0o644);
    cleanups.push(async () => {
      chmodSync(path.join(dir, 'scratch/locked'), 0o755);
      chmodSync(path.join(dir, 'scratch/nosearch'), 0o755);
    });
    const as: CliOptions = { cwd: dir, env: { HOME: dir }, ...(isRoot ? { user: { user: NOBODY.user, group: NOBODY.group } } : {}) };

    const r = reaperSync(['audit', '-c', manifest, '--output', 'json', '--metrics-file', 'm.prom', '--junit', 'j.xml', '--summary', 's.md'], as);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('reaper: scratch: 2 entries could not be read (never judged orphaned): "locked/": cannot open the directory: EACCES (and 1 more)');
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.complete).toBe(false);
    expect(typeOf(doc, 'scratch')).toMatchObject({ status: 'partial', unreadable: 2, scanned: 3, orphaned: 1, unknown: 1 });
    expect(typeOf(doc, 'other')).toMatchObject({ status: 'ok', error: null, unreadable: 0, scanned: 1, orphaned: 1 });
    const byId = Object.fromEntries(doc.findings.map((f) => [`${f.resource}/${f.id}`, `${f.status}/${f.reason}`]));
    expect(byId).toEqual({
      'scratch/bob/orphan.part': 'orphaned/owner-dead',
      'scratch/nosearch/unseen.part': 'unknown/attributes-unreadable',
      'other/bob/orphan.part': 'orphaned/owner-dead',
    });

    const prom = readFileSync(path.join(dir, 'm.prom'), 'utf8');
    expect(prom).toContain('reaper_scan_errors{resource="scratch",backend="fs"} 1');
    expect(prom).toContain('reaper_scan_errors{resource="other",backend="fs"} 0');
    expect(prom).toContain('reaper_unreadable_resources{resource="scratch",backend="fs"} 2');
    const xml = readFileSync(path.join(dir, 'j.xml'), 'utf8');
    expect(xml).toMatch(/<testsuite name="reaper audit" tests="2" failures="0" errors="1"/);
    expect(xml).toMatch(/<testcase classname="reaper\.fs" name="scratch" time="0">\n {6}<error message="2 entries could not be read \(never judged orphaned\): &quot;locked\/&quot;: cannot open the directory: EACCES/);
    const md = readFileSync(path.join(dir, 's.md'), 'utf8');
    expect(md).toContain('1 part could not be read');
    expect(md).toContain('### Could not be read');
    expect(md).toContain('| ⚠️ scratch | fs | 3 |');

    const table = reaperSync(['audit', '-c', manifest, '--output', 'table'], as);
    expect(table.code).toBe(3);
    expect(table.stdout).toMatch(/scratch \(partial\)/);
    expect(table.stdout).toContain('could not be read:');

    // Reap: the unreadable entries are refused, the rest is marked, then swept.
    const mark = reaperSync(['reap', '-c', manifest, '--execute', '--output', 'json'], as);
    expect(mark.code).toBe(3);
    expect(mark.stderr).toContain('scratch: 2 entries could not be read (never judged orphaned): "locked/": cannot open the directory: EACCES (and 1 more); the rest of it was judged');
    const marked = JSON.parse(mark.stdout) as { resources: { name: string; outcomes: { marked: number } }[] };
    expect(Object.fromEntries(marked.resources.map((x) => [x.name, x.outcomes.marked]))).toEqual({ scratch: 1, other: 1 });
    const sweep = reaperSync(['reap', '-c', manifest, '--execute', '--output', 'json'], as);
    expect(sweep.code).toBe(3);
    expect(existsSync(path.join(dir, 'scratch/bob/orphan.part'))).toBe(false);
    expect(existsSync(path.join(dir, 'other/bob/orphan.part'))).toBe(false);
    expect(existsSync(path.join(dir, 'scratch/alice/live.part'))).toBe(true);
    chmodSync(path.join(dir, 'scratch/locked'), 0o755);
    chmodSync(path.join(dir, 'scratch/nosearch'), 0o755);
    expect(statSync(path.join(dir, 'scratch/locked/hidden.part')).isFile()).toBe(true);
    expect(statSync(path.join(dir, 'scratch/nosearch/unseen.part')).isFile()).toBe(true);
  });
});

describe.skipIf(!serviceAvailable('postgres'))('an audit whose SQL liveness source is dead', () => {
  it('reports every type, the failed source, judges its owners unknown (never orphaned), exits 3; reap still trips its breaker', async () => {
    const pgUrl = await freshPgDatabase(cleanups);
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    await client.query(`CREATE TABLE uploads (id int PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO uploads VALUES (1, 'alice', now() - interval '2 hours'), (2, 'bob', now() - interval '2 hours'), (3, NULL, now() - interval '2 hours')`);
    await client.end();
    const dead = new URL(pgUrl);
    dead.pathname = `/${uniqueName('no_such_db').toLowerCase()}`;

    const dir = testTempDir('reaper-deadsrc-');
    put(dir, 'scratch/alice/a.part');
    put(dir, 'scratch/bob/b.part');
    put(dir, 'scratch/stray.part');
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        'defaults: { minAge: 1m }',
        'connections:',
        `  main: { kind: postgres, url: "${pgUrl}" }`,
        `  registry: { kind: postgres, url: "${dead.toString()}" }`,
        'owners:',
        '  - static: [alice]',
        '  - sql: { connection: registry, query: "SELECT id FROM sessions" }',
        'resources:',
        '  - name: scratch',
        '    fs: { path: ./scratch }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '  - name: uploads',
        '    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }',
        '    owner: { column: owner }',
        '',
      ].join('\n'),
    );

    const r = reaperSync(['audit', '-c', manifest, '--output', 'json', '--metrics-file', 'm.prom', '--junit', 'j.xml'], { cwd: dir });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/reaper: liveness source sql:registry#1 failed \(the owners only it could vouch for are unknown, never orphaned\): .*does not exist/);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(Object.keys(doc.sourceErrors)).toEqual(['sql:registry#1']);
    expect(doc.sourceErrors['sql:registry#1']).not.toContain(dead.password || '\u0000');
    const byId = Object.fromEntries(doc.findings.map((f) => [`${f.resource}/${f.id}`, `${f.status}/${f.reason}`]));
    expect(byId).toEqual({
      'scratch/bob/b.part': 'unknown/liveness-unavailable',
      'scratch/stray.part': 'orphaned/no-owner',
      'uploads/2': 'unknown/liveness-unavailable',
      'uploads/3': 'orphaned/no-owner',
    });
    expect(typeOf(doc, 'scratch')).toMatchObject({ status: 'ok', scanned: 3 });
    expect(typeOf(doc, 'uploads')).toMatchObject({ status: 'ok', scanned: 3 });
    expect(readFileSync(path.join(dir, 'm.prom'), 'utf8')).toContain('reaper_liveness_source_errors{source="sql:registry#1"} 1');
    expect(readFileSync(path.join(dir, 'j.xml'), 'utf8')).toMatch(/<testcase classname="reaper\.source" name="sql:registry#1" time="0">\n {6}<error /);

    const reap = reaperSync(['reap', '-c', manifest, '--execute'], { cwd: dir });
    expect(reap.code).toBe(4);
    expect(reap.stderr).toContain('registry-outage breaker');
    expect(existsSync(path.join(dir, 'scratch/stray.part'))).toBe(true);
  });
});

describe.skipIf(!serviceAvailable('s3'))('an audit with a bucket that does not exist', () => {
  it('reports the bucket\'s type as error with the reason and the other types in full, exits 3; reap reaps the rest', async () => {
    const cfg = s3Settings();
    const { client: s3, bucket } = await freshBucket(cleanups, 'present');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/alice/a.bin', Body: 'a' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/bob/b.bin', Body: 'b' }));
    const missing = uniqueName('missing').toLowerCase().replace(/_/g, '-');

    const dir = testTempDir('reaper-nobucket-');
    put(dir, 'scratch/bob/b.part');
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        'defaults: { minAge: 0s, grace: 0s, maxDeleteFraction: 1 }',
        'connections:',
        `  blobs: { kind: s3, endpoint: "${cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }`,
        'owners: [{ static: [alice] }]',
        'resources:',
        '  - name: gone',
        `    s3: { connection: blobs, bucket: ${missing}, prefix: tmp/ }`,
        '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
        '  - name: blobs',
        `    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }`,
        '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
        '  - name: scratch',
        '    fs: { path: ./scratch }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '',
      ].join('\n'),
    );
    const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

    const r = reaperSync(['audit', '-c', manifest, '--output', 'json', '--summary', 's.md', '--metrics-file', 'm.prom'], { cwd: dir, env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`reaper: gone: not read: s3://${missing}/tmp/: cannot read the bucket's versioning: the bucket "${missing}" does not exist`);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.resources.map((t) => [t.name, t.status, t.scanned, t.orphaned])).toEqual([
      ['gone', 'error', 0, 0],
      ['blobs', 'ok', 2, 1],
      ['scratch', 'ok', 1, 1],
    ]);
    expect(typeOf(doc, 'gone').error).toContain('does not exist');
    expect(readFileSync(path.join(dir, 'm.prom'), 'utf8')).toContain('reaper_scan_errors{resource="gone",backend="s3"} 1');
    expect(readFileSync(path.join(dir, 's.md'), 'utf8')).toContain(`does not exist`);

    const mark = reaperSync(['reap', '-c', manifest, '--execute', '--output', 'json'], { cwd: dir, env });
    expect(mark.code).toBe(3);
    expect(mark.stderr).toContain('gone: refused, nothing of it was marked or deleted');
    const marked = JSON.parse(mark.stdout) as { resources: { name: string; error: string | null; outcomes: { marked: number } }[] };
    expect(marked.resources.map((x) => [x.name, x.error === null, x.outcomes.marked])).toEqual([
      ['gone', false, 0],
      ['blobs', true, 1],
      ['scratch', true, 1],
    ]);
    expect(reaperSync(['reap', '-c', manifest, '--execute'], { cwd: dir, env }).code).toBe(3);
    expect(existsSync(path.join(dir, 'scratch/bob/b.part'))).toBe(false);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect((left.Contents ?? []).map((o) => o.Key)).toEqual(['tmp/alice/a.bin']);
  });
});
