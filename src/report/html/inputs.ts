/**
 * The files `reaper report` reads: an audit JSON document (`audit --output json`), a reap
 * JSON report (`reap --output json`), or findings NDJSON (`audit --findings FILE`, read
 * line by line, so its size does not matter). Anything else is refused with the file,
 * the line and the key (exit 2), before anything is written.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { z } from 'zod';
import { STATUSES } from '../../engine/types.js';
import { formatManifestIssue, UsageError } from '../../errors.js';
import { formatPath } from '../../manifest/yaml.js';
import type { ReapReport } from '../reap-report.js';
import type { FindingOutput } from '../document.js';
import type { AuditInput } from './build.js';

const count = z.number().int().nonnegative();
const seconds = z.number().nonnegative().nullable();

export const findingSchema = z.object({
  resource: z.string().min(1),
  backend: z.string().default(''),
  id: z.string(),
  status: z.enum(STATUSES as [string, ...string[]]),
  reason: z.string().nullable().default(null),
  owner: z.string().nullable().default(null),
  ageSeconds: z.number().nullable().default(null),
  bytes: z.number().nullable().default(null),
});

/** What was scanned and how it was judged: per type, and summed. */
const statusCounts = { scanned: count, live: count, orphaned: count, expired: count, protected: count, young: count, unknown: count.default(0) };

export const telemetrySchema = z.object({
  name: z.string().min(1),
  backend: z.enum(['s3', 'postgres', 'mysql', 'fs', 'command', 'http']),
  scope: z.string().default(''),
  status: z.enum(['ok', 'partial', 'error']).default('ok'),
  error: z.string().nullable().default(null),
  unreadable: count.default(0),
  ...statusCounts,
  reasons: z.record(z.string(), z.number()).default({}),
  orphanBytes: z.number().nonnegative(),
  avgAgeBeyondTtlSeconds: seconds.default(null),
  maxAgeBeyondTtlSeconds: seconds.default(null),
  oldestOrphanAgeSeconds: seconds.default(null),
  backlog: count.default(0),
  backlogOldestAgeSeconds: seconds.default(null),
});

export const leasesSchema = z.object({
  active: count,
  expired: count,
  renewals: count,
  renewalFailures: count,
  renewalFailureRate: z.number(),
  windowSeconds: z.number(),
});

const auditSchema = z.object({
  kind: z.literal('audit'),
  runId: z.string(),
  startedAt: z.string().nullable().default(null),
  finishedAt: z.string().nullable().default(null),
  complete: z.boolean().nullable().default(null),
  // A shard's document (`job: { id, shard }`): the page says which part of each type it covers.
  job: z
    .object({ id: z.string().nullable().default(null), shard: z.string().nullable().default(null) })
    .nullable()
    .optional()
    .transform((job) => job ?? null),
  resources: z.array(telemetrySchema),
  leases: leasesSchema.nullable().default(null),
  sourceErrors: z.record(z.string(), z.string()).default({}),
  findings: z.array(findingSchema),
  findingsTotal: count.optional(),
  findingsTruncated: z.boolean().default(false),
});

const outcomesSchema = z.object({ marked: count, deleted: count, lifted: count, failed: count, kept: count.default(0), bytesReclaimed: z.number().nonnegative().default(0) });

const reapSchema = z.object({
  version: z.number(),
  kind: z.literal('reap'),
  reaper: z.string().default(''),
  runId: z.string(),
  execute: z.boolean(),
  plan: z.string().nullable().default(null),
  summary: z.object({
    errors: count.default(0),
    unreadable: count.default(0),
    ...statusCounts,
    orphanBytes: z.number().nonnegative(),
    backlog: count.default(0),
  }),
  resources: z.array(
    z.object({
      name: z.string().min(1),
      backend: z.string(),
      deleteMode: z.string().nullable().default(null),
      scanned: count,
      toMark: count,
      toSweep: count,
      toLift: count,
      samples: z.object({ mark: z.array(z.string()), sweep: z.array(z.string()), lift: z.array(z.string()) }).default({ mark: [], sweep: [], lift: [] }),
      lifts: z.record(z.string(), z.number()).default({}),
      outcomes: outcomesSchema,
      telemetry: telemetrySchema.nullable(),
      error: z.string().nullable().default(null),
      pending: z.object({ count, earliestSweepAt: z.string().nullable() }).nullable().default(null),
    }),
  ),
  outcomes: outcomesSchema,
  sources: z.record(z.string(), z.number()).default({}),
  sourceErrors: z.record(z.string(), z.string()).default({}),
  errors: z.array(z.string()).default([]),
});

export type ReportFile = { kind: 'audit'; file: string; audit: AuditInput } | { kind: 'reap'; file: string; reap: ReapReport } | { kind: 'findings'; file: string };

const refuse = (file: string, line: number | null, path: string, message: string) => new UsageError(formatManifestIssue({ file, line, path, message }));

/** What a file holds, judged by its first line: a finding (NDJSON) or the start of a JSON document (read whole and checked). */
export async function readReportFile(file: string): Promise<ReportFile> {
  // Read twice (the first line, then whole or streamed): a pipe would give its bytes to the first read only.
  const info = await stat(file).catch(() => null);
  if (info && !info.isFile()) {
    throw refuse(file, null, '', 'not a regular file (a pipe gives its bytes once, and a report input is read twice); save it to a file and name that');
  }
  const first = await firstLine(file);
  if (first === null) throw refuse(file, null, '', 'the file is empty; expected an audit or reap JSON document, or findings NDJSON');
  const parsed = tryJson(first);
  if (isRecord(parsed) && 'resource' in parsed && 'id' in parsed && !('kind' in parsed)) return { kind: 'findings', file };
  const handle = await open(file, 'r');
  let text: string;
  try {
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    // A manifest is the likeliest wrong file here (`reaper report reaper.yaml` for `-c reaper.yaml`).
    if (/^version:\s*1\b/m.test(text) && /^resources:/m.test(text)) {
      throw refuse(file, 1, '', `this is a reaper manifest, not an audit document, a reap report or findings NDJSON; \`reaper report -c ${file}\` reports the newest audit its state store recorded`);
    }
    throw refuse(file, jsonErrorLine(text), '', `not JSON: ${(error as Error).message}`);
  }
  const kind = isRecord(doc) ? doc.kind : undefined;
  if ((kind === 'audit' || kind === 'reap') && isRecord(doc) && !('resources' in doc) && 'summary' in doc) {
    throw refuse(file, 1, '', `this is the one-line summary of \`reaper ${kind} --quiet --output json\`, not ${kind === 'audit' ? 'an audit document' : 'a reap report'}; write the document without --quiet`);
  }
  if (kind === 'audit') {
    const { job, ...audit } = checked(auditSchema, doc, file, text);
    return { kind: 'audit', file, audit: { ...audit, part: job?.shard ? { shard: job.shard, job: job.id } : null } as AuditInput };
  }
  if (kind === 'reap') return { kind: 'reap', file, reap: checked(reapSchema, doc, file, text) as ReapReport };
  throw refuse(file, lineOfPath(text, ['kind']), 'kind', 'expected a reaper audit document (kind "audit"), a reap report (kind "reap"), or findings NDJSON (one finding per line)');
}

/**
 * Every finding of an NDJSON file, in order, one line at a time (memory does not grow
 * with the file). A line that is not a finding stops the read with its line and key.
 */
export async function streamFindings(file: string, onFinding: (finding: FindingOutput) => void, signal?: AbortSignal): Promise<number> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  let n = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      if (signal?.aborted) throw signal.reason;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw refuse(file, lineNo, '', `not JSON: ${(error as Error).message}`);
      }
      const result = findingSchema.safeParse(value);
      if (!result.success) {
        const issue = result.error.issues[0]!;
        throw refuse(file, lineNo, formatPath(issue.path as (string | number)[]), issue.message);
      }
      onFinding(result.data as FindingOutput);
      n++;
    }
  } finally {
    lines.close();
  }
  return n;
}

async function firstLine(file: string): Promise<string | null> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8', highWaterMark: 64 * 1024 }), crlfDelay: Infinity });
  try {
    for await (const line of lines) if (line.trim() !== '') return line;
    return null;
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  } finally {
    lines.close();
  }
}

function checked<T>(schema: z.ZodType<T>, value: unknown, file: string, text: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const keyPath = issue.path as (string | number)[];
  throw refuse(file, lineOfPath(text, keyPath), formatPath(keyPath), issue.message);
}

/** The line of a key path in a JSON text (JSON is YAML, whose parser keeps positions); null when it is not there. */
function lineOfPath(text: string, keyPath: readonly (string | number)[]): number | null {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, keepSourceTokens: false });
  let node: Node | null = doc.contents as Node | null;
  let found: Node | null = node;
  for (const key of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      node = (pair?.value as Node | undefined) ?? (pair?.key as Node | undefined) ?? null;
    } else if (isSeq(node) && typeof key === 'number') {
      node = (node.items[key] as Node | undefined) ?? null;
    } else {
      node = null;
    }
    if (node === null) break;
    found = node;
  }
  const offset = found?.range?.[0];
  return offset === undefined ? null : counter.linePos(offset).line;
}

/** The line of the first JSON syntax error (JSON.parse does not always say where). */
function jsonErrorLine(text: string): number {
  return text.slice(0, jsonErrorOffset(text)).split('\n').length;
}

/** Where a JSON text stops being JSON: a small recursive-descent reader that only finds the offset. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail();
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const value = (depth: number): void => {
    if (depth > 10_000) fail();
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === close) {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
  return i;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
