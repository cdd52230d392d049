/**
 * A read-only look at a state store for `validate`: can it be reached, and is its schema
 * the one this reaper knows? Nothing is created or migrated: a SQLite file that does not
 * exist is reported as such (the first audit or reap creates it), and so are missing
 * tables or pending migrations (the first audit or reap applies them). A schema newer
 * than this build, or a server that cannot be reached, is an error.
 */
import { existsSync } from 'node:fs';
import { BackendError, redact } from '../errors.js';
import { schemaTooNew } from './common.js';
import { serverAddress, storeError } from '../sql/errors.js';

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
  const { splitSchema } = await import('./postgres/postgres-state-store.js');
  const known = POSTGRES_MIGRATIONS.map((m) => m.version);
  const { connectionString, schema } = splitSchema(url);
  const description = redact(url);
  const at = serverAddress(url, 'PostgreSQL', 5432);
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000, application_name: 'reaper validate' });
  client.on('error', () => {});
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
    throw storeError(error, description, at, 'reading the schema version');
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function inspectMysql(url: string): Promise<StateStoreInspection> {
  const { MYSQL_MIGRATIONS } = await import('./mysql/migrations.js');
  const known = MYSQL_MIGRATIONS.map((m) => m.version);
  const description = redact(url);
  const at = serverAddress(url, 'MySQL', 3306);
  const mysql = await import('mysql2/promise');
  let connection;
  try {
    connection = await mysql.createConnection({ uri: url, connectTimeout: 10_000 });
  } catch (error) {
    throw storeError(error, description, at, 'connecting');
  }
  try {
    const [tables] = await connection.query("SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'reaper_migrations'");
    if ((tables as unknown[]).length === 0) return judge(description, null, known);
    const [rows] = await connection.query('SELECT version AS v FROM reaper_migrations');
    return judge(description, versions(rows as { v: unknown }[]), known);
  } catch (error) {
    if (error instanceof BackendError) throw error;
    throw storeError(error, description, at, 'reading the schema version');
  } finally {
    await connection.end().catch(() => undefined);
  }
}
