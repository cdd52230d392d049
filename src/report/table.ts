/** Human tables for a terminal (cli-table3). */
import Table from 'cli-table3';
import type { Lease, RunRecord } from '../state/types.js';
import type { AuditDocument, ComparedFinding, FindingsComparison } from './document.js';
import { formatBytes, formatSeconds } from './format.js';
import { scanProblem, sourceProblem } from './telemetry.js';

const plain = { head: [] as string[], style: { head: [] as string[], border: [] as string[], compact: true } };

export function auditTable(doc: AuditDocument): string {
  const table = new Table({
    ...plain,
    head: ['resource', 'backend', 'scanned', 'live', 'orphaned', 'expired', 'protected', 'young', 'unknown', 'orphan bytes', 'beyond ttl (avg)', 'backlog'],
    colAligns: ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  });
  for (const r of doc.resources) {
    table.push([
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
  }
  const s = doc.summary;
  table.push(['total', '', s.scanned, s.live, s.orphaned, s.expired, s.protected, s.young, s.unknown, formatBytes(s.orphanBytes), '', s.backlog]);
  const lines = [table.toString()];
  const l = doc.leases;
  lines.push(`leases: ${l.active} active, ${l.expired} expired; renewal failure rate ${(l.renewalFailureRate * 100).toFixed(1)}% over ${formatSeconds(l.windowSeconds)}`);
  lines.push(`run ${doc.runId} · ${doc.durationSeconds.toFixed(2)}s`);
  return lines.join('\n');
}

export function findingsTable(doc: AuditDocument, limit = 20): string {
  if (doc.findings.length === 0) return '';
  const table = new Table({ ...plain, head: ['resource', 'id', 'status', 'reason', 'owner', 'age', 'bytes'] });
  for (const f of doc.findings.slice(0, limit)) {
    table.push([f.resource, printable(f.id), f.status, f.reason ?? '', f.owner === null ? '' : printable(f.owner), f.ageSeconds === null ? '-' : formatSeconds(f.ageSeconds), f.bytes === null ? '-' : formatBytes(f.bytes)]);
  }
  const more = doc.findingsTotal - Math.min(limit, doc.findings.length);
  return table.toString() + (more > 0 ? `\n… and ${more} more (--findings FILE writes them all)` : '');
}

export function leaseTable(leases: readonly Lease[]): string {
  const table = new Table({ ...plain, head: ['lease id', 'key', 'holder', 'gen', 'expires', 'state'] });
  for (const l of leases) {
    table.push([l.leaseId, printable(l.key), printable(l.holder), l.generation, new Date(l.expiresAt).toISOString(), l.releasedAt !== null ? 'released' : 'held']);
  }
  return table.toString();
}

export function runsTable(runs: readonly RunRecord[]): string {
  const table = new Table({ ...plain, head: ['run', 'kind', 'status', 'started', 'duration', 'scanned', 'orphaned', 'deleted', 'lifted'] });
  for (const r of runs) {
    const summary = (r.summary ?? {}) as { summary?: { scanned?: number; orphaned?: number }; outcomes?: { deleted?: number; lifted?: number } };
    table.push([
      r.runId,
      r.kind + (r.kind === 'reap' ? (r.execute ? ' (execute)' : ' (dry run)') : ''),
      r.status,
      new Date(r.startedAt).toISOString(),
      r.finishedAt === null ? '-' : formatSeconds((r.finishedAt - r.startedAt) / 1000),
      summary.summary?.scanned ?? '-',
      summary.summary?.orphaned ?? '-',
      summary.outcomes?.deleted ?? '-',
      summary.outcomes?.lifted ?? '-',
    ]);
  }
  return table.toString();
}

/** Ids are shown with control characters escaped, so a hostile key cannot rewrite the terminal. */
export function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

export function reapTable(report: import('../run/reap.js').ReapReport): string {
  const table = new Table({
    ...plain,
    head: report.execute
      ? ['resource', 'backend', 'scanned', 'marked', 'deleted', 'lifted', 'failed', 'kept', 'reclaimed', 'delete mode']
      : ['resource', 'backend', 'scanned', 'to mark', 'to sweep', 'to lift', 'kept'],
  });
  for (const r of report.resources) {
    table.push(
      report.execute
        ? [r.error ? `${r.name} (REFUSED)` : r.name, r.backend, r.scanned, r.outcomes.marked, r.outcomes.deleted, r.outcomes.lifted, r.outcomes.failed, r.outcomes.kept, formatBytes(r.outcomes.bytesReclaimed), r.deleteMode ?? '-']
        : [r.error ? `${r.name} (REFUSED)` : r.name, r.backend, r.scanned, r.toMark, r.toSweep, r.toLift, r.outcomes.kept],
    );
  }
  const lines = [report.execute ? `reap run ${report.runId} (executed)` : `reap run ${report.runId}: DRY RUN — nothing was changed; --execute acts`, table.toString()];
  for (const r of report.resources) {
    const parts: string[] = [];
    if (r.samples.mark.length) parts.push(`  mark:  ${r.samples.mark.map(printable).join(', ')}${r.toMark > r.samples.mark.length ? ', …' : ''}`);
    if (r.samples.sweep.length) parts.push(`  sweep: ${r.samples.sweep.map(printable).join(', ')}${r.toSweep > r.samples.sweep.length ? ', …' : ''}`);
    if (r.samples.lift.length) parts.push(`  lift:  ${r.samples.lift.map(printable).join(', ')}${r.toLift > r.samples.lift.length ? ', …' : ''}`);
    if (parts.length) lines.push(`${r.name}:`, ...parts);
  }
  const problems = problemsText(report.resources.flatMap((r) => (r.telemetry ? [r.telemetry] : [])), report.sourceErrors);
  if (problems) lines.push(problems);
  if (report.plan) lines.push(`plan saved to ${report.plan}`);
  return lines.join('\n');
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
export function comparisonText(comparison: FindingsComparison, limit = 20): string {
  const { new: fresh, resolved, persisting } = comparison.diff;
  const part = (title: string, count: number, samples: readonly ComparedFinding[]) => {
    const head = `${title} since ${comparison.against}: ${count}`;
    if (count === 0) return head;
    const table = new Table({ ...plain, head: ['resource', 'id', 'status', 'reason', 'owner', 'age'] });
    for (const f of samples.slice(0, limit)) {
      table.push([f.resource, printable(f.id), f.status, f.reason ?? '', f.owner ? printable(f.owner) : '', f.ageSeconds === null || f.ageSeconds === undefined ? '-' : formatSeconds(f.ageSeconds)]);
    }
    const shown = Math.min(limit, samples.length);
    return `${head}\n${table.toString()}${count > shown ? `\n… and ${count - shown} more` : ''}`;
  };
  return [part('new', fresh.count, fresh.samples), part('resolved', resolved.count, resolved.samples), `persisting since ${comparison.against}: ${persisting.count}`].join('\n');
}
