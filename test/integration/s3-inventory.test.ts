/**
 * S3 Inventory (docs/scale-out.md): a type reads the newest inventory report (manifest.json and
 * gzip CSV, built here in moto) instead of listing. The audit costs the report, not a LIST per
 * 1,000 objects; objects written since the report are not seen; a reap judges due tombstones by
 * reading each object again, so an object rewritten since the report is lifted, not deleted;
 * and the conditional delete refuses a stale ETag (moto enforces If-Match on DeleteObject, the
 * per-object mode used here; it ignores per-object ETags in DeleteObjects, so the batch mode is
 * not claimed by this test).
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterEach, describe, expect, it } from 'vitest';
import { Connections } from '../../src/backends/connections.js';
import { S3Backend, type S3ResourceSpec } from '../../src/backends/s3/s3-backend.js';
import { s3ClientFor } from '../../src/backends/s3/s3-client.js';
import type { Finding } from '../../src/engine/types.js';
import { parseManifest } from '../../src/manifest/load.js';
import { runAudit } from '../../src/run/audit.js';
import { runReap } from '../../src/run/reap.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { waitStoreTime } from './support/reap-fixture.js';
import { freshBucket, runCleanups, s3Settings, serviceAvailable } from './support/services.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const REPORTS = 'inventory/source/daily/';
const SCHEMA = ['Bucket', 'Key', 'Size', 'LastModifiedDate', 'ETag'];
const csvLine = (fields: string[]) => fields.map((f) => `"${f.replace(/"/g, '""')}"`).join(',');
const encodeKey = (key: string) => encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+');

/** Write an inventory report of `keys` (as they are now) into `folder`, in two data files. */
async function writeReport(client: S3Client, bucket: string, folder: string, keys: string[], options: { format?: string } = {}): Promise<void> {
  // The objects as a listing gives them now (one LIST per 1,000, not a HEAD each).
  const now = new Map<string, { Size?: number; LastModified?: Date; ETag?: string }>();
  let token: string | undefined;
  do {
    const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'tmp/', ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of out.Contents ?? []) now.set(o.Key!, o);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  const lines = keys.map((key) => {
    const o = now.get(key)!;
    return csvLine([bucket, encodeKey(key), String(o.Size), o.LastModified!.toISOString(), o.ETag!.replace(/"/g, '')]);
  });
  const half = Math.ceil(lines.length / 2);
  const files = [lines.slice(half), lines.slice(0, half)].map((part, i) => ({ key: `${REPORTS}data/${folder}-${i}.csv.gz`, body: gzipSync(`${part.join('\n')}\n`) }));
  for (const f of files) await client.send(new PutObjectCommand({ Bucket: bucket, Key: f.key, Body: f.body }));
  const manifest = {
    sourceBucket: bucket,
    destinationBucket: `arn:aws:s3:::${bucket}`,
    version: '2016-11-30',
    creationTimestamp: String(Date.now()),
    fileFormat: options.format ?? 'CSV',
    fileSchema: SCHEMA.join(', '),
    files: files.map((f) => ({ key: f.key, size: f.body.length, MD5checksum: '' })),
  };
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${REPORTS}${folder}/manifest.json`, Body: JSON.stringify(manifest) }));
}

/**
 * Write a Parquet inventory report, as S3 writes one with versions listed: every version of
 * every key under tmp/ (delete markers too), `rowGroupSize` rows per row group, Snappy (S3's
 * choice) or GZIP; keys as they are, not URL-encoded.
 */
async function writeParquetReport(client: S3Client, bucket: string, folder: string, options: { rowGroupSize: number; codec: 'SNAPPY' | 'GZIP'; files: number }): Promise<number> {
  const rows: { key: string; version: string; latest: boolean; marker: boolean; size: bigint; modified: Date; etag: string }[] = [];
  let keyMarker: string | undefined;
  let versionMarker: string | undefined;
  do {
    const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'tmp/', KeyMarker: keyMarker, VersionIdMarker: versionMarker }));
    for (const v of out.Versions ?? []) rows.push({ key: v.Key!, version: v.VersionId!, latest: v.IsLatest!, marker: false, size: BigInt(v.Size ?? 0), modified: v.LastModified!, etag: v.ETag!.replace(/"/g, '') });
    for (const d of out.DeleteMarkers ?? []) rows.push({ key: d.Key!, version: d.VersionId!, latest: d.IsLatest!, marker: true, size: 0n, modified: d.LastModified!, etag: '' });
    keyMarker = out.IsTruncated ? out.NextKeyMarker : undefined;
    versionMarker = out.IsTruncated ? out.NextVersionIdMarker : undefined;
  } while (keyMarker);
  const per = Math.ceil(rows.length / options.files);
  const files: { key: string; size: number }[] = [];
  for (let i = 0; i < options.files; i++) {
    const part = rows.slice(i * per, (i + 1) * per);
    const body = new Uint8Array(
      parquetWriteBuffer({
        codec: options.codec,
        compressors: { GZIP: (input) => new Uint8Array(gzipSync(input)) },
        rowGroupSize: options.rowGroupSize,
        columnData: [
          { name: 'bucket', data: part.map(() => bucket), type: 'STRING' },
          { name: 'key', data: part.map((r) => r.key), type: 'STRING' },
          { name: 'version_id', data: part.map((r) => r.version), type: 'STRING' },
          { name: 'is_latest', data: part.map((r) => r.latest), type: 'BOOLEAN' },
          { name: 'is_delete_marker', data: part.map((r) => r.marker), type: 'BOOLEAN' },
          { name: 'size', data: part.map((r) => r.size), type: 'INT64' },
          { name: 'last_modified_date', data: part.map((r) => r.modified), type: 'TIMESTAMP' },
          { name: 'e_tag', data: part.map((r) => r.etag), type: 'STRING' },
          { name: 'storage_class', data: part.map(() => 'STANDARD'), type: 'STRING' },
        ],
      }),
    );
    const key = `${REPORTS}data/${folder}-${i}.parquet`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    files.push({ key, size: body.length });
  }
  const manifest = {
    sourceBucket: bucket,
    destinationBucket: `arn:aws:s3:::${bucket}`,
    version: '2016-11-30',
    creationTimestamp: String(Date.now()),
    fileFormat: 'Parquet',
    fileSchema:
      'message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional binary version_id (STRING); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); optional binary storage_class (STRING);}',
    files: files.map((f) => ({ ...f, MD5checksum: '' })),
  };
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${REPORTS}${folder}/manifest.json`, Body: JSON.stringify(manifest) }));
  return rows.length;
}

/** A manifest of one S3 type over tmp/ of `bucket` (owners from the key; `live` is the only live owner), with `extra` keys inside its s3 location. */
function inventoryManifest(dir: string, bucket: string, extra: string): string {
  return `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }
connections:
  blobs: { kind: s3, endpoint: "${s3Settings().endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
owners:
  - static: [live]
resources:
  - name: blobs
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/, deleteMode: per-object-if-match${extra} }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }
`;
}

/** Count the requests a client sends, by command. */
function countRequests(client: S3Client): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName);
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return counts;
}

describe.skipIf(!serviceAvailable('s3'))('an S3 type read from its inventory report', () => {
  it('audits from the newest report, reaps only what is still as reported, and refuses a stale ETag', async () => {
    const { client, bucket } = await freshBucket(cleanups, 'inventory');
    const put = (key: string, body: string) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const reported = ['tmp/dead/a', 'tmp/dead/with space', 'tmp/dead/rewritten', 'tmp/live/c', 'tmp/dead/gone'];
    for (const key of reported) await put(key, `v1 ${key}`);
    // An older report that must not be read, then the newest one.
    await writeReport(client, bucket, '2026-12-05T00-00Z', ['tmp/live/c']);
    await writeReport(client, bucket, '2026-12-06T00-00Z', reported);
    await put('tmp/dead/after-the-report', 'new');

    const dir = testTempDir('reaper-inventory-');
    const manifestText = (inventory: string) => inventoryManifest(dir, bucket, inventory);
    const manifest = parseManifest(manifestText(`, inventory: { prefix: ${REPORTS} }`), { file: 'inv.yaml', baseDir: dir });
    const listing = parseManifest(manifestText(''), { file: 'list.yaml', baseDir: dir });
    const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
    cleanups.push(() => store.close());
    const audit = async (m = manifest, shard: { index: number; count: number } | null = null) => {
      const ids: string[] = [];
      const doc = await runAudit(m, { store, shard, onFinding: (f: Finding) => void ids.push(f.id) });
      expect(doc.resources[0]!.status, doc.resources[0]!.error ?? '').toBe('ok');
      return { ids: ids.sort(), scanned: doc.resources[0]!.scanned };
    };

    // The newest report's objects, not the one written after it; a key with a space decoded.
    const fromReport = await audit();
    expect(fromReport).toEqual({ ids: ['tmp/dead/a', 'tmp/dead/gone', 'tmp/dead/rewritten', 'tmp/dead/with space'], scanned: 5 });
    expect((await audit(listing)).ids).toContain('tmp/dead/after-the-report');
    // Shards of the report: each object on one shard.
    const m2 = parseManifest(manifestText(`, inventory: { prefix: ${REPORTS} }`).replace('owner: {', 'shard: { splitPoints: [tmp/dead/m] }\n    owner: {'), { file: 'inv.yaml', baseDir: dir });
    const halves = [await audit(m2, { index: 0, count: 2 }), await audit(m2, { index: 1, count: 2 })];
    expect([...halves[0]!.ids, ...halves[1]!.ids].sort()).toEqual(fromReport.ids);
    expect(halves.map((h) => h.ids.length)).toEqual([2, 2]);

    // First reap marks the report's orphans; then one is rewritten and one deleted by hand.
    const first = await runReap(manifest, { execute: true, store });
    expect(first.outcomes).toMatchObject({ marked: 4, deleted: 0 });
    await put('tmp/dead/rewritten', 'v2: written after the report');
    await client.send(new (await import('@aws-sdk/client-s3')).DeleteObjectCommand({ Bucket: bucket, Key: 'tmp/dead/gone' }));
    await waitStoreTime(store, 1_100);

    // The second reap reads the same stale report, but judges each due tombstone on the object as it is now.
    const second = await runReap(manifest, { execute: true, store });
    expect(second.errors).toEqual([]);
    expect(second.outcomes).toMatchObject({ deleted: 2, lifted: 2, failed: 0 });
    const body = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'tmp/dead/rewritten' }));
    expect(await body.Body!.transformToString()).toBe('v2: written after the report');
    for (const key of ['tmp/dead/a', 'tmp/dead/with space']) await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toThrow();

    // The delete itself is conditional on the ETag the report gave: a stale one deletes nothing.
    await put('tmp/dead/stale', 'v1');
    const staleEtag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tmp/dead/stale' }))).ETag!;
    await put('tmp/dead/stale', 'v2, rewritten');
    const connections = new Connections(manifest.connections);
    cleanups.push(() => connections.close());
    const backend = await S3Backend.open(manifest.resources[0] as S3ResourceSpec, connections);
    expect(await backend.delete([{ id: 'tmp/dead/stale', fingerprint: staleEtag }])).toEqual([{ id: 'tmp/dead/stale', outcome: 'changed' }]);
    expect((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tmp/dead/stale' }))).ETag).not.toBe(staleEtag);
  });

  it('costs the report, not a LIST per page of objects, and refuses a report that is neither CSV nor Parquet', async () => {
    const { client, bucket } = await freshBucket(cleanups, 'inventory');
    // Empty the bucket in batches first: the shared cleanup deletes one object at a time.
    cleanups.push(async () => {
      for (;;) {
        const out = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
        if (!out.Contents?.length) return;
        await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: out.Contents.map((o) => ({ Key: o.Key! })) } }));
      }
    });
    // Listed 100 a page (the scan's page size caps MaxKeys), as a bucket of 100 times as many is 1,000 a page.
    const keys = Array.from({ length: 300 }, (_, i) => `tmp/dead/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 100) await Promise.all(keys.slice(i, i + 100).map((key) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }))));
    await writeReport(client, bucket, '2026-12-06T00-00Z', keys);
    const connections = new Connections({
      blobs: { kind: 's3', name: 'blobs', endpoint: s3Settings().endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    cleanups.push(() => connections.close());
    const spec = (inventory: boolean): S3ResourceSpec =>
      ({
        name: 'blobs',
        location: { kind: 's3', connection: 'blobs', bucket, prefix: 'tmp/', ...(inventory ? { inventory: { bucket, prefix: REPORTS } } : {}) },
        owners: [{ extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>[^/]+)/' } }],
        protect: [],
      }) as unknown as S3ResourceSpec;
    const requests = async (inventory: boolean) => {
      const backend = await S3Backend.open(spec(inventory), connections);
      const counts = countRequests(await s3ClientFor(connections, 'blobs'));
      let scanned = 0;
      for await (const page of backend.scan({ pageSize: 100 })) scanned += page.records.length;
      const out = Object.fromEntries(counts);
      (await s3ClientFor(connections, 'blobs')).middlewareStack.remove('countRequests');
      return { scanned, requests: out };
    };
    expect(await requests(false)).toEqual({ scanned: 300, requests: { ListObjectsV2Command: 3 } });
    expect(await requests(true)).toEqual({ scanned: 300, requests: { ListObjectsV2Command: 1, GetObjectCommand: 3 } });

    await writeReport(client, bucket, '2026-12-07T00-00Z', keys.slice(0, 1), { format: 'ORC' });
    const backend = await S3Backend.open(spec(true), connections);
    await expect(
      (async () => {
        for await (const _ of backend.scan({ pageSize: 1000 })) void _;
      })(),
    ).rejects.toThrow(/its format is "ORC"; reaper reads CSV and Parquet inventories/);
  });

  for (const codec of ['SNAPPY', 'GZIP'] as const) {
    it(`reads a Parquet report (${codec}) of a versioned bucket by ranged GETs: current versions only, keys as they are`, async () => {
      const { client, bucket } = await freshBucket(cleanups, 'inventory');
      await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
      cleanups.push(async () => {
        for (;;) {
          const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
          const all = [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
          if (all.length === 0) return;
          await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all } }));
        }
      });
      const keys = Array.from({ length: 150 }, (_, i) => `tmp/dead/${String(i).padStart(5, '0')}`);
      await Promise.all(keys.map((key) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'v1' }))));
      // A key with a space and a percent sign (a CSV report would encode it; a Parquet one does not),
      // a key with two versions, and a key whose current version is a delete marker.
      const odd = 'tmp/dead/50% off & more';
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: odd, Body: 'x' }));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: keys[0], Body: 'v2, longer' }));
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys[1] }));
      const rows = await writeParquetReport(client, bucket, '2026-12-06T00-00Z', { rowGroupSize: 40, codec, files: 2 });
      expect(rows).toBe(keys.length + 1 + 2);

      const dir = testTempDir('reaper-inventory-');
      const manifest = parseManifest(inventoryManifest(dir, bucket, `, inventory: { prefix: ${REPORTS} }`), { file: 'inv.yaml', baseDir: dir });
      const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
      cleanups.push(() => store.close());
      const found = new Map<string, Finding>();
      const doc = await runAudit(manifest, { store, onFinding: (f: Finding) => void found.set(f.id, f) });
      expect(doc.resources[0]!.status, doc.resources[0]!.error ?? '').toBe('ok');
      // Every current version once; the delete-marked key and the old version of keys[0] not at all.
      expect(doc.resources[0]!.scanned).toBe(keys.length);
      expect(found.has(keys[1]!)).toBe(false);
      expect(found.get(odd)?.status).toBe('orphaned');
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keys[0] }));
      expect(found.get(keys[0]!)?.bytes).toBe(head.ContentLength);

      // What a scan costs: 1 LIST of the report folders, 1 GET of the manifest, and per data file
      // one GET (a file this small is all in its footer's read), never a LIST of the bucket.
      const connections = new Connections(manifest.connections);
      cleanups.push(() => connections.close());
      const backend = await S3Backend.open(manifest.resources[0] as S3ResourceSpec, connections);
      const counts = countRequests(await s3ClientFor(connections, 'blobs'));
      let scanned = 0;
      for await (const page of backend.scan({ pageSize: 100 })) scanned += page.records.length;
      expect(scanned).toBe(keys.length);
      expect(counts.get('ListObjectsV2Command')).toBe(1);
      expect(counts.get('GetObjectCommand')).toBe(1 + 2);
      expect([...counts.keys()].sort()).toEqual(['GetObjectCommand', 'ListObjectsV2Command']);
    });
  }

  it('reads a Parquet data file larger than its footer read one row group at a time, by ranged GETs', async () => {
    // 60,000 lines of objects that need not exist (an audit by key pattern reads none of them),
    // with random ETags so the file does not compress below the footer's 512 KiB read.
    const { client, bucket } = await freshBucket(cleanups, 'inventory');
    const n = 60_000;
    const rowGroupSize = 15_000;
    const body = new Uint8Array(
      parquetWriteBuffer({
        rowGroupSize,
        columnData: [
          { name: 'bucket', data: Array.from({ length: n }, () => bucket), type: 'STRING' },
          { name: 'key', data: Array.from({ length: n }, (_, i) => `tmp/dead/${String(i).padStart(6, '0')}`), type: 'STRING' },
          { name: 'size', data: Array.from({ length: n }, (_, i) => BigInt(i)), type: 'INT64' },
          { name: 'last_modified_date', data: Array.from({ length: n }, () => new Date('2026-12-01T00:00:00Z')), type: 'TIMESTAMP' },
          { name: 'e_tag', data: Array.from({ length: n }, () => randomBytes(16).toString('hex')), type: 'STRING' },
        ],
      }),
    );
    expect(body.length).toBeGreaterThan(2 * 512 * 1024);
    const fileKey = `${REPORTS}data/big.parquet`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: fileKey, Body: body }));
    const manifest = {
      sourceBucket: bucket,
      fileFormat: 'Parquet',
      fileSchema: 'message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); }',
      creationTimestamp: String(Date.now()),
      // No size: the file's length is asked for (one HeadObject).
      files: [{ key: fileKey }],
    };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${REPORTS}2026-12-06T00-00Z/manifest.json`, Body: JSON.stringify(manifest) }));
    const dir = testTempDir('reaper-inventory-');
    const m = parseManifest(inventoryManifest(dir, bucket, `, inventory: { prefix: ${REPORTS} }`), { file: 'inv.yaml', baseDir: dir });
    const connections = new Connections(m.connections);
    cleanups.push(() => connections.close());
    const backend = await S3Backend.open(m.resources[0] as S3ResourceSpec, connections);
    const counts = countRequests(await s3ClientFor(connections, 'blobs'));
    const seen: string[] = [];
    let sizes = 0;
    for await (const page of backend.scan({ pageSize: 1000 })) {
      for (const r of page.records) {
        seen.push(r.id);
        sizes += r.bytes ?? 0;
      }
    }
    expect(seen.length).toBe(n);
    expect(new Set(seen).size).toBe(n);
    expect(sizes).toBe((n * (n - 1)) / 2);
    // 1 LIST, 1 GET of the manifest, 1 HEAD, the footer's GET, and one GET per row group not
    // already inside the footer's read (the last may be): 3 or 4 of the 4 row groups.
    expect(counts.get('ListObjectsV2Command')).toBe(1);
    expect(counts.get('HeadObjectCommand')).toBe(1);
    expect(counts.get('GetObjectCommand')).toBeGreaterThanOrEqual(1 + 1 + 3);
    expect(counts.get('GetObjectCommand')).toBeLessThanOrEqual(1 + 1 + n / rowGroupSize);
  });
});
