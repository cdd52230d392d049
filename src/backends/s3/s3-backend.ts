/**
 * S3 backend: the resources are the objects under a bucket prefix.
 *
 * Scan lists (s3-listing.ts) with ListObjectsV2 (`EncodingType=url`, keys decoded byte-exactly), or, in a
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
 * default 16).
 *
 * `read(ids)`: with fewer than 32 ids, or when metadata or tags are needed, 1 HeadObject
 * per id (+1 GetObjectTagging when tags are needed). Otherwise the ids are read by listing
 * (see readByListing): the range from the smallest to the largest id is listed, seeking
 * over gaps, 1 LIST per 1,000 keys walked; ids the listing did not reach within its budget
 * (4 LIST pages per 1,000 ids) are read with HeadObject, and so, in a versioned bucket, are
 * ids between where a listing starts and the first key it lists.
 *
 * Deletes (s3-delete.ts): 1 DeleteObjects per 1,000 keys in `s3-batch-if-match`, else
 * 1 DeleteObject per key; versioned buckets 1 HeadObject + 1 DeleteObject per key, or with
 * `deleteMode: batch-if-match` a read of the current versions (by listing, as `read`) +
 * 1 DeleteObjects per 1,000 keys. Marking with a tag (s3-mark.ts): HeadObject + GetObjectTagging +
 * PutObjectTagging (+ HeadObject to re-check the ETag when the bucket is not versioned).
 * Once per backend: GetBucketVersioning at open, and with `deleteMode: auto` a delete-mode
 * probe of 4–7 requests (it writes and removes one object under the prefix) the first time
 * capabilities or a delete is asked for.
 *
 * A per-object read that fails makes the record `unreadable` (never reaped); an object
 * that vanished between the listing and the read is dropped from the page.
 */
import type { HeadObjectCommandOutput, Tag } from '@aws-sdk/client-s3';
import { compareUtf8, partHoldsBytes, type ShardPart } from '../../engine/shard.js';
import type { ResourceRecord } from '../../engine/types.js';
import { BackendError, SafetyError } from '../../errors.js';
import type { ResourceSpec, S3Location } from '../../manifest/types.js';
import { mapLimitAbortable } from '../../util/concurrency.js';
import type { Connections } from '../connections.js';
import type { Backend, BackendCapabilities, DeleteItem, DeleteResult, ScanOptions, ScanPage, StandInItem } from '../types.js';
import {
  DEFAULT_CONCURRENCY,
  describeS3Failure,
  explainS3Failure,
  inScope,
  isAbort,
  isMissing,
  isResourceKey,
  loadS3Sdk,
  s3ClientFor,
  s3ConnectionSpec,
  s3Failure,
  s3Fingerprint,
  type S3Target,
} from './s3-client.js';
import { assertedDeleteMode, deleteS3Objects, probeDeleteMode, type S3DeleteMode, type S3DeleteSetting } from './s3-delete.js';
import { PositionSample } from '../../engine/split-points.js';
import { LIST_LIMIT, listCurrent, listedRecord, LONE_SURROGATE, readByListing, type ListedObject } from './s3-listing.js';
import { latestReport, reportObjects, type InventoryLocation } from './s3-inventory.js';
import { markTagged, unmarkTagged } from './s3-mark.js';

/** `read` lists instead of sending one HeadObject per id from this many ids on. */
export const READ_BY_LISTING_MIN_IDS = 32;

export type S3ResourceSpec = ResourceSpec & { location: S3Location };

export interface S3BackendOptions {
  /** Stops the open (GetBucketVersioning) when aborted. */
  signal?: AbortSignal;
  /** Keys per listing request when `read` lists (default and maximum 1,000; smaller only in tests, to page with few objects). */
  readListingPageSize?: number;
}

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
  private readonly deleteSetting: S3DeleteSetting;
  private readonly readListingPageSize: number;
  private deleteModeProbe: Promise<S3DeleteMode> | undefined;
  private readonly requireVersioning: boolean;
  private readonly inventory: InventoryLocation | null;

  private constructor(spec: S3ResourceSpec, target: S3Target, options: S3BackendOptions) {
    this.target = target;
    this.readListingPageSize = Math.min(LIST_LIMIT, Math.max(1, Math.floor(options.readListingPageSize ?? LIST_LIMIT)));
    this.scope = target.scope;
    this.deleteSetting = spec.location.deleteMode ?? 'auto';
    this.requireVersioning = spec.location.requireVersioning === true;
    this.inventory = spec.location.inventory ?? null;
    this.needsMetadata =
      spec.owners.some((o) => o.extractor.from === 'metadata') || spec.protect.some((p) => p.kind === 'metadata');
    this.needsTags = spec.owners.some((o) => o.extractor.from === 'tag') || spec.protect.some((p) => p.kind === 'tag');
    if (spec.mark?.kind === 'tag') {
      const tag = spec.mark.tag;
      this.mark = (items, runId, signal) => markTagged(target, tag, items, runId, signal);
      this.unmark = (items, signal) => unmarkTagged(target, tag, items, signal);
    }
  }

  /** Open the backend of an S3 resource type: the connection's shared client, and the bucket's versioning read once. */
  static async open(spec: S3ResourceSpec, connections: Connections, options: S3BackendOptions = {}): Promise<S3Backend> {
    const { bucket, prefix, connection } = spec.location;
    const scope = `s3://${bucket}/${prefix}`;
    const connectionSpec = s3ConnectionSpec(connections, connection);
    const [sdk, client] = await Promise.all([loadS3Sdk(), s3ClientFor(connections, connection)]);
    const endpoint = connectionSpec.endpoint;
    const versioning = await readVersioning({ sdk, client, bucket, scope, endpoint }, options.signal);
    const concurrency = connectionSpec.concurrency ?? DEFAULT_CONCURRENCY;
    return new S3Backend(spec, { sdk, client, bucket, prefix, scope, endpoint, versioning, concurrency }, options);
  }

  /** `requireVersioning` holds only while versioning is enabled: suspended, a rewrite replaces the `null` version. */
  reapRefusal(): string | null {
    if (!this.requireVersioning || this.target.versioning === 'Enabled') return null;
    return (
      `requireVersioning is set, but versioning of bucket ${this.target.bucket} is ${this.target.versioning === 'Suspended' ? 'suspended' : 'not enabled'}: ` +
      "without it, a key recreated with identical bytes (the same ETag) would be deleted against its predecessor's tombstone; enable versioning on the bucket"
    );
  }

  /** Whether the bucket keeps versions (enabled or suspended), as read at open. */
  get versioned(): boolean {
    return this.target.versioning !== null;
  }

  /** Versioning and the delete mode, without the probe (which writes): for `validate`. */
  reapNotes(): string[] {
    const versioning = this.target.versioning === null ? 'never enabled' : this.target.versioning.toLowerCase();
    const asserted = assertedDeleteMode(this.deleteSetting, this.target.versioning);
    const deletes = asserted
      ? `deletes: ${asserted}`
      : 'deletes: probed at the first reap --execute (it writes and removes one object under the prefix: needs s3:PutObject, s3:DeleteObject and s3:GetObject)';
    return [`versioning ${versioning}${this.target.versioning === 'Enabled' ? ' (restore keeps delete markers)' : ''}`, deletes];
  }

  async capabilities(signal?: AbortSignal): Promise<BackendCapabilities> {
    return { deleteMode: await this.deleteMode(signal) };
  }

  /** The delete mode: as the manifest asserts it, or probed once; a failed or aborted probe is tried again on the next call. */
  private deleteMode(signal?: AbortSignal): Promise<S3DeleteMode> {
    const asserted = assertedDeleteMode(this.deleteSetting, this.target.versioning);
    if (asserted) return Promise.resolve(asserted);
    if (!this.deleteModeProbe) {
      const probe = probeDeleteMode(this.target, signal);
      this.deleteModeProbe = probe;
      probe.catch(() => {
        if (this.deleteModeProbe === probe) this.deleteModeProbe = undefined;
      });
    }
    return this.deleteModeProbe;
  }

  /**
   * A shard's part is a key range (docs/scale-out.md): the listing starts after the later of
   * the cursor and the range's lower bound (StartAfter/KeyMarker) and stops at the first key
   * past its upper bound, so a shard lists only its own range.
   */
  async *scan(options: ScanOptions): AsyncIterable<ScanPage> {
    const pageSize = Math.max(1, Math.floor(options.pageSize));
    const maxKeys = Math.min(pageSize, LIST_LIMIT);
    const signal = options.signal;
    const part = options.part ?? { kind: 'all' };
    if (part.kind === 'hash') throw new BackendError(`${this.scope}: an S3 type is sharded by key ranges, not by hash`);
    if (part.kind === 'none') {
      yield { records: [], cursor: null };
      return;
    }
    if (this.inventory) {
      yield* this.scanInventory(this.inventory, pageSize, part, signal);
      return;
    }
    const through = part.kind === 'range' ? part.through : null;
    let start = options.cursor ?? null;
    if (part.kind === 'range' && part.after !== null && (start === null || compareUtf8(start, part.after) < 0)) start = part.after;
    let buffer: ResourceRecord[] = [];
    for await (const page of listCurrent(this.target, start, maxKeys, signal)) {
      let listing = page;
      if (through !== null) {
        const inRange = page.objects.filter((o) => compareUtf8(o.key, through) <= 0);
        // Past the upper bound (or listed through it): this range is complete.
        const done = inRange.length < page.objects.length || (page.through !== null && compareUtf8(page.through, through) >= 0);
        listing = done ? { ...page, objects: inRange, last: true } : page;
      }
      buffer.push(...(await this.describe(listing.objects.filter((o) => isResourceKey(this.target, o.key)), signal)));
      if (listing.last && !page.last) {
        yield* this.pages(buffer, pageSize);
        return;
      }
      while (buffer.length > pageSize || (buffer.length === pageSize && !listing.last)) {
        const records = buffer.slice(0, pageSize);
        buffer = buffer.slice(pageSize);
        yield withUnreadable({ records, cursor: records[records.length - 1]!.id });
      }
    }
    yield withUnreadable({ records: buffer, cursor: null });
  }

  /**
   * A scan of the newest inventory report: its objects in the report's order, those of the
   * shard's range only, as a snapshot. Every shard reads the whole report (its size, not a
   * LIST per 1,000 objects). No cursor: a scan of a report is read again from its start.
   */
  private async *scanInventory(location: InventoryLocation, pageSize: number, part: ShardPart, signal?: AbortSignal): AsyncIterable<ScanPage> {
    const report = await latestReport(this.target, location, signal);
    const snapshotAtMs = report.createdAtMs;
    let buffer: ResourceRecord[] = [];
    let position = 0;
    for await (const objects of reportObjects(this.target, location, report, signal)) {
      buffer.push(...(await this.describe(objects.filter((o) => partHoldsBytes(part, o.key)), signal)));
      while (buffer.length >= pageSize) {
        const records = buffer.slice(0, pageSize);
        buffer = buffer.slice(pageSize);
        position += records.length;
        yield { ...withUnreadable({ records, cursor: `inventory:${position}` }), snapshotAtMs };
      }
    }
    yield { ...withUnreadable({ records: buffer, cursor: null }), snapshotAtMs };
  }

  /** The rest of a scan from what is buffered: full pages, then the last one. */
  private *pages(buffer: ResourceRecord[], pageSize: number): Iterable<ScanPage> {
    let rest = buffer;
    while (rest.length > pageSize) {
      const records = rest.slice(0, pageSize);
      rest = rest.slice(pageSize);
      yield withUnreadable({ records, cursor: records[records.length - 1]!.id });
    }
    yield withUnreadable({ records: rest, cursor: null });
  }

  /** From one listing of the prefix, sampled by position (engine/split-points.ts), never an inventory report. */
  async splitPoints(ranges: number, signal?: AbortSignal): Promise<{ points: string[]; counted: number }> {
    const sample = new PositionSample(ranges);
    let previous: Buffer | null = null;
    for await (const page of listCurrent(this.target, null, LIST_LIMIT, signal)) {
      for (const o of page.objects) {
        // Positions mean something only in the order the shards compare: UTF-8 bytes.
        const key = Buffer.from(o.key, 'utf8');
        if (previous !== null && Buffer.compare(previous, key) >= 0) throw new BackendError(`${this.scope}: the listing is not in ascending key order at ${JSON.stringify(o.key)}`);
        previous = key;
        if (isResourceKey(this.target, o.key)) sample.add(o.key);
      }
    }
    return { points: sample.points(ranges), counted: sample.count };
  }

  async inPart(ids: readonly string[], part: ShardPart): Promise<Set<string>> {
    return new Set(ids.filter((id) => partHoldsBytes(part, id)));
  }

  /** Records for listed objects, reading metadata and tags only when an owner or protect rule needs them. */
  private async describe(objects: readonly ListedObject[], signal?: AbortSignal): Promise<ResourceRecord[]> {
    if (!this.needsMetadata && !this.needsTags) return objects.map((o) => listedRecord(o));
    const records = await mapLimitAbortable(objects, this.target.concurrency, signal, (o, _, fanOut) => this.describeOne(o, fanOut));
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
    return this.readRecords(ids, this.needsMetadata || this.needsTags, signal);
  }

  /**
   * No read for judging where owners and protect rules need neither metadata nor tags and the
   * delete itself checks the exact fingerprint (docs/safety.md §3): `s3-batch-if-match` (the
   * server checks each ETag: the probe saw it refuse a wrong one, or the manifest asserts it),
   * or `s3-versioned-batch-delete-marker` (the current version of every key is listed and
   * compared just before its DeleteObjects). An unversioned bucket cannot tell an identical
   * re-upload from the original either way (README, beside minAge).
   */
  async standIns(items: readonly StandInItem[], minAgeMs: number, signal?: AbortSignal): Promise<Map<string, ResourceRecord> | null> {
    if (this.needsMetadata || this.needsTags) return null;
    const mode = await this.deleteMode(signal);
    if (mode !== 's3-batch-if-match' && mode !== 's3-versioned-batch-delete-marker') return null;
    const out = new Map<string, ResourceRecord>();
    for (const item of items) {
      if (!inScope(this.target, item.id)) continue;
      out.set(item.id, { id: item.id, createdAtMs: item.markedAt - minAgeMs, bytes: item.bytes, fingerprint: item.fingerprint });
    }
    return out;
  }

  /**
   * Records of `ids` as they are now, in the order of `ids`; absent ids are missing. With
   * `attributes`, metadata and tags are read as the owners and protect rules need them.
   */
  private async readRecords(ids: readonly string[], attributes: boolean, signal?: AbortSignal): Promise<Map<string, ResourceRecord>> {
    const unique = [...new Set(ids)];
    const known = new Map<string, ResourceRecord | null>();
    if (!attributes) {
      const listable = unique.filter((id) => inScope(this.target, id) && !LONE_SURROGATE.test(id));
      if (listable.length >= READ_BY_LISTING_MIN_IDS) await readByListing(this.target, listable, known, this.readListingPageSize, signal);
    }
    const rest = unique.filter((id) => !known.has(id));
    const heads = await mapLimitAbortable(rest, this.target.concurrency, signal, (id, _, fanOut) => this.readOne(id, attributes, fanOut));
    rest.forEach((id, k) => known.set(id, heads[k] ?? null));
    const out = new Map<string, ResourceRecord>();
    for (const id of unique) {
      const record = known.get(id);
      if (record) out.set(id, record);
    }
    return out;
  }

  private async readOne(id: string, attributes: boolean, signal?: AbortSignal): Promise<ResourceRecord | null> {
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
    if (attributes && this.needsMetadata) record.metadata = { ...(head.Metadata ?? {}) };
    if (attributes && this.needsTags) {
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
    return deleteS3Objects(this.target, mode, items, signal, (ids, readSignal) => this.readRecords(ids, false, readSignal));
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
    if (!inScope(this.target, id)) throw new SafetyError(`${this.scope}: refusing to restore a key outside the scope: ${JSON.stringify(id)}`);
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

  async close(): Promise<void> {}
}

async function readVersioning(target: Pick<S3Target, 'sdk' | 'client' | 'bucket' | 'scope' | 'endpoint'>, signal?: AbortSignal): Promise<'Enabled' | 'Suspended' | null> {
  try {
    const out = await target.client.send(new target.sdk.GetBucketVersioningCommand({ Bucket: target.bucket }), { abortSignal: signal });
    return out.Status === 'Enabled' || out.Status === 'Suspended' ? out.Status : null;
  } catch (error) {
    if (isAbort(error, signal)) throw error;
    const why = explainS3Failure(error, { bucket: target.bucket, endpoint: target.endpoint, request: 'GetBucketVersioning', permission: 's3:GetBucketVersioning' });
    throw new BackendError(`${target.scope}: cannot read the bucket's versioning: ${why}`, { cause: error });
  }
}

/** A page naming its records whose metadata or tags could not be read (they are judged unknown). */
function withUnreadable(page: ScanPage): ScanPage {
  const unreadable = page.records.flatMap((r) => (r.unreadable === undefined ? [] : [{ id: r.id, why: r.unreadable }]));
  return unreadable.length ? { ...page, unreadable } : page;
}

function tagMap(tagSet: readonly Tag[] | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const t of tagSet ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
  return tags;
}
