/**
 * What the PostgreSQL and MySQL adapters share: how a record is assembled from one
 * SELECT (id as text, age, size, fingerprint, owner columns, protect `where` results),
 * keyset paging, chunked reads, and the bookkeeping around conditional deletes and
 * marks. Each dialect supplies the statements (postgres-backend.ts, mysql-backend.ts).
 *
 * Record rows use fixed aliases: reaper_id, reaper_created_ms, reaper_bytes, reaper_fp,
 * reaper_o<i> (the i-th owner column as text) and reaper_p<k> (1 when the k-th protect
 * `where` holds, else 0).
 *
 * The fingerprint of a row is its fingerprint expression as text; a NULL (a version
 * column that is NULL) reads as ''. The server-side check is "expression IS NOT DISTINCT
 * FROM NULLIF(fingerprint, '')", so a version column holding '' never matches: such a
 * row is reported `changed` rather than risk confusing '' with NULL.
 *
 * The `where` and protect fragments are the manifest author's SQL (checked at load to be
 * one self-contained expression, manifest/sql-fragment.ts) and can only narrow (docs/safety.md §18):
 * - statements that write (delete, archive, mark, unmark) hold no fragment at all: they are
 *   keyed on id, fingerprint and owner. The fragments are judged first, in a separate
 *   SELECT over the same ids (locking them), and only ids both that SELECT and the items
 *   name are written. Whatever text a fragment holds, it can only drop items.
 * - statements that read hold each fragment as `CASE WHEN (fragment) THEN 1 ELSE 0 END`,
 *   so an OR in it stays inside the CASE; a scan that meets a row of its previous page
 *   again (an OR lifted above the cursor) stops with an error instead of paging forever.
 * The CASE keeps the planner from using an index on the fragment's columns; scans page on
 * the primary key, so they read the key range either way.
 */
import type { ResourceRecord } from '../../engine/types.js';
import type { ShardPart } from '../../engine/shard.js';
import { BackendError, UsageError } from '../../errors.js';
import type { ResourceSpec, SqlLocation } from '../../manifest/types.js';
import type { Backend, BackendCapabilities, DeleteItem, DeleteResult, ScanOptions, ScanPage } from '../types.js';
import { MAX_IDS_PER_STATEMENT, chunk, quoteIdentifier, quoteQualified, splitTableName } from '../../sql/text.js';

export type SqlResourceSpec = ResourceSpec & { location: SqlLocation };

/** The column an archive table adds to the resource's columns. */
export const ARCHIVE_TIME_COLUMN = 'reaper_deleted_at';

/** A shard's key range: after `after` (exclusive) through `through` (inclusive); null is unbounded. */
export interface KeyRange {
  after: string | null;
  through: string | null;
}

/** firstUnordered: a split point is not a value of the id column's type. */
export const NOT_ID_VALUES = -2;

/** What restoring one id found. */
export type RestoreOutcome = 'restored' | 'exists-again' | 'no-archived-copy';

/** The SQL expressions, over the resource's table, that a record is made of. */
export interface RecordSql {
  idText: string;
  createdMs: string;
  bytes: string;
  /** May be NULL for a row (a NULL version column). */
  fingerprint: string;
  /** Owner columns as text, in the order of `ownerColumns`. */
  owners: readonly string[];
  /** The protect rules' `where` fragments, in the order of `protectRules`. */
  protects: readonly string[];
}

export interface SqlRow {
  reaper_id: string;
  reaper_created_ms?: unknown;
  reaper_bytes?: unknown;
  reaper_fp?: string | null;
  [alias: string]: unknown;
}

/** Result of one delete statement (or transaction) over a chunk of distinct ids. */
export interface DeletedChunk {
  /** Ids deleted, as text. */
  deleted: ReadonlySet<string>;
  /** Ids still present after the statement (changed, protected or out of scope). */
  present: ReadonlySet<string>;
  restoreHandle?: string;
}

/** Owner columns named by the owner rules, by their manifest name, in rule order without repeats. */
export function ownerColumns(spec: Pick<ResourceSpec, 'owners'>): string[] {
  const names: string[] = [];
  for (const rule of spec.owners) {
    if (rule.extractor.from === 'column' && !names.includes(rule.extractor.name)) names.push(rule.extractor.name);
  }
  return names;
}

/**
 * `reaper split-points`: the last row of each of `ranges` equal-count ranges of the rows in
 * scope, in the id column's order (the order the shards' ranges compare in): its id as text and
 * its row number. Window functions (PostgreSQL, MySQL 8, MariaDB 10.2); one pass over the id
 * index. `ranges` is a checked integer, written as a literal (NTILE takes no parameter on MariaDB).
 */
export function rangeBoundsStatement(dialect: 'postgres' | 'mysql', table: string, id: string, idText: string, scoped: string, ranges: number): string {
  if (!Number.isSafeInteger(ranges) || ranges < 1) throw new RangeError(`ranges must be a positive integer, got ${ranges}`);
  const differs = dialect === 'postgres' ? 't.reaper_next IS DISTINCT FROM t.reaper_part' : 'NOT (t.reaper_next <=> t.reaper_part)';
  return `SELECT t.reaper_id, t.reaper_rn FROM (
  SELECT s.reaper_id, s.reaper_rn, s.reaper_part, lead(s.reaper_part) OVER (ORDER BY s.reaper_rn) AS reaper_next FROM (
    SELECT ${idText} AS reaper_id, row_number() OVER (ORDER BY ${id}) AS reaper_rn, ntile(${ranges}) OVER (ORDER BY ${id}) AS reaper_part
      FROM ${table} WHERE ${scoped}
  ) s
) t WHERE ${differs} ORDER BY t.reaper_rn`;
}

/** The protect rules a SQL backend evaluates: their index in `spec.protect` and their SQL. */
export function protectRules(spec: Pick<ResourceSpec, 'protect'>): { index: number; sql: string }[] {
  const rules: { index: number; sql: string }[] = [];
  spec.protect.forEach((rule, index) => {
    if (rule.kind === 'where') rules.push({ index, sql: rule.sql });
  });
  return rules;
}

/**
 * The archive table of a resource: the manifest's name, in the resource's own schema
 * (PostgreSQL) or database (MySQL) unless qualified. Its `name` is the restore handle.
 */
export function archiveTable(spec: SqlResourceSpec, namespace: string, tableName: string, context: string): { name: string; parts: [string, string] } | null {
  if (!spec.archive) return null;
  const target = splitTableName(spec.archive.table);
  const parts: [string, string] = [target.schema ?? namespace, target.table];
  const name = parts.join('.');
  if (name === tableName) throw new BackendError(`${context}: the archive table must not be the resource's own table`);
  return { name, parts };
}

/** A fragment as 1 when it holds and 0 otherwise (NULL counts as not holding, as in a WHERE); an OR in it stays inside. */
export function fragmentCase(sql: string): string {
  return `CASE WHEN (${sql}) THEN 1 ELSE 0 END`;
}

/** The condition of the resource's scope (its `where`), for statements that read; none without a `where`. */
export function scopeConditions(where: string | undefined): string[] {
  return where === undefined ? [] : [`${fragmentCase(where)} = 1`];
}

/**
 * Conditions a row must meet to be marked or deleted: inside the resource's `where`, no
 * protect rule holding. Only for the SELECT that judges them, never inside a write.
 */
export function eligibilityConditions(where: string | undefined, protects: readonly string[]): string[] {
  return [...scopeConditions(where), ...protects.map((sql) => `${fragmentCase(sql)} = 0`)];
}

/** The select list that yields a SqlRow. */
export function recordSelectList(sql: RecordSql): string {
  return [
    `${sql.idText} AS reaper_id`,
    `${sql.createdMs} AS reaper_created_ms`,
    `${sql.bytes} AS reaper_bytes`,
    `${sql.fingerprint} AS reaper_fp`,
    ...sql.owners.map((expression, i) => `${expression} AS reaper_o${i}`),
    ...sql.protects.map((fragment, k) => `${fragmentCase(fragment)} AS reaper_p${k}`),
  ].join(', ');
}

/** The names a SQL backend goes by: the table as `schema.table`, its `scope` (`<kind> schema.table`) and the `context` of its messages (with its connection). */
export function tableNames(kind: 'postgres' | 'mysql', namespace: string, name: string, connection: string): { displayName: string; scope: string; context: string } {
  const displayName = `${namespace}.${name}`;
  const scope = `${kind} ${displayName}`;
  return { displayName, scope, context: `${scope} (connection "${connection}")` };
}

/** How a dialect writes a statement's n-th parameter (1-based) as an id value, and as the LIMIT. */
export interface PageParams {
  id: (n: number) => string;
  limit: (n: number) => string;
}

/**
 * The statements that read a resource's records, the same in every dialect but for how a
 * parameter is written: the record SELECT, the scope conditions (the `where` and a non-NULL id),
 * the eligibility conditions, and a keyset page in id order with the bounds it has (the cursor,
 * a shard range's `after` and `through`, in that order, then the limit).
 */
export function readStatements(
  table: string,
  id: string,
  record: RecordSql,
  where: string | undefined,
  params: PageParams,
): { select: string; inWhere: string[]; scoped: string; eligible: string[]; page: (cursor: boolean, after: boolean, through: boolean) => string } {
  const select = `SELECT ${recordSelectList(record)} FROM ${table}`;
  const inWhere = scopeConditions(where);
  const scoped = [`${id} IS NOT NULL`, ...inWhere].join(' AND ');
  const page = (cursor: boolean, after: boolean, through: boolean) => {
    const conditions = [scoped];
    let n = 0;
    if (cursor) conditions.push(`${id} > ${params.id(++n)}`);
    if (after) conditions.push(`${id} > ${params.id(++n)}`);
    if (through) conditions.push(`${id} <= ${params.id(++n)}`);
    return `${select} WHERE ${conditions.join(' AND ')} ORDER BY ${id} LIMIT ${params.limit(++n)}`;
  };
  return { select, inWhere, scoped, eligible: eligibilityConditions(where, record.protects), page };
}

/** The bounds of a page, as `readStatements`' `page` takes them: which it has, and their values in order. */
export function pageBounds(after: string | null, range?: KeyRange): { cursor: boolean; after: boolean; through: boolean; values: string[] } {
  const bounds = [after, range?.after ?? null, range?.through ?? null];
  return { cursor: bounds[0] !== null, after: bounds[1] !== null, through: bounds[2] !== null, values: bounds.filter((b): b is string => b !== null) };
}

/**
 * A resource's archive (null without one) and the column lists that copy its rows there and
 * back: every column into the archive; the restorable ones (not generated) back, the mark
 * column cleared (a restored row is no longer tombstoned).
 */
export function archiveColumns<C extends { name: string }>(
  archive: { parts: [string, string] } | null,
  dialect: 'postgres' | 'mysql',
  columns: readonly C[],
  mark: C | null,
  generated: (col: C) => boolean,
): { table: string; all: string; restorable: C[]; restoreList: string; restoreValues: string } {
  const q = (name: string) => quoteIdentifier(dialect, name);
  const restorable = columns.filter((col) => !generated(col));
  return {
    table: archive ? quoteQualified(dialect, archive.parts) : '',
    all: columns.map((col) => q(col.name)).join(', '),
    restorable,
    restoreList: restorable.map((col) => q(col.name)).join(', '),
    restoreValues: restorable.map((col) => (col === mark ? 'NULL' : q(col.name))).join(', '),
  };
}

/** Whether a row's current fingerprint (NULL for a NULL version column) is the one captured. */
export function fingerprintMatches(current: string | null | undefined, captured: string): boolean {
  if (current === null || current === undefined) return captured === '';
  return captured !== '' && current === captured;
}

function finiteOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/** The primary key as text, the way a dialect renders it (checked once per row). */
function idOf(row: SqlRow): string {
  const id = row.reaper_id;
  if (typeof id !== 'string') throw new BackendError(`a row's id did not read as text (got ${typeof id})`);
  return id;
}

/** Turn a row that carries the aliases of `recordSelectList` into a record. */
export function rowToRecord(row: SqlRow, owners: readonly string[], protects: readonly { index: number }[]): ResourceRecord {
  const created = finiteOrNull(row.reaper_created_ms);
  const columns: Record<string, string | null> = {};
  owners.forEach((name, i) => {
    const value = row[`reaper_o${i}`];
    columns[name] = value === null || value === undefined ? null : String(value);
  });
  const protectMatches: Record<number, boolean> = {};
  protects.forEach((rule, k) => {
    protectMatches[rule.index] = Number(row[`reaper_p${k}`]) === 1;
  });
  return {
    id: idOf(row),
    createdAtMs: created === null ? null : Math.floor(created),
    bytes: finiteOrNull(row.reaper_bytes),
    fingerprint: row.reaper_fp ?? '',
    columns,
    protectMatches,
  };
}

/**
 * The part of a SQL backend that does not depend on the dialect. Subclasses provide the
 * statements; this class pages, chunk, checks arguments and turns statement results
 * into one outcome per item.
 */
export abstract class SqlBackend implements Backend {
  abstract readonly kind: 'postgres' | 'mysql';
  readonly scope: string;
  protected readonly owners: string[];
  protected readonly protects: { index: number; sql: string }[];
  /** Present only when the resource has a mark column. */
  readonly mark?: (items: readonly DeleteItem[], runId: string, signal?: AbortSignal) => Promise<Map<string, string>>;
  readonly unmark?: (items: readonly DeleteItem[], signal?: AbortSignal) => Promise<void>;
  private archiveReady: Promise<void> | null = null;
  private splitsChecked: Promise<void> | null = null;

  protected constructor(
    protected readonly spec: SqlResourceSpec,
    scope: string,
    /** `schema.table` of the archive (the restore handle); null without archive. */
    protected readonly archiveName: string | null,
  ) {
    this.scope = scope;
    this.owners = ownerColumns(spec);
    this.protects = protectRules(spec);
    if (this.owners.length === 0) throw new BackendError(`${scope}: a SQL resource needs an owner column`);
    if (spec.mark?.kind === 'column') {
      this.mark = (items, runId, signal) => this.markItems(items, runId, signal);
      this.unmark = (items, signal) => this.unmarkItems(items, signal);
    }
  }

  /** For `validate`: where deleted rows are archived; the table is created at the first archiving delete (createArchive). */
  reapNotes(): string[] {
    return this.archiveName === null ? [] : [`archive: deleted rows are copied into ${this.archiveName}, which the first reap that deletes creates if it does not exist`];
  }

  /**
   * Items per conditional delete or mark statement. The default keeps IN lists short; a
   * dialect that sends a chunk as arrays (PostgreSQL's unnest) or as a row list the server
   * matches set-wise takes the type's whole `batchSize` in one statement.
   */
  protected writeChunkSize(): number {
    return MAX_IDS_PER_STATEMENT;
  }

  /**
   * One page of record rows in id order, after `after` (exclusive) when given, and inside
   * `range` (after `range.after`, through `range.through`, in the id column's order) when given.
   */
  protected abstract selectPage(after: string | null, limit: number, range?: KeyRange): Promise<SqlRow[]>;
  /** The ids among `ids` (distinct, at most MAX_IDS_PER_STATEMENT) inside `range`, compared as values of the id column. */
  protected abstract selectInRange(ids: readonly string[], range: KeyRange): Promise<string[]>;
  /**
   * The 0-based index of the first of `points` that is not above the one before it in the id
   * column's order, -1 when they ascend, NOT_ID_VALUES when one is not a value of the column's type.
   */
  protected abstract firstUnordered(points: readonly string[]): Promise<number>;
  /** Record rows for up to MAX_IDS_PER_STATEMENT ids (inside the resource's `where`). */
  protected abstract selectIds(ids: readonly string[]): Promise<SqlRow[]>;
  /** Delete a chunk of items with distinct ids conditionally, in one statement or transaction. */
  protected abstract deleteChunk(items: readonly DeleteItem[]): Promise<DeletedChunk>;
  /** Set the mark column on a chunk of items with distinct ids conditionally; id → new fingerprint. */
  protected abstract markChunk(items: readonly DeleteItem[], runId: string): Promise<Map<string, string>>;
  /** Clear the mark column of a chunk of distinct ids inside the `where`. */
  protected abstract unmarkChunk(ids: readonly string[]): Promise<void>;

  /** The rows of `rangeBoundsStatement` for `ranges`. */
  protected abstract selectRangeBounds(ranges: number): Promise<SqlRow[]>;
  /** Create the archive table when missing (called once, before the first archiving delete). */
  protected abstract createArchive(): Promise<void>;
  /** Move the newest archived copy of `id` back into the table, atomically. */
  protected abstract restoreRow(id: string): Promise<RestoreOutcome>;

  async capabilities(): Promise<BackendCapabilities> {
    return { deleteMode: 'sql-conditional' };
  }

  protected toRecord(row: SqlRow): ResourceRecord {
    return rowToRecord(row, this.owners, this.protects);
  }

  /** A shard's part is a primary-key range (docs/scale-out.md), added to every page's WHERE. */
  async *scan(options: ScanOptions): AsyncIterable<ScanPage> {
    const { pageSize, signal } = options;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer, got ${pageSize}`);
    const range = await this.rangeOf(options.part);
    if (range === null) {
      yield { records: [], cursor: null };
      return;
    }
    let after = options.cursor ?? null;
    let previous = new Set<string>();
    // One row more than a page tells whether another page follows.
    const ask = (from: string | null): Promise<SqlRow[]> => {
      const rows = this.selectPage(from, pageSize + 1, range);
      // Observed when awaited; a scan its caller stops early leaves it unawaited.
      rows.catch(() => undefined);
      return rows;
    };
    let next: Promise<SqlRow[]> | null = null;
    while (true) {
      signal?.throwIfAborted();
      const rows: SqlRow[] = await (next ?? ask(after));
      const more = rows.length > pageSize;
      const records = rows.slice(0, pageSize).map((row) => this.toRecord(row));
      const again = records.find((r) => previous.has(r.id));
      if (again) {
        throw new BackendError(`${this.scope}: the scan met row ${JSON.stringify(again.id)} again after paging past it; the where fragment reaches outside its own expression`);
      }
      previous = new Set(records.map((r) => r.id));
      after = more ? records[records.length - 1]!.id : null;
      // The next page is asked for now, while the caller judges this one: the server's
      // read overlaps reaper's work instead of following it (two pages in memory at most).
      next = more ? ask(after) : null;
      yield { records, cursor: after };
      if (!more) return;
    }
  }

  async splitPoints(ranges: number, signal?: AbortSignal): Promise<{ points: string[]; counted: number }> {
    signal?.throwIfAborted();
    const rows = await this.selectRangeBounds(ranges);
    const counted = rows.length === 0 ? 0 : Number((rows.at(-1) as { reaper_rn?: unknown }).reaper_rn);
    // The last range's bound is the last row: no point above it.
    return { points: rows.slice(0, -1).map((row) => String(row.reaper_id)), counted };
  }

  async inPart(ids: readonly string[], part: ShardPart, signal?: AbortSignal): Promise<Set<string>> {
    const range = await this.rangeOf(part);
    if (range === null) return new Set();
    if (range.after === null && range.through === null) return new Set(ids);
    const out = new Set<string>();
    for (const part of chunk([...new Set(ids)], MAX_IDS_PER_STATEMENT)) {
      signal?.throwIfAborted();
      for (const id of await this.selectInRange(part, range)) out.add(id);
    }
    return out;
  }

  /**
   * The key range of a shard's part (null for none, unbounded for all). Before the first
   * ranged statement the split points are checked to ascend in the id column's order, so
   * every shard refuses a list that would make its ranges overlap (exit 2).
   */
  private async rangeOf(part: ShardPart | undefined): Promise<KeyRange | null> {
    if (part === undefined || part.kind === 'all') return { after: null, through: null };
    if (part.kind === 'hash') throw new BackendError(`${this.scope}: a SQL type is sharded by primary-key ranges, not by hash`);
    // Also on a shard with none of the type: every shard refuses the list alike.
    this.splitsChecked ??= this.checkSplitPoints().catch((error: unknown) => {
      this.splitsChecked = null;
      throw error;
    });
    await this.splitsChecked;
    return part.kind === 'none' ? null : { after: part.after, through: part.through };
  }

  private async checkSplitPoints(): Promise<void> {
    const points = this.spec.splitPoints ?? [];
    const key = `resource ${this.spec.name}${this.spec.line === null ? '' : ` (line ${this.spec.line})`}: shard.splitPoints`;
    const bad = await this.firstUnordered(points);
    if (bad === NOT_ID_VALUES) throw new UsageError(`${key}: not all are values of the type of the id column ${this.spec.location.id} of ${this.scope}`);
    if (bad >= 0) {
      throw new UsageError(`${key}[${bad}]: ${JSON.stringify(points[bad])} is not above ${JSON.stringify(points[bad - 1])} in the order of the id column ${this.spec.location.id}; split points must ascend`);
    }
  }

  async read(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, ResourceRecord>> {
    const wanted = new Set(ids);
    const out = new Map<string, ResourceRecord>();
    for (const part of chunk([...wanted], MAX_IDS_PER_STATEMENT)) {
      signal?.throwIfAborted();
      for (const row of await this.selectIds(part)) {
        const record = this.toRecord(row);
        // Only exact ids: a server may call two spellings equal (a collation, a numeric 1.0 = 1).
        if (wanted.has(record.id)) out.set(record.id, record);
      }
    }
    return out;
  }

  /**
   * One result per item, in order. Items are sent in chunk of distinct ids (a repeated
   * id goes in a later round, where it reads as absent or changed). After a chunk fails,
   * or the signal aborts, the remaining items are reported `failed` without being sent.
   */
  async delete(items: readonly DeleteItem[], signal?: AbortSignal): Promise<DeleteResult[]> {
    this.checkItems(items);
    const results = new Array<DeleteResult>(items.length);
    let stop: string | null = null;
    for (const round of distinctRounds(items)) {
      for (const part of chunk(round, this.writeChunkSize())) {
        if (stop === null && signal?.aborted) stop = 'not attempted: the run was interrupted';
        if (stop !== null) {
          for (const i of part) results[i] = { id: items[i]!.id, outcome: 'failed', error: stop };
          continue;
        }
        try {
          const outcome = await this.deleteChunk(part.map((i) => items[i]!));
          for (const i of part) {
            const id = items[i]!.id;
            if (outcome.deleted.has(id)) {
              results[i] = outcome.restoreHandle === undefined ? { id, outcome: 'deleted' } : { id, outcome: 'deleted', restoreHandle: outcome.restoreHandle };
            } else {
              results[i] = { id, outcome: outcome.present.has(id) ? 'changed' : 'absent' };
            }
          }
        } catch (error) {
          const message = (error as Error).message;
          for (const i of part) results[i] = { id: items[i]!.id, outcome: 'failed', error: message };
          stop = `not attempted after an earlier batch failed: ${message}`;
        }
      }
    }
    return results;
  }

  private async markItems(items: readonly DeleteItem[], runId: string, signal?: AbortSignal): Promise<Map<string, string>> {
    this.checkItems(items);
    if (typeof runId !== 'string' || runId === '') throw new TypeError('mark needs a non-empty run id');
    const out = new Map<string, string>();
    const seen = new Set<string>();
    const distinct = items.filter((item) => !seen.has(item.id) && seen.add(item.id));
    for (const part of chunk(distinct, this.writeChunkSize())) {
      signal?.throwIfAborted();
      for (const [id, fingerprint] of await this.markChunk(part, runId)) out.set(id, fingerprint);
    }
    return out;
  }

  /**
   * Clears the mark of every listed row still inside the `where`, whatever its fingerprint:
   * a tombstone is often lifted because its row changed, and that row's mark must go too.
   * Clearing reaper's own column deletes nothing, so no identity re-check is needed.
   */
  private async unmarkItems(items: readonly DeleteItem[], signal?: AbortSignal): Promise<void> {
    const ids = [...new Set(items.map((item) => item.id))];
    for (const part of chunk(ids, MAX_IDS_PER_STATEMENT)) {
      signal?.throwIfAborted();
      await this.unmarkChunk(part);
    }
  }

  async restore(id: string, handle: string, signal?: AbortSignal): Promise<void> {
    if (this.archiveName === null) throw new BackendError(`${this.scope}: the resource has no archive to restore from`);
    if (handle !== this.archiveName && handle !== this.spec.archive?.table) {
      throw new BackendError(`${this.scope}: restore handle ${JSON.stringify(handle)} is not this resource's archive table ${this.archiveName}`);
    }
    signal?.throwIfAborted();
    const outcome = await this.restoreRow(id);
    if (outcome === 'exists-again') {
      throw new BackendError(`${this.scope}: row ${JSON.stringify(id)} exists again; not restored (its archived copy stays in ${this.archiveName})`);
    }
    if (outcome === 'no-archived-copy') throw new BackendError(`${this.scope}: no archived copy of row ${JSON.stringify(id)} in ${this.archiveName}`);
  }

  /** The archive table, created on first need; a failed attempt is retried by the next call. */
  protected ensureArchive(): Promise<void> {
    this.archiveReady ??= this.createArchive().catch((error: unknown) => {
      this.archiveReady = null;
      throw error;
    });
    return this.archiveReady;
  }

  /** The identity a conditional statement needs must be complete; a blank owner must never mean "any owner". */
  private checkItems(items: readonly DeleteItem[]): void {
    for (const item of items) {
      if (typeof item.id !== 'string' || typeof item.fingerprint !== 'string') throw new TypeError(`${this.scope}: an item needs a string id and fingerprint`);
      if (item.ownerValue === undefined) {
        throw new TypeError(`${this.scope}: item ${JSON.stringify(item.id)} has no ownerValue; SQL deletes and marks re-check the owner column (see rawOwnerValue in engine/reap-plan.ts)`);
      }
    }
  }

  /** The pool is shared per connection and closed with the other connections. */
  async close(): Promise<void> {}
}

/** Item indexes grouped so that no group repeats an id: the first occurrence of each id, then the second, … */
function distinctRounds(items: readonly DeleteItem[]): number[][] {
  const rounds: number[][] = [];
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const n = seen.get(item.id) ?? 0;
    seen.set(item.id, n + 1);
    (rounds[n] ??= []).push(i);
  });
  return rounds;
}

/**
 * The catalog column a manifest name refers to: the exact name, else the one column
 * that matches ignoring case (PostgreSQL folds unquoted names to lower case).
 */
export function resolveColumn<C extends { name: string }>(columns: readonly C[], wanted: string, role: string, table: string): C {
  const exact = columns.find((c) => c.name === wanted);
  if (exact) return exact;
  const folded = columns.filter((c) => c.name.toLowerCase() === wanted.toLowerCase());
  if (folded.length === 1) return folded[0]!;
  const names = columns.map((c) => c.name);
  const list = names.length > 30 ? `${names.slice(0, 30).join(', ')}, …` : names.join(', ');
  throw new BackendError(`${table} has no column "${wanted}" (named by ${role}); its columns are: ${list}`);
}

/** The catalog columns the manifest names for a resource: id, createdAt, version, mark and owners. */
export function namedColumns<C extends { name: string }>(
  columns: readonly C[],
  spec: SqlResourceSpec,
  table: string,
): { id: C; createdAt: C; version: C | null; mark: C | null; owners: C[] } {
  const column = (name: string, role: string) => resolveColumn(columns, name, role, table);
  const location = spec.location;
  return {
    id: column(location.id, 'id'),
    createdAt: column(location.createdAt, 'createdAt'),
    version: location.version === undefined ? null : column(location.version, 'version'),
    mark: spec.mark?.kind === 'column' ? column(spec.mark.column, 'mark.column') : null,
    owners: ownerColumns(spec).map((name) => column(name, 'owner.column')),
  };
}
