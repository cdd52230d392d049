/**
 * The daemon's heartbeat: one lease per owner key, all renewed in a single
 * `renewLeases` call per tick. A lease the store reports expired, released or gone is
 * never revived: it is logged, counted, and a new lease (the next generation) is
 * acquired for its key in the same tick. Expiry is the store's judgement (SAFETY 15).
 */
import { performance } from 'node:perf_hooks';
import type { Lease, LeaseStore } from '../state/types.js';
import { errorText, type DaemonLog } from './log.js';
import type { DaemonMetrics } from './metrics.js';
import { jittered, settlesWithin } from './timing.js';

/** Keys acquired per store call (one transaction) while a tick acquires missing leases. */
const ACQUIRE_BATCH = 500;

export type HeartbeatStore = Pick<LeaseStore, 'acquireLeases' | 'renewLeases' | 'releaseLease'> & { now(): Promise<number> };

export interface HeartbeatOptions {
  store: HeartbeatStore;
  keys: readonly string[];
  ttlMs: number;
  intervalMs: number;
  holder: string;
  metrics: DaemonMetrics;
  log: DaemonLog;
  random?: () => number;
}

export class Heartbeat {
  /** The lease held for each key (absent while it has none). */
  private readonly held = new Map<string, Lease>();
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = false;
  private storeAnswered = false;
  private scheduledAt = 0;

  constructor(private readonly options: HeartbeatOptions) {}

  /** Acquire the first leases (the first tick), then keep renewing on schedule. */
  async start(): Promise<void> {
    await this.runTick();
    this.schedule();
  }

  /** The last tick reached the store and every key holds a lease. */
  get ready(): boolean {
    return !this.stopped && this.storeAnswered && this.held.size === this.options.keys.length;
  }

  get wanted(): number {
    return this.options.keys.length;
  }

  leases(): Lease[] {
    return [...this.held.values()];
  }

  /** Stop scheduling and wait (at most `timeoutMs`) for a tick in flight. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight && !(await settlesWithin(this.inFlight, timeoutMs))) {
      this.options.log.warn('heartbeat-still-running', { waitedMs: timeoutMs });
    }
  }

  /** Release every held lease (after stop), waiting at most `timeoutMs` for the store. */
  async releaseAll(timeoutMs: number): Promise<void> {
    const leases = this.leases();
    this.held.clear();
    this.options.metrics.leasesActive.set(0);
    const releasing = Promise.all(
      leases.map(async (lease) => {
        try {
          await this.options.store.releaseLease(lease.leaseId);
          this.options.log.info('lease-released', { key: lease.key, leaseId: lease.leaseId, generation: lease.generation });
        } catch (error) {
          this.options.log.error('release-failed', { key: lease.key, leaseId: lease.leaseId, error: errorText(error) });
        }
      }),
    );
    if (!(await settlesWithin(releasing, timeoutMs))) this.options.log.warn('release-timed-out', { leases: leases.length, waitedMs: timeoutMs });
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = jittered(this.options.intervalMs, this.options.random);
    this.scheduledAt = performance.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = null;
      const lagMs = Math.max(0, performance.now() - this.scheduledAt);
      this.options.metrics.heartbeatLag.set(lagMs / 1000);
      if (lagMs > this.options.intervalMs) this.options.log.warn('heartbeat-late', { lagMs: Math.round(lagMs) });
      void this.runTick().then(() => this.schedule());
    }, delay);
  }

  private runTick(): Promise<void> {
    const tick = this.tick()
      .catch((error: unknown) => this.options.log.error('heartbeat-failed', { error: errorText(error) }))
      .finally(() => {
        this.inFlight = null;
        this.options.metrics.leasesActive.set(this.held.size);
      });
    this.inFlight = tick;
    return tick;
  }

  private async tick(): Promise<void> {
    await this.renewHeld();
    if (!this.stopped) await this.acquireMissing();
  }

  private async renewHeld(): Promise<void> {
    const { store, metrics, log } = this.options;
    const leases = this.leases();
    if (leases.length === 0) {
      // Nothing to renew: ask the store its time, so readiness still means "the store answers".
      if (this.options.keys.length === 0) {
        try {
          await store.now();
          this.storeAnswered = true;
        } catch (error) {
          this.storeAnswered = false;
          log.error('store-unavailable', { error: errorText(error) });
        }
      }
      return;
    }
    const byId = new Map(leases.map((l) => [l.leaseId, l]));
    const endTimer = metrics.renewalDuration.startTimer();
    let outcomes;
    try {
      outcomes = await store.renewLeases([...byId.keys()], { ttlMs: this.options.ttlMs });
    } catch (error) {
      // The store did not answer: the leases may still be live; try again next tick.
      this.storeAnswered = false;
      metrics.renewals.inc({ outcome: 'failed' }, leases.length);
      log.error('renewal-failed', { leases: leases.length, error: errorText(error) });
      return;
    } finally {
      endTimer();
    }
    this.storeAnswered = true;
    let ok = 0;
    for (const outcome of outcomes) {
      const previous = byId.get(outcome.leaseId);
      if (!previous) continue;
      if (outcome.lease) {
        ok++;
        this.held.set(previous.key, outcome.lease);
        continue;
      }
      this.held.delete(previous.key);
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
    let renewedAt = performance.now();
    const missing = this.options.keys.filter((key) => !this.held.has(key));
    for (let at = 0; at < missing.length && !this.stopped; at += ACQUIRE_BATCH) {
      if (performance.now() - renewedAt >= this.options.intervalMs) {
        await this.renewHeld();
        renewedAt = performance.now();
        if (this.stopped) return;
      }
      const keys = missing.slice(at, at + ACQUIRE_BATCH);
      let acquired;
      try {
        acquired = await store.acquireLeases(keys, { holder: this.options.holder, ttlMs: this.options.ttlMs });
      } catch (error) {
        this.storeAnswered = false;
        log.error('acquire-failed', { keys: keys.length, firstKey: keys[0], error: errorText(error) });
        // The store is failing: the remaining keys wait for the next tick.
        return;
      }
      this.storeAnswered = true;
      for (const { token: _token, ...lease } of acquired) {
        this.held.set(lease.key, lease);
        log.info('lease-acquired', { key: lease.key, leaseId: lease.leaseId, generation: lease.generation, ttlMs: lease.ttlMs, expiresAt: new Date(lease.expiresAt).toISOString() });
      }
    }
  }
}
