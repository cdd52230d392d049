/**
 * The manifest schema, version 1: the single source of truth. Types come from it
 * (`z.input`), the editor JSON Schema in config/ is generated from it, and load.ts
 * validates with it. Cross-field rules (a connection of the right kind, an owner
 * extractor the backend can read, a protect rule it can evaluate) live in
 * `checkManifest` below so that every issue carries the path of the key at fault.
 */
import { z } from 'zod';
import { closestWord } from '../util/suggest.js';
import { parseDuration } from './duration.js';
import { patternProblem } from './pattern.js';
import { sqlFragmentProblem } from './sql-fragment.js';
import type { BackendKind } from './types.js';

/** SQL identifiers: validated against a strict pattern, then quoted by the adapters. */
export const SQL_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const RESOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MAX_PATTERN_LENGTH = 1_000;

const duration = z
  .string({
    // A YAML number (`ttl: 600`) is the usual slip: say it lacks a unit rather than "expected string".
    error: (iss) => {
      if (iss.input === undefined) return undefined;
      if (typeof iss.input === 'number') {
        const parsed = parseDuration(String(iss.input));
        if (typeof parsed !== 'number') return parsed.error;
      }
      return 'expected a duration such as 30s, 10m, 24h or 7d';
    },
  })
  .superRefine((value, ctx) => {
    const parsed = parseDuration(value);
    if (typeof parsed !== 'number') ctx.addIssue({ code: 'custom', message: parsed.error });
  })
  .meta({ description: 'A whole number and a unit: ms, s, m, h or d (e.g. 30s, 10m, 24h, 7d).', pattern: '^[0-9]+(ms|s|m|h|d)$' });

const identifier = z
  .string()
  .regex(SQL_IDENTIFIER, 'expected an SQL identifier: a letter or _, then letters, digits or _ (at most 63)');

const tableName = z
  .string()
  .refine((value) => {
    const parts = value.split('.');
    return parts.length <= 2 && parts.every((part) => SQL_IDENTIFIER.test(part));
  }, 'expected a table name "table" or "schema.table" made of SQL identifiers');

const pattern = z
  .string()
  .min(1)
  .max(MAX_PATTERN_LENGTH)
  .meta({ description: 'A regular expression in RE2 syntax (no lookaround or backreferences), matched in linear time.' });

const sqlFragment = z
  .string()
  .min(1)
  .max(4_000)
  .meta({
    description:
      'One self-contained SQL boolean expression over the table\'s columns: parentheses balanced outside literals, no comment, no ";", no bound parameter, no top-level ORDER/GROUP/LIMIT/UNION/FOR/… (checked at load in the resource\'s dialect).',
  });

const count = z.number().int().positive();
const fraction = z.number().gt(0).max(1);

// ---------------------------------------------------------------- connections

const s3Connection = z.strictObject({
  kind: z.literal('s3'),
  region: z.string().min(1).optional(),
  endpoint: z.string().min(1).optional().meta({ description: 'The http:// or https:// URL of an S3-compatible server (default: AWS S3).' }),
  forcePathStyle: z.boolean().optional(),
  profile: z.string().min(1).optional(),
  accessKeyId: z.string().min(1).optional(),
  secretAccessKey: z.string().min(1).optional(),
  sessionToken: z.string().min(1).optional(),
  maxAttempts: z.number().int().min(1).max(20).optional(),
  concurrency: z.number().int().min(1).max(256).optional().meta({ description: 'Parallel HeadObject/GetObjectTagging/DeleteObject requests (default 16).' }),
});

const sqlConnection = (kind: 'postgres' | 'mysql') =>
  z.strictObject({
    kind: z.literal(kind),
    url: z.string().min(1),
    poolSize: z.number().int().min(1).max(100).optional(),
    statementTimeout: duration.optional(),
  });

const CONNECTION_KINDS = ['s3', 'postgres', 'mysql'];
const connection = z.discriminatedUnion('kind', [s3Connection, sqlConnection('postgres'), sqlConnection('mysql')], {
  // A misspelt kind names the one meant: `postgress`, `S3`.
  error: (issue) => {
    const kind = (issue.input as { kind?: unknown } | null | undefined)?.kind;
    const meant = typeof kind === 'string' ? closestWord(kind, CONNECTION_KINDS) : undefined;
    return `expected kind: s3, postgres or mysql${meant ? ` (did you mean ${meant}?)` : ''}`;
  },
});

// ---------------------------------------------------------------- owners (liveness sources)

const livenessSource = z.strictObject({
  leases: z.strictObject({}).optional().meta({ description: 'Unexpired leases in the state store.' }),
  sql: z
    .strictObject({
      connection: z.string().min(1),
      query: z.string().min(1).max(10_000),
    })
    .optional()
    .meta({ description: 'A query on a postgres or mysql connection returning one column of live keys.' }),
  static: z.array(z.string().min(1)).optional().meta({ description: 'Keys that are always live.' }),
});

// ---------------------------------------------------------------- resources

const s3Location = z.strictObject({
  connection: z.string().min(1),
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit'),
  prefix: z.string().max(1_024).default(''),
  allowEmptyPrefix: z.boolean().optional().meta({ description: 'Allow a scope that is a whole bucket.' }),
  inventory: z
    .strictObject({
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit').optional(),
      prefix: z.string().min(1).max(1_024),
    })
    .optional()
    .meta({
      description:
        'Read the newest S3 Inventory report (CSV or Parquet) under bucket/prefix (the folder of one inventory configuration, holding <time>/manifest.json) instead of listing: objects written since the report are not seen, and a reap re-reads each due tombstone (docs/scale-out.md).',
    }),
  requireVersioning: z
    .boolean()
    .optional()
    .meta({
      description:
        'Refuse to reap (exit 4, nothing marked) unless the bucket has versioning enabled: in an unversioned bucket a key recreated with identical bytes (the same ETag) is deleted against its predecessor\'s tombstone.',
    }),
  deleteMode: z
    .enum(['auto', 'batch-if-match', 'per-object-if-match'])
    .default('auto')
    .meta({
      description:
        'How deletes are sent. auto (default): probe the endpoint once (it writes and removes one object under the prefix) and use DeleteObjects batches only where a wrong per-object ETag is refused. ' +
        'batch-if-match: no probe; DeleteObjects with up to 1,000 keys, each with its ETag (in a versioning-enabled bucket the current version of each key is checked first by listing, and a delete marker is added). ' +
        'per-object-if-match: no probe; one DeleteObject with If-Match per key. ' +
        'The two explicit modes assert that the endpoint enforces the ETag as that mode sends it (AWS S3 general purpose buckets do, in both); where it does not, the deletes are NOT conditional: moto ignores per-object ETags in DeleteObjects (batch-if-match), and some S3-compatible servers ignore If-Match altogether.',
    }),
});

const sqlLocation = z.strictObject({
  connection: z.string().min(1),
  table: tableName,
  id: identifier.meta({ description: 'Primary-key column (any orderable type); scans page on it.' }),
  createdAt: identifier.meta({ description: 'Column holding the creation time; ages come from it.' }),
  where: sqlFragment.optional(),
  version: identifier.optional().meta({ description: 'Column that changes on every update; the fingerprint (default: xmin on PostgreSQL, a hash of every stored column on MySQL).' }),
});

const fsLocation = z.strictObject({
  path: z.string().min(1),
  glob: z.string().min(1).max(MAX_PATTERN_LENGTH).optional(),
  allowRoot: z.boolean().optional().meta({ description: 'Allow a scope that is a filesystem root.' }),
});

// Handler kinds (docs/resource-protocol.md): a resource type served by a program or a webhook.
const handlerPolicy = {
  conditional: z
    .boolean()
    .optional()
    .meta({ description: 'The handler checks each fingerprint before it deletes (default true). false: it cannot; reap then needs allowUnconditional: true.' }),
  allowUnconditional: z.boolean().optional().meta({ description: 'Reap this type although its handler declares conditional: false (every plan says so).' }),
  timeout: duration.optional().meta({ description: 'Time limit of each handler call (default 60s); a command still running then is killed.' }),
  maxLineBytes: z.number().int().min(256).max(64 * 1024 * 1024).optional().meta({ description: 'Longest line of handler output accepted (default 1 MiB).' }),
  maxOutputBytes: z.number().int().min(1024).optional().meta({ description: 'Most bytes of output accepted from one handler call (default 256 MiB).' }),
};

const commandLine = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .meta({ description: 'A command: a string run by /bin/sh -c, or a list [program, arg, …] run as is; in the manifest\'s directory.' });

const commandLocation = z.strictObject({
  list: commandLine,
  delete: commandLine,
  mark: commandLine.optional(),
  unmark: commandLine.optional(),
  restore: commandLine.optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), z.string()).optional(),
  ...handlerPolicy,
});

const httpLocation = z.strictObject({
  url: z.string().regex(/^https?:\/\/[^/]/i, 'expected an http:// or https:// URL').meta({ description: 'Base http:// or https:// URL; operations are POSTed to URL/list, URL/delete, URL/mark, URL/unmark, URL/restore.' }),
  token: z
    .union([z.strictObject({ file: z.string().min(1) }), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') })])
    .optional()
    .meta({ description: 'Bearer token sent with every request: read from a file (relative to the manifest) or an environment variable.' }),
  ca: z.string().min(1).optional().meta({ description: 'PEM file of a CA to trust for https (besides the system\'s); certificates are always verified.' }),
  mark: z.boolean().optional().meta({ description: 'The webhook serves mark and unmark (a visible marker).' }),
  restore: z.boolean().optional().meta({ description: 'The webhook serves restore.' }),
  ...handlerPolicy,
});

export const ownerSpec = z.strictObject({
  metadata: z.string().min(1).optional().meta({ description: 'S3 user-metadata entry (one HeadObject per object).' }),
  tag: z.string().min(1).optional().meta({ description: 'S3 object tag (one GetObjectTagging per object).' }),
  keyPattern: pattern.optional().meta({ description: 'Regex with a named group "owner", on the S3 key.' }),
  pathPattern: pattern.optional().meta({ description: 'Regex with a named group "owner", on the path relative to fs.path.' }),
  column: identifier.optional().meta({ description: 'SQL column holding the owner.' }),
  attribute: z.string().min(1).optional().meta({ description: 'A handler record\'s attribute (command and http kinds).' }),
  key: z
    .string()
    .includes('{value}', { message: 'a key template must contain {value}' })
    .optional()
    .meta({ description: 'Template turning the value read into an owner key, e.g. "session:{value}".' }),
  ref: z.string().regex(RESOURCE_NAME).optional().meta({ description: 'The value read is the id of a resource of this type.' }),
});

const protectRule = z.strictObject({
  tag: z.record(z.string(), z.string()).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  keyPattern: pattern.optional(),
  pathPattern: pattern.optional(),
  where: sqlFragment.optional(),
  attribute: z.record(z.string(), z.string()).optional(),
});

const markSpec = z.union([
  z.literal('tag'),
  z.strictObject({ tag: z.string().min(1).max(128) }),
  z.strictObject({ column: identifier }),
]);

/** Settings a resource may set itself or inherit from `defaults`. */
const policyFields = {
  ttl: duration.optional(),
  minAge: duration.optional(),
  grace: duration.optional(),
  batchSize: count.max(10_000).optional(),
  maxDeletesPerRun: count.optional(),
  maxDeleteFraction: fraction.optional(),
  onExpired: z.enum(['report', 'reap']).optional(),
};

const resource = z.strictObject({
  name: z.string().regex(RESOURCE_NAME, 'expected a name of letters, digits, "-", "_" or "." (at most 63)'),
  s3: s3Location.optional(),
  postgres: sqlLocation.optional(),
  mysql: sqlLocation.optional(),
  fs: fsLocation.optional(),
  command: commandLocation.optional(),
  http: httpLocation.optional(),
  owner: z.union([ownerSpec, z.array(ownerSpec).min(1, 'a list of owners needs at least one')]),
  ...policyFields,
  protect: z.array(protectRule).optional(),
  ageFrom: z.enum(['mtime', 'ctime', 'atime']).optional(),
  mark: markSpec.optional(),
  archive: z.union([z.boolean(), z.strictObject({ table: tableName })]).optional(),
  quarantine: z.string().min(1).optional(),
  retain: duration.optional(),
  shard: z
    .strictObject({
      splitPoints: z
        .array(z.union([z.string().min(1), z.number().int().refine(Number.isSafeInteger, 'an integer split point this large loses precision; write it as a string')]))
        .max(4095)
        .meta({ description: 'Keys that cut the type into ranges for `--shard i/N`, ascending in the key order (S3: UTF-8 bytes; SQL: the id column\'s own order). A key equal to a split point belongs to the range below it.' }),
    })
    .optional()
    .meta({ description: 'How `--shard i/N` splits an S3 or SQL type (docs/scale-out.md); fs types are split by top-level entry, command and http types not at all.' }),
});

const breaker = z.strictObject({
  maxDrop: z.number().min(0).max(1).optional().meta({ description: 'Largest fall in a liveness source\'s live-key count against the last run before reaping stops (default 0.5).' }),
  minLiveKeys: z.number().int().min(0).optional().meta({ description: 'Fewest live keys a source may report before reaping stops (default 1).' }),
});

export const manifestSchema = z
  .strictObject({
    version: z.literal(1, { error: 'expected version: 1' }),
    state: z.string().min(1).optional(),
    defaults: z.strictObject({ ...policyFields, protect: z.array(protectRule).optional(), breaker: breaker.optional() }).optional(),
    connections: z
      .record(z.string().regex(RESOURCE_NAME, 'expected a connection name of letters, digits, "-", "_" or "." (at most 63)'), connection)
      .optional(),
    owners: z.array(livenessSource).optional(),
    resources: z.array(resource).min(1, 'a manifest declares at least one resource'),
  })
  .superRefine(checkManifest);

export type ManifestInput = z.output<typeof manifestSchema>;
export type OwnerSpecInput = z.output<typeof ownerSpec>;
type Parsed = z.output<typeof manifestSchema>;
type ResourceInput = Parsed['resources'][number];

type Ctx = z.RefinementCtx;

const BACKENDS = ['s3', 'postgres', 'mysql', 'fs', 'command', 'http'] as const satisfies readonly BackendKind[];

const OWNER_EXTRACTORS: Record<BackendKind, readonly (keyof OwnerSpecInput)[]> = {
  s3: ['metadata', 'tag', 'keyPattern'],
  fs: ['pathPattern'],
  postgres: ['column'],
  mysql: ['column'],
  command: ['attribute', 'keyPattern'],
  http: ['attribute', 'keyPattern'],
};
const PROTECT_RULES: Record<BackendKind, readonly string[]> = {
  s3: ['tag', 'metadata', 'keyPattern'],
  fs: ['pathPattern'],
  postgres: ['where'],
  mysql: ['where'],
  command: ['attribute', 'keyPattern'],
  http: ['attribute', 'keyPattern'],
};
const ZERO_TTL = 'a ttl of zero would expire everything at birth; omit ttl for none';
const EXTRACTOR_KEYS = ['metadata', 'tag', 'keyPattern', 'pathPattern', 'column', 'attribute'] as const;

const a = (kind: BackendKind) => (kind === 's3' || kind === 'fs' || kind === 'http' ? `an ${kind}` : `a ${kind}`);

function issue(ctx: Ctx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}

function checkRegex(ctx: Ctx, path: (string | number)[], source: string, needsOwner: boolean): void {
  // Ask the engine itself: text that merely looks like "(?<owner>" (e.g. escaped, `\\(?<owner>`) is no
  // group, and a pattern without one would read no owner from anything: all "no-owner" orphans.
  const problem = patternProblem(source, needsOwner);
  if (problem !== null) issue(ctx, path, problem);
}

/** A `where` is one self-contained boolean expression in the resource's dialect (docs/safety.md §18). */
function checkWhere(ctx: Ctx, path: (string | number)[], sql: string, dialect: 'postgres' | 'mysql', whose: string): void {
  const problem = sqlFragmentProblem(sql, dialect);
  if (problem !== null) issue(ctx, path, `${problem}${whose}`);
}

/** Cross-field rules: every reference resolves, every extractor and protect rule fits its backend. */
function checkManifest(m: Parsed, ctx: Ctx): void {
  const connections = m.connections ?? {};
  const names = new Map<string, number>();
  m.resources.forEach((r, i) => {
    if (names.has(r.name)) issue(ctx, ['resources', i, 'name'], `duplicate resource name "${r.name}" (also resources[${names.get(r.name)}])`);
    names.set(r.name, i);
  });

  (m.owners ?? []).forEach((source, i) => {
    const kinds = (['leases', 'sql', 'static'] as const).filter((k) => source[k] !== undefined);
    if (kinds.length !== 1) {
      issue(ctx, ['owners', i], 'each liveness source has exactly one of: leases, sql, static');
      return;
    }
    if (source.sql) {
      const c = connections[source.sql.connection];
      if (!c) issue(ctx, ['owners', i, 'sql', 'connection'], `no connection named "${source.sql.connection}"`);
      else if (c.kind === 's3') issue(ctx, ['owners', i, 'sql', 'connection'], `connection "${source.sql.connection}" is s3; an sql source needs postgres or mysql`);
    }
  });

  if (m.defaults?.ttl !== undefined && parseDuration(m.defaults.ttl) === 0) {
    issue(ctx, ['defaults', 'ttl'], ZERO_TTL);
  }

  // URL schemes (state, connections, endpoints) are checked after interpolation: manifest/urls.ts.

  m.resources.forEach((r, i) => checkResource(r, i, ctx, connections, names, m.defaults?.protect));
}

function checkResource(
  r: ResourceInput,
  i: number,
  ctx: Ctx,
  connections: NonNullable<Parsed['connections']>,
  names: Map<string, number>,
  defaultProtect: ResourceInput['protect'],
): void {
  const at = (...rest: (string | number)[]) => ['resources', i, ...rest];
  const kinds = BACKENDS.filter((k) => r[k] !== undefined);
  if (kinds.length !== 1) {
    issue(ctx, at(), `a resource has exactly one location: s3, postgres, mysql, fs, command or http (found ${kinds.length ? kinds.join(', ') : 'none'})`);
    return;
  }
  const kind = kinds[0]!;

  if (kind !== 'fs' && kind !== 'command' && kind !== 'http') {
    const location = r[kind]!;
    const c = connections[location.connection];
    if (!c) issue(ctx, at(kind, 'connection'), `no connection named "${location.connection}"`);
    else if (c.kind !== kind) issue(ctx, at(kind, 'connection'), `connection "${location.connection}" is ${c.kind}, not ${kind}`);
  }
  if ((kind === 'postgres' || kind === 'mysql') && r[kind]!.where !== undefined) checkWhere(ctx, at(kind, 'where'), r[kind]!.where!, kind, '');
  if (r.s3 && r.s3.prefix === '' && !r.s3.allowEmptyPrefix) {
    issue(ctx, at('s3', 'prefix'), 'an empty prefix scopes the whole bucket; set a prefix, or allowEmptyPrefix: true if that is meant');
  }
  const handler = r.command ?? r.http;
  if (handler && handler.conditional !== false && handler.allowUnconditional !== undefined) {
    issue(ctx, at(kind, 'allowUnconditional'), 'allowUnconditional applies only to a handler that declares conditional: false');
  }
  if (r.fs) {
    if (r.fs.glob !== undefined && (r.fs.glob.startsWith('/') || r.fs.glob.split('/').includes('..'))) {
      issue(ctx, at('fs', 'glob'), 'a glob is relative to fs.path and may not contain ".."');
    }
  }

  const owners = Array.isArray(r.owner) ? r.owner : [r.owner];
  owners.forEach((o, j) => {
    const path = Array.isArray(r.owner) ? at('owner', j) : at('owner');
    const extractors = EXTRACTOR_KEYS.filter((k) => o[k] !== undefined);
    if (extractors.length !== 1) {
      issue(ctx, path, `an owner has exactly one of: ${OWNER_EXTRACTORS[kind].join(', ')} (found ${extractors.length ? extractors.join(', ') : 'none'})`);
      return;
    }
    const extractor = extractors[0]!;
    if (!OWNER_EXTRACTORS[kind].includes(extractor)) {
      issue(ctx, [...path, extractor], `${a(kind)} resource cannot read its owner from ${extractor}; use ${OWNER_EXTRACTORS[kind].join(' or ')}`);
    }
    if (extractor === 'keyPattern' || extractor === 'pathPattern') checkRegex(ctx, [...path, extractor], o[extractor]!, true);
    if (o.ref !== undefined) {
      if (!names.has(o.ref)) issue(ctx, [...path, 'ref'], `no resource named "${o.ref}"`);
      if (o.key !== undefined) issue(ctx, [...path, 'key'], 'a ref owner is a resource id, not a key; drop key');
    }
  });

  // Rules under `defaults.protect` apply to every resource that sets none of its own; a
  // rule the resource's backend cannot evaluate is an error there, naming the resource.
  const inherited = r.protect === undefined && defaultProtect !== undefined;
  const protectAt = (...rest: (string | number)[]) => (inherited ? ['defaults', 'protect', ...rest] : at('protect', ...rest));
  const whose = inherited ? ` (inherited by ${r.name})` : '';
  (r.protect ?? defaultProtect ?? []).forEach((rule, j) => {
    const keys = Object.keys(rule).filter((k) => rule[k as keyof typeof rule] !== undefined);
    if (keys.length !== 1) {
      issue(ctx, protectAt(j), `a protect rule has exactly one of: ${PROTECT_RULES[kind].join(', ')}${whose}`);
      return;
    }
    const key = keys[0]!;
    if (!PROTECT_RULES[kind].includes(key)) {
      issue(ctx, protectAt(j, key), `${a(kind)} resource cannot be protected by ${key}; use ${PROTECT_RULES[kind].join(' or ')}${whose}`);
    }
    if (key === 'keyPattern' || key === 'pathPattern') checkRegex(ctx, protectAt(j, key), (rule as Record<string, string>)[key]!, false);
    if (key === 'where' && (kind === 'postgres' || kind === 'mysql')) checkWhere(ctx, protectAt(j, key), rule.where!, kind, whose);
  });

  if (r.ageFrom !== undefined && kind !== 'fs') issue(ctx, at('ageFrom'), 'ageFrom applies to fs resources only');
  if (r.quarantine !== undefined && kind !== 'fs') issue(ctx, at('quarantine'), 'quarantine applies to fs resources only');
  if (r.retain !== undefined && r.quarantine === undefined) issue(ctx, at('retain'), 'retain needs a quarantine directory');
  if (r.archive !== undefined && kind !== 'postgres' && kind !== 'mysql') issue(ctx, at('archive'), 'archive applies to postgres and mysql resources only');
  if (r.command && (r.command.mark === undefined) !== (r.command.unmark === undefined)) {
    issue(ctx, at('command', r.command.mark === undefined ? 'unmark' : 'mark'), 'a handler that marks also unmarks: give both command.mark and command.unmark');
  }
  if (r.mark !== undefined) {
    const sqlMark = typeof r.mark === 'object' && 'column' in r.mark;
    if (kind === 'fs') issue(ctx, at('mark'), 'fs resources take no visible mark; their tombstone is in the state store');
    else if (kind === 'command') issue(ctx, at('mark'), 'a command resource is marked by its handler: command.mark and command.unmark');
    else if (kind === 'http') issue(ctx, at('mark'), 'an http resource is marked by its webhook: http.mark: true');
    else if (kind === 's3' && sqlMark) issue(ctx, at('mark'), 'an s3 resource is marked with a tag: mark: tag');
    else if (kind !== 's3' && !sqlMark) issue(ctx, at('mark'), `${a(kind)} resource is marked in a column: mark: { column: NAME }`);
  }
  if (r.ttl !== undefined && parseDuration(r.ttl) === 0) issue(ctx, at('ttl'), ZERO_TTL);
  if (r.shard !== undefined) checkSplitPoints(ctx, kind, r.shard.splitPoints, (k) => at('shard', 'splitPoints', k));
}

/**
 * Split points (docs/scale-out.md): fs types take none; S3 keys must ascend in UTF-8 byte order;
 * SQL points must be distinct, and a list of integers must ascend (any other SQL list is
 * checked in the id column's order by the server when a sharded run opens the type).
 */
function checkSplitPoints(ctx: Ctx, kind: BackendKind, points: readonly (string | number)[], at: (k: number) => (string | number)[]): void {
  if (kind === 'fs') {
    issue(ctx, at(0).slice(0, -1), 'fs resources are split by top-level entry; they take no split points');
    return;
  }
  if (kind !== 's3' && kind !== 'postgres' && kind !== 'mysql') {
    issue(ctx, at(0).slice(0, -1), `${kind} resources are not split between shards (each goes whole to one shard); they take no split points`);
    return;
  }
  points.forEach((point, k) => {
    if (k === 0) return;
    const previous = points[k - 1]!;
    if (kind === 's3') {
      if (typeof point !== 'string') issue(ctx, at(k), 'an S3 split point is a key (a string)');
      else if (typeof previous === 'string' && Buffer.compare(Buffer.from(previous, 'utf8'), Buffer.from(point, 'utf8')) >= 0) {
        issue(ctx, at(k), `split points must ascend in S3's key order (UTF-8 bytes): ${JSON.stringify(point)} is not after ${JSON.stringify(previous)}`);
      }
    } else if (typeof point === 'number' && typeof previous === 'number' && point <= previous) {
      issue(ctx, at(k), `split points must ascend: ${point} is not above ${previous}`);
    } else if (points.slice(0, k).some((p) => String(p) === String(point))) {
      issue(ctx, at(k), `split point ${JSON.stringify(point)} is repeated`);
    }
  });
  if (kind === 's3' && typeof points[0] === 'number') issue(ctx, at(0), 'an S3 split point is a key (a string)');
}
