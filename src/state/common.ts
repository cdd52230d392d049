/** Pieces every state-store dialect shares: ids, tokens, ttl bounds, row decoding. */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { BackendError } from '../errors.js';
import { formatDuration } from '../manifest/duration.js';
import type { AcquiredLease, JobVerdict, JournalEntry, JournalOutcome, Lease, LeaseBounds, RunRecord, SweepBatch, Tombstone, TombstoneState } from './types.js';

/** Deadline of every store call unless the caller or the URL says otherwise (docs/safety.md §19). */
export const DEFAULT_STORE_TIMEOUT_MS = 30_000;

export const newLeaseId = (): string => randomUUID();
export const newLeaseToken = (): string => randomBytes(24).toString('base64url');
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A lease about to be written: its id, its key, and its token, of which the store keeps only the hash. */
export interface NewLease {
  key: string;
  leaseId: string;
  token: string;
  tokenHash: string;
}

/** A fresh id and token for each key, in the keys' order. */
export function newLeases(keys: readonly string[]): NewLease[] {
  return keys.map((key) => {
    const token = newLeaseToken();
    return { key, leaseId: newLeaseId(), token, tokenHash: hashToken(token) };
  });
}

/** The leases acquired, in the order of `fresh`, each with its token, from the rows written for them (in any order). */
export function acquiredLeases(fresh: readonly NewLease[], rows: readonly Row[]): AcquiredLease[] {
  const byId = new Map(rows.map((r) => [String(r.lease_id), toLease(r)]));
  return fresh.map((f) => ({ ...byId.get(f.leaseId)!, token: f.token }));
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: string, storedHash: string): boolean {
  const presented = Buffer.from(hashToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** Run ids sort by time: `20261122T021300Z-3f9a1c`. */
export function newRunId(nowMs: number): string {
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** What is wrong with a lease ttl (ms) for a store with these bounds, or null: the range is in the message. */
export function ttlProblem(ttlMs: number, bounds: LeaseBounds): string | null {
  if (Number.isFinite(ttlMs) && Math.round(ttlMs) >= bounds.minTtlMs && Math.round(ttlMs) <= bounds.maxTtlMs) return null;
  const given = Number.isFinite(ttlMs) && ttlMs >= 0 ? formatDuration(Math.round(ttlMs)) : String(ttlMs);
  return `a lease ttl must be from ${formatDuration(bounds.minTtlMs)} to ${formatDuration(bounds.maxTtlMs)}, got ${given}`;
}

/** The ttl a store grants: exactly the one asked for, or a RangeError naming the allowed range (never a silent rounding or cap). */
export function checkedTtl(ttlMs: number, bounds: LeaseBounds): number {
  const problem = ttlProblem(ttlMs, bounds);
  if (problem) throw new RangeError(problem);
  return Math.round(ttlMs);
}

/** acquireLeases takes each key once: two leases on one key in one call are a caller's bug. */
export function assertDistinctKeys(keys: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) throw new RangeError(`acquireLeases: the key ${JSON.stringify(key)} is given twice`);
    seen.add(key);
  }
}

/** Row decoders take times already converted to ms by the dialect. */
export type Row = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const json = (v: unknown): unknown => (v === null || v === undefined ? null : typeof v === 'string' ? JSON.parse(v) : v);

export function toLease(r: Row): Lease {
  return {
    leaseId: String(r.lease_id),
    key: String(r.key),
    holder: String(r.holder),
    generation: num(r.generation),
    ttlMs: num(r.ttl_ms),
    acquiredAt: num(r.acquired_at),
    renewedAt: num(r.renewed_at),
    expiresAt: num(r.expires_at),
    releasedAt: numOrNull(r.released_at),
  };
}

export function toRun(r: Row): RunRecord {
  return {
    runId: String(r.run_id),
    kind: r.kind as RunRecord['kind'],
    status: r.status as RunRecord['status'],
    startedAt: num(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    manifestDigest: String(r.manifest_digest),
    execute: Boolean(num(r.execute)),
    summary: json(r.summary),
    sourceCounts: json(r.source_counts) as Record<string, number> | null,
    error: strOrNull(r.error),
    heartbeatAt: numOrNull(r.heartbeat_at),
    aliveUntil: numOrNull(r.alive_until),
    job: strOrNull(r.job),
    shard: strOrNull(r.shard),
  };
}

export function toJobVerdict(r: Row): JobVerdict {
  return {
    job: String(r.job),
    runId: String(r.run_id),
    reasons: json(r.reasons) as string[],
    sourceCounts: json(r.source_counts) as Record<string, number>,
    judgedAt: num(r.judged_at),
  };
}

/** A job's claims on one type, as a claim finds them under its lock (a missing shard row is 0). */
export interface HeldClaims {
  claimed: number;
  cap: number;
  shardGranted: number;
}

/** What a claim does, decided by `claimGrant`: what it adds to the job and to the shard, the job's cap from now on, and what it answers. */
export interface ClaimDecision {
  /** Added to the job's `claimed` and the shard's `granted`: 0 when refused. */
  extra: number;
  cap: number;
  outcome: HeldClaims & { granted: boolean };
}

/**
 * The rule of `claimJobDeletes`, the same in every dialect: the shard's grant rises to `need`
 * (never falls), and only if the job's total stays within its cap, which is the lowest cap any
 * shard claimed with. All or nothing: a shard whose need does not fit is refused as a whole
 * (docs/safety.md §7: a cap refuses, it does not truncate) and takes nothing others could use.
 */
export function claimGrant(held: HeldClaims, need: number, cap: number): ClaimDecision {
  const lowest = Math.min(held.cap, cap);
  const wanted = Math.max(0, need - held.shardGranted);
  const granted = held.claimed + wanted <= lowest;
  const extra = granted ? wanted : 0;
  return { extra, cap: lowest, outcome: { granted, claimed: held.claimed + extra, cap: lowest, shardGranted: held.shardGranted + extra } };
}

/** A run whose heartbeat lapsed, as `abandonStaleRuns` reads it. */
export interface StaleRun {
  runId: string;
  startedAt: number;
  heartbeatAt: number | null;
  aliveUntil: number | null;
}

export function toStaleRun(r: Row): StaleRun {
  return { runId: String(r.run_id), startedAt: num(r.started_at), heartbeatAt: numOrNull(r.heartbeat_at), aliveUntil: numOrNull(r.alive_until) };
}

/** How an abandoned run is recorded: finished at its last heartbeat (or its start), with the reason. */
export function abandonedRecord(run: StaleRun): { finishedAt: number; error: string } {
  const tail = 'the process was killed or lost before it could record its end';
  if (run.heartbeatAt === null || run.aliveUntil === null) return { finishedAt: run.startedAt, error: `abandoned: no heartbeat recorded (a run of an older reaper); ${tail}` };
  const ttl = (run.aliveUntil - run.heartbeatAt) / 1000;
  return { finishedAt: run.heartbeatAt, error: `abandoned: no heartbeat since ${new Date(run.heartbeatAt).toISOString()} (ttl ${ttl} s); ${tail}` };
}

/** The columns of a tombstone, in the order `tombstoneOf` reads them. */
export const TOMBSTONE_FIELDS = [
  'tombstone_id',
  'resource',
  'resource_id',
  'fingerprint',
  'owner',
  'owner_value',
  'reason',
  'bytes',
  'marked_run_id',
  'marked_at',
  'state',
  'updated_at',
  'outcome_run_id',
  'note',
  'restore_handle',
  'mark_confirmed_at',
] as const;

export function toTombstone(r: Row): Tombstone {
  return tombstoneOf(TOMBSTONE_FIELDS.map((c) => r[c]));
}

/**
 * A tombstone from one row read as an array of TOMBSTONE_FIELDS' values: a driver that can
 * return rows as arrays skips building a keyed object per row (the sweep reads tens of
 * thousands of them per run).
 */
export function tombstoneOf(v: readonly unknown[]): Tombstone {
  return {
    tombstoneId: num(v[0]),
    resource: String(v[1]),
    resourceId: String(v[2]),
    fingerprint: String(v[3]),
    owner: strOrNull(v[4]),
    ownerValue: strOrNull(v[5]),
    reason: String(v[6]),
    bytes: numOrNull(v[7]),
    markedRunId: String(v[8]),
    markedAt: num(v[9]),
    state: v[10] as Tombstone['state'],
    updatedAt: num(v[11]),
    outcomeRunId: strOrNull(v[12]),
    note: strOrNull(v[13]),
    restoreHandle: strOrNull(v[14]),
    markConfirmedAt: numOrNull(v[15]),
  };
}

export function toJournal(r: Row): JournalEntry {
  return {
    journalId: numOrNull(r.journal_id),
    batchId: numOrNull(r.batch_id),
    runId: String(r.run_id),
    tombstoneId: num(r.tombstone_id),
    resource: String(r.resource),
    resourceId: String(r.resource_id),
    fingerprint: String(r.fingerprint),
    owner: strOrNull(r.owner),
    reason: String(r.reason),
    bytes: numOrNull(r.bytes),
    evidence: json(r.evidence),
    outcome: r.outcome as JournalEntry['outcome'],
    error: strOrNull(r.error),
    at: num(r.at),
  };
}

/** A batch row; its tombstones are read separately. */
export function toBatch(r: Row, tombstones: Tombstone[]): SweepBatch {
  return {
    batchId: num(r.batch_id),
    runId: String(r.run_id),
    resource: String(r.resource),
    evidence: json(r.evidence),
    state: r.state as SweepBatch['state'],
    createdAt: num(r.created_at),
    finishedAt: numOrNull(r.finished_at),
    tombstones,
  };
}

/** Renewal statistics are kept per minute of store time. */
export const statsBucket = (nowMs: number): number => Math.floor(nowMs / 60_000);

/**
 * The tombstone state that follows a journal outcome. A failed delete leaves the
 * tombstone marked: the next sweep reads the resource again and decides afresh.
 */
export function tombstoneStateFor(outcome: Exclude<JournalOutcome, 'intent'>): TombstoneState {
  switch (outcome) {
    case 'deleted':
    case 'absent':
      return 'deleted';
    case 'changed':
      return 'lifted';
    case 'failed':
      return 'marked';
  }
}

/**
 * The refusal every dialect gives when the store has a migration this build does not know:
 * one numbered above its newest, or one between its own (a store migrated by another build).
 */
export function schemaTooNew(description: string, applied: readonly number[], known: readonly number[]): BackendError | null {
  const unknown = applied.filter((v) => !known.includes(v));
  if (unknown.length === 0) return null;
  const current = Math.max(...applied);
  const latest = Math.max(0, ...known);
  const what = current > latest ? `schema version ${current}, newer than this reaper knows (${latest})` : `schema migration${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} this reaper does not know (it knows ${known.join(', ')})`;
  return new BackendError(`the state store ${description} has ${what}; upgrade reaper before using this store`);
}
