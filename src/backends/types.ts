/**
 * The one narrow interface the engine's callers see for every backend kind.
 * Each adapter lives in its own folder and imports its driver lazily.
 */
import type { ShardPart } from '../engine/shard.js';
import type { ResourceRecord } from '../engine/types.js';
import type { BackendKind } from '../manifest/types.js';

export interface ScanOptions {
  /** Resume after this cursor (from an earlier page); absent to start at the beginning. */
  cursor?: string | null;
  /** Records per page (the resource's batchSize). */
  pageSize: number;
  signal?: AbortSignal;
  /** Only this shard's part of the scope (engine/shard.ts); absent for all of it. */
  part?: ShardPart;
}

export interface ScanPage {
  records: ResourceRecord[];
  /** Cursor to resume after this page; null when the scan is complete. */
  cursor: string | null;
  /**
   * Entries the scan met but could not read: a directory it could not open (its contents
   * are not in any page), a file it could not stat, an object whose metadata or tags
   * failed. Those that are records are in `records` too, flagged `unreadable` (judged
   * `unknown`). A scan that cannot go on at all throws instead.
   */
  unreadable?: { id: string; why: string }[];
  /**
   * The records are as of this moment (epoch ms), not read now: an S3 Inventory report. A reap
   * judges due tombstones by reading each resource again, never from such a page.
   */
  snapshotAtMs?: number;
}

/** A liveness source that is a query of live owner keys on a SQL connection (the manifest's `owners: [{ sql }]`). */
export interface LiveRegistry {
  connection: string;
  query: string;
}

/** What the ledger holds of a tombstoned resource (`Backend.standIns`). */
export interface StandInItem {
  id: string;
  fingerprint: string;
  bytes: number | null;
  markedAt: number;
}

/** What the reap engine asks a backend to delete: the identity captured at mark time. */
export interface DeleteItem {
  id: string;
  fingerprint: string;
  /** The owner value read at mark time (SQL deletes re-check it in their WHERE). */
  ownerValue?: string | null;
}

export type DeleteOutcome =
  /** The backend confirmed the delete of exactly the fingerprinted resource. */
  | 'deleted'
  /** Nothing was there to delete. */
  | 'absent'
  /** The resource changed since it was fingerprinted; it was not deleted. */
  | 'changed'
  /** The request failed; `error` says why. Whether the resource is gone is unknown until read back. */
  | 'failed';

export interface DeleteResult {
  id: string;
  outcome: DeleteOutcome;
  error?: string;
  /** Where a restorable copy was kept (quarantine path, archive table, S3 versionId of the delete marker). */
  restoreHandle?: string;
}

/** Points inside a backend's delete where a crash test may kill the process (REAPER_FAILPOINT). */
export type BackendFailpoint = 'after-rename';

/**
 * What a backend finds out about itself at run time. What it can do for its resource type is
 * said once, by its optional methods: each is present only where it acts (`mark` and `unmark`
 * only with the manifest's `mark`, `recoverDelete` and `purgeRetained` where deletes leave
 * something behind), so callers ask `backend.mark`, never the manifest and a flag besides.
 */
export interface BackendCapabilities {
  /**
   * How deletes are issued, for reports: `rename-verify`, `sql-conditional`, `s3-batch-if-match`,
   * `s3-per-object-if-match`, `s3-no-conditional-delete` (nothing is deleted), … S3 with
   * `deleteMode: auto` learns it from a probe (it writes one object under the prefix).
   */
  deleteMode: string;
}

export interface Backend {
  readonly kind: BackendKind;
  /** The scope in human terms (`s3://bucket/prefix`, `postgres public.images`, `/srv/scratch`), for messages. */
  readonly scope: string;
  capabilities(signal?: AbortSignal): Promise<BackendCapabilities>;
  /** Stream the resources in scope, a page at a time, in a stable order. */
  scan(options: ScanOptions): AsyncIterable<ScanPage>;
  /**
   * The ids among `ids` that lie in `part`, whether or not the resource exists: the scan of
   * `part` would meet each of them if it did (a sharded reap settles only its own tombstones).
   */
  inPart(ids: readonly string[], part: ShardPart, signal?: AbortSignal): Promise<Set<string>>;
  /** Read specific resources again (re-verification at sweep time, `explain`); absent ids are missing from the map. */
  read(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, ResourceRecord>>;
  /**
   * `reaper split-points` (S3 and SQL): the upper bounds of `ranges` equal-count ranges of the
   * resources in scope, all but the last, in the key order the shards compare (docs/scale-out.md),
   * and how many resources were counted.
   */
  splitPoints?(ranges: number, signal?: AbortSignal): Promise<{ points: string[]; counted: number }>;
  /**
   * For a sweep that does not scan (`reap --sweep-only`): records of tombstoned resources built
   * from what the ledger holds, without a request, where that is as good as a read — every
   * delete is checked by the server against the exact fingerprint, and judging needs nothing
   * the id does not say. The age is a lower bound (old enough at the mark, `minAgeMs`). Null
   * where a read is needed.
   */
  standIns?(items: readonly StandInItem[], minAgeMs: number, signal?: AbortSignal): Promise<Map<string, ResourceRecord> | null>;
  /**
   * Put a visible tombstone mark on resources (where the backend and manifest allow),
   * conditionally on each fingerprint. Returns id → fingerprint after marking (a SQL mark
   * column changes the row's version); ids missing from the map were not marked (changed or gone).
   */
  mark?(items: readonly DeleteItem[], runId: string, signal?: AbortSignal): Promise<Map<string, string>>;
  /** Remove visible marks from lifted tombstones. */
  unmark?(items: readonly DeleteItem[], signal?: AbortSignal): Promise<void>;
  /** Delete conditionally on each item's fingerprint; one result per item, in order. */
  delete(items: readonly DeleteItem[], signal?: AbortSignal): Promise<DeleteResult[]>;
  /** Bring back a deleted resource from its restore handle. */
  restore?(id: string, handle: string, signal?: AbortSignal): Promise<void>;
  /**
   * Settle what a run that died inside `delete` left of this item (files: a copy in quarantine,
   * renamed but not yet unlinked or put back): finish the delete when what is left is the
   * fingerprinted resource (keeping it where the backend keeps deleted resources, with its restore
   * handle), put it back when it is not. Null when nothing was left: the caller reads the
   * resource to learn what happened.
   */
  recoverDelete?(item: DeleteItem, signal?: AbortSignal): Promise<DeleteResult | null>;
  /**
   * The delete mode where the manifest alone decides it (handler kinds), shown in every plan,
   * a dry run's too; absent where it takes a request to learn (S3 `deleteMode: auto`).
   */
  plannedDeleteMode?(): string;
  /** What a reap will rely on that `validate` should show (S3: versioning, how deletes are made conditional; SQL: the archive table). */
  reapNotes?(): string[];
  /**
   * Whether the copy a restore handle names is still kept, and until when the resource's
   * retention keeps it (files `retain`; null: until removed by hand). Absent where the backend
   * cannot tell without changing anything: the handle is then taken as kept.
   */
  keptCopy?(handle: string): Promise<{ present: boolean; untilMs: number | null }>;
  /** Drop kept copies older than the resource's retention (files `retain`); returns how many. */
  purgeRetained?(nowMs: number, signal?: AbortSignal): Promise<number>;
  /**
   * Why the resource type must not be reaped as the backend stands (a requirement of the
   * manifest it does not meet, e.g. S3 `requireVersioning`), or null. Known at open, no request.
   */
  reapRefusal?(): string | null;
  close(): Promise<void>;
}
