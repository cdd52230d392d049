/**
 * Shards: which part of each resource type shard i of N scans (docs/scale-out.md). Pure: the
 * parts are a function of the shard, the type's kind and its configured split points, so N
 * processes that never talk to each other agree on them; the union of the N parts of a type
 * is the whole type and no two parts meet.
 *
 * - S3 and SQL types with `shard.splitPoints` P0 < P1 < … < P(M-1) (in the backend's key
 *   order) have M+1 key ranges (-∞, P0], (P0, P1], …, (P(M-1), +∞): a key equal to a split
 *   point belongs to the range it closes. Shard i takes the ranges
 *   floor(i·(M+1)/N) … floor((i+1)·(M+1)/N) - 1, contiguous, so its part is one range
 *   (`after`, `through`]; with more shards than ranges some shards have none.
 * - S3 and SQL types without split points are not split: the whole type goes to the shard
 *   `fnv1a(name) mod N`, the others have none of it.
 * - fs types are split by top-level entry: an entry (and everything under it) belongs to
 *   shard `fnv1a(first path segment) mod N`. Every shard reads the root directory anyway.
 */
import { UsageError } from '../errors.js';
import type { ResourceSpec } from '../manifest/types.js';

/** Shard `index` (0-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** What one shard scans of one resource type. */
export type ShardPart =
  /** The whole type (no shards, or one). */
  | { kind: 'all' }
  /** None of it: another shard scans it all, or this shard's ranges are empty. */
  | { kind: 'none' }
  /** Keys after `after` (exclusive) through `through` (inclusive), in the backend's key order; null is unbounded. */
  | { kind: 'range'; after: string | null; through: string | null }
  /** fs: the top-level entries whose name hashes to `index` mod `count`. */
  | { kind: 'hash'; index: number; count: number };

/** Most shards one job may have: far more than any split-point list needs, few enough to catch a typo. */
export const MAX_SHARDS = 4096;

/**
 * Parse `i/N` (0 <= i < N <= MAX_SHARDS). `key` names where the text came from (`--shard`,
 * `$JOB_COMPLETION_INDEX`), for the message of a UsageError (exit 2).
 */
export function parseShard(text: string, key: string): Shard {
  const match = /^(\d{1,4})\/(\d{1,4})$/.exec(text.trim());
  if (!match) throw new UsageError(`${key}: expected i/N (shard i of N, counted from 0), got ${JSON.stringify(text)}`);
  return checkedShard(Number(match[1]), Number(match[2]), key);
}

/** A shard from its parts, checked; `key` names them in the message. */
export function checkedShard(index: number, count: number, key: string): Shard {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SHARDS) throw new UsageError(`${key}: the shard count must be 1 to ${MAX_SHARDS}, got ${count}`);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new UsageError(`${key}: the shard index must be 0 to ${count - 1} (counted from 0), got ${index}`);
  return { index, count };
}

/** The shard as `i/N`, for run records, labels and messages. */
export function shardLabel(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/** 32-bit FNV-1a of the UTF-8 bytes of `text`: stable across processes, platforms and versions. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** What `shard` scans of the type `spec`; the whole type without a shard. */
export function shardPart(spec: Pick<ResourceSpec, 'name' | 'location' | 'splitPoints'>, shard: Shard | null): ShardPart {
  if (shard === null || shard.count === 1) return { kind: 'all' };
  if (spec.location.kind === 'fs') return { kind: 'hash', index: shard.index, count: shard.count };
  const points = spec.splitPoints ?? [];
  if (points.length === 0) return fnv1a(spec.name) % shard.count === shard.index ? { kind: 'all' } : { kind: 'none' };
  const ranges = points.length + 1;
  const first = Math.floor((shard.index * ranges) / shard.count);
  const end = Math.floor(((shard.index + 1) * ranges) / shard.count);
  if (first === end) return { kind: 'none' };
  return { kind: 'range', after: first === 0 ? null : points[first - 1]!, through: end === ranges ? null : points[end - 1]! };
}

/**
 * The name of the state-store lock a reap of `name` takes: the type's name unsharded, and one
 * lock per shard (`name@i/N`) sharded, so the N shards of a job do not refuse each other while
 * two runs of the same shard still do. A run also refuses to go on beside a lock whose part of
 * the type overlaps its own (`overlappingLocks`).
 */
export function lockName(name: string, shard: Shard | null): string {
  return shard === null || shard.count === 1 ? name : `${name}@${shardLabel(shard)}`;
}

/**
 * Of the live locks `held` (names as `lockName` gives them), those of other runs whose part of
 * the type `name` overlaps the part `mine` locks: the shards of one layout (`@i/N`, same N) are
 * disjoint, but an unsharded run covers every shard, and shards of another count cut the type
 * elsewhere. A run takes its own lock first and then checks, so of two overlapping runs that
 * start together at least one sees the other (docs/scale-out.md).
 */
export function overlappingLocks(name: string, mine: string, held: readonly { resource: string; runId: string }[], runId: string): string[] {
  const layout = (lock: string): number | null => {
    if (lock === name) return 1;
    if (!lock.startsWith(`${name}@`)) return null;
    const count = /^\d+\/(\d+)$/.exec(lock.slice(name.length + 1))?.[1];
    return count === undefined ? null : Number(count);
  };
  const own = layout(mine);
  return held
    .filter((lock) => lock.runId !== runId && lock.resource !== mine)
    .filter((lock) => {
      const other = layout(lock.resource);
      return other !== null && (other === 1 || own === 1 || other !== own);
    })
    .map((lock) => lock.resource);
}

/** A run's place in a sharded job: the job's id (null when none was given) and the shard as `i/N` (null unsharded). */
export interface JobShard {
  id: string | null;
  shard: string | null;
}

/** The job and shard of a run for its documents and record; null for a run with neither. */
export function jobShard(job: string | null | undefined, shard: Shard | null | undefined): JobShard | null {
  if ((job ?? null) === null && (shard ?? null) === null) return null;
  return { id: job ?? null, shard: shard ? shardLabel(shard) : null };
}

/**
 * The caps a shard of a job without an id checks its plan against, so that they hold for the
 * whole job without the shards meeting in the store (docs/scale-out.md): each shard may condemn
 * at most ⌊maxDeletesPerRun / N⌋, so the N shards together stay within maxDeletesPerRun; and a
 * fraction each shard keeps of its own scan is kept by their sum too. Stricter than the claims
 * the shards of a named job make on the store (run/reap/jobs.ts): a shard cannot use what the
 * others leave. Never looser.
 */
export function shardCaps<S extends Pick<ResourceSpec, 'maxDeletesPerRun' | 'maxDeleteFraction'>>(spec: S, shard: Shard | null): S {
  if (shard === null || shard.count === 1) return spec;
  return { ...spec, maxDeletesPerRun: Math.floor(spec.maxDeletesPerRun / shard.count) };
}

/** The part in words, for reports and messages. */
export function describePart(part: ShardPart): string {
  switch (part.kind) {
    case 'all':
      return 'all';
    case 'none':
      return 'none';
    case 'hash':
      return `top-level entries hashing to ${part.index} mod ${part.count}`;
    case 'range':
      return `keys in (${part.after === null ? '-∞' : JSON.stringify(part.after)}, ${part.through === null ? '+∞' : JSON.stringify(part.through)}]`;
  }
}

/** UTF-8 byte order, S3's key order. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Whether `id` lies in `part` where the key order is UTF-8 byte order (S3 keys) and an fs
 * id's top-level entry is its first `/`-separated segment. SQL ranges are judged by the
 * server in the key column's own order (SqlBackend.inPart).
 */
export function partHoldsBytes(part: ShardPart, id: string): boolean {
  switch (part.kind) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'hash':
      return fnv1a(topLevel(id)) % part.count === part.index;
    case 'range':
      return (part.after === null || compareUtf8(id, part.after) > 0) && (part.through === null || compareUtf8(id, part.through) <= 0);
  }
}

/** The first segment of a relative fs id. */
export function topLevel(id: string): string {
  const slash = id.indexOf('/');
  return slash === -1 ? id : id.slice(0, slash);
}
