/**
 * Leak telemetry: per-resource-type aggregation of findings into the numbers of the
 * audit document (docs/architecture.md, Contracts). Pure and streaming: one accumulator per type, fed one
 * finding at a time, so memory does not grow with the number of resources.
 */
import type { GateResourceTelemetry } from '../engine/gates.js';
import { STATUSES, type Finding, type ScanCounts, type Status } from '../engine/types.js';
import type { BackendKind } from '../manifest/types.js';
import { visible } from '../util/format.js';

/** Version of the JSON document's shape; bumped on incompatible changes. */
export const REPORT_SCHEMA_VERSION = 1;

/**
 * How completely a resource type was read: `ok` — all of it; `partial` — the scan went
 * through, but `unreadable` entries could not be read (never judged orphaned); `error` —
 * the scan stopped (or never started), and the counts are what was read before.
 */
export type ScanStatus = 'ok' | 'partial' | 'error';

/** A resource type's numbers: the counts and ages gates read, and how completely it was read. */
export interface ResourceTelemetry extends GateResourceTelemetry {
  backend: BackendKind;
  scope: string;
  status: ScanStatus;
  /** Why the type is not `ok`: the error that stopped the scan, or the first entry that could not be read. */
  error: string | null;
  /** Entries the scan could not read (a directory it could not open, a file it could not stat, an object whose metadata failed). */
  unreadable: number;
  /** Counts by `status/reason`, e.g. `orphaned/owner-dead`. */
  reasons: Record<string, number>;
  /** The age of the oldest tombstone of the backlog. */
  backlogOldestAgeSeconds: number | null;
}

/** The counts of all resource types together. */
export interface Summary extends ScanCounts {
  /** Resource types whose status is not `ok`. */
  errors: number;
  unreadable: number;
}

export class TelemetryAccumulator {
  private readonly counts: Record<Status, number> = { live: 0, orphaned: 0, expired: 0, protected: 0, young: 0, unknown: 0 };
  private readonly reasons: Record<string, number> = {};
  private scanned = 0;
  private orphanBytes = 0;
  private beyondSum = 0;
  private beyondCount = 0;
  private beyondMax: number | null = null;
  private oldestOrphan: number | null = null;
  private unreadable = 0;
  private problem: string | null = null;
  private firstUnreadable: { id: string; why: string } | null = null;
  private stopped = false;

  constructor(
    readonly name: string,
    readonly backend: BackendKind,
    readonly scope: string,
  ) {}

  add(finding: Finding): void {
    this.scanned++;
    this.counts[finding.status]++;
    if (finding.reason !== null && finding.status !== 'live') {
      const key = `${finding.status}/${finding.status === 'protected' ? 'rule' : finding.reason}`;
      this.reasons[key] = (this.reasons[key] ?? 0) + 1;
    }
    if (finding.status === 'orphaned') {
      this.orphanBytes += finding.bytes ?? 0;
      if (finding.ageSeconds !== null) this.oldestOrphan = Math.max(this.oldestOrphan ?? 0, finding.ageSeconds);
    }
    if (finding.status !== 'protected' && finding.beyondTtlSeconds !== null && finding.beyondTtlSeconds > 0) {
      this.beyondSum += finding.beyondTtlSeconds;
      this.beyondCount++;
      this.beyondMax = Math.max(this.beyondMax ?? 0, finding.beyondTtlSeconds);
    }
  }

  /** Entries the scan could not read; the first one's reason is kept. */
  addUnreadable(entries: readonly { id: string; why: string }[]): void {
    this.unreadable += entries.length;
    this.firstUnreadable ??= entries[0] ?? null;
  }

  /** The scan stopped on this error. */
  fail(message: string): void {
    this.stopped = true;
    this.problem = message;
  }

  get scannedSoFar(): number {
    return this.scanned;
  }

  result(backlog: { count: number; oldestAgeSeconds: number | null }): ResourceTelemetry {
    return {
      name: this.name,
      backend: this.backend,
      scope: this.scope,
      status: this.stopped ? 'error' : this.unreadable > 0 ? 'partial' : 'ok',
      error: this.stopped ? this.problem : this.firstUnreadable ? `${quoted(this.firstUnreadable.id)}: ${this.firstUnreadable.why}${this.unreadable > 1 ? ` (and ${this.unreadable - 1} more)` : ''}` : null,
      unreadable: this.unreadable,
      scanned: this.scanned,
      ...this.counts,
      reasons: { ...this.reasons },
      orphanBytes: this.orphanBytes,
      avgAgeBeyondTtlSeconds: this.beyondCount === 0 ? null : round(this.beyondSum / this.beyondCount),
      maxAgeBeyondTtlSeconds: this.beyondMax === null ? null : round(this.beyondMax),
      oldestOrphanAgeSeconds: this.oldestOrphan === null ? null : round(this.oldestOrphan),
      backlog: backlog.count,
      backlogOldestAgeSeconds: backlog.oldestAgeSeconds === null ? null : round(backlog.oldestAgeSeconds),
    };
  }
}

/** `telemetry` with its backlog counted again (a reap's, after its marks and sweeps). */
export function withBacklog(telemetry: ResourceTelemetry, backlog: { count: number; oldestAgeSeconds: number | null }): ResourceTelemetry {
  return { ...telemetry, backlog: backlog.count, backlogOldestAgeSeconds: backlog.oldestAgeSeconds === null ? null : round(backlog.oldestAgeSeconds) };
}

export function summarize(resources: readonly ResourceTelemetry[]): Summary {
  const summary: Summary = { errors: 0, unreadable: 0, scanned: 0, live: 0, orphaned: 0, expired: 0, protected: 0, young: 0, unknown: 0, orphanBytes: 0, backlog: 0 };
  for (const r of resources) {
    if (r.status !== 'ok') summary.errors++;
    summary.unreadable += r.unreadable;
    summary.scanned += r.scanned;
    for (const s of STATUSES) summary[s] += r[s];
    summary.orphanBytes += r.orphanBytes;
    summary.backlog += r.backlog;
  }
  return summary;
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/** What kept a type from being read whole, in one line: `not read: …` or `2 entries could not be read (never judged orphaned): …`. */
export function scanProblem(r: Pick<ResourceTelemetry, 'status' | 'error' | 'unreadable'>): string {
  if (r.status === 'error') return `not read: ${r.error ?? 'unknown error'}`;
  return `${r.unreadable} entr${r.unreadable === 1 ? 'y' : 'ies'} could not be read (never judged orphaned): ${r.error ?? ''}`;
}

/** A failed liveness source, in one line. */
export function sourceProblem(name: string, error: string): string {
  return `liveness source ${name} failed (the owners only it could vouch for are unknown, never orphaned): ${error}`;
}

/** An id in a message: quoted, its control, C1 and bidi characters escaped (never raw on a terminal). */
export function quoted(id: string): string {
  return visible(JSON.stringify(id));
}
