/**
 * Findings in, bounded aggregates out: fed one non-live finding at a time (an audit as it
 * streams, an NDJSON file line by line), it keeps the orphan age histogram, the owners
 * with the most orphans, counts per type, and the findings table's rows — each in memory
 * and output bounded by REPORT_LIMITS, whatever the number of findings. Pure: no I/O.
 */
import type { FindingOutput } from '../document.js';
import { findingBefore, TopK } from '../priority.js';
import { cut, visible } from '../../util/format.js';
import { scriptJson } from './escape.js';
import { REPORT_LIMITS, type AgeBucket, type AgeView, type FindingRow, type FindingsView, type OwnersView, type StatusCounts } from './model.js';

const HOUR = 3600;
const DAY = 86_400;

/** Orphan age buckets: [from, to) in seconds. */
export const AGE_BUCKETS: readonly Omit<AgeBucket, 'count'>[] = [
  { label: '< 1h', fromSeconds: 0, toSeconds: HOUR },
  { label: '1–6h', fromSeconds: HOUR, toSeconds: 6 * HOUR },
  { label: '6–24h', fromSeconds: 6 * HOUR, toSeconds: DAY },
  { label: '1–7d', fromSeconds: DAY, toSeconds: 7 * DAY },
  { label: '7–30d', fromSeconds: 7 * DAY, toSeconds: 30 * DAY },
  { label: '30–90d', fromSeconds: 30 * DAY, toSeconds: 90 * DAY },
  { label: '≥ 90d', fromSeconds: 90 * DAY, toSeconds: null },
];

export const emptyCounts = (): StatusCounts => ({ live: 0, orphaned: 0, expired: 0, protected: 0, young: 0, unknown: 0 });

/**
 * A text for the table: invisible and reordering characters shown as escapes, then cut to
 * `max` characters. Only the head that can be shown is escaped, so a long id costs no more
 * than a short one.
 */
export const shown = (text: string, max: number = REPORT_LIMITS.textChars): string => cut(visible(text.length > 2 * max ? text.slice(0, 2 * max) : text), max);

interface Ranked {
  row: FindingRow;
  seq: number;
}

/** a goes before b in the table's priority order (report/priority.ts), then in the order they came. */
const before = (a: Ranked, b: Ranked): boolean => findingBefore({ status: a.row[2], ageSeconds: a.row[5] }, { status: b.row[2], ageSeconds: b.row[5] }) ?? a.seq < b.seq;

/**
 * Owners by orphan count in bounded memory (Misra–Gries): exact while at most
 * `capacity` distinct owners have been seen; beyond, every count is low by at most
 * `errorBound` (≤ orphans / (capacity + 1)), and every owner holding more than that
 * share of the orphans is still in the list. Bytes are summed while an owner is counted.
 */
export class OwnerCounter {
  private readonly counts = new Map<string | null, { orphans: number; bytes: number }>();
  private decrements = 0;
  constructor(private readonly capacity: number = REPORT_LIMITS.ownerCounters) {}

  add(owner: string | null, bytes: number | null): void {
    const entry = this.counts.get(owner);
    if (entry) {
      entry.orphans++;
      entry.bytes += bytes ?? 0;
      return;
    }
    if (this.counts.size < this.capacity) {
      this.counts.set(owner, { orphans: 1, bytes: bytes ?? 0 });
      return;
    }
    // Full: this owner and every counted one lose one; those at zero make room.
    this.decrements++;
    for (const [key, value] of this.counts) {
      value.orphans--;
      if (value.orphans === 0) this.counts.delete(key);
    }
  }

  top(n: number): OwnersView {
    const rows = [...this.counts.entries()]
      .map(([owner, v]) => ({ owner, orphans: v.orphans, bytes: v.bytes }))
      .sort((a, b) => b.orphans - a.orphans || b.bytes - a.bytes || String(a.owner).localeCompare(String(b.owner)))
      .slice(0, n);
    return { rows, errorBound: this.decrements };
  }
}

export class FindingsAggregate {
  private readonly ages = AGE_BUCKETS.map(() => 0);
  private unknownAge = 0;
  private orphans = 0;
  private readonly owners = new OwnerCounter();
  private readonly rows = new TopK<Ranked>(REPORT_LIMITS.findingsRows, before);
  private readonly perType = new Map<string, { backend: string; counts: StatusCounts; orphanBytes: number; oldest: number | null }>();
  private seq = 0;

  /** Non-live findings added. */
  get total(): number {
    return this.seq;
  }

  add(f: FindingOutput): void {
    if (f.status === 'live') return;
    this.seq++;
    let type = this.perType.get(f.resource);
    if (!type) {
      type = { backend: f.backend, counts: emptyCounts(), orphanBytes: 0, oldest: null };
      this.perType.set(f.resource, type);
    }
    type.counts[f.status]++;
    if (f.status === 'orphaned') {
      this.orphans++;
      type.orphanBytes += f.bytes ?? 0;
      if (f.ageSeconds === null) this.unknownAge++;
      else {
        type.oldest = Math.max(type.oldest ?? 0, f.ageSeconds);
        this.ages[bucketOf(f.ageSeconds)]!++;
      }
      this.owners.add(f.owner === null ? null : shown(f.owner), f.bytes);
    }
    this.rows.offer({
      row: [shown(f.resource), shown(f.id), f.status, f.reason === null ? null : shown(f.reason), f.owner === null ? null : shown(f.owner), f.ageSeconds, f.bytes],
      seq: this.seq,
    });
  }

  ageView(): AgeView {
    return { buckets: AGE_BUCKETS.map((b, i) => ({ ...b, count: this.ages[i]! })), unknown: this.unknownAge, total: this.orphans };
  }

  ownersView(): OwnersView {
    return this.owners.top(REPORT_LIMITS.owners);
  }

  /** The table's rows, highest priority first, within the row and byte caps. */
  findingsView(): FindingsView {
    const rows: FindingRow[] = [];
    let bytes = 0;
    for (const { row } of this.rows.sorted()) {
      const size = Buffer.byteLength(scriptJson(row)) + 1;
      if (bytes + size > REPORT_LIMITS.findingsBytes) break;
      bytes += size;
      rows.push(row);
    }
    return { rows, total: this.total, omitted: this.total - rows.length };
  }

  /** Per-type counts of the non-live findings, in the order types were first seen. */
  typeCounts(): { name: string; backend: string; counts: StatusCounts; orphanBytes: number; oldestOrphanAgeSeconds: number | null }[] {
    return [...this.perType.entries()].map(([name, t]) => ({ name, backend: t.backend, counts: { ...t.counts }, orphanBytes: t.orphanBytes, oldestOrphanAgeSeconds: t.oldest }));
  }
}

function bucketOf(ageSeconds: number): number {
  for (let i = AGE_BUCKETS.length - 1; i > 0; i--) if (ageSeconds >= AGE_BUCKETS[i]!.fromSeconds) return i;
  return 0;
}
