/**
 * Split points for `shard.splitPoints` (docs/scale-out.md) from keys streamed in the order the
 * shards compare them: the last key of each of M equal-count ranges but the last. A key equal to
 * a split point belongs to the range it ends, so the points are the ranges' upper bounds.
 *
 * Keys may be far too many to hold (a bucket of a billion objects), so they are sampled by
 * position as they stream: every `stride`-th key is kept, and when the sample outgrows its cap
 * every other kept key is dropped and the stride doubles. What is kept is always the keys at
 * positions stride−1, 2·stride−1, …, so a point lands at most about stride/2 positions from its
 * exact place: below n/cap, and the cap is at least 8,192 (8 per range asked for).
 */

/** As many ranges as a manifest takes split points (4,095) plus one. */
export const MAX_RANGES = 4096;

export class PositionSample {
  private kept: string[] = [];
  private stride = 1;
  private seen = 0;
  private last: string | undefined;
  private readonly cap: number;

  constructor(ranges: number) {
    if (!Number.isInteger(ranges) || ranges < 1 || ranges > MAX_RANGES) throw new RangeError(`ranges: 1 to ${MAX_RANGES}, got ${ranges}`);
    this.cap = 8 * Math.max(1024, ranges);
  }

  add(key: string): void {
    this.seen++;
    this.last = key;
    if (this.seen % this.stride !== 0) return;
    this.kept.push(key);
    if (this.kept.length > this.cap) {
      // Keep positions 2·stride−1, 4·stride−1, …: the odd indexes of the sample.
      this.kept = this.kept.filter((_, j) => j % 2 === 1);
      this.stride *= 2;
    }
  }

  /** How many keys went by. */
  get count(): number {
    return this.seen;
  }

  /** How many keys are held now (at most the cap). */
  get held(): number {
    return this.kept.length;
  }

  /**
   * The upper bounds of `ranges` equal-count ranges, all but the last, ascending and distinct;
   * fewer when there are fewer keys than ranges (an empty type has none). The last key is never
   * a point: the range after it would be empty.
   */
  points(ranges: number): string[] {
    if (!Number.isInteger(ranges) || ranges < 1 || ranges > MAX_RANGES) throw new RangeError(`ranges: 1 to ${MAX_RANGES}, got ${ranges}`);
    const out: string[] = [];
    for (let k = 1; k < ranges; k++) {
      // Range k ends at 0-based position ceil(k·n/M) − 1; the kept key nearest it.
      const position = Math.ceil((k * this.seen) / ranges) - 1;
      if (position < 0) continue;
      const j = Math.min(this.kept.length - 1, Math.max(0, Math.round((position + 1) / this.stride) - 1));
      const key = this.kept[j];
      if (key !== undefined && key !== out.at(-1) && key !== this.last) out.push(key);
    }
    return out;
  }
}
