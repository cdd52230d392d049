/**
 * SQL `where` fragments against the real PostgreSQL and MariaDB (docs/safety.md §18).
 *
 * Two independent guards, each tested on its own. The manifest refuses every fragment of
 * the hostile corpus at load (test/unit/manifest-sql-where.test.ts has the messages). And
 * were one to get past that check, the backends still build every statement so that it can
 * only narrow what an id- and fingerprint-keyed statement matches: here each hostile
 * fragment is handed to a backend unvalidated, as the resource's `where` and as a protect
 * `where`. The backend may refuse to open or to scan, but a delete removes only rows of
 * the items it was given whose fingerprint and owner still match (what the same delete
 * without any fragment would remove), a mark marks only such rows, a scan never repeats a
 * row, and a read returns only the ids asked for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connections } from '../../src/backends/connections.js';
import { MysqlBackend } from '../../src/backends/mysql/mysql-backend.js';
import { PostgresBackend } from '../../src/backends/postgres/postgres-backend.js';
import type { SqlBackend, SqlResourceSpec } from '../../src/backends/sql/sql-backend.js';
import { rawOwnerValue } from '../../src/engine/reap-plan.js';
import type { DeleteItem } from '../../src/backends/types.js';
import { BackendError } from '../../src/errors.js';
import { sqlFragmentProblem } from '../../src/manifest/sql-fragment.js';
import type { ProtectRule } from '../../src/manifest/types.js';
import { ACCEPTED, HOSTILE, type Dialect } from '../unit/support/hostile-sql.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';

interface Db {
  exec<R = Record<string, unknown>>(sql: string): Promise<R[]>;
  close(): Promise<void>;
}

interface Server {
  fresh(cleanups: (() => Promise<void>)[]): Promise<string>;
  admin(url: string): Promise<Db>;
  ddl(table: string): string;
  open(spec: SqlResourceSpec, connections: Connections): Promise<SqlBackend>;
}

const servers: Record<Dialect, Server> = {
  postgres: {
    fresh: freshPgDatabase,
    async admin(url) {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      return { exec: async (sql) => (await pool.query(sql)).rows, close: () => pool.end() };
    },
    ddl: (table) =>
      `CREATE TABLE ${table} (id bigint PRIMARY KEY, owner text, kind text NOT NULL DEFAULT 'item', keep boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now() - interval '1 hour', mark text, order_for text)`,
    open: (spec, connections) => PostgresBackend.open(spec, connections),
  },
  mysql: {
    fresh: freshMysqlDatabase,
    async admin(url) {
      const mysql = await import('mysql2/promise');
      const pool = mysql.createPool({ uri: url, connectionLimit: 2 });
      return {
        async exec(sql) {
          const [rows] = await pool.query(sql);
          return (Array.isArray(rows) ? rows : []) as never[];
        },
        close: () => pool.end(),
      };
    },
    ddl: (table) =>
      `CREATE TABLE ${table} (id bigint PRIMARY KEY, owner varchar(50), kind varchar(50) NOT NULL DEFAULT 'item', keep tinyint(1) NOT NULL DEFAULT 0,
        created_at datetime NOT NULL DEFAULT (NOW() - INTERVAL 1 HOUR), mark varchar(100), order_for varchar(10))`,
    open: (spec, connections) => MysqlBackend.open(spec, connections),
  },
};

const ROWS = 20;
const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

function spec(dialect: Dialect, table: string, fragment: { where?: string; protect?: string } = {}): SqlResourceSpec {
  const protect: ProtectRule[] = fragment.protect === undefined ? [] : [{ kind: 'where', sql: fragment.protect }];
  return {
    name: table,
    location: { kind: dialect, connection: 'db', table, id: 'id', createdAt: 'created_at', ...(fragment.where === undefined ? {} : { where: fragment.where }) },
    owners: [{ extractor: { from: 'column', name: 'owner' } }],
    minAgeMs: 0,
    graceMs: 0,
    batchSize: 100,
    maxDeletesPerRun: 10_000,
    maxDeleteFraction: 1,
    onExpired: 'report',
    protect,
    ageFrom: 'mtime',
    mark: { kind: 'column', column: 'mark' },
    line: null,
  };
}

/** Run `step`; a BackendError (the server refused the statement) is an allowed outcome, anything else is not. */
async function refusedOr<T>(step: () => Promise<T>): Promise<T | 'refused'> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof BackendError) return 'refused';
    throw error;
  }
}

for (const dialect of ['postgres', 'mysql'] as const) {
  const server = servers[dialect];
  describe.skipIf(!serviceAvailable(dialect))(`${dialect}: where fragments`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(() => runCleanups(cleanups));

    async function setup() {
      const url = await server.fresh(cleanups);
      const db = await server.admin(url);
      cleanups.push(() => db.close());
      const connections = new Connections({ db: { kind: dialect, name: 'db', url } });
      cleanups.push(() => connections.close());
      return { db, connections };
    }

    /** A table of ROWS rows, odd ids owned by "a", even ones by "nobody"; and the items a reap would send for `want`. */
    async function table(db: Db, connections: Connections, name: string) {
      await db.exec(server.ddl(name));
      await db.exec(`INSERT INTO ${name} (id, owner) VALUES ${ids(1, ROWS).map((id) => `(${id}, '${Number(id) % 2 ? 'a' : 'nobody'}')`).join(', ')}`);
      const plain = await server.open(spec(dialect, name), connections);
      const records = await plain.read(ids(1, ROWS));
      const items = (want: string[], stale: string): DeleteItem[] => [
        ...want.map((id) => ({ id, fingerprint: records.get(id)!.fingerprint, ownerValue: rawOwnerValue(records.get(id)!, spec(dialect, name)) })),
        { id: stale, fingerprint: 'not-the-fingerprint', ownerValue: rawOwnerValue(records.get(stale)!, spec(dialect, name)) },
      ];
      const state = async () => {
        const rows = await db.exec<{ id: string | number; mark: string | null }>(`SELECT id, mark FROM ${name} ORDER BY id`);
        return { present: new Set(rows.map((r) => String(r.id))), marked: new Set(rows.filter((r) => r.mark !== null).map((r) => String(r.id))) };
      };
      return { items, state };
    }

    it('every hostile fragment is refused at load, and unvalidated it only narrows keyed statements', async () => {
      const { db, connections } = await setup();
      const corpus = HOSTILE.filter((f) => f.dialects.includes(dialect));
      const violations: string[] = [];
      let n = 0;
      for (const fragment of corpus) {
        expect(sqlFragmentProblem(fragment.sql, dialect), fragment.label).not.toBeNull();
        for (const role of ['where', 'protect'] as const) {
          const name = `t${n++}`;
          const label = `${fragment.label} (as ${role})`;
          const { items, state } = await table(db, connections, name);
          const backend = await refusedOr(() => server.open(spec(dialect, name, { [role]: fragment.sql }), connections));
          if (backend === 'refused') {
            expect((await state()).present.size, label).toBe(ROWS);
            continue;
          }

          // A scan never repeats a row (an OR above the cursor would page forever: stop after a bound).
          await refusedOr(async () => {
            const seen = new Set<string>();
            for await (const page of backend.scan({ pageSize: 3 })) {
              const again = page.records.filter((r) => seen.has(r.id)).map((r) => r.id);
              if (again.length > 0) return violations.push(`${label}: scanned ${again.join(', ')} again`);
              for (const r of page.records) seen.add(r.id);
            }
          });
          const read = await refusedOr(() => backend.read(['1', '2', '3', '999']));
          const strays = read === 'refused' ? [] : [...read.keys()].filter((id) => !['1', '2', '3'].includes(id));
          if (strays.length > 0) violations.push(`${label}: read returned ${strays.join(', ')}`);

          // Marks and deletes: only the given rows, and only those still as they were read.
          await refusedOr(() => backend.mark!(items(ids(8, 13), '14'), 'run-1'));
          await refusedOr(() => backend.delete(items(ids(1, 6), '7')));
          const after = await state();
          const wrongMarks = [...after.marked].filter((id) => !ids(8, 13).includes(id));
          if (wrongMarks.length > 0) violations.push(`${label}: marked ${wrongMarks.join(', ')}`);
          const wrongDeletes = ids(7, ROWS).filter((id) => !after.present.has(id));
          if (wrongDeletes.length > 0) violations.push(`${label}: deleted ${wrongDeletes.join(', ')}`);
        }
      }
      expect(violations).toEqual([]);
    });

    it('a where that lifts an OR above the cursor stops the scan with an error instead of paging forever', async () => {
      const { db, connections } = await setup();
      await table(db, connections, 'items');
      const escape = HOSTILE.find((f) => f.label.startsWith('a wrapper-aware escape'))!.sql;
      const backend = await server.open(spec(dialect, 'items', { where: escape }), connections);
      const scanned: string[] = [];
      const scan = async () => {
        for await (const page of backend.scan({ pageSize: 4 })) scanned.push(...page.records.map((r) => r.id));
      };
      await expect(scan()).rejects.toThrow(/the scan met row "1" again after paging past it; the where fragment reaches outside its own expression/);
      expect(scanned).toEqual(['1', '2', '3', '4']);
    });

    it('unmark clears the marks of the listed rows inside the where, and only those', async () => {
      const { db, connections } = await setup();
      const { state } = await table(db, connections, 'items');
      await db.exec("UPDATE items SET mark = 'run-0' WHERE id <= 4");
      const backend = await server.open(spec(dialect, 'items', { where: "owner = 'a'" }), connections);
      await backend.unmark!(ids(1, 4).map((id) => ({ id, fingerprint: '' })));
      expect([...(await state()).marked].sort()).toEqual(['2', '4']);
    });

    it('every ordinary fragment compiles on the server and narrows the scan and the delete', async () => {
      const { db, connections } = await setup();
      const { items, state } = await table(db, connections, 'items');
      for (const fragment of ACCEPTED.filter((f) => f.dialects.includes(dialect))) {
        expect(sqlFragmentProblem(fragment.sql, dialect), fragment.label).toBeNull();
        const backend = await server.open(spec(dialect, 'items', { where: fragment.sql, protect: fragment.sql }), connections);
        for await (const page of backend.scan({ pageSize: 50 })) for (const r of page.records) expect(r.protectMatches, fragment.label).toEqual({ 0: true });
      }
      // A narrowing where: only owner "a" (odd ids) is in scope, so only those rows go.
      const narrow = await server.open(spec(dialect, 'items', { where: "owner = 'a'" }), connections);
      const scanned: string[] = [];
      for await (const page of narrow.scan({ pageSize: 4 })) scanned.push(...page.records.map((r) => r.id));
      expect(scanned).toEqual(ids(1, ROWS).filter((id) => Number(id) % 2 === 1));
      const results = await narrow.delete(items(ids(1, 6), '7'));
      expect(results.map((r) => `${r.id}:${r.outcome}`)).toEqual(['1:deleted', '2:changed', '3:deleted', '4:changed', '5:deleted', '6:changed', '7:changed']);
      expect([...(await state()).present].sort((a, b) => Number(a) - Number(b))).toEqual(ids(1, ROWS).filter((id) => !['1', '3', '5'].includes(id)));
    });

    // guard: a where is spliced into a statement only wrapped (`CASE WHEN (…) THEN 1 ELSE 0 END = 1`, scopeConditions
    // in sql-backend.ts), so an OR at its top level stays inside it. Spliced bare, this valid fragment's OR would rise
    // above the id list and the protect rules of the SELECT that picks what a delete may remove (the protected row 1
    // would go), and above the scan's cursor (the scan would meet its first rows again).
    it('a where with an OR at its top level narrows the delete and the scan, and a protect rule still holds', async () => {
      const { db, connections } = await setup();
      const { items, state } = await table(db, connections, 'items');
      const where = "owner = 'a' OR owner = 'x'";
      expect(sqlFragmentProblem(where, dialect)).toBeNull();
      const backend = await server.open(spec(dialect, 'items', { where, protect: 'id = 1' }), connections);
      const results = await backend.delete(items(ids(1, 6), '7'));
      expect(results.map((r) => `${r.id}:${r.outcome}`)).toEqual(['1:changed', '2:changed', '3:deleted', '4:changed', '5:deleted', '6:changed', '7:changed']);
      expect([...(await state()).present].sort((a, b) => Number(a) - Number(b))).toEqual(ids(1, ROWS).filter((id) => !['3', '5'].includes(id)));
      const scanned: string[] = [];
      for await (const page of backend.scan({ pageSize: 4 })) scanned.push(...page.records.map((r) => r.id));
      expect(scanned).toEqual(ids(1, ROWS).filter((id) => Number(id) % 2 === 1 && id !== '3' && id !== '5'));
    });
  });
}
