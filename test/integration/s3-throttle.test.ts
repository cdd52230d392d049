/**
 * S3 under load, through the built CLI: an HTTP proxy in front of moto answers some
 * requests itself with `503 SlowDown` or `500 InternalError` (support/http-fault-proxy.ts).
 * - throttling of the first attempt of every request is retried by the SDK: the reap deletes exactly the
 *   orphans, and counts no failure;
 * - deletes refused every time are counted as failed, exit 3, and leave the objects and
 *   their tombstones for the next run, which deletes them once S3 answers;
 * - a delete S3 performed whose answer was lost counts as deleted, once;
 * - a listing S3 refuses puts the type in error and marks nothing.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { reaperSpawn, removeTempDirs, tmp, type CliRun } from './support/cli.js';
import { HttpFaultProxy, internalError, slowDown, type FaultRequest } from './support/http-fault-proxy.js';
import { freshBucket, runCleanups, s3Settings, serviceAvailable } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));
afterAll(() => removeTempDirs());

type Run = CliRun;

/** The CLI, asynchronously (reaperSpawn): a synchronous spawn would block this process. */
const reaper = (dir: string, args: string[]): Promise<Run> =>
  reaperSpawn([...args, '-c', path.join(dir, 'reaper.yaml'), '--output', 'json'], { cwd: dir, env: { HOME: dir, AWS_EC2_METADATA_DISABLED: 'true', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } }).done;

type Outcomes = { marked: number; deleted: number; failed: number; lifted: number; kept: number };
const outcomes = (run: Run): Outcomes => (JSON.parse(run.stdout) as { resources: { outcomes: Outcomes }[] }).resources[0]!.outcomes;

/** A single-object DeleteObject (the conditional delete mode these tests run); a batch DeleteObjects names its keys in the body. */
const isDelete = (r: FaultRequest) => r.method === 'DELETE';
const isList = (r: FaultRequest) => r.method === 'GET' && /[?&]list-type=2/.test(r.url);

interface Scene {
  proxy: HttpFaultProxy;
  client: S3Client;
  bucket: string;
  dir: string;
  orphans: string[];
  live: string[];
  present(): Promise<string[]>;
}

/** A bucket with 6 orphans (owner `gone`) and 3 live objects (owner `alive`), reached through a fault proxy. */
async function scene(): Promise<Scene> {
  const { client, bucket } = await freshBucket(cleanups, 'throttle');
  const proxy = await HttpFaultProxy.start(s3Settings().endpoint);
  cleanups.push(() => proxy.stop());
  const orphans = Array.from({ length: 6 }, (_, i) => `tmp/gone/o-${i}`);
  const live = Array.from({ length: 3 }, (_, i) => `tmp/alive/l-${i}`);
  for (const key of [...orphans, ...live]) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
  const dir = tmp('reaper-throttle-');
  const s3 = s3Settings();
  writeFileSync(
    path.join(dir, 'reaper.yaml'),
    [
      'version: 1',
      'state: "sqlite:.reaper/state.db"',
      'defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }',
      'connections:',
      `  blobs: { kind: s3, endpoint: "${proxy.endpoint}", region: ${s3.region}, forcePathStyle: true, accessKeyId: ${s3.accessKeyId}, secretAccessKey: ${s3.secretAccessKey} }`,
      'owners: [{ static: [alive] }]',
      'resources:',
      '  - name: blobs',
      `    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }`,
      '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
      '',
    ].join('\n'),
  );
  const present = async () => ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'tmp/' }))).Contents ?? []).map((o) => o.Key!).sort();
  return { proxy, client, bucket, dir, orphans, live, present };
}

/** Mark with a healthy proxy, then wait out the grace: the next reap sweeps. */
async function marked(s: Scene): Promise<void> {
  const mark = await reaper(s.dir, ['reap', '--execute']);
  expect(mark.code, mark.stderr).toBe(0);
  expect(outcomes(mark).marked).toBe(s.orphans.length);
  await new Promise((resolve) => setTimeout(resolve, 1_200));
}

describe.skipIf(!serviceAvailable('s3'))('S3 throttled or failing through a proxy', () => {
  it('the first attempt of every request answered 503 SlowDown: the SDK retries, the orphans are marked and deleted, no failure counted', async () => {
    const s = await scene();
    const throttled = new Set<string>();
    s.proxy.rule = (r) => {
      const key = `${r.method} ${r.url}`;
      if (throttled.has(key)) return 'forward';
      throttled.add(key);
      return slowDown;
    };
    const mark = await reaper(s.dir, ['reap', '--execute']);
    expect(mark.code, mark.stderr).toBe(0);
    expect(outcomes(mark)).toMatchObject({ marked: 6, failed: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const sweep = await reaper(s.dir, ['reap', '--execute']);
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(outcomes(sweep)).toMatchObject({ deleted: 6, failed: 0, lifted: 0 });
    expect(s.proxy.faults).toBeGreaterThan(0);
    expect(await s.present()).toEqual([...s.live].sort());
  });

  it('every delete answered 503 SlowDown: counted as failed, exit 3, nothing gone; the next run deletes them once S3 answers', async () => {
    const s = await scene();
    await marked(s);
    s.proxy.rule = (r) => (isDelete(r) && r.url.includes('/tmp/gone/') ? slowDown : 'forward');
    const sweep = await reaper(s.dir, ['reap', '--execute']);
    expect(sweep.code, sweep.stderr).toBe(3);
    expect(outcomes(sweep)).toMatchObject({ deleted: 0, failed: 6 });
    expect(await s.present()).toEqual([...s.orphans, ...s.live].sort());
    s.proxy.rule = () => 'forward';
    const again = await reaper(s.dir, ['reap', '--execute']);
    expect(again.code, again.stderr).toBe(0);
    expect(outcomes(again)).toMatchObject({ deleted: 6, failed: 0 });
    expect(await s.present()).toEqual([...s.live].sort());
  });

  it('a delete S3 performed whose answer was lost (500 after it) counts as deleted, once, not as failed', async () => {
    const s = await scene();
    await marked(s);
    s.proxy.rule = (r) => (isDelete(r) && r.url.includes('/tmp/gone/') ? { ...internalError, after: true } : 'forward');
    const sweep = await reaper(s.dir, ['reap', '--execute']);
    expect(await s.present()).toEqual([...s.live].sort());
    expect(outcomes(sweep)).toMatchObject({ deleted: 6, failed: 0 });
    expect(sweep.code, sweep.stderr).toBe(0);
  });

  it('a listing answered 500 InternalError every time: the type is in error, nothing is marked, exit 3', async () => {
    const s = await scene();
    s.proxy.rule = (r) => (isList(r) ? internalError : 'forward');
    const run = await reaper(s.dir, ['reap', '--execute']);
    expect(run.code, run.stderr).toBe(3);
    expect(outcomes(run)).toMatchObject({ marked: 0, deleted: 0 });
    expect(await s.present()).toEqual([...s.orphans, ...s.live].sort());
  });
});
