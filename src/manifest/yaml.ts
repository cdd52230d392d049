/**
 * The YAML half of loading a manifest: parse keeping positions, refuse what YAML makes
 * dangerous (alias bombs and cycles, duplicate keys, deep nesting), interpolate `${VAR}`,
 * and answer "which line is this key path on?" for every later issue. Knows nothing of what
 * a manifest means; load.ts validates, normalize.ts gives it its shape.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Alias, type Document, type Node, type Pair, type YAMLMap, type YAMLSeq } from 'yaml';
import { ManifestError, type ManifestIssue } from '../errors.js';
import type { UnresolvedVariable } from './types.js';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;
/** Issues reported at most; a hostile file can produce one per key. */
const MAX_ISSUES = 100;
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export type Env = Readonly<Record<string, string | undefined>>;
export type KeyPath = readonly (string | number)[];

export interface PositionedYaml {
  /** The document as plain data, aliases expanded: a mapping. */
  data: Record<string, unknown>;
  /** The line of the node (or the key of the pair) at a key path; of its deepest existing ancestor otherwise. */
  lineAt(keyPath: KeyPath): number | null;
  /** `${VAR}`s left unset (with `lazyEnv`), each with the issue it would be. */
  unresolved: UnresolvedVariable[];
  /** The unset variable a value at `keyPath` (or a value inside it) holds, if any. */
  unsetAt(keyPath: KeyPath): UnresolvedVariable | undefined;
}

/**
 * Parse manifest text. Throws ManifestError with every issue (each at its line and key path):
 * YAML syntax, unresolved or cyclic aliases, duplicate keys, unset variables (unless
 * `lazyEnv`: then they are returned in `unresolved`), alias expansion past the limit, and a
 * document that is not a mapping.
 */
export function readYaml(text: string, options: { file: string; env?: Env; lazyEnv?: boolean }): PositionedYaml {
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
  return {
    data: data as Record<string, unknown>,
    lineAt: (keyPath) => lineOf(offsetAt(keyPath)),
    unresolved,
    unsetAt: (keyPath) => unresolved.find((u) => isPrefix(u.keyPath, keyPath)),
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** Issues in line order, at most MAX_ISSUES of them and a last one saying how many were left out. */
export function capped(issues: ManifestIssue[]): ManifestIssue[] {
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
function locator(doc: Document): (keyPath: KeyPath) => number | undefined {
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
