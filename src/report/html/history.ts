/**
 * What the state store tells the report: the trend over the last runs (orphaned, expired,
 * backlog, deleted per run), the tombstones waiting for their sweep, and the last audit a
 * run recorded (its summary, per-type telemetry and the findings it kept). Reads only.
 */
import { z } from 'zod';
import { UsageError } from '../../errors.js';
import type { RunRecord, StateStore } from '../../state/types.js';
import type { AuditInput } from './build.js';
import { findingSchema, leasesSchema, telemetrySchema } from './inputs.js';
import type { PendingView, TrendPoint } from './model.js';

export type HistoryStore = Pick<StateStore, 'listRuns' | 'getRun' | 'countTombstones'>;

const recorded = z.object({
  summary: z.object({ orphaned: z.number(), expired: z.number(), backlog: z.number() }).partial().optional(),
  resources: z.array(z.unknown()).optional(),
  outcomes: z.object({ deleted: z.number() }).partial().optional(),
});

const recordedAudit = z.object({
  resources: z.array(telemetrySchema),
  leases: leasesSchema.nullable().optional(),
  findings: z.array(findingSchema).default([]),
  findingsTruncated: z.boolean().default(false),
});

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** One run as a point of the trend; a run that recorded no numbers (failed, refused, running) has nulls. */
export function trendPoint(run: RunRecord): TrendPoint {
  const parsed = recorded.safeParse(run.summary ?? {});
  const s = parsed.success ? parsed.data : {};
  const deleted = run.kind === 'reap' && run.execute ? (s.outcomes?.deleted ?? null) : null;
  return {
    runId: run.runId,
    kind: run.kind === 'reap' && !run.execute ? 'reap (dry run)' : run.kind,
    status: run.status,
    at: iso(run.finishedAt ?? run.startedAt)!,
    orphaned: s.summary?.orphaned ?? null,
    expired: s.summary?.expired ?? null,
    backlog: s.summary?.backlog ?? null,
    deleted,
  };
}

/** The audit a run recorded, in the report's terms; null when the run is no audit or recorded no numbers. */
export function auditFromRun(run: RunRecord): AuditInput | null {
  if (run.kind !== 'audit') return null;
  const parsed = recordedAudit.safeParse(run.summary ?? null);
  if (!parsed.success) return null;
  const { resources, leases, findings, findingsTruncated } = parsed.data;
  return {
    runId: run.runId,
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    complete: run.status === 'ok' || run.status === 'gate-failed',
    part: run.shard === null || run.shard === undefined ? null : { shard: run.shard, job: run.job ?? null },
    resources,
    leases: leases ?? null,
    findings: findings as AuditInput['findings'],
    findingsTotal: findingsTruncated ? undefined : findings.length,
    findingsTruncated,
  };
}

/**
 * The runs of one manifest in a state store that several share (one PostgreSQL store for many
 * teams' manifests, or two manifests in one directory on the default SQLite file): a run made
 * with this very manifest, or one whose recorded resource types are all the manifest's.
 */
export interface RunScope {
  types: ReadonlySet<string>;
  digest: string | null;
}

/** The manifest's scope; null (every run) without a manifest. */
export function manifestScope(manifest: { digest?: string; resources: readonly { name: string }[] } | null | undefined): RunScope | null {
  return manifest ? { types: new Set(manifest.resources.map((r) => r.name)), digest: manifest.digest ?? null } : null;
}

/** The resource types a run recorded numbers for. */
export function recordedNames(run: RunRecord): string[] {
  const resources = (run.summary as { resources?: { name?: unknown }[] } | null)?.resources ?? [];
  return resources.flatMap((r) => (typeof r?.name === 'string' ? [r.name] : []));
}

export function inScope(run: RunRecord, scope: RunScope | null): boolean {
  if (scope === null || (scope.digest !== null && run.manifestDigest === scope.digest)) return true;
  const names = recordedNames(run);
  return names.length > 0 && names.every((name) => scope.types.has(name));
}

/** Runs of the scope, newest first, reading at most `limit` × 5 of the store's newest. */
async function scopedRuns(store: HistoryStore, filter: { kind?: 'audit' }, limit: number, scope: RunScope | null): Promise<RunRecord[]> {
  if (scope === null) return store.listRuns({ ...filter, limit });
  return (await store.listRuns({ ...filter, limit: limit * 5 })).filter((run) => inScope(run, scope)).slice(0, limit);
}

/** The newest audit run of the scope that recorded its numbers (or the given one, which must be of the scope). */
export async function latestAudit(store: HistoryStore, runId?: string, scope: RunScope | null = null): Promise<{ run: RunRecord; audit: AuditInput } | null> {
  if (runId !== undefined) {
    const run = await store.getRun(runId);
    const audit = run ? auditFromRun(run) : null;
    if (run && audit && !inScope(run, scope)) {
      throw new UsageError(`run ${runId} audited ${recordedNames(run).join(', ')}, not the manifest's types (${[...scope!.types].join(', ')}); name the manifest it was made with, or give --state alone`);
    }
    return run && audit ? { run, audit } : null;
  }
  for (const run of await scopedRuns(store, { kind: 'audit' }, 20, scope)) {
    const audit = auditFromRun(run);
    if (audit) return { run, audit };
  }
  return null;
}

/** The last `runs` runs of the scope, oldest first. */
export async function readTrend(store: HistoryStore, runs: number, scope: RunScope | null = null): Promise<TrendPoint[]> {
  return (await scopedRuns(store, {}, runs, scope)).map(trendPoint).reverse();
}

/**
 * Tombstones marked or being deleted, per type, and the earliest moment one may be swept
 * (the oldest mark plus the type's grace, when the grace is known: it is the manifest's).
 */
export async function readPending(store: HistoryStore, types: readonly string[], graceMs?: ReadonlyMap<string, number>): Promise<PendingView[]> {
  const out: PendingView[] = [];
  for (const resource of types) {
    const { marked, deleting, oldestMarkedAt } = await store.countTombstones(resource);
    const grace = graceMs?.get(resource);
    out.push({
      resource,
      marked,
      deleting,
      oldestMarkedAt: iso(oldestMarkedAt),
      earliestSweepAt: oldestMarkedAt === null || marked === 0 || grace === undefined ? null : iso(oldestMarkedAt + grace),
    });
  }
  return out;
}

/** The resource types runs have recorded, newest first: for pending tombstones when no manifest names them. */
export async function recordedTypes(store: HistoryStore): Promise<string[]> {
  const names = new Set<string>();
  for (const run of await store.listRuns({ limit: 20 })) for (const name of recordedNames(run)) names.add(name);
  return [...names];
}
