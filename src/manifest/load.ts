/**
 * Load a manifest: read (size-limited), parse YAML keeping positions and interpolate
 * `${VAR}` (yaml.ts), validate with the zod schema, map every issue to `file:line: key.path`,
 * give it its shape (normalize.ts) and freeze. Nothing is contacted; a bad manifest throws
 * ManifestError.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { ManifestError, type ManifestIssue } from '../errors.js';
import { closestWord } from '../util/suggest.js';
import { manifestJsonSchema } from './json-schema.js';
import { normalize } from './normalize.js';
import { manifestSchema, type ManifestInput } from './schema.js';
import type { Manifest } from './types.js';
import { urlIssues } from './urls.js';
import { capped, formatPath, MAX_MANIFEST_BYTES, readYaml, type Env } from './yaml.js';

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
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (code ?? (error as Error).message);
    throw new ManifestError([{ file, line: null, path: '', message: `cannot read the manifest: ${why}` }]);
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
  const yaml = readYaml(text, options);
  const issues: ManifestIssue[] = [];
  // reportInput: a bound or a choice that is not met says what it got (numbers and choices only; see describe).
  const result = manifestSchema.safeParse(yaml.data, { reportInput: true });
  if (!result.success) {
    for (const zodIssue of flattenIssues(result.error.issues)) {
      const p = zodIssue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
      // A value the schema refuses because its variable is unset: the unset variable is the error.
      const unset = yaml.unsetAt(p);
      if (unset) {
        if (!issues.includes(unset.issue)) issues.push(unset.issue);
      } else {
        issues.push({ file, line: yaml.lineAt(p), path: formatPath(p), message: describe(zodIssue) });
      }
    }
    throw new ManifestError(capped(issues));
  }
  issues.push(...urlIssues(result.data, file, yaml.lineAt, (p) => yaml.unsetAt(p) !== undefined));
  if (issues.length > 0) throw new ManifestError(capped(issues));

  const digest = createHash('sha256').update(text).digest('hex');
  const manifest = normalize(result.data as ManifestInput, options, digest, yaml.lineAt);
  return deepFreeze(yaml.unresolved.length > 0 ? { ...manifest, unresolved: yaml.unresolved } : manifest);
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
      for (const key of i.keys) {
        const meant = closestWord(key, keysAt(i.path).filter((k) => !i.keys.includes(k)));
        out.push({ ...i, path: [...i.path, key], message: `unknown key "${key}"${meant ? ` (did you mean ${meant}?)` : ''}` });
      }
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

type SchemaNode = Record<string, unknown>;
const isNode = (v: unknown): v is SchemaNode => typeof v === 'object' && v !== null && !Array.isArray(v);
let jsonSchema: SchemaNode | undefined;

/** A node and the alternatives it allows (anyOf, oneOf, allOf), flattened. */
function alternatives(node: SchemaNode): SchemaNode[] {
  const out = [node];
  for (const k of ['anyOf', 'oneOf', 'allOf']) {
    const list = node[k];
    if (Array.isArray(list)) for (const v of list) if (isNode(v)) out.push(...alternatives(v));
  }
  return out;
}

/** The keys the schema allows in the mapping at `path` (every alternative's), for "did you mean". */
function keysAt(path: readonly PropertyKey[]): string[] {
  jsonSchema ??= manifestJsonSchema();
  let nodes: SchemaNode[] = [jsonSchema];
  for (const seg of path) {
    const next: SchemaNode[] = [];
    for (const n of nodes.flatMap(alternatives)) {
      if (typeof seg === 'number') {
        if (isNode(n.items)) next.push(n.items);
      } else {
        const props = n.properties;
        if (isNode(props) && isNode(props[String(seg)])) next.push(props[String(seg)] as SchemaNode);
        else if (isNode(n.additionalProperties)) next.push(n.additionalProperties);
      }
    }
    nodes = next;
  }
  const keys = new Set<string>();
  for (const n of nodes.flatMap(alternatives)) if (isNode(n.properties)) for (const k of Object.keys(n.properties)) keys.add(k);
  return [...keys];
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

/** A list of choices as a sentence says it: `"a", "b" or "c"`. */
const orList = (items: readonly string[]) => (items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`);

function describe(i: ZodIssue): string {
  if (i.code === 'unrecognized_keys') return i.message;
  if ((i.code === 'invalid_type' || i.code === 'invalid_union') && /received undefined$/.test(i.message)) return 'is required';
  // zod says "expected int, received number" of 10.5.
  if (i.code === 'invalid_type' && i.expected === 'int') return 'expected a whole number';
  // A mapping where a list belongs is the commonest YAML slip: say how a list is written.
  if (i.code === 'invalid_type' && i.expected === 'array' && /received object$/.test(i.message)) return 'expected a list (one "- " line per item), received a mapping';
  // A number in quotes, or as a percentage: say how to write it (the string is a number, so nothing secret is echoed).
  if (i.code === 'invalid_type' && i.expected === 'number' && typeof i.input === 'string') {
    const text = i.input.trim();
    if (/^-?\d+(\.\d+)?$/.test(text)) return `expected a number, got the string ${JSON.stringify(i.input)}: write it without quotes`;
    const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
    if (percent) return `expected a number, got ${JSON.stringify(i.input)}: write a fraction, ${Number(percent[1]) / 100}`;
  }
  // Bounds and choices say what they got: the input is a number, or a string that is none of a fixed set.
  const got = (input: unknown) => (typeof input === 'number' || (typeof input === 'string' && input.length <= 64) ? `, got ${JSON.stringify(input)}` : '');
  if ((i.code === 'too_big' || i.code === 'too_small') && (i.origin === 'number' || i.origin === 'int')) {
    const bound = i.code === 'too_big' ? i.maximum : i.minimum;
    const words = i.code === 'too_big' ? (i.inclusive ? 'at most' : 'less than') : i.inclusive ? 'at least' : 'more than';
    return `${words} ${String(bound)}${got(i.input)}`;
  }
  if (i.code === 'invalid_value' && i.values.length > 1 && i.values.every((v) => typeof v === 'string')) {
    const meant = typeof i.input === 'string' ? closestWord(i.input, i.values as string[]) : undefined;
    return `expected ${orList(i.values.map((v) => JSON.stringify(v)))}${got(i.input)}${meant ? ` (did you mean ${meant}?)` : ''}`;
  }
  return i.message.replace(/^Invalid (input|option): /, '');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
