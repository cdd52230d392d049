/**
 * The PostgreSQL and MySQL (MariaDB) fixtures of the reap safety suite.
 *
 * Each fixture has its own database; resource type NAME is the table NAME:
 *   id bigint primary key · owner (NULL: no owner) · kind ('item'; the type's `where` is
 *   `kind = 'item'`, so other rows are outside the scope) · keep (the protect `where`) ·
 *   created_at (the age, backdated freely) · payload (the content; a seed's bytes).
 * The owner key is `session:OWNER` through the column's key template.
 *
 * Fingerprints, and what they can tell:
 * - PostgreSQL: the default, `xmin`. Every UPDATE and every re-INSERT writes a new row
 *   version with a new xmin, so an in-place rewrite and a delete-and-re-insert of identical
 *   content are both new identities.
 * - MySQL: the default is an MD5 of every stored column, which cannot tell a re-inserted
 *   row with identical content from the original. The fixture therefore declares
 *   `version: updated_at`, a DATETIME(6) that the server sets on every INSERT and UPDATE
 *   (DEFAULT / ON UPDATE CURRENT_TIMESTAMP(6)) — the "row version / updated-at" column a
 *   real table would have.
 * A sweep's DELETE re-checks id, fingerprint, owner value, the `where` and the protect
 * rules in the statement itself (PostgreSQL) or under row locks in one transaction
 * (MySQL), so the docs/safety.md §3 scenarios test a server-side precondition on both.
 */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { serviceAvailable, uniqueName } from './services.js';
import {
  plainOwners,
  policyLines,
  type FixtureOptions,
  type FixtureTraits,
  type Outsiders,
  type Policy,
  type ReapFixture,
  type ReapFixtureKind,
  type ResourceOptions,
  type Seed,
} from './reap-fixture-base.js';

type Value = string | number | boolean | null;

/** A small connection pool on the test's database; `?` placeholders for both dialects. */
interface Db {
  query<R = Record<string, unknown>>(sql: string, values?: readonly Value[]): Promise<R[]>;
  close(): Promise<void>;
}

interface Dialect {
  readonly kind: 'postgres' | 'mysql';
  /** The server's admin URL (from the global setup), or null. */
  adminUrl(): string | null;
  createDatabase(admin: string, name: string): Promise<void>;
  dropDatabase(admin: string, name: string): Promise<void>;
  connect(url: string): Promise<Db>;
  quote(name: string): string;
  ddl(table: string): string;
  /** `created_at` for a bound age in milliseconds, by the server's clock. */
  agedBy: string;
  /** The id and the fingerprint as reaper reads them (text). */
  idText: string;
  fingerprint: string;
  createdMs: string;
  keep(value: boolean): Value;
  locationYaml(table: string): string;
  protectKeep: string;
  /** Statements that make every DELETE on the table fail, and the ones that undo it. */
  refuseDeletes(table: string): { on: string[]; off: string[] };
  /** Delete the row and insert it again with the same values (and so the same age). */
  reinsert(db: Db, table: string, id: string): Promise<void>;
}

const COLUMNS = 'id, owner, kind, keep, created_at, payload';

const postgres: Dialect = {
  kind: 'postgres',
  adminUrl: () => inject('pgUrl'),
  async createDatabase(admin, name) {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE "${name}"`);
    } finally {
      await c.end();
    }
  },
  async dropDatabase(admin, name) {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await c.end();
    }
  },
  async connect(url) {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 1_000, allowExitOnIdle: true });
    // A client still closing when the database is dropped (WITH FORCE) hears a FATAL: nothing to act on.
    pool.on('error', () => {});
    return {
      async query(sql, values = []) {
        let n = 0;
        return (await pool.query(sql.replace(/\?/g, () => `$${++n}`), [...values])).rows;
      },
      close: () => pool.end(),
    };
  },
  quote: (name) => `"${name}"`,
  ddl: (table) =>
    `CREATE TABLE "${table}" (id bigint PRIMARY KEY, owner text, kind text NOT NULL DEFAULT 'item', keep boolean NOT NULL DEFAULT false,
       created_at timestamptz NOT NULL, payload text NOT NULL)`,
  agedBy: `now() - (CAST(? AS float8) * interval '1 millisecond')`,
  idText: 'id::text',
  fingerprint: 'xmin::text',
  createdMs: '(extract(epoch FROM created_at) * 1000)::bigint::text',
  keep: (value) => value,
  locationYaml: (table) => `postgres: { connection: db, table: ${table}, id: id, createdAt: created_at, where: "kind = 'item'" }`,
  protectKeep: '{ where: "keep" }',
  refuseDeletes: (table) => ({
    on: [
      `CREATE OR REPLACE FUNCTION reaper_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'deletes refused by the test'; END $$`,
      `CREATE TRIGGER reaper_test_refuse BEFORE DELETE ON "${table}" FOR EACH ROW EXECUTE FUNCTION reaper_test_refuse()`,
    ],
    off: [`DROP TRIGGER reaper_test_refuse ON "${table}"`],
  }),
  async reinsert(db, table, id) {
    // One statement: the re-inserted row is a new row version (new xmin) with the same values.
    await db.query(`WITH gone AS (DELETE FROM "${table}" WHERE id = CAST(? AS bigint) RETURNING ${COLUMNS}) INSERT INTO "${table}" (${COLUMNS}) SELECT ${COLUMNS} FROM gone`, [id]);
  },
};

const mysql: Dialect = {
  kind: 'mysql',
  adminUrl: () => inject('mysqlUrl'),
  async createDatabase(admin, name) {
    const driver = await import('mysql2/promise');
    const c = await driver.createConnection({ uri: admin });
    try {
      await c.query(`CREATE DATABASE \`${name}\``);
    } finally {
      await c.end();
    }
  },
  async dropDatabase(admin, name) {
    const driver = await import('mysql2/promise');
    const c = await driver.createConnection({ uri: admin });
    try {
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
    } finally {
      await c.end();
    }
  },
  async connect(url) {
    const driver = await import('mysql2/promise');
    const pool = driver.createPool({ uri: url, connectionLimit: 2, maxIdle: 0, idleTimeout: 1_000, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
    return {
      async query(sql, values = []) {
        const [rows] = await pool.query(sql, [...values]);
        return (Array.isArray(rows) ? rows : []) as never[];
      },
      close: () => pool.end(),
    };
  },
  quote: (name) => `\`${name}\``,
  ddl: (table) =>
    `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, owner VARCHAR(100) NULL, kind VARCHAR(20) NOT NULL DEFAULT 'item', keep TINYINT(1) NOT NULL DEFAULT 0,
       created_at DATETIME(3) NOT NULL, payload TEXT NOT NULL,
       updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))`,
  agedBy: 'NOW(3) - INTERVAL (? * 1000) MICROSECOND',
  idText: 'CAST(id AS CHAR)',
  fingerprint: 'CAST(updated_at AS CHAR)',
  createdMs: 'CAST(ROUND(UNIX_TIMESTAMP(created_at) * 1000) AS CHAR)',
  keep: (value) => (value ? 1 : 0),
  locationYaml: (table) => `mysql: { connection: db, table: ${table}, id: id, createdAt: created_at, version: updated_at, where: "kind = 'item'" }`,
  protectKeep: '{ where: "keep = 1" }',
  refuseDeletes: (table) => ({
    on: [`CREATE TRIGGER reaper_test_refuse BEFORE DELETE ON \`${table}\` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'deletes refused by the test'`],
    off: ['DROP TRIGGER reaper_test_refuse'],
  }),
  async reinsert(db, table, id) {
    const [row] = await db.query<Record<string, Value>>(`SELECT ${COLUMNS} FROM \`${table}\` WHERE id = ?`, [id]);
    if (!row) throw new Error(`no row ${id} to replace`);
    await db.query(`DELETE FROM \`${table}\` WHERE id = ?`, [id]);
    // updated_at is left to its default: the server's time of this INSERT, the row's new version.
    await db.query(`INSERT INTO \`${table}\` (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, [row.id!, row.owner!, row.kind!, row.keep!, row.created_at!, row.payload!]);
  },
};

class SqlReapFixture implements ReapFixture {
  readonly traits: FixtureTraits = { backdate: true, exactBytes: false };
  readonly defaults: Policy = {};
  private serial = 0;
  private readonly tables = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly dialect: Dialect,
    private readonly admin: string,
    private readonly database: string,
    private readonly url: string,
    private readonly db: Db,
    private readonly restorable: boolean,
  ) {}

  get kind(): 'postgres' | 'mysql' {
    return this.dialect.kind;
  }

  private async table(resource: string): Promise<string> {
    if (!/^[a-z][a-z0-9_]*$/.test(resource)) throw new Error(`the SQL fixture names tables after resources: ${JSON.stringify(resource)} is not a plain table name`);
    if (!this.tables.has(resource)) {
      await this.db.query(this.dialect.ddl(resource));
      this.tables.add(resource);
    }
    return resource;
  }

  connectionsYaml(): string {
    return `  db: { kind: ${this.dialect.kind}, url: "${this.url}" }`;
  }

  resourceYaml(name: string, policy: Policy = {}, options: ResourceOptions = {}): string {
    const owners = plainOwners(options.protectOwners);
    const protect = [this.dialect.protectKeep, ...(owners.length ? [`{ where: "owner IN (${owners.map((o) => `'${o}'`).join(', ')})" }`] : [])];
    return [
      `  - name: ${name}`,
      `    ${this.dialect.locationYaml(name)}`,
      `    owner: { column: owner, key: "session:{value}" }`,
      `    protect: [${protect.join(', ')}]`,
      ...(this.restorable ? [`    archive: { table: ${name}_archive }`] : []),
      ...policyLines(policy),
    ].join('\n');
  }

  private async insert(table: string, rows: readonly { id: number; owner: string | null; kind: string; keep: boolean; ageMs: number; bytes: number }[]): Promise<void> {
    const d = this.dialect;
    for (let i = 0; i < rows.length; i += 200) {
      const part = rows.slice(i, i + 200);
      await this.db.query(
        `INSERT INTO ${d.quote(table)} (${COLUMNS}) VALUES ${part.map(() => `(?, ?, ?, ?, ${d.agedBy}, ?)`).join(', ')}`,
        part.flatMap((r) => [r.id, r.owner, r.kind, d.keep(r.keep), r.ageMs, 'a'.repeat(r.bytes)]),
      );
    }
  }

  async create(resource: string, seeds: readonly Seed[]): Promise<string[]> {
    const table = await this.table(resource);
    const rows = seeds.map((seed) => ({ id: ++this.serial, owner: seed.owner, kind: 'item', keep: seed.protected === true, ageMs: seed.ageMs ?? 3_600_000, bytes: seed.bytes ?? 100 }));
    await this.insert(table, rows);
    return rows.map((r) => String(r.id));
  }

  async present(resource: string): Promise<Set<string>> {
    const table = await this.table(resource);
    const rows = await this.db.query<{ id: string }>(`SELECT ${this.dialect.idText} AS id FROM ${this.dialect.quote(table)} WHERE kind = 'item'`);
    return new Set(rows.map((r) => r.id));
  }

  async snapshot(resource: string): Promise<Map<string, string>> {
    const d = this.dialect;
    const table = await this.table(resource);
    const rows = await this.db.query<Record<string, Value>>(
      `SELECT ${d.idText} AS id, owner, ${d.kind === 'postgres' ? 'keep::int' : 'keep'} AS keep, payload, ${d.createdMs} AS created FROM ${d.quote(table)} WHERE kind = 'item'`,
    );
    return new Map(rows.map((r) => [String(r.id), JSON.stringify([r.owner, Number(r.keep), r.payload, String(r.created)])]));
  }

  async rewrite(resource: string, id: string): Promise<void> {
    const table = await this.table(resource);
    await this.db.query(`UPDATE ${this.dialect.quote(table)} SET payload = CONCAT(payload, 'bbbbbbb') WHERE id = ?`, [id]);
  }

  async replace(resource: string, id: string): Promise<void> {
    await this.dialect.reinsert(this.db, await this.table(resource), id);
  }

  /** Rows of a dead owner, old enough, outside the type's `where` (kind = 'other'). */
  async outsideScope(resource: string): Promise<Outsiders> {
    const d = this.dialect;
    const table = await this.table(resource);
    const rows = [0, 1].map(() => ({ id: ++this.serial, owner: 'mallory', kind: 'other', keep: false, ageMs: 10 * 3_600_000, bytes: 100 }));
    await this.insert(table, rows);
    const ids = rows.map((r) => String(r.id));
    const read = async () =>
      new Map(
        (await this.db.query<{ id: string; fp: string }>(`SELECT ${d.idText} AS id, ${d.fingerprint} AS fp FROM ${d.quote(table)} WHERE id IN (?, ?)`, ids)).map((r) => [r.id, r.fp]),
      );
    const before = await read();
    return {
      forged: ids.map((id) => ({ id, fingerprint: before.get(id)!, ownerValue: 'mallory' })),
      intact: async () => {
        const now = await read();
        return ids.every((id) => now.get(id) === before.get(id));
      },
    };
  }

  /** A BEFORE DELETE trigger that raises: the server refuses every delete of the table. */
  async failDeletes(resource: string): Promise<() => Promise<void>> {
    const { on, off } = this.dialect.refuseDeletes(await this.table(resource));
    for (const sql of on) await this.db.query(sql);
    return async () => {
      for (const sql of off) await this.db.query(sql);
    };
  }

  env(): Record<string, string> {
    return {};
  }

  async cleanup(options: { keep?: boolean } = {}): Promise<void> {
    await this.db.close();
    if (options.keep) return;
    await this.dialect.dropDatabase(this.admin, this.database);
    await rm(this.dir, { recursive: true, force: true });
  }
}

function sqlFixture(dialect: Dialect): ReapFixtureKind {
  return {
    kind: dialect.kind,
    available: () => serviceAvailable(dialect.kind),
    open: async (options: FixtureOptions = {}) => {
      const admin = dialect.adminUrl();
      if (!admin) throw new Error(`${dialect.kind} is not available`);
      const database = uniqueName('reaper_reap').toLowerCase();
      await dialect.createDatabase(admin, database);
      const u = new URL(admin);
      u.pathname = `/${database}`;
      const url = u.toString();
      const db = await dialect.connect(url);
      return new SqlReapFixture(mkdtempSync(path.join(tmpdir(), `reaper-reap-${dialect.kind}-`)), dialect, admin, database, url, db, options.restorable === true);
    },
  };
}

export const postgresFixture = sqlFixture(postgres);
export const mysqlFixture = sqlFixture(mysql);
