/** Human tables for a terminal (cli-table3), fitted to its width when one is given. */
import type { ReapReport } from './reap-report.js';
import type { Lease, RunRecord } from '../state/types.js';
import type { AuditDocument, ComparedFinding, FindingOutput, FindingsComparison } from './document.js';
import { topFindings } from './priority.js';
import { fitTable, wrapText, type Cell } from './fit.js';
import { formatBytes, formatSeconds, visible } from '../util/format.js';
import { scanProblem, sourceProblem } from './telemetry.js';

const LEFT = Array<'left'>(10).fill('left');
const RIGHT = Array<'right'>(10).fill('right');

/** How the tables are drawn: `width` is the terminal's (no limit when absent). */
export interface TableOptions {
  width?: number;
}

export function auditTable(doc: AuditDocument, options: TableOptions = {}): string {
  const rows: Cell[][] = doc.resources.map((r) => [
    r.status === 'ok' ? r.name : `${r.name} (${r.status === 'error' ? 'ERROR' : 'partial'})`,
    r.backend,
    r.scanned,
    r.live,
    r.orphaned,
    r.expired,
    r.protected,
    r.young,
    r.unknown,
    formatBytes(r.orphanBytes),
    r.avgAgeBeyondTtlSeconds === null ? '-' : formatSeconds(r.avgAgeBeyondTtlSeconds),
    r.backlog,
  ]);
  const s = doc.summary;
  rows.push(['total', '', s.scanned, s.live, s.orphaned, s.expired, s.protected, s.young, s.unknown, formatBytes(s.orphanBytes), '', s.backlog]);
  const table = fitTable(
    {
      head: ['resource', 'backend', 'scanned', 'live', 'orphaned', 'expired', 'protected', 'young', 'unknown', 'orphan bytes', 'beyond ttl (avg)', 'backlog'],
      rows,
      aligns: ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
      titleCells: 2,
    },
    options.width,
  );
  const l = doc.leases;
  const notes = [
    `leases: ${l.active} active, ${l.expired} expired; renewal failure rate ${(l.renewalFailureRate * 100).toFixed(1)}% over ${formatSeconds(l.windowSeconds)}`,
    `run ${doc.runId} · ${doc.durationSeconds.toFixed(2)}s`,
  ];
  // The table is fitted already (its blocks wrap between fields): only the notes under it are wrapped.
  return [table, ...notes.map((line) => wrapText(line, options.width))].join('\n');
}

/**
 * The `limit` most pressing findings (report/priority.ts: orphans first, older first): `top`
 * when the caller chose them from every finding of the run, else the document's.
 */
export function findingsTable(doc: AuditDocument, limit = 20, options: TableOptions & { top?: readonly FindingOutput[] } = {}): string {
  const shown = (options.top ?? topFindings(doc.findings, limit)).slice(0, limit);
  if (shown.length === 0) return '';
  const rows = shown.map((f) => [f.resource, printable(f.id), f.status, f.reason ?? '', f.owner === null ? '' : printable(f.owner), f.ageSeconds === null ? '-' : formatSeconds(f.ageSeconds), f.bytes === null ? '-' : formatBytes(f.bytes)]);
  const table = fitTable({ head: ['resource', 'id', 'status', 'reason', 'owner', 'age', 'bytes'], rows, shrink: [1, 4, 0], titleCells: 2 }, options.width);
  const more = doc.findingsTotal - shown.length;
  return table + (more > 0 ? `\n${wrapText(`… and ${more} more (--findings FILE writes them all)`, options.width)}` : '');
}

/**
 * The leases with their state: released, expired (not released, and `expiresAt` at or before
 * `now`, the store's clock, as the store counts a lease live only while it is later) or held.
 */
export function leaseTable(leases: readonly Lease[], now: number, options: TableOptions = {}): string {
  const state = (l: Lease) => (l.releasedAt !== null ? 'released' : l.expiresAt <= now ? 'expired' : 'held');
  const rows = leases.map((l) => [l.leaseId, printable(l.key), printable(l.holder), l.generation, new Date(l.expiresAt).toISOString(), state(l)]);
  return fitTable({ head: ['lease id', 'key', 'holder', 'gen', 'expires', 'state'], rows, shrink: [2, 1] }, options.width);
}

/** A run's wall time: milliseconds under a second (a demo's runs take a few), tenths under ten. */
function runDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : formatSeconds(ms / 1000);
}

export function runsTable(runs: readonly RunRecord[], options: TableOptions = {}): string {
  const rows = runs.map((r) => {
    const summary = (r.summary ?? {}) as { summary?: { scanned?: number; orphaned?: number }; outcomes?: { deleted?: number; lifted?: number }; job?: { id?: string | null; shard?: string | null } };
    // The run's columns (kept from its start, so a run still going or killed shows them too); the summary of a run recorded before them.
    const of = r.job !== null || r.shard !== null ? { id: r.job, shard: r.shard } : summary.job;
    const job = of ? [of.id, of.shard && `shard ${of.shard}`].filter(Boolean).join(' ') : '';
    return [
      r.runId,
      r.kind + (r.kind === 'reap' ? (r.execute ? ' (execute)' : ' (dry run)') : ''),
      r.status,
      new Date(r.startedAt).toISOString(),
      r.finishedAt === null ? '-' : runDuration(r.finishedAt - r.startedAt),
      summary.summary?.scanned ?? '-',
      summary.summary?.orphaned ?? '-',
      summary.outcomes?.deleted ?? '-',
      summary.outcomes?.lifted ?? '-',
      job || '-',
    ];
  });
  // The job column (docs/scale-out.md) only when some run is a shard of one.
  const jobs = rows.some((row) => row[9] !== '-');
  const head = ['run', 'kind', 'status', 'started', 'duration', 'scanned', 'orphaned', 'deleted', 'lifted', ...(jobs ? ['job'] : [])];
  const aligns = [...LEFT.slice(0, 4), ...RIGHT.slice(0, 5), ...(jobs ? LEFT.slice(0, 1) : [])];
  return fitTable({ head, rows: jobs ? rows : rows.map((row) => row.slice(0, 9)), aligns }, options.width);
}

/**
 * Ids are shown with control characters escaped, so a hostile key cannot rewrite the terminal
 * or reorder what it shows: C0 as JSON escapes them, then C1 (\u009b is CSI to some terminals),
 * bidi overrides and isolates, and line separators, which JSON leaves as they are.
 */
export function printable(text: string): string {
  return visible(JSON.stringify(text).slice(1, -1));
}

export function reapTable(report: ReapReport, options: TableOptions = {}): string {
  const rows = report.resources.map((r) =>
    report.execute
      ? [r.error ? `${r.name} (REFUSED)` : r.name, r.backend, r.scanned, r.outcomes.marked, r.outcomes.deleted, r.outcomes.lifted, r.outcomes.failed, r.outcomes.kept, formatBytes(r.outcomes.bytesReclaimed), r.deleteMode ?? '-']
      : [r.error ? `${r.name} (REFUSED)` : r.name, r.backend, r.scanned, r.toMark, r.toSweep, r.toLift, r.outcomes.kept],
  );
  const head = report.execute
    ? ['resource', 'backend', 'scanned', 'marked', 'deleted', 'lifted', 'failed', 'kept', 'reclaimed', 'delete mode']
    : ['resource', 'backend', 'scanned', 'to mark', 'to sweep', 'to lift', 'kept'];
  // Counts on the right, as in the audit table; the delete mode is a word.
  const aligns = [...LEFT.slice(0, 2), ...RIGHT.slice(0, head.length - 2 - (report.execute ? 1 : 0)), ...(report.execute ? LEFT.slice(0, 1) : [])];
  const table = fitTable({ head, rows, titleCells: 2, aligns }, options.width);
  const lines = [wrapText(report.execute ? `reap run ${report.runId} (executed)` : `reap run ${report.runId}: DRY RUN — nothing was changed; --execute acts`, options.width), table];
  const cut = (text: string) => (options.width === undefined || [...text].length <= options.width ? text : `${[...text].slice(0, options.width - 1).join('')}…`);
  for (const r of report.resources) {
    const parts: string[] = [];
    if (r.samples.mark.length) parts.push(`  mark:  ${r.samples.mark.map(printable).join(', ')}${r.toMark > r.samples.mark.length ? ', …' : ''}`);
    if (r.samples.sweep.length) parts.push(`  sweep: ${r.samples.sweep.map(printable).join(', ')}${r.toSweep > r.samples.sweep.length ? ', …' : ''}`);
    if (r.samples.lift.length) parts.push(`  lift:  ${r.samples.lift.map(printable).join(', ')}${r.toLift > r.samples.lift.length ? ', …' : ''}`);
    if (parts.length) lines.push(`${r.name}:`, ...parts.map(cut));
  }
  for (const r of report.resources) {
    if (!r.pending?.count) continue;
    lines.push(wrapText(`${r.name}: ${r.pending.count} pending, ${pendingWhen(report, [r])}${!report.execute && r.toSweep > 0 ? ' (--execute sweeps them)' : ''}`, options.width));
  }
  for (const r of report.resources) {
    // A handler that cannot check fingerprints (docs/resource-protocol.md, "Conditional deletes"): said in every plan.
    if (r.deleteMode?.includes('UNCONDITIONAL')) lines.push(wrapText(`${r.name}: deletes are NOT conditional: ${r.deleteMode}; a resource changed since it was judged is deleted anyway`, options.width));
  }
  const problems = problemsText(report.resources.flatMap((r) => (r.telemetry ? [r.telemetry] : [])), report.sourceErrors);
  if (problems) lines.push(problems);
  if (report.plan) lines.push(wrapText(report.planApplied ? `plan applied: ${report.plan}` : `plan saved to ${report.plan}`, options.width));
  return lines.join('\n');
}

/** `--quiet`: an audit in one line. */
export function auditSummaryLine(doc: AuditDocument): string {
  const s = doc.summary;
  const unread = doc.resources.filter((r) => r.status !== 'ok').map((r) => r.name);
  return `audit ${doc.runId}: ${s.scanned} scanned, ${s.live} live, ${s.orphaned} orphaned, ${s.expired} expired, ${s.protected} protected, ${s.young} young, ${s.unknown} unknown; ${formatBytes(s.orphanBytes)} orphaned${incomplete(unread, doc.resources.length, doc.sourceErrors)}`;
}

/**
 * The one-line summaries' tail when a part was not read (every count is short of it), so a cron
 * log that keeps only that line does not read an outage as a clean run; stderr says why.
 */
function incomplete(unread: readonly string[], types: number, sourceErrors: Readonly<Record<string, string>>): string {
  const parts = unread.length > 0 ? [`${unread.length} of ${types} type${types === 1 ? '' : 's'} not read whole (${unread.map(printable).join(', ')})`] : [];
  for (const source of Object.keys(sourceErrors)) parts.push(`liveness source ${printable(source)} failed`);
  return parts.length > 0 ? `; INCOMPLETE: ${parts.join(', ')}` : '';
}

/** `--quiet`: a reap in one line, with what stays pending. */
export function reapSummaryLine(report: ReapReport): string {
  const sum = (pick: (r: ReapReport['resources'][number]) => number) => report.resources.reduce((n, r) => n + pick(r), 0);
  const o = report.outcomes;
  const done = report.execute
    ? `marked ${o.marked}, deleted ${o.deleted}, lifted ${o.lifted}, failed ${o.failed}, ${formatBytes(o.bytesReclaimed)} reclaimed`
    : `${sum((r) => r.toMark)} to mark, ${sum((r) => r.toSweep)} to sweep, ${sum((r) => r.toLift)} to lift`;
  const pending = sum((r) => r.pending?.count ?? 0);
  const tail = pending > 0 ? `; ${pending} pending, ${pendingWhen(report, report.resources)}` : '';
  const unread = report.resources.filter((r) => r.error !== null || (r.telemetry !== null && r.telemetry.status !== 'ok')).map((r) => r.name);
  return `reap ${report.runId} (${report.execute ? 'executed' : 'dry run'}): ${sum((r) => r.scanned)} scanned; ${done}${tail}${incomplete(unread, report.resources.length, report.sourceErrors)}`;
}

/**
 * What an audit (or a reap) could not read, for under the table: each type not read whole
 * and each liveness source that failed, with the reason. Empty when everything was read.
 */
export function problemsText(resources: readonly Pick<AuditDocument['resources'][number], 'name' | 'scope' | 'status' | 'error' | 'unreadable'>[], sourceErrors: Readonly<Record<string, string>>): string {
  const lines = resources.filter((r) => r.status !== 'ok').map((r) => `  ${r.name} (${r.scope}): ${scanProblem(r)}`);
  for (const [name, e] of Object.entries(sourceErrors)) lines.push(`  ${sourceProblem(name, e)}`);
  return lines.length ? ['could not be read:', ...lines].join('\n') : '';
}

/** New findings against a baseline or an earlier run, then resolved ones, then the count of persisting ones. */
export function comparisonText(comparison: FindingsComparison, limit = 20, width?: number): string {
  const { new: fresh, resolved, persisting } = comparison.diff;
  const part = (title: string, count: number, samples: readonly ComparedFinding[]) => {
    const head = `${title} since ${comparison.against}: ${count}`;
    if (count === 0) return head;
    const rows = samples
      .slice(0, limit)
      .map((f) => [f.resource, printable(f.id), f.status, f.reason ?? '', f.owner ? printable(f.owner) : '', f.ageSeconds === null || f.ageSeconds === undefined ? '-' : formatSeconds(f.ageSeconds)]);
    const table = fitTable({ head: ['resource', 'id', 'status', 'reason', 'owner', 'age'], rows, shrink: [1, 4, 0], titleCells: 2 }, width);
    const shown = Math.min(limit, samples.length);
    return `${head}\n${table}${count > shown ? `\n… and ${count - shown} more` : ''}`;
  };
  return [part('new', fresh.count, fresh.samples), part('resolved', resolved.count, resolved.samples), `persisting since ${comparison.against}: ${persisting.count}`].join('\n');
}

/**
 * When pending tombstones may be swept: in a dry run whose plan sweeps some, that many are due
 * now (the earliest sweep is already past); otherwise the earliest moment, by the store's clock.
 */
function pendingWhen(report: ReapReport, resources: ReapReport['resources']): string {
  const due = report.execute ? 0 : resources.reduce((n, r) => n + (r.pending?.count ? r.toSweep : 0), 0);
  if (due > 0) return `${due} due now`;
  const earliest = resources
    .map((r) => r.pending?.earliestSweepAt)
    .filter((t): t is string => typeof t === 'string')
    .sort()[0];
  return `earliest sweep at ${earliest?.replace(/\.\d{3}Z$/, 'Z') ?? '-'}`;
}
