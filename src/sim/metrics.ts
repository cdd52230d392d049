/**
 * What the simulator measures for each strategy. The safety metric is premature
 * deletions: a resource deleted while a service still held a reference to its group
 * (or one was in transit). Leaks are resources that were garbage at the end and still
 * existed; leaked resource-seconds add up, over every resource that became garbage,
 * the time from its last reference to its deletion (or to the end).
 */
import type { MessageKind, StrategyName } from './scenario.js';
import type { Table } from './table.js';

export interface StrategyResult {
  strategy: StrategyName;
  resources: number;
  reclaimed: number;
  premature: number;
  leaked: number;
  leakedResourceSeconds: number;
  latencyP50Seconds: number | null;
  latencyP99Seconds: number | null;
  messagesPerResource: number;
  storeOpsPerResource: number;
  peakStateSize: number;
  /** Strategy-specific counts (refused runs, lifts, abandoned traces, fault counts…). */
  extras: Record<string, number>;
}

export class Metrics {
  messages = 0;
  ops = 0;
  private prematureCount = 0;
  private latencies = new Float64Array(1024);
  private reclaimedCount = 0;
  private peak = 0;
  private readonly extras = new Map<string, number>();
  /** Groups that lost or duplicated a message, by kind (for tests that check cause and effect). */
  readonly lostGroups = new Map<MessageKind, Set<number>>();
  readonly duplicatedGroups = new Map<MessageKind, Set<number>>();
  readonly prematureGroups = new Set<number>();

  premature(group: number): void {
    this.prematureCount++;
    this.prematureGroups.add(group);
  }

  reclaimed(latencyMs: number): void {
    if (this.reclaimedCount >= this.latencies.length) {
      const next = new Float64Array(this.latencies.length * 2);
      next.set(this.latencies);
      this.latencies = next;
    }
    this.latencies[this.reclaimedCount++] = latencyMs;
  }

  lost(kind: MessageKind, group: number): void {
    this.count(`lost ${kind}`, 1);
    if (group >= 0) add(this.lostGroups, kind, group);
  }

  duplicated(kind: MessageKind, group: number): void {
    this.count(`duplicated ${kind}`, 1);
    if (group >= 0) add(this.duplicatedGroups, kind, group);
  }

  count(name: string, n: number): void {
    this.extras.set(name, (this.extras.get(name) ?? 0) + n);
  }

  sampleState(size: number): void {
    if (size > this.peak) this.peak = size;
  }

  /** The result at the end of the run, judged against the ground truth. */
  result(strategy: StrategyName, table: Table, endMs: number): StrategyResult {
    let leaked = 0;
    let garbageMs = 0;
    for (let r = 0; r < table.resources; r++) {
      const g = table.groupOf(r);
      if (table.refs(g) > 0) continue;
      const garbageAt = table.garbageAt(g);
      const deletedAt = table.rDeletedAt.data[r]!;
      if (Number.isNaN(deletedAt)) {
        leaked++;
        garbageMs += endMs - garbageAt;
      } else if (deletedAt >= garbageAt) {
        garbageMs += deletedAt - garbageAt;
      }
    }
    const lat = this.latencies.subarray(0, this.reclaimedCount).sort();
    const q = (p: number) => (lat.length === 0 ? null : round(lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]! / 1000));
    const n = Math.max(1, table.resources);
    return {
      strategy,
      resources: table.resources,
      reclaimed: this.reclaimedCount,
      premature: this.prematureCount,
      leaked,
      leakedResourceSeconds: round(garbageMs / 1000),
      latencyP50Seconds: q(0.5),
      latencyP99Seconds: q(0.99),
      messagesPerResource: round(this.messages / n),
      storeOpsPerResource: round(this.ops / n),
      peakStateSize: this.peak,
      extras: Object.fromEntries([...this.extras.entries()].sort(([a], [b]) => a.localeCompare(b))),
    };
  }
}

function add(map: Map<MessageKind, Set<number>>, kind: MessageKind, group: number): void {
  let set = map.get(kind);
  if (!set) map.set(kind, (set = new Set()));
  set.add(group);
}

/** Three decimals: results print and serialise the same on every machine. */
export function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
