/**
 * The PostgreSQL state store: the shared store for production and multi-host
 * deployments, over a `pg` pool.
 *
 * Every time it records or compares is the server's `clock_timestamp()`, read once per
 * statement (the `c` CTE), so all hosts of a deployment judge expiry and grace by one
 * clock. Most operations are a single statement, which makes them atomic without an
 * explicit transaction: acquiring a lease bumps the key's fencing generation and inserts
 * the lease together; renewing many leases, counting the outcome and reading back the
 * failures is one statement; the write-ahead `beginDeletes` moves tombstones and writes
 * their intents together.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
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
import { StoreSockets } from '../sockets.js';
import { DeadlineError } from '../../util/deadline.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';

/** The server's clock in ms since the epoch (truncated, like the SQLite store). */
const CLOCK = `(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint`;
/** One reading of the clock for a whole statement: `WITH c AS (…)`, then `c.now`. */
const WITH_NOW = `WITH c AS (SELECT ${CLOCK} AS now)`;

const LEASE_COLS = 'lease_id, key, holder, generation, ttl_ms, acquired_at, renewed_at, expires_at, released_at';
const RUN_COLS = 'run_id, kind, status, started_at, finished_at, manifest_digest, execute, summary::text AS summary, source_counts::text AS source_counts, error';
const TOMB_COLS =
  'tombstone_id, resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at, outcome_run_id, note, restore_handle';
const JOURNAL_COLS = 'journal_id, run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence::text AS evidence, outcome, error, at';

/** Namespace of reaper's advisory locks (the second key is the schema's hash). */
const MIGRATION_LOCK = 0x52_45_41_50; // "REAP"
/** Ids per array parameter: large enough for one round trip per batch, small enough to plan well. */
const ARRAY_CHUNK = 5_000;
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export interface PostgresStateStoreOptions {
  leaseBounds?: LeaseBounds;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Deadline of every call (default 30 s): see `open`. */
  timeoutMs?: number;
}

/** A server that saw its client vanish mid-transaction ends the session after this long (at least), freeing its locks. */
const MIN_IDLE_IN_TRANSACTION_MS = 10_000;

type Queryable = Pick<PoolClient, 'query'>;

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
/** `text` cannot hold NUL; free-text notes and errors lose it rather than fail the write. */
const freeText = (s: string | null | undefined): string | null => (s === null || s === undefined ? null : s.replaceAll('\u0000', '\uFFFD'));
const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
/** pg's client-side query_timeout fired: the statement has no answer yet. */
function missedDeadline(error: unknown): boolean {
  const cause = error instanceof BackendError ? error.cause : error;
  return cause instanceof DeadlineError || (cause instanceof Error && cause.message === 'Query read timeout');
}
const int = (v: unknown): number => Number(v);

export class PostgresStateStore implements StateStore {
  readonly dialect = 'postgres' as const;
  readonly description: string;
  private readonly bounds: LeaseBounds;
  private readonly address: ServerAddress;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly pool: Pool,
    url: string,
    /** The schema named by `?schema=`, or null for the connection's default search path. */
    private readonly schema: string | null,
    options: PostgresStateStoreOptions,
    private readonly sockets: StoreSockets,
    private readonly timeoutMs: number,
  ) {
    this.description = redact(url);
    this.bounds = options.leaseBounds ?? DEFAULT_LEASE_BOUNDS;
    this.address = serverAddress(url, 'PostgreSQL', 5432);
  }

  /**
   * Connect, migrate and return the store. `url` is a `postgres://` or `postgresql://`
   * URL naming the database; `?schema=NAME` puts reaper's tables in that schema
   * (created if missing) instead of the default search path.
   *
   * The deadline `timeoutMs` (default 30 s) bounds every call: a statement with no answer
   * fails on the client after it (`query_timeout`; its connection is dropped), the server
   * cancels one running longer (`statement_timeout`) or waiting longer for a lock
   * (`lock_timeout`), and connecting — or waiting for a free connection — gives up after
   * it. TCP keepalive probes an idle connection after the same time, and the server ends
   * a session left idle in a transaction after twice that (at least 10 s). `close()`
   * waits for the pool at most that long, then cuts its sockets.
   */
  static async open(url: string, options: PostgresStateStoreOptions = {}): Promise<PostgresStateStore> {
    const { connectionString, schema } = splitSchema(url);
    const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS));
    const sockets = new StoreSockets(timeoutMs);
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({
      connectionString,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      statement_timeout: timeoutMs,
      lock_timeout: timeoutMs,
      idle_in_transaction_session_timeout: Math.max(2 * timeoutMs, MIN_IDLE_IN_TRANSACTION_MS),
      keepAlive: true,
      keepAliveInitialDelayMillis: timeoutMs,
      stream: sockets.socket,
      application_name: 'reaper',
      ...(schema ? { options: `-c search_path=${quoteIdent(schema)}` } : {}),
    });
    // An idle connection that dies (server restart) must not crash the process; the
    // next query on the pool reports the problem instead.
    pool.on('error', () => {});
    const store = new PostgresStateStore(pool, url, schema, options, sockets, timeoutMs);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  // ------------------------------------------------------------ plumbing

  private async q<R extends QueryResultRow = Row>(sql: string, params: unknown[] = [], on: Queryable = this.pool): Promise<{ rows: R[]; rowCount: number }> {
    try {
      const result = await on.query<R>(sql, params);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (error) {
      // pg says "Query read timeout"; say which deadline passed (the cause keeps pg's error).
      throw storeError(missedDeadline(error) ? new DeadlineError('', this.timeoutMs, error) : error, this.description, this.address, 'a query');
    }
  }

  /** Run `fn` in one transaction; retried on deadlock or serialization failure. */
  private async tx<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw storeError(error, this.description, this.address, 'connecting');
      }
      let broken = false;
      try {
        await this.q('BEGIN', [], client);
        const result = await fn(client);
        await this.q('COMMIT', [], client);
        return result;
      } catch (error) {
        // A statement that missed its deadline is still on the connection: a ROLLBACK would
        // queue behind it and wait out a second deadline. Drop the connection instead (the
        // server rolls back).
        if (missedDeadline(error)) broken = true;
        else {
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
        }
        const code = ((error as BackendError).cause as { code?: string } | undefined)?.code;
        if ((code === '40P01' || code === '40001') && attempt < 5) continue;
        throw error;
      } finally {
        client.release(broken);
      }
    }
  }

  async migrate(): Promise<void> {
    const latest = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;
    await this.tx(async (client) => {
      // Transaction-scoped advisory lock: a second process migrating the same schema
      // waits here, then finds the work done. Released by COMMIT or ROLLBACK.
      await this.q(`SELECT pg_advisory_xact_lock($1::int, hashtext(coalesce($2::text, current_schema(), '')))`, [MIGRATION_LOCK, this.schema], client);
      if (this.schema) {
        // Create the schema only when missing: a role that may use an existing schema
        // need not be allowed to create one.
        const { rowCount } = await this.q('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema], client);
        if (rowCount === 0) await this.q(`CREATE SCHEMA ${quoteIdent(this.schema)}`, [], client);
      }
      await this.q('CREATE TABLE IF NOT EXISTS reaper_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)', [], client);
      const { rows } = await this.q<{ v: number | null }>('SELECT max(version) AS v FROM reaper_migrations', [], client);
      const current = rows[0]?.v ?? 0;
      if (current > latest) throw schemaTooNew(this.description, current, latest);
      for (const migration of POSTGRES_MIGRATIONS) {
        if (migration.version <= current) continue;
        await this.q(migration.sql, [], client);
        await this.q(`INSERT INTO reaper_migrations (version, applied_at) VALUES ($1, ${CLOCK})`, [migration.version], client);
      }
    });
  }

  async now(): Promise<number> {
    const { rows } = await this.q<{ now: string }>(`SELECT ${CLOCK} AS now`);
    return int(rows[0]!.now);
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
    const ttlMs = checkedTtl(options.ttlMs, this.bounds);
    assertDistinctKeys(keys);
    if (keys.length === 0) return [];
    const tokens = keys.map(() => newLeaseToken());
    const ids = keys.map(() => newLeaseId());
    // The generation upsert locks each key's row until commit, so acquisitions of one key
    // at once are serialised and get consecutive generations; keys are taken in sorted
    // order, so two callers with overlapping keys cannot deadlock.
    const { rows } = await this.q(
      `${WITH_NOW},
       i AS (SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[]) AS i(key, lease_id, token_hash)),
       g AS (INSERT INTO lease_generations (key, generation) SELECT key, 1 FROM i ORDER BY key
             ON CONFLICT (key) DO UPDATE SET generation = lease_generations.generation + 1
             RETURNING key, generation)
       INSERT INTO leases (lease_id, key, holder, token_hash, generation, ttl_ms, acquired_at, renewed_at, expires_at)
       SELECT i.lease_id, i.key, $4, i.token_hash, g.generation, $5::bigint, c.now, c.now, c.now + $5::bigint FROM c, i JOIN g ON g.key = i.key
       RETURNING ${LEASE_COLS}`,
      [keys.map(utf8), ids, tokens.map(hashToken), options.holder, ttlMs],
    );
    const byId = new Map(rows.map((r) => [String(r.lease_id), toLease(textRow(r))]));
    return ids.map((id, n) => ({ ...byId.get(id)!, token: tokens[n]! }));
  }

  async renewLease(leaseId: string, options: { ttlMs?: number; holder?: string } = {}): Promise<Lease> {
    const [outcome] = await this.renewLeases([leaseId], options);
    if (!outcome!.lease) throw new LeaseLostError(leaseId, outcome!.lost!);
    return outcome!.lease;
  }

  async renewLeases(leaseIds: readonly string[], options: { ttlMs?: number; holder?: string } = {}): Promise<RenewOutcome[]> {
    if (leaseIds.length === 0) return [];
    const ttl = options.ttlMs === undefined ? null : checkedTtl(options.ttlMs, this.bounds);
    const outcomes: RenewOutcome[] = [];
    for (const ids of chunk(leaseIds, ARRAY_CHUNK)) {
      // One statement renews what is still live (by the server clock) and counts this
      // minute's renewal stats; each requested id counts once per occurrence, as one
      // renewLease call each would. Only the ids that did not come back are looked up
      // again, to say why: the common tick, where every lease renews, is one UPDATE.
      const { rows } = await this.q(
        `${WITH_NOW},
         u AS (UPDATE leases l
                  SET renewed_at = c.now, ttl_ms = COALESCE($2::bigint, l.ttl_ms), expires_at = c.now + COALESCE($2::bigint, l.ttl_ms)
                 FROM c
                WHERE l.lease_id = ANY($1::text[]) AND l.released_at IS NULL AND l.expires_at > c.now
                  AND ($3::text IS NULL OR l.holder = $3::text)
            RETURNING ${LEASE_COLS.split(', ').map((col) => `l.${col}`).join(', ')}),
         n AS (SELECT count(*) AS ok FROM unnest($1::text[]) AS q(id) WHERE q.id IN (SELECT lease_id FROM u)),
         s AS (INSERT INTO lease_renewal_stats (bucket, ok, failed)
               SELECT floor(c.now / 60000.0)::bigint, n.ok, cardinality($1::text[]) - n.ok FROM c, n
               ON CONFLICT (bucket) DO UPDATE SET ok = lease_renewal_stats.ok + excluded.ok, failed = lease_renewal_stats.failed + excluded.failed)
         SELECT * FROM u`,
        [ids, ttl, options.holder ?? null],
      );
      const renewed = new Map<string, Lease>();
      for (const r of rows) renewed.set(String(r.lease_id), toLease(textRow(r)));
      const missing = [...new Set(ids.filter((id) => !renewed.has(id)))];
      const prior = new Map<string, { released_at: unknown; holder: string }>();
      if (missing.length > 0) {
        const found = await this.q(`SELECT lease_id, holder, released_at FROM leases WHERE lease_id = ANY($1::text[])`, [missing]);
        for (const r of found.rows) prior.set(String(r.lease_id), { released_at: r.released_at, holder: String(r.holder) });
      }
      for (const leaseId of ids) {
        const lease = renewed.get(leaseId);
        outcomes.push(lease ? { leaseId, lease } : { leaseId, lost: lostReason(prior.get(leaseId), options.holder) });
      }
    }
    return outcomes;
  }

  async releaseLease(leaseId: string, options: { holder?: string } = {}): Promise<void> {
    // The holder check is part of the UPDATE, so a release never ends someone else's
    // lease; the SELECT (which sees the row as before) says why nothing happened.
    const { rows } = await this.q<{ holder: string }>(
      `${WITH_NOW},
       u AS (UPDATE leases SET released_at = c.now, expires_at = LEAST(expires_at, c.now) FROM c
              WHERE lease_id = $1 AND released_at IS NULL AND ($2::text IS NULL OR holder = $2::text) RETURNING 1)
       SELECT holder FROM leases WHERE lease_id = $1`,
      [leaseId, options.holder ?? null],
    );
    if (rows.length === 0) throw new LeaseLostError(leaseId, 'not-found');
    if (options.holder !== undefined && rows[0]!.holder !== options.holder) throw new LeaseLostError(leaseId, 'not-holder');
  }

  async getLease(leaseId: string): Promise<Lease | null> {
    const { rows } = await this.q(`SELECT ${LEASE_COLS} FROM leases WHERE lease_id = $1`, [leaseId]);
    return rows[0] ? toLease(textRow(rows[0])) : null;
  }

  async verifyLeaseToken(leaseId: string, token: string): Promise<boolean> {
    const { rows } = await this.q<{ token_hash: string }>('SELECT token_hash FROM leases WHERE lease_id = $1', [leaseId]);
    return rows[0] ? tokenMatches(token, rows[0].token_hash) : false;
  }

  async listLeases(filter: { key?: string; includeInactive?: boolean; limit?: number } = {}): Promise<Lease[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.key !== undefined) {
      params.push(utf8(filter.key));
      where.push(`key = $${params.length}`);
    }
    if (!filter.includeInactive) where.push('released_at IS NULL AND expires_at > c.now');
    params.push(filter.limit ?? 1_000);
    const { rows } = await this.q(
      `${WITH_NOW} SELECT ${LEASE_COLS} FROM leases, c ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY key, acquired_at, generation LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => toLease(textRow(r)));
  }

  async liveKeys(keys: readonly string[]): Promise<Set<string>> {
    const live = new Set<string>();
    for (const part of chunk([...new Set(keys)], ARRAY_CHUNK)) {
      const { rows } = await this.q<{ key: Buffer }>(
        `SELECT DISTINCT key FROM leases WHERE key = ANY($1::bytea[]) AND released_at IS NULL AND expires_at > (SELECT ${CLOCK})`,
        [part.map(utf8)],
      );
      for (const r of rows) live.add(r.key.toString('utf8'));
    }
    return live;
  }

  async keysActiveSince(keys: readonly string[], sinceMs: number): Promise<Set<string>> {
    const active = new Set<string>();
    for (const part of chunk([...new Set(keys)], ARRAY_CHUNK)) {
      const { rows } = await this.q<{ key: Buffer }>(
        'SELECT DISTINCT key FROM leases WHERE key = ANY($1::bytea[]) AND (renewed_at >= $2::bigint OR acquired_at >= $2::bigint)',
        [part.map(utf8), Math.ceil(sinceMs)],
      );
      for (const r of rows) active.add(r.key.toString('utf8'));
    }
    return active;
  }

  async countLiveKeys(): Promise<number> {
    const { rows } = await this.q<{ n: string }>(`SELECT count(DISTINCT key) AS n FROM leases WHERE released_at IS NULL AND expires_at > (SELECT ${CLOCK})`);
    return int(rows[0]!.n);
  }

  async leaseStats(windowMs: number): Promise<LeaseStats> {
    const { rows } = await this.q(
      `${WITH_NOW},
       l AS (SELECT count(*) FILTER (WHERE leases.expires_at > c.now) AS active, count(*) FILTER (WHERE leases.expires_at <= c.now) AS expired
               FROM c, leases WHERE leases.released_at IS NULL),
       s AS (SELECT coalesce(sum(ok), 0) AS ok, coalesce(sum(failed), 0) AS failed
               FROM c, lease_renewal_stats WHERE bucket >= floor((c.now - $1::bigint) / 60000.0)::bigint)
       SELECT l.active, l.expired, s.ok, s.failed FROM l, s`,
      [Math.floor(windowMs)],
    );
    const r = rows[0]!;
    const ok = int(r.ok);
    const failed = int(r.failed);
    return {
      active: int(r.active),
      expired: int(r.expired),
      renewals: ok,
      renewalFailures: failed,
      renewalFailureRate: ok + failed === 0 ? 0 : failed / (ok + failed),
    };
  }

  async pruneLeases(olderThanMs: number): Promise<number> {
    const { rows } = await this.q<{ n: string }>(
      `${WITH_NOW},
       s AS (DELETE FROM lease_renewal_stats USING c WHERE bucket < floor((c.now - $1::bigint) / 60000.0)::bigint),
       d AS (DELETE FROM leases USING c
              WHERE COALESCE(released_at, expires_at) < c.now - $1::bigint AND expires_at < c.now - $1::bigint
                AND renewed_at < COALESCE((SELECT min(marked_at) FROM tombstones WHERE state IN ('marked', 'deleting')), 9223372036854775807)
             RETURNING 1)
       SELECT count(*) AS n FROM d`,
      [Math.floor(olderThanMs)],
    );
    return int(rows[0]!.n);
  }

  // ------------------------------------------------------------ runs, checkpoints, locks

  async startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean }): Promise<RunRecord> {
    const now = await this.now();
    const { rows } = await this.q(
      `INSERT INTO runs (run_id, kind, status, started_at, manifest_digest, execute) VALUES ($1, $2, 'running', $3, $4, $5) RETURNING ${RUN_COLS}`,
      [newRunId(now), input.kind, now, input.manifestDigest, input.execute],
    );
    return toRun(rows[0]!);
  }

  async finishRun(runId: string, input: { status: RunStatus; summary?: unknown; sourceCounts?: Record<string, number> | null; error?: string | null }): Promise<void> {
    await this.q(`UPDATE runs SET status = $1, finished_at = ${CLOCK}, summary = $2::json, source_counts = $3::json, error = $4 WHERE run_id = $5`, [
      input.status,
      input.summary === undefined ? null : JSON.stringify(input.summary),
      input.sourceCounts ? JSON.stringify(input.sourceCounts) : null,
      freeText(input.error),
      runId,
    ]);
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const { rows } = await this.q(`SELECT ${RUN_COLS} FROM runs WHERE run_id = $1`, [runId]);
    return rows[0] ? toRun(rows[0]) : null;
  }

  async listRuns(filter: { kind?: RunKind; limit?: number } = {}): Promise<RunRecord[]> {
    const { rows } = await this.q(
      `SELECT ${RUN_COLS} FROM runs WHERE ($1::text IS NULL OR kind = $1::text) ORDER BY started_at DESC, run_id DESC LIMIT $2`,
      [filter.kind ?? null, filter.limit ?? 20],
    );
    return rows.map(toRun);
  }

  async lastSourceCounts(kind: RunKind): Promise<Record<string, number> | null> {
    const { rows } = await this.q<{ source_counts: string }>(
      `SELECT source_counts::text AS source_counts FROM runs WHERE kind = $1 AND source_counts IS NOT NULL AND status IN ('ok', 'gate-failed') ORDER BY finished_at DESC LIMIT 1`,
      [kind],
    );
    return rows[0] ? (JSON.parse(rows[0].source_counts) as Record<string, number>) : null;
  }

  async saveCheckpoint(runId: string, resource: string, phase: string, cursor: string | null): Promise<void> {
    await this.q(
      `INSERT INTO checkpoints (run_id, resource, phase, cursor, updated_at) VALUES ($1, $2, $3, $4, ${CLOCK})
       ON CONFLICT (run_id, resource, phase) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
      [runId, resource, phase, utf8OrNull(cursor)],
    );
  }

  async loadCheckpoint(runId: string, resource: string, phase: string): Promise<string | null | undefined> {
    const { rows } = await this.q<{ cursor: Buffer | null }>('SELECT cursor FROM checkpoints WHERE run_id = $1 AND resource = $2 AND phase = $3', [runId, resource, phase]);
    if (rows.length === 0) return undefined;
    return rows[0]!.cursor === null ? null : rows[0]!.cursor.toString('utf8');
  }

  async acquireLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    // Atomic under concurrency: a competing insert waits for the first, then takes the
    // DO UPDATE branch, whose WHERE is re-checked against the committed winner, so
    // exactly one of two acquirers gets a free or expired lock.
    // (excluded.expires_at - ttl is this statement's reading of the clock.)
    const { rowCount } = await this.q(
      `${WITH_NOW}
       INSERT INTO resource_locks (resource, run_id, expires_at) SELECT $1, $2, c.now + $3::bigint FROM c
       ON CONFLICT (resource) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
       WHERE resource_locks.expires_at <= excluded.expires_at - $3::bigint OR resource_locks.run_id = excluded.run_id`,
      [resource, runId, Math.ceil(ttlMs)],
    );
    return rowCount === 1;
  }

  async refreshLock(resource: string, runId: string, ttlMs: number): Promise<boolean> {
    const { rowCount } = await this.q(`UPDATE resource_locks SET expires_at = ${CLOCK} + $3::bigint WHERE resource = $1 AND run_id = $2`, [
      resource,
      runId,
      Math.ceil(ttlMs),
    ]);
    return rowCount === 1;
  }

  async releaseLock(resource: string, runId: string): Promise<void> {
    await this.q('DELETE FROM resource_locks WHERE resource = $1 AND run_id = $2', [resource, runId]);
  }

  // ------------------------------------------------------------ tombstones and journal

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
    if (items.length === 0) return 0;
    const insert = async (client: Queryable, part: readonly NewTombstone[]): Promise<number> => {
      // Rows that would be a second active tombstone for a resource (already in the
      // table, or earlier in this batch) are skipped by the partial unique index.
      const { rowCount } = await this.q(
        `${WITH_NOW}
         INSERT INTO tombstones (resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at)
         SELECT t.resource, t.resource_id, t.fingerprint, t.owner, t.owner_value, t.reason, t.bytes, $1, c.now, 'marked', c.now
           FROM c, unnest($2::text[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::text[], $8::bigint[])
                WITH ORDINALITY AS t(resource, resource_id, fingerprint, owner, owner_value, reason, bytes, ord)
          ORDER BY t.ord
         ON CONFLICT (resource, sha256(resource_id)) WHERE state IN ('marked', 'deleting') DO NOTHING`,
        [
          runId,
          part.map((t) => t.resource),
          part.map((t) => utf8(t.resourceId)),
          part.map((t) => t.fingerprint),
          part.map((t) => utf8OrNull(t.owner)),
          part.map((t) => utf8OrNull(t.ownerValue)),
          part.map((t) => t.reason),
          part.map((t) => (t.bytes === null || t.bytes === undefined ? null : Math.round(t.bytes))),
        ],
        client,
      );
      return rowCount;
    };
    const parts = chunk(items, ARRAY_CHUNK);
    if (parts.length === 1) return insert(this.pool, parts[0]!);
    return this.tx(async (client) => {
      let inserted = 0;
      for (const part of parts) inserted += await insert(client, part);
      return inserted;
    });
  }

  async dueTombstones(resource: string, graceMs: number, afterId: number, limit: number): Promise<Tombstone[]> {
    const { rows } = await this.q(
      `SELECT ${TOMB_COLS} FROM tombstones
        WHERE resource = $1 AND state = 'marked' AND tombstone_id > $2 AND marked_at <= (SELECT ${CLOCK}) - $3::bigint
        ORDER BY tombstone_id LIMIT $4`,
      [resource, Math.floor(afterId), Math.ceil(graceMs), limit],
    );
    return rows.map((r) => toTombstone(textRow(r)));
  }

  async countDueTombstones(resource: string, graceMs: number): Promise<number> {
    const { rows } = await this.q(`SELECT count(*) AS n FROM tombstones WHERE resource = $1 AND state = 'marked' AND marked_at <= (SELECT ${CLOCK}) - $2::bigint`, [
      resource,
      Math.ceil(graceMs),
    ]);
    return int(rows[0]!.n);
  }

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Map<string, Tombstone>> {
    const out = new Map<string, Tombstone>();
    for (const part of chunk(resourceIds, ARRAY_CHUNK)) {
      const ids = part.map(utf8);
      const { rows } = await this.q(
        `SELECT ${TOMB_COLS} FROM tombstones
          WHERE resource = $1 AND state IN ('marked', 'deleting') AND sha256(resource_id) = ANY($2::bytea[]) AND resource_id = ANY($3::bytea[])`,
        [resource, ids.map(sha256), ids],
      );
      for (const r of rows) {
        const t = toTombstone(textRow(r));
        out.set(t.resourceId, t);
      }
    }
    return out;
  }

  async countTombstones(resource: string): Promise<{ marked: number; deleting: number; oldestMarkedAt: number | null }> {
    const { rows } = await this.q(
      `SELECT count(*) FILTER (WHERE state = 'marked') AS marked, count(*) FILTER (WHERE state = 'deleting') AS deleting, min(marked_at) AS oldest
         FROM tombstones WHERE resource = $1 AND state IN ('marked', 'deleting')`,
      [resource],
    );
    const r = rows[0]!;
    return { marked: int(r.marked), deleting: int(r.deleting), oldestMarkedAt: r.oldest === null ? null : int(r.oldest) };
  }

  async beginDeletes(runId: string, items: readonly { tombstoneId: number; evidence: unknown }[]): Promise<JournalEntry[]> {
    if (items.length === 0) return [];
    const evidence = items.map((item) => JSON.stringify(item.evidence ?? null));
    // One statement, so all or nothing: tombstones still `marked` move to `deleting`
    // and get their `intent` entry; anything else (already deleting, lifted, unknown)
    // is left alone. A concurrent caller waits on the row locks and then finds the
    // tombstones no longer marked, so each gets one intent at most.
    const { rows } = await this.q(
      `${WITH_NOW},
       i AS (SELECT DISTINCT ON (tombstone_id) tombstone_id, evidence, ord
               FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY AS i(tombstone_id, evidence, ord)
              ORDER BY tombstone_id, ord),
       m AS (UPDATE tombstones t SET state = 'deleting', updated_at = c.now, outcome_run_id = $1
               FROM c, i WHERE t.tombstone_id = i.tombstone_id AND t.state = 'marked'
             RETURNING t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, i.evidence, i.ord),
       j AS (INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, at)
             SELECT $1, m.tombstone_id, m.resource, m.resource_id, m.fingerprint, m.owner, m.reason, m.bytes, m.evidence::json, 'intent', c.now
               FROM m, c ORDER BY m.ord
             RETURNING ${JOURNAL_COLS})
       SELECT * FROM j ORDER BY journal_id`,
      [runId, items.map((item) => item.tombstoneId), evidence],
    );
    return rows.map((r) => toJournal(textRow(r)));
  }

  async finishDeletes(
    runId: string,
    results: readonly { journalId: number; outcome: Exclude<JournalOutcome, 'intent'>; error?: string | null; restoreHandle?: string | null }[],
  ): Promise<void> {
    if (results.length === 0) return;
    // One statement: each journal entry gets its outcome and its tombstone the state
    // that follows from it (a later result for the same entry wins).
    await this.q(
      `${WITH_NOW},
       r AS (SELECT DISTINCT ON (journal_id) journal_id, outcome, error, state, note, restore_handle
               FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                    WITH ORDINALITY AS r(journal_id, outcome, error, state, note, restore_handle, ord)
              ORDER BY journal_id, ord DESC),
       j AS (UPDATE journal SET outcome = r.outcome, error = r.error, at = c.now FROM c, r
              WHERE journal.journal_id = r.journal_id
             RETURNING journal.tombstone_id, r.state, r.note, r.restore_handle)
       UPDATE tombstones t SET state = j.state, note = j.note, restore_handle = COALESCE(j.restore_handle, t.restore_handle),
              outcome_run_id = $1, updated_at = c.now
         FROM j, c WHERE t.tombstone_id = j.tombstone_id`,
      [
        runId,
        results.map((r) => r.journalId),
        results.map((r) => r.outcome),
        results.map((r) => freeText(r.error)),
        results.map((r) => tombstoneStateFor(r.outcome)),
        results.map((r) => freeText(r.error ?? (r.outcome === 'changed' ? 'resource changed since it was marked' : null))),
        results.map((r) => r.restoreHandle ?? null),
      ],
    );
  }

  async pendingIntents(resource: string): Promise<JournalEntry[]> {
    const { rows } = await this.q(`SELECT ${JOURNAL_COLS} FROM journal WHERE resource = $1 AND outcome = 'intent' ORDER BY journal_id`, [resource]);
    return rows.map((r) => toJournal(textRow(r)));
  }

  async liftTombstones(runId: string, tombstoneIds: readonly number[], note: string): Promise<number> {
    if (tombstoneIds.length === 0) return 0;
    const { rowCount } = await this.q(
      `UPDATE tombstones SET state = 'lifted', note = $1, outcome_run_id = $2, updated_at = ${CLOCK}
        WHERE tombstone_id = ANY($3::bigint[]) AND state = 'marked'`,
      [freeText(note), runId, [...tombstoneIds]],
    );
    return rowCount;
  }

  async findTombstones(filter: { runId?: string; resource?: string; resourceId?: string; states?: readonly TombstoneState[]; limit?: number }): Promise<Tombstone[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.runId !== undefined) {
      const p = param(filter.runId);
      where.push(`(marked_run_id = ${p} OR outcome_run_id = ${p})`);
    }
    if (filter.resource !== undefined) where.push(`resource = ${param(filter.resource)}`);
    if (filter.resourceId !== undefined) {
      const id = utf8(filter.resourceId);
      where.push(`sha256(resource_id) = ${param(sha256(id))} AND resource_id = ${param(id)}`);
    }
    if (filter.states?.length) where.push(`state = ANY(${param([...filter.states])}::text[])`);
    const limit = param(filter.limit ?? 10_000);
    const { rows } = await this.q(`SELECT ${TOMB_COLS} FROM tombstones ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY tombstone_id LIMIT ${limit}`, params);
    return rows.map((r) => toTombstone(textRow(r)));
  }

  async setTombstoneState(tombstoneId: number, state: TombstoneState, note: string | null): Promise<void> {
    await this.q(`UPDATE tombstones SET state = $1, note = $2, updated_at = ${CLOCK} WHERE tombstone_id = $3`, [state, freeText(note), tombstoneId]);
  }

  async journal(filter: { runId?: string; resource?: string; limit?: number }): Promise<JournalEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.runId !== undefined) {
      params.push(filter.runId);
      where.push(`run_id = $${params.length}`);
    }
    if (filter.resource !== undefined) {
      params.push(filter.resource);
      where.push(`resource = $${params.length}`);
    }
    params.push(filter.limit ?? 10_000);
    const { rows } = await this.q(
      `SELECT ${JOURNAL_COLS} FROM journal ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY journal_id LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => toJournal(textRow(r)));
  }
}

/**
 * Take `?schema=NAME` off a PostgreSQL URL (pg would pass it to the server as an
 * unknown parameter) and check the name, which reaper quotes into SQL.
 */
export function splitSchema(url: string): { connectionString: string; schema: string | null } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BackendError(`the state store URL ${redact(url)} is not a valid URL`);
  }
  const schema = parsed.searchParams.get('schema');
  if (schema === null) return { connectionString: url, schema: null };
  if (!SCHEMA_NAME.test(schema)) {
    throw new BackendError(`the state store URL ${redact(url)}: schema "${schema}" is not a plain identifier (letters, digits, "_"; at most 63)`);
  }
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}
