/**
 * The S3 backend against a real S3 server (moto_server, started by the global setup).
 * Each test works in its own bucket, removed afterwards unless the test failed.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Connections } from '../../src/backends/connections.js';
import { READ_BY_LISTING_MIN_IDS, S3Backend, type S3BackendOptions, type S3ResourceSpec } from '../../src/backends/s3/s3-backend.js';
import { decodeListedKey, s3ClientConfig } from '../../src/backends/s3/s3-client.js';
import { batchOutcomes } from '../../src/backends/s3/s3-delete.js';
import type { ScanPage } from '../../src/backends/types.js';
import { classify, readOwner } from '../../src/engine/classify.js';
import { SafetyError } from '../../src/errors.js';
import type { ResourceRecord } from '../../src/engine/types.js';
import { parseManifest } from '../../src/manifest/load.js';
import { mapLimit } from '../../src/util/concurrency.js';
import type { OwnerRule, S3ConnectionSpec } from '../../src/manifest/types.js';
import { runCleanups, s3Settings, serviceAvailable } from './support/services.js';

const PREFIX = 'tmp/';
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

describe('S3 batch delete results', () => {
  it('maps each DeleteObjects entry to its item, and anything unreported to failed', () => {
    const items = ['tmp/a', 'tmp/b', 'tmp/c', 'tmp/d', 'tmp/e'].map((id) => ({ id, fingerprint: '"e"' }));
    const results = batchOutcomes(items, {
      Deleted: [{ Key: 'tmp/a' }],
      Errors: [
        { Key: 'tmp/b', Code: 'PreconditionFailed', Message: 'At least one of the pre-conditions you specified did not hold' },
        { Key: 'tmp/c', Code: 'NoSuchKey', Message: 'The specified key does not exist.' },
        { Key: 'tmp/d', Code: 'AccessDenied', Message: 'Access Denied' },
      ],
    });
    expect(results.map((r) => [r.id, r.outcome])).toEqual([
      ['tmp/a', 'deleted'],
      ['tmp/b', 'changed'],
      ['tmp/c', 'absent'],
      ['tmp/d', 'failed'],
      ['tmp/e', 'failed'],
    ]);
    expect(results[3]!.error).toContain('AccessDenied');
  });
});

describe('S3 listed keys', () => {
  it('form-decodes url-encoded keys (S3 writes a space as +) and takes keys verbatim when the server did not encode them', () => {
    expect(decodeListedKey('tmp/a+b%2Bc%0A%25%20d', true)).toBe('tmp/a b+c\n% d');
    expect(decodeListedKey('tmp/caf%C3%A9', true)).toBe('tmp/caf\u00e9');
    expect(decodeListedKey('tmp/a+b%2B', false)).toBe('tmp/a+b%2B');
    expect(() => decodeListedKey('tmp/%zz', true)).toThrow(/not valid URL encoding/);
  });
});

describe.skipIf(!serviceAvailable('s3'))('S3 backend (moto)', () => {
  let settings: ReturnType<typeof s3Settings>;
  let admin: S3Client;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(() => {
    settings = s3Settings();
    admin = new S3Client(s3ClientConfig(connectionSpec()));
    return () => admin.destroy();
  });
  afterEach(() => runCleanups(cleanups));

  function connectionSpec(): S3ConnectionSpec {
    return { kind: 's3', name: 'blobs', forcePathStyle: true, concurrency: 8, ...s3Settings() };
  }

  /** A fresh bucket, emptied and removed after the test unless it failed (then kept as evidence). */
  async function freshBucket(options: { versioned?: boolean } = {}): Promise<string> {
    const bucket = `reaper-t-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    if (options.versioned) {
      await admin.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    }
    let failed = false;
    onTestFailed(() => {
      failed = true;
    });
    cleanups.push(async () => {
      if (failed) return;
      await emptyBucket(bucket, options.versioned === true);
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
    });
    return bucket;
  }

  async function emptyBucket(bucket: string, versioned: boolean): Promise<void> {
    while (true) {
      let objects: { Key: string; VersionId?: string }[];
      if (versioned) {
        const out = await admin.send(new ListObjectVersionsCommand({ Bucket: bucket }));
        objects = [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
      } else {
        const out = await admin.send(new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'url' }));
        objects = (out.Contents ?? []).map((o) => ({ Key: decodeURIComponent(o.Key!.replace(/\+/g, ' ')) }));
      }
      if (objects.length === 0) return;
      await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
    }
  }

  /** Connections for the test; `instrument` sees the shared client before the backend gets it. */
  async function connectionsFor(instrument?: (client: S3Client) => void): Promise<Connections> {
    const connections = new Connections({ blobs: connectionSpec() });
    cleanups.push(() => connections.close());
    if (instrument) {
      await connections.client(
        'blobs',
        async (spec) => {
          const client = new S3Client(s3ClientConfig(spec as S3ConnectionSpec));
          instrument(client);
          return client;
        },
        (client) => client.destroy(),
      );
    }
    return connections;
  }

  function resourceSpec(bucket: string, overrides: Partial<S3ResourceSpec> = {}): S3ResourceSpec {
    return {
      name: 'uploads',
      location: { kind: 's3', connection: 'blobs', bucket, prefix: PREFIX },
      owners: [{ extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>[^/]+)/' } }],
      minAgeMs: 0,
      graceMs: 0,
      batchSize: 100,
      maxDeletesPerRun: 1000,
      maxDeleteFraction: 1,
      onExpired: 'report',
      protect: [],
      ageFrom: 'mtime',
      line: null,
      ...overrides,
    };
  }

  async function open(
    bucket: string,
    overrides: Partial<S3ResourceSpec> = {},
    instrument?: (client: S3Client) => void,
    options: S3BackendOptions = {},
  ): Promise<S3Backend> {
    return S3Backend.open(resourceSpec(bucket, overrides), await connectionsFor(instrument), options);
  }

  /** A backend for the resource of a manifest whose s3 location has `deleteMode: MODE` (the loader's normalised spec). */
  async function openFromManifest(bucket: string, deleteMode: string, instrument?: (client: S3Client) => void, options: S3BackendOptions = {}): Promise<S3Backend> {
    const manifest = parseManifest(
      [
        'version: 1',
        'connections:',
        '  blobs: { kind: s3, region: us-east-1 }',
        'resources:',
        '  - name: uploads',
        `    s3: { connection: blobs, bucket: ${bucket}, prefix: ${PREFIX}, deleteMode: ${deleteMode} }`,
        `    owner: { keyPattern: "^${PREFIX}(?<owner>[^/]+)/" }`,
        '',
      ].join('\n'),
      { file: 'reaper.yaml', baseDir: '/srv/reaper' },
    );
    const spec = manifest.resources[0]! as S3ResourceSpec;
    expect(spec.location).toMatchObject({ kind: 's3', bucket, prefix: PREFIX, deleteMode });
    return S3Backend.open(spec, await connectionsFor(instrument), options);
  }

  async function put(bucket: string, key: string, body: string, extra: { Metadata?: Record<string, string>; Tagging?: string } = {}) {
    const out = await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...extra }));
    // moto orders the versions of a key by LastModified in milliseconds: keep consecutive versions apart.
    await new Promise((resolve) => setTimeout(resolve, 3));
    return out;
  }

  /**
   * Upload through S3's browser-form POST, where the key travels in the body: moto's HTTP
   * router cannot take a newline inside a URL path, so this is how such a key gets there.
   */
  async function postObject(bucket: string, key: string, body: string): Promise<void> {
    const boundary = `reaper${randomBytes(8).toString('hex')}`;
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n`),
      Buffer.from(key, 'utf8'),
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: application/octet-stream\r\n\r\n${body}\r\n--${boundary}--\r\n`),
    ]);
    const res = await fetch(`${settings.endpoint}/${bucket}`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body: payload });
    expect(res.status).toBeLessThan(300);
  }

  async function exists(bucket: string, key: string): Promise<string | null> {
    try {
      return (await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag ?? null;
    } catch (error) {
      if ((error as S3ServiceException).$metadata?.httpStatusCode === 404) return null;
      throw error;
    }
  }

  async function body(bucket: string, key: string): Promise<string> {
    return (await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
  }

  async function scanAll(backend: S3Backend, pageSize: number, cursor?: string | null): Promise<ScanPage[]> {
    const pages: ScanPage[] = [];
    for await (const page of backend.scan({ pageSize, cursor })) pages.push(page);
    return pages;
  }

  const ids = (pages: ScanPage[]) => pages.flatMap((p) => p.records.map((r) => r.id));

  /** Count requests by command, and optionally fail one before it is sent. */
  function instrumentClient(counts: Map<string, number>, fail?: (command: string, input: { Key?: string }) => Error | null | Promise<Error | null>) {
    return (client: S3Client) => {
      client.middlewareStack.add(
        (next, context) => async (args) => {
          counts.set(context.commandName!, (counts.get(context.commandName!) ?? 0) + 1);
          const error = await fail?.(context.commandName!, args.input as { Key?: string });
          if (error) throw error;
          return next(args);
        },
        { step: 'initialize', name: 'reaperTestInstrument' },
      );
    };
  }

  /** Count requests by command, and keep each request's command and input in order. */
  function recordClient(counts: Map<string, number>, sent: { command: string; input: Record<string, unknown> }[]) {
    return instrumentClient(counts, (command, input) => {
      sent.push({ command, input: input as Record<string, unknown> });
      return null;
    });
  }

  /** Put one small object per key, a few at a time (no versions of one key among them). */
  async function putMany(bucket: string, keys: readonly string[]): Promise<void> {
    await mapLimit(keys, 8, (key) => admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` })));
  }

  /** Every record a scan of the backend gives, by id. */
  async function scanned(backend: S3Backend): Promise<Map<string, ResourceRecord>> {
    return new Map((await scanAll(backend, 1000)).flatMap((p) => p.records).map((r) => [r.id, r]));
  }

  /** The records a scan gives for those of `ids` that are present, in key order. */
  const presentOf = (scan: Map<string, ResourceRecord>, ids: readonly string[]) =>
    [...new Set(ids)].filter((id) => scan.has(id)).sort(byUtf8).map((id) => scan.get(id)!);

  const sortedRecords = (read: Map<string, ResourceRecord>) => [...read.values()].sort((a, b) => byUtf8(a.id, b.id));

  it('pages in key order with a cursor that resumes exactly after the last key emitted', async () => {
    const bucket = await freshBucket();
    const keys = Array.from({ length: 25 }, (_, i) => `${PREFIX}svc-${i % 3}/obj-${String(i).padStart(3, '0')}`).sort(byUtf8);
    const etags = new Map<string, string>();
    for (const key of keys) etags.set(key, (await put(bucket, key, `body of ${key}`)).ETag!);
    await put(bucket, 'other/outside', 'not in scope');
    await put(bucket, 'tmpx/lookalike', 'not in scope');
    // What a run killed mid-probe leaves: reaper's own probe object is no resource (never audited,
    // counted or reaped); a key that merely looks like one is.
    await put(bucket, `${PREFIX}.reaper-probe-0b7a3c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c`, 'reaper conditional-delete probe\n');
    const lookalike = `${PREFIX}.reaper-probe-not-a-uuid`;
    etags.set(lookalike, (await put(bucket, lookalike, `body of ${lookalike}`)).ETag!);
    keys.push(lookalike);
    keys.sort(byUtf8);

    const counts = new Map<string, number>();
    const backend = await open(bucket, {}, instrumentClient(counts));
    const pages = await scanAll(backend, 10);
    expect(pages.map((p) => p.records.length)).toEqual([10, 10, 6]);
    expect(pages.map((p) => p.cursor)).toEqual([keys[9], keys[19], null]);
    expect(ids(pages)).toEqual(keys);
    const first = pages[0]!.records[0]!;
    expect(first.fingerprint).toBe(etags.get(first.id));
    expect(first.fingerprint).toMatch(/^".+"$/);
    expect(first.bytes).toBe(Buffer.byteLength(`body of ${first.id}`));
    expect(Math.abs(first.createdAtMs! - Date.now())).toBeLessThan(60_000);
    expect(first.tags).toBeUndefined();
    expect(first.metadata).toBeUndefined();
    // keyPattern owners need nothing beyond the listing: 3 pages of 10 keys (27 listed) = 3 requests.
    expect(counts.get('ListObjectsV2Command')).toBe(3);
    expect(counts.get('HeadObjectCommand')).toBeUndefined();
    expect(counts.get('GetObjectTaggingCommand')).toBeUndefined();

    const resumed = await scanAll(backend, 10, pages[0]!.cursor);
    expect(ids(resumed)).toEqual(keys.slice(10));
    expect(resumed.at(-1)!.cursor).toBeNull();
    const fromLast = await scanAll(backend, 10, keys.at(-1));
    expect(ids(fromLast)).toEqual([]);
    expect(fromLast).toEqual([{ records: [], cursor: null }]);
  });

  it('reports hostile keys byte-exactly: newline, carriage return, "..", +, %, 1,024 bytes, NFC and NFD twins', async () => {
    const bucket = await freshBucket();
    const longKey = `${PREFIX}${'é'.repeat(500)}${'k'.repeat(20)}`;
    expect(Buffer.byteLength(longKey, 'utf8')).toBe(1024);
    const viaPath = [
      `${PREFIX}cr\rreturn`,
      `${PREFIX}../escape`,
      `${PREFIX}a/../../b`,
      `${PREFIX}space and+plus%41%2F`,
      `${PREFIX}caf\u00e9`,
      `${PREFIX}cafe\u0301`,
      `${PREFIX} leading and trailing `,
      `${PREFIX}tab\there`,
      `${PREFIX}emoji-😀`,
      longKey,
    ];
    for (const key of viaPath) await put(bucket, key, 'x');
    const newline = `${PREFIX}line\nfeed`;
    await postObject(bucket, newline, 'x');
    const expected = [...viaPath, newline].sort(byUtf8);
    expect(new Set(expected).size).toBe(expected.length);

    const backend = await open(bucket);
    const listed = ids(await scanAll(backend, 100));
    expect(listed).toEqual(expected);
    expect(listed.map((k) => Buffer.from(k, 'utf8').toString('hex'))).toEqual(expected.map((k) => Buffer.from(k, 'utf8').toString('hex')));

    // Paging through them, each cursor a hostile key, yields the same list with no gaps or repeats.
    const paged = await scanAll(backend, 2);
    expect(ids(paged)).toEqual(expected);
    const nfd = `${PREFIX}cafe\u0301`;
    const resumed = ids(await scanAll(backend, 100, nfd));
    expect(resumed).toEqual(expected.slice(expected.indexOf(nfd) + 1));

    // read() finds them by their exact bytes (the newline key is left out: moto cannot route it in a URL path).
    const read = await backend.read(viaPath);
    expect([...read.keys()].sort(byUtf8)).toEqual([...viaPath].sort(byUtf8));
    expect((await backend.read([`${PREFIX}cafe`, `${PREFIX}caf\u00e9 `, `${PREFIX}cr\nreturn`])).size).toBe(0);
  });

  it('reads metadata and tag owners, and protect rules, only when they are needed', async () => {
    const bucket = await freshBucket();
    await put(bucket, `${PREFIX}m1`, 'x', { Metadata: { owner: 'session-a' } });
    await put(bucket, `${PREFIX}m2`, 'x', { Metadata: { other: 'y' } });
    await put(bucket, `${PREFIX}t1`, 'x', { Tagging: 'owner=session-b&keep=true' });
    await put(bucket, `${PREFIX}t2`, 'x', { Tagging: 'owner=session-c' });

    const metadataRule: OwnerRule = { extractor: { from: 'metadata', name: 'Owner' }, keyTemplate: 'session:{value}' };
    const metaCounts = new Map<string, number>();
    const byMetadata = await open(bucket, { owners: [metadataRule] }, instrumentClient(metaCounts));
    const metaRecords = (await scanAll(byMetadata, 100)).flatMap((p) => p.records);
    expect(metaRecords.map((r) => r.metadata)).toEqual([{ owner: 'session-a' }, { other: 'y' }, {}, {}]);
    expect(metaRecords.every((r) => r.tags === undefined && r.unreadable === undefined)).toBe(true);
    expect(readOwner(metaRecords[0]!, metadataRule)).toEqual({ kind: 'key', key: 'session:session-a' });
    expect(readOwner(metaRecords[1]!, metadataRule)).toEqual({ kind: 'none' });
    expect(metaCounts.get('HeadObjectCommand')).toBe(4);
    expect(metaCounts.get('GetObjectTaggingCommand')).toBeUndefined();

    const tagRule: OwnerRule = { extractor: { from: 'tag', name: 'owner' } };
    const tagCounts = new Map<string, number>();
    const byTag = await open(bucket, { owners: [tagRule], protect: [{ kind: 'tag', match: { keep: 'true' } }] }, instrumentClient(tagCounts));
    const tagRecords = (await scanAll(byTag, 100)).flatMap((p) => p.records);
    expect(tagRecords.map((r) => r.tags)).toEqual([{}, {}, { owner: 'session-b', keep: 'true' }, { owner: 'session-c' }]);
    expect(tagRecords.every((r) => r.metadata === undefined)).toBe(true);
    expect(readOwner(tagRecords[3]!, tagRule)).toEqual({ kind: 'key', key: 'session-c' });
    expect(tagCounts.get('GetObjectTaggingCommand')).toBe(4);
    expect(tagCounts.get('HeadObjectCommand')).toBeUndefined();

    // The protect rule on a tag is judged from what was read: t1 is protected, t2 orphaned (its owner is dead).
    const spec = resourceSpec(bucket, { owners: [tagRule], protect: [{ kind: 'tag', match: { keep: 'true' } }] });
    const dead = { key: () => 'dead' as const, ref: () => 'dead' as const };
    const now = Date.now() + 1000;
    expect(classify(tagRecords[2]!, spec, dead, now).status).toBe('protected');
    expect(classify(tagRecords[3]!, spec, dead, now)).toMatchObject({ status: 'orphaned', reason: 'owner-dead', owner: 'session-c' });

    // read() gives the same shape.
    const again = await byTag.read([`${PREFIX}t1`, `${PREFIX}nope`]);
    expect([...again.keys()]).toEqual([`${PREFIX}t1`]);
    expect(again.get(`${PREFIX}t1`)).toMatchObject({ tags: { owner: 'session-b', keep: 'true' }, fingerprint: tagRecords[2]!.fingerprint });
  });

  it('marks an object whose attributes cannot be read unreadable, and drops one that vanished mid-scan', async () => {
    const bucket = await freshBucket();
    for (const name of ['a', 'denied', 'vanishing', 'z']) await put(bucket, `${PREFIX}${name}`, 'x', { Tagging: `owner=${name}` });
    const tagRule: OwnerRule = { extractor: { from: 'tag', name: 'owner' } };
    const counts = new Map<string, number>();
    const backend = await open(
      bucket,
      { owners: [tagRule] },
      instrumentClient(counts, async (command, input) => {
        if (command !== 'GetObjectTaggingCommand') return null;
        if (input.Key === `${PREFIX}denied`) {
          // What S3 answers when a policy denies s3:GetObjectTagging on one object.
          return new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' });
        }
        // Deleted by someone else between the listing and this read.
        if (input.Key === `${PREFIX}vanishing`) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: input.Key }));
        return null;
      }),
    );
    const records = (await scanAll(backend, 100)).flatMap((p) => p.records);
    expect(records.map((r) => r.id)).toEqual([`${PREFIX}a`, `${PREFIX}denied`, `${PREFIX}z`]);
    const denied = records[1]!;
    expect(denied.unreadable).toMatch(/GetObjectTagging: AccessDenied/);
    expect(denied.tags).toBeUndefined();
    expect(records[0]!.tags).toEqual({ owner: 'a' });
    expect(records[0]!.unreadable).toBeUndefined();
    const spec = resourceSpec(bucket, { owners: [tagRule] });
    const dead = { key: () => 'dead' as const, ref: () => 'dead' as const };
    expect(classify(denied, spec, dead, Date.now() + 1000)).toMatchObject({ status: 'unknown', reason: 'attributes-unreadable' });
  });

  it('lists the current versions of a versioned bucket, fingerprinted ETag#versionId', async () => {
    const bucket = await freshBucket({ versioned: true });
    await put(bucket, `${PREFIX}a`, 'first');
    const a2 = await put(bucket, `${PREFIX}a`, 'second');
    const b = await put(bucket, `${PREFIX}b`, 'only');
    await put(bucket, `${PREFIX}c`, 'deleted later');
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}c` }));
    const d = await put(bucket, `${PREFIX}d`, 'after c');

    const backend = await open(bucket);
    expect(backend.versioned).toBe(true);
    const records = (await scanAll(backend, 100)).flatMap((p) => p.records);
    expect(records.map((r) => [r.id, r.fingerprint])).toEqual([
      [`${PREFIX}a`, `${a2.ETag}#${a2.VersionId}`],
      [`${PREFIX}b`, `${b.ETag}#${b.VersionId}`],
      [`${PREFIX}d`, `${d.ETag}#${d.VersionId}`],
    ]);
    expect(records[0]!.bytes).toBe('second'.length);

    const paged = await scanAll(backend, 1);
    expect(ids(paged)).toEqual([`${PREFIX}a`, `${PREFIX}b`, `${PREFIX}d`]);
    expect(ids(await scanAll(backend, 1, `${PREFIX}a`))).toEqual([`${PREFIX}b`, `${PREFIX}d`]);

    const read = await backend.read([`${PREFIX}a`, `${PREFIX}c`]);
    expect([...read.keys()]).toEqual([`${PREFIX}a`]);
    expect(read.get(`${PREFIX}a`)!.fingerprint).toBe(records[0]!.fingerprint);

    // Owners are read from the listed version itself.
    const a3 = await put(bucket, `${PREFIX}a`, 'third', { Metadata: { owner: 'meta-owner' }, Tagging: 'owner=tag-owner' });
    const byBoth = await open(bucket, {
      owners: [{ extractor: { from: 'metadata', name: 'owner' } }, { extractor: { from: 'tag', name: 'owner' } }],
    });
    const [current] = (await scanAll(byBoth, 1)).flatMap((p) => p.records);
    expect(current).toMatchObject({ id: `${PREFIX}a`, fingerprint: `${a3.ETag}#${a3.VersionId}`, metadata: { owner: 'meta-owner' }, tags: { owner: 'tag-owner' } });
    expect((await byBoth.read([`${PREFIX}a`])).get(`${PREFIX}a`)).toMatchObject({ fingerprint: current!.fingerprint, tags: { owner: 'tag-owner' } });
  });

  it('probes moto: DeleteObjects ignores per-object ETags, so deletes go one by one with If-Match', async () => {
    const bucket = await freshBucket();
    // The premise, seen directly: a DeleteObjects entry with a wrong ETag still deletes on this server.
    await put(bucket, `${PREFIX}premise`, 'x');
    await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: `${PREFIX}premise`, ETag: '"0000"' }] } }));
    expect(await exists(bucket, `${PREFIX}premise`)).toBeNull();

    const backend = await open(bucket);
    expect(await backend.capabilities()).toEqual({ deleteMode: 's3-per-object-if-match' });
    // No `mark` in the manifest: no mark is written, whatever S3 could carry.
    expect(backend.mark).toBeUndefined();
    expect(backend.unmark).toBeUndefined();
    // The probe object is gone, and the answer is remembered.
    const left = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(left.KeyCount ?? 0).toBe(0);
    expect((await backend.capabilities()).deleteMode).toBe('s3-per-object-if-match');

    const versionedBucket = await freshBucket({ versioned: true });
    const versioned = await open(versionedBucket);
    expect(await versioned.capabilities()).toEqual({ deleteMode: 's3-versioned-delete-marker' });
    const versions = await admin.send(new ListObjectVersionsCommand({ Bucket: versionedBucket }));
    expect([...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])]).toEqual([]);
  });

  it('deletes only what still matches its fingerprint, inside the prefix', async () => {
    const bucket = await freshBucket();
    for (const name of ['same', 'overwritten', 'gone']) await put(bucket, `${PREFIX}${name}`, `v1 of ${name}`);
    await put(bucket, 'other/outside', 'x');
    await put(bucket, 'tmpx/lookalike', 'x');
    const backend = await open(bucket);
    const scanned = new Map((await scanAll(backend, 100)).flatMap((p) => p.records).map((r) => [r.id, r.fingerprint]));

    await put(bucket, `${PREFIX}overwritten`, 'v2, written by a live owner after the mark');
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}gone` }));
    const outsideEtag = (await exists(bucket, 'other/outside'))!;
    const lookalikeEtag = (await exists(bucket, 'tmpx/lookalike'))!;

    const results = await backend.delete([
      { id: `${PREFIX}same`, fingerprint: scanned.get(`${PREFIX}same`)! },
      { id: `${PREFIX}overwritten`, fingerprint: scanned.get(`${PREFIX}overwritten`)! },
      { id: `${PREFIX}gone`, fingerprint: scanned.get(`${PREFIX}gone`)! },
      { id: 'other/outside', fingerprint: outsideEtag },
      { id: 'tmpx/lookalike', fingerprint: lookalikeEtag },
    ]);
    expect(results.map((r) => [r.id, r.outcome])).toEqual([
      [`${PREFIX}same`, 'deleted'],
      [`${PREFIX}overwritten`, 'changed'],
      [`${PREFIX}gone`, 'absent'],
      ['other/outside', 'failed'],
      ['tmpx/lookalike', 'failed'],
    ]);
    expect(results[3]!.error).toMatch(/outside the scope/);
    expect(results.every((r) => r.restoreHandle === undefined)).toBe(true);

    expect(await exists(bucket, `${PREFIX}same`)).toBeNull();
    expect(await body(bucket, `${PREFIX}overwritten`)).toBe('v2, written by a live owner after the mark');
    expect(await exists(bucket, 'other/outside')).toBe(outsideEtag);
    expect(await exists(bucket, 'tmpx/lookalike')).toBe(lookalikeEtag);
    // read() does not look outside the prefix either.
    expect((await backend.read(['other/outside'])).size).toBe(0);

    // The negative: without If-Match this server deletes the overwritten object, so the precondition is what kept it.
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}overwritten` }));
    expect(await exists(bucket, `${PREFIX}overwritten`)).toBeNull();
  });

  it('deletes in a versioned bucket with a delete marker, and restores from it', async () => {
    const bucket = await freshBucket({ versioned: true });
    await put(bucket, `${PREFIX}keep-me`, 'precious');
    await put(bucket, `${PREFIX}rewritten`, 'same bytes');
    const backend = await open(bucket);
    const scanned = new Map((await scanAll(backend, 100)).flatMap((p) => p.records).map((r) => [r.id, r.fingerprint]));
    // A new version with identical content has the same ETag: only the version id tells them apart.
    await put(bucket, `${PREFIX}rewritten`, 'same bytes');

    const [deleted, rewritten] = await backend.delete([
      { id: `${PREFIX}keep-me`, fingerprint: scanned.get(`${PREFIX}keep-me`)! },
      { id: `${PREFIX}rewritten`, fingerprint: scanned.get(`${PREFIX}rewritten`)! },
    ]);
    expect(deleted).toMatchObject({ outcome: 'deleted' });
    expect(rewritten).toMatchObject({ outcome: 'changed' });
    expect(await exists(bucket, `${PREFIX}rewritten`)).not.toBeNull();
    // The negative: If-Match alone would have passed for the rewritten object.
    const etagOnly = await admin.send(
      new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}rewritten`, IfMatch: scanned.get(`${PREFIX}rewritten`)!.split('#')[0] }),
    );
    expect(etagOnly.DeleteMarker).toBe(true);

    const handle = deleted!.restoreHandle!;
    expect(handle).toBeTruthy();
    expect(await exists(bucket, `${PREFIX}keep-me`)).toBeNull();
    const markers = (await admin.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `${PREFIX}keep-me` }))).DeleteMarkers ?? [];
    expect(markers.map((m) => [m.VersionId, m.IsLatest])).toEqual([[handle, true]]);

    // A handle naming a real version is refused: removing it would destroy data.
    const objectVersion = scanned.get(`${PREFIX}keep-me`)!.split('#')[1]!;
    await expect(backend.restore(`${PREFIX}keep-me`, objectVersion)).rejects.toThrow(/not a delete marker/);
    // A key outside the prefix is a safety refusal (exit 4), not a backend failure.
    await expect(backend.restore('other/x', handle)).rejects.toThrow(SafetyError);
    await expect(backend.restore('other/x', handle)).rejects.toThrow(/outside the scope/);

    await backend.restore(`${PREFIX}keep-me`, handle);
    expect(await body(bucket, `${PREFIX}keep-me`)).toBe('precious');
    const restored = await backend.read([`${PREFIX}keep-me`]);
    expect(restored.get(`${PREFIX}keep-me`)!.fingerprint).toBe(scanned.get(`${PREFIX}keep-me`));
    // Restoring again is a no-op once the object is back.
    await backend.restore(`${PREFIX}keep-me`, handle);
    expect(await body(bucket, `${PREFIX}keep-me`)).toBe('precious');

    const plain = await open(await freshBucket());
    await expect(plain.restore(`${PREFIX}keep-me`, handle)).rejects.toThrow(/versioning enabled/);
  });

  it('marks with a tag merged into the existing ones, skips changed objects, and unmarks', async () => {
    const bucket = await freshBucket();
    await put(bucket, `${PREFIX}tagged`, 'x', { Tagging: 'owner=gone-session' });
    await put(bucket, `${PREFIX}bare`, 'x');
    await put(bucket, `${PREFIX}changed`, 'v1');
    const backend = await open(bucket, { mark: { kind: 'tag', tag: 'reaper-tombstone' } });
    expect(backend.mark).toBeDefined();
    expect(backend.unmark).toBeDefined();
    const scanned = (await scanAll(backend, 100)).flatMap((p) => p.records);
    const items = scanned.map((r) => ({ id: r.id, fingerprint: r.fingerprint }));
    await put(bucket, `${PREFIX}changed`, 'v2');

    const marked = await backend.mark!(items, 'run-42');
    const expectedMarks = scanned.filter((r) => r.id !== `${PREFIX}changed`).map((r): [string, string] => [r.id, r.fingerprint]);
    expect([...marked].sort()).toEqual(expectedMarks.sort());
    const tagsOf = async (key: string) =>
      Object.fromEntries(((await admin.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
    expect(await tagsOf(`${PREFIX}tagged`)).toEqual({ owner: 'gone-session', 'reaper-tombstone': 'run-42' });
    expect(await tagsOf(`${PREFIX}bare`)).toEqual({ 'reaper-tombstone': 'run-42' });
    expect(await tagsOf(`${PREFIX}changed`)).toEqual({});
    // Tagging leaves the ETag alone: the fingerprint taken at scan time still deletes conditionally.
    expect((await backend.read([`${PREFIX}bare`])).get(`${PREFIX}bare`)!.fingerprint).toBe(marked.get(`${PREFIX}bare`));

    await backend.unmark!(items);
    expect(await tagsOf(`${PREFIX}tagged`)).toEqual({ owner: 'gone-session' });
    expect(await tagsOf(`${PREFIX}bare`)).toEqual({});

    const unmarked = await open(bucket);
    expect(unmarked.mark).toBeUndefined();
    expect(unmarked.unmark).toBeUndefined();
  });

  it('names the scope and the cause when the bucket cannot be opened', async () => {
    const missing = `reaper-missing-${randomBytes(4).toString('hex')}`;
    await expect(open(missing)).rejects.toThrow(new RegExp(`^s3://${missing}/tmp/: cannot read the bucket's versioning: the bucket "${missing}" does not exist at http`));
  });

  it('stops when its signal is aborted', async () => {
    const bucket = await freshBucket();
    await put(bucket, `${PREFIX}a`, 'x');
    const backend = await open(bucket);
    const controller = new AbortController();
    controller.abort();
    await expect(scanAll2(backend, controller.signal)).rejects.toThrow(/abort/i);
    await expect(backend.read([`${PREFIX}a`], controller.signal)).rejects.toThrow(/abort/i);
    expect(await exists(bucket, `${PREFIX}a`)).not.toBeNull();
  });

  describe('read(ids) by listing', () => {
    it('reads 32 or more ids from listings that seek over gaps, exactly as a scan describes them, with no HeadObject', async () => {
      const bucket = await freshBucket();
      const dense = Array.from({ length: 24 }, (_, i) => `${PREFIX}d/k${String(i).padStart(2, '0')}`);
      const groups = Array.from({ length: 8 }, (_, g) => Array.from({ length: 5 }, (_, k) => `${PREFIX}s/${String(g).padStart(2, '0')}/k${k}`));
      // Multi-byte keys: U+FF5E sorts before an emoji in UTF-8 (S3's order) but after it in UTF-16.
      const unicode = [`${PREFIX}u/\u00e9`, `${PREFIX}u/\uff5e`, `${PREFIX}u/\u{1F600}`, `${PREFIX}u/x\u{1F600}`];
      await putMany(bucket, [...dense, ...groups.flat(), ...unicode, 'other/x', 'tmpx/y']);
      for (const key of [`${PREFIX}s/03/k5`, `${PREFIX}u/\u00e9-gone`]) {
        await put(bucket, key, 'deleted again');
        await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      }

      const counts = new Map<string, number>();
      const backend = await open(bucket, {}, instrumentClient(counts), { readListingPageSize: 3 });
      const scan = await scanned(backend);
      expect(scan.size).toBe(dense.length + groups.flat().length + unicode.length);

      const wanted = [
        `${PREFIX}0`, // before every key
        ...dense.slice(0, 12),
        `${PREFIX}d/k24`, // never written, just past the dense run
        ...groups.flatMap((g) => g.slice(0, 2)),
        `${PREFIX}s/03/k5`, // deleted
        `${PREFIX}u/x\u{1F601}`, // never written; shares its first UTF-16 unit with the key before it
        ...unicode,
        `${PREFIX}u/\u00e9-gone`, // deleted
        `${PREFIX}zzz`, // after every key
        dense[3]!, // repeated
        groups[0]![0]!, // repeated
        'other/x', // outside the prefix, present in the bucket
        'tmpx/y',
      ];
      const inScope = new Set(wanted.filter((id) => id.startsWith(PREFIX)));
      expect(inScope.size).toBe(38);
      expect(inScope.size).toBeGreaterThanOrEqual(READ_BY_LISTING_MIN_IDS);
      counts.clear();
      const read = await backend.read(wanted);
      const expected = presentOf(scan, wanted);
      expect(expected).toHaveLength(12 + 16 + 4);
      expect(sortedRecords(read)).toEqual(expected);
      for (const absent of [`${PREFIX}0`, `${PREFIX}d/k24`, `${PREFIX}s/03/k5`, `${PREFIX}u/x\u{1F601}`, `${PREFIX}u/\u00e9-gone`, `${PREFIX}zzz`, 'other/x', 'tmpx/y']) {
        expect(read.has(absent)).toBe(false);
      }
      expect(counts.get('HeadObjectCommand')).toBeUndefined();
      // The walk, 3 keys a page: 4 pages for d/k00–k11; a seek to "tmp/d/k2" and 2 pages for
      // d/k24 (d/k20–k23, then s/00/k0–k1); one seek and page per s group 01–07, plus one for
      // s/03/k5 (walked past to s/04/k0); a seek to "tmp/u/x" and 2 pages for the u keys.
      // 16 requests for 38 ids; a walk of every key would take 23, one HeadObject per id 38.
      expect(counts.get('ListObjectsV2Command')).toBe(16);

      // Below 32 ids, one HeadObject each: the same objects (LastModified there has whole seconds).
      counts.clear();
      const few = expected.slice(0, READ_BY_LISTING_MIN_IDS - 1).map((r) => r.id);
      const headed = await backend.read(few);
      expect(counts.get('HeadObjectCommand')).toBe(few.length);
      expect(counts.get('ListObjectsV2Command')).toBeUndefined();
      const shape = (r: ResourceRecord) => [r.id, r.fingerprint, r.bytes, Math.floor(r.createdAtMs! / 1000)];
      expect(sortedRecords(headed).map(shape)).toEqual(expected.slice(0, few.length).map(shape));
    });

    it('reads the current versions in a versioned bucket: a delete marker means absent, versions may straddle pages', async () => {
      const bucket = await freshBucket({ versioned: true });
      const v = (name: string) => `${PREFIX}v/${name}`;
      const removeKey = async (key: string) => {
        await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        await new Promise((resolve) => setTimeout(resolve, 3));
      };
      await put(bucket, v('a'), 'one version');
      for (const n of [1, 2, 3, 4]) await put(bucket, v('b'), `version ${n}`); // 4 versions: they straddle a page of 3
      await put(bucket, v('c'), 'deleted');
      await removeKey(v('c'));
      for (const n of [1, 2, 3]) await put(bucket, v('d'), `version ${n}`);
      await removeKey(v('d')); // 4 entries, the newest a delete marker
      await put(bucket, v('e'), 'before the delete');
      await removeKey(v('e'));
      await put(bucket, v('e'), 'written again'); // current again after a delete marker
      await put(bucket, v('f'), 'one version');
      const w = Array.from({ length: 40 }, (_, i) => `${PREFIX}w/k${String(i).padStart(2, '0')}`);
      await putMany(bucket, w);

      const counts = new Map<string, number>();
      const sent: { command: string; input: Record<string, unknown> }[] = [];
      const backend = await open(bucket, {}, recordClient(counts, sent), { readListingPageSize: 3 });
      const scan = await scanned(backend);
      expect([...scan.keys()].filter((id) => id.startsWith(`${PREFIX}v/`))).toEqual([v('a'), v('b'), v('e'), v('f')]);

      const wanted = [...['a', 'b', 'c', 'd', 'e', 'f', 'g'].map(v), ...w.slice(0, 10), `${PREFIX}w/k15x`, ...w.slice(20, 35)];
      expect(wanted.length).toBeGreaterThanOrEqual(READ_BY_LISTING_MIN_IDS);
      counts.clear();
      sent.length = 0;
      const read = await backend.read(wanted);
      expect(sortedRecords(read)).toEqual(presentOf(scan, wanted));
      expect(read.get(v('b'))!.fingerprint).toBe(scan.get(v('b'))!.fingerprint);
      for (const absent of ['c', 'd', 'g'].map(v)) expect(read.has(absent)).toBe(false);
      expect(read.has(`${PREFIX}w/k15x`)).toBe(false);

      const listings = sent.filter((r) => r.command === 'ListObjectVersionsCommand');
      const seeks = listings.filter((r) => r.input.VersionIdMarker === undefined);
      // Pages continued with a version-id marker: v/b's and v/d's versions split across them.
      expect(listings.length).toBeGreaterThan(seeks.length);
      expect(listings.length).toBeLessThan(wanted.length / 2);
      // Only ids between a seek's start and the first key it lists go to HeadObject (moto drops
      // the first version after a KeyMarker that names no key; S3 lists from the next key).
      expect(counts.get('HeadObjectCommand') ?? 0).toBeLessThanOrEqual(seeks.length);
      expect(counts.get('ListObjectsV2Command')).toBeUndefined();
    });

    it('stops listing after 4 pages per 1,000 ids and reads the ids it has not reached with HeadObject', async () => {
      const bucket = await freshBucket();
      const first = Array.from({ length: 16 }, (_, i) => `${PREFIX}a/${String(i).padStart(2, '0')}`);
      const crowd = Array.from({ length: 150 }, (_, i) => `${PREFIX}m/k${String(i).padStart(3, '0')}`);
      const last = Array.from({ length: 16 }, (_, i) => `${PREFIX}z/${String(i).padStart(2, '0')}`);
      await putMany(bucket, [...first, ...crowd, ...last.slice(0, 12)]);

      const counts = new Map<string, number>();
      const backend = await open(bucket, {}, instrumentClient(counts), { readListingPageSize: 3 });
      const scan = await scanned(backend);
      // "tmp/m/~" sorts after every tmp/m/ key: the listing must walk all 150 to know it is absent.
      const wanted = [...first, `${PREFIX}m/~`, ...last];
      counts.clear();
      const read = await backend.read(wanted);
      expect(sortedRecords(read)).toEqual(presentOf(scan, wanted));
      expect(read.size).toBe(16 + 12);
      // 33 ids may cost ceil(4 × 33 / 3) = 44 pages of 3 keys: 6 reach a/15, 38 more walk
      // m/k000–k115. The crowd's id and the 16 beyond it are read one by one.
      expect(counts.get('ListObjectsV2Command')).toBe(44);
      expect(counts.get('HeadObjectCommand')).toBe(17);
    });
  });

  describe('deleteMode from the manifest', () => {
    it('per-object-if-match: no probe object is written, one DeleteObject with If-Match per key', async () => {
      const bucket = await freshBucket();
      for (const name of ['same', 'overwritten']) await put(bucket, `${PREFIX}o/${name}`, `v1 of ${name}`);
      const counts = new Map<string, number>();
      const sent: { command: string; input: Record<string, unknown> }[] = [];
      const backend = await openFromManifest(bucket, 'per-object-if-match', recordClient(counts, sent));
      expect(await backend.capabilities()).toEqual({ deleteMode: 's3-per-object-if-match' });
      const scan = await scanned(backend);
      await put(bucket, `${PREFIX}o/overwritten`, 'v2, written after the scan');

      const results = await backend.delete([...scan.values()].map((r) => ({ id: r.id, fingerprint: r.fingerprint })));
      expect(results.map((r) => [r.id, r.outcome])).toEqual([
        [`${PREFIX}o/overwritten`, 'changed'],
        [`${PREFIX}o/same`, 'deleted'],
      ]);
      expect(await exists(bucket, `${PREFIX}o/same`)).toBeNull();
      expect(await body(bucket, `${PREFIX}o/overwritten`)).toBe('v2, written after the scan');
      expect(counts.get('PutObjectCommand')).toBeUndefined();
      expect(sent.some((r) => String(r.input.Key ?? '').includes('.reaper-probe-'))).toBe(false);
      expect(counts.get('DeleteObjectsCommand')).toBeUndefined();
      const deletes = sent.filter((r) => r.command === 'DeleteObjectCommand').map((r) => [r.input.Key, r.input.IfMatch]);
      expect(deletes.sort()).toEqual([...scan.values()].map((r) => [r.id, r.fingerprint]).sort());
    });

    it('batch-if-match, unversioned: one DeleteObjects per 1,000 keys, each key with its ETag, and no probe', async () => {
      const bucket = await freshBucket();
      const keys = Array.from({ length: 1005 }, (_, i) => `${PREFIX}b/${String(i).padStart(4, '0')}`);
      await putMany(bucket, keys);
      const counts = new Map<string, number>();
      const sent: { command: string; input: Record<string, unknown> }[] = [];
      const backend = await openFromManifest(bucket, 'batch-if-match', recordClient(counts, sent));
      expect(await backend.capabilities()).toEqual({ deleteMode: 's3-batch-if-match' });
      const scan = await scanned(backend);
      expect(scan.size).toBe(keys.length);
      counts.clear();
      sent.length = 0;

      // moto ignores the ETag of a DeleteObjects entry (the probe test above shows it), so no
      // test here can show a changed object refused in this mode: that is what the manifest
      // asserts about the endpoint (S3 general purpose buckets refuse it).
      const results = await backend.delete([...scan.values()].map((r) => ({ id: r.id, fingerprint: r.fingerprint })));
      expect(results.every((r) => r.outcome === 'deleted' && r.restoreHandle === undefined)).toBe(true);
      expect(results.map((r) => r.id)).toEqual([...scan.keys()]);
      expect([...counts]).toEqual([['DeleteObjectsCommand', 2]]);
      const batches = sent.map((r) => (r.input.Delete as { Objects: { Key: string; ETag?: string; VersionId?: string }[] }).Objects);
      expect(batches.map((b) => b.length)).toEqual([1000, 5]);
      expect(batches.flat()).toEqual([...scan.values()].map((r) => ({ Key: r.id, ETag: r.fingerprint })));
      expect((await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: PREFIX }))).KeyCount ?? 0).toBe(0);
    });

    it('batch-if-match, versioning enabled: checks each current version, then adds delete markers that restore', async () => {
      const c = await versionedCase('k', 'batch-if-match');
      const { bucket, plain, rewritten, counts, sent, backend } = c;
      expect(await backend.capabilities()).toEqual({ deleteMode: 's3-versioned-batch-delete-marker' });
      const scan = await scanned(backend);
      expect(scan.size).toBe(38);
      // A new version with identical bytes: the same ETag, only the version id differs.
      const { again, outcome } = await rewriteRemoveAndDelete(c, scan);

      // One batch, without the changed or absent key, each entry the fingerprinted ETag and no VersionId.
      expect(counts.get('DeleteObjectsCommand')).toBe(1);
      expect(counts.get('DeleteObjectCommand')).toBeUndefined();
      expect(counts.get('PutObjectCommand')).toBeUndefined();
      const batch = (sent.find((r) => r.command === 'DeleteObjectsCommand')!.input.Delete as { Objects: unknown[] }).Objects;
      expect(batch).toEqual(plain.map((key) => ({ Key: key, ETag: scan.get(key)!.fingerprint.split('#')[0] })));

      // Each deleted key now has a delete marker on top, its version id the restore handle; the version is kept.
      const versions = await admin.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `${PREFIX}k/` }));
      const markers = new Map((versions.DeleteMarkers ?? []).filter((m) => m.IsLatest).map((m) => [m.Key, m.VersionId]));
      const kept = new Set((versions.Versions ?? []).map((x) => `${x.Key}#${x.VersionId}`));
      for (const key of plain) {
        expect(markers.get(key)).toBe(outcome.get(key)!.restoreHandle);
        expect(kept.has(`${key}#${scan.get(key)!.fingerprint.split('#')[1]}`)).toBe(true);
      }
      // The rewritten object is untouched: its new version is current, no delete marker.
      expect(markers.has(rewritten)).toBe(false);
      expect((await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: rewritten }))).VersionId).toBe(again.VersionId);

      const restoredKey = plain[7]!;
      await backend.restore(restoredKey, outcome.get(restoredKey)!.restoreHandle!);
      expect(await body(bucket, restoredKey)).toBe(`body of ${restoredKey}`);
      expect((await backend.read([restoredKey])).get(restoredKey)!.fingerprint).toBe(scan.get(restoredKey)!.fingerprint);

      // The negative: the batch entry alone (the ETag, which moto ignores in DeleteObjects anyway)
      // would have deleted the rewritten object; reaper's check of the version kept it.
      const unchecked = await admin.send(
        new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: rewritten, ETag: c.original.ETag }] } }),
      );
      expect(unchecked.Deleted?.[0]).toMatchObject({ Key: rewritten, DeleteMarker: true });
    });

    it('per-object-if-match, versioning enabled: the current versions are checked by listing, not one HeadObject per key', async () => {
      const c = await versionedCase('p', 'per-object-if-match');
      const { bucket, plain, rewritten, counts, sent, backend } = c;
      expect((await backend.capabilities()).deleteMode).toBe('s3-versioned-delete-marker');
      const scan = await scanned(backend);
      expect(scan.size).toBe(38);
      const { again } = await rewriteRemoveAndDelete(c, scan);

      // One conditional DeleteObject per deleted key, none for the changed or absent one; the
      // versions were read by listing (HeadObject only where a listing's start is not trusted on moto).
      const deletes = sent.filter((r) => r.command === 'DeleteObjectCommand');
      expect(deletes.map((r) => r.input.Key).sort()).toEqual([...plain].sort());
      expect(deletes.every((r) => r.input.IfMatch === scan.get(String(r.input.Key))!.fingerprint.split('#')[0] && r.input.VersionId === undefined)).toBe(true);
      const listings = counts.get('ListObjectVersionsCommand') ?? 0;
      expect(listings).toBeGreaterThan(0);
      expect(counts.get('HeadObjectCommand') ?? 0).toBeLessThanOrEqual(listings);
      expect(markersOf(await admin.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `${PREFIX}p/` }))).has(rewritten)).toBe(false);
      expect((await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: rewritten }))).VersionId).toBe(again.VersionId);
    });
  });

  /** A versioned bucket with 36 plain objects, one to be rewritten with identical bytes and one to be deleted by someone else; a recording backend. */
  async function versionedCase(letter: string, mode: 'batch-if-match' | 'per-object-if-match') {
    const bucket = await freshBucket({ versioned: true });
    const plain = Array.from({ length: 36 }, (_, i) => `${PREFIX}${letter}/${String(i).padStart(2, '0')}`);
    await putMany(bucket, plain);
    const rewritten = `${PREFIX}${letter}/rewritten`;
    const gone = `${PREFIX}${letter}/gone`;
    const original = await put(bucket, rewritten, 'same bytes');
    await put(bucket, gone, 'removed by someone else');
    const counts = new Map<string, number>();
    const sent: { command: string; input: Record<string, unknown> }[] = [];
    const backend = await openFromManifest(bucket, mode, recordClient(counts, sent));
    return { bucket, plain, rewritten, gone, original, counts, sent, backend };
  }

  /**
   * After the scan: rewrite one object with identical bytes (same ETag, new version id), delete
   * another behind reaper's back, then delete every scanned object; the rewritten one must come
   * back changed, the removed one absent, the rest deleted with a restore handle.
   */
  async function rewriteRemoveAndDelete(c: Awaited<ReturnType<typeof versionedCase>>, scan: Map<string, ResourceRecord>) {
    const again = await put(c.bucket, c.rewritten, 'same bytes');
    expect(again.ETag).toBe(c.original.ETag);
    expect(again.VersionId).not.toBe(c.original.VersionId);
    await admin.send(new DeleteObjectCommand({ Bucket: c.bucket, Key: c.gone }));
    c.counts.clear();
    c.sent.length = 0;
    const results = await c.backend.delete([...scan.values()].map((r) => ({ id: r.id, fingerprint: r.fingerprint })));
    const outcome = new Map(results.map((r) => [r.id, r]));
    expect(outcome.get(c.rewritten)).toEqual({ id: c.rewritten, outcome: 'changed' });
    expect(outcome.get(c.gone)).toEqual({ id: c.gone, outcome: 'absent' });
    for (const key of c.plain) expect(outcome.get(key)).toMatchObject({ outcome: 'deleted', restoreHandle: expect.any(String) });
    return { again, outcome };
  }

  function markersOf(versions: { DeleteMarkers?: { Key?: string; IsLatest?: boolean }[] }): Set<string> {
    return new Set((versions.DeleteMarkers ?? []).filter((m) => m.IsLatest).map((m) => m.Key!));
  }

  async function scanAll2(backend: S3Backend, signal: AbortSignal): Promise<ResourceRecord[]> {
    const out: ResourceRecord[] = [];
    for await (const page of backend.scan({ pageSize: 10, signal })) out.push(...page.records);
    return out;
  }
});
