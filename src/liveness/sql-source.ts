/**
 * A liveness source that asks a registry table: the manifest's query on a postgres or
 * mysql connection returns one column of live keys, compared as text.
 *
 * - count(): `SELECT count(*) FROM (<query>) q` — for the registry-outage breaker.
 * - lookup(keys): only the requested keys that the query returns, in batches, so the
 *   registry is never read whole. PostgreSQL names the column with a derived-column
 *   alias (`AS q(k)`); MariaDB has none, so the column's name is learned once with
 *   `LIMIT 0`.
 *
 * Errors propagate (as BackendErrors); the liveness view turns them into `unknown`. So
 * does a server that calls a different spelling equal (a case-insensitive collation
 * returning 'abc' for 'ABC'): which requested key it matched cannot be told, so the
 * batch is not judged rather than judged dead.
 */
import type { Pool as PgPool } from 'pg';
import type { Pool as MysqlPool } from 'mysql2/promise';
import type { Connections } from '../backends/connections.js';
import { mysqlPool, mysqlQuery } from '../backends/mysql/mysql-pool.js';
import { pgQuery, postgresPool } from '../backends/postgres/pg-pool.js';
import { MAX_IDS_PER_STATEMENT, chunk, padList, placeholders, quoteIdentifier } from '../sql/text.js';
import { BackendError } from '../errors.js';
import type { LivenessSource } from './types.js';

export interface SqlSourceSpec {
  connection: string;
  query: string;
}

/** The two statements a dialect provides. */
interface KeyQueries {
  readonly batchSize: number;
  count(): Promise<number>;
  /** The keys among `keys` the query returns (as the server spells them). */
  lookup(keys: readonly string[]): Promise<string[]>;
  /** Any `limit` keys the query returns. */
  sample(limit: number): Promise<string[]>;
}

export class SqlSource implements LivenessSource {
  constructor(
    readonly name: string,
    private readonly queries: KeyQueries,
  ) {}

  async count(signal?: AbortSignal): Promise<number> {
    signal?.throwIfAborted();
    return this.queries.count();
  }

  async sample(limit: number, signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted();
    return this.queries.sample(Math.max(1, Math.floor(limit)));
  }

  async lookup(keys: readonly string[], signal?: AbortSignal): Promise<Set<string>> {
    const wanted = new Set(keys);
    const live = new Set<string>();
    for (const batch of chunk([...wanted], this.queries.batchSize)) {
      signal?.throwIfAborted();
      for (const key of await this.queries.lookup(batch)) {
        if (!wanted.has(key)) {
          throw new BackendError(
            `${this.name}: the query matched ${JSON.stringify(key)}, which is not one of the keys asked; the comparison is not exact (a case- or accent-insensitive collation, trailing spaces); make the query return keys that compare exactly, e.g. with a binary collation`,
          );
        }
        live.add(key);
      }
    }
    return live;
  }
}

/** The source for `owners: [{ sql: { connection, query } }]`, the `index`-th entry of the list. */
export async function openSqlSource(spec: SqlSourceSpec, connections: Connections, index: number): Promise<SqlSource> {
  const name = `sql:${spec.connection}#${index}`;
  const kind = connections.spec(spec.connection).kind;
  if (kind === 'postgres') return new SqlSource(name, postgresKeys(await postgresPool(connections, spec.connection), spec.query, name));
  if (kind === 'mysql') return new SqlSource(name, mysqlKeys(await mysqlPool(connections, spec.connection), spec.query, name));
  throw new BackendError(`${name}: connection "${spec.connection}" is ${kind}; an sql source needs postgres or mysql`);
}

function oneColumn(name: string, count: number): void {
  if (count !== 1) throw new BackendError(`${name}: the query returns ${count} columns; it must return exactly one column of live keys`);
}

function postgresKeys(pool: PgPool, query: string, name: string): KeyQueries {
  let checked: Promise<void> | null = null;
  const check = () =>
    (checked ??= pgQuery(pool, name, `SELECT * FROM (${query}) AS reaper_q LIMIT 0`).then(
      (result) => oneColumn(name, result.fields.length),
      (error: unknown) => {
        checked = null;
        throw error;
      },
    ));
  return {
    batchSize: 5_000,
    async count() {
      await check();
      const { rows } = await pgQuery<{ n: string }>(pool, name, `SELECT count(*) AS n FROM (${query}) AS reaper_q`);
      return Number(rows[0]?.n ?? 0);
    },
    async lookup(keys) {
      await check();
      const { rows } = await pgQuery<{ k: string }>(
        pool,
        name,
        `SELECT reaper_q.reaper_key::text AS k FROM (${query}) AS reaper_q(reaper_key) WHERE reaper_q.reaper_key::text = ANY($1::text[])`,
        [keys],
      );
      return rows.map((row) => row.k);
    },
    async sample(limit) {
      await check();
      const { rows } = await pgQuery<{ k: string | null }>(pool, name, `SELECT reaper_q.reaper_key::text AS k FROM (${query}) AS reaper_q(reaper_key) LIMIT ${limit}`);
      return rows.flatMap((row) => (row.k === null ? [] : [row.k]));
    },
  };
}

/** MySQL field types compared as strings directly (the column's own collation, its index usable). */
const MYSQL_STRING_FIELDS = new Set([15, 247, 248, 249, 250, 251, 252, 253, 254]);

function mysqlKeys(pool: MysqlPool, query: string, name: string): KeyQueries {
  let shape: Promise<{ key: string }> | null = null;
  const learn = () =>
    (shape ??= mysqlQuery(pool, name, `SELECT * FROM (${query}) AS reaper_q LIMIT 0`).then(
      ({ fields }) => {
        oneColumn(name, fields.length);
        const field = fields[0]!;
        const column = `reaper_q.${quoteIdentifier('mysql', field.name)}`;
        return { key: MYSQL_STRING_FIELDS.has(field.type ?? field.columnType ?? -1) ? column : `CAST(${column} AS CHAR)` };
      },
      (error: unknown) => {
        shape = null;
        throw error;
      },
    ));
  return {
    batchSize: MAX_IDS_PER_STATEMENT,
    async count() {
      await learn();
      const { rows } = await mysqlQuery<{ n: string | number }>(pool, name, `SELECT COUNT(*) AS n FROM (${query}) AS reaper_q`);
      return Number(rows[0]?.n ?? 0);
    },
    async lookup(keys) {
      const { key } = await learn();
      const padded = padList(keys);
      const { rows } = await mysqlQuery<{ k: string | null }>(
        pool,
        name,
        `SELECT CAST(${key} AS CHAR) AS k FROM (${query}) AS reaper_q WHERE ${key} IN (${placeholders('?', padded.length)})`,
        padded,
      );
      return rows.flatMap((row) => (row.k === null ? [] : [row.k]));
    },
    async sample(limit) {
      const { key } = await learn();
      const { rows } = await mysqlQuery<{ k: string | null }>(pool, name, `SELECT CAST(${key} AS CHAR) AS k FROM (${query}) AS reaper_q LIMIT ${limit}`);
      return rows.flatMap((row) => (row.k === null ? [] : [row.k]));
    },
  };
}
