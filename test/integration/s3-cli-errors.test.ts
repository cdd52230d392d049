/**
 * What a user sees of S3 through the built CLI, on moto and on a closed port:
 * - an audit that reads metadata owners of many objects prints no Node warning
 *   (one abort signal shared by the concurrent requests used to exceed Node's listener limit);
 * - a bucket that cannot be read says why: no credentials, credentials refused, access
 *   denied, no such bucket, or an endpoint that does not answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { freePort } from '../support/net.js';
import { reaperSync } from './support/cli.js';
import { freshBucket, runCleanups, s3Settings, serviceAvailable, uniqueName } from './support/services.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const bucketName = (prefix: string) => uniqueName(prefix).toLowerCase().replace(/_/g, '-');
/** No credentials anywhere the SDK's default chain looks (and no instance metadata service to wait for). */
const bareEnv = (dir: string) => ({ HOME: dir, AWS_EC2_METADATA_DISABLED: 'true', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

function tmp(): string {
  return testTempDir('reaper-s3cli-');
}

function manifest(dir: string, connection: string, bucket: string): string {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'defaults: { minAge: 0s }',
      'connections:',
      `  blobs: ${connection}`,
      'owners: [{ static: [alive] }]',
      'resources:',
      '  - name: blobs',
      `    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }`,
      '    owner: { metadata: owner }',
      '',
    ].join('\n'),
  );
  return file;
}

/** The detail of the check of resource type `blobs` in `validate --output json`. */
function blobsCheck(stdout: string): { ok: boolean; detail: string } {
  const doc = JSON.parse(stdout) as { checks: { what: string; ok: boolean; detail: string }[] };
  const check = doc.checks.find((c) => c.what === 'blobs');
  if (!check) throw new Error(`no check of blobs in ${stdout}`);
  return check;
}

describe.skipIf(!serviceAvailable('s3'))('S3 through the CLI', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = s3Settings().endpoint;
  });
  const connection = () => `{ kind: s3, endpoint: "${endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }`;

  it('audits 80 objects with metadata owners, 16 requests at a time, without a MaxListenersExceededWarning', async () => {
    const { client, bucket } = await freshBucket(cleanups, 'warn');
    for (let i = 0; i < 80; i++) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `tmp/o-${i}.bin`, Body: 'x', Metadata: { owner: i % 2 ? 'alive' : 'gone' } }));
    }
    const dir = tmp();
    const r = reaperSync(['audit', '-c', manifest(dir, connection(), bucket), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { summary: { scanned: number; live: number; orphaned: number } };
    expect(doc.summary).toMatchObject({ scanned: 80, live: 40, orphaned: 40 });
  });

  it('names a bucket that does not exist', () => {
    const dir = tmp();
    const missing = bucketName('nosuch');
    const r = reaperSync(['validate', '-c', manifest(dir, connection(), missing), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
    expect(r.code).toBe(3);
    const check = blobsCheck(r.stdout);
    expect(check.ok).toBe(false);
    expect(check.detail).toContain(`the bucket "${missing}" does not exist`);
    expect(check.detail).not.toContain('needs s3:GetBucketVersioning');
  });

  it('says no credentials were found when the connection has none and the environment neither', () => {
    const dir = tmp();
    const bare = `{ kind: s3, endpoint: "${endpoint}", region: us-east-1, forcePathStyle: true }`;
    const r = reaperSync(['validate', '-c', manifest(dir, bare, 'any-bucket'), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
    expect(r.code).toBe(3);
    const check = blobsCheck(r.stdout);
    expect(check.detail).toContain('no AWS credentials found');
    expect(check.detail).not.toContain('needs s3:GetBucketVersioning');
  });

  it('says the endpoint does not answer when nothing listens on its port', async () => {
    const port = await freePort();
    const dir = tmp();
    const down = `{ kind: s3, endpoint: "http://127.0.0.1:${port}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing, maxAttempts: 1 }`;
    const r = reaperSync(['validate', '-c', manifest(dir, down, 'any-bucket'), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
    expect(r.code).toBe(3);
    const check = blobsCheck(r.stdout);
    expect(check.detail).toContain(`cannot connect to the S3 endpoint http://127.0.0.1:${port}`);
    expect(check.detail).toContain('ECONNREFUSED');
    expect(check.detail).not.toContain('needs s3:GetBucketVersioning');
  });

  describe('on a moto server that checks credentials', () => {
    let auth: { endpoint: string; child: ChildProcess } | null = null;
    let user: { accessKeyId: string; secretAccessKey: string };
    let bucket: string;
    beforeAll(async () => {
      // The first 3 requests are not authenticated: they create a user without any policy, its key, and a bucket.
      auth = await startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: '3' });
      user = await createIamUser(auth.endpoint, 'reaper-no-policy');
      bucket = bucketName('denied');
      const admin = new S3Client({ endpoint: auth.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
      admin.destroy();
    });
    afterAll(async () => {
      if (auth && auth.child.exitCode === null) {
        auth.child.kill('SIGTERM');
        await new Promise((r) => auth!.child.once('exit', r));
      }
    });

    it('says access was denied, and which permission is needed', () => {
      const dir = tmp();
      const conn = `{ kind: s3, endpoint: "${auth!.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: ${user.accessKeyId}, secretAccessKey: "${user.secretAccessKey}" }`;
      const r = reaperSync(['validate', '-c', manifest(dir, conn, bucket), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
      expect(r.code).toBe(3);
      const check = blobsCheck(r.stdout);
      expect(check.detail).toContain('access denied');
      expect(check.detail).toContain('needs s3:GetBucketVersioning');
      expect(r.stdout).not.toContain(user.secretAccessKey);
    });

    it('says the credentials were refused when the key is unknown to the server', () => {
      const dir = tmp();
      const conn = `{ kind: s3, endpoint: "${auth!.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: AKIANOSUCHKEY0000000, secretAccessKey: nope }`;
      const r = reaperSync(['validate', '-c', manifest(dir, conn, bucket), '--output', 'json'], { cwd: dir, env: bareEnv(dir) });
      expect(r.code).toBe(3);
      const check = blobsCheck(r.stdout);
      expect(check.detail).toContain('the credentials were refused');
      expect(check.detail).toContain('InvalidAccessKeyId');
      expect(check.detail).not.toContain('needs s3:GetBucketVersioning');
    });
  });
});

async function startMoto(env: Record<string, string>): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore', env: { ...process.env, ...env } });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with code ${child.exitCode}`);
    try {
      await fetch(`${endpoint}/moto-api/`);
      return { endpoint, child };
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** IAM CreateUser + CreateAccessKey by the query API (unauthenticated while moto's initial allowance lasts). */
async function createIamUser(endpoint: string, name: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const call = async (params: Record<string, string>) => {
    const response = await fetch(endpoint, {
      method: 'POST',
      body: new URLSearchParams({ Version: '2010-05-08', ...params }),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: 'AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
      },
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`IAM ${params.Action}: ${response.status} ${text}`);
    return text;
  };
  await call({ Action: 'CreateUser', UserName: name });
  const key = await call({ Action: 'CreateAccessKey', UserName: name });
  const pick = (tag: string) => new RegExp(`<${tag}>([^<]+)</${tag}>`).exec(key)?.[1] ?? '';
  return { accessKeyId: pick('AccessKeyId'), secretAccessKey: pick('SecretAccessKey') };
}
