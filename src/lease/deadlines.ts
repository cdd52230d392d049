/**
 * The holder's own clock on its leases (docs/safety.md §20): for each lease, the moment
 * on the monotonic clock after which it no longer counts as held — the send time of its
 * last confirmed renewal plus its ttl, minus the safety margin. One timer waits for the
 * earliest; `check()` also runs on every read, so nobody reads a lease past its moment.
 * Shared by the daemon's heartbeat and the LeaseKeeper.
 *
 * The moments sit in a min-heap as well as a map, so confirming one lease costs
 * O(log n) however many are held: a daemon confirms every lease once per renewal round,
 * and a scan of all moments per confirmation (quadratic per round) blocked the event
 * loop for seconds at a few thousand keys, long enough for the renewals themselves to
 * fall behind (README, "during a long start the leases already held keep being renewed"). A heap entry whose moment is no longer the
 * key's (renewed since, or forgotten) is stale and dropped when it reaches the top.
 */
import { performance } from 'node:perf_hooks';

interface Entry<K> {
  key: K;
  until: number;
}

export class LeaseDeadlines<K> {
  private readonly until = new Map<K, number>();
  /** Min-heap on `until`; may hold stale entries (see above). */
  private readonly heap: Entry<K>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private stopped = false;

  constructor(
    private readonly marginMs: number,
    /** Called once for each lease whose moment passed (it is forgotten first). */
    private readonly onPassed: (key: K) => void,
  ) {}

  /** A renewal (or acquisition) sent at `sentAt` (performance.now()) was confirmed with this ttl. */
  confirm(key: K, sentAt: number, ttlMs: number): void {
    const until = sentAt + ttlMs - this.marginMs;
    this.until.set(key, until);
    this.push({ key, until });
    this.check();
  }

  forget(key: K): void {
    this.until.delete(key);
    this.arm(performance.now());
  }

  /** Report every lease whose moment passed, and wait for the next. */
  check(): void {
    const now = performance.now();
    for (let top = this.heap[0]; top !== undefined && top.until <= now; top = this.heap[0]) {
      this.pop();
      if (this.until.get(top.key) !== top.until) continue; // stale
      this.until.delete(top.key);
      this.onPassed(top.key);
    }
    this.arm(now);
  }

  /** No more timer; leases are still checked on reads. */
  stop(): void {
    this.stopped = true;
    this.arm(performance.now());
  }

  /** The earliest moment still current (stale entries on top are dropped on the way). */
  private earliest(): number {
    for (let top = this.heap[0]; top !== undefined; top = this.heap[0]) {
      if (this.until.get(top.key) === top.until) return top.until;
      this.pop();
    }
    return Infinity;
  }

  private arm(now: number): void {
    const next = this.stopped ? Infinity : this.earliest();
    if (this.timer && next === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        this.check();
      },
      Math.max(0, Math.ceil(next - now)),
    );
    // The owner's own work keeps the process alive, never this timer.
    this.timer.unref();
  }

  private push(entry: Entry<K>): void {
    const heap = this.heap;
    let i = heap.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.until <= entry.until) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.until < heap[left]!.until ? right : left;
      if (heap[child]!.until >= last.until) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}
