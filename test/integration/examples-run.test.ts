/**
 * Every manifest under config/examples/ and every manifest block of the README, run as
 * written by the built CLI against real servers — PostgreSQL, MariaDB, S3 (moto) and files —
 * with the tables, buckets, objects, files and leases each expects, gives the
 * classification it describes: a resource of a live owner is live, one of a dead owner
 * orphaned, and no key-shape warning. The pairing these examples once had (a source of bare
 * ids, owner keys `session:<id>`) is warned about by validate and by the audit's first lines.
 *
 * Owners in every fixture: session 1 (a sessions row not expired), session 2 (a row
 * expired), session 3 (a lease), session 4 (nothing), and the static key session:platform.
 */
import { readFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { reaper, removeTempDirs, tmp } from './support/cli.js';
import { agedMotoProblem, startAgedMoto, type AgedMoto } from './support/aged-moto.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';

afterAll(removeTempDirs);

const ROOT = path.resolve(__dirname, '../..');
const EXAMPLES = path.join(ROOT, 'config/examples');
const HOUR = 3600;

const motoProblem = agedMotoProblem();
const missing = [
  ...(serviceAvailable('postgres') ? [] : ['PostgreSQL']),
  ...(serviceAvailable('mysql') ? [] : ['MariaDB']),
  ...(motoProblem === null ? [] : [`Python with moto (${motoProblem})`]),
];
const ready = missing.length === 0;
if (!ready && process.env.CI === 'true') throw new Error(`the example tests need ${missing.join(', ')}`);

/** The manifests of the README: its ```yaml blocks that are manifests. */
function readmeManifests(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((text) => /^version: 1$/m.test(text));
}

/** The manifest a Kubernetes example carries in a ConfigMap. */
function configMapManifest(file: string): string {
  const docs = parseAllDocuments(readFileSync(path.join(EXAMPLES, file), 'utf8')) as unknown as { toJS(): { kind?: string; data?: Record<string, string> } }[];
  return docs.map((d) => d.toJS()).find((o) => o.kind === 'ConfigMap' && o.data?.['reaper.yaml'])!.data!['reaper.yaml']!;
}

type Doc = { summary: Record<string, number>; resources: ({ name: string } & Record<string, number>)[]; findings: { resource: string; id: string; status: string; reason: string | null }[] };

/** Per type: its counts, and every non-live finding as `status/reason`. */
function classification(doc: Doc): Record<string, { counts: Record<string, number>; findings: Record<string, string> }> {
  const out: Record<string, { counts: Record<string, number>; findings: Record<string, string> }> = {};
  for (const r of doc.resources) {
    out[r.name] = { counts: { scanned: r.scanned!, live: r.live!, orphaned: r.orphaned!, protected: r.protected!, expired: r.expired!, young: r.young!, unknown: r.unknown! }, findings: {} };
  }
  for (const f of doc.findings) out[f.resource]!.findings[f.id] = f.status === 'protected' ? 'protected' : `${f.status}/${f.reason}`;
  return out;
}

const counts = (scanned: number, live: number, orphaned: number, protectedCount = 0) => ({ scanned, live, orphaned, protected: protectedCount, expired: 0, young: 0, unknown: 0 });

interface World {
  moto: AgedMoto;
  s3(region: string): S3Client;
}

async function bucketWith(world: World, bucket: string, region: string, objects: { key: string; metadata?: Record<string, string>; tagging?: string }[]) {
  const s3 = world.s3(region);
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as 'eu-west-1' } }) }));
  for (const o of objects) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: 'x', Metadata: o.metadata, Tagging: o.tagging }));
  await world.moto.age(bucket, HOUR);
}

async function pg(url: string, statements: string[]) {
  const { default: pgLib } = await import('pg');
  const client = new pgLib.Client({ connectionString: url });
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

async function mysql(url: string, statements: string[]) {
  const mysql2 = await import('mysql2/promise');
  const conn = await mysql2.createConnection({ uri: url });
  try {
    for (const s of statements) await conn.query(s);
  } finally {
    await conn.end();
  }
}

const SESSIONS = [
  'CREATE TABLE sessions (id integer PRIMARY KEY, expires_at timestamptz NOT NULL)',
  "INSERT INTO sessions VALUES (1, now() + interval '1 hour'), (2, now() - interval '1 hour')",
];

/** Files under `dir`, their mtime an age in seconds ago. */
function files(dir: string, list: Record<string, number>) {
  for (const [file, age] of Object.entries(list)) {
    const full = path.join(dir, file);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, 'x');
    const when = new Date(Date.now() - age * 1000);
    utimesSync(full, when, when);
  }
}

function audit(dir: string, manifest: string, env: Record<string, string>) {
  const r = reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env });
  expect(r.stderr).not.toContain('reaper: warning');
  expect(r.stderr).not.toMatch(/^reaper: /m);
  expect(r.code).toBe(0);
  return classification(JSON.parse(r.stdout) as Doc);
}

describe.skipIf(!ready)('example manifests, run against real servers', () => {
  let world: World;
  const clients: S3Client[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    const moto = await startAgedMoto();
    world = {
      moto,
      s3: (region) => {
        const c = new S3Client({ endpoint: moto.endpoint, region, forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
        clients.push(c);
        return c;
      },
    };
  });
  beforeEach(async () => {
    // Each example starts from empty buckets.
    await fetch(`${world.moto.endpoint}/moto-api/reset`, { method: 'POST' });
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await world?.moto.stop();
  });

  const s3Env = () => ({ AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', S3_ENDPOINT: world.moto.endpoint });

  /** Write `text` as reaper.yaml in a fresh directory and run `body` there; the test's databases are dropped after. */
  async function withManifest(text: string, body: (dir: string, manifest: string) => Promise<void>): Promise<void> {
    try {
      const dir = tmp('reaper-example-');
      const manifest = path.join(dir, 'reaper.yaml');
      writeFileSync(manifest, text);
      await body(dir, manifest);
    } finally {
      await runCleanups(cleanups);
    }
  }

  /** The fixture of full-manifest.yaml and the README's manifest: both name the same places. */
  async function fullFixture(dir: string, options: { thumbnails: boolean; lease: boolean; manifest: string }) {
    const db = await freshPgDatabase(cleanups);
    const legacy = await freshMysqlDatabase(cleanups);
    await pg(db, [
      ...SESSIONS,
      'CREATE TABLE images (id integer PRIMARY KEY, session_id integer, kind text NOT NULL, created_at timestamptz NOT NULL)',
      "INSERT INTO images SELECT * FROM (VALUES (10, 1, 'upload'), (11, 2, 'upload'), (12, 3, 'upload'), (13, 4, 'upload'), (14, 2, 'avatar')) v(id, s, k) CROSS JOIN LATERAL (SELECT now() - interval '1 hour') t(c)",
    ]);
    await mysql(legacy, [
      'CREATE TABLE carts (id INT PRIMARY KEY, session_id INT NULL, created_at DATETIME(3) NOT NULL)',
      'INSERT INTO carts VALUES (20, 1, NOW(3) - INTERVAL 1 HOUR), (21, 2, NOW(3) - INTERVAL 1 HOUR), (22, 3, NOW(3) - INTERVAL 1 HOUR)',
    ]);
    await bucketWith(world, 'uploads', 'us-east-1', [
      { key: 'tmp/s1.bin', metadata: { owner: '1' } },
      { key: 'tmp/s2.bin', metadata: { owner: '2' } },
      { key: 'tmp/s3.bin', metadata: { owner: '3' } },
      { key: 'tmp/s4.bin', metadata: { owner: '4' } },
      { key: 'tmp/platform.bin', metadata: { owner: 'platform' } },
      { key: 'tmp/kept.bin', metadata: { owner: '4' }, tagging: 'keep=true' },
      { key: 'tmp/anonymous.bin' },
      ...(options.thumbnails ? [{ key: 'thumbs/10.jpg' }, { key: 'thumbs/11.jpg' }, { key: 'thumbs/99.jpg' }] : []),
    ]);
    files(path.join(dir, 'scratch'), { '1/a.part': 2 * HOUR, '2/b.part': 2 * HOUR, '3/c.part': 2 * HOUR, 'platform/d.part': 2 * HOUR, '1/notes.txt': 2 * HOUR });
    const env = { ...s3Env(), DATABASE_URL: db, LEGACY_DATABASE_URL: legacy };
    if (options.lease) expect(reaper(['lease', 'acquire', 'session:3', '--ttl', '1h', '-c', options.manifest], { cwd: dir }).code).toBe(0);
    return env;
  }

  const FULL_EXPECTED = {
    'upload-blobs': {
      counts: counts(7, 3, 3, 1),
      findings: { 'tmp/s2.bin': 'orphaned/owner-dead', 'tmp/s4.bin': 'orphaned/owner-dead', 'tmp/anonymous.bin': 'orphaned/no-owner', 'tmp/kept.bin': 'protected' },
    },
    'image-rows': { counts: counts(4, 2, 2), findings: { '11': 'orphaned/owner-dead', '13': 'orphaned/owner-dead' } },
    thumbnails: { counts: counts(3, 1, 2), findings: { 'thumbs/11.jpg': 'orphaned/unreachable', 'thumbs/99.jpg': 'orphaned/unreachable' } },
    'cart-rows': { counts: counts(3, 2, 1), findings: { '21': 'orphaned/owner-dead' } },
    scratch: { counts: counts(4, 3, 1), findings: { '2/b.part': 'orphaned/owner-dead' } },
  };

  it('config/examples/full-manifest.yaml', async () => {
    await withManifest(readFileSync(path.join(EXAMPLES, 'full-manifest.yaml'), 'utf8'), async (dir, manifest) => {
      const env = await fullFixture(dir, { thumbnails: true, lease: true, manifest });
      expect(audit(dir, manifest, env)).toEqual(FULL_EXPECTED);
      const validate = reaper(['validate', '-c', manifest, '--output', 'table'], { cwd: dir, env });
      expect(validate.stdout).not.toContain('WARN');
      expect(validate.code, validate.stdout).toBe(0);
    });
  });

  it('the README\'s manifest', async () => {
    const blocks = readmeManifests();
    expect(blocks).toHaveLength(1);
    await withManifest(blocks[0]!, async (dir, manifest) => {
      const env = await fullFixture(dir, { thumbnails: false, lease: true, manifest });
      const { thumbnails: _thumbnails, ...expected } = FULL_EXPECTED;
      expect(audit(dir, manifest, env)).toEqual(expected);
    });
  });

  it('the pairing of a bare-id source and session:<id> keys is named by validate and by the audit\'s first lines', async () => {
    const text = readFileSync(path.join(EXAMPLES, 'full-manifest.yaml'), 'utf8');
    const broken = text.replace(`"SELECT 'session:' || id FROM sessions WHERE expires_at > now()"`, '"SELECT id::text FROM sessions WHERE expires_at > now()"');
    expect(broken).not.toBe(text);
    await withManifest(broken, async (dir, manifest) => {
      const env = await fullFixture(dir, { thumbnails: true, lease: false, manifest });
      const warning = (type: string) =>
        `${type}: owner keys look like \`session:…\`, source sql:main-db#1 returns keys like \`1\`: no key matched`;

      const validate = reaper(['validate', '-c', manifest, '--output', 'table'], { cwd: dir, env });
      expect(validate.stdout).toContain(`WARN ${warning('image-rows')}`);
      expect(validate.stdout).toContain(`WARN ${warning('cart-rows')}`);
      // A type with a live owner (here through the static list) can match: no warning for it.
      expect(validate.stdout).not.toContain('WARN scratch');
      expect(validate.stdout).not.toContain('WARN upload-blobs');

      const r = reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env });
      expect(r.code).toBe(0);
      const warnings = r.stderr.split('\n').filter((l) => l.startsWith('reaper: warning: '));
      expect(warnings.map((w) => w.split(':')[2]!.trim())).toEqual(['image-rows', 'cart-rows']);
      expect(warnings[0]).toContain(warning('image-rows'));
      expect(classification(JSON.parse(r.stdout) as Doc)['image-rows']!.counts).toMatchObject({ live: 0, orphaned: 4 });
    });
  });

  it('config/examples/k8s-cronjob.yaml (its ConfigMap\'s manifest; the S3 connection pointed at the test server)', async () => {
    const text = configMapManifest('k8s-cronjob.yaml');
    // In the cluster the connection reaches AWS S3 by the SDK's defaults; here it reaches moto.
    const local = text.replace('blobs:  { kind: s3, region: eu-west-1 }', 'blobs:  { kind: s3, region: eu-west-1, endpoint: "${S3_ENDPOINT}", forcePathStyle: true }');
    expect(local).not.toBe(text);
    await withManifest(local, async (dir, manifest) => {
      const state = await freshPgDatabase(cleanups);
      const app = await freshPgDatabase(cleanups);
      await pg(app, [
        ...SESSIONS,
        'CREATE TABLE exports (id integer PRIMARY KEY, session_id integer, created_at timestamptz NOT NULL)',
        "INSERT INTO exports VALUES (30, 1, now() - interval '1 hour'), (31, 2, now() - interval '1 hour'), (32, 3, now() - interval '1 hour'), (33, 4, now() - interval '1 hour')",
      ]);
      await bucketWith(world, 'app-uploads', 'eu-west-1', [{ key: 'tmp/1/a.bin' }, { key: 'tmp/2/b.bin' }, { key: 'tmp/3/c.bin' }, { key: 'tmp/4/d.bin' }]);
      const env = { ...s3Env(), REAPER_STATE_URL: state, APP_DATABASE_URL: app };
      expect(reaper(['lease', 'acquire', 'session:3', '--ttl', '1h', '-c', manifest], { cwd: dir, env: { REAPER_STATE_URL: state } }).code).toBe(0);
      expect(audit(dir, manifest, env)).toEqual({
        'upload-blobs': { counts: counts(4, 2, 2), findings: { 'tmp/2/b.bin': 'orphaned/owner-dead', 'tmp/4/d.bin': 'orphaned/owner-dead' } },
        'export-rows': { counts: counts(4, 2, 2), findings: { '31': 'orphaned/owner-dead', '33': 'orphaned/owner-dead' } },
      });
    });
  });

  it('config/examples/k8s-sidecar.yaml (its ConfigMap\'s manifest, leases in MariaDB; the pods\' directory in a temp dir)', async () => {
    const uploads = path.join(tmp('reaper-pods-'), 'uploads');
    const text = configMapManifest('k8s-sidecar.yaml');
    const local = text.replace('path: /data/uploads', `path: ${uploads}`);
    expect(local).not.toBe(text);
    await withManifest(local, async (dir, manifest) => {
      const state = await freshMysqlDatabase(cleanups);
      files(uploads, { 'uploader-a/1.bin': HOUR, 'uploader-a/2.bin': HOUR, 'uploader-b/1.bin': HOUR });
      // The sidecar of pod uploader-a holds `pod:$(POD_NAME)`; uploader-b is gone.
      expect(reaper(['lease', 'acquire', 'pod:uploader-a', '--ttl', '1h', '-c', manifest], { cwd: dir, env: { REAPER_STATE_URL: state } }).code).toBe(0);
      expect(audit(dir, manifest, { REAPER_STATE_URL: state })).toEqual({
        uploads: { counts: counts(3, 2, 1), findings: { 'uploader-b/1.bin': 'orphaned/owner-dead' } },
      });
    });
  });

  it('covers every manifest under config/examples/', () => {
    const covered = ['full-manifest.yaml', 'k8s-cronjob.yaml', 'k8s-sidecar.yaml'];
    const withManifest = ['full-manifest.yaml', 'github-actions-leak-gate.yml', 'gitlab-ci.yml', 'k8s-cronjob.yaml', 'k8s-sidecar.yaml', 'prometheus-alerts.yml'].filter((f) =>
      /^\s*version: 1$/m.test(readFileSync(path.join(EXAMPLES, f), 'utf8')),
    );
    expect(withManifest).toEqual(covered);
  });
});
