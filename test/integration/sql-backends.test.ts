/**
 * Contract suite for the SQL backends, run against the real PostgreSQL and MariaDB:
 * keyset paging and resumable cursors, records (owners, protect `where`, ages, sizes,
 * fingerprints), scope confinement, conditional deletes with their negative tests,
 * archive and restore, mark columns, and bound values.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Connections } from '../../src/backends/connections.js';
import { MysqlBackend } from '../../src/backends/mysql/mysql-backend.js';
import { PostgresBackend } from '../../src/backends/postgres/postgres-backend.js';
import type { SqlBackend, SqlResourceSpec } from '../../src/backends/sql/sql-backend.js';
import { rawOwnerValue } from '../../src/engine/reap-plan.js';
import type { DeleteItem, LiveRegistry, ScanPage } from '../../src/backends/types.js';
import type { ResourceRecord } from '../../src/engine/types.js';
import { BackendError } from '../../src/errors.js';
import type { SqlLocation } from '../../src/manifest/types.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';

type Kind = 'postgres' | 'mysql';
type Value = string | number | boolean | null;

interface Db {
  exec<R = Record<string, unknown>>(sql: string, values?: Value[]): Promise<R[]>;
  close(): Promise<void>;
}

interface Fixture {
  kind: Kind;
  fresh(cleanups: (() => Promise<void>)[]): Promise<string>;
  admin(url: string): Promise<Db>;
  types: { bigint: string; text: string; uuid: string };
  /** A binary id column: its type, SQL turning bound hex into it, and how reaper spells such an id. */
  binary: { type: string; fromHex: string; id(hex: string): string };
  /** The test table; every dialect has the same columns. */
  ddl(idType: string, table?: string): string;
  /** SQL turning a bound epoch-milliseconds value into the created_at column's type. */
  fromEpochMs: string;
  /** Schema (postgres) or database (mysql) the tables live in. */
  namespace(url: string): string;
  openBackend(spec: SqlResourceSpec, connections: Connections, registries?: readonly LiveRegistry[]): Promise<SqlBackend>;
}

const fixtures: Fixture[] = [
  {
    kind: 'postgres',
    fresh: freshPgDatabase,
    async admin(url) {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      // An idle connection killed by the cleanup's DROP DATABASE … WITH (FORCE) is expected; without
      // a listener its error would surface as an uncaught exception in whichever test runs next.
      pool.on('error', () => undefined);
      return {
        async exec(sql, values = []) {
          let n = 0;
          return (await pool.query(sql.replace(/\?/g, () => `$${++n}`), values)).rows;
        },
        close: () => pool.end(),
      };
    },
    types: { bigint: 'bigint', text: 'text', uuid: 'uuid' },
    binary: { type: 'bytea', fromHex: "decode(?, 'hex')", id: (hex) => `\\x${hex.toLowerCase()}` },
    ddl: (idType, table = 'items') =>
      `CREATE TABLE ${table} (id ${idType} PRIMARY KEY, owner text, kind text NOT NULL DEFAULT 'upload', keep boolean NOT NULL DEFAULT false,
        created_at timestamptz, version int NOT NULL DEFAULT 1, reaped_by text, payload text)`,
    fromEpochMs: 'to_timestamp(CAST(? AS float8) / 1000)',
    namespace: () => 'public',
    openBackend: (spec, connections, registries) => PostgresBackend.open(spec, connections, registries),
  },
  {
    kind: 'mysql',
    fresh: freshMysqlDatabase,
    async admin(url) {
      const mysql = await import('mysql2/promise');
      const pool = mysql.createPool({ uri: url, connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
      return {
        async exec(sql, values = []) {
          const [rows] = await pool.query(sql, values);
          return (Array.isArray(rows) ? rows : []) as never[];
        },
        close: () => pool.end(),
      };
    },
    types: { bigint: 'bigint', text: 'varchar(200)', uuid: 'char(36)' },
    binary: { type: 'varbinary(16)', fromHex: 'UNHEX(?)', id: (hex) => hex.toUpperCase() },
    ddl: (idType, table = 'items') =>
      `CREATE TABLE ${table} (id ${idType} PRIMARY KEY, owner varchar(200) NULL, kind varchar(50) NOT NULL DEFAULT 'upload', keep tinyint(1) NOT NULL DEFAULT 0,
        created_at datetime(3) NULL, version int NOT NULL DEFAULT 1, reaped_by varchar(100) NULL, payload text NULL)`,
    fromEpochMs: 'FROM_UNIXTIME(? / 1000)',
    namespace: (url) => new URL(url).pathname.slice(1),
    openBackend: (spec, connections) => MysqlBackend.open(spec, connections),
  },
];

interface Row {
  id: string | number;
  owner?: string | null;
  kind?: string;
  keep?: boolean;
  createdMs?: number | null;
  payload?: string | null;
}

const DAY = 86_400_000;
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5, 678);

async function insertRows(f: Fixture, db: Db, rows: readonly Row[], table = 'items'): Promise<void> {
  for (let i = 0; i < rows.length; i += 200) {
    const part = rows.slice(i, i + 200);
    const tuple = `(?, ?, ?, ?, ${f.fromEpochMs}, ?)`;
    const values = part.flatMap((r): Value[] => [
      String(r.id),
      r.owner === undefined ? 'owner-1' : r.owner,
      r.kind ?? 'upload',
      r.keep ?? false,
      r.createdMs === undefined ? T0 : r.createdMs,
      r.payload ?? null,
    ]);
    await db.exec(`INSERT INTO ${table} (id, owner, kind, keep, created_at, payload) VALUES ${part.map(() => tuple).join(', ')}`, values);
  }
}

function resourceSpec(kind: Kind, overrides: Partial<Omit<SqlResourceSpec, 'location'>> & { location?: Partial<SqlLocation> } = {}): SqlResourceSpec {
  const { location, ...rest } = overrides;
  return {
    name: 'items',
    location: { kind, connection: 'db', table: 'items', id: 'id', createdAt: 'created_at', ...location },
    owners: [{ extractor: { from: 'column', name: 'owner' } }],
    minAgeMs: 0,
    graceMs: 0,
    batchSize: 100,
    maxDeletesPerRun: 10_000,
    maxDeleteFraction: 1,
    onExpired: 'report',
    protect: [{ kind: 'where', sql: 'keep = TRUE' }],
    ageFrom: 'mtime',
    line: null,
    ...rest,
  };
}

async function pages(backend: SqlBackend, pageSize: number, cursor?: string | null): Promise<ScanPage[]> {
  const out: ScanPage[] = [];
  for await (const page of backend.scan({ pageSize, cursor: cursor ?? null })) out.push(page);
  return out;
}

const idsOf = (ps: readonly ScanPage[]) => ps.flatMap((p) => p.records.map((r) => r.id));

async function allRecords(backend: SqlBackend): Promise<Map<string, ResourceRecord>> {
  const out = new Map<string, ResourceRecord>();
  for (const page of await pages(backend, 1000)) for (const r of page.records) out.set(r.id, r);
  return out;
}

/** The delete item the reap engine would build from a record read at mark time. */
const itemOf = (record: ResourceRecord, spec: SqlResourceSpec): DeleteItem => ({ id: record.id, fingerprint: record.fingerprint, ownerValue: rawOwnerValue(record, spec) });

/** Every page but the last is full, the last has no cursor, the pages resume exactly. */
async function expectResumable(backend: SqlBackend, pageSize: number, expected: readonly string[]): Promise<void> {
  const ps = await pages(backend, pageSize);
  expect(idsOf(ps)).toEqual(expected);
  expect(ps.at(-1)!.cursor).toBeNull();
  ps.slice(0, -1).forEach((p) => {
    expect(p.records).toHaveLength(pageSize);
    expect(p.cursor).toBe(p.records.at(-1)!.id);
  });
  let seen = 0;
  for (const p of ps.slice(0, -1)) {
    seen += p.records.length;
    expect(idsOf(await pages(backend, pageSize, p.cursor))).toEqual(expected.slice(seen));
  }
}

for (const f of fixtures) {
  describe.skipIf(!serviceAvailable(f.kind))(`${f.kind} backend`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(() => runCleanups(cleanups));

    async function setup(idType = f.types.bigint) {
      const url = await f.fresh(cleanups);
      const db = await f.admin(url);
      cleanups.push(() => db.close());
      await db.exec(f.ddl(idType));
      const connections = new Connections({ db: { kind: f.kind, name: 'db', url } });
      cleanups.push(() => connections.close());
      const open = (overrides: Parameters<typeof resourceSpec>[1] = {}) => {
        const spec = resourceSpec(f.kind, overrides);
        return f.openBackend(spec, connections).then((backend) => ({ backend, spec }));
      };
      return { url, db, connections, open };
    }

    it('pages integer ids in numeric order and resumes exactly after any cursor', async () => {
      const { db, open } = await setup();
      // 2^53 + 1 does not survive a trip through a JavaScript number or a DOUBLE comparison.
      const ids = ['1', '2', '3', '9', '10', '11', '20', '100', '101', '9007199254740992', '9007199254740993'];
      await insertRows(f, db, ids.map((id) => ({ id })));
      const { backend } = await open();
      await expectResumable(backend, 4, ids);
      expect(idsOf(await pages(backend, 100))).toEqual(ids);
    });

    it('pages text ids, injection-shaped ones included, in the server order and resumes exactly', async () => {
      const { db, open } = await setup(f.types.text);
      const ids = ['alpha', 'beta', "x'); DROP TABLE items; --", 'with space', 'quote"d', 'back\\slash', 'zeta', 'ünïcode', '0', '10', '9'];
      await insertRows(f, db, ids.map((id) => ({ id })));
      const { backend } = await open();
      const order = (await db.exec<{ id: string }>('SELECT id FROM items ORDER BY id')).map((r) => r.id);
      expect(new Set(order)).toEqual(new Set(ids));
      await expectResumable(backend, 3, order);
      expect((await db.exec('SELECT id FROM items')).length).toBe(ids.length);
    });

    it('pages uuid / char ids and resumes exactly', async () => {
      const { db, open } = await setup(f.types.uuid);
      const ids = Array.from({ length: 13 }, () => randomUUID()).sort();
      await insertRows(f, db, ids.map((id) => ({ id })));
      const { backend } = await open();
      await expectResumable(backend, 5, ids);
    });

    it('pages binary ids, spelled as hex, and deletes by them', async () => {
      const { db, open } = await setup(f.binary.type);
      const hexes = ['00', '0001', '01', '7f', '80', 'ff', 'ff00'];
      for (const hex of hexes) await db.exec(`INSERT INTO items (id, owner, created_at) VALUES (${f.binary.fromHex}, 'o', ${f.fromEpochMs})`, [hex, T0]);
      const { backend, spec } = await open();
      const ids = hexes.map(f.binary.id);
      await expectResumable(backend, 3, ids);
      const record = (await backend.read([ids[4]!])).get(ids[4]!)!;
      expect(await backend.delete([itemOf(record, spec)])).toEqual([{ id: ids[4], outcome: 'deleted' }]);
      expect(idsOf(await pages(backend, 10))).toEqual(ids.filter((_, i) => i !== 4));
    });

    it('reads age, owner columns (NULL as null), protect matches, size and fingerprint into each record', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [
        { id: 1, owner: 'session-a', createdMs: T0, payload: 'x'.repeat(300) },
        { id: 2, owner: null, createdMs: null },
        { id: 3, owner: 'session-b', keep: true, createdMs: T0 - DAY },
      ]);
      const { backend } = await open({ protect: [{ kind: 'where', sql: 'keep = TRUE' }, { kind: 'where', sql: 'payload IS NOT NULL' }] });
      const records = await allRecords(backend);
      const [one, two, three] = [records.get('1')!, records.get('2')!, records.get('3')!];
      expect(one).toMatchObject({ id: '1', createdAtMs: T0, columns: { owner: 'session-a' }, protectMatches: { 0: false, 1: true } });
      expect(two).toMatchObject({ id: '2', createdAtMs: null, columns: { owner: null }, protectMatches: { 0: false, 1: false } });
      expect(three).toMatchObject({ id: '3', createdAtMs: T0 - DAY, columns: { owner: 'session-b' }, protectMatches: { 0: true, 1: false } });
      expect(one.bytes).toBeGreaterThan(300);
      expect(two.bytes).toBeGreaterThan(0);
      expect(one.bytes!).toBeGreaterThan(two.bytes!);
      for (const r of records.values()) expect(r.fingerprint).not.toBe('');
      expect(await backend.read(['3', '1', '404'])).toEqual(new Map([['3', three], ['1', one]]));
    });

    it('confines scan, read, mark and delete to the where', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [
        { id: 1, kind: 'upload' },
        { id: 2, kind: 'other' },
        { id: 3, kind: 'upload' },
      ]);
      const { backend: whole } = await open({ mark: { kind: 'column', column: 'reaped_by' } });
      const outside = (await whole.read(['2'])).get('2')!;
      const { backend, spec } = await open({ location: { where: "kind = 'upload'" }, mark: { kind: 'column', column: 'reaped_by' } });
      expect(idsOf(await pages(backend, 10))).toEqual(['1', '3']);
      expect((await backend.read(['1', '2'])).has('2')).toBe(false);
      expect(await backend.mark!([itemOf(outside, spec)], 'run-1')).toEqual(new Map());
      expect(await backend.delete([itemOf(outside, spec)])).toEqual([{ id: '2', outcome: 'changed' }]);
      expect(await db.exec('SELECT id, reaped_by FROM items WHERE id = 2')).toEqual([{ id: expect.anything(), reaped_by: null }]);
    });

    it('changes the fingerprint when the row is updated (row default and version column)', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [{ id: 1, owner: null }, { id: 2 }]);
      const { backend } = await open();
      const { backend: versioned } = await open({ location: { version: 'version' } });
      const before = await backend.read(['1', '2']);
      expect((await versioned.read(['1'])).get('1')!.fingerprint).toBe('1');
      await db.exec("UPDATE items SET owner = '' WHERE id = 1"); // NULL → '' must be a change
      await db.exec('UPDATE items SET version = version + 1 WHERE id = 2');
      const after = await backend.read(['1', '2']);
      expect(after.get('1')!.fingerprint).not.toBe(before.get('1')!.fingerprint);
      expect(after.get('2')!.fingerprint).not.toBe(before.get('2')!.fingerprint);
      expect((await versioned.read(['2'])).get('2')!.fingerprint).toBe('2');
    });

    it('deletes only rows unchanged since they were fingerprinted; reports changed, absent and deleted in order', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [
        { id: 1, owner: 'dead-1' },
        { id: 2, owner: 'dead-2' },
        { id: 3, owner: 'dead-3' },
        { id: 4, owner: 'dead-4' },
        { id: 5, owner: null },
        { id: 6, owner: 'dead-6', keep: true },
        { id: 7, owner: 'dead-7' },
      ]);
      const { backend, spec } = await open();
      const r = await allRecords(backend);
      await db.exec("UPDATE items SET payload = 'touched' WHERE id = 2"); // updated after fingerprinting
      await db.exec("UPDATE items SET owner = 'alive' WHERE id = 3"); // re-owned after fingerprinting
      await db.exec('DELETE FROM items WHERE id = 4'); // gone already
      const items = [
        itemOf(r.get('1')!, spec),
        itemOf(r.get('2')!, spec),
        itemOf(r.get('3')!, spec),
        itemOf(r.get('4')!, spec),
        itemOf(r.get('5')!, spec),
        itemOf(r.get('6')!, spec), // protected: never deleted even when asked
        { ...itemOf(r.get('7')!, spec), ownerValue: 'someone-else' }, // same fingerprint, other owner
        { id: '404', fingerprint: 'x', ownerValue: 'dead' },
      ];
      expect(await backend.delete(items)).toEqual([
        { id: '1', outcome: 'deleted' },
        { id: '2', outcome: 'changed' },
        { id: '3', outcome: 'changed' },
        { id: '4', outcome: 'absent' },
        { id: '5', outcome: 'deleted' },
        { id: '6', outcome: 'changed' },
        { id: '7', outcome: 'changed' },
        { id: '404', outcome: 'absent' },
      ]);
      expect((await db.exec<{ id: unknown }>('SELECT id FROM items ORDER BY id')).map((x) => String(x.id))).toEqual(['2', '3', '6', '7']);
    });

    it('re-checks the owner column even when a version column did not move', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [{ id: 1, owner: 'dead' }]);
      const { backend, spec } = await open({ location: { version: 'version' } });
      const record = (await backend.read(['1'])).get('1')!;
      await db.exec("UPDATE items SET owner = 'alive' WHERE id = 1"); // the application forgot to bump version
      expect((await backend.read(['1'])).get('1')!.fingerprint).toBe(record.fingerprint);
      expect(await backend.delete([itemOf(record, spec)])).toEqual([{ id: '1', outcome: 'changed' }]);
      expect(await db.exec('SELECT owner FROM items')).toEqual([{ owner: 'alive' }]);
    });

    it('§3: compares the owner byte for byte: a case-only rename, or NULL turned empty, is a change', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [
        { id: 1, owner: 'dead' },
        { id: 2, owner: null },
        { id: 3, owner: 'dead-3' },
      ]);
      // A version column that does not move: only the owner re-check can tell.
      const { backend, spec } = await open({ location: { version: 'version' } });
      const r = await allRecords(backend);
      await db.exec("UPDATE items SET owner = 'DEAD' WHERE id = 1"); // equal under a case-insensitive collation
      await db.exec("UPDATE items SET owner = '' WHERE id = 2");
      expect(await backend.delete([itemOf(r.get('1')!, spec), itemOf(r.get('2')!, spec), itemOf(r.get('3')!, spec)])).toEqual([
        { id: '1', outcome: 'changed' },
        { id: '2', outcome: 'changed' },
        { id: '3', outcome: 'deleted' },
      ]);
      expect((await db.exec<{ id: unknown }>('SELECT id FROM items ORDER BY id')).map((x) => String(x.id))).toEqual(['1', '2']);
    });

    it('refuses items without an owner value instead of deleting regardless of owner', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [{ id: 1 }]);
      const { backend } = await open();
      const record = (await backend.read(['1'])).get('1')!;
      await expect(backend.delete([{ id: '1', fingerprint: record.fingerprint }])).rejects.toThrow(/ownerValue/);
      expect(await db.exec('SELECT id FROM items')).toHaveLength(1);
    });

    it('deletes in chunks, keeps results in order, and treats a repeated id as already gone', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, Array.from({ length: 1203 }, (_, i) => ({ id: i + 1, owner: `o${i + 1}` })));
      const { backend, spec } = await open();
      const records = [...(await allRecords(backend)).values()].reverse();
      const items = records.map((rec) => itemOf(rec, spec));
      items.splice(600, 0, items[0]!);
      const results = await backend.delete(items);
      expect(results.map((x) => x.id)).toEqual(items.map((x) => x.id));
      expect(results.filter((x) => x.outcome === 'deleted')).toHaveLength(1203);
      expect(results[600]).toEqual({ id: items[0]!.id, outcome: 'absent' });
      expect(await db.exec('SELECT id FROM items')).toEqual([]);
    });

    it('binds injection-shaped ids and owner values', async () => {
      const { db, open } = await setup(f.types.text);
      const nasty = "x'); DROP TABLE items; --";
      await insertRows(f, db, [
        { id: nasty, owner: nasty },
        { id: 'keep-me', owner: "' OR 1=1 --" },
      ]);
      const { backend, spec } = await open();
      const records = await allRecords(backend);
      expect(records.get(nasty)!.columns).toEqual({ owner: nasty });
      expect(await backend.delete([itemOf(records.get(nasty)!, spec), { id: "' OR '1'='1", fingerprint: "' OR '1'='1", ownerValue: "' OR '1'='1" }])).toEqual([
        { id: nasty, outcome: 'deleted' },
        { id: "' OR '1'='1", outcome: 'absent' },
      ]);
      expect(await db.exec('SELECT id FROM items')).toEqual([{ id: 'keep-me' }]);
    });

    it('archives deleted rows in the same transaction and restores them', async () => {
      const { db, url, open } = await setup();
      await insertRows(f, db, [
        { id: 1, owner: 'dead', payload: 'precious' },
        { id: 2, owner: 'dead', payload: 'other' },
      ]);
      const { backend, spec } = await open({ archive: { table: 'items_archive' }, mark: { kind: 'column', column: 'reaped_by' } });
      const archive = `${f.namespace(url)}.items_archive`;
      expect(await backend.capabilities()).toEqual({ deleteMode: 'sql-conditional' });
      const original = await db.exec('SELECT * FROM items WHERE id = 1');
      const records = await allRecords(backend);
      const marked = await backend.mark!([itemOf(records.get('1')!, spec)], 'run-7');
      await db.exec("UPDATE items SET payload = 'changed' WHERE id = 2");

      expect(await backend.delete([{ ...itemOf(records.get('1')!, spec), fingerprint: marked.get('1')! }, itemOf(records.get('2')!, spec)])).toEqual([
        { id: '1', outcome: 'deleted', restoreHandle: archive },
        { id: '2', outcome: 'changed' },
      ]);
      const archived = await db.exec<{ payload: string; reaper_deleted_at: unknown }>('SELECT * FROM items_archive');
      expect(archived).toHaveLength(1);
      expect(archived[0]).toMatchObject({ payload: 'precious', reaped_by: 'run-7' });
      expect(archived[0]!.reaper_deleted_at).not.toBeNull();

      await expect(backend.restore!('1', 'elsewhere.items')).rejects.toThrow(/not this resource's archive/);
      await backend.restore!('1', archive);
      // Back as it was before it was marked: a restored row carries no tombstone mark.
      expect(await db.exec('SELECT * FROM items WHERE id = 1')).toEqual(original);
      expect(await db.exec('SELECT * FROM items_archive')).toEqual([]);
      await expect(backend.restore!('1', archive)).rejects.toThrow(/exists again/);

      // Archive the same id twice, then find it taken again before restoring.
      const again = (await backend.read(['1'])).get('1')!;
      expect((await backend.delete([itemOf(again, spec)]))[0]!.outcome).toBe('deleted');
      await expect(backend.restore!('1', archive)).resolves.toBeUndefined();
      const twice = (await backend.read(['1'])).get('1')!;
      expect((await backend.delete([itemOf(twice, spec)]))[0]!.outcome).toBe('deleted');
      await insertRows(f, db, [{ id: 1, owner: 'new-owner' }]);
      await expect(backend.restore!('1', archive)).rejects.toThrow(BackendError);
      await expect(backend.restore!('1', archive)).rejects.toThrow(/exists again/);
      await db.exec('DELETE FROM items WHERE id = 1');
      await backend.restore!('1', archive);
      expect(await db.exec('SELECT payload FROM items WHERE id = 1')).toEqual([{ payload: 'precious' }]);
      await expect(backend.restore!('99', archive)).rejects.toThrow(/no archived copy of row "99"/);
    });

    it('marks unchanged rows with the run id, returns their new fingerprints, and unmarks', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [{ id: 1 }, { id: 2 }, { id: 3 }]);
      const { backend, spec } = await open({ mark: { kind: 'column', column: 'reaped_by' } });
      expect(backend.mark).toBeDefined();
      expect(backend.unmark).toBeDefined();
      const before = await allRecords(backend);
      await db.exec("UPDATE items SET payload = 'touched' WHERE id = 3");

      const marked = await backend.mark!([...before.values()].map((r) => itemOf(r, spec)), 'run-42');
      expect([...marked.keys()].sort()).toEqual(['1', '2']);
      const now = await backend.read(['1', '2']);
      for (const id of ['1', '2']) {
        expect(marked.get(id)).toBe(now.get(id)!.fingerprint);
        expect(marked.get(id)).not.toBe(before.get(id)!.fingerprint);
      }
      expect(await db.exec('SELECT reaped_by FROM items ORDER BY id')).toEqual([{ reaped_by: 'run-42' }, { reaped_by: 'run-42' }, { reaped_by: null }]);

      // The fingerprint captured before marking no longer deletes; the one the mark returned does.
      expect(await backend.delete([itemOf(before.get('1')!, spec)])).toEqual([{ id: '1', outcome: 'changed' }]);
      expect(await backend.delete([{ ...itemOf(before.get('1')!, spec), fingerprint: marked.get('1')! }])).toEqual([{ id: '1', outcome: 'deleted' }]);

      await backend.unmark!([{ ...itemOf(before.get('2')!, spec), fingerprint: marked.get('2')! }]);
      expect(await db.exec('SELECT reaped_by FROM items WHERE id = 2')).toEqual([{ reaped_by: null }]);
    });

    it('offers no mark or restore when the manifest configures none', async () => {
      const { open } = await setup();
      const { backend } = await open();
      expect(await backend.capabilities()).toEqual({ deleteMode: 'sql-conditional' });
      expect(backend.mark).toBeUndefined();
      expect(backend.unmark).toBeUndefined();
      expect(backend.scope).toMatch(new RegExp(`^${f.kind} \\S+\\.items$`));
    });

    it('reports a missing table, a broken where and a non-unique id at open', async () => {
      const { db, open } = await setup();
      await db.exec(f.ddl('int', 'loose').replace('PRIMARY KEY', ''));
      await expect(open({ location: { table: 'nope' } })).rejects.toThrow(/table nope not found/);
      await expect(open({ location: { where: 'no_such_column = 1' } })).rejects.toThrow(/where and protect fragments.*no_such_column/s);
      await expect(open({ location: { table: 'loose' } })).rejects.toThrow(/not the primary key/);
      await expect(open({ location: { createdAt: 'owner' } })).rejects.toThrow(/createdAt column owner/);
    });

    it('stops a scan when its signal aborts', async () => {
      const { db, open } = await setup();
      await insertRows(f, db, [{ id: 1 }, { id: 2 }, { id: 3 }]);
      const { backend } = await open();
      const controller = new AbortController();
      const seen: string[] = [];
      await expect(
        (async () => {
          for await (const page of backend.scan({ pageSize: 1, signal: controller.signal })) {
            seen.push(...page.records.map((r) => r.id));
            controller.abort();
          }
        })(),
      ).rejects.toThrow(/abort/i);
      expect(seen).toEqual(['1']);
    });
  });
}

describe('SQL connection failures', () => {
  for (const kind of ['postgres', 'mysql'] as const) {
    it(`${kind}: a refused connection is a BackendError with a hint and no password`, async () => {
      const url = `${kind}://reaper:s3cr3t-pw@127.0.0.1:1/app`;
      const connections = new Connections({ db: { kind, name: 'db', url } });
      try {
        const open = kind === 'postgres' ? PostgresBackend.open : MysqlBackend.open;
        const error = await open(resourceSpec(kind), connections).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(BackendError);
        const message = (error as Error).message;
        expect(message).toMatch(/ECONNREFUSED/);
        expect(message).toMatch(/hint: .*start the/);
        expect(message).toContain(`connection "db"`);
        expect(message).not.toContain('s3cr3t-pw');
      } finally {
        await connections.close();
      }
    });
  }
});

// guard (docs/safety.md §2, atomic where the data allows): a liveness source that is a query on the resource's own
// connection is checked inside PostgreSQL's DELETE, so an owner registered after the last look keeps its rows.
// (MariaDB's single-table DELETE would run the query once per row: it checks at the last look only.)
for (const f of fixtures.filter((x) => x.kind === 'postgres')) {
  describe.skipIf(!serviceAvailable(f.kind))(`${f.kind} backend with a registry on its connection`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(() => runCleanups(cleanups));

    /** Rows of a dead owner, of one that comes back and of none; `owner` retypes the owner column, `keys` are registered after the scan. */
    async function registryCheck(owner: string | null, keys: string): Promise<void> {
      const url = await f.fresh(cleanups);
      const db = await f.admin(url);
      cleanups.push(() => db.close());
      await db.exec(f.ddl(f.types.bigint));
      if (owner !== null) await db.exec(f.kind === 'postgres' ? `ALTER TABLE items ALTER COLUMN owner TYPE ${owner}` : `ALTER TABLE items MODIFY owner ${owner}`);
      await db.exec(`CREATE TABLE live_sessions (session_key ${f.types.text} PRIMARY KEY)`);
      const connections = new Connections({ db: { kind: f.kind, name: 'db', url } });
      cleanups.push(() => connections.close());
      await insertRows(f, db, [
        { id: 1, owner: 'dead-1' },
        { id: 2, owner: 'back-2' },
        { id: 3, owner: null },
      ]);
      const spec = resourceSpec(f.kind, { owners: [{ extractor: { from: 'column', name: 'owner' }, keyTemplate: 'session:{value}' }] });
      const backend = await f.openBackend(spec, connections, [{ connection: 'db', query: 'SELECT session_key FROM live_sessions' }]);
      const records = await allRecords(backend);
      await db.exec(`INSERT INTO live_sessions VALUES ${keys}`);
      expect(await backend.delete([...records.values()].map((r) => itemOf(r, spec)))).toEqual([
        { id: '1', outcome: 'deleted' },
        { id: '2', outcome: 'changed' },
        { id: '3', outcome: 'deleted' },
      ]);
      expect((await db.exec<{ id: unknown }>('SELECT id FROM items ORDER BY id')).map((x) => String(x.id))).toEqual(['2']);
    }

    // The owner came back; a key of another shape, and one differing only in case, save nothing.
    it('§2: an owner registered after the last look keeps its rows: the DELETE checks the registry itself', () =>
      registryCheck(null, "('session:back-2'), ('back-2'), ('session:DEAD-1')"));

    it('§2: the same when the owner column has a collation of its own (a key differing only in case saves nothing)', () =>
      registryCheck(f.kind === 'postgres' ? 'text COLLATE "C"' : 'varchar(200) COLLATE utf8mb4_bin NULL', "('session:back-2'), ('session:DEAD-1')"));
  });
}
