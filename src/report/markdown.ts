/**
 * A GitHub-flavoured Markdown summary of an audit (and optionally a reap), for
 * `$GITHUB_STEP_SUMMARY` or a merge-request comment: a headline with the gates' verdict,
 * what could not be read, then — against a baseline or an earlier run — the new findings,
 * the resolved ones and the count of persisting ones; failing gates, a table per resource
 * type, and (without a comparison) the first findings.
 *
 * It reads well both rendered and raw, and nothing from outside reaper can break a table row
 * or turn into markup: ids and owners are code spans (markup inside one is inert), and other
 * text — names, messages — is escaped only where a character could start markup or close a
 * cell. Control characters are shown escaped everywhere.
 */
import type { GateResult } from '../engine/gates.js';
import type { ReapReport } from './reap-report.js';
import type { AuditDocument, ComparedFinding, FindingOutput, FindingsComparison } from './document.js';
import { topFindings } from './priority.js';
import { cut, formatBytes, formatSeconds, visible } from '../util/format.js';
import { scanProblem, sourceProblem, type ResourceTelemetry } from './telemetry.js';

export interface MarkdownOptions {
  /** Findings listed (default 20). */
  findings?: number;
  /** Longest id or owner shown before it is cut with "…" (default 120 characters). */
  maxIdLength?: number;
  /** New, resolved and persisting findings against a baseline or an earlier run: listed first. */
  comparison?: FindingsComparison | null;
  /** The findings to list, chosen from every finding of the run (report/priority.ts); default: the document's most pressing. */
  top?: readonly FindingOutput[];
}

/**
 * Render the summary. `doc` may be null for a reap run without an audit document: the
 * type table then comes from the reap's own scan, and leases and findings are left out.
 */
export function renderMarkdown(doc: AuditDocument | null, gateResults: readonly GateResult[], reap?: ReapReport, options: MarkdownOptions = {}): string {
  if (doc === null && reap === undefined) throw new TypeError('renderMarkdown needs an audit document, a reap report, or both');
  const limit = options.findings ?? 20;
  const maxId = options.maxIdLength ?? 120;
  const comparison = options.comparison ?? null;
  const failed = gateResults.filter((g) => !g.ok);
  const passed = gateResults.filter((g) => g.ok);
  const out: string[] = [];

  const title = doc ? 'reaper audit' : `reaper reap (${reap!.execute ? 'executed' : 'dry run'})`;
  const resources = doc?.resources ?? reap!.resources.map((r) => r.telemetry).filter((t): t is ResourceTelemetry => t !== null);
  const sourceErrors = { ...(doc?.sourceErrors ?? {}), ...(reap?.sourceErrors ?? {}) };
  const unread = resources.filter((r) => r.status !== 'ok').length + Object.keys(sourceErrors).length;
  const verdict =
    gateResults.length === 0
      ? `${doc ? (unread > 0 ? '⚠️' : '✅') : reap!.errors.length > 0 || reap!.outcomes.failed > 0 ? '❌' : '✅'} ${title}${doc ? ': no leak gates set' : ''}`
      : failed.length === 0
        ? `${unread > 0 ? '⚠️' : '✅'} ${title}: ${gateResults.length === 1 ? 'the gate' : `all ${gateResults.length} gates`} passed`
        : `❌ ${title}: ${failed.length} of ${gateResults.length} gate${gateResults.length === 1 ? '' : 's'} failed`;
  out.push(`## ${verdict}${unread > 0 ? ` — ${unread} part${unread === 1 ? '' : 's'} could not be read` : ''}`, '');
  const s = doc?.summary ?? reap!.summary;
  out.push(
    `Run ${md(doc?.runId ?? reap!.runId)} · ${s.scanned} scanned · **${s.orphaned} orphaned** (${formatBytes(s.orphanBytes)}) · ${s.expired} expired · ${s.unknown} unknown · backlog ${s.backlog}` +
      (doc ? ` · ${doc.durationSeconds.toFixed(2)}s` : ''),
    '',
  );
  out.push(...errorSection(resources, sourceErrors));
  if (comparison) out.push(...comparisonSection(comparison, limit, maxId));

  if (failed.length > 0) {
    out.push('### Failing gates', '');
    for (const g of failed) out.push(`- ❌ ${gateLine(g)}`);
    out.push('');
  }
  if (passed.length > 0) {
    out.push('### Passing gates', '');
    for (const g of passed) out.push(`- ✅ ${gateLine(g)}`);
    out.push('');
  }

  out.push('### Resource types', '');
  out.push(
    row(['resource', 'backend', 'scanned', 'live', 'orphaned', 'expired', 'protected', 'young', 'unknown', 'orphan bytes', 'beyond ttl (avg)', 'backlog']),
    row([':--', ':--', ...Array<string>(10).fill('--:')]),
  );
  for (const r of resources) {
    const mark = r.status !== 'ok' ? '⚠️ ' : failed.some((g) => g.resource === r.name || g.breaking.includes(r.name)) ? '❌ ' : '';
    out.push(
      row([
        mark + md(r.name),
        md(r.backend),
        String(r.scanned),
        String(r.live),
        String(r.orphaned),
        String(r.expired),
        String(r.protected),
        String(r.young),
        String(r.unknown),
        formatBytes(r.orphanBytes),
        r.avgAgeBeyondTtlSeconds === null ? '-' : formatSeconds(r.avgAgeBeyondTtlSeconds),
        String(r.backlog),
      ]),
    );
  }
  out.push(row(['**total**', '', ...[s.scanned, s.live, s.orphaned, s.expired, s.protected, s.young, s.unknown].map(String), formatBytes(s.orphanBytes), '', String(s.backlog)]), '');
  const sources = Object.entries(doc?.sources ?? reap!.sources).map(([name, n]) => `${md(name)} ${n}`);
  const leases = doc
    ? `Leases: ${doc.leases.active} active, ${doc.leases.expired} expired; renewal failure rate ${(doc.leases.renewalFailureRate * 100).toFixed(1)}% over ${formatSeconds(doc.leases.windowSeconds)}`
    : '';
  const keys = sources.length ? `live keys by source: ${sources.join(', ')}` : '';
  if (leases || keys) out.push([leases, keys].filter(Boolean).join(' · '), '');

  if (reap) {
    out.push(`### Reap (${reap.execute ? 'executed' : 'dry run: nothing was changed'})`, '');
    if (reap.execute) {
      out.push(row(['resource', 'marked', 'deleted', 'lifted', 'failed', 'kept', 'reclaimed']), row([':--', ...Array<string>(6).fill('--:')]));
      for (const r of reap.resources) {
        const o = r.outcomes;
        out.push(row([md(r.name), ...[o.marked, o.deleted, o.lifted, o.failed, o.kept].map(String), formatBytes(o.bytesReclaimed)]));
      }
    } else {
      out.push(row(['resource', 'to mark', 'to sweep', 'to lift']), row([':--', '--:', '--:', '--:']));
      for (const r of reap.resources) out.push(row([md(r.name), String(r.toMark), String(r.toSweep), String(r.toLift)]));
    }
    out.push('');
    if (reap.errors.length > 0) {
      for (const e of reap.errors) out.push(`- ⚠️ ${md(e)}`);
      out.push('');
    }
  }

  const shown = comparison || !doc ? [] : (options.top ?? topFindings(doc.findings, limit)).slice(0, limit);
  if (doc && shown.length > 0) {
    out.push(`### Findings (${shown.length === doc.findingsTotal ? shown.length : `${shown.length} of ${doc.findingsTotal}, orphans first`})`, '');
    out.push(...findingRows(shown, maxId), '');
    if (doc.findingsTotal > shown.length) out.push(`… and ${doc.findingsTotal - shown.length} more (\`reaper audit --findings FILE\` writes them all).`, '');
  }
  return out.join('\n');
}

/** Resource types not read whole and liveness sources that failed: said before anything else, since every count below is short of them. */
function errorSection(resources: readonly ResourceTelemetry[], sourceErrors: Readonly<Record<string, string>>): string[] {
  const lines = resources.filter((r) => r.status !== 'ok').map((r) => `- ⚠️ **${md(r.name)}** (${md(r.scope)}): ${md(scanProblem(r))}`);
  for (const [name, e] of Object.entries(sourceErrors)) lines.push(`- ⚠️ ${md(sourceProblem(name, e))}`);
  return lines.length ? ['### Could not be read', '', ...lines, ''] : [];
}

/** New findings first, then resolved ones, then how many persist. */
function comparisonSection(c: FindingsComparison, limit: number, maxId: number): string[] {
  const { new: fresh, resolved, persisting } = c.diff;
  const out: string[] = [];
  const part = (title: string, count: number, samples: readonly ComparedFinding[]) => {
    out.push(`### ${title} (${count})`, '');
    if (count === 0) return void out.push('None.', '');
    const shown = samples.slice(0, limit);
    out.push(...findingRows(shown, maxId), '');
    if (count > shown.length) out.push(`… and ${count - shown.length} more (\`reaper audit --findings FILE\` writes every finding).`, '');
  };
  part(`New since ${md(c.against)}`, fresh.count, fresh.samples);
  part(`Resolved since ${md(c.against)}`, resolved.count, resolved.samples);
  out.push(`${persisting.count} finding${persisting.count === 1 ? '' : 's'} persisting (already in ${md(c.against)}).`, '');
  return out;
}

function findingRows(findings: readonly ComparedFinding[], maxId: number): string[] {
  const out = [row(['resource', 'id', 'status', 'reason', 'owner', 'age', 'bytes']), row([':--', ':--', ':--', ':--', ':--', '--:', '--:'])];
  for (const f of findings) {
    out.push(
      row([
        md(f.resource),
        markdownCode(cut(f.id, maxId)),
        md(f.status),
        f.reason === null || f.reason === undefined ? '' : md(f.reason),
        f.owner === null || f.owner === undefined ? '' : markdownCode(cut(f.owner, maxId)),
        f.ageSeconds === null || f.ageSeconds === undefined ? '-' : formatSeconds(f.ageSeconds),
        f.bytes === null ? '-' : formatBytes(f.bytes),
      ]),
    );
  }
  return out;
}

/** `orphaned>0` as code, then what was measured: gate texts hold no backticks (type names cannot). */
function gateLine(g: GateResult): string {
  const prefix = `${g.gate.text} ${g.ok ? 'passed' : 'failed'}: `;
  const detail = g.message.startsWith(prefix) ? g.message.slice(prefix.length) : g.message;
  return `\`${g.gate.text.replace(/`/g, "'")}\` — ${md(detail)}`;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

/**
 * Escape text for Markdown (also inside a table cell), escaping only what could do harm:
 * control characters and newlines are shown as escapes; a backslash, a backtick, `*`, `~`,
 * brackets, `<`, `&`, `|` and `$` (math) are backslash-escaped, and so is an underscore
 * that is not between two letters or digits (one between them cannot start emphasis);
 * `://`, `@` and `www.` are broken up so that no autolink forms. Hyphens, dots, colons,
 * parentheses and the like stay as they are.
 */
export function markdownText(value: string): string {
  return visible(value)
    .replace(/[\\`*~[\]<&|$@]/g, '\\$&')
    .replace(/(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, '\\_')
    .replace(/:(?=\/\/)/g, '\\:')
    .replace(/\b(www)\./gi, '$1\\.');
}

/**
 * A value as a table cell's code span, where markup is inert: fenced by one backtick more
 * than the longest run inside it, padded with a space when it starts or ends with a
 * backtick or a space (a renderer strips one each side), pipes escaped for the table. A
 * value with a backslash (a control character shown escaped included) is escaped text
 * instead: GFM parsers disagree about a backslash before a pipe inside a code span.
 */
export function markdownCode(value: string): string {
  const text = visible(value);
  if (text === '' || text.includes('\\')) return markdownText(value);
  const fence = '`'.repeat(Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length)) + 1);
  const pad = /^[` ]|[` ]$/.test(text) && !/^ +$/.test(text) ? ' ' : '';
  return `${fence}${pad}${text.replace(/\|/g, '\\|')}${pad}${fence}`;
}

const md = markdownText;

