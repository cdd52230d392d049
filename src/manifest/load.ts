/**
 * Load a manifest: read (size-limited), parse YAML keeping positions, interpolate
 * `${VAR}`, validate with the zod schema, map every issue to `file:line: key.path`,
 * apply defaults and freeze. Nothing is contacted; a bad manifest throws ManifestError.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ManifestError, type ManifestIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { manifestSchema, type ManifestInput, type OwnerSpecInput } from './schema.js';
import {
  BUILTIN_DEFAULTS,
  type ConnectionSpec,
  type Location,
  type LivenessSourceSpec,
  type Manifest,
  type OwnerRule,
  type ProtectRule,
  type ResourceSpec,
} from './types.js';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export type Env = Readonly<Record<string, string | undefined>>;

/** Read and load a manifest file. `env` supplies `${VAR}` values (the CLI passes process.env). */
export async function loadManifest(file: string, env: Env = {}): Promise<Manifest> {
  const absolute = path.resolve(file);
  let size: number;
  try {
    size = (await stat(absolute)).size;
  } catch (error) {
    throw new ManifestError([{ file, line: null, path: '', message: `cannot read the manifest: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
  }
  if (size > MAX_MANIFEST_BYTES) {
    throw new ManifestError([{ file, line: null, path: '', message: `the manifest is ${size} bytes; the limit is ${MAX_MANIFEST_BYTES}` }]);
  }
  const text = await readFile(absolute, 'utf8');
  return parseManifest(text, { file, baseDir: path.dirname(absolute), env });
}

export interface ParseOptions {
  /** Name used in messages. */
  file: string;
  /** Directory that relative paths resolve against. */
  baseDir: string;
  env?: Env;
}

/** Parse manifest text. Pure but for path resolution; throws ManifestError listing every issue. */
export function parseManifest(text: string, options: ParseOptions): Manifest {
  const { file } = options;
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) {
    throw new ManifestError([{ file, line: null, path: '', message: `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes` }]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? null : lines.linePos(offset).line);

  if (doc.errors.length > 0) {
    throw new ManifestError(doc.errors.map((e) => ({ file, line: lineOf(e.pos[0]), path: '', message: `invalid YAML: ${firstLine(e.message)}` })));
  }

  const issues: ManifestIssue[] = [];
  interpolate(doc, options.env ?? {}, (keyPath, node, message) => issues.push({ file, line: lineOf(node.range?.[0]), path: keyPath, message }));
  if (issues.length > 0) throw new ManifestError(issues);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw new ManifestError([{ file, line: null, path: '', message: `invalid YAML: ${(error as Error).message}` }]);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ManifestError([{ file, line: 1, path: '', message: 'a manifest is a YAML mapping with version, resources, …' }]);
  }

  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    for (const zodIssue of flattenIssues(result.error.issues)) {
      const p = zodIssue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
      issues.push({ file, line: lineOf(nodeAt(doc, p)), path: formatPath(p), message: describe(zodIssue) });
    }
    issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new ManifestError(issues);
  }

  const digest = createHash('sha256').update(text).digest('hex');
  const manifest = normalize(result.data as ManifestInput, options, digest, (p) => lineOf(nodeAt(doc, p)));
  return deepFreeze(manifest);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** Replace `${VAR}` in every string scalar; a missing variable is an issue at that scalar. */
function interpolate(doc: Document, env: Env, report: (keyPath: string, node: Node, message: string) => void): void {
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const keyPath = formatPath(pathOf(ancestors, node));
      node.value = node.value.replace(ENV_REF, (whole, name: string) => {
        const value = env[name];
        if (value === undefined) {
          report(keyPath, node, `environment variable ${name} is not set`);
          return whole;
        }
        return value;
      });
    },
  });
}

/** The key path of a node from visit()'s ancestor list. */
function pathOf(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) out.push(parent.items.indexOf(child as never));
    else if (isPair(parent) && parent.value === child && isScalar(parent.key)) out.push(String(parent.key.value));
  }
  return out;
}

/** Offset of the YAML node (or the key of the pair) at a zod path; the deepest existing ancestor otherwise. */
function nodeAt(doc: Document, keyPath: readonly (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const segment of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) return offset;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (!item) return offset;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      return offset;
    }
  }
  return offset;
}

export function formatPath(keyPath: readonly (string | number)[]): string {
  let out = '';
  for (const segment of keyPath) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out ? `.${segment}` : segment;
  }
  return out;
}

type ZodIssue = z.core.$ZodIssue;

/**
 * Unknown keys become one issue per key (so the line is the key's own); a union's
 * issues are replaced by those of the branch that matched the input's shape.
 */
function flattenIssues(issues: readonly ZodIssue[]): ZodIssue[] {
  const out: ZodIssue[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const key of i.keys) out.push({ ...i, path: [...i.path, key], message: `unknown key "${key}"` });
    } else if (i.code === 'invalid_union' && i.errors.length > 0) {
      const shaped = i.errors.find((branch) => !branch.some((b) => b.code === 'invalid_type' && b.path.length === 0));
      if (shaped && !(i as { note?: string }).note) out.push(...flattenIssues(shaped.map((b) => ({ ...b, path: [...i.path, ...b.path] }))));
      else out.push(i);
    } else {
      out.push(i);
    }
  }
  return out;
}

function describe(i: ZodIssue): string {
  if (i.code === 'unrecognized_keys') return i.message;
  if (i.code === 'invalid_type' && /received undefined/.test(i.message)) return 'is required';
  return i.message.replace(/^Invalid input: /, '');
}

// ---------------------------------------------------------------- normalization

function duration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return parseDuration(text) as number; // validated by the schema
}

function normalize(input: ManifestInput, options: ParseOptions, digest: string, lineAt: (p: (string | number)[]) => number | null): Manifest {
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
    if (r.s3) location = { kind: 's3', connection: r.s3.connection, bucket: r.s3.bucket, prefix: r.s3.prefix ?? '' };
    else if (r.postgres || r.mysql) {
      const kind = r.postgres ? 'postgres' : 'mysql';
      const sql = (r.postgres ?? r.mysql)!;
      location = { kind, connection: sql.connection, table: sql.table, id: sql.id, createdAt: sql.createdAt, where: sql.where, version: sql.version };
    } else {
      const fsPath = path.resolve(base, r.fs!.path);
      if (fsPath === path.parse(fsPath).root && !r.fs!.allowRoot) {
        issues.push({
          file: options.file,
          line: lineAt(['resources', i, 'fs', 'path']),
          path: `resources[${i}].fs.path`,
          message: `"${r.fs!.path}" is a filesystem root; name a directory, or allowRoot: true if that is meant`,
        });
      }
      location = { kind: 'fs', path: fsPath, glob: r.fs!.glob };
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
      protect: (r.protect ?? []).map(toProtectRule),
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
            ? { table: `${location.kind === 'fs' || location.kind === 's3' ? r.name : location.table}_reaper_archive` }
            : { table: r.archive.table },
      quarantine: r.quarantine === undefined ? undefined : path.resolve(base, r.quarantine),
      retainMs: duration(r.retain),
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

function toOwnerRule(o: OwnerSpecInput): OwnerRule {
  const extractor = o.metadata !== undefined
    ? ({ from: 'metadata', name: o.metadata } as const)
    : o.tag !== undefined
      ? ({ from: 'tag', name: o.tag } as const)
      : o.keyPattern !== undefined
        ? ({ from: 'keyPattern', pattern: o.keyPattern } as const)
        : o.pathPattern !== undefined
          ? ({ from: 'pathPattern', pattern: o.pathPattern } as const)
          : ({ from: 'column', name: o.column! } as const);
  return { extractor, ...(o.key !== undefined ? { keyTemplate: o.key } : {}), ...(o.ref !== undefined ? { ref: o.ref } : {}) };
}

function toProtectRule(rule: NonNullable<ManifestInput['resources'][number]['protect']>[number]): ProtectRule {
  if (rule.tag) return { kind: 'tag', match: rule.tag };
  if (rule.metadata) return { kind: 'metadata', match: rule.metadata };
  if (rule.keyPattern !== undefined) return { kind: 'keyPattern', pattern: rule.keyPattern };
  if (rule.pathPattern !== undefined) return { kind: 'pathPattern', pattern: rule.pathPattern };
  return { kind: 'where', sql: rule.where! };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
