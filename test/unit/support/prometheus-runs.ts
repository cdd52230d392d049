/** Runs that bring out every family renderPrometheus writes: an audit and an executed reap, rendered together and the reap alone. */
import type { AuditDocument } from '../../../src/report/document.js';
import { renderPrometheus } from '../../../src/report/prometheus.js';
import type { ReapReport } from '../../../src/report/reap-report.js';

export async function prometheusRunTexts(): Promise<string[]> {
  const t = {
    name: 'uploads',
    backend: 's3' as const,
    scope: 's3://b/p',
    status: 'ok' as const,
    error: null,
    unreadable: 0,
    scanned: 4,
    live: 1,
    orphaned: 1,
    expired: 1,
    protected: 0,
    young: 0,
    unknown: 1,
    reasons: {},
    orphanBytes: 1,
    avgAgeBeyondTtlSeconds: 1,
    maxAgeBeyondTtlSeconds: 1,
    oldestOrphanAgeSeconds: 1,
    backlog: 1,
    backlogOldestAgeSeconds: 1,
  };
  const doc: AuditDocument = {
    version: 1,
    kind: 'audit',
    reaper: '0.1.0',
    runId: 'r',
    startedAt: '2026-01-01T00:00:00Z',
    finishedAt: '2026-01-01T00:00:01Z',
    durationSeconds: 1,
    manifest: 'm',
    state: 's',
    summary: { errors: 0, unreadable: 0, scanned: 4, live: 1, orphaned: 1, expired: 1, protected: 0, young: 0, unknown: 1, orphanBytes: 1, backlog: 1 },
    resources: [t],
    leases: { active: 1, expired: 1, renewals: 1, renewalFailures: 0, renewalFailureRate: 0, windowSeconds: 3600 },
    sources: { leases: 1 },
    sourceErrors: {},
    complete: true,
    findings: [],
    findingsTotal: 0,
    findingsTruncated: false,
  };
  const outcomes = { marked: 1, deleted: 1, lifted: 1, failed: 1, kept: 0, bytesReclaimed: 1 };
  const reap: ReapReport = {
    version: 1,
    kind: 'reap',
    reaper: '0.1.0',
    runId: 'p',
    execute: true,
    plan: null,
    summary: doc.summary,
    resources: [{ name: 'uploads', backend: 's3', deleteMode: 'conditional', scanned: 4, toMark: 1, toSweep: 1, toLift: 1, samples: { mark: [], sweep: [], lift: [] }, lifts: {}, outcomes, telemetry: t, error: null }],
    outcomes,
    sources: { leases: 1 },
    sourceErrors: {},
    errors: [],
  };
  // A shard of a job (docs/scale-out.md) adds reaper_shard_info.
  const shard = { ...reap, job: { id: 'nightly-1', shard: '0/4' } };
  return [
    await renderPrometheus(doc, reap),
    await renderPrometheus(null, reap, { run: { finishedAt: 0, durationSeconds: 1 } }),
    await renderPrometheus(null, shard, { run: { finishedAt: 0, durationSeconds: 1 } }),
  ];
}
