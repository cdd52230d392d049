/**
 * Which findings a short list shows when there are more than it holds: orphans, then
 * expired, unknown, protected, young; older first; then in the order they came. The terminal
 * table, the Markdown summary and the HTML report's table all list findings in this order, so
 * the few rows a person reads are the ones a leak gate is about. Pure: no I/O.
 */
import type { Status } from '../engine/types.js';
import type { FindingOutput } from './document.js';

export const STATUS_RANK: Readonly<Record<Status, number>> = { orphaned: 0, expired: 1, unknown: 2, protected: 3, young: 4, live: 5 };

/** a goes before b, by status, then age (unknown age last); a tie is left to the caller. */
export function findingBefore(a: { status: Status; ageSeconds: number | null }, b: { status: Status; ageSeconds: number | null }): boolean | null {
  const ra = STATUS_RANK[a.status];
  const rb = STATUS_RANK[b.status];
  if (ra !== rb) return ra < rb;
  const aa = a.ageSeconds ?? -1;
  const ab = b.ageSeconds ?? -1;
  if (aa !== ab) return aa > ab;
  return null;
}

/**
 * The `capacity` first items of a stream by `before`: a binary heap whose root is the item
 * that goes last, so each item offered costs O(log capacity) and memory stays bounded.
 */
export class TopK<T> {
  private readonly heap: T[] = [];
  constructor(
    private readonly capacity: number,
    private readonly before: (a: T, b: T) => boolean,
  ) {}

  offer(item: T): void {
    const heap = this.heap;
    if (heap.length < this.capacity) {
      heap.push(item);
      this.up(heap.length - 1);
    } else if (this.capacity > 0 && this.before(item, heap[0]!)) {
      heap[0] = item;
      this.down(0);
    }
  }

  /** The items kept, first first. */
  sorted(): T[] {
    return [...this.heap].sort((a, b) => (this.before(a, b) ? -1 : 1));
  }

  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(heap[parent]!, heap[i]!)) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    for (;;) {
      let last = i;
      for (const child of [2 * i + 1, 2 * i + 2]) {
        if (child < heap.length && this.before(heap[last]!, heap[child]!)) last = child;
      }
      if (last === i) return;
      [heap[last], heap[i]] = [heap[i]!, heap[last]!];
      i = last;
    }
  }
}

/** The `limit` most pressing findings of a stream, fed as they are found. */
export class TopFindings {
  private seq = 0;
  private readonly top: TopK<{ f: FindingOutput; seq: number }>;
  constructor(limit: number) {
    this.top = new TopK(limit, (a, b) => findingBefore(a.f, b.f) ?? a.seq < b.seq);
  }

  add(finding: FindingOutput): void {
    this.top.offer({ f: finding, seq: this.seq++ });
  }

  sorted(): FindingOutput[] {
    return this.top.sorted().map((x) => x.f);
  }

  /** The findings kept, in the order they came. */
  inOrder(): FindingOutput[] {
    return this.top
      .sorted()
      .sort((a, b) => a.seq - b.seq)
      .map((x) => x.f);
  }
}

/** The `limit` most pressing of a list of findings. */
export function topFindings(findings: readonly FindingOutput[], limit: number): FindingOutput[] {
  const top = new TopFindings(limit);
  for (const f of findings) top.add(f);
  return top.sorted();
}
