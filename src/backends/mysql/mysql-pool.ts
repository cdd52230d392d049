/**
 * One mysql2 pool per mysql connection name, shared by the backend and the `sql` liveness
 * source, created on first use (the driver loads only then) and closed with the other
 * connections.
 *
 * Statements run as server-side prepared statements (`execute`), so values are bound by
 * the server, never spliced into the text. Results come back as text where precision
 * matters (BIGINT, DECIMAL, dates). The connection URL is read by src/sql/mysql-url.ts
 * rather than handed to the driver, so that only known options apply (a URL cannot switch
 * on multipleStatements, for one).
 */
import type { FieldPacket, Pool, PoolConnection } from 'mysql2/promise';
import { BackendError } from '../../errors.js';
import type { Connections } from '../connections.js';
import { sqlError } from '../../sql/errors.js';
import { mysqlUrlOptions } from '../../sql/mysql-url.js';

const DEFAULT_POOL_SIZE = 4;
const CONNECT_TIMEOUT_MS = 10_000;
/** The callback-style connection the pool's `connection` event hands out. */
interface RawConnection {
  query(sql: string, values: unknown[], callback: (error: unknown) => void): void;
}

export function mysqlPool(connections: Connections, name: string): Promise<Pool> {
  return connections.client<Pool>(
    name,
    async (spec) => {
      if (spec.kind !== 'mysql') throw new BackendError(`connection "${name}" is ${spec.kind}, not mysql`);
      const options = mysqlUrlOptions(spec.url, `connection "${name}"`);
      const mysql = await import('mysql2/promise');
      const pool = mysql.createPool({
        ...options,
        connectionLimit: spec.poolSize ?? DEFAULT_POOL_SIZE,
        waitForConnections: true,
        queueLimit: 0,
        connectTimeout: CONNECT_TIMEOUT_MS,
        multipleStatements: false,
        supportBigNumbers: true,
        bigNumberStrings: true,
        decimalNumbers: false,
        dateStrings: true,
        enableKeepAlive: true,
      });
      const timeoutMs = spec.statementTimeoutMs;
      if (timeoutMs) {
        // Queued on each new connection before it is handed out. MariaDB knows
        // max_statement_time (seconds), MySQL max_execution_time (ms, SELECTs only);
        // each server rejects the other's variable, which is ignored.
        pool.on('connection', (connection) => {
          const raw = connection as unknown as RawConnection;
          raw.query('SET SESSION max_statement_time = ?', [timeoutMs / 1000], () => {});
          raw.query('SET SESSION max_execution_time = ?', [Math.ceil(timeoutMs)], () => {});
        });
      }
      return pool;
    },
    (pool) => pool.end(),
  );
}

/** A pool, or a connection holding a transaction. */
export type MysqlRunner = Pool | PoolConnection;

export interface MysqlResult<R> {
  rows: R[];
  fields: FieldPacket[];
  /** For INSERT, UPDATE and DELETE. */
  affectedRows: number;
}

/** A value bound to a statement. */
export type MysqlValue = string | number | null;

/** Run one prepared statement with bound values; `context` names the table or connection in errors. */
export async function mysqlQuery<R>(runner: MysqlRunner, context: string, sql: string, values: readonly MysqlValue[] = []): Promise<MysqlResult<R>> {
  try {
    const [result, fields] = await runner.execute(sql, [...values]);
    if (Array.isArray(result)) return { rows: result as R[], fields: fields ?? [], affectedRows: 0 };
    return { rows: [], fields: [], affectedRows: (result as { affectedRows?: number }).affectedRows ?? 0 };
  } catch (error) {
    throw sqlError('mysql', context, error);
  }
}

/** Run `work` in a transaction on one connection: committed if it returns, rolled back if it throws. */
export async function mysqlTransaction<T>(pool: Pool, context: string, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
  let connection: PoolConnection;
  try {
    connection = await pool.getConnection();
  } catch (error) {
    throw sqlError('mysql', context, error);
  }
  let usable = true;
  try {
    try {
      await connection.beginTransaction();
    } catch (error) {
      throw sqlError('mysql', context, error);
    }
    const result = await work(connection);
    try {
      await connection.commit();
    } catch (error) {
      throw sqlError('mysql', `${context} (commit; the outcome is unknown until read back)`, error);
    }
    return result;
  } catch (error) {
    try {
      await connection.rollback();
    } catch {
      usable = false;
    }
    throw error;
  } finally {
    if (usable) connection.release();
    else connection.destroy();
  }
}
