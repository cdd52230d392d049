/**
 * The daemon's heartbeat: one lease per owner key, all renewed in a single
 * `renewLeases` call per tick. A lease the store reports expired, released or gone is
 * never revived: it is logged, counted, and a new lease (the next generation) is
 * acquired for its key in the same tick. Expiry is the store's judgement (docs/safety.md
 * §15) — and the daemon never claims more than the store could grant: it counts a lease
 * held only until the send time of its last confirmed renewal plus the ttl, minus the
 * safety margin, by its own monotonic clock (§20). When that moment passes without a
 * confirmed renewal — the store refused, answered too late or not at all — the lease is
 * lost there and then: readiness, `leases_active` and `leases_lost_total` change at once,
 * and the key gets a new lease once the store answers again. Every store call has a
 * deadline shorter than the renewal interval (§19), so a hung call never holds up the
 * next tick.
 */
import { performance } from 'node:perf_hooks';
import type { AcquiredLease, Lease, LeaseStore } from '../state/types.js';
import { remainingMs, settlesWithin, withDeadline } from '../util/deadline.js';
import { LeaseDeadlines } from '../lease/deadlines.js';
import { errorText, type DaemonLog } from '../util/json-log.js';
import type { DaemonMetrics } from './metrics.js';
import { jittered } from '../lease/timing.js';
import { mapLimit } from '../util/concurrency.js';

/** Keys acquired per store call (one transaction) while a tick acquires missing leases. */
const ACQUIRE_BATCH = 500;
/**
 * Releases in flight at once on stop. A release is two statements on a server store; with
 * every lease's release started together, all the first statements queued for the pool
 * ahead of any second one, and on PostgreSQL 20,000 releases ended none within the bound.
 */
const RELEASE_CONCURRENCY = 8;

export type HeartbeatStore = Pick<LeaseStore, 'acquireLeases' | 'renewLeases' | 'releaseLease'> & { now(): Promise<number> };

export interface HeartbeatOptions {
  store: HeartbeatStore;
  keys: readonly string[];
  ttlMs: number;
  intervalMs: number;
  /** Deadline of each store call (shorter than the interval). */
  callTimeoutMs: number;
  /** A lease counts as held until its last confirmed send time + ttl − this. */
  marginMs: number;
  holder: string;
  metrics: DaemonMetrics;
  log: DaemonLog;
  random?: () => number;
}

export class Heartbeat {
  /** The lease held for each key (absent while it has none). */
  private readonly held = new Map<string, Lease>();
  /** When each key's lease stops counting as held, by the daemon's own clock. */
  private readonly deadlines: LeaseDeadlines<string>;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = false;
  private storeAnswered = false;
  private scheduledAt = 0;
  /** When the earliest heartbeat not yet confirmed by the store was due (null: none is overdue). */
  private overdueSince: number | null = null;
  /** How late the last tick started against its schedule. */
  private lastLatenessMs = 0;
  /** When the last renewal round began (performance.now()): the next is due an interval after it. */
  private renewedAt = 0;

  constructor(private readonly options: HeartbeatOptions) {
    this.deadlines = new LeaseDeadlines(options.marginMs, (key) => this.passed(key));
  }

  /** Acquire the first leases (the first tick), then keep renewing on schedule. */
  async start(): Promise<void> {
    await this.runTick();
    this.schedule();
  }

  /** The last tick reached the store and every key holds a lease that has not passed its deadline. */
  get ready(): boolean {
    this.deadlines.check();
    return !this.stopped && this.storeAnswered && this.held.size === this.options.keys.length;
  }

  get wanted(): number {
    return this.options.keys.length;
  }

  /** The leases held now: confirmed, and not past their deadline. */
  leases(): Lease[] {
    this.deadlines.check();
    return [...this.held.values()];
  }

  /**
   * How far behind the heartbeat is, in seconds: how long ago the earliest heartbeat not
   * yet confirmed by the store was due (it grows while the store refuses or hangs), or,
   * when none is overdue, how late the last tick started.
   */
  lagSeconds(): number {
    const overdue = this.overdueSince === null ? 0 : performance.now() - this.overdueSince;
    return Math.max(this.lastLatenessMs, overdue, 0) / 1000;
  }

  /** Stop scheduling and wait (at most `timeoutMs`) for a tick in flight. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.deadlines.stop();
    if (this.inFlight && !(await settlesWithin(this.inFlight, timeoutMs))) {
      this.options.log.warn('heartbeat-still-running', { waitedMs: timeoutMs });
    }
  }

  /** Release every lease still held (after stop), waiting at most `timeoutMs` for the store. */
  async releaseAll(timeoutMs: number): Promise<void> {
    const leases = this.leases();
    for (const lease of leases) this.drop(lease.key);
    const deadline = performance.now() + timeoutMs;
    let notTried = 0;
    const releasing = mapLimit(leases, RELEASE_CONCURRENCY, async (lease) => {
      const left = remainingMs(deadline);
      // Out of time: the rest run out by their ttl.
      if (left === 0) return void notTried++;
      try {
        await this.call(this.options.store.releaseLease(lease.leaseId), 'releasing a lease', Math.min(this.options.callTimeoutMs, left));
        this.options.log.info('lease-released', { key: lease.key, leaseId: lease.leaseId, generation: lease.generation });
      } catch (error) {
        this.options.log.error('release-failed', { key: lease.key, leaseId: lease.leaseId, error: errorText(error) });
      }
    });
    if (!(await settlesWithin(releasing, timeoutMs)) || notTried > 0) {
      this.options.log.warn('release-timed-out', { leases: leases.length, notTried, waitedMs: timeoutMs, message: 'the leases not released run out by their ttl' });
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    // An interval after the last renewal began, not after the tick ended: a tick that acquired
    // for long (renewing meanwhile) does not stretch the gap between two renewals.
    const delay = Math.max(0, jittered(this.options.intervalMs, this.options.random) - (performance.now() - this.renewedAt));
    this.scheduledAt = performance.now() + delay;
    this.overdueSince ??= this.scheduledAt;
    this.timer = setTimeout(() => {
      this.timer = null;
      const lagMs = Math.max(0, performance.now() - this.scheduledAt);
      this.lastLatenessMs = lagMs;
      if (lagMs > this.options.intervalMs) this.options.log.warn('heartbeat-late', { lagMs: Math.round(lagMs) });
      void this.runTick().then(() => this.schedule());
    }, delay);
  }

  private runTick(): Promise<void> {
    const tick = this.tick()
      .catch((error: unknown) => this.options.log.error('heartbeat-failed', { error: errorText(error) }))
      .finally(() => {
        this.inFlight = null;
      });
    this.inFlight = tick;
    return tick;
  }

  private async tick(): Promise<void> {
    await this.renewHeld();
    if (!this.stopped) await this.acquireMissing();
  }

  /** A store call with the heartbeat's deadline; `onLate` gets the value of a call that succeeded after it. */
  private call<T>(promise: Promise<T>, what: string, timeoutMs = this.options.callTimeoutMs, onLate?: (value: T) => void): Promise<T> {
    return withDeadline(promise, Math.max(1, timeoutMs), what, onLate);
  }

  /** The store confirmed a heartbeat: nothing is overdue. */
  private confirmed(): void {
    this.storeAnswered = true;
    this.overdueSince = null;
  }

  private hold(lease: Lease, sentAt: number): void {
    this.held.set(lease.key, lease);
    this.deadlines.confirm(lease.key, sentAt, lease.ttlMs);
  }

  private drop(key: string): void {
    this.held.delete(key);
    this.deadlines.forget(key);
  }

  /** A lease's deadline passed without a confirmed renewal: it is lost here and now. */
  private passed(key: string): void {
    const lease = this.held.get(key);
    if (!lease) return;
    this.held.delete(key);
    this.options.metrics.leasesLost.inc();
    this.options.log.warn('lease-lost', {
      key,
      leaseId: lease.leaseId,
      generation: lease.generation,
      why: 'deadline',
      message: `no renewal confirmed within the ttl minus the ${this.options.marginMs} ms margin; the store may let it expire any moment`,
    });
  }

  private async renewHeld(): Promise<void> {
    const { store, metrics, log } = this.options;
    this.renewedAt = performance.now();
    const leases = this.leases();
    if (leases.length === 0) {
      // Nothing to renew: ask the store its time, so readiness still means "the store answers".
      if (this.options.keys.length === 0) {
        try {
          await this.call(store.now(), 'reading the store clock');
          this.confirmed();
        } catch (error) {
          this.storeAnswered = false;
          log.error('store-unavailable', { error: errorText(error) });
        }
      }
      return;
    }
    const endTimer = metrics.renewalDuration.startTimer();
    const sentAt = performance.now();
    let outcomes;
    try {
      outcomes = await this.call(store.renewLeases(leases.map((l) => l.leaseId), { ttlMs: this.options.ttlMs }), 'renewing leases');
    } catch (error) {
      // No answer, or a refusal: the leases count as held until their deadline, and are tried again next tick.
      this.storeAnswered = false;
      metrics.renewals.inc({ outcome: 'failed' }, leases.length);
      log.error('renewal-failed', { leases: leases.length, error: errorText(error) });
      return;
    } finally {
      endTimer();
    }
    this.confirmed();
    const keyOf = new Map(leases.map((l) => [l.leaseId, l.key]));
    let ok = 0;
    for (const outcome of outcomes) {
      const previous = this.held.get(keyOf.get(outcome.leaseId) ?? '');
      // Lost by its deadline while the call was under way: it stays lost.
      if (!previous || previous.leaseId !== outcome.leaseId) continue;
      if (outcome.lease) {
        ok++;
        this.hold(outcome.lease, sentAt);
        continue;
      }
      this.drop(previous.key);
      metrics.leasesLost.inc();
      log.warn('lease-lost', { key: previous.key, leaseId: previous.leaseId, generation: previous.generation, why: outcome.lost ?? 'unknown' });
    }
    metrics.renewals.inc({ outcome: 'ok' }, ok);
    metrics.renewals.inc({ outcome: 'failed' }, leases.length - ok);
  }

  private async acquireMissing(): Promise<void> {
    const { store, log } = this.options;
    // Keys are acquired ACQUIRE_BATCH at a time, one transaction each. A round can still be
    // long (a slow store, many keys): the leases taken early in it are renewed on the
    // heartbeat's own schedule meanwhile, so a start that takes longer than the ttl does
    // not lose its first leases.
    const missing = this.options.keys.filter((key) => !this.held.has(key));
    for (let at = 0; at < missing.length && !this.stopped; at += ACQUIRE_BATCH) {
      if (performance.now() - this.renewedAt >= this.options.intervalMs) {
        await this.renewHeld();
        if (this.stopped) return;
      }
      const keys = missing.slice(at, at + ACQUIRE_BATCH);
      const sentAt = performance.now();
      let acquired: AcquiredLease[];
      try {
        acquired = await this.call(store.acquireLeases(keys, { holder: this.options.holder, ttlMs: this.options.ttlMs }), 'acquiring leases', undefined, (late) =>
          // Taken after the deadline, with nobody holding them: hand them back.
          this.releaseLate(late),
        );
      } catch (error) {
        this.storeAnswered = false;
        log.error('acquire-failed', { keys: keys.length, firstKey: keys[0], error: errorText(error) });
        // The store is failing: the remaining keys wait for the next tick.
        return;
      }
      this.confirmed();
      for (const { token: _token, ...lease } of acquired) {
        this.hold(lease, sentAt);
        log.info('lease-acquired', { key: lease.key, leaseId: lease.leaseId, generation: lease.generation, ttlMs: lease.ttlMs, expiresAt: new Date(lease.expiresAt).toISOString() });
      }
    }
  }

  private releaseLate(leases: readonly Lease[]): void {
    for (const lease of leases) {
      this.options.store.releaseLease(lease.leaseId).then(
        () => this.options.log.info('late-lease-released', { key: lease.key, leaseId: lease.leaseId, generation: lease.generation }),
        () => undefined,
      );
    }
  }
}
