/**
 * The holder's own clock on its leases (docs/safety.md §20): for each lease, the moment
 * on the monotonic clock after which it no longer counts as held — the send time of its
 * last confirmed renewal plus its ttl, minus the safety margin. One timer waits for the
 * earliest; `check()` also runs on every read, so nobody reads a lease past its moment.
 * Shared by the daemon's heartbeat and the LeaseKeeper.
 */
import { performance } from 'node:perf_hooks';

export class LeaseDeadlines<K> {
  private readonly until = new Map<K, number>();
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
    this.until.set(key, sentAt + ttlMs - this.marginMs);
    this.check();
  }

  forget(key: K): void {
    this.until.delete(key);
    this.arm(performance.now());
  }

  /** Report every lease whose moment passed, and wait for the next. */
  check(): void {
    const now = performance.now();
    for (const [key, until] of [...this.until]) {
      if (until > now) continue;
      this.until.delete(key);
      this.onPassed(key);
    }
    this.arm(now);
  }

  /** No more timer; leases are still checked on reads. */
  stop(): void {
    this.stopped = true;
    this.arm(performance.now());
  }

  private arm(now: number): void {
    let next = Infinity;
    if (!this.stopped) for (const until of this.until.values()) next = Math.min(next, until);
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
}
