/** `reaper audit`: scan, classify, print leak telemetry; gates for CI. Read-only on every backend. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { diffFindings, NewFindingsTally, parseBaseline } from '../../engine/baseline.js';
import { checkGateResources, evaluateGates, parseGates, type GateResult } from '../../engine/gates.js';
import { ExitCode, UsageError } from '../../errors.js';
import { findingOutput, type AuditDocument, type FindingOutput } from '../../report/document.js';
import { auditSummaryLine, auditTable, comparisonText, findingsTable, problemsText } from '../../report/table.js';
import { TopFindings } from '../../report/priority.js';
import { auditProblems, runAudit } from '../../run/audit.js';
import type { FilterFlags, ManifestFlags, OutputFlags, ReportFileFlags, RunLogFlags, ShardFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { NdjsonFile } from '../ndjson.js';
import { explicitJson, findingFilter, integerOption, manifestFrom, openStore, outputFile, outputFormat, jobOption, selectedResources, shardOption, terminalWidth, newStoreWarning } from '../options.js';
import { writeJson } from '../print.js';
import { reportFiles, reportOutputFailures, writeOutputs } from '../outputs.js';
import { startProgress } from '../progress.js';
import { openRunLog, warn, type RunLog } from '../run-log.js';

export interface AuditFlags extends ManifestFlags, OutputFlags, FilterFlags, RunLogFlags, ReportFileFlags, ShardFlags {
  findings?: string;
  maxFindings: string;
  failOn: string[];
  baseline?: string;
  since?: string;
  html?: string;
}

/** Findings the terminal table and the Markdown summary list. */
const LISTED = 20;

export async function auditCommand(io: CliIO, _args: unknown[], options: AuditFlags): Promise<number> {
  const runLog = openRunLog(io, options, 'audit');
  const manifest = await manifestFrom(io, options, (m) => ({ state: true, owners: true, resources: selectedResources(m, options) }));
  const format = outputFormat(io, options);
  const maxFindings = integerOption(options.maxFindings, '--max-findings');
  const shard = shardOption(io, options);
  const gates = parseGates(options.failOn);
  const resources = selectedResources(manifest, options);
  checkGateResources(gates, resources ?? manifest.resources.map((r) => r.name));
  const files = reportFiles(io, options);
  const findingsFile = outputFile(io, options.findings, '--findings');
  outputFile(io, options.html, '--html');
  let tally: NewFindingsTally<FindingOutput> | null = null;
  if (options.baseline !== undefined) {
    const file = path.resolve(io.cwd, options.baseline);
    const text = await readFile(file, 'utf8').catch((e: Error) => {
      throw new UsageError(`--baseline: cannot read ${file}: ${e.message}`);
    });
    tally = new NewFindingsTally(parseBaseline(text, file));
  }
  let previous: PreviousAudit | null = null;
  if (options.since !== undefined) previous = await previousFindings(io, options, options.since, resources ?? manifest.resources.map((r) => r.name));
  const current: FindingOutput[] = [];
  // The rows the terminal table and the Markdown summary list: the most pressing of every finding, not the first scanned.
  const top = new TopFindings(LISTED);

  const ndjson = findingsFile === undefined ? null : new NdjsonFile(findingsFile);
  const html = options.html === undefined ? null : new (await import('../html-report.js')).HtmlReportSink(options.html, manifest);
  const newStore = newStoreWarning(io, options, manifest);
  if (newStore) warn(io, runLog, 'new-state-store', newStore);
  const progress = await startProgress(io, 'auditing…');
  try {
    const doc = await runAudit(manifest, {
      signal: io.signal,
      resources,
      filter: findingFilter(options),
      maxFindings,
      shard,
      job: jobOption(io, options),
      onFinding: async (f) => {
        const out = findingOutput(f);
        tally?.add(out);
        top.add(out);
        if (previous) current.push(out);
        html?.add(out);
        await ndjson?.write(out);
      },
      onProgress: (p) => progress.update(`auditing ${p.resource}: ${p.scanned} scanned, ${p.orphaned} orphaned`),
      onWarning: (warning) => warn(io, runLog, 'key-shapes', warning),
      onRunStarted: (run) => runLog?.started(run),
      onResourceScanned: (t) => runLog?.scanned(t),
    });
    progress.stop();
    const results: GateResult[] = evaluateGates(gates, doc, tally ?? undefined);
    const unread = new Set(doc.resources.filter((r) => r.status !== 'ok').map((r) => r.name));
    const baseline = tally ? { against: `baseline ${options.baseline}`, diff: tally.diff(unread) } : null;
    const since = previous ? sinceDiff(previous, current, unread) : null;
    // The reports lead with what changed: against the baseline when there is one, else the earlier run.
    const comparison = baseline ?? (since ? { against: `run ${options.since}`, diff: since } : null);
    const failures = await writeOutputs(io, files, { doc, gates: results, durationSeconds: doc.durationSeconds, comparison, findings: ndjson, html, top: top.sorted() });

    const gateResults = gates.length ? { gates: results } : {};
    if (options.quiet) {
      // The summary line; one JSON object instead only when JSON was asked for.
      if (explicitJson(io, options)) writeJson(io, { kind: doc.kind, runId: doc.runId, summary: doc.summary, ...gateResults });
      else io.stdout.write(`${auditSummaryLine(doc)}\n`);
    } else if (format === 'json') {
      writeJson(io, {
        ...doc,
        ...gateResults,
        ...(baseline ? { baseline: { file: options.baseline, ...baseline.diff } } : {}),
        ...(since ? { since: { runId: options.since, ...since } } : {}),
      });
    } else {
      const width = terminalWidth(io);
      io.stdout.write(`${auditTable(doc, { width })}\n`);
      const problems = problemsText(doc.resources, doc.sourceErrors);
      if (problems) io.stdout.write(`\n${problems}\n`);
      const findings = comparison ? comparisonText(comparison, LISTED, width) : findingsTable(doc, LISTED, { width, top: top.sorted() });
      if (findings) io.stdout.write(`\n${findings}\n`);
      if (since && comparison !== null && baseline !== null) {
        io.stdout.write(`\nsince run ${options.since}: ${since.new.count} new, ${since.resolved.count} resolved, ${since.persisting.count} persisting\n`);
      }
    }
    const failed = results.filter((r) => !r.ok);
    let code = Math.max(failed.length > 0 ? ExitCode.gateFailed : ExitCode.ok, reportProblems(io, doc, runLog));
    if (runLog) runLog.gates(results);
    else for (const r of failed) io.stderr.write(`gate ${r.message}\n`);
    code = Math.max(code, reportOutputFailures(io, failures, runLog));
    runLog?.auditFinished(doc, code);
    return code;
  } catch (error) {
    progress.stop();
    await ndjson?.abort();
    throw error;
  }
}

interface PreviousAudit {
  findings: FindingOutput[];
  /** Its resource types that were not read whole: their findings are not comparable. */
  unread: Set<string>;
}

/**
 * The non-live findings an earlier audit run recorded (its document's list), of the types this
 * audit reads. A store may be shared by several manifests: a run that audited none of these
 * types is refused, and the types only one of the two runs read are left out of the comparison.
 */
async function previousFindings(io: CliIO, options: ManifestFlags, runId: string, types: readonly string[]): Promise<PreviousAudit> {
  const store = await openStore(io, options);
  try {
    const run = await store.getRun(runId);
    if (!run) throw new UsageError(`--since: no run ${runId} in ${store.description}`);
    const summary = run.summary as { findings?: FindingOutput[]; findingsTruncated?: boolean; resources?: { name: string; status?: string }[] } | null;
    if (!summary?.findings) throw new UsageError(`--since: run ${runId} is not an audit with recorded findings`);
    if (summary.findingsTruncated) {
      throw new UsageError(`--since: run ${runId} had more findings than it recorded; compare with --baseline FILE (an earlier --output json or --findings file) instead`);
    }
    const recorded = (summary.resources ?? []).map((r) => r.name);
    if (!recorded.some((name) => types.includes(name))) {
      throw new UsageError(`--since: run ${runId} audited ${recorded.join(', ') || 'no resource type'}, none of the types this audit reads (${types.join(', ')}); it was made with another manifest`);
    }
    // Not comparable: the types either run did not read whole, and those only one of them read.
    const unread = new Set([
      ...(summary.resources ?? []).filter((r) => r.status !== undefined && r.status !== 'ok').map((r) => r.name),
      ...recorded.filter((name) => !types.includes(name)),
      ...types.filter((name) => !recorded.includes(name)),
    ]);
    return { findings: summary.findings, unread };
  } finally {
    await store.close();
  }
}

/** New, resolved and persisting findings since an earlier run, over the types both runs read whole. */
function sinceDiff(previous: PreviousAudit, current: readonly FindingOutput[], unread: ReadonlySet<string>) {
  const skip = new Set([...previous.unread, ...unread]);
  return diffFindings(previous.findings, current.filter((f) => !skip.has(f.resource)), { unread: skip });
}

/** What the audit could not read, one line each on stderr; exit 3 when there is any (the report above still covers the rest). */
function reportProblems(io: CliIO, doc: AuditDocument, runLog: RunLog | null): number {
  const problems = auditProblems(doc);
  for (const p of problems) {
    if (runLog) runLog.log.error('unreadable', { runId: doc.runId, message: p });
    else io.stderr.write(`reaper: ${p}\n`);
  }
  return problems.length > 0 ? ExitCode.runtime : ExitCode.ok;
}
