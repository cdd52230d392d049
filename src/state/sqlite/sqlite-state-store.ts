/**
 * The embedded state store: one SQLite file (WAL, busy timeout), driven by better-sqlite3.
 * Calls are synchronous underneath; the async surface matches the server dialects.
 * The clock is SQLite's own (`unixepoch('subsec')`), so every judgement of time in a
 * deployment comes from one place.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { BackendError, LeaseLostError } from '../../errors.js';
import {
  abandonedRecord,
  chunk,
  checkedTtl,
  assertDistinctKeys,
  hashToken,
  lostReason,
  newLeaseId,
  newLeaseToken,
  newRunId,
  schemaTooNew,
  statsBucket,
  tombstoneStateFor,
  toJournal,
  toLease,
  toRun,
  toStaleRun,
  toTombstone,
  tokenMatches,
  type Row,
} from '../common.js';
import {
  DEFAULT_LEASE_BOUNDS,
  DEFAULT_RUN_TTL_MS,
  type AcquiredLease,
  type JournalEntry,
  type JournalOutcome,
  type Lease,
  type LeaseBounds,
  type LeaseStats,
  type NewTombstone,
  type RenewOutcome,
  type RunKind,
  type RunRecord,
  type RunStatus,
  type StateStore,
  type Tombstone,
  type TombstoneState,
} from '../types.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

const NOW = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;
const IN_CHUNK = 500;

export interface SqliteStateStoreOptions {
  leaseBounds?: LeaseBounds;
  busyTimeoutMs?: number;
}

export class SqliteStateStore implements StateStore {
  readonly dialect = 'sqlite' as const;
  readonly description: string;
  private readonly bounds: LeaseBounds;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    file: string,
    options: SqliteStateStoreOptions,
  ) {
    this.description = `sqlite:${file}`;
    this.bounds = options.leaseBounds ?? DEFAULT_LEASE_BOUNDS;
  }

  /** Open (creating the directory and file if needed) and migrate. */
  static async open(file: string, options: SqliteStateStoreOptions = {}): Promise<SqliteStateStore> {
    const { default: Database } = await import('better-sqlite3');
    let db: BetterSqlite3.Database;
    try {
      if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
      db = new Database(file);
    } catch (error) {
      throw new BackendError(`cannot open the state store sqlite:${file}: ${(error as Error).message}`, { cause: error });
    }
    // The busy timeout first: switching to WAL needs a moment's exclusive lock, and a
    // second process opening the same file at that moment should wait, not fail.
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5_000}`);
    db.pragma('journal_mode = WAL');
    // FULL: the write-ahead journal must survive power loss, not only a killed process (docs/safety.md §10).
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const store = new SqliteStateStore(db, file, options);
    await store.migrate();
    return store;
  }

  async migrate(): Promise<void> {
    const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;
    // One IMMEDIATE transaction holds SQLite's write lock from reading the version to
    // recording the last migration, so a second process migrating the same file at the
    // same time waits (busy timeout) and then finds the work done.
    this.db.transaction(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS reaper_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      const current = (this.db.prepare('SELECT MAX(version) AS v FROM reaper_migrations').get() as { v: number | null }).v ?? 0;
      if (current > latest) throw schemaTooNew(this.description, current, latest);
      for (const migration of SQLITE_MIGRATIONS) {
        if (migration.version <= current) continue;
        this.db.exec(migration.sql);
        this.db.prepare(`INSERT INTO reaper_migrations (version, applied_at) VALUES (?, ${NOW})`).run(migration.version);
      }
    }).immediate();
  }

  async now(): Promise<number> {
    return (this.db.prepare(`SELECT ${NOW} AS now`).get() as { now: number }).now;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  // ------------------------------------------------------------ leases

  async acquireLease(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease> {
    const [lease] = await this.acquireLeases([input.key], input);
    return lease!;
  }

  async acquireLeases(keys: readonly string[], options: { holder: string; ttlMs: number }): Promise<AcquiredLease[]> {
    const ttlMs = checkedTtl(options.ttlMs, this.bounds);
    assertDistinctKeys(keys);
    const nextGeneration = this.db.prepare(
      'INSERT INTO lease_generations (key, generation) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET generation = generation + 1 RETURNING generation',
    );
    const insert = this.db.prepare(
      `INSERT INTO leases (lease_id, key, holder, token_hash, generation, ttl_ms, acquired_at, renewed_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ${NOW}, ${NOW}, ${NOW} + ?) RETURNING *`,
    );
    return this.db.transaction(() =>
      keys.map((key) => {
        const { generation } = nextGeneration.get(key) as { generation: number };
        const token = newLeaseToken();
        const row = insert.get(newLeaseId(), key, options.holder, hashToken(token), generation, ttlMs, ttlMs) as Row;
        return { ...toLease(row), token };
      }),
    ).immediate();
  }

  async renewLease(leaseId: string, options: { ttlMs?: number; holder?: string } = {}): Promise<Lease> {
    const [outcome] = await this.renewLeases([leaseId], options);
    if (!outcome!.lease) throw new LeaseLostError(leaseId, outcome!.lost!);
    return outcome!.lease;
  }

  async renewLeases(leaseIds: readonly string[], options: { ttlMs?: number; holder?: string } = {}): Promise<RenewOutcome[]> {
    const ttl = options.ttlMs === undefined ? null : checkedTtl(options.ttlMs, this.bounds);
    return this.db.transaction(() => {
      const renewed = new Map<string, Lease>();
      for (const ids of chunk(leaseIds, IN_CHUNK)) {
        const marks = ids.map(() => '?').join(',');
        const holderClause = options.holder === undefined ? '' : 'AND holder = ?';
        const params: unknown[] = [ttl, ttl, ...ids];
        if (options.holder !== undefined) params.push(options.holder);
        const rows = this.db
          .prepare(
            `UPDATE leases SET renewed_at = ${NOW}, ttl_ms = COALESCE(?, ttl_ms), expires_at = ${NOW} + COALESCE(?, ttl_ms)
             WHERE lease_id IN (${marks}) AND released_at IS NULL AND expires_at > ${NOW} ${holderClause} RETURNING *`,
          )
          .all(...params) as Row[];
        for (const r of rows) renewed.set(String(r.lease_id), toLease(r));
      }
      const outcomes = leaseIds.map((leaseId): RenewOutcome => {
        const lease = renewed.get(leaseId);
        if (lease) return { leaseId, lease };
        const row = this.db.prepare('SELECT released_at, holder FROM leases WHERE lease_id = ?').get(leaseId) as { released_at: unknown; holder: string } | undefined;
        return { leaseId, lost: lostReason(row, options.holder) };
      });
      const failed = outcomes.filter((o) => o.lost).length;
      this.db
        .prepare(
          `INSERT INTO lease_renewal_stats (bucket, ok, failed) VALUES (?, ?, ?)
           ON CONFLICT (bucket) DO UPDATE SET ok = ok + excluded.ok, failed = failed + excluded.failed`,
        )
        .run(statsBucket(this.nowSync()), outcomes.length - failed, failed);
      return outcomes;
    }).immediate();
  }

  async releaseLease(leaseId: string, options: { holder?: string } = {}): Promise<void> {
    const row = this.db.prepare('SELECT holder FROM leases WHERE lease_id = ?').get(leaseId) as { holder: string } | undefined;
    if (!row) throw new LeaseLostError(leaseId, 'not-found');
    if (options.holder !== undefined && row.holder !== options.holder) throw new LeaseLostError(leaseId, 'not-holder');
    this.db.prepare(`UPDATE leases SET released_at = ${NOW}, expires_at = MIN(expires_at, ${NOW}) WHERE lease_id = ? AND released_at IS NULL`).run(leaseId);
  }

  async getLease(leaseId: string): Promise<Lease | null> {
    const row = this.db.prepare('SELECT * FROM leases WHERE lease_id = ?').get(leaseId) as Row | undefined;
    return row ? toLease(row) : null;
  }

  async verifyLeaseToken(leaseId: string, token: string): Promise<boolean> {
    const row = this.db.prepare('SELECT token_hash FROM leases WHERE lease_id = ?').get(leaseId) as { token_hash: string } | undefined;
    return row ? tokenMatches(token, row.token_hash) : false;
  }

  async listLeases(filter: { key?: string; includeInactive?: boolean; limit?: number } = {}): Promise<Lease[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.key !== undefined) {
      where.push('key = ?');
      params.push(filter.key);
    }
    if (!filter.includeInactive) where.push(`released_at IS NULL AND expires_at > ${NOW}`);
    params.push(filter.limit ?? 1_000);
    const sql = `SELECT * FROM leases ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY key, acquired_at, generation LIMIT ?`;
    return (this.db.prepare(sql).all(...params) as Row[]).map(toLease);
  }

  async liveKeys(keys: readonly string[]): Promise<Set<string>> {
    const live = new Set<string>();
    for (const part of chunk([...new Set(keys)], IN_CHUNK)) {
      const rows = this.db
        .prepare(`SELECT DISTINCT key FROM leases WHERE key IN (${part.map(() => '?').join(',')}) AND released_at IS NULL AND expires_at > ${NOW}`)
        .all(...part) as { key: string }[];
      for (const r of rows) live.add(r.key);
    }
    return live;
  }

  async keysActiveSince(keys: readonly string[], sinceMs: number): Promise<Set<string>> {
    const active = new Set<string>();
    for (const part of chunk([...new Set(keys)], IN_CHUNK)) {
      const rows = this.db
        .prepare(`SELECT DISTINCT key FROM leases WHERE key IN (${part.map(() => '?').join(',')}) AND (renewed_at >= ? OR acquired_at >= ?)`)
        .all(...part, sinceMs, sinceMs) as { key: string }[];
      for (const r of rows) active.add(r.key);
    }
    return active;
  }

  async countLiveKeys(): Promise<number> {
    return (this.db.prepare(`SELECT COUNT(DISTINCT key) AS n FROM leases WHERE released_at IS NULL AND expires_at > ${NOW}`).get() as { n: number }).n;
  }

  async leaseStats(windowMs: number): Promise<LeaseStats> {
    const now = this.nowSync();
    const counts = this.db
      .prepare(
        `SELECT SUM(CASE WHEN released_at IS NULL AND expires_at > ? THEN 1 ELSE 0 END) AS active,
                SUM(CASE WHEN released_at IS NULL AND expires_at <= ? THEN 1 ELSE 0 END) AS expired
         FROM leases`,
      )
      .get(now, now) as { active: number | null; expired: number | null };
    const stats = this.db
      .prepare('SELECT COALESCE(SUM(ok), 0) AS ok, COALESCE(SUM(failed), 0) AS failed FROM lease_renewal_stats WHERE bucket >= ?')
      .get(statsBucket(now - windowMs)) as { ok: number; failed: number };
    const total = stats.ok + stats.failed;
    return {
      active: counts.active ?? 0,
      expired: counts.expired ?? 0,
      renewals: stats.ok,
      renewalFailures: stats.failed,
      renewalFailureRate: total === 0 ? 0 : stats.failed / total,
    };
  }

  async pruneLeases(olderThanMs: number): Promise<number> {
    const cutoff = this.nowSync() - olderThanMs;
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM lease_renewal_stats WHERE bucket < ?').run(statsBucket(cutoff));
      return this.db
        .prepare(
          `DELETE FROM leases WHERE COALESCE(released_at, expires_at) < ? AND expires_at < ?
             AND renewed_at < COALESCE((SELECT MIN(marked_at) FROM tombstones WHERE state IN ('marked', 'deleting')), ?)`,
        )
        .run(cutoff, cutoff, Number.MAX_SAFE_INTEGER).changes;
    }).immediate();
  }

  private nowSync(): number {
    return (this.db.prepare(`SELECT ${NOW} AS now`).get() as { now: number }).now;
  }

  // ------------------------------------------------------------ runs, checkpoints, locks

  async startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean; ttlMs?: number }): Promise<RunRecord> {
    await this.abandonStaleRuns();
    const now = this.nowSync();
    const row = this.db
      .prepare(
        `INSERT INTO runs (run_id, kind, status, started_at, manifest_digest, execute, heartbeat_at, alive_until) VALUES (?, ?, 'running', ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(newRunId(now), input.kind, now, input.manifestDigest, input.execute ? 1 : 0, now, now + Math.ceil(input.ttlMs ?? DEFAULT_RUN_TTL_MS)) as Row;
    return toRun(row);
  }

  async heartbeatRun(runId: string, ttlMs: number): Promise<boolean> {
    const beat = this.db.prepare(
      `UPDATE runs SET heartbeat_at = ${NOW}, alive_until = ${NOW} + ?, status = 'running', finished_at = NULL, error = NULL
       WHERE run_id = ? AND status IN ('running', 'abandoned')`,
    );
    return beat.run(Math.ceil(ttlMs), runId).changes === 1;
  }

  async abandonStaleRuns(): Promise<number> {
    const lapsed = `status = 'running' AND (alive_until IS NULL OR alive_until <= ${NOW})`;
    const stale = (this.db.prepare(`SELECT run_id, started_at, heartbeat_at, alive_until FROM runs WHERE ${lapsed}`).all() as Row[]).map(toStaleRun);
    const abandon = this.db.prepare(`UPDATE runs SET status = 'abandoned', finished_at = ?, error = ? WHERE run_id = ? AND ${lapsed}`);
    return this.db
      .transaction(() =>
        stale.reduce((n, run) => {
          const { finishedAt, error } = abandonedRecord(run);
          return n + abandon.run(finishedAt, error, run.runId).changes;
        }, 0),
      )
      .immediate();
  }

  async finishRun(runId: string, input: { status: RunStatus; summary?: unknown; sourceCounts?: Record<string, number> | null; error?: string | null }): Promise<void> {
    this.db
      .prepare(`UPDATE runs SET status = ?, finished_at = ${NOW}, summary = ?, source_counts = ?, error = ? WHERE run_id = ?`)
      .run(
        input.status,
        input.summary === undefined ? null : JSON.stringify(input.summary),
        input.sourceCounts ? JSON.stringify(input.sourceCounts) : null,
        input.error ?? null,
        runId,
      );
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const row = this.db.prepare('SELECT * FROM runs WHERE run_id = ?').get(runId) as Row | undefined;
    return row ? toRun(row) : null;
  }

  async listRuns(filter: { kind?: RunKind; limit?: number } = {}): Promise<RunRecord[]> {
    const rows = filter.kind
      ? this.db.prepare('SELECT * FROM runs WHERE kind = ? ORDER BY started_at DESC, run_id DESC LIMIT ?').all(filter.kind, filter.limit ?? 20)
      : this.db.prepare('SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?').all(filter.limit ?? 20);
    return (rows as Row[]).map(toRun);
  }

  async lastSourceCounts(kind: RunKind): Promise<Record<string, number> | null> {
    const row = this.db
      .prepare(`SELECT source_counts FROM runs WHERE kind = ? AND source_counts IS NOT NULL AND status IN ('ok', 'gate-failed') ORDER BY finished_at DESC LIMIT 1`)
      .get(kind) as { source_counts: string } | undefined;
    return row ? (JSON.parse(row.source_counts) as Record<string, number>) : null;
  }

  async saveCheckpoint(runId: string, resource: string, phase: string, cursor: string | null): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO checkpoints (run_id, resource, phase, cursor, updated_at) VALUES (?, ?, ?, ?, ${NOW})
         ON CONFLICT (run_id, resource, phase) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
      )
      .run(runId, resource, phase, cursor);
  }

  async loadCheckpoint(runId: string, resource: string, phase: string): Promise<string | null | undefined> {
    const row = this.db.prepare('SELECT cursor FROM checkpoints WHERE run_id = ? AND resource = ? AND phase = ?').get(runId, resource, phase) as
      | { cursor: string | null }
      | undefined;
    return row === undefined ? undefined : row.cursor;
  }

  async acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const result = this.db
      .prepare(
        `INSERT INTO resource_locks (resource, run_id, expires_at) VALUES (?, ?, ${NOW} + ?)
         ON CONFLICT (resource) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
         WHERE resource_locks.expires_at <= ${NOW} OR resource_locks.run_id = excluded.run_id`,
      )
      .run(resource, runId, ttlMs);
    return result.changes === 1;
  }

  async refreshLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    return this.db.prepare(`UPDATE resource_locks SET expires_at = ${NOW} + ? WHERE resource = ? AND run_id = ?`).run(ttlMs, resource, runId).changes === 1;
  }

  async releaseLock(resource: string, runId: string): Promise<void> {
    this.db.prepare('DELETE FROM resource_locks WHERE resource = ? AND run_id = ?').run(resource, runId);
  }

  // ------------------------------------------------------------ tombstones and journal

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
    if (items.length === 0) return 0;
    // One set-based statement (rows as one JSON parameter), in caller order; `WHERE true`
    // keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    const insert = this.db.prepare(
      `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, ?, ${NOW}, 'marked', ${NOW}
         FROM json_each(?) WHERE true ORDER BY key
       ON CONFLICT (resource, resource_id) WHERE state IN ('marked', 'deleting') DO NOTHING`,
    );
    const rows = JSON.stringify(items.map((t) => [t.resource, t.resourceId, t.fingerprint, t.owner, t.ownerValue, t.reason, t.bytes]));
    return this.db.transaction(() => insert.run(runId, rows).changes).immediate();
  }

  async dueTombstones(resource: string, graceMs: number, afterId: number, limit: number): Promise<Tombstone[]> {
    return (
      this.db
        .prepare(`SELECT * FROM tombstones WHERE resource = ? AND state = 'marked' AND tombstone_id > ? AND marked_at <= ${NOW} - ? ORDER BY tombstone_id LIMIT ?`)
        .all(resource, afterId, graceMs, limit) as Row[]
    ).map(toTombstone);
  }

  async countDueTombstones(resource: string, graceMs: number): Promise<number> {
    const row = this.db.prepare(`SELECT count(*) AS n FROM tombstones WHERE resource = ? AND state = 'marked' AND marked_at <= ${NOW} - ?`).get(resource, graceMs) as { n: number };
    return row.n;
  }

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Map<string, Tombstone>> {
    const out = new Map<string, Tombstone>();
    if (resourceIds.length === 0) return out;
    // One statement per call (ids as one JSON parameter): a page of 10,000 ids costs one
    // prepared statement and one pass over the partial unique index, not 20 re-parsed IN lists.
    const rows = this.db
      .prepare(
        `SELECT t.* FROM json_each(?) AS i CROSS JOIN tombstones t INDEXED BY tombstones_active
          WHERE t.resource = ? AND t.resource_id = i.value AND t.state IN ('marked', 'deleting')`,
      )
      .all(JSON.stringify(resourceIds), resource) as Row[];
    for (const r of rows) out.set(String(r.resource_id), toTombstone(r));
    return out;
  }

  async countTombstones(resource: string): Promise<{ marked: number; deleting: number; oldestMarkedAt: number | null }> {
    const row = this.db
      .prepare(
        `SELECT SUM(state = 'marked') AS marked, SUM(state = 'deleting') AS deleting, MIN(marked_at) AS oldest
         FROM tombstones WHERE resource = ? AND state IN ('marked', 'deleting')`,
      )
      .get(resource) as { marked: number | null; deleting: number | null; oldest: number | null };
    return { marked: row.marked ?? 0, deleting: row.deleting ?? 0, oldestMarkedAt: row.oldest };
  }

  async beginDeletes(runId: string, items: readonly { tombstoneId: number; evidence: unknown }[]): Promise<JournalEntry[]> {
    if (items.length === 0) return [];
    // Set-based, in one immediate transaction: tombstones still `marked` move to `deleting`
    // and get their `intent` entry, in the callers' order; anything else is left alone. A
    // repeated tombstone id gets one intent (the first). (CROSS JOIN keeps json_each the
    // outer loop, so each row is one primary-key probe.)
    const move = this.db.prepare(
      `UPDATE tombstones SET state = 'deleting', updated_at = ${NOW}, outcome_run_id = ?
        WHERE state = 'marked' AND tombstone_id IN (SELECT value FROM json_each(?)) RETURNING tombstone_id`,
    );
    const append = this.db.prepare(
      `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, at)
       SELECT ?, t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, i.value ->> 1, 'intent', ${NOW}
         FROM json_each(?) AS i CROSS JOIN tombstones t ON t.tombstone_id = i.value ->> 0
        ORDER BY i.key
       RETURNING journal_id, run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, outcome, error, at`,
    );
    // The evidence is handed back as given rather than read back and parsed: it is the
    // widest column, and reading it back cost as much as the rest of the write-ahead.
    // A repeated tombstone id journals its first evidence.
    const evidence = new Map<number, unknown>();
    for (const item of items) if (!evidence.has(item.tombstoneId)) evidence.set(item.tombstoneId, item.evidence ?? null);
    return this.db.transaction(() => {
      const moved = new Set((move.all(runId, JSON.stringify(items.map((item) => item.tombstoneId))) as { tombstone_id: number }[]).map((r) => r.tombstone_id));
      if (moved.size === 0) return [];
      const rows: [number, string][] = [];
      for (const item of items) {
        if (!moved.delete(item.tombstoneId)) continue;
        rows.push([item.tombstoneId, JSON.stringify(item.evidence ?? null)]);
      }
      return (append.all(runId, JSON.stringify(rows)) as Row[])
        .map((row) => ({ ...toJournal(row), evidence: evidence.get(Number(row.tombstone_id)) ?? null }))
        .sort((a, b) => a.journalId - b.journalId);
    }).immediate();
  }

  async finishDeletes(
    runId: string,
    results: readonly { journalId: number; outcome: Exclude<JournalOutcome, 'intent'>; error?: string | null; restoreHandle?: string | null }[],
  ): Promise<void> {
    if (results.length === 0) return;
    // The last result for a journal id wins, as it would one row at a time.
    const latest = new Map(results.map((r) => [r.journalId, r]));
    const payload = JSON.stringify([...latest.values()].map((r) => [r.journalId, r.outcome, r.error ?? null]));
    // The journal in one set-based statement (json_each the outer loop: primary-key probes);
    // the tombstones it names one primary-key update each.
    const journal = this.db.prepare(
      `UPDATE journal SET outcome = r.value ->> 1, error = r.value ->> 2, at = ${NOW} FROM json_each(?) AS r WHERE journal.journal_id = r.value ->> 0
       RETURNING journal_id, tombstone_id`,
    );
    const tomb = this.db.prepare(
      `UPDATE tombstones SET state = ?, note = ?, restore_handle = COALESCE(?, restore_handle), outcome_run_id = ?, updated_at = ${NOW} WHERE tombstone_id = ?`,
    );
    this.db.transaction(() => {
      for (const row of journal.all(payload) as { journal_id: number; tombstone_id: number }[]) {
        const r = latest.get(row.journal_id)!;
        tomb.run(tombstoneStateFor(r.outcome), r.error ?? (r.outcome === 'changed' ? 'resource changed since it was marked' : null), r.restoreHandle ?? null, runId, row.tombstone_id);
      }
    }).immediate();
  }

  async pendingIntents(resource: string): Promise<JournalEntry[]> {
    return (this.db.prepare(`SELECT * FROM journal WHERE resource = ? AND outcome = 'intent' ORDER BY journal_id`).all(resource) as Row[]).map(toJournal);
  }

  async liftTombstones(runId: string, tombstoneIds: readonly number[], note: string): Promise<number> {
    const lift = this.db.prepare(`UPDATE tombstones SET state = 'lifted', note = ?, outcome_run_id = ?, updated_at = ${NOW} WHERE tombstone_id = ? AND state = 'marked'`);
    return this.db.transaction(() => tombstoneIds.reduce((n, id) => n + lift.run(note, runId, id).changes, 0)).immediate();
  }

  async findTombstones(filter: { runId?: string; resource?: string; resourceId?: string; states?: readonly TombstoneState[]; limit?: number }): Promise<Tombstone[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.runId !== undefined) {
      where.push('(marked_run_id = ? OR outcome_run_id = ?)');
      params.push(filter.runId, filter.runId);
    }
    if (filter.resource !== undefined) {
      where.push('resource = ?');
      params.push(filter.resource);
    }
    if (filter.resourceId !== undefined) {
      where.push('resource_id = ?');
      params.push(filter.resourceId);
    }
    if (filter.states?.length) {
      where.push(`state IN (${filter.states.map(() => '?').join(',')})`);
      params.push(...filter.states);
    }
    params.push(filter.limit ?? 10_000);
    return (
      this.db.prepare(`SELECT * FROM tombstones ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY tombstone_id LIMIT ?`).all(...params) as Row[]
    ).map(toTombstone);
  }

  async setTombstoneState(tombstoneId: number, state: TombstoneState, note: string | null): Promise<void> {
    this.db.prepare(`UPDATE tombstones SET state = ?, note = ?, updated_at = ${NOW} WHERE tombstone_id = ?`).run(state, note, tombstoneId);
  }

  async journal(filter: { runId?: string; resource?: string; limit?: number }): Promise<JournalEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.runId !== undefined) {
      where.push('run_id = ?');
      params.push(filter.runId);
    }
    if (filter.resource !== undefined) {
      where.push('resource = ?');
      params.push(filter.resource);
    }
    params.push(filter.limit ?? 10_000);
    return (this.db.prepare(`SELECT * FROM journal ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY journal_id LIMIT ?`).all(...params) as Row[]).map(toJournal);
  }
}
