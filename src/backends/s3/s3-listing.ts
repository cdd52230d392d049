/**
 * Listing an S3 prefix: the current objects in key order, one ListObjectsV2 (or, in a
 * bucket that keeps versions, ListObjectVersions keeping only current versions that are
 * not delete markers) per 1,000 entries; and reading many ids at once by listing their
 * range instead of one HeadObject each (readByListing). A record built from a listing
 * alone needs no per-object request.
 */
import type { ResourceRecord } from '../../engine/types.js';
import { BackendError } from '../../errors.js';
import { decodeListedKey, explainS3Failure, inScope, isAbort, s3Fingerprint, type S3Target } from './s3-client.js';

/** ListObjectsV2 and ListObjectVersions return at most this many entries per request. */
export const LIST_LIMIT = 1000;
/** The listing `read` may walk at most this many pages per 1,000 ids before the rest is read with HeadObject. */
const READ_LISTING_PAGES_PER_1000 = 4;

/** One current object as listed, before any per-object read. */
export interface ListedObject {
  key: string;
  etag: string | undefined;
  lastModified: Date | undefined;
  size: number | undefined;
  /** The listed version in a versioned bucket; null otherwise. */
  versionId: string | null;
}

/** One listing response: its current objects, and the key through which the listing is complete. */
export interface ListingPage {
  objects: ListedObject[];
  last: boolean;
  /**
   * Every key up to and including this one has been listed with its current version (the
   * last key of the response); null when the response listed nothing.
   */
  through: string | null;
  /**
   * Only on the first response of a version listing that starts after a key (KeyMarker
   * without VersionIdMarker): the first key the response lists (null when it lists nothing)
   * and whether that key's current version or delete marker is among its entries. S3 lists
   * from the first key after the marker; moto drops the first version at or after a marker
   * that names no key, so nothing before this key (nor the key itself, without its current
   * entry) is known to be absent.
   */
  seekHead?: { key: string | null; current: boolean };
}

/** Current objects under the prefix, after `startAfter`, one listing request at a time. */
export async function* listCurrent(target: S3Target, startAfter: string | null, maxKeys: number, signal?: AbortSignal): AsyncGenerator<ListingPage> {
  const { sdk, client, bucket, prefix } = target;
  const send = { abortSignal: signal };
  if (target.versioning === null) {
    let token: string | undefined;
    do {
      const out = await listingRequest(target, 'ListObjectsV2', signal, () =>
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
      const objects = (out.Contents ?? []).map((o) => listed(target, decodeListedKey(o.Key ?? '', encoded), o.ETag, o.LastModified, o.Size, null));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
      if (out.IsTruncated && !token) throw new BackendError(`${target.scope}: the listing was truncated without a continuation token`);
      yield { objects, last: token === undefined, through: objects.at(-1)?.key ?? null };
    } while (token);
    return;
  }
  let keyMarker: string | undefined = startAfter ?? undefined;
  let versionIdMarker: string | undefined;
  while (true) {
    const out = await listingRequest(target, 'ListObjectVersions', signal, () =>
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
      .map((v) => listed(target, decodeListedKey(v.Key ?? '', encoded), v.ETag, v.LastModified, v.Size, v.VersionId ?? 'null'));
    const more = out.IsTruncated === true;
    if (more && !out.NextKeyMarker) throw new BackendError(`${target.scope}: the version listing was truncated without a key marker`);
    // Versions of a key come newest first: the key marker's current version (or delete marker) is in this response or an earlier one.
    const nextKey = more ? decodeListedKey(out.NextKeyMarker!, encoded) : null;
    const page: ListingPage = { objects, last: !more, through: nextKey ?? objects.at(-1)?.key ?? null };
    if (keyMarker !== undefined && versionIdMarker === undefined) page.seekHead = seekHead([...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])], encoded);
    yield page;
    if (!more) return;
    keyMarker = nextKey!;
    versionIdMarker = out.NextVersionIdMarker || undefined;
  }
}

/** A request the whole scan depends on: its failure fails the scan, naming the scope. */
async function listingRequest<T>(target: S3Target, what: string, signal: AbortSignal | undefined, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (isAbort(error, signal)) throw error;
    const { bucket, endpoint } = target;
    throw new BackendError(`${target.scope}: ${explainS3Failure(error, { bucket, endpoint, request: what, permission: what === 'ListObjectVersions' ? 's3:ListBucketVersions' : 's3:ListBucket' })}`, { cause: error });
  }
}

function listed(target: S3Target, key: string, etag: string | undefined, lastModified: Date | undefined, size: number | undefined, versionId: string | null): ListedObject {
  if (!inScope(target, key)) {
    throw new BackendError(`${target.scope}: the listing returned a key outside the prefix: ${JSON.stringify(key)}`);
  }
  return { key, etag, lastModified, size, versionId };
}

/**
 * Read `ids` (in scope, distinct) from listings instead of one HeadObject each: list from
 * just before the smallest id through the largest, keeping the wanted keys (records exactly
 * as the scan builds them). Where the next wanted id lies beyond the listing's position, a
 * new listing starts just before it (StartAfter/KeyMarker = the id without its last
 * character), so gaps between ids are skipped rather than walked. Every id the listings
 * passed without meeting it is absent (null in `into`). After 4 pages per 1,000 ids the
 * listing stops and the ids it has not reached are left out of `into` for HeadObject.
 * In a versioned bucket the ids from a new listing's start up to the first key it lists
 * are left to HeadObject too (see ListingPage.seekHead) unless the listing met them.
 * A failed listing, or keys that do not come in ascending UTF-8 byte order, leave
 * everything to HeadObject.
 */
export async function readByListing(target: S3Target, ids: readonly string[], into: Map<string, ResourceRecord | null>, pageSize: number, signal?: AbortSignal): Promise<void> {
  const wanted = ids.map((id) => ({ id, bytes: Buffer.from(id, 'utf8') })).sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  const maxPages = Math.max(1, Math.ceil((wanted.length * READ_LISTING_PAGES_PER_1000) / pageSize));
  const settled = new Map<string, ResourceRecord | null>();
  let next = 0; // wanted[next] is the smallest id not settled yet
  let pages = 0;
  let previous: Buffer | null = null;
  let through: { key: string; bytes: Buffer } | null = null;
  /** Settle every id up to `bound` (inclusive) not met by the listing as absent. */
  const passTo = (bound: Buffer, inclusive: boolean) => {
    while (next < wanted.length && Buffer.compare(wanted[next]!.bytes, bound) < (inclusive ? 1 : 0)) settled.set(wanted[next++]!.id, null);
  };
  /** Leave every id before `bound` (or through it, if inclusive) unsettled, for HeadObject. */
  const leaveTo = (bound: Buffer | null, inclusive: boolean) => {
    while (next < wanted.length && (bound === null || Buffer.compare(wanted[next]!.bytes, bound) < (inclusive ? 1 : 0))) next++;
  };
  try {
    listing: while (next < wanted.length && pages < maxPages) {
      const before = withoutLastCharacter(wanted[next]!.id);
      const start: string = through !== null && Buffer.compare(through.bytes, Buffer.from(before, 'utf8')) >= 0 ? through.key : before;
      for await (const page of listCurrent(target, start === '' ? null : start, pageSize, signal)) {
        pages++;
        if (page.seekHead) {
          // A version listing after a key: what lies before its first key is not known to be absent.
          const head = page.seekHead;
          leaveTo(head.key === null ? null : Buffer.from(head.key, 'utf8'), !head.current);
          if (next >= wanted.length) break listing;
        }
        for (const o of page.objects) {
          const key = Buffer.from(o.key, 'utf8');
          if (previous !== null && Buffer.compare(previous, key) >= 0) {
            throw new BackendError(`${target.scope}: the listing is not in ascending key order at ${JSON.stringify(o.key)}`);
          }
          previous = key;
          passTo(key, false);
          if (next < wanted.length && wanted[next]!.bytes.equals(key)) settled.set(wanted[next++]!.id, listedRecord(o));
          if (next >= wanted.length) break listing;
        }
        if (page.last) {
          while (next < wanted.length) settled.set(wanted[next++]!.id, null);
          break listing;
        }
        if (page.through !== null) {
          through = { key: page.through, bytes: Buffer.from(page.through, 'utf8') };
          passTo(through.bytes, true);
        }
        if (next >= wanted.length || pages >= maxPages) break listing;
        // The next wanted id lies beyond where this listing stands: start a new one just before it.
        if (through !== null && Buffer.compare(Buffer.from(withoutLastCharacter(wanted[next]!.id), 'utf8'), through.bytes) > 0) continue listing;
      }
    }
  } catch (error) {
    if (isAbort(error, signal)) throw error;
    return;
  }
  for (const [id, record] of settled) into.set(id, record);
}

/** The first key among a version listing's entries, and whether its current version or delete marker is among them. */
function seekHead(entries: readonly { Key?: string; IsLatest?: boolean }[], encoded: boolean): { key: string | null; current: boolean } {
  let head: { key: string; bytes: Buffer; current: boolean } | null = null;
  for (const entry of entries) {
    const key = decodeListedKey(entry.Key ?? '', encoded);
    const bytes = Buffer.from(key, 'utf8');
    const order = head === null ? -1 : Buffer.compare(bytes, head.bytes);
    if (order < 0) head = { key, bytes, current: entry.IsLatest === true };
    else if (order === 0 && entry.IsLatest === true) head!.current = true;
  }
  return head === null ? { key: null, current: false } : { key: head.key, current: head.current };
}

/** A UTF-16 surrogate without its pair: such an id has no UTF-8 form to compare with listed keys. */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `id` without its last character (a whole code point): every key from it on, in S3's order, includes `id`. */
function withoutLastCharacter(id: string): string {
  const end = id.length >= 2 && /[\uDC00-\uDFFF]/.test(id[id.length - 1]!) && /[\uD800-\uDBFF]/.test(id[id.length - 2]!) ? 2 : 1;
  return id.slice(0, Math.max(0, id.length - end));
}

/** The record of a listed object, as a scan builds it. */
export function listedRecord(o: ListedObject): ResourceRecord {
  const record: ResourceRecord = {
    id: o.key,
    createdAtMs: o.lastModified ? o.lastModified.getTime() : null,
    bytes: o.size ?? null,
    fingerprint: o.etag ? s3Fingerprint(o.etag, o.versionId) : '',
  };
  if (!o.etag) record.unreadable = 'listed without an ETag';
  return record;
}
