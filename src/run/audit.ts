/**
 * `audit`: scan every resource type, classify, and report leak telemetry. Read-only on
 * every backend; the state store records the run.
 */
import type { Finding } from '../engine/types.js';
import type { Manifest } from '../manifest/types.js';
import { findingOutput, leaseTelemetry, type AuditDocument, type FindingOutput } from '../report/document.js';
import { REPORT_SCHEMA_VERSION, summarize, TelemetryAccumulator, type ResourceTelemetry } from '../report/telemetry.js';
import { redact, BackendError } from '../errors.js';
import type { StateStore } from '../state/types.js';
import { reaperVersion } from '../version.js';
import { classifyResource } from './classify-stream.js';
import { openRunContext } from './context.js';

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
}

export async function runAudit(manifest: Manifest, options: AuditOptions = {}): Promise<AuditDocument> {
  const context = await openRunContext(manifest, { store: options.store });
  const { store } = context;
  const maxFindings = options.maxFindings ?? 1_000;
  const run = await context.startRun({ kind: 'audit', manifestDigest: manifest.digest, execute: false });
  try {
    const sources = await context.liveness.counts(options.signal);
    const failedSources = Object.entries(sources.errors);
    if (failedSources.length > 0) {
      throw new BackendError(`liveness source failed: ${failedSources.map(([name, e]) => `${name}: ${redact(e)}`).join('; ')}`);
    }
    const nowMs = await store.now();
    const findings: FindingOutput[] = [];
    let findingsTotal = 0;
    const resources: ResourceTelemetry[] = [];
    const specs = manifest.resources.filter((r) => !options.resources || options.resources.includes(r.name));
    for (const spec of specs) {
      const backend = await context.backend(spec);
      const acc = new TelemetryAccumulator(spec.name, spec.location.kind, backend.scope);
      let orphaned = 0;
      for await (const page of classifyResource(backend, spec, context.liveness, nowMs, { signal: options.signal })) {
        for (const finding of page.findings) {
          acc.add(finding);
          if (finding.status === 'live') continue;
          if (finding.status === 'orphaned') orphaned++;
          findingsTotal++;
          if (findings.length < maxFindings) findings.push(findingOutput(finding));
          await options.onFinding?.(finding);
        }
        options.onProgress?.({ resource: spec.name, scanned: acc.scannedSoFar, orphaned });
      }
      const backlog = await store.countTombstones(spec.name);
      resources.push(
        acc.result({
          count: backlog.marked + backlog.deleting,
          oldestAgeSeconds: backlog.oldestMarkedAt === null ? null : Math.max(0, nowMs - backlog.oldestMarkedAt) / 1000,
        }),
      );
    }
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
      summary: summarize(resources),
      resources,
      leases: leaseTelemetry(leaseStats, LEASE_STATS_WINDOW_MS),
      sources: sources.counts,
      findings,
      findingsTotal,
      findingsTruncated: findingsTotal > findings.length,
    };
    await store.finishRun(run.runId, {
      status: 'ok',
      // The findings list lets a later `audit --since RUN` tell new, resolved and persisting orphans.
      summary: { summary: document.summary, resources: document.resources, leases: document.leases, findings, findingsTruncated: document.findingsTruncated },
      sourceCounts: sources.counts,
    });
    return document;
  } catch (error) {
    await store
      .finishRun(run.runId, { status: options.signal?.aborted ? 'interrupted' : 'failed', error: redact((error as Error).message) })
      .catch(() => undefined);
    throw error;
  } finally {
    await context.close();
  }
}
