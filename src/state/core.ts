/**
 * One implementation of the `StateStore` contract over a narrow per-database driver.
 *
 * The core holds the rules every dialect shares: argument checks, empty-input answers,
 * single-item calls over the batch calls, default limits, filters, the notes written on
 * outcomes, and the migrator. The driver runs statements and keeps, as raw SQL of its
 * own dialect, the operations whose atomicity depends on the database (acquiring and
 * renewing leases, taking a lock, writing tombstones and the write-ahead journal).
 * Shared statements use `?` for each parameter and `{now}` for the store's clock, read
 * once per statement (docs/safety.md §15: every judgement of time is the store's).
 */
import { LeaseLostError, type LeaseLossReason } from '../errors.js';
import {
  abandonedRecord,
  assertDistinctKeys,
  checkedTtl,
  newRunId,
  schemaTooNew,
  statsBucket,
  tombstoneStateFor,
  toBatch,
  toJournal,
  toLease,
  toRun,
  toStaleRun,
  toJobVerdict,
  toTombstone,
  TOMBSTONE_FIELDS,
  tokenMatches,
  type HeldClaims,
  type Row,
} from './common.js';
import { chunk, inList, padList, placeholders } from '../sql/text.js';
import {
  DEFAULT_LEASE_BOUNDS,
  DEFAULT_RUN_TTL_MS,
  type AcquiredLease,
  type BatchOutcome,
  type BatchResult,
  type HeldLock,
  type JobClaim,
  type JobVerdict,
  type JournalEntry,
  type Lease,
  type LeaseBounds,
  type LeaseStats,
  type NewTombstone,
  type RenewOutcome,
  type RunKind,
  type RunRecord,
  type RunStatus,
  type StateStore,
  type StoreDialect,
  type SweepBatch,
  type Tombstone,
  type TombstoneFilter,
  type TombstoneState,
} from './types.js';

/**
 * A statement parameter and what it holds, so each driver can bind it its own way:
 * `int` a whole number, `id` a string from scanned data (keys, resource ids, owners,
 * cursors: bytes on the server dialects), `name` a string reaper makes (ids, types,
 * states), `free` free text (notes, errors), `json` a document, `bool` a flag.
 */
export interface Param {
  k: 'int' | 'id' | 'name' | 'free' | 'json' | 'bool';
  v: unknown;
}
export const int = (v: number): Param => ({ k: 'int', v });
export const id = (v: string | null): Param => ({ k: 'id', v });
export const name = (v: string | null): Param => ({ k: 'name', v });
export const free = (v: string | null | undefined): Param => ({ k: 'free', v: v ?? null });
export const json = (v: unknown): Param => ({ k: 'json', v: v === undefined || v === null ? null : JSON.stringify(v) });
export const bool = (v: boolean): Param => ({ k: 'bool', v });

export type Query = (sql: string, params?: readonly Param[]) => Promise<{ rows: Row[]; count: number }>;

/** A schema step: SQL (a driver may run several statements at once), or one skipped when `unless` returns a row. */
export type MigrationStatement = string | { sql: string; unless: string };
export interface Migration {
  version: number;
  statements: readonly MigrationStatement[];
}

/** Renewal results as the driver found them: what was renewed, and how each other lease stands. */
export interface RenewFindings {
  renewed: Map<string, Lease>;
  prior: Map<string, { released_at: unknown; holder: string }>;
}

/**
 * A batch outcome as the driver writes it: the tombstone state and note that follow from
 * it, and whether it also gets a journal row of its own (`journaled`: every outcome but
 * a plain `deleted`, which the journal derives from the tombstone and its batch).
 */
export interface FinishedItem {
  tombstoneId: number;
  outcome: BatchOutcome;
  error: string | null;
  state: TombstoneState;
  note: string | null;
  restoreHandle: string | null;
  journaled: boolean;
}

/** The journal's columns, and those of a batch-era entry over tombstones `t` and reap_batches `b`, for a dialect that needs no casts. */
export const JOURNAL_COLUMNS = 'journal_id, batch_id, run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, error, at';
export const DERIVED_JOURNAL_COLUMNS = `NULL AS journal_id, t.batch_id, b.run_id, t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, b.evidence,
  CASE WHEN t.state = 'deleting' THEN 'intent' ELSE 'deleted' END AS outcome, NULL AS error, t.updated_at AS at`;

/** What each database provides: statements, quoting, and its atomic operations. */
export interface StoreDriver {
  readonly dialect: StoreDialect;
  readonly description: string;
  readonly migrations: readonly Migration[];
  /** Column lists to select, per table (`*`, or with the casts the dialect needs). */
  /**
   * Column lists to select, per table (`*`, or with the casts the dialect needs);
   * `batches` over reap_batches, `derived` the journal columns of a batch-era entry over
   * tombstones `t` joined with reap_batches `b`.
   */
  readonly columns: { leases: string; runs: string; tombstones: string; journal: string; batches: string; derived: string };
  query: Query;
  /** Quote an identifier that is a keyword in some dialect (`key`, `cursor`, `execute`). */
  quote(identifier: string): string;
  /** The tail of an INSERT that updates `set` when a row with the same `conflict` columns exists. */
  upsert(conflict: readonly string[], set: readonly string[]): string;
  /** The condition that finds a tombstone by resource id, with its parameters (server dialects probe a hash first). */
  resourceIdIs(resourceId: string): { sql: string; params: Param[] };
  /** Run `fn` holding the dialect's migration lock, on one connection; `exec` runs DDL without parameters. */
  migrationLock<T>(fn: (q: Query, exec: (sql: string) => Promise<void>) => Promise<T>): Promise<T>;
  now(): Promise<number>;
  close(options?: { timeoutMs?: number }): Promise<void>;
  acquireLeases(keys: readonly string[], holder: string, ttlMs: number): Promise<AcquiredLease[]>;
  /** Renew what is still live and count the renewal outcomes for `leaseStats`, in one statement or transaction. */
  renewLeases(ids: readonly string[], ttlMs: number | null, holder: string | null): Promise<RenewFindings>;
  acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean>;
  /**
   * In one transaction, holding the row of (job, resource) in `job_claims` (created with
   * `cap` when missing) locked: read what the job and the shard hold, decide by `claimGrant`
   * (common.ts), and if granted add the extra to both (the shard's row created when missing)
   * and lower the job's cap to `cap` when it is lower. Returns what is held afterwards.
   */
  claimJob(job: string, resource: string, shard: string, need: number, cap: number): Promise<HeldClaims & { granted: boolean }>;
  insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number>;
  activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Tombstone[]>;
  /**
   * Tombstones read by `sql`, whose select list is `TOMBSTONE_FIELDS` of tombstones `t` in
   * order, as arrays of values (`tombstoneOf`), with the statement prepared once: the sweep's
   * paging of due tombstones. Optional: without it the rows are read as keyed objects.
   */
  tombstoneRows?(sql: string, params: readonly Param[]): Promise<Tombstone[]>;
  /** The batch write-ahead in one transaction (see `TombstoneStore.beginBatch`); `evidence` is JSON text. Null when no tombstone moved. */
  beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: string): Promise<SweepBatch | null>;
  /** The outcomes of one batch and its `done` in one transaction (see `TombstoneStore.finishBatch`). */
  finishBatch(runId: string, batchId: number, results: readonly FinishedItem[]): Promise<void>;
}

/** Why a renewal found nothing to update, from the lease row (or its absence). */
export function lostReason(row: { released_at: unknown; holder: string } | undefined, holder: string | undefined): LeaseLossReason {
  if (!row) return 'not-found';
  if (holder !== undefined && row.holder !== holder) return 'not-holder';
  if (row.released_at !== null && row.released_at !== undefined) return 'released';
  return 'expired';
}

/** LIMIT as a literal: a checked non-negative integer (prepared LIMIT placeholders are not portable across MySQL and MariaDB). */
export function limitOf(limit: number | undefined, fallback: number): number {
  const n = limit ?? fallback;
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`a limit must be a non-negative number, got ${n}`);
  return Math.floor(n);
}

/** `WHERE a AND b` from the conditions given, or nothing. */
const where = (conditions: readonly string[]): string => (conditions.length ? `WHERE ${conditions.join(' AND ')}` : '');
const count = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
/** The note of a tombstone lifted because its resource changed (a `changed` outcome without an error of its own). */
export const CHANGED_NOTE = 'resource changed since it was marked';
const LIVE = `released_at IS NULL AND expires_at > {now}`;
const LAPSED = `status = 'running' AND (alive_until IS NULL OR alive_until <= {now})`;

/** Apply the migrations not yet recorded under the driver's lock; refuse a schema newer than this build. */
export async function migrate(driver: StoreDriver): Promise<void> {
  await driver.migrationLock(async (q, exec) => {
    await exec('CREATE TABLE IF NOT EXISTS reaper_migrations (version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const applied = new Set((await q('SELECT version FROM reaper_migrations')).rows.map((r) => count(r.version)));
    const tooNew = schemaTooNew(driver.description, [...applied], driver.migrations.map((m) => m.version));
    if (tooNew) throw tooNew;
    // Every migration not yet recorded, also one numbered below the newest recorded: version 5
    // (job claims) was released to stores before version 4 (the batch ledger) was.
    for (const migration of driver.migrations) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) {
        if (typeof statement !== 'string' && (await q(statement.unless)).rows.length > 0) continue;
        await exec(typeof statement === 'string' ? statement : statement.sql);
      }
      await q('INSERT INTO reaper_migrations (version, applied_at) VALUES (?, {now})', [int(migration.version)]);
    }
  });
}

/** A store, migrated; closed again when migrating fails. */
export async function migrated<S extends StateStore>(store: S): Promise<S> {
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

export class StoreCore implements StateStore {
  readonly dialect: StoreDialect;
  readonly description: string;
  private readonly q: Query;
  private readonly cols: StoreDriver['columns'];
  private readonly key: string;

  constructor(
    private readonly d: StoreDriver,
    readonly leaseBounds: LeaseBounds = DEFAULT_LEASE_BOUNDS,
  ) {
    this.dialect = d.dialect;
    this.description = d.description;
    this.q = d.query.bind(d);
    this.cols = d.columns;
    this.key = d.quote('key');
  }

  migrate(): Promise<void> {
    return migrate(this.d);
  }

  now(): Promise<number> {
    return this.d.now();
  }

  close(options?: { timeoutMs?: number }): Promise<void> {
    return this.d.close(options);
  }

  private async all(sql: string, params: readonly Param[] = []): Promise<Row[]> {
    return (await this.q(sql, params)).rows;
  }

  private async one(sql: string, params: readonly Param[] = []): Promise<Row | undefined> {
    return (await this.q(sql, params)).rows[0];
  }

  private async changed(sql: string, params: readonly Param[] = []): Promise<number> {
    return (await this.q(sql, params)).count;
  }

  // ------------------------------------------------------------ leases

  async acquireLease(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease> {
    const [lease] = await this.acquireLeases([input.key], input);
    return lease!;
  }

  async acquireLeases(keys: readonly string[], options: { holder: string; ttlMs: number }): Promise<AcquiredLease[]> {
    const ttlMs = checkedTtl(options.ttlMs, this.leaseBounds);
    assertDistinctKeys(keys);
    return keys.length === 0 ? [] : this.d.acquireLeases(keys, options.holder, ttlMs);
  }

  async renewLease(leaseId: string, options: { ttlMs?: number; holder?: string } = {}): Promise<Lease> {
    const [outcome] = await this.renewLeases([leaseId], options);
    if (!outcome!.lease) throw new LeaseLostError(leaseId, outcome!.lost!);
    return outcome!.lease;
  }

  async renewLeases(leaseIds: readonly string[], options: { ttlMs?: number; holder?: string } = {}): Promise<RenewOutcome[]> {
    const ttl = options.ttlMs === undefined ? null : checkedTtl(options.ttlMs, this.leaseBounds);
    if (leaseIds.length === 0) return [];
    const found = await this.d.renewLeases(leaseIds, ttl, options.holder ?? null);
    return leaseIds.map((leaseId): RenewOutcome => {
      const lease = found.renewed.get(leaseId);
      return lease ? { leaseId, lease } : { leaseId, lost: lostReason(found.prior.get(leaseId), options.holder) };
    });
  }

  async releaseLease(leaseId: string, options: { holder?: string } = {}): Promise<void> {
    const row = await this.one('SELECT holder FROM leases WHERE lease_id = ?', [name(leaseId)]);
    if (!row) throw new LeaseLostError(leaseId, 'not-found');
    if (options.holder !== undefined && row.holder !== options.holder) throw new LeaseLostError(leaseId, 'not-holder');
    // The holder is checked again in the UPDATE, so a release never ends someone else's lease.
    await this.q(
      `UPDATE leases SET released_at = {now}, expires_at = CASE WHEN expires_at < {now} THEN expires_at ELSE {now} END
        WHERE lease_id = ? AND released_at IS NULL AND holder = ?`,
      [name(leaseId), name(String(row.holder))],
    );
  }

  async getLease(leaseId: string): Promise<Lease | null> {
    const row = await this.one(`SELECT ${this.cols.leases} FROM leases WHERE lease_id = ?`, [name(leaseId)]);
    return row ? toLease(row) : null;
  }

  async verifyLeaseToken(leaseId: string, token: string): Promise<boolean> {
    const row = await this.one('SELECT token_hash FROM leases WHERE lease_id = ?', [name(leaseId)]);
    return row ? tokenMatches(token, String(row.token_hash)) : false;
  }

  async listLeases(filter: { key?: string; includeInactive?: boolean; limit?: number } = {}): Promise<Lease[]> {
    const conditions = [...(filter.key === undefined ? [] : [`${this.key} = ?`]), ...(filter.includeInactive ? [] : [LIVE])];
    const rows = await this.all(
      `SELECT ${this.cols.leases} FROM leases ${where(conditions)} ORDER BY ${this.key}, acquired_at, generation LIMIT ${limitOf(filter.limit, 1_000)}`,
      filter.key === undefined ? [] : [id(filter.key)],
    );
    return rows.map(toLease);
  }

  /** The distinct keys among `keys` that a lease matching `condition` holds, one padded IN list per chunk. */
  private async keysWhere(keys: readonly string[], condition: string, params: readonly Param[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const part of chunk([...new Set(keys)])) {
      const list = inList(part);
      const rows = await this.all(`SELECT DISTINCT ${this.key} AS k FROM leases WHERE ${this.key} IN (${list.marks}) AND ${condition}`, [...list.values.map(id), ...params]);
      for (const r of rows) out.add(String(r.k));
    }
    return out;
  }

  liveKeys(keys: readonly string[]): Promise<Set<string>> {
    return this.keysWhere(keys, LIVE, []);
  }

  keysActiveSince(keys: readonly string[], sinceMs: number): Promise<Set<string>> {
    const since = int(Math.ceil(sinceMs));
    return this.keysWhere(keys, '(renewed_at >= ? OR acquired_at >= ?)', [since, since]);
  }

  async countLiveKeys(): Promise<number> {
    return count((await this.one(`SELECT COUNT(DISTINCT ${this.key}) AS n FROM leases WHERE ${LIVE}`))?.n);
  }

  async leaseStats(windowMs: number): Promise<LeaseStats> {
    // One statement, so every {now} is the same instant.
    const window = int(Math.floor(windowMs));
    const r = (await this.one(
      `SELECT (SELECT COUNT(*) FROM leases WHERE ${LIVE}) AS active,
              (SELECT COUNT(*) FROM leases WHERE released_at IS NULL AND expires_at <= {now}) AS expired,
              (SELECT COALESCE(SUM(ok), 0) FROM lease_renewal_stats WHERE bucket >= FLOOR(({now} - ?) / 60000)) AS ok,
              (SELECT COALESCE(SUM(failed), 0) FROM lease_renewal_stats WHERE bucket >= FLOOR(({now} - ?) / 60000)) AS failed`,
      [window, window],
    ))!;
    const ok = count(r.ok);
    const failed = count(r.failed);
    return { active: count(r.active), expired: count(r.expired), renewals: ok, renewalFailures: failed, renewalFailureRate: ok + failed === 0 ? 0 : failed / (ok + failed) };
  }

  async pruneLeases(olderThanMs: number): Promise<number> {
    const cutoff = (await this.now()) - olderThanMs;
    await this.q('DELETE FROM lease_renewal_stats WHERE bucket < ?', [int(statsBucket(cutoff))]);
    // The earliest active mark in its own statement, so the DELETE takes no shared locks on
    // tombstones; a tombstone marked in between is marked after every lease this prunes had
    // ended, so it could not have kept any of them (docs/safety.md §1, §2).
    const mark = await this.one(`SELECT MIN(marked_at) AS m FROM tombstones WHERE state IN ('marked', 'deleting')`);
    const keepFrom = mark?.m === null || mark?.m === undefined ? Number.MAX_SAFE_INTEGER : Number(mark.m);
    return this.changed('DELETE FROM leases WHERE COALESCE(released_at, expires_at) < ? AND expires_at < ? AND renewed_at < ?', [int(cutoff), int(cutoff), int(keepFrom)]);
  }

  // ------------------------------------------------------------ runs, checkpoints, locks

  async startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean; ttlMs?: number; job?: string | null; shard?: string | null }): Promise<RunRecord> {
    await this.abandonStaleRuns();
    const now = await this.now();
    const runId = newRunId(now);
    await this.q(
      `INSERT INTO runs (run_id, kind, status, started_at, manifest_digest, ${this.d.quote('execute')}, heartbeat_at, alive_until, job, shard) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
      [
        name(runId),
        name(input.kind),
        int(now),
        name(input.manifestDigest),
        bool(input.execute),
        int(now),
        int(now + Math.ceil(input.ttlMs ?? DEFAULT_RUN_TTL_MS)),
        name(input.job ?? null),
        name(input.shard ?? null),
      ],
    );
    return (await this.getRun(runId))!;
  }

  async heartbeatRun(runId: string, ttlMs: number): Promise<boolean> {
    const sql = `UPDATE runs SET heartbeat_at = {now}, alive_until = {now} + ?, status = 'running', finished_at = NULL, error = NULL
                  WHERE run_id = ? AND status IN ('running', 'abandoned')`;
    return (await this.changed(sql, [int(Math.ceil(ttlMs)), name(runId)])) === 1;
  }

  async abandonStaleRuns(): Promise<number> {
    let abandoned = 0;
    for (const run of (await this.all(`SELECT run_id, started_at, heartbeat_at, alive_until FROM runs WHERE ${LAPSED}`)).map(toStaleRun)) {
      const { finishedAt, error } = abandonedRecord(run);
      abandoned += await this.changed(`UPDATE runs SET status = 'abandoned', finished_at = ?, error = ? WHERE run_id = ? AND ${LAPSED}`, [int(finishedAt), free(error), name(run.runId)]);
    }
    return abandoned;
  }

  async finishRun(runId: string, input: { status: RunStatus; summary?: unknown; sourceCounts?: Record<string, number> | null; error?: string | null }): Promise<void> {
    await this.q('UPDATE runs SET status = ?, finished_at = {now}, summary = ?, source_counts = ?, error = ? WHERE run_id = ?', [
      name(input.status),
      json(input.summary),
      json(input.sourceCounts || null),
      free(input.error),
      name(runId),
    ]);
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const row = await this.one(`SELECT ${this.cols.runs} FROM runs WHERE run_id = ?`, [name(runId)]);
    return row ? toRun(row) : null;
  }

  async listRuns(filter: { kind?: RunKind; job?: string; limit?: number } = {}): Promise<RunRecord[]> {
    const conditions = [...(filter.kind ? ['kind = ?'] : []), ...(filter.job !== undefined ? ['job = ?'] : [])];
    const params = [...(filter.kind ? [name(filter.kind)] : []), ...(filter.job !== undefined ? [name(filter.job)] : [])];
    const rows = await this.all(`SELECT ${this.cols.runs} FROM runs ${where(conditions)} ORDER BY started_at DESC, run_id DESC LIMIT ${limitOf(filter.limit, 20)}`, params);
    return rows.map(toRun);
  }

  async lastSourceCounts(kind: RunKind): Promise<Record<string, number> | null> {
    const row = await this.one(
      `SELECT ${this.cols.runs} FROM runs WHERE kind = ? AND source_counts IS NOT NULL AND status IN ('ok', 'gate-failed') ORDER BY finished_at DESC LIMIT 1`,
      [name(kind)],
    );
    return row ? toRun(row).sourceCounts : null;
  }

  async saveCheckpoint(runId: string, resource: string, phase: string, cursor: string | null): Promise<void> {
    const c = this.d.quote('cursor');
    await this.q(`INSERT INTO checkpoints (run_id, resource, phase, ${c}, updated_at) VALUES (?, ?, ?, ?, {now}) ${this.d.upsert(['run_id', 'resource', 'phase'], [c, 'updated_at'])}`, [
      name(runId),
      name(resource),
      name(phase),
      id(cursor),
    ]);
  }

  async loadCheckpoint(runId: string, resource: string, phase: string): Promise<string | null | undefined> {
    const row = await this.one(`SELECT ${this.d.quote('cursor')} AS c FROM checkpoints WHERE run_id = ? AND resource = ? AND phase = ?`, [name(runId), name(resource), name(phase)]);
    return row === undefined ? undefined : row.c === null ? null : String(row.c);
  }

  async adoptCheckpoints(fromRunId: string, toRunId: string): Promise<number> {
    const c = this.d.quote('cursor');
    return this.changed(
      `INSERT INTO checkpoints (run_id, resource, phase, ${c}, updated_at)
       SELECT ?, p.resource, p.phase, p.${c}, {now} FROM checkpoints p
        WHERE p.run_id = ? AND NOT EXISTS (SELECT 1 FROM checkpoints o WHERE o.run_id = ? AND o.resource = p.resource AND o.phase = p.phase)`,
      [name(toRunId), name(fromRunId), name(toRunId)],
    );
  }

  // ------------------------------------------------------------ jobs: claims and the breaker's verdict

  async claimJobDeletes(input: { job: string; resource: string; shard: string | null; runId: string; want: number; cap: number }): Promise<JobClaim> {
    for (const [key, value] of [['want', input.want], ['cap', input.cap]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`claimJobDeletes: ${key} must be a whole number of at least 0, got ${value}`);
    }
    const shard = input.shard ?? '';
    // Earlier runs of this job and shard are over (the shard's lock keeps a second one out),
    // so what they condemned is read before the claim's transaction.
    const used = (await this.one(
      `SELECT (SELECT COUNT(*) FROM tombstones t JOIN runs r ON r.run_id = t.marked_run_id
                WHERE r.job = ? AND COALESCE(r.shard, '') = ? AND r.run_id <> ? AND t.resource = ?) AS marks,
              (SELECT COUNT(*) FROM journal j JOIN runs r ON r.run_id = j.run_id
                WHERE r.job = ? AND COALESCE(r.shard, '') = ? AND r.run_id <> ? AND j.resource = ? AND j.outcome IN ('intent', 'deleted', 'absent')) AS sweeps,
              (SELECT COUNT(*) FROM reap_batches b JOIN runs r ON r.run_id = b.run_id JOIN tombstones t ON t.batch_id = b.batch_id
                WHERE r.job = ? AND COALESCE(r.shard, '') = ? AND r.run_id <> ? AND b.resource = ? AND t.state IN ('deleting', 'deleted', 'restored')
                  AND NOT EXISTS (SELECT 1 FROM journal j WHERE j.tombstone_id = t.tombstone_id AND j.batch_id = t.batch_id)) AS batched`,
      [
        ...[1, 2, 3].flatMap(() => [name(input.job), name(shard), name(input.runId), name(input.resource)]),
      ],
    ))!;
    // Sweeps: journal rows, and the batch entries that have none (see `journal`).
    const priorUse = count(used.marks) + count(used.sweeps) + count(used.batched);
    const need = priorUse + input.want;
    const held = await this.d.claimJob(input.job, input.resource, shard, need, input.cap);
    return { granted: held.granted, need, priorUse, shardGranted: held.shardGranted, claimed: held.claimed, cap: held.cap };
  }

  async recordJobVerdict(job: string, verdict: { runId: string; reasons: readonly string[]; sourceCounts: Record<string, number> }, maxAgeMs: number): Promise<JobVerdict> {
    await this.q('DELETE FROM job_verdicts WHERE job = ? AND judged_at <= {now} - ?', [name(job), int(Math.ceil(maxAgeMs))]);
    // First one wins: a second insert for the job changes nothing (its update sets the key to itself).
    await this.q(`INSERT INTO job_verdicts (job, run_id, reasons, source_counts, judged_at) VALUES (?, ?, ?, ?, {now}) ${this.d.upsert(['job'], ['job'])}`, [
      name(job),
      name(verdict.runId),
      json([...verdict.reasons]),
      json(verdict.sourceCounts),
    ]);
    const row = await this.one('SELECT job, run_id, reasons, source_counts, judged_at FROM job_verdicts WHERE job = ?', [name(job)]);
    return toJobVerdict(row!);
  }

  async jobVerdict(job: string, maxAgeMs: number): Promise<JobVerdict | null> {
    const row = await this.one('SELECT job, run_id, reasons, source_counts, judged_at FROM job_verdicts WHERE job = ? AND judged_at > {now} - ?', [
      name(job),
      int(Math.ceil(maxAgeMs)),
    ]);
    return row ? toJobVerdict(row) : null;
  }

  acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    return this.d.acquireLock(resource, runId, Math.ceil(ttlMs));
  }

  async refreshLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const keys = [name(resource), name(runId)];
    if ((await this.changed('UPDATE resource_locks SET expires_at = {now} + ? WHERE resource = ? AND run_id = ?', [int(Math.ceil(ttlMs)), ...keys])) === 1) return true;
    // A driver that counts changed rows reports 0 when the expiry already had that value: still ours?
    return (await this.one('SELECT 1 AS held FROM resource_locks WHERE resource = ? AND run_id = ?', keys)) !== undefined;
  }

  async releaseLock(resource: string, runId: string): Promise<void> {
    await this.q('DELETE FROM resource_locks WHERE resource = ? AND run_id = ?', [name(resource), name(runId)]);
  }

  async liveLocks(): Promise<HeldLock[]> {
    // One row per type (or shard of a type) ever reaped: a small table, read whole.
    const rows = await this.all('SELECT resource, run_id, expires_at FROM resource_locks WHERE expires_at > {now} ORDER BY resource');
    return rows.map((r) => ({ resource: String(r.resource), runId: String(r.run_id), expiresAt: count(r.expires_at) }));
  }

  // ------------------------------------------------------------ tombstones and journal

  insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
    return items.length === 0 ? Promise.resolve(0) : this.d.insertTombstones(runId, items);
  }

  async confirmMarks(runId: string, marks: readonly { tombstoneId: number; fingerprint: string }[]): Promise<void> {
    // One statement per chunk, a CASE over the chunk's ids (padded like an IN list: repeating the
    // last pair changes nothing), in every dialect.
    for (const part of chunk(marks)) {
      const padded = padList(part);
      await this.q(
        `UPDATE tombstones SET fingerprint = CASE tombstone_id ${padded.map(() => 'WHEN ? THEN ?').join(' ')} END, mark_confirmed_at = {now}
          WHERE tombstone_id IN (${placeholders('?', padded.length)}) AND state = 'marked' AND marked_run_id = ?`,
        [...padded.flatMap((m) => [int(m.tombstoneId), free(m.fingerprint)]), ...padded.map((m) => int(m.tombstoneId)), name(runId)],
      );
    }
  }

  async dueTombstones(resource: string, graceMs: number, afterId: number, limit: number): Promise<Tombstone[]> {
    const due = (columns: string) =>
      `SELECT ${columns} FROM tombstones t WHERE t.resource = ? AND t.state = 'marked' AND t.tombstone_id > ? AND t.marked_at <= {now} - ?
        ORDER BY t.tombstone_id LIMIT ${limitOf(limit, limit)}`;
    const params = [name(resource), int(Math.floor(afterId)), int(Math.ceil(graceMs))];
    if (this.d.tombstoneRows) return this.d.tombstoneRows(due(TOMBSTONE_FIELDS.map((c) => `t.${c}`).join(', ')), params);
    return (await this.all(due(this.cols.tombstones), params)).map(toTombstone);
  }

  async countDueTombstones(resource: string, graceMs: number): Promise<number> {
    const row = await this.one(`SELECT COUNT(*) AS n FROM tombstones WHERE resource = ? AND state = 'marked' AND marked_at <= {now} - ?`, [name(resource), int(Math.ceil(graceMs))]);
    return count(row?.n);
  }

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Map<string, Tombstone>> {
    const found = resourceIds.length === 0 ? [] : await this.d.activeTombstones(resource, resourceIds);
    return new Map(found.map((t) => [t.resourceId, t]));
  }

  async countTombstones(resource: string): Promise<{ marked: number; deleting: number; oldestMarkedAt: number | null }> {
    const row = (await this.one(
      `SELECT SUM(CASE WHEN state = 'marked' THEN 1 ELSE 0 END) AS marked, SUM(CASE WHEN state = 'deleting' THEN 1 ELSE 0 END) AS deleting, MIN(marked_at) AS oldest
         FROM tombstones WHERE resource = ? AND state IN ('marked', 'deleting')`,
      [name(resource)],
    ))!;
    return { marked: count(row.marked), deleting: count(row.deleting), oldestMarkedAt: row.oldest === null || row.oldest === undefined ? null : Number(row.oldest) };
  }

  async beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: unknown): Promise<SweepBatch | null> {
    const ids = [...new Set(tombstoneIds.map((t) => Math.floor(t)))];
    return ids.length === 0 ? null : this.d.beginBatch(runId, resource, ids, JSON.stringify(evidence ?? null));
  }

  async finishBatch(runId: string, batchId: number, results: readonly BatchResult[]): Promise<void> {
    // The last result for a tombstone wins, as it would one row at a time.
    const latest = new Map(results.map((r) => [r.tombstoneId, r]));
    await this.d.finishBatch(
      runId,
      Math.floor(batchId),
      [...latest.values()].map((r) => ({
        tombstoneId: r.tombstoneId,
        outcome: r.outcome,
        error: r.error ?? null,
        state: tombstoneStateFor(r.outcome),
        note: r.error ?? (r.outcome === 'changed' ? CHANGED_NOTE : null),
        restoreHandle: r.restoreHandle ?? null,
        journaled: r.outcome !== 'deleted' || (r.error ?? null) !== null,
      })),
    );
  }

  async pendingBatches(resource: string): Promise<SweepBatch[]> {
    // A batch whose run is alive is in flight (a sibling shard's delete, docs/scale-out.md), not
    // left behind: it is that run's to settle, and settling it here could record a resource it
    // is about to delete as still there (docs/safety.md §10, §11). An ended run's batch, a
    // lapsed heartbeat's and an unknown run's (an older reaper's) are recovered.
    const batches = await this.all(
      `SELECT ${this.cols.batches} FROM reap_batches WHERE resource = ? AND state = 'pending'
          AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = reap_batches.run_id AND r.status = 'running' AND r.alive_until > {now})
        ORDER BY batch_id`,
      [name(resource)],
    );
    const out: SweepBatch[] = [];
    for (const b of batches) {
      const rows = await this.all(`SELECT ${this.cols.tombstones} FROM tombstones WHERE batch_id = ? AND state = 'deleting' ORDER BY tombstone_id`, [int(Number(b.batch_id))]);
      out.push(toBatch(b, rows.map(toTombstone)));
    }
    return out;
  }

  async liftTombstones(runId: string, tombstoneIds: readonly number[], note: string): Promise<number> {
    let lifted = 0;
    for (const part of chunk([...new Set(tombstoneIds)])) {
      const list = inList(part);
      lifted += await this.changed(
        `UPDATE tombstones SET state = 'lifted', note = ?, outcome_run_id = ?, updated_at = {now} WHERE tombstone_id IN (${list.marks}) AND state = 'marked'`,
        [free(note), name(runId), ...list.values.map(int)],
      );
    }
    return lifted;
  }

  async findTombstones(filter: TombstoneFilter): Promise<Tombstone[]> {
    const conditions: string[] = [];
    const params: Param[] = [];
    if (filter.runId !== undefined) {
      conditions.push('(marked_run_id = ? OR outcome_run_id = ?)');
      params.push(name(filter.runId), name(filter.runId));
    }
    if (filter.resource !== undefined) {
      conditions.push('resource = ?');
      params.push(name(filter.resource));
    }
    if (filter.resourceId !== undefined) {
      const match = this.d.resourceIdIs(filter.resourceId);
      conditions.push(match.sql);
      params.push(...match.params);
    }
    if (filter.states?.length) {
      conditions.push(`state IN (${filter.states.map(() => '?').join(', ')})`);
      params.push(...filter.states.map(name));
    }
    if (filter.noteEndsWith !== undefined) {
      if (/[%_\\]/.test(filter.noteEndsWith)) throw new Error('noteEndsWith takes no %, _ or \\');
      conditions.push('note LIKE ?');
      params.push(free(`%${filter.noteEndsWith}`));
    }
    const rows = await this.all(`SELECT ${this.cols.tombstones} FROM tombstones ${where(conditions)} ORDER BY tombstone_id LIMIT ${limitOf(filter.limit, 10_000)}`, params);
    return rows.map(toTombstone);
  }

  async setTombstoneState(tombstoneId: number, state: TombstoneState, note: string | null, from?: TombstoneState): Promise<boolean> {
    const only = from === undefined ? '' : ' AND state = ?';
    const params = [name(state), free(note), int(tombstoneId), ...(from === undefined ? [] : [name(from)])];
    return (await this.changed(`UPDATE tombstones SET state = ?, note = ?, updated_at = {now} WHERE tombstone_id = ?${only}`, params)) > 0;
  }

  async journal(filter: { runId?: string; resource?: string; limit?: number }): Promise<JournalEntry[]> {
    // Journal rows, and the batch-era entries that have none: a tombstone of a batch still
    // deleting (intent), or deleted by its batch without remark (see JournalEntry).
    const rowsWhere = [...(filter.runId === undefined ? [] : ['run_id = ?']), ...(filter.resource === undefined ? [] : ['resource = ?'])];
    const derivedWhere = [
      't.batch_id IS NOT NULL',
      "t.state IN ('deleting', 'deleted', 'restored')",
      'NOT EXISTS (SELECT 1 FROM journal j WHERE j.tombstone_id = t.tombstone_id AND j.batch_id = t.batch_id)',
      ...(filter.runId === undefined ? [] : ['b.run_id = ?']),
      ...(filter.resource === undefined ? [] : ['t.resource = ?']),
    ];
    const params = [...(filter.runId === undefined ? [] : [name(filter.runId)]), ...(filter.resource === undefined ? [] : [name(filter.resource)])];
    const rows = await this.all(
      `SELECT * FROM (SELECT ${this.cols.journal} FROM journal ${where(rowsWhere)}
                      UNION ALL
                      SELECT ${this.cols.derived} FROM tombstones t JOIN reap_batches b ON b.batch_id = t.batch_id ${where(derivedWhere)}) e
        ORDER BY COALESCE(batch_id, 0), CASE WHEN batch_id IS NULL THEN journal_id ELSE 0 END, tombstone_id LIMIT ${limitOf(filter.limit, 10_000)}`,
      [...params, ...params],
    );
    return rows.map(toJournal);
  }
}
