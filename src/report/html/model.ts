/**
 * What the HTML report shows: aggregates, never the raw findings of a whole audit. Every
 * list in it has a cap (REPORT_LIMITS), so the page has a size bound that does not grow
 * with the number of findings (REPORT_MAX_BYTES; `bound.ts` applies the caps, the
 * renderer checks the bound).
 */
import type { Status } from '../../engine/types.js';
import type { ReapOutcomes } from '../reap-report.js';
import type { LeaseTelemetry } from '../document.js';

export const REPORT_LIMITS = {
  /** Findings rows the table holds at most: the highest-priority ones (orphans first, oldest first). */
  findingsRows: 5_000,
  /** …and at most this many bytes of them, as embedded JSON. */
  findingsBytes: 2 * 1024 * 1024,
  /** An id, owner or reason longer than this is cut (with "…"). */
  textChars: 256,
  /** A type's error, a problem line, a gate message longer than this is cut. */
  messageChars: 400,
  /** Resource types shown one by one; the summary still counts every type. */
  types: 200,
  /** Owners with the most orphans. */
  owners: 10,
  /** Owners counted one by one: beyond this many distinct owners the counts become approximate (Misra–Gries). */
  ownerCounters: 10_000,
  /** Runs in the trend. */
  runs: 60,
  /** Problem lines, gates, liveness sources. */
  problems: 50,
  /** Live view: holders, expiring leases, recent reap runs. */
  holders: 50,
  expiring: 50,
  reapRuns: 30,
} as const;

/**
 * The largest report, whatever the size of the audit: the embedded findings (≤ 2 MiB),
 * ≤ 200 types in each view, ≤ 60 runs, ≤ 50 problems, the inline script and style. The
 * worst case of every cap together is about 3.4 MiB (test/unit/report-html-bound.test.ts);
 * a typical audit's report is a few hundred KiB.
 */
export const REPORT_MAX_BYTES = 4 * 1024 * 1024;

/** Display order of the statuses in bars and legends. */
export const STATUS_ORDER: readonly Status[] = ['live', 'orphaned', 'expired', 'protected', 'young', 'unknown'];

export type StatusCounts = Record<Status, number>;

export interface TypeView {
  name: string;
  backend: string;
  /** How completely the type was read; `findings` when only its non-live findings are known (an NDJSON file). */
  status: 'ok' | 'partial' | 'error' | 'findings';
  error: string | null;
  /** Null when only findings were read: how many were scanned (and how many live) is not known. */
  scanned: number | null;
  counts: StatusCounts;
  orphanBytes: number;
  oldestOrphanAgeSeconds: number | null;
  /** Tombstones marked and not yet swept (null when unknown). */
  backlog: number | null;
}

export interface SummaryView {
  types: number;
  /** Types not read whole. */
  errors: number;
  scanned: number | null;
  counts: StatusCounts;
  /** False when `live` (and `scanned`) are not known: only non-live findings were read. */
  liveKnown: boolean;
  orphanBytes: number;
  backlog: number | null;
}

export interface AgeBucket {
  label: string;
  fromSeconds: number;
  /** Exclusive; null for the last bucket. */
  toSeconds: number | null;
  count: number;
}

export interface AgeView {
  buckets: AgeBucket[];
  /** Orphans whose age is unknown. */
  unknown: number;
  total: number;
}

export interface OwnerRow {
  /** Null: orphans without an owner (reason no-owner). */
  owner: string | null;
  orphans: number;
  bytes: number;
}

export interface OwnersView {
  rows: OwnerRow[];
  /** Counts may be low by up to this much (0: exact): more distinct owners than REPORT_LIMITS.ownerCounters. */
  errorBound: number;
}

export interface TrendPoint {
  runId: string;
  kind: string;
  status: string;
  /** When the run finished (or started, while running), ISO 8601. */
  at: string;
  orphaned: number | null;
  expired: number | null;
  backlog: number | null;
  /** Deleted by an executed reap; null for audits and dry runs. */
  deleted: number | null;
}

export interface PendingView {
  resource: string;
  /** Tombstones marked, waiting for their sweep. */
  marked: number;
  /** Tombstones a delete is under way for (a run that died leaves them; the next run resolves them). */
  deleting: number;
  oldestMarkedAt: string | null;
  /** The oldest mark plus the type's grace; null when none is pending or the grace is not known. */
  earliestSweepAt: string | null;
}

export interface ReapTypeView {
  name: string;
  toMark: number;
  toSweep: number;
  toLift: number;
  outcomes: ReapOutcomes;
  error: string | null;
}

export interface ReapView {
  execute: boolean;
  outcomes: ReapOutcomes;
  types: ReapTypeView[];
}

export interface GateView {
  expression: string;
  ok: boolean;
  message: string;
}

/** One row of the findings table: [resource, id, status, reason, owner, ageSeconds, bytes]. */
export type FindingRow = [string, string, Status, string | null, string | null, number | null, number | null];

export interface FindingsView {
  rows: FindingRow[];
  /** Non-live findings the inputs held. */
  total: number;
  /** Rows that were cut from the table by REPORT_LIMITS (total − rows.length when every finding was read). */
  omitted: number;
}

export interface RunView {
  runId: string;
  kind: string;
  startedAt: string | null;
  finishedAt: string | null;
  complete: boolean | null;
  /** The shard the run was, when it was one: its figures cover that part of each type only. */
  part: { shard: string; job: string | null } | null;
}

export interface ReportData {
  title: string;
  generatedAt: string;
  reaper: string;
  /** What the report was made from, one line each. */
  sources: string[];
  /** What a view is missing or was made from a part of: said on the page. */
  notes: string[];
  run: RunView | null;
  summary: SummaryView | null;
  types: TypeView[];
  /** Types not shown one by one (beyond REPORT_LIMITS.types). */
  typesOmitted: number;
  problems: string[];
  gates: GateView[];
  leases: LeaseTelemetry | null;
  /** Null when no finding was read (a reap report, a state store without an audit). */
  ages: AgeView | null;
  owners: OwnersView | null;
  /** Null when no state store was read. */
  trend: TrendPoint[] | null;
  pending: PendingView[] | null;
  reap: ReapView | null;
  findings: FindingsView | null;
}

export interface HolderRow {
  holder: string;
  active: number;
}

export interface ExpiringLease {
  key: string;
  holder: string;
  generation: number;
  expiresInSeconds: number;
  ttlSeconds: number;
}

export interface ReapRunRow {
  runId: string;
  status: string;
  execute: boolean;
  startedAt: string;
  finishedAt: string | null;
  outcomes: Pick<ReapOutcomes, 'marked' | 'deleted' | 'lifted' | 'failed'> | null;
  error: string | null;
}

/** What only the daemon's live view adds: leases, renewals, reap runs. */
export interface LiveData {
  at: string;
  holder: string;
  ready: boolean;
  heartbeat: { held: number; wanted: number; renewalsOk: number; renewalsFailed: number; leasesLost: number };
  /** Store-wide renewal statistics over the window. */
  renewals: LeaseTelemetry;
  activeLeases: number;
  /** True when more active leases exist than were counted by holder. */
  leasesCapped: boolean;
  holders: HolderRow[];
  expiring: ExpiringLease[];
  reapRuns: ReapRunRow[];
}
