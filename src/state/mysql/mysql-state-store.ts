/**
 * The MySQL / MariaDB state store, over a `mysql2` pool with server-side prepared
 * statements (values are always bound, never spliced into SQL text).
 *
 * Time is the server's: every statement reads UTC_TIMESTAMP(3), which MySQL fixes for
 * the whole statement and which no session time zone shifts, and stores ms since the
 * epoch. MySQL has neither RETURNING on UPDATE nor partial indexes, so the operations
 * that are one statement on PostgreSQL are here one transaction: a renewal of many
 * leases is one UPDATE that stamps the rows it renewed with a per-call mark, read back
 * in the same transaction.
 *
 * Affected-row counts are "rows changed" (the pool drops mysql2's default FOUND_ROWS
 * flag), so an INSERT … ON DUPLICATE KEY UPDATE that changes nothing counts 0; that is
 * how insertTombstones counts what it inserted.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { BackendError, LeaseLostError, redact } from '../../errors.js';
import {
  checkedTtl,
  assertDistinctKeys,
  DEFAULT_STORE_TIMEOUT_MS,
  chunk,
  hashToken,
  lostReason,
  newLeaseId,
  newLeaseToken,
  newRunId,
  schemaTooNew,
  statsBucket,
  serverAddress,
  storeError,
  textRow,
  tombstoneStateFor,
  toJournal,
  toLease,
  toRun,
  toTombstone,
  tokenMatches,
  utf8,
  utf8OrNull,
  type Row,
  type ServerAddress,
} from '../common.js';
import {
  DEFAULT_LEASE_BOUNDS,
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
import { DeadlineError, withDeadline } from '../../util/deadline.js';
import { StoreSockets } from '../sockets.js';
import { MYSQL_MIGRATIONS } from './migrations.js';

/** The server's clock in ms since the epoch: UTC, fixed for the statement, truncated like the SQLite store. */
const NOW = `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(3)) DIV 1000)`;

const LEASE_COLS = '`lease_id`, `key`, `holder`, `generation`, `ttl_ms`, `acquired_at`, `renewed_at`, `expires_at`, `released_at`';
const RUN_COLS = 'run_id, kind, status, started_at, finished_at, manifest_digest, `execute`, summary, source_counts, error';
const TOMB_COLS =
  'tombstone_id, resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at, outcome_run_id, note, restore_handle';
const JOURNAL_COLS = 'journal_id, run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, error, at';

/** Values per IN list. */
const IN_CHUNK = 1_000;
/** Keys per statement in acquireLeases (7 parameters a lease, well under the 65,535 limit). */
const ACQUIRE_CHUNK = 500;
/** Rows per multi-row INSERT (8 values each, far below the 65,535 placeholders a statement may have). */
const INSERT_CHUNK = 500;
const ER_DUP_ENTRY = 1062;
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

export interface MysqlStateStoreOptions {
  leaseBounds?: LeaseBounds;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Deadline of every call (default 30 s): see `open`. */
  timeoutMs?: number;
  /** How long to wait for another process's migration (default 60 s, and less than the deadline). */
  migrationLockTimeoutMs?: number;
}

type Conn = PoolConnection;
type Param = string | number | boolean | Buffer | null;

/** Take a connection out of use at once: out of the pool, its socket destroyed (mysql2's destroy only half-closes it). */
function cut(conn: PoolConnection): void {
  conn.destroy();
  (conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const int = (v: unknown): number => Number(v);
const errno = (error: unknown): number | undefined => {
  const e = (error instanceof BackendError ? error.cause : error) as { errno?: unknown } | undefined;
  return typeof e?.errno === 'number' ? e.errno : undefined;
};
/** A statement that missed the store's deadline (its connection was cut). */
const missedDeadline = (error: unknown): boolean => (error instanceof BackendError ? error.cause : error) instanceof DeadlineError;

export class MysqlStateStore implements StateStore {
  readonly dialect = 'mysql' as const;
  readonly description: string;
  private readonly bounds: LeaseBounds;
  private readonly address: ServerAddress;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly pool: Pool,
    url: string,
    private readonly database: string,
    private readonly options: MysqlStateStoreOptions,
    private readonly sockets: StoreSockets,
    private readonly timeoutMs: number,
  ) {
    this.description = redact(url);
    this.bounds = options.leaseBounds ?? DEFAULT_LEASE_BOUNDS;
    this.address = serverAddress(url, 'MySQL', 3306);
  }

  /**
   * Connect, migrate and return the store. `url` is a `mysql://` URL naming the database
   * that holds reaper's tables.
   *
   * The deadline `timeoutMs` (default 30 s) bounds every call: waiting for a pooled
   * connection, connecting, and each statement — one with no answer by then fails and its
   * connection is cut (a driver timeout alone would leave it stuck in the pool). The
   * server gives up on a lock wait after it (`innodb_lock_wait_timeout`, whole seconds,
   * at least 1) and aborts a statement running longer (`max_statement_time` on MariaDB,
   * `max_execution_time` for MySQL's SELECTs). TCP keepalive probes an idle connection
   * after the same time; `close()` waits for the pool at most that long, then cuts its
   * sockets.
   */
  static async open(url: string, options: MysqlStateStoreOptions = {}): Promise<MysqlStateStore> {
    let database: string;
    try {
      database = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
    } catch {
      throw new BackendError(`the state store URL ${redact(url)} is not a valid URL`);
    }
    if (!database || database.includes('/')) {
      throw new BackendError(`the state store URL ${redact(url)} names no database; add one, e.g. mysql://user@host:3306/reaper`);
    }
    const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS));
    const sockets = new StoreSockets(timeoutMs);
    const mysql = await import('mysql2/promise');
    const pool = mysql.createPool({
      uri: url,
      database,
      connectionLimit: options.poolSize ?? 10,
      connectTimeout: timeoutMs,
      stream: sockets.connect,
      charset: 'utf8mb4_bin',
      // Affected rows count changed rows, not matched ones (see the file comment).
      flags: ['-FOUND_ROWS'],
      decimalNumbers: true,
      // Prepared statements are cached per connection; the bound keeps the server's
      // global limit (max_prepared_stmt_count) out of reach.
      maxPreparedStatements: 256,
    });
    // Every new connection: UTC session (reaper's own clock reads are zone-free; this
    // keeps anything else the session does consistent) and READ COMMITTED, which takes
    // no gap locks, so concurrent upserts of different keys do not deadlock.
    // The server-side deadlines: each SET that this server does not know fails alone, harmlessly.
    pool.on('connection', (connection: unknown) => {
      const c = connection as { query(sql: string, cb: (error: unknown) => void): void };
      c.query(`SET time_zone = '+00:00'`, () => {});
      c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => {});
      c.query(`SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.ceil(timeoutMs / 1000))}`, () => {});
      c.query(`SET SESSION max_statement_time = ${(timeoutMs / 1000).toFixed(3)}`, () => {});
      c.query(`SET SESSION max_execution_time = ${timeoutMs}`, () => {});
    });
    // GET_LOCK waits whole seconds, and must give up before the statement's deadline does.
    const lockWaitMs = options.migrationLockTimeoutMs ?? Math.max(0, Math.min(60, Math.ceil(timeoutMs / 1000) - 1)) * 1000;
    const store = new MysqlStateStore(pool, url, database, { ...options, migrationLockTimeoutMs: lockWaitMs }, sockets, timeoutMs);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  // ------------------------------------------------------------ plumbing

  private async rows(sql: string, params: Param[] = [], on?: Conn): Promise<Row[]> {
    try {
      const [rows] = await this.timed((c) => c.execute<RowDataPacket[]>(sql, params), on);
      return rows.map((r) => textRow(r as Row));
    } catch (error) {
      throw storeError(error, this.description, this.address, 'a query');
    }
  }

  private async run(sql: string, params: Param[] = [], on?: Conn): Promise<ResultSetHeader> {
    try {
      const [result] = await this.timed((c) => c.execute<ResultSetHeader>(sql, params), on);
      return result;
    } catch (error) {
      throw storeError(error, this.description, this.address, 'a statement');
    }
  }

  /**
   * `work` on `on` (a transaction's connection) or on a pooled connection taken for it,
   * within the store's deadline. A connection whose statement missed the deadline is
   * cut: the statement may still be running on it, so nothing else may use it.
   */
  private async timed<T>(work: (conn: Conn) => Promise<T>, on?: Conn): Promise<T> {
    const conn = on ?? (await this.connection());
    try {
      return await withDeadline(work(conn), this.timeoutMs, '');
    } catch (error) {
      if (error instanceof DeadlineError) cut(conn);
      throw error;
    } finally {
      // A no-op for a connection that was cut (it left the pool).
      if (!on) conn.release();
    }
  }

  private async connection(): Promise<PoolConnection> {
    try {
      // A connection that arrives after the deadline goes back to the pool.
      return await withDeadline(this.pool.getConnection(), this.timeoutMs, '', (late) => late.release());
    } catch (error) {
      throw storeError(error, this.description, this.address, 'connecting');
    }
  }

  /** Run `fn` in one transaction; retried on deadlock or lock-wait timeout. */
  private async tx<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.connection();
      let destroyed = false;
      try {
        await this.control(conn, 'START TRANSACTION');
        const result = await fn(conn);
        await this.control(conn, 'COMMIT');
        return result;
      } catch (error) {
        if (missedDeadline(error)) destroyed = true;
        else {
          try {
            await this.timed((c) => c.query('ROLLBACK'), conn);
          } catch {
            cut(conn);
            destroyed = true;
          }
        }
        const code = errno(error);
        if ((code === ER_LOCK_DEADLOCK || code === ER_LOCK_WAIT_TIMEOUT) && attempt < 5) continue;
        throw error;
      } finally {
        if (!destroyed) conn.release();
      }
    }
  }

  /** A statement without values (transaction control, DDL); `doing` names it in errors. */
  private async control(conn: Conn, sql: string, doing = sql.toLowerCase()): Promise<void> {
    try {
      await this.timed((c) => c.query(sql), conn);
    } catch (error) {
      throw storeError(error, this.description, this.address, doing);
    }
  }

  async migrate(): Promise<void> {
    const latest = MYSQL_MIGRATIONS[MYSQL_MIGRATIONS.length - 1]!.version;
    // GET_LOCK names are server-wide: name the lock after the database, so stores in
    // different databases migrate independently while two processes on one wait.
    const lockName = `reaper-migrate-${createHash('sha256').update(this.database).digest('hex').slice(0, 40)}`;
    const conn = await this.connection();
    try {
      const [got] = await this.rows('SELECT GET_LOCK(?, ?) AS got', [lockName, Math.ceil((this.options.migrationLockTimeoutMs ?? 60_000) / 1000)], conn);
      if (int(got?.got) !== 1) throw new BackendError(`state store ${this.description}: another process is still migrating it; try again later`);
      try {
        await this.control(conn, 'CREATE TABLE IF NOT EXISTS reaper_migrations (version INT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL) ENGINE=InnoDB', 'creating reaper_migrations');
        const [row] = await this.rows('SELECT MAX(version) AS v FROM reaper_migrations', [], conn);
        const current = row?.v === null || row?.v === undefined ? 0 : int(row.v);
        if (current > latest) throw schemaTooNew(this.description, current, latest);
        for (const migration of MYSQL_MIGRATIONS) {
          if (migration.version <= current) continue;
          for (const statement of migration.statements) {
            if (typeof statement !== 'string' && (await this.rows(statement.unless, [], conn)).length > 0) continue;
            await this.control(conn, typeof statement === 'string' ? statement : statement.sql, `migration ${migration.version}`);
          }
          await this.run(`INSERT INTO reaper_migrations (version, applied_at) VALUES (?, ${NOW})`, [migration.version], conn);
        }
      } finally {
        await this.timed((c) => c.query('DO RELEASE_LOCK(?)', [lockName]), conn).catch(() => {});
      }
    } finally {
      conn.release();
    }
  }

  async now(): Promise<number> {
    const [row] = await this.rows(`SELECT ${NOW} AS now`);
    return int(row!.now);
  }

  /** End the pool, waiting for the server at most `timeoutMs` (default the store's deadline); then cut what is left. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.sockets.close(() => this.pool.end(), Math.min(options.timeoutMs ?? this.timeoutMs, this.timeoutMs));
    return this.closing;
  }

  // ------------------------------------------------------------ leases

  async acquireLease(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease> {
    const [lease] = await this.acquireLeases([input.key], input);
    return lease!;
  }

  async acquireLeases(keys: readonly string[], options: { holder: string; ttlMs: number }): Promise<AcquiredLease[]> {
    const ttlMs = String(checkedTtl(options.ttlMs, this.bounds));
    assertDistinctKeys(keys);
    if (keys.length === 0) return [];
    const holder = utf8(options.holder);
    return this.tx(async (conn) => {
      const acquired: AcquiredLease[] = [];
      // Keys in sorted order, so two callers with overlapping keys cannot deadlock; the
      // upsert holds each key's generation row locked until commit, so acquisitions of
      // one key at once are serialised and get consecutive generations.
      const sorted = [...keys].sort();
      for (const part of chunk(sorted, ACQUIRE_CHUNK)) {
        await this.run(
          `INSERT INTO lease_generations (\`key\`, generation) VALUES ${part.map(() => '(?, 1)').join(', ')} ON DUPLICATE KEY UPDATE generation = generation + 1`,
          part.map(utf8),
          conn,
        );
        const generations = new Map(
          (await this.rows(`SELECT \`key\`, generation FROM lease_generations WHERE \`key\` IN (${part.map(() => '?').join(', ')})`, part.map(utf8), conn)).map((r) => [
            String(r.key),
            String(r.generation),
          ]),
        );
        const fresh = part.map((key) => ({ key, leaseId: newLeaseId(), token: newLeaseToken() }));
        await this.run(
          `INSERT INTO leases (lease_id, \`key\`, holder, token_hash, generation, ttl_ms, acquired_at, renewed_at, expires_at) VALUES ${fresh
            .map(() => `(?, ?, ?, ?, CAST(? AS SIGNED), CAST(? AS SIGNED), ${NOW}, ${NOW}, ${NOW} + CAST(? AS SIGNED))`)
            .join(', ')}`,
          fresh.flatMap((f) => [f.leaseId, utf8(f.key), holder, hashToken(f.token), generations.get(f.key)!, ttlMs, ttlMs]),
          conn,
        );
        const rows = await this.rows(`SELECT ${LEASE_COLS} FROM leases WHERE lease_id IN (${fresh.map(() => '?').join(', ')})`, fresh.map((f) => f.leaseId), conn);
        const byId = new Map(rows.map((r) => [String(r.lease_id), toLease(r)]));
        for (const f of fresh) acquired.push({ ...byId.get(f.leaseId)!, token: f.token });
      }
      const byKey = new Map(acquired.map((l) => [l.key, l]));
      return keys.map((key) => byKey.get(key)!);
    });
  }

  async renewLease(leaseId: string, options: { ttlMs?: number; holder?: string } = {}): Promise<Lease> {
    const [outcome] = await this.renewLeases([leaseId], options);
    if (!outcome!.lease) throw new LeaseLostError(leaseId, outcome!.lost!);
    return outcome!.lease;
  }

  async renewLeases(leaseIds: readonly string[], options: { ttlMs?: number; holder?: string } = {}): Promise<RenewOutcome[]> {
    if (leaseIds.length === 0) return [];
    const ttl = options.ttlMs === undefined ? null : String(checkedTtl(options.ttlMs, this.bounds));
    const holder = options.holder === undefined ? null : utf8(options.holder);
    const mark = randomBytes(16);
    return this.tx(async (conn) => {
      const seen = new Map<string, { row: Row; renewed: boolean }>();
      for (const ids of chunk([...new Set(leaseIds)], IN_CHUNK)) {
        // One UPDATE renews every lease of the chunk that is still live by the server
        // clock; it stamps them with this call's mark, which the read-back below uses
        // to tell renewed rows from the rest.
        await this.run(
          `UPDATE leases SET renewed_at = ${NOW}, ttl_ms = COALESCE(CAST(? AS SIGNED), ttl_ms), expires_at = ${NOW} + COALESCE(CAST(? AS SIGNED), ttl_ms), renewal_mark = ?
            WHERE lease_id IN (${marks(ids.length)}) AND released_at IS NULL AND expires_at > ${NOW}
              ${holder === null ? '' : 'AND holder = ?'}`,
          [ttl, ttl, mark, ...ids, ...(holder === null ? [] : [holder])],
          conn,
        );
        const rows = await this.rows(`SELECT ${LEASE_COLS}, renewal_mark = ? AS renewed FROM leases WHERE lease_id IN (${marks(ids.length)})`, [mark, ...ids], conn);
        for (const r of rows) seen.set(String(r.lease_id), { row: r, renewed: int(r.renewed) === 1 });
      }
      const outcomes = leaseIds.map((leaseId): RenewOutcome => {
        const found = seen.get(leaseId);
        if (found?.renewed) return { leaseId, lease: toLease(found.row) };
        const prior = found ? { released_at: found.row.released_at, holder: String(found.row.holder) } : undefined;
        return { leaseId, lost: lostReason(prior, options.holder) };
      });
      const failed = outcomes.filter((o) => o.lost).length;
      await this.run(
        `INSERT INTO lease_renewal_stats (bucket, ok, failed) VALUES (FLOOR(${NOW} / 60000), ?, ?)
         ON DUPLICATE KEY UPDATE ok = ok + VALUES(ok), failed = failed + VALUES(failed)`,
        [outcomes.length - failed, failed],
        conn,
      );
      return outcomes;
    });
  }

  async releaseLease(leaseId: string, options: { holder?: string } = {}): Promise<void> {
    const [row] = await this.rows('SELECT holder FROM leases WHERE lease_id = ?', [leaseId]);
    if (!row) throw new LeaseLostError(leaseId, 'not-found');
    if (options.holder !== undefined && row.holder !== options.holder) throw new LeaseLostError(leaseId, 'not-holder');
    // The holder is checked again in the UPDATE, so a release never ends someone else's lease.
    await this.run(
      `UPDATE leases SET released_at = ${NOW}, expires_at = LEAST(expires_at, ${NOW})
        WHERE lease_id = ? AND released_at IS NULL AND holder = ?`,
      [leaseId, utf8(String(row.holder))],
    );
  }

  async getLease(leaseId: string): Promise<Lease | null> {
    const [row] = await this.rows(`SELECT ${LEASE_COLS} FROM leases WHERE lease_id = ?`, [leaseId]);
    return row ? toLease(row) : null;
  }

  async verifyLeaseToken(leaseId: string, token: string): Promise<boolean> {
    const [row] = await this.rows('SELECT token_hash FROM leases WHERE lease_id = ?', [leaseId]);
    return row ? tokenMatches(token, String(row.token_hash)) : false;
  }

  async listLeases(filter: { key?: string; includeInactive?: boolean; limit?: number } = {}): Promise<Lease[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.key !== undefined) {
      where.push('`key` = ?');
      params.push(utf8(filter.key));
    }
    if (!filter.includeInactive) where.push(`released_at IS NULL AND expires_at > ${NOW}`);
    const sql = `SELECT ${LEASE_COLS} FROM leases ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY \`key\`, acquired_at, generation LIMIT ${limitOf(filter.limit, 1_000)}`;
    return (await this.rows(sql, params)).map(toLease);
  }

  async liveKeys(keys: readonly string[]): Promise<Set<string>> {
    const live = new Set<string>();
    for (const part of chunk([...new Set(keys)], IN_CHUNK)) {
      const rows = await this.rows(
        `SELECT DISTINCT \`key\` FROM leases WHERE \`key\` IN (${marks(part.length)}) AND released_at IS NULL AND expires_at > ${NOW}`,
        part.map(utf8),
      );
      for (const r of rows) live.add(String(r.key));
    }
    return live;
  }

  async keysActiveSince(keys: readonly string[], sinceMs: number): Promise<Set<string>> {
    const active = new Set<string>();
    const since = String(Math.ceil(sinceMs));
    for (const part of chunk([...new Set(keys)], IN_CHUNK)) {
      const rows = await this.rows(
        `SELECT DISTINCT \`key\` FROM leases WHERE \`key\` IN (${marks(part.length)}) AND (renewed_at >= CAST(? AS SIGNED) OR acquired_at >= CAST(? AS SIGNED))`,
        [...part.map(utf8), since, since],
      );
      for (const r of rows) active.add(String(r.key));
    }
    return active;
  }

  async countLiveKeys(): Promise<number> {
    const [row] = await this.rows(`SELECT COUNT(DISTINCT \`key\`) AS n FROM leases WHERE released_at IS NULL AND expires_at > ${NOW}`);
    return int(row!.n);
  }

  async leaseStats(windowMs: number): Promise<LeaseStats> {
    // One statement, so every NOW below is the same instant.
    const [r] = await this.rows(
      `SELECT (SELECT COUNT(*) FROM leases WHERE released_at IS NULL AND expires_at > ${NOW}) AS active,
              (SELECT COUNT(*) FROM leases WHERE released_at IS NULL AND expires_at <= ${NOW}) AS expired,
              (SELECT COALESCE(SUM(ok), 0) FROM lease_renewal_stats WHERE bucket >= FLOOR((${NOW} - CAST(? AS SIGNED)) / 60000)) AS ok,
              (SELECT COALESCE(SUM(failed), 0) FROM lease_renewal_stats WHERE bucket >= FLOOR((${NOW} - CAST(? AS SIGNED)) / 60000)) AS failed`,
      [String(Math.floor(windowMs)), String(Math.floor(windowMs))],
    );
    const ok = int(r!.ok);
    const failed = int(r!.failed);
    return {
      active: int(r!.active),
      expired: int(r!.expired),
      renewals: ok,
      renewalFailures: failed,
      renewalFailureRate: ok + failed === 0 ? 0 : failed / (ok + failed),
    };
  }

  async pruneLeases(olderThanMs: number): Promise<number> {
    const [row] = await this.rows(`SELECT ${NOW} - CAST(? AS SIGNED) AS cutoff`, [String(Math.floor(olderThanMs))]);
    const cutoff = int(row!.cutoff);
    await this.run('DELETE FROM lease_renewal_stats WHERE bucket < ?', [statsBucket(cutoff)]);
    // The earliest active mark in its own statement, so the DELETE takes no shared locks
    // on tombstones; a tombstone marked in between is marked after every lease this
    // prunes had ended, so it could not have kept any of them.
    const [mark] = await this.rows(`SELECT MIN(marked_at) AS m FROM tombstones WHERE state IN ('marked', 'deleting')`);
    const keepFrom = mark?.m === null || mark?.m === undefined ? Number.MAX_SAFE_INTEGER : int(mark.m);
    const result = await this.run('DELETE FROM leases WHERE COALESCE(released_at, expires_at) < ? AND expires_at < ? AND renewed_at < ?', [cutoff, cutoff, keepFrom]);
    return result.affectedRows;
  }

  // ------------------------------------------------------------ runs, checkpoints, locks

  async startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean }): Promise<RunRecord> {
    const now = await this.now();
    const runId = newRunId(now);
    await this.run(`INSERT INTO runs (run_id, kind, status, started_at, manifest_digest, \`execute\`) VALUES (?, ?, 'running', ?, ?, ?)`, [
      runId,
      input.kind,
      String(now),
      utf8(input.manifestDigest),
      input.execute ? 1 : 0,
    ]);
    return (await this.getRun(runId))!;
  }

  async finishRun(runId: string, input: { status: RunStatus; summary?: unknown; sourceCounts?: Record<string, number> | null; error?: string | null }): Promise<void> {
    await this.run(`UPDATE runs SET status = ?, finished_at = ${NOW}, summary = ?, source_counts = ?, error = ? WHERE run_id = ?`, [
      input.status,
      input.summary === undefined ? null : JSON.stringify(input.summary),
      input.sourceCounts ? JSON.stringify(input.sourceCounts) : null,
      input.error ?? null,
      runId,
    ]);
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const [row] = await this.rows(`SELECT ${RUN_COLS} FROM runs WHERE run_id = ?`, [runId]);
    return row ? toRun(row) : null;
  }

  async listRuns(filter: { kind?: RunKind; limit?: number } = {}): Promise<RunRecord[]> {
    const rows = filter.kind
      ? await this.rows(`SELECT ${RUN_COLS} FROM runs WHERE kind = ? ORDER BY started_at DESC, run_id DESC LIMIT ${limitOf(filter.limit, 20)}`, [filter.kind])
      : await this.rows(`SELECT ${RUN_COLS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ${limitOf(filter.limit, 20)}`);
    return rows.map(toRun);
  }

  async lastSourceCounts(kind: RunKind): Promise<Record<string, number> | null> {
    const [row] = await this.rows(
      `SELECT source_counts FROM runs WHERE kind = ? AND source_counts IS NOT NULL AND status IN ('ok', 'gate-failed') ORDER BY finished_at DESC LIMIT 1`,
      [utf8(kind)],
    );
    return row ? (JSON.parse(String(row.source_counts)) as Record<string, number>) : null;
  }

  async saveCheckpoint(runId: string, resource: string, phase: string, cursor: string | null): Promise<void> {
    await this.run(
      `INSERT INTO checkpoints (run_id, resource, phase, \`cursor\`, updated_at) VALUES (?, ?, ?, ?, ${NOW})
       ON DUPLICATE KEY UPDATE \`cursor\` = VALUES(\`cursor\`), updated_at = VALUES(updated_at)`,
      [runId, utf8(resource), utf8(phase), utf8OrNull(cursor)],
    );
  }

  async loadCheckpoint(runId: string, resource: string, phase: string): Promise<string | null | undefined> {
    const [row] = await this.rows('SELECT `cursor` FROM checkpoints WHERE run_id = ? AND resource = ? AND phase = ?', [runId, utf8(resource), utf8(phase)]);
    if (!row) return undefined;
    return row.cursor === null ? null : String(row.cursor);
  }

  async acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const ttl = String(Math.ceil(ttlMs));
    const name = utf8(resource);
    for (let attempt = 0; attempt < 3; attempt++) {
      // Take over a lock that expired (or re-take our own). UPDATE reads the latest
      // committed row under its lock, so of two racing takeovers the second sees the
      // first's fresh expiry and matches nothing.
      const taken = await this.run(
        `UPDATE resource_locks SET run_id = ?, expires_at = ${NOW} + CAST(? AS SIGNED) WHERE resource = ? AND (expires_at <= ${NOW} OR run_id = ?)`,
        [runId, ttl, name, runId],
      );
      if (taken.affectedRows === 1) return true;
      const [holder] = await this.rows('SELECT run_id FROM resource_locks WHERE resource = ?', [name]);
      if (holder) {
        // Ours already, with nothing to change (same instant, same ttl): still held.
        // Otherwise another run holds it unexpired, or the UPDATE would have taken it.
        return holder.run_id === runId;
      }
      try {
        await this.run(`INSERT INTO resource_locks (resource, run_id, expires_at) VALUES (?, ?, ${NOW} + CAST(? AS SIGNED))`, [name, runId, ttl]);
        return true;
      } catch (error) {
        // Another acquirer inserted it first (or InnoDB chose this insert as a deadlock
        // victim and rolled it back): look again.
        const code = errno(error);
        if (code !== ER_DUP_ENTRY && code !== ER_LOCK_DEADLOCK) throw error;
      }
    }
    return false;
  }

  async refreshLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const result = await this.run(`UPDATE resource_locks SET expires_at = ${NOW} + CAST(? AS SIGNED) WHERE resource = ? AND run_id = ?`, [
      String(Math.ceil(ttlMs)),
      utf8(resource),
      runId,
    ]);
    if (result.affectedRows === 1) return true;
    // Nothing changed can also mean the expiry already had that value: still ours?
    const [row] = await this.rows('SELECT 1 AS held FROM resource_locks WHERE resource = ? AND run_id = ?', [utf8(resource), runId]);
    return row !== undefined;
  }

  async releaseLock(resource: string, runId: string): Promise<void> {
    await this.run('DELETE FROM resource_locks WHERE resource = ? AND run_id = ?', [utf8(resource), runId]);
  }

  // ------------------------------------------------------------ tombstones and journal

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
    if (items.length === 0) return 0;
    return this.tx(async (conn) => {
      let inserted = 0;
      for (const part of chunk(items, INSERT_CHUNK)) {
        // A row that would be a second active tombstone for a resource (already stored,
        // or earlier in this batch) hits the tombstones_active unique key; the no-op
        // update skips it and counts 0, so affectedRows is the number inserted.
        const result = await this.run(
          `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at)
           VALUES ${part.map(() => `(?, ?, ?, ?, ?, ?, ?, ?, ${NOW}, 'marked', ${NOW})`).join(', ')}
           ON DUPLICATE KEY UPDATE tombstone_id = tombstone_id`,
          part.flatMap((t): Param[] => [
            utf8(t.resource),
            utf8(t.resourceId),
            t.fingerprint,
            utf8OrNull(t.owner),
            utf8OrNull(t.ownerValue),
            t.reason,
            t.bytes === null || t.bytes === undefined ? null : String(Math.round(t.bytes)),
            runId,
          ]),
          conn,
        );
        inserted += result.affectedRows;
      }
      return inserted;
    });
  }

  async dueTombstones(resource: string, graceMs: number, afterId: number, limit: number): Promise<Tombstone[]> {
    const rows = await this.rows(
      `SELECT ${TOMB_COLS} FROM tombstones
        WHERE resource = ? AND state = 'marked' AND tombstone_id > CAST(? AS SIGNED) AND marked_at <= ${NOW} - CAST(? AS SIGNED)
        ORDER BY tombstone_id LIMIT ${limitOf(limit, limit)}`,
      [utf8(resource), String(Math.floor(afterId)), String(Math.ceil(graceMs))],
    );
    return rows.map(toTombstone);
  }

  async countDueTombstones(resource: string, graceMs: number): Promise<number> {
    const [row] = await this.rows(`SELECT count(*) AS n FROM tombstones WHERE resource = ? AND state = 'marked' AND marked_at <= ${NOW} - CAST(? AS SIGNED)`, [
      utf8(resource),
      String(Math.ceil(graceMs)),
    ]);
    return int(row!.n);
  }

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Map<string, Tombstone>> {
    const out = new Map<string, Tombstone>();
    for (const part of chunk([...new Set(resourceIds)], IN_CHUNK)) {
      const ids = part.map(utf8);
      const rows = await this.rows(
        `SELECT ${TOMB_COLS} FROM tombstones
          WHERE resource = ? AND active_id_hash IN (${marks(ids.length)}) AND resource_id IN (${marks(ids.length)})`,
        [utf8(resource), ...ids.map(sha256), ...ids],
      );
      for (const r of rows) {
        const t = toTombstone(r);
        out.set(t.resourceId, t);
      }
    }
    return out;
  }

  async countTombstones(resource: string): Promise<{ marked: number; deleting: number; oldestMarkedAt: number | null }> {
    const [row] = await this.rows(
      `SELECT COALESCE(SUM(state = 'marked'), 0) AS marked, COALESCE(SUM(state = 'deleting'), 0) AS deleting, MIN(marked_at) AS oldest
         FROM tombstones WHERE resource = ? AND state IN ('marked', 'deleting')`,
      [utf8(resource)],
    );
    return { marked: int(row!.marked), deleting: int(row!.deleting), oldestMarkedAt: row!.oldest === null ? null : int(row!.oldest) };
  }

  async beginDeletes(runId: string, items: readonly { tombstoneId: number; evidence: unknown }[]): Promise<JournalEntry[]> {
    if (items.length === 0) return [];
    const evidence = items.map((item) => JSON.stringify(item.evidence ?? null));
    // One transaction: a tombstone moves to `deleting` only if it is still `marked`
    // (the UPDATE re-reads it under its row lock, so a concurrent sweep that got there
    // first leaves nothing to move), and each one that moved gets its `intent` entry.
    return this.tx(async (conn) => {
      const journalIds: number[] = [];
      for (const [i, item] of items.entries()) {
        const moved = await this.run(
          `UPDATE tombstones SET state = 'deleting', updated_at = ${NOW}, outcome_run_id = ? WHERE tombstone_id = CAST(? AS SIGNED) AND state = 'marked'`,
          [runId, String(item.tombstoneId)],
          conn,
        );
        if (moved.affectedRows !== 1) continue;
        const entry = await this.run(
          `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, at)
           SELECT ?, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, ?, 'intent', ${NOW} FROM tombstones WHERE tombstone_id = CAST(? AS SIGNED)`,
          [runId, evidence[i]!, String(item.tombstoneId)],
          conn,
        );
        journalIds.push(entry.insertId);
      }
      if (journalIds.length === 0) return [];
      const entries: JournalEntry[] = [];
      for (const ids of chunk(journalIds, IN_CHUNK)) {
        const rows = await this.rows(`SELECT ${JOURNAL_COLS} FROM journal WHERE journal_id IN (${marks(ids.length)}) ORDER BY journal_id`, ids.map(String), conn);
        entries.push(...rows.map(toJournal));
      }
      return entries;
    });
  }

  async finishDeletes(
    runId: string,
    results: readonly { journalId: number; outcome: Exclude<JournalOutcome, 'intent'>; error?: string | null; restoreHandle?: string | null }[],
  ): Promise<void> {
    if (results.length === 0) return;
    await this.tx(async (conn) => {
      for (const r of results) {
        const id = String(r.journalId);
        const updated = await this.run(`UPDATE journal SET outcome = ?, error = ?, at = ${NOW} WHERE journal_id = CAST(? AS SIGNED)`, [r.outcome, r.error ?? null, id], conn);
        if (updated.affectedRows === 0) {
          const [exists] = await this.rows('SELECT 1 AS found FROM journal WHERE journal_id = CAST(? AS SIGNED)', [id], conn);
          if (!exists) continue;
        }
        await this.run(
          `UPDATE tombstones SET state = ?, note = ?, restore_handle = COALESCE(?, restore_handle), outcome_run_id = ?, updated_at = ${NOW}
            WHERE tombstone_id = (SELECT tombstone_id FROM journal WHERE journal_id = CAST(? AS SIGNED))`,
          [
            tombstoneStateFor(r.outcome),
            r.error ?? (r.outcome === 'changed' ? 'resource changed since it was marked' : null),
            r.restoreHandle ?? null,
            runId,
            id,
          ],
          conn,
        );
      }
    });
  }

  async pendingIntents(resource: string): Promise<JournalEntry[]> {
    const rows = await this.rows(`SELECT ${JOURNAL_COLS} FROM journal WHERE resource = ? AND outcome = 'intent' ORDER BY journal_id`, [utf8(resource)]);
    return rows.map(toJournal);
  }

  async liftTombstones(runId: string, tombstoneIds: readonly number[], note: string): Promise<number> {
    let lifted = 0;
    for (const ids of chunk([...new Set(tombstoneIds)], IN_CHUNK)) {
      const result = await this.run(
        `UPDATE tombstones SET state = 'lifted', note = ?, outcome_run_id = ?, updated_at = ${NOW}
          WHERE tombstone_id IN (${marks(ids.length)}) AND state = 'marked'`,
        [note, runId, ...ids.map(String)],
      );
      lifted += result.affectedRows;
    }
    return lifted;
  }

  async findTombstones(filter: { runId?: string; resource?: string; resourceId?: string; states?: readonly TombstoneState[]; limit?: number }): Promise<Tombstone[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.runId !== undefined) {
      where.push('(marked_run_id = ? OR outcome_run_id = ?)');
      params.push(filter.runId, filter.runId);
    }
    if (filter.resource !== undefined) {
      where.push('resource = ?');
      params.push(utf8(filter.resource));
    }
    if (filter.resourceId !== undefined) {
      const id = utf8(filter.resourceId);
      where.push('resource_id_hash = ? AND resource_id = ?');
      params.push(sha256(id), id);
    }
    if (filter.states?.length) {
      where.push(`state IN (${marks(filter.states.length)})`);
      params.push(...filter.states);
    }
    const rows = await this.rows(
      `SELECT ${TOMB_COLS} FROM tombstones ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY tombstone_id LIMIT ${limitOf(filter.limit, 10_000)}`,
      params,
    );
    return rows.map(toTombstone);
  }

  async setTombstoneState(tombstoneId: number, state: TombstoneState, note: string | null): Promise<void> {
    await this.run(`UPDATE tombstones SET state = ?, note = ?, updated_at = ${NOW} WHERE tombstone_id = CAST(? AS SIGNED)`, [state, note, String(tombstoneId)]);
  }

  async journal(filter: { runId?: string; resource?: string; limit?: number }): Promise<JournalEntry[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.runId !== undefined) {
      where.push('run_id = ?');
      params.push(filter.runId);
    }
    if (filter.resource !== undefined) {
      where.push('resource = ?');
      params.push(utf8(filter.resource));
    }
    const rows = await this.rows(
      `SELECT ${JOURNAL_COLS} FROM journal ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY journal_id LIMIT ${limitOf(filter.limit, 10_000)}`,
      params,
    );
    return rows.map(toJournal);
  }
}

/** LIMIT as a literal: a checked non-negative integer (prepared LIMIT placeholders are not portable across MySQL and MariaDB). */
function limitOf(limit: number | undefined, fallback: number): number {
  const n = limit ?? fallback;
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`a limit must be a non-negative number, got ${n}`);
  return Math.floor(n);
}
