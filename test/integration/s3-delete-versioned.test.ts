/**
 * The per-object delete in a bucket with versioning enabled, where the current version is
 * checked by HeadObject just before the conditional DeleteObject (src/backends/s3/s3-delete.ts
 * `deleteOne`, docs/safety.md §3): what reaches it without a batch pre-check (no reader of the
 * current versions), on moto.
 *
 * What moto can show: If-Match on DeleteObject alone matches a new version with identical bytes
 * (same ETag) and would delete it — the test sends that unchecked delete itself to show it — so
 * only the version check keeps it. A changed body, and an object deleted meanwhile, are also
 * answered `changed` / `absent` by the conditional delete on moto (checked: those outcomes hold
 * with the version check removed), so for them these tests claim only that the check answers
 * without sending a delete.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadS3Sdk, s3ClientConfig, s3Fingerprint, type S3Target } from '../../src/backends/s3/s3-client.js';
import { deleteS3Objects } from '../../src/backends/s3/s3-delete.js';
import type { S3ConnectionSpec } from '../../src/manifest/types.js';
import { runCleanups, s3Settings, serviceAvailable } from './support/services.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const PREFIX = 'tmp/';

describe.skipIf(!serviceAvailable('s3'))('S3 per-object delete, versioning enabled (moto)', () => {
  let client: S3Client;
  const sent: { command: string; key: unknown }[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(() => {
    const spec: S3ConnectionSpec = { kind: 's3', name: 'blobs', forcePathStyle: true, concurrency: 4, ...s3Settings() };
    client = new S3Client(s3ClientConfig(spec));
    client.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push({ command: String(context.commandName), key: (args.input as { Key?: unknown }).Key });
        return next(args);
      },
      { step: 'initialize', name: 'recordCommands' },
    );
  });
  afterAll(() => client.destroy());
  afterEach(() => runCleanups(cleanups));

  async function versionedBucket(): Promise<string> {
    const bucket = `reaper-v-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    let failed = false;
    onTestFailed(() => {
      failed = true;
    });
    cleanups.push(async () => {
      if (failed) return;
      const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      const objects = [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
      if (objects.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    });
    return bucket;
  }

  async function target(bucket: string): Promise<S3Target> {
    return { sdk: await loadS3Sdk(), client, bucket, prefix: PREFIX, scope: `s3://${bucket}/${PREFIX}`, endpoint: s3Settings().endpoint, versioning: 'Enabled', concurrency: 4 };
  }

  async function put(bucket: string, key: string, body: string): Promise<{ etag: string; versionId: string; fingerprint: string }> {
    const out = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    // moto orders the versions of a key by LastModified in milliseconds: keep consecutive versions apart.
    await new Promise((resolve) => setTimeout(resolve, 3));
    return { etag: out.ETag!, versionId: out.VersionId!, fingerprint: s3Fingerprint(out.ETag!, out.VersionId!) };
  }

  const latestMarkers = async (bucket: string) =>
    new Map(((await client.send(new ListObjectVersionsCommand({ Bucket: bucket }))).DeleteMarkers ?? []).filter((m) => m.IsLatest).map((m) => [m.Key!, m.VersionId!]));

  it('checks the current version with HeadObject, then deletes with If-Match: a delete marker whose version id restores', async () => {
    const bucket = await versionedBucket();
    const key = `${PREFIX}a/plain`;
    const v1 = await put(bucket, key, 'plain bytes');
    sent.length = 0;

    const [result] = await deleteS3Objects(await target(bucket), 's3-versioned-delete-marker', [{ id: key, fingerprint: v1.fingerprint }]);
    const commands = sent.map((s) => s.command);

    expect(commands).toEqual(['HeadObjectCommand', 'DeleteObjectCommand']);
    const markers = await latestMarkers(bucket);
    expect(result).toEqual({ id: key, outcome: 'deleted', restoreHandle: markers.get(key) });
    // The version is kept under the marker: removing the marker brings it back.
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: result!.restoreHandle }));
    const back = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(back.VersionId).toBe(v1.versionId);
    expect(await back.Body!.transformToString()).toBe('plain bytes');
  });

  it('answers changed, and sends no delete, when a new version with identical bytes is current (If-Match alone would delete it)', async () => {
    const bucket = await versionedBucket();
    const key = `${PREFIX}a/rewritten`;
    const v1 = await put(bucket, key, 'same bytes');
    const v2 = await put(bucket, key, 'same bytes');
    expect(v2.etag).toBe(v1.etag);
    expect(v2.versionId).not.toBe(v1.versionId);
    sent.length = 0;

    const [result] = await deleteS3Objects(await target(bucket), 's3-versioned-delete-marker', [{ id: key, fingerprint: v1.fingerprint }]);
    const commands = sent.map((s) => s.command);

    expect(result).toEqual({ id: key, outcome: 'changed' });
    expect(commands).toEqual(['HeadObjectCommand']);
    expect((await latestMarkers(bucket)).has(key)).toBe(false);
    expect((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).VersionId).toBe(v2.versionId);

    // The negative: the conditional delete without the version check matches the new version's ETag on moto.
    const unchecked = await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: v1.etag }));
    expect(unchecked.DeleteMarker).toBe(true);
  });

  it('answers absent, and adds no delete marker, when the object was deleted meanwhile', async () => {
    const bucket = await versionedBucket();
    const key = `${PREFIX}a/gone`;
    const v1 = await put(bucket, key, 'gone soon');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    const before = await latestMarkers(bucket);
    sent.length = 0;

    const [result] = await deleteS3Objects(await target(bucket), 's3-versioned-delete-marker', [{ id: key, fingerprint: v1.fingerprint }]);
    const commands = sent.map((s) => s.command);

    const versions = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
    expect(versions.DeleteMarkers ?? []).toHaveLength(1);
    expect(await latestMarkers(bucket)).toEqual(before);
    expect(result).toEqual({ id: key, outcome: 'absent' });
    expect(commands).toEqual(['HeadObjectCommand']);
  });

  it('answers changed when the object was rewritten with other bytes (If-Match would too)', async () => {
    const bucket = await versionedBucket();
    const key = `${PREFIX}a/edited`;
    const v1 = await put(bucket, key, 'first bytes');
    await put(bucket, key, 'other bytes');
    sent.length = 0;
    const [result] = await deleteS3Objects(await target(bucket), 's3-versioned-delete-marker', [{ id: key, fingerprint: v1.fingerprint }]);
    const commands = sent.map((s) => s.command);
    expect(result).toEqual({ id: key, outcome: 'changed' });
    expect((await latestMarkers(bucket)).has(key)).toBe(false);
    expect(commands).toEqual(['HeadObjectCommand']);
  });
});
