/**
 * MySQL / MariaDB backend: the resources are the rows of one table (optionally filtered
 * by the manifest's `where`), identified by a primary-key (or single-column unique) `id`.
 *
 * At open the table's columns are read once from information_schema: the id column's
 * type decides how a cursor or id is turned back into a value of that type (`CAST(? AS
 * SIGNED)`, `UNHEX(?)`, …) so the primary-key index serves every look-up; the column
 * list feeds the fingerprint, the size estimate and the archive.
 *
 * - scan: keyset pages `WHERE (<where>) AND id > CAST(? AS <type>) ORDER BY id LIMIT n`;
 *   the cursor is the last id as text (hex for binary ids).
 * - age: UNIX_TIMESTAMP of the createdAt column (DATETIME, TIMESTAMP or DATE) in the
 *   session's time zone; a zero or out-of-range date reads as unknown.
 * - fingerprint: the `version` column as text, else MD5 over every stored column of the
 *   row, each as `<byte length>:<bytes>` and NULL as `-` (so NULL and '' differ and no
 *   two rows' encodings run together).
 * - bytes: the row's data size: OCTET_LENGTH of variable-length columns plus the fixed
 *   storage size of the others (ENUM and SET approximated), without row or page overhead.
 * - delete on MariaDB without an archive: one statement per chunk (the type's batchSize),
 *   `DELETE … WHERE id IN (…) AND (id, fingerprint, owner) IN ((…), …) RETURNING id`, the
 *   triple compared byte for byte with NULL spelt apart from every value (`encoded`); with
 *   a `where` or protect rules, a transaction first locks the chunk's rows that are in scope
 *   and unprotected (SELECT … FOR UPDATE) and the delete gets only those ids. A liveness query
 *   on the same connection is not checked inside the statement, as PostgreSQL's delete does:
 *   MariaDB runs an IN subquery of a single-table DELETE once per row, not as one anti-join,
 *   so a registry query without an index on its key would cost rows × keys per chunk. The
 *   last look before the delete judges those owners (docs/safety.md §2).
 * - delete on MySQL (no RETURNING) or with an archive: per chunk, a transaction that locks
 *   the rows (SELECT … FOR UPDATE) reading id, fingerprint and owner, then (with a `where`
 *   or protect rules) reads which of them are in scope and unprotected in a second SELECT,
 *   compares both with the items, then deletes (and archives) exactly the matching ids.
 *   The lock keeps every row as it was read until the commit. Marks work the same way and
 *   read the new fingerprints back before committing. The fragments appear only in the
 *   SELECTs that read (sql-backend.ts).
 *
 * `IN (…)` lists are padded to a few fixed lengths (src/sql/text.ts) so a handful of prepared
 * statements serve every chunk; writes take up to a whole batch per statement.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { BackendError, UsageError } from '../../errors.js';
import type { Connections } from '../connections.js';
import type { DeleteItem } from '../types.js';
import {
  ARCHIVE_TIME_COLUMN,
  NOT_ID_VALUES,
  SqlBackend,
  archiveColumns,
  archiveTable,
  namedColumns,
  pageBounds,
  protectRules,
  rangeBoundsStatement,
  readStatements,
  tableNames,
  fingerprintMatches,
  type DeletedChunk,
  type KeyRange,
  type RecordSql,
  type RestoreOutcome,
  type SqlResourceSpec,
  type SqlRow,
} from '../sql/sql-backend.js';
import { BATCH_LIST_SIZES, MAX_IDS_PER_STATEMENT, padList, placeholders, quoteIdentifier, quoteQualified, splitTableName } from '../../sql/text.js';
import { mysqlPool, mysqlQuery, mysqlTransaction, type MysqlRunner, type MysqlValue } from './mysql-pool.js';

interface MysqlColumn {
  name: string;
  dataType: string;
  columnType: string;
  numericPrecision: string | number | null;
  numericScale: string | number | null;
  datetimePrecision: string | number | null;
  extra: string | null;
  charset: string | null;
  collation: string | null;
}

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);
const STRING_ID_TYPES = new Set(['char', 'varchar', 'uuid', 'inet4', 'inet6']);
const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);
const TIME_TYPES = new Set(['date', 'datetime', 'timestamp']);
/** Storage bytes of fixed-size types (InnoDB), by DATA_TYPE. */
const FIXED_BYTES: Record<string, number> = {
  tinyint: 1,
  smallint: 2,
  mediumint: 3,
  int: 4,
  integer: 4,
  bigint: 8,
  float: 4,
  double: 8,
  real: 8,
  date: 3,
  year: 1,
  uuid: 16,
  inet4: 4,
  inet6: 16,
  enum: 2,
  set: 8,
};

const q = (name: string) => quoteIdentifier('mysql', name);
const int = (value: string | number | null, fallback = 0) => {
  const n = Number(value ?? fallback);
  return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
};

const type = (col: MysqlColumn) => col.dataType.toLowerCase();
const isVirtual = (col: MysqlColumn) => /\bVIRTUAL GENERATED\b/i.test(col.extra ?? '');
const isGenerated = (col: MysqlColumn) => /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/i.test(col.extra ?? '');

/** A column as text the way reaper reports it: hex for binary strings, else CAST AS CHAR. */
function textOf(col: MysqlColumn, expression: string): string {
  return BINARY_TYPES.has(type(col)) ? `HEX(${expression})` : `CAST(${expression} AS CHAR)`;
}

/** The expression that turns a bound id text back into a value of the id column's type. */
function idParameter(col: MysqlColumn): string | null {
  const t = type(col);
  if (INTEGER_TYPES.has(t) || t === 'year') return /unsigned/i.test(col.columnType) ? 'CAST(? AS UNSIGNED)' : 'CAST(? AS SIGNED)';
  if (t === 'decimal' || t === 'numeric') return `CAST(? AS DECIMAL(${int(col.numericPrecision, 10)}, ${int(col.numericScale)}))`;
  if (t === 'float' || t === 'double' || t === 'real') return 'CAST(? AS DOUBLE)';
  if (t === 'date') return 'CAST(? AS DATE)';
  if (t === 'datetime' || t === 'timestamp') return `CAST(? AS DATETIME(${int(col.datetimePrecision)}))`;
  if (t === 'time') return `CAST(? AS TIME(${int(col.datetimePrecision)}))`;
  if (BINARY_TYPES.has(t)) return 'UNHEX(?)';
  if (STRING_ID_TYPES.has(t)) return '?';
  return null;
}

/**
 * Bound text (or an expression) as a value of the id column, for comparing two such values
 * with each other in the column's order; null for types MariaDB reads only in a column (uuid, inet).
 */
function idValue(col: MysqlColumn): ((expression: string) => string) | null {
  const t = type(col);
  if (t === 'char' || t === 'varchar') {
    if (!col.charset || !col.collation || !/^\w+$/.test(col.charset) || !/^\w+$/.test(col.collation)) return null;
    return (e) => `(CONVERT(${e} USING ${col.charset}) COLLATE ${col.collation})`;
  }
  if (STRING_ID_TYPES.has(t)) return null;
  const param = idParameter(col);
  return param === null ? null : (e) => param.replace('?', e);
}

/** Bytes for `digits` decimal digits in MySQL's packed DECIMAL format. */
function decimalDigitBytes(digits: number): number {
  return Math.floor(digits / 9) * 4 + [0, 1, 1, 2, 2, 3, 3, 4, 4][digits % 9]!;
}

/** Stored bytes of one column of a row: fixed sizes by type, else the value's octet length. */
function storedBytes(col: MysqlColumn, expression: string): string {
  const t = type(col);
  const fsp = Math.ceil(int(col.datetimePrecision) / 2);
  let fixed = FIXED_BYTES[t];
  if (t === 'time') fixed = 3 + fsp;
  else if (t === 'datetime') fixed = 5 + fsp;
  else if (t === 'timestamp') fixed = 4 + fsp;
  else if (t === 'decimal' || t === 'numeric') {
    const precision = int(col.numericPrecision, 10);
    const scale = int(col.numericScale);
    fixed = decimalDigitBytes(precision - scale) + decimalDigitBytes(scale);
  } else if (t === 'bit') fixed = Math.ceil(int(col.numericPrecision, 1) / 8);
  return fixed === undefined ? `COALESCE(OCTET_LENGTH(${expression}), 0)` : `IF(${expression} IS NULL, 0, ${fixed})`;
}

interface Statements {
  /** `rangeBoundsStatement` for a number of ranges. */
  rangeBounds: (ranges: number) => string;
  /** A page: which bounds it has (the cursor, a shard range's `after` and `through`) picks the text. */
  page: (cursor: boolean, after: boolean, through: boolean) => string;
  /** n ids, then after, after, through, through (NULL: unbounded): the ids inside, compared as id values; null where ids cannot be compared apart from the column. */
  inRange: ((n: number) => string) | null;
  /** n-1 pairs of neighbouring split points: 1 where the second is above the first. */
  ascending: ((pairs: number) => string) | null;

  byIds: (n: number) => string;
  lock: (n: number) => string;
  /** Ids of a chunk that are in scope and unprotected; null without fragments. */
  eligible: ((n: number) => string) | null;
  /** Ids of a chunk inside the `where`; null without one. */
  inScope: ((n: number) => string) | null;
  deleteIds: (n: number) => string;
  /** MariaDB without an archive: one keyed DELETE … RETURNING (n ids, then n triples); null elsewhere. */
  deleteReturning: ((n: number) => string) | null;
  archiveIds: ((n: number) => string) | null;
  createArchive: string | null;
  markIds: ((n: number) => string) | null;
  fingerprints: (n: number) => string;
  unmarkIds: ((n: number) => string) | null;
  restoreExists: string;
  restoreInsert: string | null;
  restoreDelete: string | null;
}

/**
 * A value as the keyed DELETE compares it, byte for byte: NULL as `N`, a value as `V` and
 * its text, so NULL and '' never meet. A fingerprint captured as '' stands for NULL
 * (`fingerprintMatches`), so it is sent as `N`; a version column holding '' reads `V`.
 */
const encoded = (value: string | null) => (value === null ? 'N' : `V${value}`);
const encodedSql = (expression: string) => `CAST(IF(${expression} IS NULL, 'N', CONCAT('V', ${expression})) AS BINARY)`;

interface LockedRow {
  reaper_id: string;
  reaper_fp: string | null;
  reaper_owner: string | null;
}

export class MysqlBackend extends SqlBackend {
  readonly kind = 'mysql' as const;

  private constructor(
    spec: SqlResourceSpec,
    scope: string,
    archiveName: string | null,
    private readonly pool: Pool,
    private readonly context: string,
    private readonly sql: Statements,
  ) {
    super(spec, scope, archiveName);
  }

  static async open(spec: SqlResourceSpec, connections: Connections): Promise<MysqlBackend> {
    const location = spec.location;
    if (location.kind !== 'mysql') throw new TypeError(`resource ${spec.name} is not a mysql resource`);
    const pool = await mysqlPool(connections, location.connection);
    const connectionContext = `mysql connection "${location.connection}"`;

    const { schema, table } = splitTableName(location.table);
    const candidates = (
      await mysqlQuery<{ db: string; name: string }>(
        pool,
        connectionContext,
        `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND LOWER(TABLE_NAME) = LOWER(?)`,
        [schema, table],
      )
    ).rows;
    const relation = candidates.find((r) => r.name === table) ?? (candidates.length === 1 ? candidates[0] : undefined);
    if (!relation) {
      const where = schema === null ? ' in the URL\'s database (name one in the URL, or write the table as database.table)' : '';
      throw new BackendError(`${connectionContext}: table ${location.table} not found${where} (resource ${spec.name})`);
    }
    const { displayName, scope, context } = tableNames('mysql', relation.db, relation.name, location.connection);
    const T = quoteQualified('mysql', [relation.db, relation.name]);

    const columns = (
      await mysqlQuery<MysqlColumn>(
        pool,
        context,
        `SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType,
                NUMERIC_PRECISION AS numericPrecision, NUMERIC_SCALE AS numericScale,
                DATETIME_PRECISION AS datetimePrecision, EXTRA AS extra,
                CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation
           FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
          ORDER BY ORDINAL_POSITION`,
        [relation.db, relation.name],
      )
    ).rows;
    const { id, createdAt, version, mark, owners: ownerCols } = namedColumns(columns, spec, displayName);

    // DELETE … RETURNING is MariaDB's (10.0.5+); MySQL keeps the locking transaction.
    const server = (await mysqlQuery<{ v: string }>(pool, context, 'SELECT VERSION() AS v')).rows[0]?.v ?? '';
    const returning = /mariadb/i.test(server);
    const idParam = idParameter(id);
    if (idParam === null) throw new BackendError(`${context}: id column ${id.name} has type ${id.columnType}, which reaper cannot page on; use an integer, decimal, string, binary or time column`);
    if (!TIME_TYPES.has(type(createdAt))) {
      throw new BackendError(`${context}: createdAt column ${createdAt.name} has type ${createdAt.columnType}; expected DATETIME, TIMESTAMP or DATE`);
    }
    if (mark && !TEXT_TYPES.has(type(mark))) {
      throw new BackendError(`${context}: mark column ${mark.name} has type ${mark.columnType}; it holds a run id, so it must be a text column`);
    }
    const unique = await mysqlQuery<{ name: string }>(
      pool,
      context,
      `SELECT INDEX_NAME AS name FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
        GROUP BY INDEX_NAME
       HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = ? AND MAX(SUB_PART) IS NULL`,
      [relation.db, relation.name, id.name],
    );
    if (unique.rows.length === 0) {
      throw new BackendError(`${context}: id column ${id.name} is not the primary key nor alone in a unique index; reaper needs an id that names exactly one row`);
    }

    const c = (col: MysqlColumn) => `${T}.${q(col.name)}`;
    const stored = columns.filter((col) => !isVirtual(col));
    const record: RecordSql = {
      idText: textOf(id, c(id)),
      createdMs: `NULLIF(UNIX_TIMESTAMP(${c(createdAt)}), 0) * 1000`,
      bytes: `(${stored.map((col) => storedBytes(col, c(col))).join(' + ')})`,
      fingerprint: version
        ? textOf(version, c(version))
        : `MD5(CONCAT(${stored.map((col) => `IFNULL(CONCAT(OCTET_LENGTH(${c(col)}), ':', CAST(${c(col)} AS BINARY)), '-')`).join(', ')}))`,
      owners: ownerCols.map((col) => textOf(col, c(col))),
      protects: protectRules(spec).map((rule) => rule.sql),
    };
    const { select, inWhere, scoped, eligible, page } = readStatements(T, c(id), record, location.where, { id: () => idParam, limit: () => '?' });
    const ids = (n: number) => `${c(id)} IN (${placeholders(idParam, n)})`;

    const archive = archiveTable(spec, relation.db, displayName, context);
    const archiveName = archive?.name ?? null;
    const { table: A, all, restoreList, restoreValues } = archiveColumns(archive, 'mysql', columns, mark, isGenerated);

    // Text compared as id values in the id column's order (its collation, for strings): the order the scan's `>` uses.
    const asId = idValue(id);
    const sql: Statements = {
      rangeBounds: (ranges) => rangeBoundsStatement('mysql', T, c(id), record.idText, scoped, ranges),
      page,
      inRange: asId
        ? (n) =>
            `SELECT u.k AS reaper_id FROM (${Array.from({ length: n }, () => 'SELECT ? AS k').join(' UNION ALL ')}) u
              WHERE (? IS NULL OR ${asId('u.k')} > ${asId('?')}) AND (? IS NULL OR ${asId('u.k')} <= ${asId('?')})`
        : null,
      ascending: asId ? (pairs) => `SELECT ${Array.from({ length: pairs }, (_, k) => `(${asId('?')} > ${asId('?')}) AS a${k}`).join(', ')}` : null,
      byIds: (n) => `${select} WHERE ${scoped} AND ${ids(n)}`,
      lock: (n) => `SELECT ${record.idText} AS reaper_id, ${record.fingerprint} AS reaper_fp, ${record.owners[0]} AS reaper_owner FROM ${T} WHERE ${ids(n)} FOR UPDATE`,
      eligible: eligible.length === 0 ? null : (n) => `SELECT ${record.idText} AS reaper_id FROM ${T} WHERE ${ids(n)} AND ${eligible.join(' AND ')} FOR UPDATE`,
      inScope: inWhere.length === 0 ? null : (n) => `SELECT ${record.idText} AS reaper_id FROM ${T} WHERE ${ids(n)} AND ${inWhere.join(' AND ')}`,
      deleteIds: (n) => `DELETE FROM ${T} WHERE ${ids(n)}`,
      deleteReturning:
        returning && archiveName === null
          ? (n) =>
              `DELETE FROM ${T} WHERE ${ids(n)}\n  AND (CAST(${record.idText} AS BINARY), ${encodedSql(record.fingerprint)}, ${encodedSql(record.owners[0]!)}) IN (${placeholders('(?, ?, ?)', n)})\nRETURNING ${record.idText} AS reaper_id`
          : null,
      archiveIds: archiveName
        ? (n) => `INSERT INTO ${A} (${all}, ${q(ARCHIVE_TIME_COLUMN)}) SELECT ${columns.map((col) => c(col)).join(', ')}, NOW(6) FROM ${T} WHERE ${ids(n)}`
        : null,
      // CREATE … SELECT copies the columns as plain columns, without keys or AUTO_INCREMENT,
      // so the same id can be archived more than once.
      createArchive: archiveName
        ? `CREATE TABLE IF NOT EXISTS ${A} (${q(ARCHIVE_TIME_COLUMN)} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (${q(id.name)})) SELECT * FROM ${T} WHERE 1 = 0`
        : null,
      markIds: mark ? (n) => `UPDATE ${T} SET ${c(mark)} = ? WHERE ${ids(n)}` : null,
      fingerprints: (n) => `SELECT ${record.idText} AS reaper_id, ${record.fingerprint} AS reaper_fp FROM ${T} WHERE ${ids(n)}`,
      unmarkIds: mark ? (n) => `UPDATE ${T} SET ${c(mark)} = NULL WHERE ${ids(n)} AND ${c(mark)} IS NOT NULL` : null,
      restoreExists: `SELECT 1 AS present FROM ${T} WHERE ${c(id)} = ${idParam} FOR UPDATE`,
      restoreInsert: archiveName
        ? `INSERT INTO ${T} (${restoreList}) SELECT ${restoreValues} FROM ${A} WHERE ${q(id.name)} = ${idParam} ORDER BY ${q(ARCHIVE_TIME_COLUMN)} DESC LIMIT 1`
        : null,
      restoreDelete: archiveName ? `DELETE FROM ${A} WHERE ${q(id.name)} = ${idParam} ORDER BY ${q(ARCHIVE_TIME_COLUMN)} DESC LIMIT 1` : null,
    };

    // Compile the fragments once now, so a mistake in a where or protect rule surfaces at open.
    await mysqlQuery(pool, `${context}: checking the where and protect fragments`, `${select} WHERE ${scoped} LIMIT 0`);
    return new MysqlBackend(spec, scope, archiveName, pool, context, sql);
  }

  /** Writes take the type's whole batch per statement (or transaction). */
  protected override writeChunkSize(): number {
    return Math.max(MAX_IDS_PER_STATEMENT, Math.min(this.spec.batchSize, BATCH_LIST_SIZES[BATCH_LIST_SIZES.length - 1]!));
  }

  protected async selectPage(after: string | null, limit: number, range?: KeyRange): Promise<SqlRow[]> {
    // LIMIT is bound as text: MySQL 8 refuses a DOUBLE there, and mysql2 sends numbers as DOUBLE.
    const bounds = pageBounds(after, range);
    return this.rows(this.pool, this.sql.page(bounds.cursor, bounds.after, bounds.through), [...bounds.values, String(limit)]);
  }

  protected async selectInRange(ids: readonly string[], range: KeyRange): Promise<string[]> {
    if (!this.sql.inRange) throw new BackendError(`${this.context}: ids of this type cannot be compared apart from the table, so a sharded reap cannot place them; shard this type by whole type (no split points)`);
    const rows = await this.rows(this.pool, this.sql.inRange(ids.length), [...ids, range.after, range.after, range.through, range.through]);
    return rows.map((row) => String(row.reaper_id));
  }

  protected selectRangeBounds(ranges: number): Promise<SqlRow[]> {
    // Points the shards could not compare as id values (UUID, INET4, INET6 ids) are no points.
    if (!this.sql.inRange) throw new UsageError(`${this.context}: ids of this type cannot be compared apart from the table, so it cannot be split into key ranges; shard it by whole type (no split points)`);
    return this.rows(this.pool, this.sql.rangeBounds(ranges), []);
  }

  protected async firstUnordered(points: readonly string[]): Promise<number> {
    if (points.length < 2) return -1;
    if (!this.sql.ascending) return NOT_ID_VALUES;
    const pairs = points.slice(1).flatMap((point, k) => [point, points[k]!]);
    const rows = await this.rows(this.pool, this.sql.ascending(points.length - 1), pairs);
    const row = rows[0] as Record<string, unknown>;
    for (let k = 0; k < points.length - 1; k++) if (Number(row[`a${k}`]) !== 1) return k + 1;
    return -1;
  }

  protected async selectIds(ids: readonly string[]): Promise<SqlRow[]> {
    const padded = padList(ids);
    return this.rows(this.pool, this.sql.byIds(padded.length), padded);
  }

  protected async deleteChunk(items: readonly DeleteItem[]): Promise<DeletedChunk> {
    if (this.sql.deleteReturning !== null) return this.deleteReturning(this.sql.deleteReturning, items);
    // DDL commits implicitly in MySQL, so the archive is made before the transaction starts.
    if (this.archiveName !== null) await this.ensureArchive();
    return mysqlTransaction(this.pool, this.context, async (connection) => {
      const { present, matched } = await this.lockMatching(connection, items);
      if (matched.length > 0) {
        const padded = padList(matched, BATCH_LIST_SIZES);
        if (this.sql.archiveIds) {
          const archived = await mysqlQuery(connection, `${this.context}, archiving into ${this.archiveName}`, this.sql.archiveIds(padded.length), padded);
          this.expectCount('archived', archived.affectedRows, matched.length);
        }
        const removed = await mysqlQuery(connection, this.context, this.sql.deleteIds(padded.length), padded);
        this.expectCount('deleted', removed.affectedRows, matched.length);
      }
      const deleted = new Set(matched);
      return this.archiveName === null ? { deleted, present } : { deleted, present, restoreHandle: this.archiveName };
    });
  }

  protected async markChunk(items: readonly DeleteItem[], runId: string): Promise<Map<string, string>> {
    return mysqlTransaction(this.pool, this.context, async (connection) => {
      const { matched } = await this.lockMatching(connection, items);
      const out = new Map<string, string>();
      if (matched.length === 0) return out;
      const padded = padList(matched, BATCH_LIST_SIZES);
      await mysqlQuery(connection, this.context, this.sql.markIds!(padded.length), [runId, ...padded]);
      // Read back under the same locks: the new fingerprint is exactly the marked row's.
      const wanted = new Set(matched);
      for (const row of await this.rows(connection, this.sql.fingerprints(padded.length), padded)) {
        if (wanted.has(row.reaper_id)) out.set(row.reaper_id, row.reaper_fp ?? '');
      }
      return out;
    });
  }

  protected async unmarkChunk(ids: readonly string[]): Promise<void> {
    const inScope = this.sql.inScope === null ? ids : await this.named(this.pool, this.sql.inScope, ids);
    if (inScope.length === 0) return;
    const padded = padList(inScope);
    await mysqlQuery(this.pool, this.context, this.sql.unmarkIds!(padded.length), padded);
  }

  /**
   * One keyed statement (docs/safety.md §3): only rows whose id, fingerprint and owner are the
   * items' own are deleted. With fragments, a transaction first locks the rows in scope and
   * unprotected and the statement gets only those (§18: a fragment can only drop items).
   */
  private async deleteReturning(statement: (n: number) => string, items: readonly DeleteItem[]): Promise<DeletedChunk> {
    const remove = async (runner: MysqlRunner, chosen: readonly DeleteItem[]) => {
      if (chosen.length === 0) return new Set<string>();
      const ids = padList(
        chosen.map((item) => item.id),
        BATCH_LIST_SIZES,
      );
      const triples = padList(
        chosen.map((item) => [item.id, item.fingerprint === '' ? encoded(null) : encoded(item.fingerprint), encoded(item.ownerValue ?? null)]),
        BATCH_LIST_SIZES,
      );
      const rows = await this.rows(runner, statement(ids.length), [...ids, ...triples.flat()]);
      const wanted = new Set(chosen.map((item) => item.id));
      return new Set(rows.map((row) => row.reaper_id).filter((id) => wanted.has(id)));
    };
    const eligible = this.sql.eligible;
    const deleted =
      eligible === null
        ? await remove(this.pool, items)
        : await mysqlTransaction(this.pool, this.context, async (connection) => {
            const allowed = new Set(
              await this.named(
                connection,
                eligible,
                items.map((item) => item.id),
              ),
            );
            return remove(
              connection,
              items.filter((item) => allowed.has(item.id)),
            );
          });
    const rest = items.filter((item) => !deleted.has(item.id)).map((item) => item.id);
    const present = rest.length === 0 ? new Set<string>() : new Set(await this.named(this.pool, this.sql.fingerprints, rest));
    return { deleted, present };
  }

  /** The ids of `asked` that a statement over them names, exactly. */
  private async named(runner: MysqlRunner, statement: (n: number) => string, asked: readonly string[]): Promise<string[]> {
    const padded = padList(asked, BATCH_LIST_SIZES);
    const named = new Set((await this.rows(runner, statement(padded.length), padded)).map((row) => row.reaper_id));
    return asked.filter((id) => named.has(id));
  }

  protected async createArchive(): Promise<void> {
    await mysqlQuery(this.pool, this.context, this.sql.createArchive!);
  }

  /** One transaction: insert the newest archived copy back, then delete that copy. */
  protected async restoreRow(id: string): Promise<RestoreOutcome> {
    const { restoreInsert, restoreDelete } = this.sql;
    return mysqlTransaction(this.pool, this.context, async (connection) => {
      if ((await this.rows(connection, this.sql.restoreExists, [id])).length > 0) return 'exists-again';
      let inserted: number;
      try {
        inserted = (await mysqlQuery(connection, this.context, restoreInsert!, [id])).affectedRows;
      } catch (error) {
        // Re-created between the check and the insert? (Another unique key may refuse it too.)
        if ((error as { cause?: { errno?: number } }).cause?.errno === 1062 && (await this.rows(connection, this.sql.restoreExists, [id])).length > 0) {
          return 'exists-again';
        }
        throw error;
      }
      if (inserted === 0) return 'no-archived-copy';
      await mysqlQuery(connection, this.context, restoreDelete!, [id]);
      return 'restored';
    });
  }

  /**
   * Lock the rows of `items` and keep the ids whose row is unchanged: same fingerprint,
   * same owner value (compared byte for byte). Then, with a `where` or protect rules, keep
   * of those only the ids a second SELECT finds inside the `where` with no protect rule
   * holding: the fragments can only drop ids (docs/safety.md §18).
   */
  private async lockMatching(connection: PoolConnection, items: readonly DeleteItem[]): Promise<{ present: Set<string>; matched: string[] }> {
    const padded = padList(
      items.map((item) => item.id),
      BATCH_LIST_SIZES,
    );
    const rows = (await mysqlQuery<LockedRow>(connection, this.context, this.sql.lock(padded.length), padded)).rows;
    const byId = new Map(rows.map((row) => [row.reaper_id, row]));
    const unchanged = items
      .filter((item) => {
        const row = byId.get(item.id);
        return row !== undefined && fingerprintMatches(row.reaper_fp, item.fingerprint) && (row.reaper_owner ?? null) === (item.ownerValue ?? null);
      })
      .map((item) => item.id);
    const matched = this.sql.eligible === null || unchanged.length === 0 ? unchanged : await this.named(connection, this.sql.eligible, unchanged);
    return { present: new Set(byId.keys()), matched };
  }

  /** The locks guarantee the count; anything else rolls the transaction back. */
  private expectCount(what: string, actual: number, expected: number): void {
    if (actual !== expected) throw new BackendError(`${this.context}: ${what} ${actual} rows where ${expected} were locked; rolled back`);
  }

  private async rows(runner: MysqlRunner, sql: string, values: readonly MysqlValue[]): Promise<SqlRow[]> {
    return (await mysqlQuery<SqlRow>(runner, this.context, sql, values)).rows;
  }
}
