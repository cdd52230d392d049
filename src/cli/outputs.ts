/**
 * The report files a run can leave behind for dashboards and CI: Prometheus text (a
 * node-exporter textfile, or a Pushgateway), JUnit XML, a Markdown summary, the HTML
 * report and audit's findings NDJSON. Shared by `audit` and `reap`; written even when a gate failed, so CI shows why,
 * each whatever became of the others.
 */
import { appendFile } from 'node:fs/promises';
import type { GateResult } from '../engine/gates.js';
import { BackendError, ExitCode, ReaperError, redact } from '../errors.js';
import type { AuditDocument, FindingOutput, FindingsComparison } from '../report/document.js';
import type { ReapReport } from '../report/reap-report.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { ReportFileFlags } from './flags.js';
import type { HtmlReportSink } from './html-report.js';
import type { CliIO } from './io.js';
import type { NdjsonFile } from './ndjson.js';
import { outputFile } from './options.js';
import type { RunLog } from './run-log.js';

/** The report files to write: paths resolved against the working directory. */
export type ReportFiles = ReportFileFlags;

export function reportFiles(io: CliIO, options: ReportFileFlags): ReportFiles {
  return {
    metricsFile: outputFile(io, options.metricsFile, '--metrics-file'),
    pushgateway: options.pushgateway,
    pushgatewayJob: options.pushgatewayJob ?? 'reaper',
    junit: outputFile(io, options.junit, '--junit'),
    summary: outputFile(io, options.summary, '--summary'),
  };
}

/** An output that could not be written; the run's other outputs were written all the same. */
export interface OutputFailure {
  output: 'findings' | 'metrics-file' | 'pushgateway' | 'junit' | 'summary' | 'html';
  message: string;
  /** 3 (runtime), or 130 when a signal stopped it. */
  exitCode: number;
}

/**
 * Write every report file and push the metrics; one that fails does not stop the others
 * (nor the stdout document, the log and the gate results the command writes after).
 * Returns what failed, for `reportOutputFailures`.
 */
export async function writeOutputs(
  io: CliIO,
  flags: ReportFiles,
  input: {
    doc: AuditDocument | null;
    reap?: ReapReport;
    gates: readonly GateResult[];
    durationSeconds: number;
    comparison?: FindingsComparison | null;
    /** audit --findings: streamed during the run, published here. */
    findings?: NdjsonFile | null;
    html?: HtmlReportSink | null;
    /** The findings the Markdown summary lists, chosen from all of the run's. */
    top?: readonly FindingOutput[];
  },
): Promise<OutputFailure[]> {
  const failures: OutputFailure[] = [];
  const attempt = async (output: OutputFailure['output'], write: () => Promise<void>) => {
    try {
      await write();
    } catch (error) {
      failures.push(outputFailure(output, error));
    }
  };
  const findings = input.findings;
  if (findings) await attempt('findings', () => findings.close());
  if (flags.metricsFile || flags.pushgateway) {
    const { pushMetrics, renderPrometheus, writeMetricsFile } = await import('../report/prometheus.js');
    const text = await renderPrometheus(input.doc, input.reap, input.doc ? {} : { run: { finishedAt: Date.now(), durationSeconds: input.durationSeconds } });
    if (flags.metricsFile) await attempt('metrics-file', () => writeMetricsFile(flags.metricsFile!, text));
    // Each shard of a job pushes to its own group, so shards do not replace each other's metrics (docs/scale-out.md).
    const shard = (input.doc ?? input.reap)?.job?.shard;
    const grouping: Record<string, string> = shard ? { shard: shard.split('/')[0]! } : {};
    // A run stopped by a signal still pushes what it did (alerts rely on it), within the push's own
    // timeout; only a stop requested while pushing cuts the push short (a second signal ends the process).
    const signal = io.signal?.aborted ? undefined : io.signal;
    if (flags.pushgateway) await attempt('pushgateway', () => pushMetrics(flags.pushgateway!, text, { job: flags.pushgatewayJob ?? 'reaper', grouping, signal }));
  }
  if (flags.junit && input.doc) {
    const { renderJunit } = await import('../report/junit.js');
    const doc = input.doc;
    await attempt('junit', () => fileWrite('the JUnit report', flags.junit!, () => atomicWrite(flags.junit!, renderJunit(doc, input.gates, { comparison: input.comparison }))));
  }
  if (flags.summary) {
    const { renderMarkdown } = await import('../report/markdown.js');
    const text = `${renderMarkdown(input.doc, input.gates, input.reap, { comparison: input.comparison, top: input.top })}\n`;
    // $GITHUB_STEP_SUMMARY is appended to, step after step.
    await attempt('summary', () => fileWrite('the summary', flags.summary!, () => appendFile(flags.summary!, text)));
  }
  const html = input.html;
  if (html) {
    await attempt('html', async () => {
      if (input.doc) await html.writeAudit(io, input.doc, input.gates);
      else if (input.reap) await html.writeReap(io, input.reap);
    });
  }
  return failures;
}

/** A file write whose failure names the file and the error code (not a stack). */
async function fileWrite(what: string, file: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (error) {
    throw new BackendError(`cannot write ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

function outputFailure(output: OutputFailure['output'], error: unknown): OutputFailure {
  if ((error as Error)?.name === 'AbortError') return { output, message: `${output}: interrupted before it was written`, exitCode: ExitCode.interrupted };
  const exitCode = error instanceof ReaperError ? error.exitCode : ExitCode.runtime;
  return { output, message: error instanceof Error ? error.message : String(error), exitCode };
}

/**
 * Each failed output as its own error: a `reaper: …` line on stderr, or an `output-failed`
 * event in the JSON log. Returns the exit code they call for (0 when nothing failed).
 */
export function reportOutputFailures(io: CliIO, failures: readonly OutputFailure[], runLog: RunLog | null): number {
  for (const f of failures) {
    if (runLog) runLog.outputFailed(f.output, f.message);
    else io.stderr.write(`reaper: ${redact(f.message)}\n`);
  }
  return Math.max(ExitCode.ok, ...failures.map((f) => f.exitCode));
}
