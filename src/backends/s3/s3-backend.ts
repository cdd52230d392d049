/**
 * S3 backend: the resources are the objects under a bucket prefix.
 *
 * Scan lists with ListObjectsV2 (`EncodingType=url`, keys decoded byte-exactly), or, in a
 * bucket whose versioning is enabled or suspended, with ListObjectVersions keeping only
 * the current version of each key that is not a delete marker. Pages come in key order;
 * the cursor is the last key emitted and a scan resumes after it. A record is
 * `id`=key, `createdAtMs`=LastModified, `bytes`=Size, `fingerprint`=ETag as returned
 * (quotes included), or `ETag#versionId` in a versioned bucket.
 *
 * Request cost per 1,000 objects scanned (pages of 1,000 keys):
 * - owner `keyPattern` (and keyPattern protect rules): 1 LIST — nothing per object;
 * - owner or protect rule on `metadata`: 1 LIST + 1,000 HeadObject;
 * - owner or protect rule on `tag`: 1 LIST + 1,000 GetObjectTagging;
 * - both: 1 LIST + 2,000 requests.
 * A versioned bucket's LIST pages count every version and delete marker, so old versions
 * add LIST requests. Per-object reads run `concurrency` at a time (connection setting,
 * default 16). `read(ids)`: 1 HeadObject per id (+1 GetObjectTagging when tags are
 * needed). Deletes: 1 DeleteObjects per 1,000 keys where the endpoint enforces per-object
 * ETags in batches, else 1 DeleteObject per key; versioned buckets 1 HeadObject +
 * 1 DeleteObject per key. Marking with a tag: HeadObject + GetObjectTagging +
 * PutObjectTagging (+ HeadObject to re-check the ETag when the bucket is not versioned).
 * Once per backend: GetBucketVersioning at open, and a delete-mode probe of 4–7 requests
 * (it writes and removes one object under the prefix) the first time capabilities or a
 * delete is asked for (s3-delete.ts).
 *
 * A per-object read that fails makes the record `unreadable` (never reaped); an object
 * that vanished between the listing and the read is dropped from the page.
 */
import type { HeadObjectCommandOutput, S3Client, Tag } from '@aws-sdk/client-s3';
import type { ResourceRecord } from '../../engine/types.js';
import { BackendError } from '../../errors.js';
import type { ResourceSpec, S3Location } from '../../manifest/types.js';
import { mapLimit } from '../../util/concurrency.js';
import type { Connections } from '../connections.js';
import type { Backend, BackendCapabilities, DeleteItem, DeleteResult, ScanOptions, ScanPage } from '../types.js';
import {
  DEFAULT_CONCURRENCY,
  decodeListedKey,
  describeS3Failure,
  inScope,
  isAbort,
  isMissing,
  isObjectLevelRefusal,
  isPreconditionFailed,
  loadS3Sdk,
  parseS3Fingerprint,
  s3ClientFor,
  s3ConnectionSpec,
  s3Failure,
  s3Fingerprint,
  type S3Sdk,
  type S3Target,
} from './s3-client.js';
import { deleteS3Objects, probeDeleteMode, type S3DeleteMode } from './s3-delete.js';

/** ListObjectsV2 and ListObjectVersions return at most this many entries per request. */
const LIST_LIMIT = 1000;
/** S3 allows at most 10 tags on an object. */
const MAX_TAGS = 10;

/** One current object as listed, before any per-object read. */
interface ListedObject {
  key: string;
  etag: string | undefined;
  lastModified: Date | undefined;
  size: number | undefined;
  /** The listed version in a versioned bucket; null otherwise. */
  versionId: string | null;
}

export type S3ResourceSpec = ResourceSpec & { location: S3Location };

export class S3Backend implements Backend {
  readonly kind = 's3' as const;
  readonly scope: string;
  /** Tag the resource with `tag=runId` (present only when the resource's `mark` is a tag). */
  readonly mark?: (items: readonly DeleteItem[], runId: string, signal?: AbortSignal) => Promise<Map<string, string>>;
  /** Remove the mark tag (present only when the resource's `mark` is a tag). */
  readonly unmark?: (items: readonly DeleteItem[], signal?: AbortSignal) => Promise<void>;

  private readonly target: S3Target;
  private readonly needsMetadata: boolean;
  private readonly needsTags: boolean;
  private deleteModeProbe: Promise<S3DeleteMode> | undefined;

  private constructor(spec: S3ResourceSpec, target: S3Target) {
    this.target = target;
    this.scope = target.scope;
    this.needsMetadata =
      spec.owners.some((o) => o.extractor.from === 'metadata') || spec.protect.some((p) => p.kind === 'metadata');
    this.needsTags = spec.owners.some((o) => o.extractor.from === 'tag') || spec.protect.some((p) => p.kind === 'tag');
    if (spec.mark?.kind === 'tag') {
      const tag = spec.mark.tag;
      this.mark = (items, runId, signal) => this.markTagged(tag, items, runId, signal);
      this.unmark = (items, signal) => this.unmarkTagged(tag, items, signal);
    }
  }

  /** Open the backend of an S3 resource type: the connection's shared client, and the bucket's versioning read once. */
  static async open(spec: S3ResourceSpec, connections: Connections): Promise<S3Backend> {
    const { bucket, prefix, connection } = spec.location;
    const scope = `s3://${bucket}/${prefix}`;
    const connectionSpec = s3ConnectionSpec(connections, connection);
    const [sdk, client] = await Promise.all([loadS3Sdk(), s3ClientFor(connections, connection)]);
    const versioning = await readVersioning(sdk, client, bucket, scope);
    return new S3Backend(spec, {
      sdk,
      client,
      bucket,
      prefix,
      scope,
      versioning,
      concurrency: connectionSpec.concurrency ?? DEFAULT_CONCURRENCY,
    });
  }

  /** Whether the bucket keeps versions (enabled or suspended), as read at open. */
  get versioned(): boolean {
    return this.target.versioning !== null;
  }

  async capabilities(signal?: AbortSignal): Promise<BackendCapabilities> {
    const mode = await this.deleteMode(signal);
    return {
      visibleMark: true,
      conditionalDelete: mode === 's3-no-conditional-delete' ? 'none' : 'server',
      restore: this.target.versioning === 'Enabled',
      deleteMode: mode,
    };
  }

  /** The delete mode, probed once; a failed or aborted probe is tried again on the next call. */
  private deleteMode(signal?: AbortSignal): Promise<S3DeleteMode> {
    if (!this.deleteModeProbe) {
      const probe = probeDeleteMode(this.target, signal);
      this.deleteModeProbe = probe;
      probe.catch(() => {
        if (this.deleteModeProbe === probe) this.deleteModeProbe = undefined;
      });
    }
    return this.deleteModeProbe;
  }

  async *scan(options: ScanOptions): AsyncIterable<ScanPage> {
    const pageSize = Math.max(1, Math.floor(options.pageSize));
    const maxKeys = Math.min(pageSize, LIST_LIMIT);
    const signal = options.signal;
    let buffer: ResourceRecord[] = [];
    for await (const listing of this.list(options.cursor ?? null, maxKeys, signal)) {
      buffer.push(...(await this.describe(listing.objects, signal)));
      while (buffer.length > pageSize || (buffer.length === pageSize && !listing.last)) {
        const records = buffer.slice(0, pageSize);
        buffer = buffer.slice(pageSize);
        yield { records, cursor: records[records.length - 1]!.id };
      }
    }
    yield { records: buffer, cursor: null };
  }

  /** Current objects under the prefix, after `startAfter`, one listing request at a time. */
  private async *list(startAfter: string | null, maxKeys: number, signal?: AbortSignal): AsyncGenerator<{ objects: ListedObject[]; last: boolean }> {
    const { sdk, client, bucket, prefix } = this.target;
    const send = { abortSignal: signal };
    if (this.target.versioning === null) {
      let token: string | undefined;
      do {
        const out = await this.request('ListObjectsV2', signal, () =>
          client.send(
            new sdk.ListObjectsV2Command({
              Bucket: bucket,
              Prefix: prefix,
              MaxKeys: maxKeys,
              EncodingType: 'url',
              ...(token ? { ContinuationToken: token } : startAfter !== null ? { StartAfter: startAfter } : {}),
            }),
            send,
          ),
        );
        const encoded = out.EncodingType === 'url';
        const objects = (out.Contents ?? []).map((o) => this.listed(decodeListedKey(o.Key ?? '', encoded), o.ETag, o.LastModified, o.Size, null));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
        if (out.IsTruncated && !token) throw new BackendError(`${this.scope}: the listing was truncated without a continuation token`);
        yield { objects, last: token === undefined };
      } while (token);
      return;
    }
    let keyMarker: string | undefined = startAfter ?? undefined;
    let versionIdMarker: string | undefined;
    while (true) {
      const out = await this.request('ListObjectVersions', signal, () =>
        client.send(
          new sdk.ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: prefix,
            MaxKeys: maxKeys,
            EncodingType: 'url',
            ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
            ...(versionIdMarker !== undefined ? { VersionIdMarker: versionIdMarker } : {}),
          }),
          send,
        ),
      );
      const encoded = out.EncodingType === 'url';
      const objects = (out.Versions ?? [])
        .filter((v) => v.IsLatest === true)
        .map((v) => this.listed(decodeListedKey(v.Key ?? '', encoded), v.ETag, v.LastModified, v.Size, v.VersionId ?? 'null'));
      const more = out.IsTruncated === true;
      if (more && !out.NextKeyMarker) throw new BackendError(`${this.scope}: the version listing was truncated without a key marker`);
      yield { objects, last: !more };
      if (!more) return;
      keyMarker = decodeListedKey(out.NextKeyMarker!, encoded);
      versionIdMarker = out.NextVersionIdMarker || undefined;
    }
  }

  /** A request the whole scan depends on: its failure fails the scan, naming the scope. */
  private async request<T>(what: string, signal: AbortSignal | undefined, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      throw new BackendError(`${this.scope}: ${what} failed: ${describeS3Failure(error)}`, { cause: error });
    }
  }

  private listed(key: string, etag: string | undefined, lastModified: Date | undefined, size: number | undefined, versionId: string | null): ListedObject {
    if (!inScope(this.target, key)) {
      throw new BackendError(`${this.scope}: the listing returned a key outside the prefix: ${JSON.stringify(key)}`);
    }
    return { key, etag, lastModified, size, versionId };
  }

  /** Records for listed objects, reading metadata and tags only when an owner or protect rule needs them. */
  private async describe(objects: readonly ListedObject[], signal?: AbortSignal): Promise<ResourceRecord[]> {
    if (!this.needsMetadata && !this.needsTags) return objects.map((o) => listedRecord(o));
    const records = await mapLimit(objects, this.target.concurrency, (o) => this.describeOne(o, signal));
    return records.filter((r): r is ResourceRecord => r !== null);
  }

  private async describeOne(listed: ListedObject, signal?: AbortSignal): Promise<ResourceRecord | null> {
    const { sdk, client, bucket } = this.target;
    const send = { abortSignal: signal };
    let record = listedRecord(listed);
    const version = listed.versionId !== null ? { VersionId: listed.versionId } : {};
    let step = 'HeadObject';
    try {
      if (this.needsMetadata) {
        const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: listed.key, ...version }), send);
        // Replaced since the listing (not versioned): describe the object as it is now.
        if (listed.versionId === null && head.ETag !== listed.etag) record = this.headRecord(listed.key, head);
        record.metadata = { ...(head.Metadata ?? {}) };
      }
      if (this.needsTags) {
        step = 'GetObjectTagging';
        const tagging = await client.send(new sdk.GetObjectTaggingCommand({ Bucket: bucket, Key: listed.key, ...version }), send);
        record.tags = tagMap(tagging.TagSet);
      }
      return record;
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      if (isMissing(error)) return null;
      return { ...record, unreadable: `${step}: ${describeS3Failure(error)}` };
    }
  }

  /** A record from a HeadObject answer (read, or an object replaced mid-scan). */
  private headRecord(key: string, head: HeadObjectCommandOutput): ResourceRecord {
    const versionId = this.versioned ? (head.VersionId ?? 'null') : null;
    const record: ResourceRecord = {
      id: key,
      createdAtMs: head.LastModified ? head.LastModified.getTime() : null,
      bytes: head.ContentLength ?? null,
      fingerprint: head.ETag ? s3Fingerprint(head.ETag, versionId) : '',
    };
    if (!head.ETag) record.unreadable = 'HeadObject returned no ETag';
    return record;
  }

  async read(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, ResourceRecord>> {
    const records = await mapLimit(ids, this.target.concurrency, (id) => this.readOne(id, signal));
    const out = new Map<string, ResourceRecord>();
    for (const r of records) if (r) out.set(r.id, r);
    return out;
  }

  private async readOne(id: string, signal?: AbortSignal): Promise<ResourceRecord | null> {
    if (!inScope(this.target, id)) return null;
    const { sdk, client, bucket } = this.target;
    const send = { abortSignal: signal };
    let head: HeadObjectCommandOutput;
    try {
      head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: id }), send);
    } catch (error) {
      if (isMissing(error)) return null;
      if (isAbort(error, signal)) throw error;
      throw new BackendError(`${this.scope}: HeadObject ${JSON.stringify(id)} failed: ${describeS3Failure(error)}`, { cause: error });
    }
    const record = this.headRecord(id, head);
    if (this.needsMetadata) record.metadata = { ...(head.Metadata ?? {}) };
    if (this.needsTags) {
      try {
        const version = this.versioned ? { VersionId: head.VersionId ?? 'null' } : {};
        const tagging = await client.send(new sdk.GetObjectTaggingCommand({ Bucket: bucket, Key: id, ...version }), send);
        record.tags = tagMap(tagging.TagSet);
      } catch (error) {
        if (isAbort(error, signal)) throw error;
        if (isMissing(error)) return null;
        record.unreadable = `GetObjectTagging: ${describeS3Failure(error)}`;
      }
    }
    return record;
  }

  async delete(items: readonly DeleteItem[], signal?: AbortSignal): Promise<DeleteResult[]> {
    if (items.length === 0) return [];
    const mode = await this.deleteMode(signal);
    return deleteS3Objects(this.target, mode, items, signal);
  }

  /**
   * Bring back an object deleted in a versioned bucket by removing its delete marker.
   * The handle must name a delete marker of this key: a real object version is refused,
   * since removing it would destroy data.
   */
  async restore(id: string, handle: string, signal?: AbortSignal): Promise<void> {
    if (this.target.versioning !== 'Enabled') {
      throw new BackendError(`${this.scope}: restore needs a bucket with versioning enabled; objects deleted here are not kept`);
    }
    if (!inScope(this.target, id)) throw new BackendError(`${this.scope}: refusing to restore a key outside the scope: ${JSON.stringify(id)}`);
    const { sdk, client, bucket } = this.target;
    const send = { abortSignal: signal };
    const kind = await this.versionKind(id, handle, signal);
    if (kind === 'object') {
      throw new BackendError(`${this.scope}: version ${handle} of ${JSON.stringify(id)} is an object, not a delete marker; refusing to remove it`);
    }
    if (kind === 'missing') {
      // Already removed (a restore that ran before): fine if the object is back.
      if ((await this.read([id], signal)).has(id)) return;
      throw new BackendError(`${this.scope}: the delete marker ${handle} of ${JSON.stringify(id)} is gone and the object is not there`);
    }
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: id, VersionId: handle }), send);
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      throw new BackendError(`${this.scope}: restoring ${JSON.stringify(id)} failed: ${describeS3Failure(error)}`, { cause: error });
    }
  }

  /** What version `versionId` of `key` is. S3 answers a HEAD of a delete-marker version with 405 Method Not Allowed. */
  private async versionKind(key: string, versionId: string, signal?: AbortSignal): Promise<'object' | 'delete-marker' | 'missing'> {
    const { sdk, client, bucket } = this.target;
    try {
      await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal: signal });
      return 'object';
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      if (s3Failure(error).status === 405) return 'delete-marker';
      if (isMissing(error)) return 'missing';
      throw new BackendError(`${this.scope}: cannot read version ${versionId} of ${JSON.stringify(key)}: ${describeS3Failure(error)}`, { cause: error });
    }
  }

  private async markTagged(tag: string, items: readonly DeleteItem[], runId: string, signal?: AbortSignal): Promise<Map<string, string>> {
    const outcomes = await this.eachObject(items, signal, async (item) => {
      const { sdk, client, bucket } = this.target;
      const send = { abortSignal: signal };
      const { etag, versionId } = parseS3Fingerprint(item.fingerprint, this.versioned);
      if (!etag) return null;
      // The fingerprinted object must still be the current one.
      let head: HeadObjectCommandOutput;
      try {
        head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: item.id, IfMatch: etag }), send);
      } catch (error) {
        if (isMissing(error) || isPreconditionFailed(error)) return null;
        throw error;
      }
      const currentVersion = this.versioned ? (head.VersionId ?? 'null') : null;
      if (versionId !== null && currentVersion !== versionId) return null;
      const version = currentVersion !== null ? { VersionId: currentVersion } : {};
      const tags = (await client.send(new sdk.GetObjectTaggingCommand({ Bucket: bucket, Key: item.id, ...version }), send)).TagSet ?? [];
      const merged = [...tags.filter((t) => t.Key !== tag), { Key: tag, Value: runId }];
      if (merged.length > MAX_TAGS) return null;
      await client.send(new sdk.PutObjectTaggingCommand({ Bucket: bucket, Key: item.id, ...version, Tagging: { TagSet: merged } }), send);
      if (currentVersion === null) {
        // Tagging has no precondition: make sure the tag landed on the fingerprinted object, not on one written meanwhile.
        const after = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: item.id }), send);
        if (after.ETag !== etag) {
          await this.removeTag(tag, item.id, {}, runId, signal).catch(() => undefined);
          return null;
        }
      }
      return s3Fingerprint(head.ETag ?? etag, currentVersion);
    });
    const marked = new Map<string, string>();
    items.forEach((item, i) => {
      const fingerprint = outcomes[i];
      if (typeof fingerprint === 'string') marked.set(item.id, fingerprint);
    });
    return marked;
  }

  private async unmarkTagged(tag: string, items: readonly DeleteItem[], signal?: AbortSignal): Promise<void> {
    await this.eachObject(items, signal, async (item) => {
      const { versionId } = parseS3Fingerprint(item.fingerprint, this.versioned);
      await this.removeTag(tag, item.id, versionId !== null ? { VersionId: versionId } : {}, null, signal);
      return null;
    });
  }

  /** Remove `tag` from an object (only when its value is `value`, if given); a missing object has nothing to remove. */
  private async removeTag(tag: string, key: string, version: { VersionId?: string }, value: string | null, signal?: AbortSignal): Promise<void> {
    const { sdk, client, bucket } = this.target;
    const send = { abortSignal: signal };
    const tags = (await client.send(new sdk.GetObjectTaggingCommand({ Bucket: bucket, Key: key, ...version }), send)).TagSet ?? [];
    const ours = tags.find((t) => t.Key === tag);
    if (!ours || (value !== null && ours.Value !== value)) return;
    const rest = tags.filter((t) => t.Key !== tag);
    if (rest.length > 0) await client.send(new sdk.PutObjectTaggingCommand({ Bucket: bucket, Key: key, ...version, Tagging: { TagSet: rest } }), send);
    else await client.send(new sdk.DeleteObjectTaggingCommand({ Bucket: bucket, Key: key, ...version }), send);
  }

  /**
   * Run `fn` for each in-scope item with bounded concurrency. An object that is gone or
   * changed, or that S3 refuses for itself alone, yields null; any other failure is
   * thrown once every item has settled, so no request is left running.
   */
  private async eachObject<T>(items: readonly DeleteItem[], signal: AbortSignal | undefined, fn: (item: DeleteItem) => Promise<T | null>): Promise<(T | null)[]> {
    let firstError: unknown;
    let failures = 0;
    const results = await mapLimit(items, this.target.concurrency, async (item) => {
      if (!inScope(this.target, item.id) || firstError !== undefined) return null;
      try {
        signal?.throwIfAborted();
        return await fn(item);
      } catch (error) {
        if (!isAbort(error, signal) && (isMissing(error) || isPreconditionFailed(error) || isObjectLevelRefusal(error))) return null;
        failures++;
        firstError ??= error;
        return null;
      }
    });
    if (firstError !== undefined) {
      if (isAbort(firstError, signal)) throw firstError;
      throw new BackendError(`${this.scope}: tagging failed for ${failures} object(s): ${describeS3Failure(firstError)}`, { cause: firstError });
    }
    return results;
  }

  async close(): Promise<void> {}
}

async function readVersioning(sdk: S3Sdk, client: S3Client, bucket: string, scope: string): Promise<'Enabled' | 'Suspended' | null> {
  try {
    const out = await client.send(new sdk.GetBucketVersioningCommand({ Bucket: bucket }));
    return out.Status === 'Enabled' || out.Status === 'Suspended' ? out.Status : null;
  } catch (error) {
    const hint = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(String((error as Error)?.message ?? error) + String((error as { code?: unknown })?.code ?? ''))
      ? ' (is the S3 endpoint reachable?)'
      : '';
    throw new BackendError(`${scope}: cannot read the bucket's versioning (needs s3:GetBucketVersioning): ${describeS3Failure(error)}${hint}`, { cause: error });
  }
}

function listedRecord(o: ListedObject): ResourceRecord {
  const record: ResourceRecord = {
    id: o.key,
    createdAtMs: o.lastModified ? o.lastModified.getTime() : null,
    bytes: o.size ?? null,
    fingerprint: o.etag ? s3Fingerprint(o.etag, o.versionId) : '',
  };
  if (!o.etag) record.unreadable = 'listed without an ETag';
  return record;
}

function tagMap(tagSet: readonly Tag[] | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const t of tagSet ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
  return tags;
}
