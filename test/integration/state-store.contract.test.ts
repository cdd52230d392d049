/**
 * The StateStore contract (test/support/state-store-contract.ts) on the server dialects:
 * PostgreSQL and MariaDB, each test in a fresh database. The SQLite run is in the unit
 * project (test/unit/state-store.sqlite.test.ts).
 */
import type { StoreDialect } from '../../src/state/types.js';
import { stateStoreContract, type Row, type ServerPlace } from '../support/state-store-contract.js';
import { freshMysqlDatabase, freshPgDatabase, serviceAvailable } from './support/services.js';

// `drops` run only when the test passed (the contract's afterEach): the database is kept as evidence
// otherwise, without asking onTestFailed, which cannot follow a test across awaits when the dialects run
// side by side.
const noKeepHook = { keep: () => false };

const serverPlace: ServerPlace = async (dialect, drops, closers) => {
  let url: string;
  let raw: (sql: string, params?: unknown[]) => Promise<Row[]>;
  if (dialect === 'postgres') {
    url = await freshPgDatabase(drops, noKeepHook);
    const { default: pg } = await import('pg');
    let client: InstanceType<typeof pg.Client> | undefined;
    closers.push(async () => client?.end());
    raw = async (sql, params = []) => {
      if (!client) {
        client = new pg.Client({ connectionString: url });
        await client.connect();
      }
      let n = 0;
      return (await client.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as Row[];
    };
  } else {
    url = await freshMysqlDatabase(drops, noKeepHook);
    const mysql = await import('mysql2/promise');
    let conn: Awaited<ReturnType<typeof mysql.createConnection>> | undefined;
    closers.push(async () => conn?.end());
    raw = async (sql, params = []) => {
      conn ??= await mysql.createConnection({ uri: url });
      const [rows] = await conn.query(sql, params);
      return Array.isArray(rows) ? (rows as Row[]) : [];
    };
  }
  return { url, raw };
};

stateStoreContract(['postgres', 'mysql'], (dialect: StoreDialect) => serviceAvailable(dialect as 'postgres' | 'mysql'), serverPlace);
