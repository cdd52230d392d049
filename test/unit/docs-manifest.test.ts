/**
 * docs/manifest.md is the manifest reference. These checks keep it the schema's own: every key
 * table (marked `<!-- keys: PATH… -->`) lists exactly the keys the zod schema accepts at PATH,
 * every object of the schema has a table, and every code block marked `yaml manifest` loads
 * through the real loader.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../../src/errors.js';
import { manifestJsonSchema } from '../../src/manifest/json-schema.js';
import { parseManifest } from '../../src/manifest/load.js';

const ROOT = path.resolve(__dirname, '../..');
const DOC = 'docs/manifest.md';
const page = readFileSync(path.join(ROOT, DOC), 'utf8');

type JsonNode = { properties?: Record<string, JsonNode>; items?: JsonNode; additionalProperties?: unknown; anyOf?: JsonNode[]; oneOf?: JsonNode[] };

/**
 * The keys the schema accepts, by path: `(top)`, `defaults`, `connections.NAME`, `resources[]`,
 * `resources[].owner` (one owner or a list of them: the same keys). The branches of a union at
 * one path (the three connection kinds, the forms of `mark`) are merged.
 */
function schemaKeys(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const walk = (node: JsonNode | undefined, at: string) => {
    if (!node || typeof node !== 'object') return;
    for (const branch of [...(node.anyOf ?? []), ...(node.oneOf ?? [])]) walk(branch, at);
    if (node.properties && Object.keys(node.properties).length > 0) {
      const keys = out.get(at) ?? new Set<string>();
      for (const [key, child] of Object.entries(node.properties)) {
        keys.add(key);
        walk(child, at === '(top)' ? key : `${at}.${key}`);
      }
      out.set(at, keys);
    }
    // A list of owners has the keys of one owner; other lists are `PATH[]`.
    if (node.items) walk(node.items, at.endsWith('.owner') ? at : `${at}[]`);
    if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties as JsonNode, `${at}.NAME`);
  };
  walk(manifestJsonSchema() as JsonNode, '(top)');
  return out;
}

/** The keys the page's tables list, by the paths each table's `<!-- keys: … -->` names. */
function documentedKeys(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let paths: string[] | null = null;
  let row = 0;
  for (const line of text.split('\n')) {
    const marker = /^<!-- keys: (.+) -->$/.exec(line);
    if (marker) {
      paths = marker[1]!.trim().split(/\s+/);
      for (const p of paths) if (!out.has(p)) out.set(p, new Set());
      row = 0;
      continue;
    }
    if (paths === null) continue;
    if (!line.startsWith('|')) {
      if (row > 0) paths = null;
      continue;
    }
    // Rows 1 and 2 are the header and the rule; the first cell of each other row names the
    // key: `key`, or a form of its value (`tag`, `{ tag: NAME }`, `true`).
    if (++row <= 2) continue;
    const key = /^`\{? ?([A-Za-z0-9]+)/.exec(line.split('|')[1]!.trim())?.[1];
    if (key) for (const p of paths) out.get(p)!.add(key);
  }
  return out;
}

/** Keys the tables list that are forms of a value rather than keys (`mark: tag`, `archive: true`). */
const VALUE_FORMS: Record<string, string[]> = { 'resources[].mark': ['tag'], 'resources[].archive': ['true'] };

/** The code blocks whose info string is `yaml manifest`. */
function manifestBlocks(text: string): { line: number; source: string }[] {
  const out: { line: number; source: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```yaml manifest') continue;
    const end = lines.indexOf('```', i + 1);
    out.push({ line: i + 1, source: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

const ENV = { S3_ENDPOINT: 'http://127.0.0.1:9000', DATABASE_URL: 'postgres://reaper@127.0.0.1:5432/app', LEGACY_DATABASE_URL: 'mysql://reaper@127.0.0.1:3306/app' };

describe('docs/manifest.md', () => {
  const schema = schemaKeys();
  const documented = documentedKeys(page);

  it('lists every key the schema accepts, object by object, and no other', () => {
    const problems: string[] = [];
    for (const [at, keys] of schema) {
      const listed = documented.get(at);
      if (!listed) {
        problems.push(`${at}: no table (<!-- keys: ${at} -->)`);
        continue;
      }
      for (const key of keys) if (!listed.has(key)) problems.push(`${at}.${key}: accepted by the schema, not documented`);
    }
    for (const [at, listed] of documented) {
      const keys = schema.get(at);
      if (!keys) {
        problems.push(`${at}: documented, but the schema has no such object`);
        continue;
      }
      for (const key of listed) if (!keys.has(key) && !VALUE_FORMS[at]?.includes(key)) problems.push(`${at}.${key}: documented, not accepted by the schema`);
    }
    expect(problems).toEqual([]);
    // Not vacuous: the schema's objects were found, and the tables were read.
    expect(schema.get('resources[].s3')).toContain('deleteMode');
    expect(documented.get('connections.NAME')).toContain('statementTimeout');
  });

  it('has manifest examples, and every one loads through the real loader', () => {
    const blocks = manifestBlocks(page);
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    const failures: string[] = [];
    for (const { line, source } of blocks) {
      try {
        parseManifest(source, { file: `${DOC}:${line}`, baseDir: path.join(ROOT, 'docs'), env: ENV });
      } catch (error) {
        failures.push(`block at ${DOC}:${line}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('finds what is wrong with a table: a key the schema lacks, a key it has that is missing', () => {
    const fake = ['<!-- keys: defaults.breaker -->', '| key | type |', '| --- | --- |', '| `maxDrop` | number |', '| `maxRise` | number |', '', 'text'].join('\n');
    const listed = documentedKeys(fake).get('defaults.breaker')!;
    expect([...listed]).toEqual(['maxDrop', 'maxRise']);
    const keys = schema.get('defaults.breaker')!;
    expect([...keys].filter((k) => !listed.has(k))).toEqual(['minLiveKeys']);
    expect([...listed].filter((k) => !keys.has(k))).toEqual(['maxRise']);
    // A manifest block that does not load is caught (an unknown key).
    expect(() => parseManifest('version: 1\nresources: []\nfoo: 1\n', { file: 'x', baseDir: ROOT, env: {} })).toThrow(ManifestError);
  });
});
