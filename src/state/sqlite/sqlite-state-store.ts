/**
 * The embedded state store: one SQLite file (WAL, busy timeout), driven by better-sqlite3.
 * Calls are synchronous underneath; the async surface matches the server dialects.
 * The clock is SQLite's own (`unixepoch('subsec')`, fixed for one statement), so every
 * judgement of time in a deployment comes from one place.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { BackendError } from '../../errors.js';
import { chunk, inList } from '../../sql/text.js';
import { claimGrant, hashToken, newLeaseId, newLeaseToken, statsBucket, toBatch, toLease, TOMBSTONE_FIELDS, tombstoneOf, type HeldClaims, type Row } from '../common.js';
import { storeError } from '../../sql/errors.js';
import { DERIVED_JOURNAL_COLUMNS, JOURNAL_COLUMNS, migrated, StoreCore, type FinishedItem, type Param, type Query, type RenewFindings, type StoreDriver } from '../core.js';
import type { AcquiredLease, Lease, LeaseBounds, NewTombstone, SweepBatch, Tombstone } from '../types.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

const NOW = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;
/**
 * Migrations under way in this process, by file. The migration lock is SQLite's write lock,
 * and its wait (the busy timeout) blocks the thread: a second store of this process must
 * queue here instead, or it would wait on a lock that only this thread can release.
 */
const migrating = new Map<string, Promise<unknown>>();
const bind = (p: Param): unknown => (p.k === 'bool' ? (p.v ? 1 : 0) : p.v);
/** A tombstone's columns as `tombstoneOf` reads them, qualified by `t`. */
const TOMBSTONE_VALUES = TOMBSTONE_FIELDS.map((c) => `t.${c}`).join(', ');

export interface SqliteStateStoreOptions {
  leaseBounds?: LeaseBounds;
  busyTimeoutMs?: number;
}

class SqliteDriver implements StoreDriver {
  readonly dialect = 'sqlite' as const;
  readonly migrations = SQLITE_MIGRATIONS;
  readonly columns = {
    leases: '*',
    runs: '*',
    tombstones: '*',
    journal: JOURNAL_COLUMNS,
    batches: '*',
    derived: DERIVED_JOURNAL_COLUMNS,
  };
  readonly description: string;
  private readonly file: string;
  /** The file this connection opened (device and inode); null in memory. */
  private readonly opened: string | null;

  constructor(
    private readonly db: BetterSqlite3.Database,
    file: string,
  ) {
    this.file = path.resolve(file);
    this.description = `sqlite:${file}`;
    this.opened = file === ':memory:' ? null : fileIdentity(this.file);
  }

  /**
   * Driver errors (SQLITE_BUSY, a full disk, a corrupt file) as BackendErrors naming the store, like the server dialects' (docs/safety.md §17).
   * Before each statement: the file at the store's path must still be the one this connection
   * opened. Removed or replaced (a backup put back), the open handle would go on writing where
   * no other process reads: leases renewed that no reaper sees, a sweep's write-ahead entry lost.
   */
  private guard<T>(work: () => T): T {
    if (this.opened !== null && fileIdentity(this.file) !== this.opened) {
      throw new BackendError(`state store ${this.description}: the file was removed or replaced while open; nothing more is written to the old one (restart to open the file now at that path)`);
    }
    try {
      return work();
    } catch (error) {
      if (error instanceof BackendError || error instanceof RangeError) throw error;
      throw storeError(error, this.description, { server: 'SQLite', host: '', port: 0 }, 'a statement');
    }
  }

  /** A statement; preparing it can fail too (a table dropped under the store). */
  private sql(text: string): BetterSqlite3.Statement {
    return this.guard(() => this.db.prepare(text.replaceAll('{now}', NOW)));
  }

  private readonly prepared = new Map<string, BetterSqlite3.Statement>();

  /**
   * A statement of the sweep's path, prepared once per store; `rows: 'arrays'` reads each row
   * as an array of values (tombstoneOf), not a keyed object.
   */
  private statement(text: string, rows: 'objects' | 'arrays' = 'objects'): BetterSqlite3.Statement {
    const key = `${rows}\0${text}`;
    let statement = this.prepared.get(key);
    if (!statement) {
      statement = this.sql(text);
      if (rows === 'arrays') statement.raw(true);
      this.prepared.set(key, statement);
    }
    return statement;
  }

  readonly query: Query = async (text, params = []) =>
    this.guard(() => {
      const statement = this.sql(text);
      const values = params.map(bind);
      if (statement.reader) return { rows: statement.all(...values) as Row[], count: 0 };
      return { rows: [], count: statement.run(...values).changes };
    });

  quote(identifier: string): string {
    return `"${identifier.replaceAll('"', '""')}"`;
  }

  upsert(conflict: readonly string[], set: readonly string[]): string {
    return `ON CONFLICT (${conflict.join(', ')}) DO UPDATE SET ${set.map((c) => `${c} = excluded.${c}`).join(', ')}`;
  }

  resourceIdIs(resourceId: string): { sql: string; params: Param[] } {
    return { sql: 'resource_id = ?', params: [{ k: 'id', v: resourceId }] };
  }

  /**
   * One IMMEDIATE transaction holds SQLite's write lock from reading the version to
   * recording the last migration, so a second process migrating the same file at the
   * same time waits (busy timeout) and then finds the work done.
   */
  async migrationLock<T>(fn: (q: Query, exec: (sql: string) => Promise<void>) => Promise<T>): Promise<T> {
    const queued = (migrating.get(this.file) ?? Promise.resolve()).catch(() => undefined).then(() => this.locked(fn));
    migrating.set(this.file, queued);
    return queued;
  }

  private async locked<T>(fn: (q: Query, exec: (sql: string) => Promise<void>) => Promise<T>): Promise<T> {
    this.guard(() => this.db.exec('BEGIN IMMEDIATE'));
    try {
      const result = await fn(this.query, async (ddl) => this.guard(() => void this.db.exec(ddl)));
      this.guard(() => this.db.exec('COMMIT'));
      return result;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }

  async now(): Promise<number> {
    return this.guard(() => (this.sql('SELECT {now} AS now').get() as { now: number }).now);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private immediate<T>(work: () => T): T {
    return this.guard(() => this.db.transaction(work).immediate());
  }

  async acquireLeases(keys: readonly string[], holder: string, ttlMs: number): Promise<AcquiredLease[]> {
    const nextGeneration = this.sql(
      'INSERT INTO lease_generations (key, generation) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET generation = generation + 1 RETURNING generation',
    );
    const insert = this.sql(
      `INSERT INTO leases (lease_id, key, holder, token_hash, generation, ttl_ms, acquired_at, renewed_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, {now}, {now}, {now} + ?) RETURNING *`,
    );
    return this.immediate(() =>
      keys.map((key) => {
        const { generation } = nextGeneration.get(key) as { generation: number };
        const token = newLeaseToken();
        return { ...toLease(insert.get(newLeaseId(), key, holder, hashToken(token), generation, ttlMs, ttlMs) as Row), token };
      }),
    );
  }

  async renewLeases(ids: readonly string[], ttl: number | null, holder: string | null): Promise<RenewFindings> {
    return this.immediate(() => {
      const found: RenewFindings = { renewed: new Map<string, Lease>(), prior: new Map() };
      for (const part of chunk([...new Set(ids)])) {
        const list = inList(part);
        const rows = this.sql(
          `UPDATE leases SET renewed_at = {now}, ttl_ms = COALESCE(?, ttl_ms), expires_at = {now} + COALESCE(?, ttl_ms)
            WHERE lease_id IN (${list.marks}) AND released_at IS NULL AND expires_at > {now} ${holder === null ? '' : 'AND holder = ?'} RETURNING *`,
        ).all(ttl, ttl, ...list.values, ...(holder === null ? [] : [holder])) as Row[];
        for (const r of rows) found.renewed.set(String(r.lease_id), toLease(r));
      }
      const lookup = this.sql('SELECT released_at, holder FROM leases WHERE lease_id = ?');
      for (const leaseId of ids) {
        const row = found.renewed.has(leaseId) ? undefined : (lookup.get(leaseId) as { released_at: unknown; holder: string } | undefined);
        if (row) found.prior.set(leaseId, row);
      }
      const failed = ids.filter((leaseId) => !found.renewed.has(leaseId)).length;
      this.sql(
        `INSERT INTO lease_renewal_stats (bucket, ok, failed) VALUES (?, ?, ?)
         ON CONFLICT (bucket) DO UPDATE SET ok = ok + excluded.ok, failed = failed + excluded.failed`,
      ).run(statsBucket((this.sql('SELECT {now} AS now').get() as { now: number }).now), ids.length - failed, failed);
      return found;
    });
  }

  async acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const statement = this.sql(
      `INSERT INTO resource_locks (resource, run_id, expires_at) VALUES (?, ?, {now} + ?)
       ON CONFLICT (resource) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
       WHERE resource_locks.expires_at <= {now} OR resource_locks.run_id = excluded.run_id`,
    );
    return this.guard(() => statement.run(resource, runId, ttlMs).changes === 1);
  }

  async claimJob(job: string, resource: string, shard: string, need: number, cap: number): Promise<HeldClaims & { granted: boolean }> {
    // One IMMEDIATE transaction: SQLite's write lock serializes the claims of every process.
    const ensure = this.sql('INSERT INTO job_claims (job, resource, cap, claimed) VALUES (?, ?, ?, 0) ON CONFLICT (job, resource) DO NOTHING');
    const read = this.sql(
      `SELECT c.claimed, c.cap, COALESCE((SELECT s.granted FROM job_claim_shards s WHERE s.job = c.job AND s.resource = c.resource AND s.shard = ?), 0) AS shard_granted
         FROM job_claims c WHERE c.job = ? AND c.resource = ?`,
    );
    const setJob = this.sql('UPDATE job_claims SET claimed = claimed + ?, cap = ? WHERE job = ? AND resource = ?');
    const setShard = this.sql(
      `INSERT INTO job_claim_shards (job, resource, shard, granted) VALUES (?, ?, ?, ?)
       ON CONFLICT (job, resource, shard) DO UPDATE SET granted = job_claim_shards.granted + excluded.granted`,
    );
    return this.immediate(() => {
      ensure.run(job, resource, cap);
      const row = read.get(shard, job, resource) as Row;
      const held = { claimed: Number(row.claimed), cap: Number(row.cap), shardGranted: Number(row.shard_granted) };
      const { extra, cap: lowest, outcome } = claimGrant(held, need, cap);
      setJob.run(extra, lowest, job, resource);
      if (extra > 0) setShard.run(job, resource, shard, extra);
      return outcome;
    });
  }

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
    // One set-based statement (rows as one JSON parameter), in caller order; `WHERE true`
    // keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    const insert = this.sql(
      `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, ?, {now}, 'marked', {now}
         FROM json_each(?) WHERE true ORDER BY key
       ON CONFLICT (resource, resource_id) WHERE state IN ('marked', 'deleting') DO NOTHING`,
    );
    const rows = JSON.stringify(items.map((t) => [t.resource, t.resourceId, t.fingerprint, t.owner, t.ownerValue, t.reason, t.bytes]));
    return this.immediate(() => insert.run(runId, rows).changes);
  }

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Tombstone[]> {
    // One statement per call (ids as one JSON parameter): a page of 10,000 ids costs one
    // pass over the partial unique index, not 20 re-parsed IN lists; rows come as arrays.
    const statement = this.statement(
      `SELECT ${TOMBSTONE_VALUES} FROM json_each(?) AS i CROSS JOIN tombstones t INDEXED BY tombstones_active
        WHERE t.resource = ? AND t.resource_id = i.value AND t.state IN ('marked', 'deleting')`,
      'arrays',
    );
    return this.guard(() => (statement.all(JSON.stringify(resourceIds), resource) as unknown[][]).map(tombstoneOf));
  }

  async tombstoneRows(sql: string, params: readonly Param[]): Promise<Tombstone[]> {
    const statement = this.statement(sql, 'arrays');
    return this.guard(() => (statement.all(...params.map(bind)) as unknown[][]).map(tombstoneOf));
  }

  async beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: string): Promise<SweepBatch | null> {
    // One immediate transaction: the batch row, then one set-based move of the tombstones
    // still `marked` (ids as one JSON parameter, each a primary-key probe); no tombstone
    // moved, no batch. The moved tombstones are read back by their (new, never reused) batch
    // id through the batch index, already in tombstone order, as arrays: cheaper than an
    // UPDATE … RETURNING, which gathers every moved row before handing back the first.
    const batch = this.statement(`INSERT INTO reap_batches (run_id, resource, evidence, state, created_at) VALUES (?, ?, ?, 'pending', {now}) RETURNING *`);
    const move = this.statement(
      `UPDATE tombstones SET state = 'deleting', batch_id = ?, outcome_run_id = ?, updated_at = {now}
        WHERE tombstone_id IN (SELECT value FROM json_each(?)) AND state = 'marked' AND resource = ?`,
    );
    const moved = this.statement(`SELECT ${TOMBSTONE_VALUES} FROM tombstones t WHERE t.batch_id = ? AND t.state = 'deleting' ORDER BY t.tombstone_id`, 'arrays');
    const drop = this.statement('DELETE FROM reap_batches WHERE batch_id = ?');
    return this.immediate(() => {
      const row = batch.get(runId, resource, evidence) as Row;
      if (move.run(row.batch_id, runId, JSON.stringify(tombstoneIds), resource).changes > 0) {
        return toBatch(row, (moved.all(row.batch_id) as unknown[][]).map(tombstoneOf));
      }
      drop.run(row.batch_id);
      return null;
    });
  }

  async finishBatch(runId: string, batchId: number, results: readonly FinishedItem[]): Promise<void> {
    // One immediate transaction: the journal rows (outcomes other than a plain delete),
    // then the tombstones in one set-based statement, then the batch done once none of its
    // tombstones is left deleting. json_each stays the outer loop (primary-key probes): the
    // unary `+` keeps the planner off the batch index, which would rescan the whole JSON
    // list for every tombstone of the batch (quadratic in the batch size).
    const journal = this.statement(
      `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, error, at, batch_id)
       SELECT b.run_id, t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, b.evidence, r.value ->> 1, r.value ->> 2, {now}, b.batch_id
         FROM json_each(?) AS r CROSS JOIN tombstones t ON t.tombstone_id = r.value ->> 0 CROSS JOIN reap_batches b ON b.batch_id = t.batch_id
        WHERE t.batch_id = ? AND t.state = 'deleting' ORDER BY r.key`,
    );
    const tombs = this.statement(
      `UPDATE tombstones SET state = r.value ->> 1, note = r.value ->> 2, restore_handle = COALESCE(r.value ->> 3, restore_handle), outcome_run_id = ?, updated_at = {now}
         FROM json_each(?) AS r WHERE tombstones.tombstone_id = r.value ->> 0 AND +tombstones.batch_id = ? AND +tombstones.state = 'deleting'`,
    );
    // Outcomes with no note and no restore handle (a plain delete, the usual case) as one id
    // list per state: the same update without reading four JSON fields per tombstone.
    const plain = this.statement(
      `UPDATE tombstones SET state = ?, note = NULL, outcome_run_id = ?, updated_at = {now}
        WHERE tombstone_id IN (SELECT value FROM json_each(?)) AND +batch_id = ? AND +state = 'deleting'`,
    );
    const done = this.statement(
      `UPDATE reap_batches SET state = 'done', finished_at = {now}
        WHERE batch_id = ? AND state = 'pending' AND NOT EXISTS (SELECT 1 FROM tombstones WHERE batch_id = ? AND state = 'deleting')`,
    );
    const journaled = results.filter((r) => r.journaled).map((r) => [r.tombstoneId, r.outcome, r.error]);
    const byState = new Map<string, number[]>();
    const noted: (string | number | null)[][] = [];
    for (const r of results) {
      if (r.note === null && r.restoreHandle === null) {
        const ids = byState.get(r.state) ?? [];
        if (ids.length === 0) byState.set(r.state, ids);
        ids.push(r.tombstoneId);
      } else {
        noted.push([r.tombstoneId, r.state, r.note, r.restoreHandle]);
      }
    }
    this.immediate(() => {
      if (journaled.length > 0) journal.run(JSON.stringify(journaled), batchId);
      for (const [state, ids] of byState) plain.run(state, runId, JSON.stringify(ids), batchId);
      if (noted.length > 0) tombs.run(runId, JSON.stringify(noted), batchId);
      done.run(batchId, batchId);
    });
  }
}

/**
 * Why a store file may not open, when the cause is the usual one: its directory or the file
 * is not writable for this user, or on a read-only file system. SQLite writes the file and
 * its `-wal` and `-shm` files beside it, to read as well.
 */
function unwritable(file: string): string {
  if (file === ':memory:') return '';
  const dir = path.dirname(path.resolve(file));
  for (const target of [dir, path.resolve(file)]) {
    try {
      accessSync(target, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      return `; ${target} is not writable (${code ?? 'denied'}): the store writes its file and the -wal and -shm files beside it, even to read`;
    }
  }
  return '';
}

/** Device and inode of the file at `file`, or null when there is none. */
function fileIdentity(file: string): string | null {
  const info = statSync(file, { throwIfNoEntry: false, bigint: true });
  return info ? `${info.dev}:${info.ino}` : null;
}

export class SqliteStateStore extends StoreCore {
  /** Open (creating the directory and file if needed) and migrate. */
  static async open(file: string, options: SqliteStateStoreOptions = {}): Promise<SqliteStateStore> {
    const { default: Database } = await import('better-sqlite3');
    let db: BetterSqlite3.Database;
    try {
      if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
      db = new Database(file);
      // The busy timeout first: switching to WAL needs a moment's exclusive lock, and a
      // second process opening the same file at that moment should wait, not fail.
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5_000}`);
      db.pragma('journal_mode = WAL');
      // FULL: the write-ahead journal must survive power loss, not only a killed process (docs/safety.md §10).
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
    } catch (error) {
      throw new BackendError(`cannot open the state store sqlite:${file}: ${(error as Error).message}${unwritable(file)}`, { cause: error });
    }
    return migrated(new SqliteStateStore(new SqliteDriver(db, file), options.leaseBounds));
  }
}
