/**
 * `audit`: scan every resource type, classify, and report leak telemetry. Read-only on
 * every backend; the state store records the run.
 */
import { matchesFilter, type FindingFilter } from '../engine/filters.js';
import type { Finding } from '../engine/types.js';
import { declaredScope } from '../backends/open.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import { findingOutput, leaseTelemetry, type AuditDocument } from '../report/document.js';
import { TopFindings } from '../report/priority.js';
import { REPORT_SCHEMA_VERSION, scanProblem, sourceProblem, summarize, TelemetryAccumulator, type ResourceTelemetry } from '../report/telemetry.js';
import { redact, SafetyError, UsageError } from '../errors.js';
import { jobShard, shardPart, type Shard } from '../engine/shard.js';
import type { StateStore } from '../state/types.js';
import { reaperVersion } from '../version.js';
import { classifyResource } from './classify-stream.js';
import { openRunContext, type RunContext } from './context.js';
import { KeyShapeCheck } from './key-shapes.js';
import { recordedRun } from './recorded-run.js';

export const LEASE_STATS_WINDOW_MS = 60 * 60_000;

export interface AuditProgress {
  resource: string;
  scanned: number;
  orphaned: number;
}

export interface AuditOptions {
  store?: StateStore;
  signal?: AbortSignal;
  /** Only these resource types (all when absent). */
  resources?: readonly string[];
  /** Called for every non-live finding, in scan order (e.g. to stream NDJSON). */
  onFinding?: (finding: Finding) => void | Promise<void>;
  onProgress?: (progress: AuditProgress) => void;
  /** How many findings the document carries (default 1,000); all of them reach onFinding. */
  maxFindings?: number;
  /** Only findings this filter keeps are counted and reported (--older-than, --owner). */
  filter?: FindingFilter;
  /** Told when a type's owner keys and the liveness sources' keys share no shape (run/key-shapes.ts), from its first page. */
  onWarning?: (warning: string) => void;
  /** Told the run's id once it is recorded, and each type's telemetry once scanned (machine logs). */
  onRunStarted?: (run: { runId: string; startedAt: number }) => void;
  onResourceScanned?: (telemetry: ResourceTelemetry) => void;
  /** Scan only this shard's part of each type (engine/shard.ts, docs/scale-out.md). */
  shard?: Shard | null;
  /** The job this run is a shard of (--job), recorded with the run and in the document. */
  job?: string | null;
}

export async function runAudit(manifest: Manifest, options: AuditOptions = {}): Promise<AuditDocument> {
  const context = await openRunContext(manifest, { store: options.store, signal: options.signal });
  const { store } = context;
  const maxFindings = options.maxFindings ?? 1_000;
  const job = jobShard(options.job, options.shard);
  const recording = { kind: 'audit' as const, manifestDigest: manifest.digest, execute: false, signal: options.signal, onRunStarted: options.onRunStarted, job };
  try {
    return await recordedRun(context, { ...recording, stopped: 'interrupted: the audit stopped before it finished (it changes nothing)' }, async (run) => {
      // A source that fails is reported and its keys judged unknown (never dead) for the whole run.
      const sources = await context.liveness.counts(options.signal);
      const nowMs = await store.now();
      // Past --max-findings the document keeps the most pressing (orphans first, older first), in scan order.
      const kept = new TopFindings(maxFindings);
      let findingsTotal = 0;
      const keep = async (finding: Finding) => {
        findingsTotal++;
        kept.add(findingOutput(finding));
        await options.onFinding?.(finding);
      };
      const resources: ResourceTelemetry[] = [];
      const specs = manifest.resources.filter((r) => !options.resources || options.resources.includes(r.name));
      const shapes = options.onWarning ? new KeyShapeCheck(context.liveness, options.signal) : null;
      for (const spec of specs) {
        resources.push(await auditResource(context, spec, nowMs, keep, shapes, options));
        options.onResourceScanned?.(resources[resources.length - 1]!);
      }
      const findings = kept.inOrder();
      const sourceErrors = Object.fromEntries(Object.entries(context.liveness.failures()).map(([name, e]) => [name, redact(e)]));
      const leaseStats = await store.leaseStats(LEASE_STATS_WINDOW_MS);
      const finishedAt = await store.now();
      const document: AuditDocument = {
        version: REPORT_SCHEMA_VERSION,
        kind: 'audit',
        reaper: reaperVersion(),
        runId: run.runId,
        startedAt: new Date(run.startedAt).toISOString(),
        finishedAt: new Date(finishedAt).toISOString(),
        durationSeconds: Math.max(0, finishedAt - run.startedAt) / 1000,
        manifest: manifest.file,
        state: redact(store.description),
        ...(job ? { job } : {}),
        complete: resources.every((r) => r.status === 'ok') && Object.keys(sourceErrors).length === 0,
        summary: summarize(resources),
        resources,
        leases: leaseTelemetry(leaseStats, LEASE_STATS_WINDOW_MS),
        sources: sources.counts,
        sourceErrors,
        findings,
        findingsTotal,
        findingsTruncated: findingsTotal > findings.length,
      };
      const problems = auditProblems(document);
      return {
        result: document,
        end: {
          status: problems.length === 0 ? 'ok' : 'failed',
          // The findings list lets a later `audit --since RUN` tell new, resolved and persisting orphans.
          summary: { summary: document.summary, resources: document.resources, leases: document.leases, findings, findingsTruncated: document.findingsTruncated, ...(job ? { job } : {}) },
          sourceCounts: sources.counts,
          error: problems.length === 0 ? null : problems.join('; '),
        },
      };
    });
  } finally {
    await context.close();
  }
}

/** A failure of the caller's finding sink (a full disk under --findings): the run's failure, not the type's. */
class SinkError {
  constructor(readonly error: unknown) {}
}

/**
 * Scan and classify one resource type. A backend that cannot be opened or a scan that
 * stops makes the type `error` (its counts are what was read before); unreadable entries
 * make it `partial`. Either way the other types are still audited (docs/safety.md §21).
 */
async function auditResource(
  context: RunContext,
  spec: ResourceSpec,
  nowMs: number,
  keep: (finding: Finding) => Promise<void>,
  shapes: KeyShapeCheck | null,
  options: AuditOptions,
): Promise<ResourceTelemetry> {
  let acc: TelemetryAccumulator | null = null;
  try {
    const backend = await context.backend(spec);
    acc = new TelemetryAccumulator(spec.name, spec.location.kind, backend.scope);
    let orphaned = 0;
    let firstPage = shapes !== null;
    const part = shardPart(spec, options.shard ?? null);
    for await (const page of classifyResource(backend, spec, context.liveness, nowMs, { signal: options.signal, part })) {
      if (firstPage) {
        // The first page's owner keys against the sources' keys: a template that can never match is said at once.
        firstPage = false;
        const warning = await shapes!.check(spec, page.records);
        if (warning) options.onWarning!(warning);
      }
      if (page.unreadable) acc.addUnreadable(page.unreadable.map((u) => ({ id: u.id, why: redact(u.why) })));
      for (const finding of page.findings) {
        if (!matchesFilter(options.filter, finding)) continue;
        acc.add(finding);
        if (finding.status === 'live') continue;
        if (finding.status === 'orphaned') orphaned++;
        await keep(finding).catch((error: unknown) => {
          throw new SinkError(error);
        });
      }
      options.onProgress?.({ resource: spec.name, scanned: acc.scannedSoFar, orphaned });
    }
  } catch (error) {
    if (error instanceof SinkError) throw error.error;
    // A safety rail (a scope that resolves to the filesystem root) stops the run: exit 4, not a type error.
    // So does a split-point list the key column's order refuses (exit 2): every shard would refuse it alike.
    if (options.signal?.aborted || error instanceof SafetyError || error instanceof UsageError) throw error;
    acc ??= new TelemetryAccumulator(spec.name, spec.location.kind, declaredScope(spec));
    acc.fail(redact((error as Error)?.message ?? String(error)));
  }
  const backlog = await context.store.countTombstones(spec.name);
  return acc.result({
    count: backlog.marked + backlog.deleting,
    oldestAgeSeconds: backlog.oldestMarkedAt === null ? null : Math.max(0, nowMs - backlog.oldestMarkedAt) / 1000,
  });
}

/** One line per part the audit could not read: failed or partial types, failed liveness sources. */
export function auditProblems(doc: Pick<AuditDocument, 'resources' | 'sourceErrors'>): string[] {
  return [...doc.resources.filter((r) => r.status !== 'ok').map((r) => `${r.name}: ${scanProblem(r)}`), ...Object.entries(doc.sourceErrors).map(([name, e]) => sourceProblem(name, e))];
}
