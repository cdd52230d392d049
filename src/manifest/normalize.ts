/**
 * The shape the rest of reaper sees (types.ts), from input the schema has validated:
 * defaults applied, durations in milliseconds, relative paths resolved against the
 * manifest's directory, owner and protect rules in their tagged forms. Issues only the
 * shape reveals (an fs path that is the filesystem root) name their line.
 */
import path from 'node:path';
import { ManifestError, type ManifestIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { rootScopeProblem } from './fs-scope.js';
import type { ManifestInput, OwnerSpecInput } from './schema.js';
import { BUILTIN_DEFAULTS, type CommandLine, type CommandLocation, type ConnectionSpec, type HttpLocation, type Location, type LivenessSourceSpec, type Manifest, type OwnerRule, type ProtectRule, type ResourceSpec } from './types.js';

function duration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return parseDuration(text) as number; // validated by the schema
}

export function normalize(input: ManifestInput, options: { file: string; baseDir: string }, digest: string, lineAt: (p: (string | number)[]) => number | null): Manifest {
  const base = options.baseDir;
  const defaults = input.defaults ?? {};
  const issues: ManifestIssue[] = [];

  const connections: Record<string, ConnectionSpec> = {};
  for (const [name, c] of Object.entries(input.connections ?? {})) {
    if (c.kind === 's3') {
      connections[name] = { ...c, name };
    } else {
      const { statementTimeout, ...rest } = c;
      connections[name] = { ...rest, name, ...(statementTimeout ? { statementTimeoutMs: duration(statementTimeout)! } : {}) };
    }
  }

  const owners: LivenessSourceSpec[] = (input.owners ?? [{ leases: {} }]).map((o) => {
    if (o.sql) return { kind: 'sql', connection: o.sql.connection, query: o.sql.query };
    if (o.static) return { kind: 'static', keys: o.static };
    return { kind: 'leases' };
  });

  const resources = input.resources.map((r, i): ResourceSpec => {
    let location: Location;
    if (r.s3) location = { kind: 's3', connection: r.s3.connection, bucket: r.s3.bucket, prefix: r.s3.prefix ?? '', deleteMode: r.s3.deleteMode ?? 'auto', ...(r.s3.requireVersioning ? { requireVersioning: true } : {}), ...(r.s3.inventory ? { inventory: { bucket: r.s3.inventory.bucket ?? r.s3.bucket, prefix: r.s3.inventory.prefix } } : {}) };
    else if (r.postgres || r.mysql) {
      const kind = r.postgres ? 'postgres' : 'mysql';
      const sql = (r.postgres ?? r.mysql)!;
      location = { kind, connection: sql.connection, table: sql.table, id: sql.id, createdAt: sql.createdAt, where: sql.where, version: sql.version };
    } else if (r.command || r.http) {
      location = handlerLocation(r, base);
    } else {
      const fsPath = path.resolve(base, r.fs!.path);
      const rootProblem = r.fs!.allowRoot ? null : rootScopeProblem(r.fs!.path, fsPath);
      if (rootProblem !== null) issues.push({ file: options.file, line: lineAt(['resources', i, 'fs', 'path']), path: `resources[${i}].fs.path`, message: rootProblem });
      location = { kind: 'fs', path: fsPath, glob: r.fs!.glob, ...(r.fs!.allowRoot ? { allowRoot: true } : {}) };
    }
    const ownerList = (Array.isArray(r.owner) ? r.owner : [r.owner]) as OwnerSpecInput[];
    return {
      name: r.name,
      location,
      owners: ownerList.map(toOwnerRule),
      ttlMs: duration(r.ttl ?? defaults.ttl),
      minAgeMs: duration(r.minAge ?? defaults.minAge) ?? BUILTIN_DEFAULTS.minAgeMs,
      graceMs: duration(r.grace ?? defaults.grace) ?? BUILTIN_DEFAULTS.graceMs,
      batchSize: r.batchSize ?? defaults.batchSize ?? BUILTIN_DEFAULTS.batchSize,
      maxDeletesPerRun: r.maxDeletesPerRun ?? defaults.maxDeletesPerRun ?? BUILTIN_DEFAULTS.maxDeletesPerRun,
      maxDeleteFraction: r.maxDeleteFraction ?? defaults.maxDeleteFraction ?? BUILTIN_DEFAULTS.maxDeleteFraction,
      onExpired: r.onExpired ?? defaults.onExpired ?? BUILTIN_DEFAULTS.onExpired,
      protect: (r.protect ?? defaults.protect ?? []).map(toProtectRule),
      ageFrom: r.ageFrom ?? 'mtime',
      mark:
        r.mark === undefined
          ? undefined
          : r.mark === 'tag'
            ? { kind: 'tag', tag: 'reaper-tombstone' }
            : 'tag' in r.mark
              ? { kind: 'tag', tag: r.mark.tag }
              : { kind: 'column', column: r.mark.column },
      archive:
        r.archive === undefined || r.archive === false
          ? undefined
          : r.archive === true
            ? { table: `${location.kind === 'postgres' || location.kind === 'mysql' ? location.table : r.name}_reaper_archive` }
            : { table: r.archive.table },
      quarantine: r.quarantine === undefined ? undefined : path.resolve(base, r.quarantine),
      retainMs: duration(r.retain),
      ...(r.shard && r.shard.splitPoints.length > 0 ? { splitPoints: r.shard.splitPoints.map(String) } : {}),
      line: lineAt(['resources', i]),
    };
  });
  if (issues.length > 0) throw new ManifestError(issues);

  return {
    file: options.file,
    version: 1,
    state: resolveStateUrl(input.state ?? BUILTIN_DEFAULTS.state, base),
    connections,
    owners,
    resources,
    breaker: {
      maxDrop: defaults.breaker?.maxDrop ?? BUILTIN_DEFAULTS.breaker.maxDrop,
      minLiveKeys: defaults.breaker?.minLiveKeys ?? BUILTIN_DEFAULTS.breaker.minLiveKeys,
    },
    digest,
  };
}

/** `sqlite:relative/path` resolves against `base`; other URLs are returned unchanged. */
export function resolveStateUrl(url: string, base: string): string {
  if (!url.startsWith('sqlite:')) return url;
  const file = url.slice('sqlite:'.length);
  if (file === ':memory:') return url;
  return `sqlite:${path.resolve(base, file)}`;
}

const HANDLER_DEFAULTS = { timeoutMs: 60_000, maxLineBytes: 1024 * 1024, maxOutputBytes: 256 * 1024 * 1024 };

/** A command or http location: policy defaults applied, files resolved against the manifest's directory. */
function handlerLocation(r: ManifestInput['resources'][number], base: string): CommandLocation | HttpLocation {
  const h = (r.command ?? r.http)!;
  const policy = {
    conditional: h.conditional ?? true,
    allowUnconditional: h.allowUnconditional ?? false,
    timeoutMs: duration(h.timeout) ?? HANDLER_DEFAULTS.timeoutMs,
    maxLineBytes: h.maxLineBytes ?? HANDLER_DEFAULTS.maxLineBytes,
    maxOutputBytes: h.maxOutputBytes ?? HANDLER_DEFAULTS.maxOutputBytes,
  };
  if (r.command) {
    const c = r.command;
    const line = (v: string | string[]): CommandLine => (typeof v === 'string' ? { shell: v } : { argv: v });
    return {
      kind: 'command',
      ...policy,
      list: line(c.list),
      delete: line(c.delete),
      ...(c.mark !== undefined ? { mark: line(c.mark) } : {}),
      ...(c.unmark !== undefined ? { unmark: line(c.unmark) } : {}),
      ...(c.restore !== undefined ? { restore: line(c.restore) } : {}),
      cwd: base,
      env: c.env ?? {},
    };
  }
  const w = r.http!;
  return {
    kind: 'http',
    ...policy,
    url: w.url.replace(/\/+$/, ''),
    ...(w.token ? { token: 'file' in w.token ? { file: path.resolve(base, w.token.file) } : { env: w.token.env } } : {}),
    ...(w.ca !== undefined ? { ca: path.resolve(base, w.ca) } : {}),
    mark: w.mark ?? false,
    restore: w.restore ?? false,
  };
}

function toOwnerRule(o: OwnerSpecInput): OwnerRule {
  const extractor = o.metadata !== undefined
    ? ({ from: 'metadata', name: o.metadata } as const)
    : o.tag !== undefined
      ? ({ from: 'tag', name: o.tag } as const)
      : o.keyPattern !== undefined
        ? ({ from: 'keyPattern', pattern: o.keyPattern } as const)
        : o.pathPattern !== undefined
          ? ({ from: 'pathPattern', pattern: o.pathPattern } as const)
          : o.column !== undefined
            ? ({ from: 'column', name: o.column } as const)
            : ({ from: 'attribute', name: o.attribute! } as const);
  return { extractor, ...(o.key !== undefined ? { keyTemplate: o.key } : {}), ...(o.ref !== undefined ? { ref: o.ref } : {}) };
}

function toProtectRule(rule: NonNullable<ManifestInput['resources'][number]['protect']>[number]): ProtectRule {
  if (rule.tag) return { kind: 'tag', match: rule.tag };
  if (rule.metadata) return { kind: 'metadata', match: rule.metadata };
  if (rule.keyPattern !== undefined) return { kind: 'keyPattern', pattern: rule.keyPattern };
  if (rule.pathPattern !== undefined) return { kind: 'pathPattern', pattern: rule.pathPattern };
  if (rule.attribute) return { kind: 'attribute', match: rule.attribute };
  return { kind: 'where', sql: rule.where! };
}
