/**
 * The data the engine works on. Adapters produce ResourceRecords; the engine turns them
 * into Findings. Nothing here does I/O.
 */
import type { BackendKind } from '../manifest/types.js';

/** One resource as a backend read it: identity, age basis, size, and the attributes owners and protect rules need. */
export interface ResourceRecord {
  /** Byte-exact id: an S3 key, a path relative to the fs root with `/` separators, a SQL primary key as text. */
  id: string;
  /** Age basis in ms since the epoch (mtime/ctime/atime, LastModified, the createdAt column); null when unknown. */
  createdAtMs: number | null;
  bytes: number | null;
  /** Identity captured for later conditional deletes (ETag, versionId, xmin or version column, dev:ino:size:mtime). */
  fingerprint: string;
  tags?: Readonly<Record<string, string>>;
  metadata?: Readonly<Record<string, string>>;
  /** A handler's attributes (command and http kinds), for owner and protect rules. */
  attributes?: Readonly<Record<string, string>>;
  /** SQL column values, as text (null for SQL NULL). */
  columns?: Readonly<Record<string, string | null>>;
  /** Results of protect rules the backend evaluates itself (SQL `where`), by rule index. */
  protectMatches?: Readonly<Record<number, boolean>>;
  /** Set when attributes the owner or protect rules need could not be read; the resource is then `unknown`. */
  unreadable?: string;
}

export type Status = 'live' | 'orphaned' | 'expired' | 'protected' | 'young' | 'unknown';
export const STATUSES: readonly Status[] = ['live', 'orphaned', 'expired', 'protected', 'young', 'unknown'];

/** What an audit counts, for one resource type or summed over all: resources scanned, by status, the orphans' bytes, the cleanup backlog. */
export interface ScanCounts {
  scanned: number;
  live: number;
  orphaned: number;
  expired: number;
  protected: number;
  young: number;
  /** Resources that could not be judged (an error on the liveness or protection path); never reaped. */
  unknown: number;
  orphanBytes: number;
  /** Tombstones marked and not yet swept (a reap's: what is left after its marks and sweeps). */
  backlog: number;
}

export type OrphanReason = 'no-owner' | 'owner-dead' | 'unreachable';

export interface Finding {
  resource: string;
  backend: BackendKind;
  id: string;
  status: Status;
  /**
   * Why: an OrphanReason; for `unknown`, what could not be judged (`liveness-unavailable`,
   * `attributes-unreadable`, `age-unknown`, `protection-unreadable`); `ttl`, `min-age`, or the protect rule that matched.
   */
  reason: string | null;
  /** The owner key (or, for ref owners, `TYPE/ID`) that was judged; null when none could be read. */
  owner: string | null;
  ageSeconds: number | null;
  bytes: number | null;
  fingerprint: string;
  /** How far past its ttl the resource is, in seconds (0 when not past, null without ttl or age). */
  beyondTtlSeconds: number | null;
}

/** What a liveness look-up said about an owner key or a referenced resource. */
export type Liveness = 'live' | 'dead' | 'unknown';

/** A reference to an owning resource: the type named by `ref` and the id read from this resource. */
export interface OwnerRef {
  type: string;
  id: string;
}

/** The owner read from one resource under one owner rule. */
export type OwnerValue = { kind: 'key'; key: string } | { kind: 'ref'; ref: OwnerRef } | { kind: 'none' } | { kind: 'unreadable'; why: string };
