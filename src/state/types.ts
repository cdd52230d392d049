/**
 * The state store: leases, tombstones (the reap ledger and its journal), runs,
 * checkpoints and locks. One contract, three dialects (sqlite, postgres, mysql).
 * Every time it records or compares is the store's own clock, never the caller's.
 */
import type { LeaseLossReason } from '../errors.js';

export type StoreDialect = 'sqlite' | 'postgres' | 'mysql';

export interface Lease {
  leaseId: string;
  key: string;
  holder: string;
  /** Fencing number: grows by one with every acquisition of the same key. */
  generation: number;
  ttlMs: number;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
  releasedAt: number | null;
}

export interface AcquiredLease extends Lease {
  /** Secret that proves holdership over the HTTP API; shown once. */
  token: string;
}

export interface LeaseBounds {
  minTtlMs: number;
  maxTtlMs: number;
}

export const DEFAULT_LEASE_BOUNDS: LeaseBounds = { minTtlMs: 1_000, maxTtlMs: 7 * 86_400_000 };

export interface LeaseStats {
  active: number;
  /** Leases that ran out without a release (still on record). */
  expired: number;
  renewals: number;
  renewalFailures: number;
  /** renewalFailures / (renewals + renewalFailures) over the window; 0 when there were none. */
  renewalFailureRate: number;
}

export interface RenewOutcome {
  leaseId: string;
  lease?: Lease;
  /** Why the renewal failed; absent on success. */
  lost?: LeaseLossReason;
}

export interface LeaseStore {
  /** The lease ttls this store grants; anything outside is refused with a RangeError naming them. */
  readonly leaseBounds: LeaseBounds;
  acquireLease(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease>;
  /**
   * Acquire a lease on each of these distinct keys in one transaction, as `acquireLease`
   * would one by one (each key's next generation); the result is in the keys' order.
   */
  acquireLeases(keys: readonly string[], options: { holder: string; ttlMs: number }): Promise<AcquiredLease[]>;
  /** Renew one lease; throws LeaseLostError once it expired or was released (a late heartbeat never resurrects). */
  renewLease(leaseId: string, options?: { ttlMs?: number; holder?: string }): Promise<Lease>;
  /** Renew many leases in one statement; each outcome is recorded for the renewal-failure rate. */
  renewLeases(leaseIds: readonly string[], options?: { ttlMs?: number; holder?: string }): Promise<RenewOutcome[]>;
  /** Release a lease (idempotent); throws LeaseLostError('not-holder') when `holder` is given and differs. */
  releaseLease(leaseId: string, options?: { holder?: string }): Promise<void>;
  getLease(leaseId: string): Promise<Lease | null>;
  /** Token check for the HTTP API (constant-time compare on the stored hash). */
  verifyLeaseToken(leaseId: string, token: string): Promise<boolean>;
  listLeases(filter?: { key?: string; includeInactive?: boolean; limit?: number }): Promise<Lease[]>;
  /** Which of these keys have an unexpired, unreleased lease now. */
  liveKeys(keys: readonly string[]): Promise<Set<string>>;
  /** Keys among these whose lease was acquired or renewed at or after `sinceMs` (store clock). */
  keysActiveSince(keys: readonly string[], sinceMs: number): Promise<Set<string>>;
  countLiveKeys(): Promise<number>;
  leaseStats(windowMs: number): Promise<LeaseStats>;
  /**
   * Delete leases that ended more than `olderThanMs` ago, and renewal statistics older
   * than that; returns how many leases. A lease renewed (or acquired) at or after the
   * earliest mark of a tombstone still marked or deleting is kept whatever its age: the
   * sweep asks whether an owner was renewed since the mark (docs/safety.md §1, §2), and pruning
   * must not erase the answer.
   */
  pruneLeases(olderThanMs: number): Promise<number>;
}

export type RunKind = 'audit' | 'reap';
/** `abandoned`: the run stopped beating without recording its end (killed -9, its machine lost); see `abandonStaleRuns`. */
export type RunStatus = 'running' | 'ok' | 'failed' | 'refused' | 'interrupted' | 'gate-failed' | 'abandoned';

/** How long a run counts as alive after its last heartbeat when the caller names no ttl (a reap's default lock ttl). */
export const DEFAULT_RUN_TTL_MS = 120_000;

export interface RunRecord {
  runId: string;
  kind: RunKind;
  status: RunStatus;
  startedAt: number;
  finishedAt: number | null;
  manifestDigest: string;
  /** Whether the run was allowed to change anything (reap --execute). */
  execute: boolean;
  /** Report numbers (the JSON document's summary and per-type counts). */
  summary: unknown;
  /** Live-key counts per liveness source, for the registry-outage breaker. */
  sourceCounts: Record<string, number> | null;
  error: string | null;
  /** When the run last said it was alive (store clock); null for a run recorded by a reaper without heartbeats. */
  heartbeatAt: number | null;
  /** Until when the last heartbeat vouches for the run; past it, a running run counts as gone. */
  aliveUntil: number | null;
  /** The job the run is a shard of (`--job`), or null. */
  job: string | null;
  /** The shard as `i/N` (`--shard`), or null unsharded. */
  shard: string | null;
}

/**
 * A shard's claim on its job's `maxDeletesPerRun` for one type (`claimJobDeletes`). A shard
 * holds a grant in the job; a claim raises the shard's grant to what it needs, if the job's
 * total stays within the cap, all or nothing.
 */
export interface JobClaim {
  /** Whether the shard now holds `need`: false leaves every grant as it was. */
  granted: boolean;
  /** What the shard needs to hold: this run's `want` plus `priorUse`. */
  need: number;
  /**
   * What earlier runs of the same job and shard condemned of the type: the tombstones they
   * marked, and the deletes they began that were not undone (journal entries at intent,
   * deleted or absent). A rerun of a killed shard needs no new claim for those.
   */
  priorUse: number;
  /** What the shard holds of the job's cap after the claim. */
  shardGranted: number;
  /** What the job's shards hold together after the claim (never above `cap`). */
  claimed: number;
  /** The job's cap for the type: the lowest any of its shards claimed with. */
  cap: number;
}

/** The registry-outage breaker's verdict for a job, as its first shard judged it (`recordJobVerdict`). */
export interface JobVerdict {
  job: string;
  /** The run that judged. */
  runId: string;
  /** Why the breaker tripped; empty when it did not. */
  reasons: string[];
  /** The live-key counts per liveness source that were judged. */
  sourceCounts: Record<string, number>;
  judgedAt: number;
}

export interface RunStore {
  /**
   * Record a new run, alive for `ttlMs` (default DEFAULT_RUN_TTL_MS) unless it beats again;
   * first, records every run whose heartbeat lapsed as abandoned (`abandonStaleRuns`).
   */
  startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean; ttlMs?: number; job?: string | null; shard?: string | null }): Promise<RunRecord>;
  /**
   * The running process is alive: its run counts as alive for `ttlMs` more, by the store clock. A run
   * recorded abandoned meanwhile (it was paused longer than its ttl) is running again. False when the
   * run is unknown or has recorded its end.
   */
  heartbeatRun(runId: string, ttlMs: number): Promise<boolean>;
  /**
   * Record every `running` run whose heartbeat lapsed (aliveUntil at or before the store's now, or no
   * heartbeat at all: a run of an older reaper) as `abandoned`, finished at its last heartbeat. A
   * process that beats every ttl/3 is never judged gone while it runs; one killed -9 is, a ttl after
   * its last beat. Returns how many.
   */
  abandonStaleRuns(): Promise<number>;
  finishRun(runId: string, input: { status: RunStatus; summary?: unknown; sourceCounts?: Record<string, number> | null; error?: string | null }): Promise<void>;
  getRun(runId: string): Promise<RunRecord | null>;
  /** Newest first; `job`: only the runs of that job (its shards, and their reruns). */
  listRuns(filter?: { kind?: RunKind; job?: string; limit?: number }): Promise<RunRecord[]>;
  /** Live-key counts of the most recent successful run of this kind (the breaker's baseline: reap runs only, so an audit taken during an outage cannot hide the drop). */
  lastSourceCounts(kind: RunKind): Promise<Record<string, number> | null>;
  saveCheckpoint(runId: string, resource: string, phase: string, cursor: string | null): Promise<void>;
  loadCheckpoint(runId: string, resource: string, phase: string): Promise<string | null | undefined>;
  /**
   * Give run `toRunId` the checkpoints of run `fromRunId` it does not have yet (a killed
   * shard's rerun continuing from where it stopped); returns how many were copied.
   */
  adoptCheckpoints(fromRunId: string, toRunId: string): Promise<number>;
  /**
   * Claim, for shard `shard` of job `job` (null: the job is not sharded), room to condemn
   * `want` resources of type `resource` in run `runId`, within `cap` for the whole job
   * (docs/scale-out.md). Atomic per dialect: of shards claiming at once, those whose needs fit
   * are granted and the job's total never exceeds the lowest cap claimed with. The shard's
   * need counts what earlier runs of the same job and shard condemned (`JobClaim.priorUse`),
   * so a rerun of a killed shard reuses its own grant. Not granted, nothing changes.
   * Claims are never returned: a run that uses less leaves the rest unused.
   */
  claimJobDeletes(input: { job: string; resource: string; shard: string | null; runId: string; want: number; cap: number }): Promise<JobClaim>;
  /**
   * Record the registry-outage breaker's verdict for `job` unless one judged less than
   * `maxAgeMs` ago (store clock) is on record already; returns the verdict on record (this
   * one, or the earlier one that won), so every shard of a job acts on the first judgement.
   * An older verdict is replaced: a job id used again long after must not live on a stale one.
   */
  recordJobVerdict(job: string, verdict: { runId: string; reasons: readonly string[]; sourceCounts: Record<string, number> }, maxAgeMs: number): Promise<JobVerdict>;
  /** The breaker's verdict on record for `job` if it was judged less than `maxAgeMs` ago, or null. */
  jobVerdict(job: string, maxAgeMs: number): Promise<JobVerdict | null>;
  /** Take the per-resource-type lock; false when another live run holds it. Expired locks are taken over. */
  acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean>;
  /** Extend a held lock; false when it was lost. */
  refreshLock(resource: string, runId: string, ttlMs: number): Promise<boolean>;
  releaseLock(resource: string, runId: string): Promise<void>;
  /**
   * The locks live now (store clock), ordered by name: what a run checks after taking its own,
   * to see whether a run holding another lock on the same type (another shard layout, or the
   * type unsharded) overlaps it (docs/scale-out.md).
   */
  liveLocks(): Promise<HeldLock[]>;
}

/** A per-resource-type lock held by a run: `name`, or `name@i/N` for a shard. */
export interface HeldLock {
  resource: string;
  runId: string;
  expiresAt: number;
}

export type TombstoneState = 'marked' | 'deleting' | 'deleted' | 'lifted' | 'restored';

export interface Tombstone {
  tombstoneId: number;
  resource: string;
  resourceId: string;
  fingerprint: string;
  /** The owner key (or TYPE/ID) judged at mark time; null for no-owner. */
  owner: string | null;
  /** The raw owner value read from the resource (SQL deletes re-check it). */
  ownerValue: string | null;
  reason: string;
  bytes: number | null;
  markedRunId: string;
  markedAt: number;
  state: TombstoneState;
  updatedAt: number;
  outcomeRunId: string | null;
  /** Why a tombstone was lifted or failed. */
  note: string | null;
  restoreHandle: string | null;
  /**
   * When the resource's visible mark was confirmed (`confirmMarks`); null until then, and for a
   * type without a visible mark. A type with one sweeps only confirmed tombstones (docs/safety.md §14).
   */
  markConfirmedAt: number | null;
}

export interface TombstoneFilter {
  runId?: string;
  resource?: string;
  resourceId?: string;
  states?: readonly TombstoneState[];
  noteEndsWith?: string;
  limit?: number;
}

/** What a mark records of a resource; the store adds the rest of its `Tombstone`. */
export type NewTombstone = Pick<Tombstone, 'resource' | 'resourceId' | 'fingerprint' | 'owner' | 'ownerValue' | 'reason' | 'bytes'>;

export type JournalOutcome = 'intent' | 'deleted' | 'absent' | 'changed' | 'failed';

/**
 * One resource's line in the reap journal. Since schema 4 a sweep writes no per-resource
 * row ahead of its delete: the batch record is the write-ahead (`SweepBatch`), and a
 * resource deleted without remark is answered from its tombstone and its batch
 * (`journalId` null, `evidence` the batch's). Every other outcome (changed, absent, failed,
 * or deleted with a note) is a journal row of its own, so a failed attempt keeps its
 * history when the tombstone is swept again.
 */
export interface JournalEntry {
  /** The journal row; null for an entry derived from a tombstone and its batch. */
  journalId: number | null;
  /** The sweep batch the entry belongs to; null for an entry of schema 3 or older. */
  batchId: number | null;
  runId: string;
  tombstoneId: number;
  resource: string;
  resourceId: string;
  fingerprint: string;
  owner: string | null;
  reason: string;
  bytes: number | null;
  /** What the sweep saw when it decided (liveness answers, ages), as JSON: the batch's, shared by its resources. */
  evidence: unknown;
  /** `intent`: the batch's write-ahead is recorded, its outcome not yet. */
  outcome: JournalOutcome;
  error: string | null;
  at: number;
}

export type BatchState = 'pending' | 'done';
export type BatchOutcome = Exclude<JournalOutcome, 'intent'>;

/**
 * The write-ahead record of one sweep batch (docs/safety.md §10): its run, its resource
 * type and the evidence its resources share, written in one transaction with the move of
 * its tombstones from `marked` to `deleting` (each tombstone names its batch). `pending`
 * until every one of its tombstones has its outcome.
 */
export interface SweepBatch {
  batchId: number;
  runId: string;
  resource: string;
  evidence: unknown;
  state: BatchState;
  createdAt: number;
  finishedAt: number | null;
  /** The batch's tombstones still `deleting` (right after the write-ahead: all that moved), by tombstone id. */
  tombstones: Tombstone[];
}

/** The outcome of one tombstone of a batch. */
export interface BatchResult {
  tombstoneId: number;
  outcome: BatchOutcome;
  error?: string | null;
  restoreHandle?: string | null;
}

export interface TombstoneStore {
  /** Insert tombstones (marked_at = store now); resources that already have an active one are skipped. Returns the number inserted. */
  insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number>;
  /**
   * Record the fingerprints a visible mark answered on the tombstones written before it: each one
   * still `marked` and marked by `runId` takes its fingerprint; any other is left as it is.
   */
  confirmMarks(runId: string, marks: readonly { tombstoneId: number; fingerprint: string }[]): Promise<void>;
  /** Active (marked) tombstones of a type whose grace has passed by the store clock, after `afterId`, ordered by id. */
  dueTombstones(resource: string, graceMs: number, afterId: number, limit: number): Promise<Tombstone[]>;
  /** How many tombstones of a type are marked and past their grace by the store clock (what dueTombstones would page through). */
  countDueTombstones(resource: string, graceMs: number): Promise<number>;
  /** Active tombstones (marked or deleting) by resource id, for one type. */
  activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Map<string, Tombstone>>;
  countTombstones(resource: string): Promise<{ marked: number; deleting: number; oldestMarkedAt: number | null }>;
  /**
   * Write-ahead of one sweep batch (docs/safety.md §10), in one transaction: the batch
   * record (run, type, the evidence its resources share, once) and one set-based move of
   * these tombstones of `resource` that are still `marked` to `deleting`, naming the batch.
   * Anything else (already deleting, lifted, of another type, unknown) is left alone.
   * Returns the batch with the tombstones that moved, or null when none did (nothing recorded).
   */
  beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: unknown): Promise<SweepBatch | null>;
  /**
   * Record outcomes of a batch's tombstones, in one transaction: each still `deleting` in
   * this batch becomes deleted (`deleted`, `absent`), lifted (`changed`) or marked again
   * (`failed`: the next sweep reads it afresh), with its restore handle; every outcome but
   * a plain `deleted` also gets its journal row (attempt history; the row belongs to the
   * batch's run, as the batch does, while the tombstone names `runId` as the run that
   * settled it). Results for tombstones
   * not deleting in this batch are ignored; the last result for a tombstone wins. The
   * batch is `done` once none of its tombstones is left deleting (also with no results).
   */
  finishBatch(runId: string, batchId: number, results: readonly BatchResult[]): Promise<void>;
  /**
   * Batches of a type still `pending` (a crash between write-ahead and outcome), oldest
   * first, each with its tombstones still deleting. Write-aheads of schema 3 or older
   * (`intent` journal rows) were turned into pending batches by migration 4.
   */
  pendingBatches(resource: string): Promise<SweepBatch[]>;
  /** Lift active tombstones (owner came back, resource changed, operator restore). */
  liftTombstones(runId: string, tombstoneIds: readonly number[], note: string): Promise<number>;
  /** Tombstones by run (marked or settled by it), type, id and state; `noteEndsWith` (no `%` or `_` in it) matches the end of the note. */
  findTombstones(filter: TombstoneFilter): Promise<Tombstone[]>;
  /**
   * Set a tombstone's state and note. With `from`, only while its state is `from` (a tombstone a
   * reap has moved on since it was read is left as it is); true when the tombstone was changed.
   */
  setTombstoneState(tombstoneId: number, state: TombstoneState, note: string | null, from?: TombstoneState): Promise<boolean>;
  /**
   * The journal, per resource: journal rows and the entries derived from batches (a
   * tombstone of a batch still deleting is `intent`; one deleted by it without a journal
   * row of its own is `deleted`): entries of schema 3 or older first, in the order written,
   * then by batch and tombstone.
   */
  journal(filter: { runId?: string; resource?: string; limit?: number }): Promise<JournalEntry[]>;
}

export interface StateStore extends LeaseStore, RunStore, TombstoneStore {
  readonly dialect: StoreDialect;
  /** Where the store is, with any password removed. */
  readonly description: string;
  /** Apply pending migrations; refuse a schema newer than this build knows. */
  migrate(): Promise<void>;
  /** The store's clock, in ms since the epoch. */
  now(): Promise<number>;
  /**
   * Close the connections: wait for the server at most `timeoutMs` (default: the store's
   * call deadline), then cut what is left, so a store that stopped answering cannot keep
   * the process alive. Idempotent (the first call's bound holds).
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}
