/**
 * The report's data from what a run or a file gave: an audit (a document, or a run the
 * state store recorded), a reap report, the findings aggregate, the state store's history.
 * Pure; every list is capped here (REPORT_LIMITS), which is what bounds the page.
 */
import type { GateResult } from '../../engine/gates.js';
import type { ReapReport } from '../reap-report.js';
import type { FindingOutput, LeaseTelemetry } from '../document.js';
import { scanProblem, sourceProblem, type ResourceTelemetry } from '../telemetry.js';
import { cut } from '../../util/format.js';
import { emptyCounts, FindingsAggregate } from './aggregate.js';
import { REPORT_LIMITS, STATUS_ORDER, type PendingView, type ReportData, type RunView, type SummaryView, type TrendPoint, type TypeView } from './model.js';

/** An audit as the report needs it: a JSON document, or the summary a run recorded in the state store. */
export interface AuditInput {
  runId: string;
  startedAt?: string | null;
  finishedAt?: string | null;
  complete?: boolean | null;
  /** The shard this audit was (`i/N`, and its job): it read that part of each type only. */
  part?: { shard: string; job: string | null } | null;
  resources: readonly ResourceTelemetry[];
  leases?: LeaseTelemetry | null;
  sourceErrors?: Readonly<Record<string, string>>;
  findings: readonly FindingOutput[];
  /** Non-live findings of the whole audit (the document may list fewer). */
  findingsTotal?: number;
  findingsTruncated?: boolean;
}

export interface ReportInputs {
  title?: string;
  /** When the report was made (ISO 8601): given, so rendering stays a function of its input. */
  generatedAt: string;
  reaper: string;
  /** What the report is made from, one line each (files, the state store, a run). */
  sources: readonly string[];
  audit?: AuditInput | null;
  reap?: ReapReport | null;
  /**
   * Every non-live finding of the run, streamed into an aggregate (an audit or reap as it
   * runs, an NDJSON file). Without it, the audit's own list is aggregated.
   */
  findings?: FindingsAggregate | null;
  /** The state store's trend and pending tombstones; null when no store was read. */
  history?: { trend: TrendPoint[]; pending: PendingView[] } | null;
  gates?: readonly GateResult[];
  notes?: readonly string[];
}

const message = (text: string) => cut(text, REPORT_LIMITS.messageChars);

export function buildReportData(inputs: ReportInputs): ReportData {
  const { audit, reap } = inputs;
  const notes = [...(inputs.notes ?? [])];
  let findings = inputs.findings ?? null;
  if (!findings && audit) {
    findings = new FindingsAggregate();
    for (const f of audit.findings) findings.add(f);
    const total = audit.findingsTotal ?? audit.findings.length;
    if (audit.findingsTruncated || total > audit.findings.length) {
      notes.push(
        `The age distribution, the owners and the findings table come from the ${audit.findings.length.toLocaleString('en-US')} findings the audit listed, of ${total.toLocaleString('en-US')}; ` +
          'for all of them, give the audit\'s --findings NDJSON file too.',
      );
    }
  }

  let types: TypeView[];
  const problems: string[] = [];
  if (audit) {
    types = audit.resources.map(typeFromTelemetry);
    for (const r of audit.resources) if (r.status !== 'ok') problems.push(`${r.name}: ${scanProblem(r)}`);
    for (const [name, error] of Object.entries(audit.sourceErrors ?? {})) problems.push(sourceProblem(name, error));
  } else if (reap) {
    types = reap.resources.map((r) => (r.telemetry ? typeFromTelemetry(r.telemetry) : refusedType(r.name, r.backend, r.error)));
    problems.push(...reap.errors);
    for (const [name, error] of Object.entries(reap.sourceErrors)) problems.push(sourceProblem(name, error));
  } else if (findings) {
    types = findings.typeCounts().map((t) => ({ ...t, status: 'findings', error: null, scanned: null, backlog: null }));
    notes.push('Only non-live findings were read: how many resources were scanned, and how many are live, is not known.');
  } else {
    types = [];
  }
  if (!findings) notes.push('No findings were read: the age distribution, the owners and the findings table need an audit (its document or --findings file).');
  if (inputs.history === null || inputs.history === undefined) {
    notes.push('No state store was read: the trend over runs and the pending tombstones need one (-c FILE or --state URL).');
  }

  const trend = inputs.history ? inputs.history.trend.slice(-REPORT_LIMITS.runs) : null;
  // The state store's view when it was read (it knows the oldest mark too), else what a reap report says.
  const pending =
    inputs.history?.pending ??
    (reap ? reap.resources.map((r) => ({ resource: r.name, marked: r.pending?.count ?? 0, deleting: 0, oldestMarkedAt: null, earliestSweepAt: r.pending?.earliestSweepAt ?? null })) : null);

  return {
    title: inputs.title ?? defaultTitle(audit, reap),
    generatedAt: inputs.generatedAt,
    reaper: inputs.reaper,
    sources: inputs.sources.slice(0, REPORT_LIMITS.problems).map(message),
    notes: notes.map(message),
    run: runView(audit, reap),
    summary: types.length > 0 || audit || reap ? summarizeTypes(types) : null,
    types: types.slice(0, REPORT_LIMITS.types).map((t) => ({ ...t, error: t.error === null ? null : message(t.error) })),
    typesOmitted: Math.max(0, types.length - REPORT_LIMITS.types),
    problems: problems.slice(0, REPORT_LIMITS.problems).map(message),
    gates: (inputs.gates ?? []).slice(0, REPORT_LIMITS.problems).map((g) => ({ expression: message(g.gate.text), ok: g.ok, message: message(g.message) })),
    leases: audit?.leases ?? null,
    ages: findings ? findings.ageView() : null,
    owners: findings ? findings.ownersView() : null,
    trend,
    pending: pending ? pending.slice(0, REPORT_LIMITS.types) : null,
    reap: reap
      ? {
          execute: reap.execute,
          outcomes: reap.outcomes,
          types: reap.resources.slice(0, REPORT_LIMITS.types).map((r) => ({
            name: r.name,
            toMark: r.toMark,
            toSweep: r.toSweep,
            toLift: r.toLift,
            outcomes: r.outcomes,
            error: r.error === null ? null : message(r.error),
          })),
        }
      : null,
    findings: findings ? findings.findingsView() : null,
  };
}

function defaultTitle(audit: AuditInput | null | undefined, reap: ReapReport | null | undefined): string {
  if (reap) return `reaper ${reap.execute ? 'reap' : 'reap (dry run)'} ${reap.runId}`;
  if (audit) return `reaper audit ${audit.runId}`;
  return 'reaper report';
}

function runView(audit: AuditInput | null | undefined, reap: ReapReport | null | undefined): RunView | null {
  if (audit) return { runId: audit.runId, kind: 'audit', startedAt: audit.startedAt ?? null, finishedAt: audit.finishedAt ?? null, complete: audit.complete ?? null, part: audit.part ?? null };
  if (reap) return { runId: reap.runId, kind: reap.execute ? 'reap' : 'reap (dry run)', startedAt: null, finishedAt: null, complete: reap.errors.length === 0, part: null };
  return null;
}

function typeFromTelemetry(r: ResourceTelemetry): TypeView {
  return {
    name: r.name,
    backend: r.backend,
    status: r.status,
    error: r.status === 'ok' ? null : scanProblem(r),
    scanned: r.scanned,
    counts: { live: r.live, orphaned: r.orphaned, expired: r.expired, protected: r.protected, young: r.young, unknown: r.unknown },
    orphanBytes: r.orphanBytes,
    oldestOrphanAgeSeconds: r.oldestOrphanAgeSeconds,
    backlog: r.backlog,
  };
}

function refusedType(name: string, backend: string, error: string | null): TypeView {
  return { name, backend, status: 'error', error: `refused: ${error ?? 'not read'}`, scanned: 0, counts: emptyCounts(), orphanBytes: 0, oldestOrphanAgeSeconds: null, backlog: null };
}

export function summarizeTypes(types: readonly TypeView[]): SummaryView {
  const counts = emptyCounts();
  let scanned: number | null = 0;
  let backlog: number | null = 0;
  let orphanBytes = 0;
  let errors = 0;
  for (const t of types) {
    for (const s of STATUS_ORDER) counts[s] += t.counts[s];
    scanned = scanned === null || t.scanned === null ? null : scanned + t.scanned;
    backlog = backlog === null || t.backlog === null ? null : backlog + t.backlog;
    orphanBytes += t.orphanBytes;
    if (t.status === 'partial' || t.status === 'error') errors++;
  }
  return { types: types.length, errors, scanned, counts, liveKnown: scanned !== null, orphanBytes, backlog };
}
