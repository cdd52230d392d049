/** `reaper reap`: dry run by default (prints the plan); `--execute` acts. */
import path from 'node:path';
import { ExitCode, ReaperError, UsageError } from '../../errors.js';
import { findingOutput } from '../../report/document.js';
import { reapSummaryLine, reapTable } from '../../report/table.js';
import type { ReapReport } from '../../report/reap-report.js';
import { runReap } from '../../run/reap.js';
import { spoolProblem } from '../../util/spool.js';
import type { FilterFlags, ManifestFlags, OutputFlags, ReportFileFlags, RunLogFlags, ShardFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { durationOption, explicitJson, findingFilter, manifestFrom, outputFile, outputFormat, jobOption, selectedResources, shardOption, terminalWidth, newStoreWarning } from '../options.js';
import { writeJson } from '../print.js';
import { reportFiles, reportOutputFailures, writeOutputs } from '../outputs.js';
import { startProgress } from '../progress.js';
import { openRunLog, warn } from '../run-log.js';

export interface ReapFlags extends ManifestFlags, OutputFlags, FilterFlags, RunLogFlags, ShardFlags, Omit<ReportFileFlags, 'junit'> {
  execute?: boolean;
  planOut?: string;
  plan?: string;
  allowLivenessDrop?: boolean;
  lockTtl?: string;
  html?: string;
  sweepOnly?: boolean;
}

export async function reapCommand(io: CliIO, _args: unknown[], options: ReapFlags): Promise<number> {
  const runLog = openRunLog(io, options, 'reap');
  const manifest = await manifestFrom(io, options, (m) => ({ state: true, owners: true, resources: selectedResources(m, options) }));
  const format = outputFormat(io, options);
  const execute = options.execute === true;
  if (options.plan && !execute) throw new UsageError('--plan FILE applies a saved plan and needs --execute (a dry run plans afresh)');
  if (options.plan && options.planOut) throw new UsageError('--plan and --plan-out do not go together');
  if (options.plan && options.sweepOnly) throw new UsageError('--sweep-only plans afresh from the ledger; a saved --plan already fixes what is swept');
  const resources = selectedResources(manifest, options);
  const lockTtlMs = options.lockTtl === undefined ? undefined : lockTtlOption(options.lockTtl);
  const shard = shardOption(io, options);
  const files = reportFiles(io, options);
  outputFile(io, options.html, '--html');
  // The plan is written once the scan is done: a directory that is not there fails now, not then.
  const planOut = outputFile(io, options.planOut, '--plan-out', true);
  // The plan (or the checked copy of a saved one) is spooled in TMPDIR: a directory that cannot hold it fails now, not after the scan.
  const spool = options.plan || !planOut ? spoolProblem() : null;
  if (spool) {
    throw new UsageError(`the reap plan is spooled in the temporary directory (TMPDIR), and ${spool}: set TMPDIR to a writable directory${options.plan ? '' : ', or write the plan to a file with --plan-out FILE'}`);
  }
  const newStore = newStoreWarning(io, options, manifest);
  if (newStore) warn(io, runLog, 'new-state-store', newStore);
  const started = Date.now();
  const html = options.html === undefined ? null : new (await import('../html-report.js')).HtmlReportSink(options.html, manifest);
  const progress = await startProgress(io, execute ? 'reaping…' : 'planning…');
  const print = (report: ReapReport) => {
    if (options.quiet) {
      if (explicitJson(io, options)) writeJson(io, { kind: report.kind, runId: report.runId, execute: report.execute, summary: report.summary, outcomes: report.outcomes });
      else io.stdout.write(`${reapSummaryLine(report)}\n`);
    } else if (format === 'json') writeJson(io, report);
    else io.stdout.write(`${reapTable(report, { width: terminalWidth(io) })}\n`);
  };
  /** Every output of a finished run (one that failed does not stop the others); the exit code they call for. */
  const publish = async (report: ReapReport, exitCode: number) => {
    const failures = await writeOutputs(io, files, { doc: null, reap: report, gates: [], durationSeconds: (Date.now() - started) / 1000, html });
    print(report);
    runLog?.reaped(report);
    const code = Math.max(exitCode, reportOutputFailures(io, failures, runLog));
    runLog?.reapFinished(report, code);
    return code;
  };
  let report: ReapReport;
  try {
    report = await runReap(manifest, {
      execute,
      signal: io.signal,
      resources,
      filter: findingFilter(options),
      shard,
      job: jobOption(io, options),
      planOut,
      planIn: options.plan === undefined ? undefined : path.resolve(io.cwd, options.plan),
      allowLivenessDrop: options.allowLivenessDrop === true,
      sweepOnly: options.sweepOnly === true,
      lockTtlMs,
      failpoint: io.env.REAPER_FAILPOINT,
      onProgress: (text) => progress.update(text),
      onRunStarted: (run) => runLog?.started(run, { execute }),
      onFinding: html ? (f) => html.add(findingOutput(f)) : undefined,
    });
  } catch (error) {
    progress.stop();
    const failed = (error as { report?: ReapReport }).report;
    if (failed) {
      // Failed deletes: still publish the numbers so alerts on reap failures can fire.
      const code = await publish(failed, error instanceof ReaperError ? error.exitCode : ExitCode.runtime);
      // The error below gives the exit code; an output that failed worse (a signal) raises it.
      io.exitCode = Math.max(io.exitCode ?? 0, code);
    }
    throw error;
  }
  progress.stop();
  return publish(report, ExitCode.ok);
}

/** Locks shorter than this lapse between two beats of a run's heartbeat (a third of the ttl) as soon as a store call is slow. */
const MIN_LOCK_TTL_MS = 1000;

/** `--lock-ttl`: a duration of at least 1s; a lock that lapses at once would let a second run in beside this one (docs/safety.md §13). */
function lockTtlOption(value: string): number {
  const ms = durationOption(value, '--lock-ttl');
  if (ms < MIN_LOCK_TTL_MS) throw new UsageError(`--lock-ttl: a lock ttl must be at least 1s, got ${value}`);
  return ms;
}
