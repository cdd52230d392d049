/**
 * `reaper report [FILE…]`: one self-contained HTML file from a saved audit document, a
 * reap report and/or findings NDJSON, and the state store's runs. With no file, the
 * newest audit the state store recorded (or `--run RUN`) is the audit. Reads only: the
 * state store is inspected first, so a report never creates one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { formatBytes } from '../../util/format.js';
import { FindingsAggregate } from '../../report/html/aggregate.js';
import { buildReportData, type AuditInput } from '../../report/html/build.js';
import { latestAudit, manifestScope } from '../../report/html/history.js';
import { readReportFile, streamFindings, type ReportFile } from '../../report/html/inputs.js';
import { REPORT_LIMITS } from '../../report/html/model.js';
import type { ReapReport } from '../../report/reap-report.js';
import type { StateStore } from '../../state/types.js';
import { DEFAULT_TREND_RUNS, manifestIfAny, readHistory, writeReport } from '../html-report.js';
import type { ManifestFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { integerOption, outputFile, stateUrl } from '../options.js';

export interface ReportFlags extends ManifestFlags {
  out: string;
  run?: string;
  runs: string;
  title?: string;
}

export async function reportCommand(io: CliIO, args: unknown[], options: ReportFlags): Promise<number> {
  const files = ((args[0] as string[] | undefined) ?? []).map((f) => path.resolve(io.cwd, f));
  const runs = integerOption(options.runs ?? String(DEFAULT_TREND_RUNS), '--runs', 1);
  if (runs > REPORT_LIMITS.runs) throw new UsageError(`--runs: at most ${REPORT_LIMITS.runs}`);
  const out = options.out ?? 'reaper-report.html';
  if (out !== '-') outputFile(io, out, '--out');

  let audit: AuditInput | null = null;
  let reap: ReapReport | null = null;
  let findingsFile: string | null = null;
  const sources: string[] = [];
  for (const file of files) {
    if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
    const read: ReportFile = await readReportFile(file);
    if (read.kind === 'findings') {
      if (findingsFile) throw new UsageError(`two findings files (${findingsFile}, ${file}): give one`);
      findingsFile = file;
      sources.push(`findings ${file}`);
    } else {
      if (audit || reap) throw new UsageError(`${file}: one audit document or reap report per report (the first was ${sources[0]})`);
      if (read.kind === 'audit') audit = read.audit;
      else reap = read.reap;
      sources.push(`${read.kind === 'audit' ? 'audit document' : 'reap report'} ${file}`);
    }
  }
  if (options.run !== undefined && (audit || reap)) throw new UsageError('--run takes the audit from the state store; it does not go with an audit document or reap report');

  // The state store is read when one is named, or when no file was given (then it is the only source).
  const storeNamed = options.state !== undefined || options.config !== undefined || Boolean(io.env.REAPER_STATE || io.env.REAPER_CONFIG);
  let history: Awaited<ReturnType<typeof readHistory>> | null = null;
  if (storeNamed || files.length === 0) {
    const url = await stateUrl(io, options);
    const manifest = await manifestIfAny(io, options);
    const store = await openIfRecorded(url);
    if (!store) {
      if (files.length === 0) throw new UsageError(`nothing to report: no run is recorded in ${url} yet (run \`reaper audit\` first, or give an audit document)`);
      history = { trend: [], pending: [] };
      sources.push(`state store ${url} (no runs yet)`);
    } else {
      try {
        if (!audit && !reap && (files.length === 0 || options.run !== undefined)) {
          const found = await latestAudit(store, options.run, manifestScope(manifest));
          if (!found) {
            throw new UsageError(options.run !== undefined ? `--run: no audit run ${options.run} with recorded numbers in ${store.description}` : `nothing to report: ${store.description} has no audit run with recorded numbers`);
          }
          audit = found.audit;
          sources.push(`audit run ${found.run.runId}`);
        }
        history = await readHistory(store, manifest, runs);
        sources.push(`state store ${store.description}`);
      } finally {
        await store.close();
      }
    }
  }

  let findings: FindingsAggregate | null = null;
  if (findingsFile) {
    findings = new FindingsAggregate();
    await streamFindings(findingsFile, (f) => findings!.add(f), io.signal);
  }

  const data = buildReportData({
    title: options.title,
    generatedAt: new Date().toISOString(),
    reaper: io.version(),
    sources,
    audit,
    reap,
    findings,
    history,
  });
  const bytes = await writeReport(io, out, data);
  if (out !== '-') {
    const shown = data.findings ? `, ${data.findings.rows.length.toLocaleString('en-US')} of ${data.findings.total.toLocaleString('en-US')} findings in the table` : '';
    io.stdout.write(`wrote ${path.resolve(io.cwd, out)} (${formatBytes(bytes)}${shown})\n`);
  }
  return 0;
}

/** The store, unless it records nothing yet (a SQLite file not there, no tables): a report never creates one. */
async function openIfRecorded(url: string): Promise<StateStore | null> {
  const { inspectStateStore } = await import('../../state/inspect.js');
  const inspection = await inspectStateStore(url);
  if (inspection.state === 'missing' || inspection.state === 'empty') return null;
  const { openStateStore } = await import('../../state/open.js');
  return openStateStore(url);
}
