/**
 * The `sql` liveness source against the real PostgreSQL and MariaDB: counts, batched
 * look-ups that return only the asked keys, bound keys, and errors that propagate
 * (the liveness view turns them into `unknown`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connections } from '../../src/backends/connections.js';
import { BackendError } from '../../src/errors.js';
import { openSqlSource } from '../../src/liveness/sql-source.js';
import { itWhere } from '../support/matrix.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';

type Kind = 'postgres' | 'mysql';

interface Fixture {
  kind: Kind;
  fresh(cleanups: (() => Promise<void>)[]): Promise<string>;
  /** Run setup statements on the test database. */
  run(url: string, statements: string[]): Promise<void>;
  ddl: string[];
  now: string;
  sleep: string;
}

const fixtures: Fixture[] = [
  {
    kind: 'postgres',
    fresh: freshPgDatabase,
    async run(url, statements) {
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        for (const sql of statements) await client.query(sql);
      } finally {
        await client.end();
      }
    },
    ddl: [
      'CREATE TABLE sessions (id text PRIMARY KEY, expires_at timestamptz NOT NULL)',
      'CREATE TABLE accounts (n bigint PRIMARY KEY)',
    ],
    now: 'now()',
    sleep: 'SELECT pg_sleep(2)::text',
  },
  {
    kind: 'mysql',
    fresh: freshMysqlDatabase,
    async run(url, statements) {
      const mysql = await import('mysql2/promise');
      const connection = await mysql.createConnection({ uri: url });
      try {
        for (const sql of statements) await connection.query(sql);
      } finally {
        await connection.end();
      }
    },
    ddl: [
      'CREATE TABLE sessions (id varchar(200) PRIMARY KEY, expires_at datetime NOT NULL)',
      'CREATE TABLE accounts (n bigint PRIMARY KEY)',
    ],
    now: 'NOW()',
    sleep: 'SELECT CAST(SLEEP(2) AS CHAR)',
  },
];

const NASTY = "x'); DROP TABLE sessions; --";

for (const f of fixtures) {
  describe.skipIf(!serviceAvailable(f.kind))(`sql source on ${f.kind}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(() => runCleanups(cleanups));

    async function setup(options: { statementTimeoutMs?: number } = {}) {
      const url = await f.fresh(cleanups);
      const live = Array.from({ length: 1500 }, (_, i) => `live-${i}`);
      const future = f.kind === 'postgres' ? "now() + interval '1 hour'" : 'NOW() + INTERVAL 1 HOUR';
      const past = f.kind === 'postgres' ? "now() - interval '1 hour'" : 'NOW() - INTERVAL 1 HOUR';
      const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
      await f.run(url, [
        ...f.ddl,
        `INSERT INTO sessions (id, expires_at) VALUES ${[...live, NASTY].map((k) => `(${quote(k)}, ${future})`).join(', ')}`,
        `INSERT INTO sessions (id, expires_at) VALUES ('expired-1', ${past}), ('expired-2', ${past})`,
        'INSERT INTO accounts (n) VALUES (42), (9007199254740993)',
      ]);
      const connections = new Connections({ reg: { kind: f.kind, name: 'reg', url, ...options } });
      cleanups.push(() => connections.close());
      const source = (query: string, index = 0) => openSqlSource({ connection: 'reg', query }, connections, index);
      return { live, source };
    }

    it('counts the live keys and looks up only the ones asked, in batches', async () => {
      const { live, source } = await setup();
      const sessions = await source(`SELECT id FROM sessions WHERE expires_at > ${f.now}`, 2);
      expect(sessions.name).toBe('sql:reg#2');
      expect(await sessions.count()).toBe(live.length + 1);

      const asked = [...live.filter((_, i) => i % 3 === 0), 'expired-1', 'never-seen', NASTY, 'live-7'];
      const expected = new Set([...live.filter((_, i) => i % 3 === 0), NASTY, 'live-7']);
      expect(await sessions.lookup(asked)).toEqual(expected);
      expect(await sessions.lookup([])).toEqual(new Set());
      expect(await sessions.lookup(["' OR '1'='1", 'expired-2'])).toEqual(new Set());
    });

    it('compares non-text key columns as text', async () => {
      const { source } = await setup();
      const accounts = await source('SELECT n FROM accounts');
      expect(await accounts.count()).toBe(2);
      expect(await accounts.lookup(['42', '9007199254740993', '9007199254740992', 'abc', '0'])).toEqual(new Set(['42', '9007199254740993']));
    });

    it('propagates errors: a broken query, more than one column, a statement timeout', async () => {
      const { source } = await setup({ statementTimeoutMs: 300 });
      const broken = await source('SELECT id FROM no_such_table');
      await expect(broken.count()).rejects.toThrow(BackendError);
      await expect(broken.lookup(['a'])).rejects.toThrow(/sql:reg#0: .*no_such_table/);

      const wide = await source('SELECT id, expires_at FROM sessions');
      await expect(wide.lookup(['live-1'])).rejects.toThrow(/returns 2 columns; it must return exactly one/);

      const slow = await source(f.sleep);
      await expect(slow.count()).rejects.toThrow(/statementTimeout/);
    });

    itWhere(f.kind === 'mysql')('treats a match under an inexact collation as an error, not as a dead key', async () => {
      const { source } = await setup();
      const sessions = await source(`SELECT id FROM sessions WHERE expires_at > ${f.now}`);
      // utf8mb4_general_ci calls 'LIVE-1' and 'live-1' equal; which asked key matched cannot be told.
      await expect(sessions.lookup(['LIVE-1'])).rejects.toThrow(/not one of the keys asked/);
      expect(await sessions.lookup(['live-1'])).toEqual(new Set(['live-1']));
    });
  });
}
