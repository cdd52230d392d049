/**
 * A read-only look at a state store for `validate`: can it be reached, and is its schema
 * the one this reaper knows? Nothing is created or migrated: a SQLite file that does not
 * exist is reported as such (the first audit or reap creates it), and so are missing
 * tables or pending migrations (the first audit or reap applies them). A schema newer
 * than this build, or a server that cannot be reached, is an error. The look keeps the store's
 * deadline (the URL's `?timeout=`, default 30 s): a server that stops answering ends it with
 * an error, never a hang (docs/safety.md §19).
 */
import { existsSync } from 'node:fs';
import { BackendError, redact } from '../errors.js';
import { schemaTooNew } from './common.js';
import { mysqlUrlOptions } from '../sql/mysql-url.js';
import { serverAddress, storeError } from '../sql/errors.js';
import { DeadlineError } from '../util/deadline.js';
import { splitTimeout } from './open.js';
import { StoreSockets } from './sockets.js';

export interface StateStoreInspection {
  /**
   * `current` — reachable and migrated; `missing` — the SQLite file does not exist yet;
   * `empty` — reachable, without reaper's tables; `behind` — migrations are pending.
   */
  state: 'current' | 'missing' | 'empty' | 'behind';
  version: number;
  latest: number;
}

export async function inspectStateStore(url: string): Promise<StateStoreInspection> {
  if (url.startsWith('sqlite:')) return inspectSqlite(url.slice('sqlite:'.length));
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return inspectPostgres(url);
  if (url.startsWith('mysql://')) return inspectMysql(url);
  throw new BackendError(`unsupported state store URL ${redact(url)} (expected sqlite:PATH, postgres://… or mysql://…)`);
}

/** The store's state from the migrations it has applied (null: no migrations table) and those this build knows. */
function judge(description: string, applied: readonly number[] | null, known: readonly number[]): StateStoreInspection {
  const latest = Math.max(...known);
  if (applied === null) return { state: 'empty', version: 0, latest };
  const tooNew = schemaTooNew(description, applied, known);
  if (tooNew) throw tooNew;
  const version = Math.max(0, ...applied);
  return { state: known.every((v) => applied.includes(v)) ? 'current' : 'behind', version, latest };
}

const versions = (rows: readonly { v: unknown }[]): number[] => rows.map((r) => Number(r.v));

async function inspectSqlite(file: string): Promise<StateStoreInspection> {
  const { SQLITE_MIGRATIONS } = await import('./sqlite/migrations.js');
  const known = SQLITE_MIGRATIONS.map((m) => m.version);
  if (file === ':memory:' || !existsSync(file)) return { state: 'missing', version: 0, latest: Math.max(...known) };
  const { default: Database } = await import('better-sqlite3');
  const description = `sqlite:${file}`;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reaper_migrations'").get();
      const applied = table ? versions(db.prepare('SELECT version AS v FROM reaper_migrations').all() as { v: number }[]) : null;
      return judge(description, applied, known);
    } finally {
      db.close();
    }
  } catch (error) {
    if (error instanceof BackendError) throw error;
    throw storeError(error, description, { host: '', port: 0, server: 'SQLite' }, 'reading');
  }
}

async function inspectPostgres(url: string): Promise<StateStoreInspection> {
  const { POSTGRES_MIGRATIONS } = await import('./postgres/migrations.js');
  const { splitSchema, missedDeadline } = await import('./postgres/postgres-state-store.js');
  const known = POSTGRES_MIGRATIONS.map((m) => m.version);
  const { url: plain, timeoutMs } = splitTimeout(url, undefined);
  const { connectionString, schema } = splitSchema(plain);
  const description = redact(url);
  const at = serverAddress(url, 'PostgreSQL', 5432);
  const { default: pg } = await import('pg');
  const sockets = new StoreSockets(timeoutMs);
  const client = new pg.Client({
    connectionString,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    statement_timeout: timeoutMs,
    stream: sockets.socket,
    application_name: 'reaper validate',
  });
  client.on('error', () => {});
  // pg's client-side query_timeout: say which deadline passed, as the store does.
  const deadline = (error: unknown) => (missedDeadline(error) ? new DeadlineError('', timeoutMs, error) : error);
  try {
    try {
      await client.connect();
    } catch (error) {
      throw storeError(error, description, at, 'connecting');
    }
    try {
      const relation = schema === null ? 'reaper_migrations' : `"${schema.replace(/"/g, '""')}".reaper_migrations`;
      const found = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [relation]);
      if (!found.rows[0]?.t) return judge(description, null, known);
      const { rows } = await client.query<{ v: number }>(`SELECT version AS v FROM ${found.rows[0].t}`);
      return judge(description, versions(rows), known);
    } catch (error) {
      if (error instanceof BackendError) throw error;
      throw storeError(deadline(error), description, at, 'reading the schema version');
    }
  } finally {
    // A server that stopped answering never acknowledges the goodbye: cut it after the deadline.
    await sockets.close(() => client.end(), timeoutMs);
  }
}

async function inspectMysql(url: string): Promise<StateStoreInspection> {
  const { MYSQL_MIGRATIONS } = await import('./mysql/migrations.js');
  const known = MYSQL_MIGRATIONS.map((m) => m.version);
  const { url: plain, timeoutMs } = splitTimeout(url, undefined);
  const description = redact(url);
  const at = serverAddress(url, 'MySQL', 3306);
  const settings = mysqlUrlOptions(plain, `the state store URL ${description}`);
  const mysql = await import('mysql2/promise');
  const sockets = new StoreSockets(timeoutMs);
  let connection: import('mysql2/promise').Connection | undefined;
  // mysql2's per-query timeout says "Query inactivity timeout": say which deadline passed.
  const deadline = (error: unknown) => ((error as { code?: unknown })?.code === 'PROTOCOL_SEQUENCE_TIMEOUT' ? new DeadlineError('', timeoutMs, error) : error);
  try {
    try {
      connection = await mysql.createConnection({ ...settings, connectTimeout: timeoutMs, stream: sockets.connect });
    } catch (error) {
      throw storeError(error, description, at, 'connecting');
    }
    const c = connection;
    try {
      const [tables] = await c.query({ sql: "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'reaper_migrations'", timeout: timeoutMs });
      if ((tables as unknown[]).length === 0) return judge(description, null, known);
      const [rows] = await c.query({ sql: 'SELECT version AS v FROM reaper_migrations', timeout: timeoutMs });
      return judge(description, versions(rows as { v: unknown }[]), known);
    } catch (error) {
      if (error instanceof BackendError) throw error;
      throw storeError(deadline(error), description, at, 'reading the schema version');
    }
  } finally {
    await sockets.close(async () => void (await connection?.end()), timeoutMs);
  }
}
