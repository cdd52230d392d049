/**
 * The grace rule: how long a tombstone must wait before its delete so that a holder that
 * is alive but silent — stopped by a pause, behind on its clock, missing renewals — speaks
 * again before the delete. A live owner's key can look dead for at most
 *
 *     skew + longest pause + (lost renewals + 1) × renewal interval (jitter included)
 *
 * and any renewal or new lease after the mark lifts the tombstone (docs/safety.md §2), so
 * a grace longer than that never deletes what a live holder still owns. With the state
 * store's clock judging every lease time (docs/safety.md §15) the skew term drops out
 * and the bound is loose by about a ttl; a liveness source whose times the holders write
 * with their own clocks needs all of it. `reaper simulate` reproduces both
 * (docs/strategies.md). Pure: a function of numbers.
 */

export interface GraceBudget {
  /** The longest stop-the-world pause (or partition from the store) a holder may suffer. */
  maxPauseMs: number;
  /** The largest clock offset between a holder and the clock that judges its times. */
  maxSkewMs: number;
  /** Consecutive renewals that may be lost before the holder must be heard again. */
  lostRenewals: number;
  /** Renewal intervals are jittered by up to this fraction (the daemon: ±10%). */
  jitter: number;
}

/** What reaper assumes when nothing better is known: a minute's pause, 5 s of skew, two lost renewals (ttl = 3 intervals). */
export const DEFAULT_GRACE_BUDGET: GraceBudget = Object.freeze({ maxPauseMs: 60_000, maxSkewMs: 5_000, lostRenewals: 2, jitter: 0.1 });

export interface LeaseCadence {
  ttlMs: number;
  renewalIntervalMs: number;
}

/** The least grace the rule allows for leases renewed at this cadence. */
export function requiredGraceMs(cadence: LeaseCadence, budget: GraceBudget = DEFAULT_GRACE_BUDGET): number {
  const interval = Math.ceil(cadence.renewalIntervalMs * (1 + budget.jitter));
  return budget.maxSkewMs + budget.maxPauseMs + (budget.lostRenewals + 1) * interval;
}

/**
 * The cadences seen in active leases, one per ttl: the renewal interval is estimated as
 * twice the median time since each lease's last renewal (a heartbeat's phase is uniform
 * over its interval), never less than the daemon's default of a third of the ttl and
 * never more than the ttl itself.
 */
export function leaseCadences(leases: readonly { ttlMs: number; renewedAt: number }[], nowMs: number): (LeaseCadence & { leases: number })[] {
  const byTtl = new Map<number, number[]>();
  for (const l of leases) {
    let ages = byTtl.get(l.ttlMs);
    if (!ages) byTtl.set(l.ttlMs, (ages = []));
    ages.push(Math.max(0, nowMs - l.renewedAt));
  }
  return [...byTtl.entries()]
    .sort(([a], [b]) => a - b)
    .map(([ttlMs, ages]) => {
      ages.sort((a, b) => a - b);
      const median = ages[Math.floor((ages.length - 1) / 2)]!;
      return { ttlMs, renewalIntervalMs: Math.min(ttlMs, Math.max(Math.floor(ttlMs / 3), 2 * median)), leases: ages.length };
    });
}

export interface GraceShortfall {
  resource: string;
  graceMs: number;
  requiredMs: number;
  /** The cadence that asks the most. */
  cadence: LeaseCadence;
}

/** Resource types whose grace is below what the most demanding cadence asks. */
export function graceShortfalls(
  resources: readonly { name: string; graceMs: number }[],
  cadences: readonly LeaseCadence[],
  budget: GraceBudget = DEFAULT_GRACE_BUDGET,
): GraceShortfall[] {
  if (cadences.length === 0) return [];
  let worst = cadences[0]!;
  for (const c of cadences) if (requiredGraceMs(c, budget) > requiredGraceMs(worst, budget)) worst = c;
  const requiredMs = requiredGraceMs(worst, budget);
  return resources.filter((r) => r.graceMs < requiredMs).map((r) => ({ resource: r.name, graceMs: r.graceMs, requiredMs, cadence: worst }));
}

/**
 * The least grace the rule allows before any renewal interval is counted: skew + the longest
 * pause. What validate holds a type to when no lease cadence can be measured (a manifest
 * without a leases source, a state store with no active lease).
 */
export function graceFloorMs(budget: GraceBudget = DEFAULT_GRACE_BUDGET): number {
  return budget.maxSkewMs + budget.maxPauseMs;
}

/** Resource types whose grace is below the rule's floor (graceFloorMs). */
export function graceBelowFloor(resources: readonly { name: string; graceMs: number }[], budget: GraceBudget = DEFAULT_GRACE_BUDGET): { resource: string; graceMs: number; requiredMs: number }[] {
  const requiredMs = graceFloorMs(budget);
  return resources.filter((r) => r.graceMs < requiredMs).map((r) => ({ resource: r.name, graceMs: r.graceMs, requiredMs }));
}
