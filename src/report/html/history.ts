/**
 * What the state store tells the report: the trend over the last runs (orphaned, expired,
 * backlog, deleted per run), the tombstones waiting for their sweep, and the last audit a
 * run recorded (its summary, per-type telemetry and the findings it kept). Reads only.
 */
import { z } from 'zod';
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
    resources,
    leases: leases ?? null,
    findings: findings as AuditInput['findings'],
    findingsTotal: findingsTruncated ? undefined : findings.length,
    findingsTruncated,
  };
}

/** The newest audit run that recorded its numbers (or the given one). */
export async function latestAudit(store: HistoryStore, runId?: string): Promise<{ run: RunRecord; audit: AuditInput } | null> {
  if (runId !== undefined) {
    const run = await store.getRun(runId);
    const audit = run ? auditFromRun(run) : null;
    return run && audit ? { run, audit } : null;
  }
  for (const run of await store.listRuns({ kind: 'audit', limit: 20 })) {
    const audit = auditFromRun(run);
    if (audit) return { run, audit };
  }
  return null;
}

/** The last `runs` runs, oldest first. */
export async function readTrend(store: HistoryStore, runs: number): Promise<TrendPoint[]> {
  return (await store.listRuns({ limit: runs })).map(trendPoint).reverse();
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
  for (const run of await store.listRuns({ limit: 20 })) {
    const resources = (run.summary as { resources?: { name?: unknown }[] } | null)?.resources ?? [];
    for (const r of resources) if (typeof r?.name === 'string') names.add(r.name);
  }
  return [...names];
}
