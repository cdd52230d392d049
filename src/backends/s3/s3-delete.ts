/**
 * Conditional deletes for S3 (docs/safety.md §3) and the probe that chooses how to issue them.
 *
 * Delete modes:
 * - `s3-batch-if-match`: DeleteObjects with up to 1,000 keys, each carrying its ETag. Used
 *   only when the probe saw the endpoint refuse a wrong per-object ETag (AWS does).
 * - `s3-per-object-if-match`: one DeleteObject with `If-Match: <ETag>` per key, bounded
 *   concurrency. Used where DeleteObjects ignores per-object ETags (moto does) but the
 *   single-object If-Match is enforced, and in buckets whose versioning is suspended.
 * - `s3-versioned-delete-marker`: versioning enabled. The current version is checked to
 *   be exactly the fingerprinted one (read for up to 1,000 keys at a time through the
 *   backend's `read`, by listing where it lists; else HeadObject before each delete), then
 *   DeleteObject with If-Match and no VersionId adds a delete marker; its version id is the
 *   restore handle.
 * - `s3-versioned-batch-delete-marker`: versioning enabled, `deleteMode: batch-if-match`.
 *   The current version of each key is read (by listing, see S3Backend.read) and must be
 *   exactly the fingerprinted one; then DeleteObjects without VersionId, each key with its
 *   ETag, adds delete markers; each DeleteMarkerVersionId is the restore handle.
 * - `s3-no-conditional-delete`: the endpoint ignores or rejects If-Match on deletes.
 *   reaper does not delete unconditionally: every item fails with the reason.
 *
 * With the location's `deleteMode: auto` (the default) the probe decides. It writes
 * `<prefix>.reaper-probe-<uuid>`, tries to delete it with a wrong ETag (in a DeleteObjects
 * batch, then alone), looks whether it survived, and removes it. `batch-if-match` and
 * `per-object-if-match` skip the probe: the manifest asserts that the endpoint enforces
 * the ETag. On an endpoint that ignores it (moto ignores it in DeleteObjects; some
 * S3-compatible servers ignore If-Match altogether) those deletes are NOT conditional.
 * In a bucket with versions (enabled or suspended) the batch mode checks the current
 * version of every key before sending the batch, as the per-object path does with HeadObject.
 */
import { randomUUID } from 'node:crypto';
import type { DeleteObjectsCommandOutput } from '@aws-sdk/client-s3';
import { BackendError } from '../../errors.js';
import { mapLimitAbortable } from '../../util/concurrency.js';
import type { ResourceRecord } from '../../engine/types.js';
import type { S3Location } from '../../manifest/types.js';
import type { DeleteItem, DeleteResult } from '../types.js';
import {
  decodeListedKey,
  describeS3Failure,
  inScope,
  isAbort,
  isMissing,
  isObjectLevelRefusal,
  isPreconditionFailed,
  PROBE_NAME,
  parseS3Fingerprint,
  retryOnConflict,
  s3Failure,
  type S3Target,
} from './s3-client.js';

export type S3DeleteMode =
  | 's3-batch-if-match'
  | 's3-per-object-if-match'
  | 's3-versioned-delete-marker'
  | 's3-versioned-batch-delete-marker'
  | 's3-no-conditional-delete';

/** The manifest's `deleteMode` of an s3 location. */
export type S3DeleteSetting = NonNullable<S3Location['deleteMode']>;

/**
 * The delete mode a manifest asserts, without probing; null for `auto` (probe). A bucket
 * with versioning enabled keeps its delete markers either way.
 */
export function assertedDeleteMode(setting: S3DeleteSetting, versioning: S3Target['versioning']): S3DeleteMode | null {
  if (setting === 'batch-if-match') return versioning === 'Enabled' ? 's3-versioned-batch-delete-marker' : 's3-batch-if-match';
  if (setting === 'per-object-if-match') return versioning === 'Enabled' ? 's3-versioned-delete-marker' : 's3-per-object-if-match';
  return null;
}

/** Reads the current records of keys (S3Backend.read): absent keys are missing from the map. */
export type ReadCurrent = (ids: readonly string[], signal?: AbortSignal) => Promise<Map<string, ResourceRecord>>;

/** DeleteObjects takes at most this many keys. */
export const BATCH_LIMIT = 1000;
/** An ETag no probe object can have (the probe's body is not empty). */
const WRONG_ETAG = '"00000000000000000000000000000000"';
const PROBE_BODY = 'reaper conditional-delete probe\n';

/** Find out how this endpoint enforces ETag preconditions on deletes. */
export async function probeDeleteMode(target: S3Target, signal?: AbortSignal): Promise<S3DeleteMode> {
  const key = `${target.prefix}${PROBE_NAME}${randomUUID()}`;
  const { sdk, client, bucket } = target;
  const send = { abortSignal: signal };
  const put = async () => (await client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key: key, Body: PROBE_BODY }), send)).ETag;
  const survived = async (etag: string | undefined): Promise<boolean> => {
    try {
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), send);
      return etag === undefined || head.ETag === etag;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  };
  try {
    let etag = await put();
    if (target.versioning === null) {
      let refused = false;
      try {
        const batch = await client.send(
          new sdk.DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: key, ETag: WRONG_ETAG }], Quiet: false } }),
          send,
        );
        refused = (batch.Errors ?? []).some((e) => e.Key === key && e.Code === 'PreconditionFailed');
      } catch (error) {
        // An endpoint without (conditional) batch deletes: per-object deletes are probed next.
        if (isAbort(error, signal) || !isObjectLevelRefusal(error)) throw error;
      }
      if (refused && (await survived(etag))) return 's3-batch-if-match';
      if (!(await survived(etag))) etag = await put();
    }
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: WRONG_ETAG }), send);
    } catch (error) {
      if (!isPreconditionFailed(error)) {
        if (isObjectLevelRefusal(error) || s3Failure(error).status === 501) return 's3-no-conditional-delete';
        throw error;
      }
    }
    if (!(await survived(etag))) return 's3-no-conditional-delete';
    return target.versioning === 'Enabled' ? 's3-versioned-delete-marker' : 's3-per-object-if-match';
  } catch (error) {
    if (isAbort(error, signal)) throw error;
    throw new BackendError(
      `${target.scope}: cannot probe how the endpoint enforces conditional deletes (it needs s3:PutObject, s3:DeleteObject and s3:GetObject under the prefix): ${describeS3Failure(error)}`,
      { cause: error },
    );
  } finally {
    await removeProbe(target, key).catch(() => undefined);
  }
}

/** Remove every trace of the probe object: its versions and delete markers too in a versioned bucket. */
async function removeProbe(target: S3Target, key: string): Promise<void> {
  const { sdk, client, bucket } = target;
  if (target.versioning === null) {
    try {
      // The probe's own key (a fresh UUID): no resource can be addressed by it.
      await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    return;
  }
  const listed = await client.send(new sdk.ListObjectVersionsCommand({ Bucket: bucket, Prefix: key, EncodingType: 'url', MaxKeys: 100 }));
  const encoded = listed.EncodingType === 'url';
  const versions = [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])];
  for (const v of versions) {
    if (v.Key === undefined || v.VersionId === undefined || decodeListedKey(v.Key, encoded) !== key) continue;
    // An exact version of the probe's own key: nothing else can be addressed by it.
    await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: v.VersionId }));
  }
}

const failed = (id: string, error: string): DeleteResult => ({ id, outcome: 'failed', error });

/**
 * Delete each item conditionally on its fingerprint; one result per item, in order.
 * `readCurrent` is needed by the batch modes in a bucket with versions.
 */
export async function deleteS3Objects(
  target: S3Target,
  mode: S3DeleteMode,
  items: readonly DeleteItem[],
  signal?: AbortSignal,
  readCurrent?: ReadCurrent,
): Promise<DeleteResult[]> {
  const results = new Array<DeleteResult>(items.length);
  const pending: number[] = [];
  items.forEach((item, i) => {
    if (!inScope(target, item.id)) results[i] = failed(item.id, `refusing a key outside the scope ${target.scope}`);
    else if (mode === 's3-no-conditional-delete')
      results[i] = failed(item.id, `the endpoint does not enforce If-Match on deletes; reaper does not delete from ${target.scope} unconditionally`);
    else if (!parseS3Fingerprint(item.fingerprint, target.versioning !== null).etag) results[i] = failed(item.id, 'the fingerprint holds no ETag');
    else pending.push(i);
  });

  let single = pending;
  if (mode === 's3-batch-if-match' || mode === 's3-versioned-batch-delete-marker') {
    const seen = new Set<string>();
    const batched: number[] = [];
    single = [];
    for (const i of pending) {
      const id = items[i]!.id;
      // Repeated keys and keys XML cannot carry faithfully go one at a time.
      if (seen.has(id) || !xmlSafe(id)) single.push(i);
      else {
        seen.add(id);
        batched.push(i);
      }
    }
    for (let start = 0; start < batched.length; start += BATCH_LIMIT) {
      let group = batched.slice(start, start + BATCH_LIMIT);
      if (target.versioning !== null) {
        // If-Match alone would also match a newer version with identical content: each current version must be the fingerprinted one.
        const checked = await checkCurrentVersions(target, group.map((i) => items[i]!), readCurrent, signal);
        group.forEach((i, k) => {
          const verdict = checked[k];
          if (verdict) results[i] = verdict;
        });
        group = group.filter((_, k) => checked[k] === null);
      }
      if (group.length === 0) continue;
      const groupResults = await deleteBatch(target, group.map((i) => items[i]!), signal);
      group.forEach((i, k) => (results[i] = groupResults[k]!));
    }
  }
  // Per-object deletes that add a delete marker check the current version first. With a
  // reader, the check is done for up to 1,000 distinct keys at a time (by listing, where
  // the backend lists), instead of one HeadObject before each delete.
  const prechecked = new Set<number>();
  if (mode === 's3-versioned-delete-marker' && readCurrent) {
    const seen = new Set<string>();
    const distinct = single.filter((i) => !seen.has(items[i]!.id) && seen.add(items[i]!.id));
    for (let start = 0; start < distinct.length; start += BATCH_LIMIT) {
      const group = distinct.slice(start, start + BATCH_LIMIT);
      const checked = await checkCurrentVersions(target, group.map((i) => items[i]!), readCurrent, signal);
      group.forEach((i, k) => {
        const verdict = checked[k];
        if (verdict) results[i] = verdict;
        else prechecked.add(i);
      });
    }
    single = single.filter((i) => results[i] === undefined);
  }
  const singles = await mapLimitAbortable(single, target.concurrency, signal, (i, _, fanOut) => deleteOne(target, items[i]!, fanOut, prechecked.has(i)));
  single.forEach((i, k) => (results[i] = singles[k]!));
  return results;
}

/**
 * For a batch in a bucket with versions: null for each item whose current version is
 * exactly the fingerprinted one (it may be sent), else its result (`absent`, `changed`,
 * or `failed` when the current versions cannot be read).
 */
async function checkCurrentVersions(
  target: S3Target,
  items: readonly DeleteItem[],
  readCurrent: ReadCurrent | undefined,
  signal?: AbortSignal,
): Promise<(DeleteResult | null)[]> {
  if (!readCurrent) return items.map((item) => failed(item.id, 'internal: a batch delete in a bucket with versions needs the current versions'));
  let current: Map<string, ResourceRecord>;
  try {
    current = await readCurrent(
      items.map((item) => item.id),
      signal,
    );
  } catch (error) {
    const why = isAbort(error, signal) ? 'aborted before the request was sent' : `cannot read the current versions: ${describeS3Failure(error)}`;
    return items.map((item) => failed(item.id, why));
  }
  return items.map((item) => {
    const record = current.get(item.id);
    if (!record) return { id: item.id, outcome: 'absent' };
    const want = parseS3Fingerprint(item.fingerprint, true);
    const now = parseS3Fingerprint(record.fingerprint, true);
    if (record.unreadable !== undefined || now.etag !== want.etag || (want.versionId !== null && now.versionId !== want.versionId)) {
      return { id: item.id, outcome: 'changed' };
    }
    return null;
  });
}

async function deleteBatch(target: S3Target, items: readonly DeleteItem[], signal?: AbortSignal): Promise<DeleteResult[]> {
  if (signal?.aborted) return items.map((item) => failed(item.id, 'aborted before the request was sent'));
  const { sdk, client, bucket } = target;
  const versioned = target.versioning !== null;
  try {
    const output = await client.send(
      new sdk.DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: items.map((item) => ({ Key: item.id, ETag: parseS3Fingerprint(item.fingerprint, versioned).etag })), Quiet: false },
      }),
      { abortSignal: signal },
    );
    return batchOutcomes(items, output, target.versioning === 'Enabled');
  } catch (error) {
    const why = isAbort(error, signal) ? 'aborted; whether the objects are gone is unknown until read back' : describeS3Failure(error);
    return items.map((item) => failed(item.id, why));
  }
}

/**
 * Map a DeleteObjects answer to one result per item: Deleted → deleted, PreconditionFailed
 * → changed, NoSuchKey → absent. With `restorable` (versioning enabled) a deleted item's
 * restore handle is the version id of the delete marker the request added.
 */
export function batchOutcomes(
  items: readonly DeleteItem[],
  output: Pick<DeleteObjectsCommandOutput, 'Deleted' | 'Errors'>,
  restorable = false,
): DeleteResult[] {
  const deleted = new Map<string, string | undefined>();
  for (const d of output.Deleted ?? []) {
    if (d.Key !== undefined) deleted.set(d.Key, restorable && d.DeleteMarker !== false && !d.VersionId ? d.DeleteMarkerVersionId || undefined : undefined);
  }
  const errors = new Map<string, { Code?: string; Message?: string }>();
  for (const e of output.Errors ?? []) if (e.Key !== undefined) errors.set(e.Key, e);
  return items.map((item): DeleteResult => {
    const error = errors.get(item.id);
    if (deleted.has(item.id) && error) return failed(item.id, 'the server reported this key both deleted and failed');
    if (deleted.has(item.id)) {
      const handle = deleted.get(item.id);
      return handle === undefined ? { id: item.id, outcome: 'deleted' } : { id: item.id, outcome: 'deleted', restoreHandle: handle };
    }
    if (!error) return failed(item.id, 'the server reported no result for this key');
    if (error.Code === 'PreconditionFailed') return { id: item.id, outcome: 'changed' };
    if (error.Code === 'NoSuchKey') return { id: item.id, outcome: 'absent' };
    return failed(item.id, `${error.Code ?? 'Error'}: ${error.Message ?? 'no message'}`);
  });
}

/** One conditional DeleteObject; `versionChecked`: the current version was already found to be the fingerprinted one. */
async function deleteOne(target: S3Target, item: DeleteItem, signal?: AbortSignal, versionChecked = false): Promise<DeleteResult> {
  if (signal?.aborted) return failed(item.id, 'aborted before the request was sent');
  const { sdk, client, bucket } = target;
  const versioned = target.versioning !== null;
  const { etag, versionId } = parseS3Fingerprint(item.fingerprint, versioned);
  const send = { abortSignal: signal };
  try {
    if (versioned && versionId !== null && !versionChecked) {
      // If-Match alone would also match a newer version with identical content: the current version must be the fingerprinted one.
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: item.id }), send);
      if ((head.VersionId ?? 'null') !== versionId || head.ETag !== etag) return { id: item.id, outcome: 'changed' };
    }
    const output = await retryOnConflict(
      () => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: item.id, IfMatch: etag }), send),
      signal,
    );
    const result: DeleteResult = { id: item.id, outcome: 'deleted' };
    if (target.versioning === 'Enabled' && output.VersionId && output.DeleteMarker !== false) result.restoreHandle = output.VersionId;
    return result;
  } catch (error) {
    if (isPreconditionFailed(error)) return { id: item.id, outcome: 'changed' };
    if (isMissing(error)) return { id: item.id, outcome: 'absent' };
    if (isAbort(error, signal)) return failed(item.id, 'aborted; whether the object is gone is unknown until read back');
    return failed(item.id, describeS3Failure(error));
  }
}

/** Whether an XML 1.0 body carries the key byte-exactly through every S3 server's parser: no control characters, line separators or non-characters. */
function xmlSafe(key: string): boolean {
  for (const ch of key) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029 || c === 0xfffe || c === 0xffff || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}
