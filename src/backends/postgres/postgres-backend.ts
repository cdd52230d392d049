/**
 * PostgreSQL backend: the resources are the rows of one table (optionally filtered by the
 * manifest's `where`), identified by a primary-key (or single-column unique) `id`.
 *
 * At open the table and its columns are looked up once in the catalog: the id column's
 * type (cursors and id lists are cast to it, so the primary-key index serves every
 * look-up), the columns the archive copies, and whether the SQL fragments compile.
 *
 * - scan: keyset pages `WHERE (<where>) AND id > $cursor::<type> ORDER BY id LIMIT n`;
 *   the cursor is the last id as text.
 * - age: the createdAt column (timestamptz, timestamp or date; a timestamp without time
 *   zone is read in the session's TimeZone, as the server's now() would have written it).
 * - fingerprint: the `version` column as text, else `xmin` (changes with every update).
 * - bytes: pg_column_size of the whole row.
 * - delete: one statement per chunk (the type's batchSize), joined against unnest() of (id, fingerprint,
 *   owner) and re-checking all of them; with an archive the deleted rows are copied in
 *   the same statement (a data-modifying WITH). With a `where` or protect rules, a
 *   transaction first locks the chunk's rows that are in scope and unprotected
 *   (SELECT … FOR UPDATE) and the delete gets only those ids.
 * - still orphaned, in the delete itself: where a liveness source is a query on the same
 *   connection and the first owner column names a key (no `ref`), the DELETE also requires
 *   `NOT EXISTS` that key among the query's rows, so an owner registered after the last look
 *   keeps its rows (reported `changed`; docs/safety.md §2). The key is the owner rule's
 *   template joined around the value (`array_to_string`, bound), as classify builds it; the
 *   value is the item's, which the match requires the row's to equal exactly (one hashed anti-join).
 * - mark: the same join in an UPDATE … RETURNING, which yields each row's new fingerprint.
 *
 * Names are quoted through quoteIdentifier; values are bound parameters. The `where`
 * and protect fragments are the manifest author's SQL: they appear only in statements
 * that read (see sql-backend.ts), never in one that writes.
 */
import type { Pool } from 'pg';
import { BackendError } from '../../errors.js';
import type { Connections } from '../connections.js';
import type { DeleteItem, LiveRegistry } from '../types.js';
import {
  ARCHIVE_TIME_COLUMN,
  NOT_ID_VALUES,
  SqlBackend,
  archiveColumns,
  archiveTable,
  namedColumns,
  ownerColumns,
  pageBounds,
  protectRules,
  rangeBoundsStatement,
  readStatements,
  tableNames,
  type DeletedChunk,
  type KeyRange,
  type RecordSql,
  type RestoreOutcome,
  type SqlResourceSpec,
  type SqlRow,
} from '../sql/sql-backend.js';
import { MAX_IDS_PER_STATEMENT, quoteIdentifier, quoteQualified, splitTableName } from '../../sql/text.js';
import { pgQuery, pgTransaction, postgresPool, type PgRunner } from './pg-pool.js';

interface PgColumn {
  name: string;
  attnum: number;
  /** Schema-qualified type name without modifiers (`pg_catalog.int4`): casts to it never truncate. */
  type: string;
  /** Type of a domain's base, formatted (`timestamp with time zone`). */
  base_type: string;
  category: string;
  generated: boolean;
  identity_always: boolean;
  /** The column's collation, qualified and quoted; null for a type without one. */
  collation: string | null;
}

const TIME_TYPES = new Set(['timestamp without time zone', 'timestamp with time zone', 'date']);

const q = (name: string) => quoteIdentifier('postgres', name);

/**
 * What a delete statement can check of the type's liveness itself (docs/safety.md §2): the
 * registries (SQL liveness sources) on the resource's own connection, and the owner key
 * template split at `{value}`, which joined around the first owner column's value gives the
 * key as classify builds it. Null when no such check applies: no registry on the connection,
 * or the first owner column's rule is a `ref` or not that column's.
 */
function deleteRegistryCheck(spec: SqlResourceSpec, registries: readonly LiveRegistry[]): { parts: string[]; queries: string[] } | null {
  const column = ownerColumns(spec)[0];
  const rule = spec.owners.find((r) => r.extractor.from === 'column' && r.extractor.name === column && r.ref === undefined);
  const queries = registries.filter((r) => r.connection === spec.location.connection).map((r) => r.query);
  return rule && queries.length > 0 ? { parts: (rule.keyTemplate ?? '{value}').split('{value}'), queries } : null;
}

interface Statements {
  /** `rangeBoundsStatement` for a number of ranges. */
  rangeBounds: (ranges: number) => string;
  /** A page: which bounds it has (the cursor, a shard range's `after` and `through`) picks the text. */
  page: (cursor: boolean, after: boolean, through: boolean) => string;
  /** $1 text[] of ids, $2 and $3 the range's bounds as text (NULL: unbounded): the ids inside, compared as id values. */
  inRange: string;
  /** $1 text[] of split points: the 1-based position of the first not above the one before it, or NULL. */
  unordered: string;
  byIds: string;
  present: string;
  /** Ids of a chunk that are in scope and unprotected, locked; null without fragments. */
  eligible: string | null;
  /** Ids of a chunk inside the `where`; null without one. */
  inScope: string | null;
  delete: string;
  deleteArchive: string | null;
  createArchive: string | null;
  mark: string | null;
  unmark: string | null;
  restoreExists: string;
  restore: string | null;
}

export class PostgresBackend extends SqlBackend {
  readonly kind = 'postgres' as const;

  private constructor(
    spec: SqlResourceSpec,
    scope: string,
    archiveName: string | null,
    private readonly pool: Pool,
    private readonly context: string,
    private readonly sql: Statements,
    /** The owner key template's parts when the delete checks a registry on its connection ($4); else null. */
    private readonly keyParts: string[] | null,
  ) {
    super(spec, scope, archiveName);
  }

  static async open(spec: SqlResourceSpec, connections: Connections, registries: readonly LiveRegistry[] = []): Promise<PostgresBackend> {
    const location = spec.location;
    if (location.kind !== 'postgres') throw new TypeError(`resource ${spec.name} is not a postgres resource`);
    const pool = await postgresPool(connections, location.connection);
    const connectionContext = `postgres connection "${location.connection}"`;

    const { schema, table } = splitTableName(location.table);
    const exact = schema === null ? q(table) : quoteQualified('postgres', [schema, table]);
    const found = await pgQuery<{ oid: string; schema: string; name: string }>(
      pool,
      connectionContext,
      `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = coalesce(to_regclass($1), to_regclass($2))`,
      [exact, location.table],
    );
    const relation = found.rows[0];
    if (!relation) {
      throw new BackendError(`${connectionContext}: table ${location.table} not found (resource ${spec.name}); check the name, the schema and the search_path`);
    }
    const { displayName, scope, context } = tableNames('postgres', relation.schema, relation.name, location.connection);
    const T = quoteQualified('postgres', [relation.schema, relation.name]);

    const columns = (
      await pgQuery<PgColumn>(
        pool,
        context,
        `SELECT a.attname AS name, a.attnum::int AS attnum,
                quote_ident(tn.nspname) || '.' || quote_ident(t.typname) AS type,
                format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL) AS base_type,
                t.typcategory AS category,
                a.attgenerated <> '' AS generated,
                a.attidentity = 'a' AS identity_always,
                (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = a.attcollation) AS collation
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
          WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum`,
        [relation.oid],
      )
    ).rows;
    const { id, createdAt, version, mark, owners: ownerCols } = namedColumns(columns, spec, displayName);

    if (!TIME_TYPES.has(createdAt.base_type)) {
      throw new BackendError(`${context}: createdAt column ${createdAt.name} has type ${createdAt.base_type}; expected timestamp, timestamptz or date`);
    }
    if (mark && mark.category !== 'S') {
      throw new BackendError(`${context}: mark column ${mark.name} has type ${mark.base_type}; it holds a run id, so it must be a text column`);
    }
    const unique = await pgQuery<{ unique: boolean }>(
      pool,
      context,
      `SELECT EXISTS (
         SELECT 1 FROM pg_catalog.pg_index i
          WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            AND i.indnkeyatts = 1 AND i.indkey[0] = $2::int2) AS unique`,
      [relation.oid, id.attnum],
    );
    if (!unique.rows[0]?.unique) {
      throw new BackendError(`${context}: id column ${id.name} is not the primary key nor alone in a unique index; reaper needs an id that names exactly one row`);
    }

    const c = (col: PgColumn) => `${T}.${q(col.name)}`;
    const record: RecordSql = {
      idText: `${c(id)}::text`,
      createdMs: `(extract(epoch FROM ${c(createdAt)}::timestamptz) * 1000)::float8`,
      bytes: `pg_column_size(${T}.*)`,
      fingerprint: version ? `${c(version)}::text` : `${T}.xmin::text`,
      owners: ownerCols.map((col) => `${c(col)}::text`),
      protects: protectRules(spec).map((rule) => rule.sql),
    };
    const idType = id.type;
    const { select, inWhere, scoped, eligible, page } = readStatements(T, c(id), record, location.where, { id: (n) => `$${n}::${idType}`, limit: (n) => `$${n}` });
    const chunkIds = `${c(id)} = ANY($1::${idType}[])`;

    // Items travel as three text arrays; the id is cast to its column's type for the index
    // and compared as text too, so only the exact id read earlier matches.
    const items = `unnest($1::text[], $2::text[], $3::text[]) AS reaper_item(reaper_key, reaper_fp, reaper_owner)`;
    const itemMatches = [
      `${c(id)} = reaper_item.reaper_key::${idType}`,
      `(${record.idText}) COLLATE "C" = reaper_item.reaper_key`,
      `(${record.fingerprint}) COLLATE "C" IS NOT DISTINCT FROM nullif(reaper_item.reaper_fp, '')`,
      `(${record.owners[0]}) COLLATE "C" IS NOT DISTINCT FROM reaper_item.reaper_owner`,
    ].join('\n  AND ');

    // The owner key as classify builds it: the rule's template split at {value}, joined by the value ($4).
    // The key is built from the item's owner value, which the item match above requires the
    // row's owner to equal exactly, in the owner column's collation as the row's value would
    // carry: the check then depends on the items alone, and the planner runs it as one hashed
    // anti-join over the chunk, not as a scan of the registry per row (planned against the row,
    // it took 0.8 s per 10,000 rows with 500 live keys).
    const check = deleteRegistryCheck(spec, registries);
    const ownerCollation = ownerCols[0]?.collation && ownerCols[0].collation !== 'pg_catalog."default"' ? ` COLLATE ${ownerCols[0].collation}` : '';
    const stillOrphan = check
      ? {
          parts: check.parts,
          sql: check.queries
            .map(
              (query) =>
                `NOT EXISTS (SELECT 1 FROM (${query}) AS reaper_live(reaper_key) WHERE reaper_live.reaper_key::text = array_to_string($4::text[], reaper_item.reaper_owner${ownerCollation}))`,
            )
            .join('\n  AND '),
        }
      : null;
    const deleteMatches = stillOrphan ? `${itemMatches}\n  AND ${stillOrphan.sql}` : itemMatches;

    const archive = archiveTable(spec, relation.schema, displayName, context);
    const archiveName = archive?.name ?? null;
    const { table: A, all, restorable, restoreList, restoreValues } = archiveColumns(archive, 'postgres', columns, mark, (col) => col.generated);
    const overriding = restorable.some((col) => col.identity_always) ? ' OVERRIDING SYSTEM VALUE' : '';

    // Text compared as id values in the id column's collation: the order the scan's `>` uses.
    const asId = (text: string) => `(${text})::${idType}${id.collation ? ` COLLATE ${id.collation}` : ''}`;
    const sql: Statements = {
      rangeBounds: (ranges) => rangeBoundsStatement('postgres', T, c(id), record.idText, scoped, ranges),
      page,
      inRange: `SELECT u.k AS reaper_id FROM unnest($1::text[]) AS u(k)
        WHERE ($2::text IS NULL OR ${asId('u.k')} > ${asId('$2::text')}) AND ($3::text IS NULL OR ${asId('u.k')} <= ${asId('$3::text')})`,
      unordered: `SELECT min(n)::int AS n FROM (
          SELECT u.n, ${asId('u.v')} AS v, lag(${asId('u.v')}) OVER (ORDER BY u.n) AS prev FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n)
        ) s WHERE s.prev IS NOT NULL AND s.v <= s.prev`,
      byIds: `${select} WHERE ${scoped} AND ${chunkIds}`,
      present: `SELECT ${record.idText} AS reaper_id FROM ${T} WHERE ${chunkIds}`,
      eligible: eligible.length === 0 ? null : `SELECT ${record.idText} AS reaper_id FROM ${T} WHERE ${chunkIds} AND ${eligible.join(' AND ')} FOR UPDATE`,
      inScope: inWhere.length === 0 ? null : `SELECT ${record.idText} AS reaper_id FROM ${T} WHERE ${chunkIds} AND ${inWhere.join(' AND ')}`,
      delete: `DELETE FROM ${T} USING ${items}\nWHERE ${deleteMatches}\nRETURNING ${record.idText} AS reaper_id`,
      deleteArchive: archiveName
        ? `WITH reaper_deleted AS (
  DELETE FROM ${T} USING ${items}
  WHERE ${deleteMatches}
  RETURNING ${record.idText} AS reaper_deleted_id, ${columns.map((col) => c(col)).join(', ')}
), reaper_archived AS (
  INSERT INTO ${A} (${all}, ${q(ARCHIVE_TIME_COLUMN)}) SELECT ${all}, now() FROM reaper_deleted
)
SELECT reaper_deleted_id AS reaper_id FROM reaper_deleted`
        : null,
      createArchive: archiveName ? `CREATE TABLE IF NOT EXISTS ${A} (LIKE ${T}, ${q(ARCHIVE_TIME_COLUMN)} timestamptz NOT NULL DEFAULT now())` : null,
      mark: mark
        ? `UPDATE ${T} SET ${q(mark.name)} = $4 FROM ${items}\nWHERE ${itemMatches}\nRETURNING ${record.idText} AS reaper_id, coalesce(${record.fingerprint}, '') AS reaper_fp`
        : null,
      unmark: mark ? `UPDATE ${T} SET ${q(mark.name)} = NULL WHERE ${chunkIds} AND ${c(mark)} IS NOT NULL` : null,
      restoreExists: `SELECT 1 AS present FROM ${T} WHERE ${c(id)} = $1::${idType}`,
      restore: archiveName
        ? `WITH reaper_row AS (
  DELETE FROM ${A}
  WHERE ctid = (SELECT ctid FROM ${A} WHERE ${q(id.name)} = $1::${idType} ORDER BY ${q(ARCHIVE_TIME_COLUMN)} DESC LIMIT 1)
  RETURNING ${restoreList}
)
INSERT INTO ${T} (${restoreList})${overriding} SELECT ${restoreValues} FROM reaper_row RETURNING ${record.idText} AS reaper_id`
        : null,
    };

    // Compile the fragments once now, so a mistake in a where or protect rule surfaces at open.
    await pgQuery(pool, `${context}: checking the where and protect fragments`, `${select} WHERE ${scoped} LIMIT 0`);
    return new PostgresBackend(spec, scope, archiveName, pool, context, sql, stillOrphan?.parts ?? null);
  }

  /** Items travel as three arrays, whatever their number: one statement per batch. */
  protected override writeChunkSize(): number {
    return Math.max(MAX_IDS_PER_STATEMENT, this.spec.batchSize);
  }

  protected async selectPage(after: string | null, limit: number, range?: KeyRange): Promise<SqlRow[]> {
    const bounds = pageBounds(after, range);
    return this.query(this.sql.page(bounds.cursor, bounds.after, bounds.through), [...bounds.values, limit]);
  }

  protected async selectInRange(ids: readonly string[], range: KeyRange): Promise<string[]> {
    const rows = await this.query(this.sql.inRange, [ids, range.after, range.through]);
    return rows.map((row) => row.reaper_id);
  }

  protected selectRangeBounds(ranges: number): Promise<SqlRow[]> {
    return this.query(this.sql.rangeBounds(ranges), []);
  }

  protected async firstUnordered(points: readonly string[]): Promise<number> {
    let rows: SqlRow[];
    try {
      // Every point is cast, even a lone one: a value the column cannot hold is refused.
      rows = await this.query(this.sql.unordered, [points]);
    } catch (error) {
      // SQLSTATE class 22, data exception: a point that does not read as the id's type.
      if (/^22/.test(String((error as { cause?: { code?: unknown } }).cause?.code ?? ''))) return NOT_ID_VALUES;
      throw error;
    }
    const n = (rows[0] as { n?: number | null } | undefined)?.n;
    return n === null || n === undefined ? -1 : n - 1;
  }

  protected async selectIds(ids: readonly string[]): Promise<SqlRow[]> {
    return this.query(this.sql.byIds, [ids]);
  }

  protected async deleteChunk(items: readonly DeleteItem[]): Promise<DeletedChunk> {
    let restoreHandle: string | undefined;
    let statement = this.sql.delete;
    if (this.archiveName !== null) {
      await this.ensureArchive();
      statement = this.sql.deleteArchive!;
      restoreHandle = this.archiveName;
    }
    const context = restoreHandle === undefined ? this.context : `${this.context}, archiving into ${restoreHandle}`;
    const values = (chosen: readonly DeleteItem[]) => (this.keyParts === null ? itemArrays(chosen) : [...itemArrays(chosen), this.keyParts]);
    const rows = await this.keyedWrite(items, async (runner, chosen) => (await pgQuery<SqlRow>(runner, context, statement, values(chosen))).rows);
    const deleted = new Set(rows.map((row) => row.reaper_id));
    const rest = items.filter((item) => !deleted.has(item.id)).map((item) => item.id);
    const present = rest.length === 0 ? new Set<string>() : new Set((await this.query(this.sql.present, [rest])).map((row) => row.reaper_id));
    return restoreHandle === undefined ? { deleted, present } : { deleted, present, restoreHandle };
  }

  protected async markChunk(items: readonly DeleteItem[], runId: string): Promise<Map<string, string>> {
    const rows = await this.keyedWrite(items, async (runner, chosen) => (await pgQuery<SqlRow>(runner, this.context, this.sql.mark!, [...itemArrays(chosen), runId])).rows);
    return new Map(rows.map((row) => [row.reaper_id, row.reaper_fp ?? '']));
  }

  protected async unmarkChunk(ids: readonly string[]): Promise<void> {
    const inScope = this.sql.inScope === null ? ids : this.allowed(ids, await this.query(this.sql.inScope, [ids]));
    if (inScope.length > 0) await this.query(this.sql.unmark!, [inScope]);
  }

  /**
   * A write keyed on id, fingerprint and owner, over the items the fragments allow: without
   * fragments one statement; with them one transaction that first locks the chunk's rows in
   * scope and unprotected, then writes only those (docs/safety.md §18: a fragment can only drop items).
   */
  private async keyedWrite(items: readonly DeleteItem[], write: (runner: PgRunner, chosen: readonly DeleteItem[]) => Promise<SqlRow[]>): Promise<SqlRow[]> {
    const eligible = this.sql.eligible;
    if (eligible === null) return write(this.pool, items);
    return pgTransaction(this.pool, this.context, async (client) => {
      const ids = items.map((item) => item.id);
      const allowed = new Set(this.allowed(ids, (await pgQuery<SqlRow>(client, this.context, eligible, [ids])).rows));
      const chosen = items.filter((item) => allowed.has(item.id));
      return chosen.length === 0 ? [] : write(client, chosen);
    });
  }

  /** The ids of `asked` that `rows` name, exactly (whatever else the rows hold). */
  private allowed(asked: readonly string[], rows: readonly SqlRow[]): string[] {
    const named = new Set(rows.map((row) => row.reaper_id));
    return asked.filter((id) => named.has(id));
  }

  protected async createArchive(): Promise<void> {
    await this.query(this.sql.createArchive!, []);
  }

  /** One statement: delete the newest archived copy and insert it back. */
  protected async restoreRow(id: string): Promise<RestoreOutcome> {
    if ((await this.query(this.sql.restoreExists, [id])).length > 0) return 'exists-again';
    try {
      return (await this.query(this.sql.restore!, [id])).length > 0 ? 'restored' : 'no-archived-copy';
    } catch (error) {
      // Re-created between the check and the insert? (Another unique key may refuse it too.)
      if ((error as { cause?: { code?: string } }).cause?.code === '23505' && (await this.query(this.sql.restoreExists, [id])).length > 0) return 'exists-again';
      throw error;
    }
  }

  private async query(text: string, values: readonly unknown[]): Promise<SqlRow[]> {
    return (await pgQuery<SqlRow>(this.pool, this.context, text, values)).rows;
  }
}

/** The three parallel arrays the item join unnests: ids, fingerprints, owner values. */
function itemArrays(items: readonly DeleteItem[]): [string[], string[], (string | null)[]] {
  return [items.map((item) => item.id), items.map((item) => item.fingerprint), items.map((item) => item.ownerValue ?? null)];
}
