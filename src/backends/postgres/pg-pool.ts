/**
 * One pg Pool per postgres connection name, shared by the backend and the `sql` liveness
 * source, created on first use (the driver loads only then) and closed with the other
 * connections. Every statement goes through `pgQuery`: the extended protocol (so a
 * statement is exactly one statement and values are bound), errors as BackendErrors.
 */
import type { FieldDef, Pool, PoolClient, QueryConfig, QueryResultRow } from 'pg';
import { BackendError } from '../../errors.js';
import type { Connections } from '../connections.js';
import { sqlError } from '../../sql/errors.js';

const DEFAULT_POOL_SIZE = 4;
const CONNECT_TIMEOUT_MS = 10_000;

export function postgresPool(connections: Connections, name: string): Promise<Pool> {
  return connections.client<Pool>(
    name,
    async (spec) => {
      if (spec.kind !== 'postgres') throw new BackendError(`connection "${name}" is ${spec.kind}, not postgres`);
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({
        connectionString: spec.url,
        max: spec.poolSize ?? DEFAULT_POOL_SIZE,
        // Server-side, per session: a statement running longer is cancelled (SQLSTATE 57014).
        ...(spec.statementTimeoutMs ? { statement_timeout: spec.statementTimeoutMs } : {}),
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        idleTimeoutMillis: 10_000,
        allowExitOnIdle: true,
        fallback_application_name: 'reaper',
      });
      // An idle client that loses its server emits here; the next statement reports the failure.
      pool.on('error', () => {});
      return pool;
    },
    (pool) => pool.end(),
  );
}

export interface PgResult<R> {
  rows: R[];
  fields: FieldDef[];
  rowCount: number;
}

/** A pool, or a client holding a transaction. */
export type PgRunner = Pool | PoolClient;

/** Run one statement with bound values; `context` names the table or connection in errors. */
export async function pgQuery<R extends QueryResultRow>(runner: PgRunner, context: string, text: string, values: readonly unknown[] = []): Promise<PgResult<R>> {
  // queryMode 'extended' even without values: the server then refuses more than one statement.
  const config = { text, values: [...values], queryMode: 'extended' } as QueryConfig;
  try {
    const result = await runner.query<R>(config);
    return { rows: result.rows, fields: result.fields, rowCount: result.rowCount ?? 0 };
  } catch (error) {
    throw sqlError('postgres', context, error);
  }
}

/** Run `work` in a transaction on one client: committed if it returns, rolled back if it throws. */
export async function pgTransaction<T>(pool: Pool, context: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw sqlError('postgres', context, error);
  }
  let broken = false;
  try {
    await pgQuery(client, context, 'BEGIN');
    const result = await work(client);
    await pgQuery(client, `${context} (commit; the outcome is unknown until read back)`, 'COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    // A client that cannot roll back is not handed out again.
    client.release(broken);
  }
}
