/**
 * The PostgreSQL state store: the shared store for production and multi-host
 * deployments, over a `pg` pool.
 *
 * Every time it records or compares is the server's `clock_timestamp()`, read once per
 * statement (the `c` CTE), so all hosts of a deployment judge expiry and grace by one
 * clock. The operations this driver keeps are each a single statement, which makes them
 * atomic without an explicit transaction: acquiring a lease bumps the key's fencing
 * generation and inserts the lease together; renewing many leases and counting the
 * outcome is one statement; the write-ahead `beginBatch` writes the batch and moves its
 * tombstones together.
 */
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { BackendError, redact } from '../../errors.js';
import { chunk } from '../../sql/text.js';
import { acquiredLeases, claimGrant, newLeases, toBatch, toLease, toTombstone, type HeldClaims, type Row } from '../common.js';
import { migrated, StoreCore, type FinishedItem, type Param, type Query, type RenewFindings, type StoreDriver } from '../core.js';
import { ServerDriver, serverDeadline, sha256, textRow, utf8, utf8OrNull, type ServerDeadline, type ServerDialect, type ServerStoreOptions } from '../server.js';
import type { AcquiredLease, Lease, NewTombstone, SweepBatch, Tombstone } from '../types.js';
import { DeadlineError } from '../../util/deadline.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';

/** The server's clock in ms since the epoch (truncated, like the SQLite store). */
const CLOCK = `(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint`;
/** One reading of the clock for a whole statement: `WITH c AS (…)`, then `c.now`. */
const WITH_NOW = `WITH c AS (SELECT ${CLOCK} AS now)`;

const LEASE_COLS = 'lease_id, key, holder, generation, ttl_ms, acquired_at, renewed_at, expires_at, released_at';
const COLUMNS = {
  leases: LEASE_COLS,
  runs: 'run_id, kind, status, started_at, finished_at, manifest_digest, execute, summary::text AS summary, source_counts::text AS source_counts, error, heartbeat_at, alive_until, job, shard',
  tombstones: 'tombstone_id, resource, resource_id, fingerprint, owner, owner_value, reason, bytes, marked_run_id, marked_at, state, updated_at, outcome_run_id, note, restore_handle, mark_confirmed_at',
  journal: 'journal_id, batch_id, run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence::text AS evidence, outcome, error, at',
  batches: 'batch_id, run_id, resource, evidence::text AS evidence, state, created_at, finished_at',
  derived: `NULL::bigint AS journal_id, t.batch_id, b.run_id, t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes,
            b.evidence::text AS evidence, CASE WHEN t.state = 'deleting' THEN 'intent' ELSE 'deleted' END AS outcome, NULL::text AS error, t.updated_at AS at`,
};

/** Namespace of reaper's advisory locks (the second key is the schema's hash). */
const MIGRATION_LOCK = 0x52_45_41_50; // "REAP"
/** Ids per array parameter: large enough for one round trip per batch, small enough to plan well. */
const ARRAY_CHUNK = 5_000;
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export type PostgresStateStoreOptions = ServerStoreOptions;

/** A server that saw its client vanish mid-transaction ends the session after this long (at least), freeing its locks. */
const MIN_IDLE_IN_TRANSACTION_MS = 10_000;

type Queryable = Pick<PoolClient, 'query'>;

/** `text` cannot hold NUL; free-text notes and errors lose it rather than fail the write. */
const freeText = (s: string | null | undefined): string | null => (s === null || s === undefined ? null : s.replaceAll('\u0000', '\uFFFD'));
/** pg's client-side query_timeout fired: the statement has no answer yet. */
export function missedDeadline(error: unknown): boolean {
  const cause = error instanceof BackendError ? error.cause : error;
  return cause instanceof DeadlineError || (cause instanceof Error && cause.message === 'Query read timeout');
}
const int = (v: unknown): number => Number(v);

/** How each kind of parameter is cast and bound. */
const CAST: Record<Param['k'], string> = { int: 'bigint', id: 'bytea', name: 'text', free: 'text', json: 'json', bool: 'boolean' };
const bind = (p: Param): unknown => (p.k === 'id' ? utf8OrNull(p.v as string | null) : p.k === 'free' ? freeText(p.v as string | null) : p.v);

/** A shared statement in pg's terms: `$n::type` for each `?`, the clock read once in a `c` CTE. */
function render(sql: string, params: readonly Param[]): { text: string; values: unknown[] } {
  let n = 0;
  const text = sql.replace(/\?/g, () => `$${n + 1}::${CAST[params[n++]!.k]}`);
  return { text: text.includes('{now}') ? `${WITH_NOW} ${text.replaceAll('{now}', '(SELECT now FROM c)')}` : text, values: params.map(bind) };
}

const POSTGRES: ServerDialect = { dialect: 'postgres', migrations: POSTGRES_MIGRATIONS, columns: COLUMNS, server: 'PostgreSQL', defaultPort: 5432 };

class PostgresDriver extends ServerDriver<Pool> implements StoreDriver {
  constructor(
    pool: Pool,
    url: string,
    /** The schema named by `?schema=`, or null for the connection's default search path. */
    private readonly schema: string | null,
    deadline: ServerDeadline,
    /** pg's own identifier escaper. */
    readonly quote: (identifier: string) => string,
  ) {
    super(pool, url, POSTGRES, deadline);
  }

  readonly query: Query = async (sql, params = []) => {
    const { text, values } = render(sql, params);
    const { rows, rowCount } = await this.q(text, values);
    return { rows: rows.map(textRow), count: rowCount };
  };

  upsert(conflict: readonly string[], set: readonly string[]): string {
    return `ON CONFLICT (${conflict.join(', ')}) DO UPDATE SET ${set.map((c) => `${c} = excluded.${c}`).join(', ')}`;
  }

  resourceIdIs(resourceId: string): { sql: string; params: Param[] } {
    // sha256(resource_id) is what the unique index holds; the id itself is compared as well.
    return { sql: 'sha256(resource_id) = sha256(?) AND resource_id = ?', params: [{ k: 'id', v: resourceId }, { k: 'id', v: resourceId }] };
  }

  async migrationLock<T>(fn: (q: Query, exec: (sql: string) => Promise<void>) => Promise<T>): Promise<T> {
    return this.tx(async (client) => {
      // Transaction-scoped advisory lock: a second process migrating the same schema
      // waits here, then finds the work done. Released by COMMIT or ROLLBACK.
      await this.q(`SELECT pg_advisory_xact_lock($1::int, hashtext(coalesce($2::text, current_schema(), '')))`, [MIGRATION_LOCK, this.schema], client);
      if (this.schema) {
        // Create the schema only when missing: a role that may use an existing schema
        // need not be allowed to create one.
        const { rowCount } = await this.q('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema], client);
        if (rowCount === 0) await this.q(`CREATE SCHEMA ${this.quote(this.schema)}`, [], client);
      }
      const q: Query = async (sql, params = []) => {
        const { text, values } = render(sql, params);
        const { rows, rowCount } = await this.q(text, values, client);
        return { rows: rows.map(textRow), count: rowCount };
      };
      return fn(q, async (ddl) => void (await this.q(ddl, [], client)));
    });
  }

  private async q<R extends QueryResultRow = Row>(sql: string, params: unknown[] = [], on: Queryable = this.pool): Promise<{ rows: R[]; rowCount: number }> {
    try {
      const result = await on.query<R>(sql, params);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (error) {
      // pg says "Query read timeout"; say which deadline passed (the cause keeps pg's error).
      throw this.fail(missedDeadline(error) ? new DeadlineError('', this.timeoutMs, error) : error, 'a query');
    }
  }

  /** Run `fn` in one transaction; retried on deadlock or serialization failure. */
  private async tx<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.fail(error, 'connecting');
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

  async now(): Promise<number> {
    const { rows } = await this.q<{ now: string }>(`SELECT ${CLOCK} AS now`);
    return int(rows[0]!.now);
  }

  async acquireLeases(keys: readonly string[], holder: string, ttlMs: number): Promise<AcquiredLease[]> {
    const fresh = newLeases(keys);
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
      [keys.map(utf8), fresh.map((f) => f.leaseId), fresh.map((f) => f.tokenHash), holder, ttlMs],
    );
    return acquiredLeases(fresh, rows.map(textRow));
  }

  async renewLeases(leaseIds: readonly string[], ttl: number | null, holder: string | null): Promise<RenewFindings> {
    const found: RenewFindings = { renewed: new Map<string, Lease>(), prior: new Map() };
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
        [ids, ttl, holder],
      );
      for (const r of rows) found.renewed.set(String(r.lease_id), toLease(textRow(r)));
      const missing = [...new Set(ids.filter((id) => !found.renewed.has(id)))];
      if (missing.length > 0) {
        const { rows: prior } = await this.q(`SELECT lease_id, holder, released_at FROM leases WHERE lease_id = ANY($1::text[])`, [missing]);
        for (const r of prior) found.prior.set(String(r.lease_id), { released_at: r.released_at, holder: String(r.holder) });
      }
    }
    return found;
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

  async claimJob(job: string, resource: string, shard: string, need: number, cap: number): Promise<HeldClaims & { granted: boolean }> {
    // The job's row, locked FOR UPDATE until commit, serializes the claims of its shards;
    // the insert before it makes sure there is a row to lock (a racing insert waits, then does nothing).
    return this.tx(async (client) => {
      await this.q('INSERT INTO job_claims (job, resource, cap, claimed) VALUES ($1, $2, $3::bigint, 0) ON CONFLICT (job, resource) DO NOTHING', [job, resource, cap], client);
      const { rows } = await this.q<{ claimed: string; cap: string }>('SELECT claimed, cap FROM job_claims WHERE job = $1 AND resource = $2 FOR UPDATE', [job, resource], client);
      const mine = await this.q<{ granted: string }>('SELECT granted FROM job_claim_shards WHERE job = $1 AND resource = $2 AND shard = $3', [job, resource, shard], client);
      const held = { claimed: int(rows[0]!.claimed), cap: int(rows[0]!.cap), shardGranted: mine.rows[0] ? int(mine.rows[0].granted) : 0 };
      const { extra, cap: lowest, outcome } = claimGrant(held, need, cap);
      await this.q('UPDATE job_claims SET claimed = claimed + $1::bigint, cap = $2::bigint WHERE job = $3 AND resource = $4', [extra, lowest, job, resource], client);
      if (extra > 0) {
        await this.q(
          `INSERT INTO job_claim_shards (job, resource, shard, granted) VALUES ($1, $2, $3, $4::bigint)
           ON CONFLICT (job, resource, shard) DO UPDATE SET granted = job_claim_shards.granted + excluded.granted`,
          [job, resource, shard, extra],
          client,
        );
      }
      return outcome;
    });
  }

  async insertTombstones(runId: string, items: readonly NewTombstone[]): Promise<number> {
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

  async activeTombstones(resource: string, resourceIds: readonly string[]): Promise<Tombstone[]> {
    const out: Tombstone[] = [];
    for (const part of chunk(resourceIds, ARRAY_CHUNK)) {
      const ids = part.map(utf8);
      const { rows } = await this.q(
        `SELECT ${COLUMNS.tombstones} FROM tombstones
          WHERE resource = $1 AND state IN ('marked', 'deleting') AND sha256(resource_id) = ANY($2::bytea[]) AND resource_id = ANY($3::bytea[])`,
        [resource, ids.map(sha256), ids],
      );
      out.push(...rows.map((r) => toTombstone(textRow(r))));
    }
    return out;
  }

  async beginBatch(runId: string, resource: string, tombstoneIds: readonly number[], evidence: string): Promise<SweepBatch | null> {
    // One statement, so all or nothing: the batch row exists only when some tombstone
    // still `marked` moves to `deleting` naming it; anything else (already deleting,
    // lifted, of another type, unknown) is left alone. A concurrent caller waits on the
    // row locks and then finds the tombstones no longer marked; its empty batch is removed
    // (or, after a crash just then, closed by recovery).
    const { rows } = await this.q(
      `${WITH_NOW},
       b AS (INSERT INTO reap_batches (run_id, resource, evidence, state, created_at)
             SELECT $1, $2, $3::json, 'pending', c.now FROM c
              WHERE EXISTS (SELECT 1 FROM tombstones WHERE tombstone_id = ANY($4::bigint[]) AND state = 'marked' AND resource = $2)
             RETURNING batch_id, run_id, resource, state, created_at, finished_at),
       m AS (UPDATE tombstones t SET state = 'deleting', batch_id = b.batch_id, outcome_run_id = $1, updated_at = c.now
               FROM c, b WHERE t.tombstone_id = ANY($4::bigint[]) AND t.state = 'marked' AND t.resource = $2
             RETURNING t.*)
       SELECT b.batch_id AS b_batch_id, b.run_id AS b_run_id, b.resource AS b_resource, b.state AS b_state, b.created_at AS b_created_at, m.*
         FROM b LEFT JOIN m ON true ORDER BY m.tombstone_id`,
      [runId, resource, evidence, tombstoneIds],
    );
    if (rows.length === 0) return null;
    const first = rows[0]!;
    if (first.tombstone_id === null) {
      // Another sweep moved them between the check and the move: no batch.
      await this.q('DELETE FROM reap_batches WHERE batch_id = $1', [first.b_batch_id]);
      return null;
    }
    const batch = { batch_id: first.b_batch_id, run_id: first.b_run_id, resource: first.b_resource, evidence, state: first.b_state, created_at: first.b_created_at, finished_at: null };
    return toBatch(batch, rows.map((r) => toTombstone(textRow(r))));
  }

  async finishBatch(runId: string, batchId: number, results: readonly FinishedItem[]): Promise<void> {
    // One statement: the tombstones still deleting in this batch get their state, the
    // outcomes other than a plain delete their journal row, and the batch is done once
    // none of its tombstones is left deleting (the CTEs see the statement's snapshot, so
    // the ones updated here count as settled).
    await this.q(
      `${WITH_NOW},
       r AS (SELECT * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[])
                    AS r(tombstone_id, outcome, error, state, note, restore_handle, journaled)),
       u AS (UPDATE tombstones t SET state = r.state, note = r.note, restore_handle = COALESCE(r.restore_handle, t.restore_handle),
                    outcome_run_id = $1, updated_at = c.now
               FROM c, r WHERE t.tombstone_id = r.tombstone_id AND t.batch_id = $2 AND t.state = 'deleting'
             RETURNING t.tombstone_id, t.resource, t.resource_id, t.fingerprint, t.owner, t.reason, t.bytes, r.outcome, r.error, r.journaled),
       j AS (INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, error, at, batch_id)
             SELECT b.run_id, u.tombstone_id, u.resource, u.resource_id, u.fingerprint, u.owner, u.reason, u.bytes, b.evidence, u.outcome, u.error, c.now, b.batch_id
               FROM u, c, reap_batches b WHERE b.batch_id = $2 AND u.journaled ORDER BY u.tombstone_id
             RETURNING 1)
       UPDATE reap_batches SET state = 'done', finished_at = c.now FROM c
        WHERE batch_id = $2 AND state = 'pending'
          AND NOT EXISTS (SELECT 1 FROM tombstones x WHERE x.batch_id = $2 AND x.state = 'deleting' AND NOT EXISTS (SELECT 1 FROM u WHERE u.tombstone_id = x.tombstone_id))`,
      [
        runId,
        batchId,
        results.map((r) => r.tombstoneId),
        results.map((r) => r.outcome),
        results.map((r) => freeText(r.error)),
        results.map((r) => r.state),
        results.map((r) => freeText(r.note)),
        results.map((r) => r.restoreHandle),
        results.map((r) => r.journaled),
      ],
    );
  }
}

export class PostgresStateStore extends StoreCore {
  static async open(url: string, options: PostgresStateStoreOptions = {}): Promise<PostgresStateStore> {
    const { connectionString, schema } = splitSchema(url);
    const deadline = serverDeadline(options.timeoutMs);
    const { timeoutMs, sockets } = deadline;
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
      ...(schema ? { options: `-c search_path=${pg.escapeIdentifier(schema)}` } : {}),
    });
    // An idle connection that dies (server restart) must not crash the process; the
    // next query on the pool reports the problem instead.
    pool.on('error', () => {});
    return migrated(new PostgresStateStore(new PostgresDriver(pool, url, schema, deadline, pg.escapeIdentifier), options.leaseBounds));
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
