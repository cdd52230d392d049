/**
 * The HTML report is bounded whatever the audit's size: a million findings give a page no
 * larger than a hundred thousand do, and the worst case of every cap at once (the longest
 * names, ids full of characters JSON escapes six-fold, the most types, runs, problems and
 * gates) stays under REPORT_MAX_BYTES.
 */
import { describe, expect, it } from 'vitest';
import type { GateResult } from '../../src/engine/gates.js';
import type { FindingOutput } from '../../src/report/document.js';
import { FindingsAggregate } from '../../src/report/html/aggregate.js';
import { clientAssets } from '../../src/report/html/assets.js';
import { buildReportData } from '../../src/report/html/build.js';
import { REPORT_LIMITS, REPORT_MAX_BYTES } from '../../src/report/html/model.js';
import { renderReport } from '../../src/report/html/page.js';
import type { ResourceTelemetry } from '../../src/report/telemetry.js';
import { auditOf, findings } from './support/html-report.js';

async function reportOf(n: number): Promise<{ bytes: number; rows: number; total: number }> {
  const agg = new FindingsAggregate();
  for (const f of findings(n, { types: 40, owners: 200_000 })) agg.add(f);
  const audit = auditOf([...findings(1_000, { types: 40 })]);
  const data = buildReportData({ generatedAt: '2026-11-22T03:00:00.000Z', reaper: '0.1.0', sources: ['findings f.ndjson'], audit, findings: agg, history: null });
  const html = renderReport(data, await clientAssets());
  return { bytes: Buffer.byteLength(html), rows: data.findings!.rows.length, total: data.findings!.total };
}

describe('the report size bound', () => {
  it('is the same for 1,000,000 findings as for 100,000: the table holds its capped rows, the charts aggregates', async () => {
    const small = await reportOf(100_000);
    const large = await reportOf(1_000_000);
    expect(large.total).toBe(875_000);
    expect(large.rows).toBe(REPORT_LIMITS.findingsRows);
    expect(small.rows).toBe(REPORT_LIMITS.findingsRows);
    expect(large.bytes).toBeLessThanOrEqual(REPORT_MAX_BYTES);
    // Only digits differ (counts, ids, ages): within 5% of each other.
    expect(Math.abs(large.bytes - small.bytes) / small.bytes).toBeLessThan(0.05);
  }, 120_000);

  it('holds for the worst case of every cap at once', async () => {
    const name = (i: number) => `${'t'.repeat(58)}${String(i).padStart(5, '0')}`;
    const types = REPORT_LIMITS.types + 50;
    const resources: ResourceTelemetry[] = Array.from({ length: types }, (_, i) => ({
      ...auditOf([]).resources[0]!,
      ...{ name: name(i), backend: 's3', scope: 's3://b/p', reasons: {} },
      status: 'error',
      error: '<&>'.repeat(1_000),
      unreadable: 1e12,
      scanned: 1e12,
      live: 1e12,
      orphaned: 1e12,
      expired: 1e12,
      protected: 1e12,
      young: 1e12,
      unknown: 1e12,
      orphanBytes: 1e15,
      avgAgeBeyondTtlSeconds: 1e9,
      maxAgeBeyondTtlSeconds: 1e9,
      oldestOrphanAgeSeconds: 1e9,
      backlog: 1e12,
      backlogOldestAgeSeconds: 1e9,
    }));
    const worst: FindingOutput = {
      resource: name(0),
      backend: 's3',
      id: '<'.repeat(5_000),
      status: 'orphaned',
      reason: '\u2028'.repeat(5_000),
      owner: '>'.repeat(5_000),
      ageSeconds: 1e12,
      bytes: 1e15,
    };
    const agg = new FindingsAggregate();
    for (let i = 0; i < REPORT_LIMITS.findingsRows * 2; i++) agg.add({ ...worst, owner: `${'&'.repeat(300)}${i}` });
    const gate = { gate: { text: '<'.repeat(1_000), resource: null, metric: 'orphaned', op: '>', value: 0 }, ok: false, actual: 1, byResource: [], message: '&'.repeat(5_000), breaking: [] } as unknown as GateResult;
    const trend = Array.from({ length: 500 }, (_, i) => ({ runId: `r${'x'.repeat(60)}${i}`, kind: 'reap (dry run)', status: 'interrupted', at: '2026-11-22T03:00:00.000Z', orphaned: 1e12, expired: 1e12, backlog: 1e12, deleted: 1e12 }));
    const pending = resources.map((r) => ({ resource: r.name, marked: 1e12, deleting: 1e12, oldestMarkedAt: '2026-11-22T03:00:00.000Z', earliestSweepAt: '2026-11-22T03:00:00.000Z' }));
    const data = buildReportData({
      title: '<'.repeat(10_000),
      generatedAt: '2026-11-22T03:00:00.000Z',
      reaper: '0.1.0',
      sources: Array.from({ length: 500 }, () => '"'.repeat(1_000)),
      audit: { ...auditOf([]), resources, sourceErrors: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`s${i}`, '<'.repeat(1_000)])) },
      findings: agg,
      history: { trend, pending },
      gates: Array.from({ length: 500 }, () => gate),
      notes: Array.from({ length: 10 }, () => '>'.repeat(1_000)),
    });
    const html = renderReport(data, await clientAssets());
    expect(data.types).toHaveLength(REPORT_LIMITS.types);
    expect(data.typesOmitted).toBe(50);
    expect(data.trend).toHaveLength(REPORT_LIMITS.runs);
    expect(Buffer.byteLength(html)).toBeLessThanOrEqual(REPORT_MAX_BYTES);
  }, 60_000);
});
