/**
 * Per-test isolation on the real services: a fresh PostgreSQL database, MySQL
 * database or S3 bucket for each test, dropped afterwards (kept when the test failed,
 * as evidence). `needs(...)` skips outside CI when a service is missing; under CI the
 * global setup has already failed the run instead.
 */
import { randomBytes } from 'node:crypto';
import { inject, onTestFailed } from 'vitest';

export type Service = 'postgres' | 'mysql' | 's3';

export function serviceAvailable(service: Service): boolean {
  if (service === 'postgres') return inject('pgUrl') !== null;
  if (service === 'mysql') return inject('mysqlUrl') !== null;
  return inject('s3Endpoint') !== null;
}

export const uniqueName = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Whether a test's database is kept as evidence: by default when the test failed (onTestFailed).
 * A concurrent test, whose hooks cannot be registered after an await, passes its own answer.
 */
export interface KeepOptions {
  keep?: () => boolean;
}

/** A fresh PostgreSQL database; returns its URL. Dropped after the test unless it failed. */
export async function freshPgDatabase(cleanups: (() => Promise<void>)[], options: KeepOptions = {}): Promise<string> {
  const admin = inject('pgUrl');
  if (!admin) throw new Error('PostgreSQL is not available');
  const { default: pg } = await import('pg');
  const name = uniqueName('reaper_t').toLowerCase();
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  await client.end();
  const keep = options.keep ?? failedTest();
  cleanups.push(async () => {
    if (keep()) return;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });
  return withDatabase(admin, name);
}

/** A fresh MySQL/MariaDB database; returns its URL. Dropped after the test unless it failed. */
export async function freshMysqlDatabase(cleanups: (() => Promise<void>)[], options: KeepOptions = {}): Promise<string> {
  const admin = inject('mysqlUrl');
  if (!admin) throw new Error('MySQL is not available');
  const mysql = await import('mysql2/promise');
  const name = uniqueName('reaper_t').toLowerCase();
  const conn = await mysql.createConnection({ uri: admin });
  await conn.query(`CREATE DATABASE \`${name}\``);
  await conn.end();
  const keep = options.keep ?? failedTest();
  cleanups.push(async () => {
    if (keep()) return;
    const c = await mysql.createConnection({ uri: admin });
    await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await c.end();
  });
  return withDatabase(admin, name);
}

/** Whether the running test has failed, as onTestFailed learns it. */
function failedTest(): () => boolean {
  let failed = false;
  onTestFailed(() => {
    failed = true;
  });
  return () => failed;
}

/** S3 connection settings for the test server (static test credentials). */
export function s3Settings(): { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string } {
  const endpoint = inject('s3Endpoint');
  if (!endpoint) throw new Error('no S3 server');
  return { endpoint, region: 'us-east-1', accessKeyId: 'testing', secretAccessKey: 'testing' };
}

/**
 * Manifest lines (from `connections:` to the end of the type) for an S3 type `blobs` over
 * `bucket` (prefix `tmp/`, the owner from the key) on the test server, reached at `endpoint`
 * (default: the server's own URL).
 */
export function s3BlobsYaml(bucket: string, endpoint?: string): string[] {
  const s3 = s3Settings();
  return [
    'connections:',
    `  blobs: { kind: s3, endpoint: "${endpoint ?? s3.endpoint}", region: ${s3.region}, forcePathStyle: true, accessKeyId: ${s3.accessKeyId}, secretAccessKey: ${s3.secretAccessKey} }`,
    'resources:',
    '  - name: blobs',
    `    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }`,
    '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
  ];
}

/** Run the collected cleanups last-in-first-out. */
/** Run statements on a PostgreSQL database over one connection, in order; the last one's rows. */
export async function pgQuery(url: string, ...statements: string[]): Promise<Record<string, unknown>[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const s of statements) rows = (await client.query(s)).rows as Record<string, unknown>[];
    return rows;
  } finally {
    await client.end();
  }
}

export async function runCleanups(cleanups: (() => Promise<void>)[]): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

/** A fresh S3 bucket on the test server, with a client for it; emptied, deleted and the client destroyed afterwards. */
export async function freshBucket(cleanups: (() => Promise<void>)[], prefix: string): Promise<{ client: import('@aws-sdk/client-s3').S3Client; bucket: string }> {
  const { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, S3Client } = await import('@aws-sdk/client-s3');
  const cfg = s3Settings();
  const client = new S3Client({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } });
  const bucket = uniqueName(prefix).toLowerCase().replace(/_/g, '-');
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  cleanups.push(async () => {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of listed.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });
  return { client, bucket };
}
