/**
 * The report files a run can leave behind for dashboards and CI: Prometheus text (a
 * node-exporter textfile, or a Pushgateway), JUnit XML and a Markdown summary. Shared by
 * `audit` and `reap`; written even when a gate failed, so CI shows why.
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import type { GateResult } from '../engine/gates.js';
import type { AuditDocument, FindingsComparison } from '../report/document.js';
import type { ReapReport } from '../report/reap-report.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { ReportFileFlags } from './flags.js';
import type { CliIO } from './io.js';

/** The report files to write: paths resolved against the working directory. */
export type ReportFiles = ReportFileFlags;

export function reportFiles(io: CliIO, options: ReportFileFlags): ReportFiles {
  const file = (v: string | undefined) => (v === undefined ? undefined : path.resolve(io.cwd, v));
  return {
    metricsFile: file(options.metricsFile),
    pushgateway: options.pushgateway,
    pushgatewayJob: options.pushgatewayJob ?? 'reaper',
    junit: file(options.junit),
    summary: file(options.summary),
  };
}

export async function writeOutputs(
  io: CliIO,
  flags: ReportFiles,
  input: { doc: AuditDocument | null; reap?: ReapReport; gates: readonly GateResult[]; durationSeconds: number; comparison?: FindingsComparison | null },
): Promise<void> {
  if (flags.metricsFile || flags.pushgateway) {
    const { pushMetrics, renderPrometheus, writeMetricsFile } = await import('../report/prometheus.js');
    const text = await renderPrometheus(input.doc, input.reap, input.doc ? {} : { run: { finishedAt: Date.now(), durationSeconds: input.durationSeconds } });
    if (flags.metricsFile) await writeMetricsFile(flags.metricsFile, text);
    // Each shard of a job pushes to its own group, so shards do not replace each other's metrics (docs/scale-out.md).
    const shard = (input.doc ?? input.reap)?.job?.shard;
    const grouping: Record<string, string> = shard ? { shard: shard.split('/')[0]! } : {};
    if (flags.pushgateway) await pushMetrics(flags.pushgateway, text, { job: flags.pushgatewayJob ?? 'reaper', grouping, signal: io.signal });
  }
  if (flags.junit && input.doc) {
    const { renderJunit } = await import('../report/junit.js');
    await atomicWrite(flags.junit, renderJunit(input.doc, input.gates, { comparison: input.comparison }));
  }
  if (flags.summary) {
    const { renderMarkdown } = await import('../report/markdown.js');
    // $GITHUB_STEP_SUMMARY is appended to, step after step.
    await appendFile(flags.summary, `${renderMarkdown(input.doc, input.gates, input.reap, { comparison: input.comparison })}\n`);
  }
}
