/**
 * Load a manifest: read (size-limited), parse YAML keeping positions, interpolate
 * `${VAR}`, validate with the zod schema, map every issue to `file:line: key.path`,
 * apply defaults and freeze. Nothing is contacted; a bad manifest throws ManifestError.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Alias, type Document, type Node, type Pair, type YAMLMap, type YAMLSeq } from 'yaml';
import type { z } from 'zod';
import { ManifestError, type ManifestIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { rootScopeProblem } from './fs-scope.js';
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
  type UnresolvedVariable,
} from './types.js';
import { urlIssues } from './urls.js';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;
/** Issues reported at most; a hostile file can produce one per key. */
const MAX_ISSUES = 100;
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Read and load a manifest file. `env` supplies `${VAR}` values (the CLI passes process.env);
 * with `lazyEnv`, unset variables are recorded rather than reported (see ParseOptions).
 */
export async function loadManifest(file: string, env: Env = {}, options: { lazyEnv?: boolean } = {}): Promise<Manifest> {
  const absolute = path.resolve(file);
  let size: number;
  try {
    const info = await stat(absolute);
    if (!info.isFile()) {
      const what = info.isDirectory() ? `is a directory; name the manifest file in it (e.g. ${path.join(file, 'reaper.yaml')})` : 'is not a regular file';
      throw new ManifestError([{ file, line: null, path: '', message: `cannot read the manifest: ${what}` }]);
    }
    size = info.size;
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    throw new ManifestError([{ file, line: null, path: '', message: `cannot read the manifest: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
  }
  if (size > MAX_MANIFEST_BYTES) {
    throw new ManifestError([{ file, line: null, path: '', message: `the manifest is ${size} bytes; the limit is ${MAX_MANIFEST_BYTES}` }]);
  }
  const text = await readFile(absolute, 'utf8');
  return parseManifest(text, { file, baseDir: path.dirname(absolute), env, lazyEnv: options.lazyEnv });
}

export interface ParseOptions {
  /** Name used in messages. */
  file: string;
  /** Directory that relative paths resolve against. */
  baseDir: string;
  env?: Env;
  /**
   * Leave unset `${VAR}`s in `Manifest.unresolved`, to be reported only where their value is
   * used (requireVariables); by default every unset variable is an error here. A variable
   * in a value the schema cannot accept unresolved (a bucket name, a duration) is reported
   * here either way.
   */
  lazyEnv?: boolean;
}

/** Parse manifest text. Pure but for path resolution; throws ManifestError listing every issue. */
export function parseManifest(text: string, options: ParseOptions): Manifest {
  const { file } = options;
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) {
    throw new ManifestError([{ file, line: null, path: '', message: `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes` }]);
  }
  const lines = new LineCounter();
  // Duplicate keys are found below in one pass: the yaml package's own check (uniqueKeys) is
  // quadratic in the size of a mapping, minutes for a hostile file well under the size limit.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false, strict: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? null : lines.linePos(offset).line);

  if (doc.errors.length > 0) {
    throw new ManifestError(
      capped(
        doc.errors.map((e) => {
          const message = `invalid YAML: ${firstLine(e.message)}`;
          // An unclosed quote or flow collection is noticed where the file or the block ends; name where it opened.
          const opened = e.code === 'MISSING_CHAR' || /end with a [\]}]/.test(e.message) ? unclosedAt(doc, e.pos[0], lineOf) : undefined;
          if (opened) return { file, line: lineOf(opened.node.range?.[0]), path: formatPath(pathOf(opened.ancestors, opened.node)), message };
          return { file, line: lineOf(e.pos[0]), path: '', message };
        }),
      ),
    );
  }

  const issues: ManifestIssue[] = [];
  const report = (keyPath: string, node: Node, message: string) => issues.push({ file, line: lineOf(node.range?.[0]), path: keyPath, message });
  const unresolved: UnresolvedVariable[] = [];
  try {
    checkAliases(doc, report);
    interpolate(doc, options.env ?? {}, (keyPath, node, message) => {
      const issue = { file, line: lineOf(node.range?.[0]), path: formatPath(keyPath), message };
      if (options.lazyEnv) unresolved.push({ keyPath, issue });
      else issues.push(issue);
    });
    duplicateKeys(doc, lineOf, report); // after interpolation: `${A}:` and `${B}:` may name one key
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new ManifestError([{ file, line: null, path: '', message: 'invalid YAML: the manifest nests too deeply' }]);
  }
  if (issues.length > 0) throw new ManifestError(capped(issues));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    // The alias-expansion limit (a "billion laughs" file), checked as the aliases are expanded: blame the first alias.
    const first = /alias count/i.test((error as Error).message) ? aliasesOf(doc)[0] : undefined;
    if (!first) throw new ManifestError([{ file, line: null, path: '', message: `invalid YAML: ${firstLine((error as Error).message)}` }]);
    const message = `invalid YAML: aliases expand too far (a YAML alias bomb?); aliased content may be repeated at most ${MAX_ALIASES} times`;
    throw new ManifestError([{ file, line: lineOf(first.node.range?.[0]), path: formatPath(pathOf(first.ancestors, first.node)), message }]);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ManifestError([{ file, line: 1, path: '', message: 'a manifest is a YAML mapping with version, resources, …' }]);
  }

  const offsetAt = locator(doc);
  const unsetAt = (p: readonly (string | number)[]) => unresolved.find((u) => isPrefix(u.keyPath, p));
  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    for (const zodIssue of flattenIssues(result.error.issues)) {
      const p = zodIssue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
      // A value the schema refuses because its variable is unset: the unset variable is the error.
      const unset = unsetAt(p);
      if (unset) {
        if (!issues.includes(unset.issue)) issues.push(unset.issue);
      } else {
        issues.push({ file, line: lineOf(offsetAt(p)), path: formatPath(p), message: describe(zodIssue) });
      }
    }
    throw new ManifestError(capped(issues));
  }
  issues.push(...urlIssues(result.data, file, (p) => lineOf(offsetAt(p)), (p) => unsetAt(p) !== undefined));
  if (issues.length > 0) throw new ManifestError(capped(issues));

  const digest = createHash('sha256').update(text).digest('hex');
  const manifest = normalize(result.data as ManifestInput, options, digest, (p) => lineOf(offsetAt(p)));
  return deepFreeze(unresolved.length > 0 ? { ...manifest, unresolved } : manifest);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** Issues in line order, at most MAX_ISSUES of them and a last one saying how many were left out. */
function capped(issues: ManifestIssue[]): ManifestIssue[] {
  const sorted = [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  if (sorted.length <= MAX_ISSUES) return sorted;
  const first = sorted[0]!;
  return [...sorted.slice(0, MAX_ISSUES), { file: first.file, line: null, path: '', message: `… and ${sorted.length - MAX_ISSUES} more issues` }];
}

/** The innermost node that ends where an error was found and began on an earlier line. */
function unclosedAt(doc: Document, offset: number, lineOf: (offset: number | undefined) => number | null): { node: Node; ancestors: readonly unknown[] } | undefined {
  let found: { node: Node; ancestors: readonly unknown[] } | undefined;
  visit(doc, {
    Node(_key, node, ancestors) {
      const range = node.range;
      if (range && range[1] === offset && (lineOf(range[0]) ?? 0) < (lineOf(offset) ?? 0)) found = { node, ancestors };
    },
  });
  return found;
}

/** A key that appears twice in one mapping is an issue at its second occurrence. */
function duplicateKeys(doc: Document, lineOf: (offset: number | undefined) => number | null, report: (keyPath: string, node: Node, message: string) => void): void {
  visit(doc, {
    Map(_key, map, ancestors) {
      const seen = new Map<string, Node>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const name = String(pair.key.value);
        const first = seen.get(name);
        if (first === undefined) seen.set(name, pair.key);
        else report(formatPath([...pathOf(ancestors, map), name]), pair.key, `duplicate key "${name}" (first on line ${lineOf(first.range?.[0])})`);
      }
    },
  });
}

interface AliasAt {
  node: Alias;
  ancestors: readonly unknown[];
  /** The anchored node it refers to: the last one with its anchor before it in the document. */
  target: Node | undefined;
  /** Whether the target contains this alias (a cycle). */
  cyclic: boolean;
}

/** Every alias in document order, resolved the way the yaml package resolves them, in one pass. */
function aliasesOf(doc: Document): AliasAt[] {
  const anchors = new Map<string, Node>();
  const out: AliasAt[] = [];
  visit(doc, {
    Node(_key, node, ancestors) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        out.push({ node, ancestors, target, cyclic: target !== undefined && ancestors.includes(target as never) });
      } else if (node.anchor) {
        anchors.set(node.anchor, node);
      }
    },
  });
  return out;
}

/** Unresolved and self-referencing aliases are issues at the alias. */
function checkAliases(doc: Document, report: (keyPath: string, node: Node, message: string) => void): void {
  for (const alias of aliasesOf(doc)) {
    if (alias.target === undefined) report(formatPath(pathOf(alias.ancestors, alias.node)), alias.node, `invalid YAML: alias *${alias.node.source} has no anchor &${alias.node.source} before it`);
    else if (alias.cyclic) report(formatPath(pathOf(alias.ancestors, alias.node)), alias.node, `invalid YAML: alias *${alias.node.source} refers to a node that contains it`);
  }
}

/** Whether `prefix` is a prefix of (or equal to) `keyPath`. */
function isPrefix(prefix: readonly (string | number)[], keyPath: readonly (string | number)[]): boolean {
  return prefix.length <= keyPath.length && prefix.every((segment, i) => String(segment) === String(keyPath[i]));
}

/** Replace `${VAR}` in every string scalar; a missing variable is an issue at that scalar (the value keeps its `${VAR}`). */
function interpolate(doc: Document, env: Env, report: (keyPath: (string | number)[], node: Node, message: string) => void): void {
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const keyPath = pathOf(ancestors, node);
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

const seqIndexes = new WeakMap<YAMLSeq, Map<unknown, number>>();

/** Position of an item in a sequence; each sequence is indexed once, so paths stay cheap in long lists. */
function indexIn(seq: YAMLSeq, child: unknown): number {
  let index = seqIndexes.get(seq);
  if (!index) {
    index = new Map();
    for (let i = seq.items.length - 1; i >= 0; i--) index.set(seq.items[i], i);
    seqIndexes.set(seq, index);
  }
  return index.get(child) ?? -1;
}

/** The key path of a node from visit()'s ancestor list. */
function pathOf(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) out.push(indexIn(parent, child));
    else if (isPair(parent) && parent.value === child && isScalar(parent.key)) out.push(String(parent.key.value));
  }
  return out;
}

/**
 * Offset of the YAML node (or the key of the pair) at a zod path; the deepest existing ancestor
 * otherwise. Each mapping's keys are indexed once, so many issues in one big mapping stay linear.
 */
function locator(doc: Document): (keyPath: readonly (string | number)[]) => number | undefined {
  const indexes = new WeakMap<YAMLMap, Map<string, Pair>>();
  const pairOf = (map: YAMLMap, key: string): Pair | undefined => {
    let index = indexes.get(map);
    if (!index) {
      index = new Map();
      for (const p of map.items) if (isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
      indexes.set(map, index);
    }
    return index.get(key);
  };
  return (keyPath) => nodeAt(doc, keyPath, pairOf);
}

function nodeAt(doc: Document, keyPath: readonly (string | number)[], pairOf: (map: YAMLMap, key: string) => Pair | undefined): number | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const segment of keyPath) {
    if (isMap(node)) {
      const pair = pairOf(node, String(segment));
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
 * Unknown keys become one issue per key (so the line is the key's own); a union's issues
 * are replaced by those of the closest branch that matched the input's shape (or, when none
 * did, by one "expected A or B" issue); a bad record key by what is wrong with it.
 */
function flattenIssues(issues: readonly ZodIssue[]): ZodIssue[] {
  const out: ZodIssue[] = [];
  const under = (parent: ZodIssue, children: readonly ZodIssue[]) => children.map((b) => ({ ...b, path: [...parent.path, ...b.path] }));
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const key of i.keys) out.push({ ...i, path: [...i.path, key], message: `unknown key "${key}"` });
    } else if (i.code === 'invalid_union' && i.errors.length > 0 && !(i as { note?: string }).note) {
      const shaped = i.errors.filter((branch) => !branch.some(isShapeMismatch));
      if (shaped.length > 0) out.push(...flattenIssues(under(i, shaped.reduce((best, branch) => (branch.length < best.length ? branch : best)))));
      else out.push({ ...i, message: expectedOneOf(i.errors.flat().filter(isShapeMismatch)) });
    } else if (i.code === 'invalid_key' && i.issues.length > 0) {
      out.push(...flattenIssues(under(i, i.issues)));
    } else {
      out.push(i);
    }
  }
  return out;
}

/** An issue saying the value itself is of the wrong type or value (not something inside it). */
function isShapeMismatch(i: ZodIssue): boolean {
  return (i.code === 'invalid_type' || i.code === 'invalid_value') && i.path.length === 0;
}

/** "expected object or array, received string", from the root mismatches of every branch. */
function expectedOneOf(mismatches: readonly ZodIssue[]): string {
  const expected = new Set<string>();
  let received: string | undefined;
  for (const b of mismatches) {
    if (b.code === 'invalid_type') expected.add(b.expected);
    else if (b.code === 'invalid_value') for (const v of b.values) expected.add(JSON.stringify(v));
    received ??= /received (\w+)/.exec(b.message)?.[1];
  }
  return `Invalid input: expected ${[...expected].join(' or ')}${received ? `, received ${received}` : ''}`;
}

function describe(i: ZodIssue): string {
  if (i.code === 'unrecognized_keys') return i.message;
  if ((i.code === 'invalid_type' || i.code === 'invalid_union') && /received undefined$/.test(i.message)) return 'is required';
  return i.message.replace(/^Invalid (input|option): /, '');
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
    if (r.s3) location = { kind: 's3', connection: r.s3.connection, bucket: r.s3.bucket, prefix: r.s3.prefix ?? '', deleteMode: r.s3.deleteMode ?? 'auto', ...(r.s3.requireVersioning ? { requireVersioning: true } : {}) };
    else if (r.postgres || r.mysql) {
      const kind = r.postgres ? 'postgres' : 'mysql';
      const sql = (r.postgres ?? r.mysql)!;
      location = { kind, connection: sql.connection, table: sql.table, id: sql.id, createdAt: sql.createdAt, where: sql.where, version: sql.version };
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
