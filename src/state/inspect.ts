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

function judge(description: string, version: number | null, latest: number): StateStoreInspection {
  if (version === null) return { state: 'empty', version: 0, latest };
  if (version > latest) throw schemaTooNew(description, version, latest);
  return { state: version === latest ? 'current' : 'behind', version, latest };
}

async function inspectSqlite(file: string): Promise<StateStoreInspection> {
  const { SQLITE_MIGRATIONS } = await import('./sqlite/migrations.js');
  const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;
  if (file === ':memory:' || !existsSync(file)) return { state: 'missing', version: 0, latest };
  const { default: Database } = await import('better-sqlite3');
  const description = `sqlite:${file}`;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reaper_migrations'").get();
      const version = table ? ((db.prepare('SELECT MAX(version) AS v FROM reaper_migrations').get() as { v: number | null }).v ?? 0) : null;
      return judge(description, version, latest);
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
  const latest = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;
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
    if (!found.rows[0]?.t) return judge(description, null, latest);
    const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${found.rows[0].t}`);
    return judge(description, rows[0]?.v ?? 0, latest);
  } catch (error) {
    if (error instanceof BackendError) throw error;
    throw storeError(error, description, at, 'reading the schema version');
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function inspectMysql(url: string): Promise<StateStoreInspection> {
  const { MYSQL_MIGRATIONS } = await import('./mysql/migrations.js');
  const latest = MYSQL_MIGRATIONS[MYSQL_MIGRATIONS.length - 1]!.version;
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
    if ((tables as unknown[]).length === 0) return judge(description, null, latest);
    const [rows] = await connection.query('SELECT MAX(version) AS v FROM reaper_migrations');
    const v = (rows as { v: number | string | null }[])[0]?.v;
    return judge(description, v === null || v === undefined ? 0 : Number(v), latest);
  } catch (error) {
    if (error instanceof BackendError) throw error;
    throw storeError(error, description, at, 'reading the schema version');
  } finally {
    await connection.end().catch(() => undefined);
  }
}
