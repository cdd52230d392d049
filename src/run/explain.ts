/**
 * `explain`: why one resource is live or not — its status, and for each owner the chain
 * up to a live key (with lease states and each source's answer) or where it breaks.
 * Read-only; follows `ref` owners recursively (cycles and depth bounded).
 */
import { existsSync } from 'node:fs';
import nodePath from 'node:path';
import { safeRelative } from '../backends/fs/fs-identity.js';
import type { Backend } from '../backends/types.js';
import { classify, readOwners } from '../engine/classify.js';
import type { Finding, OwnerValue } from '../engine/types.js';
import { UsageError } from '../errors.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import { printable } from '../report/table.js';
import type { Lease, StateStore, Tombstone, TombstoneState } from '../state/types.js';
import { formatSeconds } from '../util/format.js';
import { judgeRecords } from './classify-stream.js';
import { openRunContext, type RunContext } from './context.js';

export interface OwnerExplanation {
  rule: string;
  value: string | null;
  kind: OwnerValue['kind'];
  key?: string;
  /** Each liveness source's answer for the key. */
  sources?: Record<string, 'live' | 'dead' | string>;
  leases?: Pick<Lease, 'leaseId' | 'holder' | 'generation' | 'expiresAt' | 'releasedAt'>[];
  ref?: Explanation | { type: string; id: string; cycle: true } | { type: string; id: string; depthLimit: true };
}

export interface Explanation {
  resource: string;
  id: string;
  found: boolean;
  finding: Pick<Finding, 'status' | 'reason' | 'owner' | 'ageSeconds' | 'bytes'> | null;
  owners: OwnerExplanation[];
  tombstone: { state: string; markedAt: string } | null;
  /**
   * For a resource not found: the newest tombstone the ledger holds of it, whatever its state
   * (`deleted`: reaper deleted it), so that a resource reaper reaped is not merely "not found".
   * Null when found, and for an id reaper never marked.
   */
  ledger: LedgerRecord | null;
  /**
   * The id as it was given, when that was a path no id of the type can be (a files type's ids
   * are relative to its root, without `.` or `..`) and `id` is the one it names. Top level only.
   */
  given?: string;
  /**
   * Ids of the type the given one may have meant (a whole path, an `s3://` URL), when nothing is
   * known of it: not found, no tombstone. Empty otherwise. Top level only.
   */
  suggestions?: string[];
}

/** What the ledger says of a resource: its newest tombstone. */
export interface LedgerRecord {
  state: TombstoneState;
  /** Why it was marked (`owner-dead`, `ttl`, …) and the owner judged then. */
  reason: string;
  owner: string | null;
  markedRunId: string;
  markedAt: string;
  /** The run that deleted or lifted it (or began deleting it); null while marked. A restore keeps the deleting run: its note names the restoring one. */
  outcomeRunId: string | null;
  /** When the tombstone last changed state. */
  updatedAt: string;
  note: string | null;
  /** Where the backend kept a copy, for `restore`; null when it kept none. */
  restoreHandle: string | null;
  /**
   * Whether that copy is there for `restore`: `kept`; `purged` (its retention ended and a reap
   * removed it, or someone did); `none` (no copy was kept). Only files tell a purged copy; other
   * backends keep theirs until removed by hand (docs/manifest.md `retain`, `archive`).
   */
  copy: 'kept' | 'purged' | 'none';
  /** When the copy's retention ends (files `retain`); null where nothing ends it. */
  keptUntil: string | null;
}

const MAX_DEPTH = 8;

/** `cwd`: where a relative path given for an id is read from (default: the process's). */
export async function runExplain(manifest: Manifest, type: string, id: string, options: { store?: StateStore; signal?: AbortSignal; cwd?: string } = {}): Promise<Explanation> {
  const spec = manifest.resources.find((r) => r.name === type);
  if (!spec) throw new UsageError(`no resource type "${type}" in ${manifest.file}`);
  const form = idForm(spec, id, [options.cwd ?? process.cwd(), nodePath.dirname(manifest.file)]);
  const context = await openRunContext(manifest, { store: options.store });
  try {
    const x = await explainOne(context, type, form.id, new Set(), 0, options.signal);
    const unknown = !x.found && x.ledger === null && x.tombstone === null;
    return { ...x, ...(form.id === id ? {} : { given: id }), suggestions: unknown ? form.suggestions.filter((s) => s !== form.id) : [] };
  } finally {
    await context.close();
  }
}

/**
 * The id `explain` looks up for the one given, and the ids it may have meant. A files type's
 * ids are paths relative to its root without empty, `.` or `..` segments (backends/fs): a path
 * that cannot be one (absolute, `./x`, `a/../b`) names the id it reaches inside the root, read
 * as a shell would (from `dirs[0]`, where the command runs) or else from the root — but never
 * from the root when it is written from here (`./x`) and that file exists outside the root (a
 * suggestion then). A path that could be an id is looked up as it is; the file it names from
 * `dirs` (where the command runs, the manifest's directory), if inside the root, is a suggestion. An S3 type's `s3://BUCKET/KEY`
 * suggests KEY.
 */
function idForm(spec: ResourceSpec, id: string, dirs: readonly string[]): { id: string; suggestions: string[] } {
  const l = spec.location;
  if (l.kind === 's3') {
    const url = `s3://${l.bucket}/`;
    return { id, suggestions: id.startsWith(url) && id.length > url.length ? [id.slice(url.length)] : [] };
  }
  if (l.kind !== 'fs' || id === '') return { id, suggestions: [] };
  const inRoot = (full: string): string | null => {
    const rel = nodePath.relative(l.path, full).split(nodePath.sep).join('/');
    return safeRelative(rel) ? rel : null;
  };
  if (!safeRelative(id)) {
    // Read from where the command runs; outside the root, from the root instead, unless it was
    // written from here (`./x`, `../x`) and names a file here: then that file is meant, which is
    // none of the type's, and the path read from the root is only a suggestion.
    if (nodePath.isAbsolute(id)) return { id: inRoot(id) ?? id, suggestions: [] };
    const here = nodePath.resolve(dirs[0]!, id);
    const fromRoot = inRoot(nodePath.resolve(l.path, id));
    const reached = inRoot(here) ?? (/^\.\.?(\/|$)/.test(id) && existsSync(here) ? null : fromRoot);
    return { id: reached ?? id, suggestions: reached === null && fromRoot !== null ? [fromRoot] : [] };
  }
  const meant = dirs.map((dir) => inRoot(nodePath.resolve(dir, id))).filter((rel): rel is string => rel !== null && rel !== id);
  return { id, suggestions: [...new Set(meant)] };
}

async function explainOne(context: RunContext, type: string, id: string, path: Set<string>, depth: number, signal?: AbortSignal): Promise<Explanation> {
  const spec = context.manifest.resources.find((r) => r.name === type)!;
  const backend = await context.backend(spec);
  const record = (await backend.read([id], signal)).get(id);
  const active = await context.store.activeTombstones(type, [id]);
  const t = active.get(id);
  const tombstone = t ? { state: t.state, markedAt: new Date(t.markedAt).toISOString() } : null;
  if (!record) return { resource: type, id, found: false, finding: null, owners: [], tombstone, ledger: await ledgerRecord(context.store, backend, type, id) };
  const { answers } = await judgeRecords([record], spec, context.liveness, signal);
  const f = classify(record, spec, answers, await context.store.now());
  const owners: OwnerExplanation[] = [];
  const values = readOwners(record, spec);
  const here = `${type}\0${id}`;
  for (const [i, owner] of values.entries()) {
    const rule = spec.owners[i]!;
    const e = rule.extractor;
    const entry: OwnerExplanation = {
      rule: `${'pattern' in e ? `${e.from} ${e.pattern}` : `${e.from} ${e.name}`}${rule.ref ? ` → ${rule.ref}` : ''}`,
      value: owner.kind === 'key' ? owner.key : owner.kind === 'ref' ? owner.ref.id : null,
      kind: owner.kind,
    };
    if (owner.kind === 'key') {
      entry.key = owner.key;
      entry.sources = {};
      for (const source of context.liveness.sources) {
        try {
          entry.sources[source.name] = (await source.lookup([owner.key], signal)).has(owner.key) ? 'live' : 'dead';
        } catch (error) {
          entry.sources[source.name] = `error: ${(error as Error).message}`;
        }
      }
      entry.leases = (await context.store.listLeases({ key: owner.key, includeInactive: true, limit: 5 })).map((l) => ({
        leaseId: l.leaseId,
        holder: l.holder,
        generation: l.generation,
        expiresAt: l.expiresAt,
        releasedAt: l.releasedAt,
      }));
    } else if (owner.kind === 'ref') {
      const next = `${owner.ref.type}\0${owner.ref.id}`;
      if (path.has(next) || next === here) entry.ref = { type: owner.ref.type, id: owner.ref.id, cycle: true };
      else if (depth + 1 >= MAX_DEPTH) entry.ref = { type: owner.ref.type, id: owner.ref.id, depthLimit: true };
      else entry.ref = await explainOne(context, owner.ref.type, owner.ref.id, new Set([...path, here]), depth + 1, signal);
    }
    owners.push(entry);
  }
  return {
    resource: type,
    id,
    found: true,
    finding: { status: f.status, reason: f.reason, owner: f.owner, ageSeconds: f.ageSeconds, bytes: f.bytes },
    owners,
    tombstone,
    ledger: null,
  };
}

/** The newest tombstone of one resource, as `explain` shows it. */
async function ledgerRecord(store: StateStore, backend: Backend, type: string, id: string): Promise<LedgerRecord | null> {
  const newest = (await store.findTombstones({ resource: type, resourceId: id }))
    .filter((t) => t.resourceId === id)
    .reduce<Tombstone | null>((a, t) => (a === null || t.tombstoneId > a.tombstoneId ? t : a), null);
  if (newest === null) return null;
  const iso = (ms: number) => new Date(ms).toISOString();
  const handle = newest.state === 'deleted' ? newest.restoreHandle : null;
  const copy = handle === null || !backend.keptCopy ? null : await backend.keptCopy(handle);
  return {
    state: newest.state,
    reason: newest.reason,
    owner: newest.owner,
    markedRunId: newest.markedRunId,
    markedAt: iso(newest.markedAt),
    outcomeRunId: newest.outcomeRunId,
    updatedAt: iso(newest.updatedAt),
    note: newest.note,
    restoreHandle: newest.restoreHandle,
    copy: handle === null ? 'none' : copy === null || copy.present ? 'kept' : 'purged',
    keptUntil: copy?.untilMs == null ? null : iso(copy.untilMs),
  };
}

/** The first line's end for a resource not found, and the lines under it, from its ledger record. */
function ledgerText(x: Explanation, indent: string): { head: string; lines: string[] } {
  const l = x.ledger;
  if (l === null) return { head: x.tombstone ? ` (tombstone ${x.tombstone.state})` : '', lines: [] };
  const head = {
    deleted: `: deleted by reaper, run ${l.outcomeRunId ?? '(unknown)'} at ${l.updatedAt}`,
    deleting: `: reaper was deleting it (run ${l.outcomeRunId ?? l.markedRunId}); the next reap settles its tombstone`,
    marked: ': its tombstone is marked, not swept; reaper did not delete it',
    lifted: `; reaper did not delete it: its tombstone was lifted${l.outcomeRunId === null ? '' : ` by run ${l.outcomeRunId}`} at ${l.updatedAt}`,
    restored: `; reaper deleted it (run ${l.outcomeRunId ?? '(unknown)'}), restored it at ${l.updatedAt}, and it is gone again`,
  }[l.state];
  const lines = [`${indent}  marked by run ${l.markedRunId} at ${l.markedAt} (${l.reason}${l.owner === null ? '' : `, owner ${printable(l.owner)}`})`];
  lines.push(`${indent}  tombstone ${l.state}${l.note ? `: ${printable(l.note)}` : ''}`);
  if (l.state === 'deleted') {
    lines.push(
      l.copy === 'none'
        ? `${indent}  no copy kept: restore cannot bring it back`
        : l.copy === 'purged'
          ? `${indent}  its kept copy is gone${l.keptUntil === null ? '' : ` (retained until ${l.keptUntil})`}: restore cannot bring it back`
          : `${indent}  kept for restore${l.keptUntil === null ? '' : ` until ${l.keptUntil}`} (handle ${printable(l.restoreHandle ?? '')}): reaper restore --resource ${x.resource} --id ${printable(x.id)}`,
    );
  }
  return { head, lines };
}

/** The explanation as an indented tree for a terminal. */
export function explanationText(x: Explanation, indent = ''): string {
  const lines: string[] = [];
  const id = `"${printable(x.id)}"`;
  if (!x.found) {
    const ledger = ledgerText(x, indent);
    lines.push(`${indent}${x.resource} ${id}: not found${ledger.head}`, ...ledger.lines);
    return lines.join('\n');
  }
  const f = x.finding!;
  const age = f.ageSeconds === null ? '' : `, age ${formatSeconds(f.ageSeconds)}`;
  lines.push(`${indent}${x.resource} ${id}: ${f.status}${f.reason ? ` (${f.reason})` : ''}${age}${x.tombstone ? `, tombstone ${x.tombstone.state} since ${x.tombstone.markedAt}` : ''}`);
  if (x.owners.length === 0) lines.push(`${indent}  no owner rules`);
  for (const o of x.owners) {
    if (o.kind === 'none') lines.push(`${indent}  owner by ${o.rule}: nothing to read`);
    else if (o.kind === 'unreadable') lines.push(`${indent}  owner by ${o.rule}: could not be read`);
    else if (o.kind === 'key') {
      const sources = Object.entries(o.sources ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
      lines.push(`${indent}  owner key "${printable(o.key ?? '')}" by ${o.rule}: ${sources}`);
      for (const l of o.leases ?? []) {
        const state = l.releasedAt !== null ? `released ${new Date(l.releasedAt).toISOString()}` : `expires ${new Date(l.expiresAt).toISOString()}`;
        lines.push(`${indent}    lease ${l.leaseId} (${l.holder}, generation ${l.generation}) ${state}`);
      }
    } else if (o.ref && 'cycle' in o.ref) lines.push(`${indent}  owned by ${o.ref.type} "${printable(o.ref.id)}" — a cycle back to a resource above`);
    else if (o.ref && 'depthLimit' in o.ref) lines.push(`${indent}  owned by ${o.ref.type} "${printable(o.ref.id)}" — deeper than ${MAX_DEPTH} hops, not followed`);
    else if (o.ref) {
      lines.push(`${indent}  owned by ${o.rule}:`);
      lines.push(explanationText(o.ref as Explanation, `${indent}    `));
    }
  }
  return lines.join('\n');
}
