/**
 * The visible tombstone mark of S3 objects (`mark: tag`): a tag `NAME=runId` merged into the
 * object's tags, on the fingerprinted version only, and removed again when the tombstone is
 * lifted. Per object: HeadObject (If-Match) + GetObjectTagging + PutObjectTagging, and in a
 * bucket without versioning one more HeadObject to check that the tag landed on the
 * fingerprinted object (tagging has no precondition).
 */
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { BackendError } from '../../errors.js';
import { mapLimitAbortable } from '../../util/concurrency.js';
import type { DeleteItem } from '../types.js';
import { describeS3Failure, inScope, isAbort, isMissing, isObjectLevelRefusal, isPreconditionFailed, parseS3Fingerprint, s3Fingerprint, type S3Target } from './s3-client.js';

/** S3 allows at most 10 tags on an object. */
const MAX_TAGS = 10;

export async function markTagged(target: S3Target, tag: string, items: readonly DeleteItem[], runId: string, signal?: AbortSignal): Promise<Map<string, string>> {
  const outcomes = await eachObject(target, items, signal, async (item, signal) => {
    const { sdk, client, bucket } = target;
    const send = { abortSignal: signal };
    const { etag, versionId } = parseS3Fingerprint(item.fingerprint, target.versioning !== null);
    if (!etag) return null;
    // The fingerprinted object must still be the current one.
    let head: HeadObjectCommandOutput;
    try {
      head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: item.id, IfMatch: etag }), send);
    } catch (error) {
      if (isMissing(error) || isPreconditionFailed(error)) return null;
      throw error;
    }
    const currentVersion = target.versioning !== null ? (head.VersionId ?? 'null') : null;
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
        await removeTag(target, tag, item.id, {}, runId, signal).catch(() => undefined);
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

export async function unmarkTagged(target: S3Target, tag: string, items: readonly DeleteItem[], signal?: AbortSignal): Promise<void> {
  await eachObject(target, items, signal, async (item, signal) => {
    const { versionId } = parseS3Fingerprint(item.fingerprint, target.versioning !== null);
    await removeTag(target, tag, item.id, versionId !== null ? { VersionId: versionId } : {}, null, signal);
    return null;
  });
}

/** Remove `tag` from an object (only when its value is `value`, if given); a missing object has nothing to remove. */
async function removeTag(target: S3Target, tag: string, key: string, version: { VersionId?: string }, value: string | null, signal?: AbortSignal): Promise<void> {
  const { sdk, client, bucket } = target;
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
async function eachObject<T>(target: S3Target, items: readonly DeleteItem[], signal: AbortSignal | undefined, fn: (item: DeleteItem, signal: AbortSignal | undefined) => Promise<T | null>): Promise<(T | null)[]> {
  let firstError: unknown;
  let failures = 0;
  const results = await mapLimitAbortable(items, target.concurrency, signal, async (item, _, fanOut) => {
    if (!inScope(target, item.id) || firstError !== undefined) return null;
    try {
      fanOut?.throwIfAborted();
      return await fn(item, fanOut);
    } catch (error) {
      if (!isAbort(error, signal) && (isMissing(error) || isPreconditionFailed(error) || isObjectLevelRefusal(error))) return null;
      failures++;
      firstError ??= error;
      return null;
    }
  });
  if (firstError !== undefined) {
    if (isAbort(firstError, signal)) throw firstError;
    throw new BackendError(`${target.scope}: tagging failed for ${failures} object(s): ${describeS3Failure(firstError)}`, { cause: firstError });
  }
  return results;
}
