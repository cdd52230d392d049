/**
 * The one tally of a reap: every count a type's report carries — what was planned (with
 * sample ids) and what happened — moves here and nowhere else, so `outcomes.lifted` and the
 * `lifts` it breaks down cannot disagree, and a count is what the store did, not what was
 * asked of it.
 */
import { declaredScope } from '../../backends/open.js';
import type { PlanItem } from '../../engine/reap-plan.js';
import { InterruptedError, redact, SafetyError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import type { ReapOutcomes, ResourceReap } from '../../report/reap-report.js';
import { TelemetryAccumulator, withBacklog, type ResourceTelemetry } from '../../report/telemetry.js';
import type { JournalOutcome } from '../../state/types.js';

const emptyOutcomes = (): ReapOutcomes => ({ marked: 0, deleted: 0, lifted: 0, failed: 0, kept: 0, bytesReclaimed: 0 });

export class ReapTally {
  readonly report: ResourceReap;

  constructor(
    readonly spec: ResourceSpec,
    /** Ids shown per list of the report. */
    private readonly sampleSize: number,
  ) {
    this.report = {
      name: spec.name,
      backend: spec.location.kind,
      deleteMode: null,
      scanned: 0,
      toMark: 0,
      toSweep: 0,
      toLift: 0,
      samples: { mark: [], sweep: [], lift: [] },
      lifts: {},
      outcomes: emptyOutcomes(),
      telemetry: null,
      error: null,
      pending: null,
    };
  }

  get outcomes(): Readonly<ReapOutcomes> {
    return this.report.outcomes;
  }

  /** An item written to the plan. */
  planned(item: PlanItem): void {
    const r = this.report;
    if (item.op === 'mark') {
      r.toMark++;
      sample(r.samples.mark, item.id, this.sampleSize);
    } else if (item.op === 'sweep') {
      r.toSweep++;
      sample(r.samples.sweep, item.id, this.sampleSize);
    } else {
      r.toLift++;
      sample(r.samples.lift, item.id, this.sampleSize);
    }
  }

  /** The counts a saved plan's header carries for this type (its items are applied from the file). */
  /** What a saved plan says of the type: its counts, and the telemetry of the scan it was made from. */
  plannedBefore(counts: { scanned: number; toMark: number; toSweep: number; toLift: number; telemetry?: ResourceTelemetry | null }): void {
    Object.assign(this.report, { scanned: counts.scanned, toMark: counts.toMark, toSweep: counts.toSweep, toLift: counts.toLift, telemetry: counts.telemetry ?? null });
  }

  scanned(count: number, telemetry: ResourceTelemetry): void {
    this.report.scanned = count;
    this.report.telemetry = telemetry;
  }

  /**
   * The type's tombstones as they stand after the run (`marked` and `deleting`): the pending
   * ones, and the backlog its telemetry reports in place of the one counted while planning.
   */
  leftAfterRun(tombstones: { marked: number; deleting: number; oldestMarkedAt: number | null }, graceMs: number, nowMs: number): void {
    const r = this.report;
    const { marked, oldestMarkedAt } = tombstones;
    r.pending = { count: marked, earliestSweepAt: oldestMarkedAt === null || marked === 0 ? null : new Date(oldestMarkedAt + graceMs).toISOString() };
    if (r.telemetry) r.telemetry = withBacklog(r.telemetry, { count: marked + tombstones.deleting, oldestAgeSeconds: oldestMarkedAt === null ? null : Math.max(0, nowMs - oldestMarkedAt) / 1000 });
  }

  /** Tombstones the store inserted. */
  marked(count: number): void {
    this.report.outcomes.marked += count;
  }

  /** Tombstones left for a later run: their resource could not be judged now. */
  kept(count: number): void {
    this.report.outcomes.kept += count;
  }

  /** Tombstones the store lifted (count them as it reports them), and why: the total and its breakdown move together. */
  lifted(why: string, count: number): void {
    if (count === 0) return;
    this.report.outcomes.lifted += count;
    this.report.lifts[why] = (this.report.lifts[why] ?? 0) + count;
  }

  /** A journaled delete's outcome: deleted (its bytes reclaimed) or absent count as deleted, changed as a lift, failed as failed. */
  settled(outcome: Exclude<JournalOutcome, 'intent'>, bytes: number | null): void {
    const o = this.report.outcomes;
    if (outcome === 'deleted') {
      o.deleted++;
      o.bytesReclaimed += bytes ?? 0;
    } else if (outcome === 'absent') o.deleted++;
    else if (outcome === 'changed') this.lifted('changed', 1);
    else o.failed++;
  }

  /**
   * Run one step of this type; a failure (not a stop, not a safety refusal) refuses the type
   * alone (docs/safety.md §21): nothing of it is planned or kept, its report says why, and it is
   * left out of the rest of the run. Returns null then.
   */
  async refusing<T>(signal: AbortSignal | undefined, step: () => Promise<T>): Promise<T | null> {
    try {
      return await step();
    } catch (error) {
      if (signal?.aborted || error instanceof SafetyError || error instanceof InterruptedError) throw error;
      const r = this.report;
      r.error = redact((error as Error)?.message ?? String(error));
      const acc = new TelemetryAccumulator(this.spec.name, this.spec.location.kind, declaredScope(this.spec));
      acc.fail(r.error);
      r.telemetry = acc.result({ count: 0, oldestAgeSeconds: null });
      r.toMark = r.toSweep = r.toLift = 0;
      r.samples = { mark: [], sweep: [], lift: [] };
      r.outcomes.kept = 0;
      return null;
    }
  }
}

/** The run's outcomes: every type's, summed. */
export function totalOutcomes(tallies: Iterable<ReapTally>): ReapOutcomes {
  const total = emptyOutcomes();
  for (const t of tallies) for (const k of Object.keys(total) as (keyof ReapOutcomes)[]) total[k] += t.outcomes[k];
  return total;
}

function sample(list: string[], id: string, size: number): void {
  if (list.length < size) list.push(id);
}
