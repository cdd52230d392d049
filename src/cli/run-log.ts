/**
 * `--log-format json`: what a run does, as one JSON event per line on stderr (`time`,
 * `level`, `event`, fields), for log collectors: `run-started`, `resource-scanned` (audit)
 * or `resource-planned` / `resource-reaped` (reap) with the type's counts, `gate`,
 * `output-failed` (a report file or the Pushgateway; the other outputs are still written),
 * `run-finished`; `signal` and `run-failed` come from the CLI's main module through
 * `io.log`. With `text` (the default) nothing is logged this way.
 */
import { UsageError } from '../errors.js';
import { jsonLog, type DaemonLog } from '../util/json-log.js';
import type { GateResult } from '../engine/gates.js';
import type { AuditDocument } from '../report/document.js';
import type { ResourceTelemetry } from '../report/telemetry.js';
import type { ReapReport } from '../report/reap-report.js';
import type { RunLogFlags } from './flags.js';
import type { CliIO } from './io.js';

export type LogFormat = 'text' | 'json';

/** --log-format, then $REAPER_LOG_FORMAT, then text. */
export function logFormat(io: CliIO, options: RunLogFlags): LogFormat {
  const chosen = options.logFormat ?? io.env.REAPER_LOG_FORMAT ?? 'text';
  if (chosen !== 'text' && chosen !== 'json') throw new UsageError(`${options.logFormat !== undefined ? '--log-format' : '$REAPER_LOG_FORMAT'}: text or json (got "${chosen}")`);
  return chosen;
}

/** A warning: a `warn` event with --log-format json, else a `reaper: warning:` line on stderr. */
export function warn(io: CliIO, runLog: RunLog | null, event: string, message: string): void {
  if (runLog) runLog.log.warn(event, { message });
  else io.stderr.write(`reaper: warning: ${message}\n`);
}

export class RunLog {
  private runId: string | null = null;
  constructor(
    readonly log: DaemonLog,
    private readonly command: 'audit' | 'reap',
  ) {}

  started(run: { runId: string; startedAt: number }, fields: Record<string, unknown> = {}): void {
    this.runId = run.runId;
    this.log.info('run-started', { command: this.command, runId: run.runId, startedAt: new Date(run.startedAt).toISOString(), ...fields });
  }

  scanned(t: ResourceTelemetry): void {
    const { name, ...counts } = t;
    this.log.info('resource-scanned', { command: this.command, runId: this.runId, resource: name, ...counts });
  }

  gates(results: readonly GateResult[]): void {
    for (const r of results) {
      (r.ok ? this.log.info : this.log.error)('gate', { command: this.command, runId: this.runId, gate: r.gate.text, ok: r.ok, actual: r.actual, message: r.message });
    }
  }

  /** An output (a report file, the Pushgateway) that could not be written; the others were. */
  outputFailed(output: string, message: string): void {
    this.log.error('output-failed', { command: this.command, runId: this.runId, output, message });
  }

  auditFinished(doc: AuditDocument, exitCode: number): void {
    this.log.info('run-finished', { command: this.command, runId: doc.runId, exitCode, durationSeconds: doc.durationSeconds, summary: doc.summary, findingsTotal: doc.findingsTotal });
  }

  /** Each type's plan (a dry run) or outcomes, once the run is done. */
  reaped(report: ReapReport): void {
    for (const r of report.resources) {
      this.log.info(report.execute ? 'resource-reaped' : 'resource-planned', {
        command: this.command,
        runId: report.runId,
        resource: r.name,
        backend: r.backend,
        scanned: r.scanned,
        toMark: r.toMark,
        toSweep: r.toSweep,
        toLift: r.toLift,
        ...(report.execute ? r.outcomes : {}),
        pending: r.pending?.count ?? 0,
        earliestSweepAt: r.pending?.earliestSweepAt ?? null,
      });
    }
  }

  reapFinished(report: ReapReport, exitCode: number): void {
    this.log.info('run-finished', { command: this.command, runId: report.runId, exitCode, execute: report.execute, summary: report.summary, outcomes: report.outcomes });
  }
}

/** The run's machine log for `--log-format json` (also set as `io.log`, for the signal notice and a failure); null for text. */
export function openRunLog(io: CliIO, options: RunLogFlags, command: 'audit' | 'reap'): RunLog | null {
  if (logFormat(io, options) !== 'json') return null;
  const log = jsonLog(io.stderr);
  io.log = log;
  return new RunLog(log, command);
}
