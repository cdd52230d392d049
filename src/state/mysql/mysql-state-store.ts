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
import { BackendError, redact } from '../../errors.js';
import { chunk, inList } from '../../sql/text.js';
import { mysqlUrlOptions } from '../../sql/mysql-url.js';
import { acquiredLeases, claimGrant, newLeases, toBatch, toLease, toTombstone, type HeldClaims, type Row } from '../common.js';
import { DERIVED_JOURNAL_COLUMNS, JOURNAL_COLUMNS, migrated, StoreCore, type FinishedItem, type Param, type Query, type RenewFindings, type StoreDriver } from '../core.js';
import { ServerDriver, serverDeadline, sha256, textRow, utf8, utf8OrNull, type ServerDeadline, type ServerDialect, type ServerStoreOptions } from '../server.js';
import type { AcquiredLease, NewTombstone, SweepBatch, Tombstone } from '../types.js';
import { DeadlineError, withDeadline } from '../../util/deadline.js';
import { MYSQL_MIGRATIONS } from './migrations.js';

/** The server's clock in ms since the epoch: UTC, fixed for the statement, truncated like the SQLite store. */
const NOW = `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(3)) DIV 1000)`;

const COLUMNS = {
  leases: '`lease_id`, `key`, `holder`, `generation`, `ttl_ms`, `acquired_at`, `renewed_at`, `expires_at`, `released_at`',
  runs: 'run_id, kind, status, started_at, finished_at, manifest_digest, `execute`, summary, source_counts, error, heartbeat_at, alive_until, job, shard',
  tombstones: 'tombstone_id, resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at, outcome_run_id, note, restore_handle, mark_confirmed_at',
  journal: JOURNAL_COLUMNS,
  batches: 'batch_id, run_id, resource, evidence, state, created_at, finished_at',
  derived: DERIVED_JOURNAL_COLUMNS,
};
/** Tombstone ids per set-based statement of a batch write-ahead or outcome. */
const BATCH_CHUNK = 5_000;

/** Keys per statement in acquireLeases (7 parameters a lease, well under the 65,535 limit). */
const ACQUIRE_CHUNK = 500;
/** Rows per multi-row INSERT (8 values each, far below the 65,535 placeholders a statement may have). */
const INSERT_CHUNK = 500;
const ER_DUP_ENTRY = 1062;
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

export interface MysqlStateStoreOptions extends ServerStoreOptions {
  /** How long to wait for another process's migration (default 60 s, and less than the deadline). */
  migrationLockTimeoutMs?: number;
}

type Conn = PoolConnection;
type Value = string | number | boolean | Buffer | null;

/** Take a connection out of use at once: out of the pool, its socket destroyed (mysql2's destroy only half-closes it). */
function cut(conn: PoolConnection): void {
  conn.destroy();
  (conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

const int = (v: unknown): number => Number(v);
const errno = (error: unknown): number | undefined => {
  const e = (error instanceof BackendError ? error.cause : error) as { errno?: unknown } | undefined;
  return typeof e?.errno === 'number' ? e.errno : undefined;
};
/** A statement that missed the store's deadline (its connection was cut). */
const missedDeadline = (error: unknown): boolean => (error instanceof BackendError ? error.cause : error) instanceof DeadlineError;

/** Whole numbers are bound as text and cast by the server (a JS number would bind as a double). */
const bind = (p: Param): Value =>
  p.v === null ? null : p.k === 'int' ? String(p.v) : p.k === 'id' ? utf8(p.v as string) : p.k === 'bool' ? (p.v ? 1 : 0) : (p.v as string);
const render = (sql: string, params: readonly Param[]): string => {
  let n = 0;
  return sql.replace(/\?/g, () => (params[n++]!.k === 'int' ? 'CAST(? AS SIGNED)' : '?')).replaceAll('{now}', NOW);
};

const MYSQL: ServerDialect = { dialect: 'mysql', migrations: MYSQL_MIGRATIONS, columns: COLUMNS, server: 'MySQL', defaultPort: 3306 };

class MysqlDriver extends ServerDriver<Pool> implements StoreDriver {
  constructor(
    pool: Pool,
    url: string,
    private readonly database: string,
    private readonly migrationLockTimeoutMs: number,
    deadline: ServerDeadline,
    /** mysql2's own identifier escaper. */
    readonly quote: (identifier: string) => string,
  ) {
    super(pool, url, MYSQL, deadline);
  }

  readonly query: Query = (sql, params = []) => this.on(undefined, sql, params);

  /** A shared statement on `conn` (or a pooled connection): rows for a SELECT, changed rows otherwise. */
  private async on(conn: Conn | undefined, sql: string, params: readonly Param[]): Promise<{ rows: Row[]; count: number }> {
    try {
      const [result] = await this.timed((c) => c.execute<RowDataPacket[] | ResultSetHeader>(render(sql, params), params.map(bind)), conn);
      return Array.isArray(result) ? { rows: result.map((r) => textRow(r as Row)), count: 0 } : { rows: [], count: result.affectedRows };
    } catch (error) {
      throw this.fail(error, 'a statement');
    }
  }

  upsert(_conflict: readonly string[], set: readonly string[]): string {
    return `ON DUPLICATE KEY UPDATE ${set.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
  }

  resourceIdIs(resourceId: string): { sql: string; params: Param[] } {
    return { sql: 'resource_id_hash = UNHEX(SHA2(?, 256)) AND resource_id = ?', params: [{ k: 'id', v: resourceId }, { k: 'id', v: resourceId }] };
  }

  private async rows(sql: string, params: Value[] = [], on?: Conn): Promise<Row[]> {
    try {
      const [rows] = await this.timed((c) => c.execute<RowDataPacket[]>(sql, params), on);
      return rows.map((r) => textRow(r as Row));
    } catch (error) {
      throw this.fail(error, 'a query');
    }
  }

  private async run(sql: string, params: Value[] = [], on?: Conn): Promise<ResultSetHeader> {
    try {
      const [result] = await this.timed((c) => c.execute<ResultSetHeader>(sql, params), on);
      return result;
    } catch (error) {
      throw this.fail(error, 'a statement');
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
      throw this.fail(error, 'connecting');
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
      throw this.fail(error, doing);
    }
  }

  async migrationLock<T>(fn: (q: Query, exec: (sql: string) => Promise<void>) => Promise<T>): Promise<T> {
    // GET_LOCK names are server-wide: name the lock after the database, so stores in
    // different databases migrate independently while two processes on one wait.
    const lockName = `reaper-migrate-${createHash('sha256').update(this.database).digest('hex').slice(0, 40)}`;
    const conn = await this.connection();
    try {
      const [got] = await this.rows('SELECT GET_LOCK(?, ?) AS got', [lockName, Math.ceil(this.migrationLockTimeoutMs / 1000)], conn);
      if (int(got?.got) !== 1) throw new BackendError(`state store ${this.description}: another process is still migrating it; try again later`);
      try {
        return await fn(
          (sql, params = []) => this.on(conn, sql, params),
          (ddl) => this.control(conn, ddl, 'a migration'),
        );
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

  async acquireLeases(keys: readonly string[], holderName: string, ttl: number): Promise<AcquiredLease[]> {
    const ttlMs = String(ttl);
    const holder = utf8(holderName);
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
        const list = inList(part.map(utf8));
        const generations = new Map(
          (await this.rows(`SELECT \`key\`, generation FROM lease_generations WHERE \`key\` IN (${list.marks})`, list.values, conn)).map((r) => [String(r.key), String(r.generation)]),
        );
        const fresh = newLeases(part);
        await this.run(
          `INSERT INTO leases (lease_id, \`key\`, holder, token_hash, generation, ttl_ms, acquired_at, renewed_at, expires_at) VALUES ${fresh
            .map(() => `(?, ?, ?, ?, CAST(? AS SIGNED), CAST(? AS SIGNED), ${NOW}, ${NOW}, ${NOW} + CAST(? AS SIGNED))`)
            .join(', ')}`,
          fresh.flatMap((f) => [f.leaseId, utf8(f.key), holder, f.tokenHash, generations.get(f.key)!, ttlMs, ttlMs]),
          conn,
        );
        const ids = inList(fresh.map((f) => f.leaseId));
        acquired.push(...acquiredLeases(fresh, await this.rows(`SELECT ${COLUMNS.leases} FROM leases WHERE lease_id IN (${ids.marks})`, ids.values, conn)));
      }
      const byKey = new Map(acquired.map((l) => [l.key, l]));
      return keys.map((key) => byKey.get(key)!);
    });
  }

  async renewLeases(leaseIds: readonly string[], ttlMs: number | null, holderName: string | null): Promise<RenewFindings> {
    const ttl = ttlMs === null ? null : String(ttlMs);
    const holder = holderName === null ? null : utf8(holderName);
    const mark = randomBytes(16);
    return this.tx(async (conn) => {
      const found: RenewFindings = { renewed: new Map(), prior: new Map() };
      for (const part of chunk([...new Set(leaseIds)])) {
        // One UPDATE renews every lease of the chunk that is still live by the server
        // clock; it stamps them with this call's mark, which the read-back below uses
        // to tell renewed rows from the rest.
        const ids = inList(part);
        await this.run(
          `UPDATE leases SET renewed_at = ${NOW}, ttl_ms = COALESCE(CAST(? AS SIGNED), ttl_ms), expires_at = ${NOW} + COALESCE(CAST(? AS SIGNED), ttl_ms), renewal_mark = ?
            WHERE lease_id IN (${ids.marks}) AND released_at IS NULL AND expires_at > ${NOW}
              ${holder === null ? '' : 'AND holder = ?'}`,
          [ttl, ttl, mark, ...ids.values, ...(holder === null ? [] : [holder])],
          conn,
        );
        const rows = await this.rows(`SELECT ${COLUMNS.leases}, renewal_mark = ? AS renewed FROM leases WHERE lease_id IN (${ids.marks})`, [mark, ...ids.values], conn);
        for (const r of rows) {
          if (int(r.renewed) === 1) found.renewed.set(String(r.lease_id), toLease(r));
          else found.prior.set(String(r.lease_id), { released_at: r.released_at, holder: String(r.holder) });
        }
      }
      const failed = leaseIds.filter((id) => !found.renewed.has(id)).length;
      await this.run(
        `INSERT INTO lease_renewal_stats (bucket, ok, failed) VALUES (FLOOR(${NOW} / 60000), ?, ?)
         ON DUPLICATE KEY UPDATE ok = ok + VALUES(ok), failed = failed + VALUES(failed)`,
        [leaseIds.length - failed, failed],
        conn,
      );
      return found;
    });
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

  async claimJob(job: string, resource: string, shard: string, need: number, cap: number): Promise<HeldClaims & { granted: boolean }> {
    // The job's row, locked FOR UPDATE until commit, serializes the claims of its shards;
    // the insert before it makes sure there is a row to lock.
    const key = [utf8(job), utf8(resource)];
    return this.tx(async (conn) => {
      await this.run('INSERT INTO job_claims (job, resource, cap, claimed) VALUES (?, ?, CAST(? AS SIGNED), 0) ON DUPLICATE KEY UPDATE job = job', [...key, String(cap)], conn);
      const [row] = await this.rows('SELECT claimed, cap FROM job_claims WHERE job = ? AND resource = ? FOR UPDATE', key, conn);
      const [mine] = await this.rows('SELECT granted FROM job_claim_shards WHERE job = ? AND resource = ? AND shard = ?', [...key, utf8(shard)], conn);
      const held = { claimed: int(row!.claimed), cap: int(row!.cap), shardGranted: mine ? int(mine.granted) : 0 };
      const { extra, cap: lowest, outcome } = claimGrant(held, need, cap);
      await this.run('UPDATE job_claims SET claimed = claimed + CAST(? AS SIGNED), cap = CAST(? AS SIGNED) WHERE job = ? AND resource = ?', [String(extra), String(lowest), ...key], conn);
      if (extra > 0) {
        await this.run(
          'INSERT INTO job_claim_shards (job, resource, shard, granted) VALUES (?, ?, ?, CAST(? AS SIGNED)) ON DUPLICATE KEY UPDATE granted = granted + VALUES(granted)',
          [...key, utf8(shard), String(extra)],
          conn,
        );
      }
      return outcome;
    });
  }

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
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
          part.flatMap((t): Value[] => [
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

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Tombstone[]> {
    const out: Tombstone[] = [];
    for (const part of chunk([...new Set(resourceIds)])) {
      const ids = inList(part.map(utf8));
      const rows = await this.rows(
        `SELECT ${COLUMNS.tombstones} FROM tombstones WHERE resource = ? AND active_id_hash IN (${ids.marks}) AND resource_id IN (${ids.marks})`,
        [utf8(resource), ...ids.values.map(sha256), ...ids.values],
      );
      out.push(...rows.map(toTombstone));
    }
    return out;
  }

  async beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: string): Promise<SweepBatch | null> {
    // One transaction: the batch row, then one set-based move per chunk of the tombstones
    // still `marked` (the UPDATE re-reads each under its row lock, so a concurrent sweep
    // that got there first leaves nothing to move). No tombstone moved, no batch.
    return this.tx(async (conn) => {
      const inserted = await this.run(
        `INSERT INTO reap_batches (run_id, resource, evidence, state, created_at) VALUES (?, ?, ?, 'pending', ${NOW})`,
        [runId, utf8(resource), evidence],
        conn,
      );
      const batchId = String(inserted.insertId);
      let moved = 0;
      for (const part of chunk(tombstoneIds, BATCH_CHUNK)) {
        const result = await this.run(
          `UPDATE tombstones SET state = 'deleting', batch_id = CAST(? AS SIGNED), outcome_run_id = ?, updated_at = ${NOW}
            WHERE tombstone_id IN (${part.map(() => 'CAST(? AS SIGNED)').join(', ')}) AND state = 'marked' AND resource = ?`,
          [batchId, runId, ...part.map(String), utf8(resource)],
          conn,
        );
        moved += result.affectedRows;
      }
      if (moved === 0) {
        await this.run('DELETE FROM reap_batches WHERE batch_id = CAST(? AS SIGNED)', [batchId], conn);
        return null;
      }
      const [batch] = await this.rows(`SELECT ${COLUMNS.batches} FROM reap_batches WHERE batch_id = CAST(? AS SIGNED)`, [batchId], conn);
      const rows = await this.rows(`SELECT ${COLUMNS.tombstones} FROM tombstones WHERE batch_id = CAST(? AS SIGNED) AND state = 'deleting' ORDER BY tombstone_id`, [batchId], conn);
      return toBatch(batch!, rows.map(toTombstone));
    });
  }

  async finishBatch(runId: string, batchId: number, results: readonly FinishedItem[]): Promise<void> {
    // One transaction; the outcomes grouped by what they write, so a batch of plain
    // deletes is one set-based UPDATE per chunk (a restore handle is per resource, so
    // those are one statement each). Journal rows first, read from the tombstones still
    // deleting in this batch; then the tombstones; then the batch done once none is left.
    const groups = new Map<string, FinishedItem[]>();
    for (const r of results) {
      const key = JSON.stringify([r.outcome, r.error, r.state, r.note, r.restoreHandle, r.journaled]);
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const batch = String(batchId);
    await this.tx(async (conn) => {
      for (const group of groups.values()) {
        const r = group[0]!;
        for (const part of chunk(group.map((g) => String(g.tombstoneId)), BATCH_CHUNK)) {
          const ids = part.map(() => 'CAST(? AS SIGNED)').join(', ');
          if (r.journaled) {
            await this.run(
              `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, error, at, batch_id)
               SELECT b.run_id, t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, b.evidence, ?, ?, ${NOW}, b.batch_id
                 FROM tombstones t JOIN reap_batches b ON b.batch_id = t.batch_id
                WHERE t.batch_id = CAST(? AS SIGNED) AND t.state = 'deleting' AND t.tombstone_id IN (${ids}) ORDER BY t.tombstone_id`,
              [r.outcome, r.error, batch, ...part],
              conn,
            );
          }
          await this.run(
            `UPDATE tombstones SET state = ?, note = ?, restore_handle = COALESCE(?, restore_handle), outcome_run_id = ?, updated_at = ${NOW}
              WHERE batch_id = CAST(? AS SIGNED) AND state = 'deleting' AND tombstone_id IN (${ids})`,
            [r.state, r.note, r.restoreHandle, runId, batch, ...part],
            conn,
          );
        }
      }
      await this.run(
        `UPDATE reap_batches SET state = 'done', finished_at = ${NOW}
          WHERE batch_id = CAST(? AS SIGNED) AND state = 'pending' AND NOT EXISTS (SELECT 1 FROM tombstones WHERE batch_id = CAST(? AS SIGNED) AND state = 'deleting')`,
        [batch, batch],
        conn,
      );
    });
  }
}

export class MysqlStateStore extends StoreCore {
  static async open(url: string, options: MysqlStateStoreOptions = {}): Promise<MysqlStateStore> {
    // Read by the one checked reader: only known URL parameters reach mysql2.
    const settings = mysqlUrlOptions(url, 'the state store URL');
    const database = settings.database;
    if (!database || database.includes('/')) {
      throw new BackendError(`the state store URL ${redact(url)} names no database; add one, e.g. mysql://user@host:3306/reaper`);
    }
    const deadline = serverDeadline(options.timeoutMs);
    const { timeoutMs, sockets } = deadline;
    const mysql = await import('mysql2/promise');
    const pool = mysql.createPool({
      ...settings,
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
    return migrated(new MysqlStateStore(new MysqlDriver(pool, url, database, lockWaitMs, deadline, mysql.escapeId), options.leaseBounds));
  }
}
