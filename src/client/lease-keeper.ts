/**
 * LeaseKeeper: keeps a service's owner leases alive from inside the service.
 *
 *   const keeper = new LeaseKeeper({ leases: store, ttlMs: 30_000, onLost: (lease, why) => … });
 *   const lease = await keeper.acquire('session:42');
 *   await uploadParts(parts, { signal: lease.signal });   // aborted the moment the lease is lost
 *   …
 *   await keeper.stop();   // releases what it holds
 *
 * `leases` is either a state store (all held leases are renewed in one `renewLeases`
 * statement per tick) or an `HttpLeaseClient` talking to a reaper daemon (one renewal
 * request per lease, a few at a time). Renewals run every `intervalMs` (default and
 * maximum a third of the ttl, jittered ±10%); each renewal call gives up after
 * `callTimeoutMs` (default half the interval, at most 10 s), so a store that hangs never
 * holds up the next renewal; an acquisition gives up once its lease would be past its
 * deadline on arrival (the ttl minus the margin), a release after `stopTimeoutMs`.
 *
 * The keeper judges its leases by its own monotonic clock (docs/safety.md §20): a lease
 * counts as kept only until the send time of its last confirmed renewal plus the ttl,
 * minus `safetyMarginMs` (default a tenth of the ttl). The store stamps a renewal no
 * earlier than it was sent, so that moment comes before any reaper can see the lease
 * expired, whether the store answers, refuses or hangs. When it passes — or a renewal
 * reports the lease expired, released, gone or held by someone else — the keeper drops
 * the lease and tells its owner at once, three ways: the lease's `signal` aborts (its
 * reason a LeaseLostError with `why`), `onLost` is called and the `lost` event fires. The
 * lease is never revived: whatever the service fenced with its generation is no longer
 * its own; it may acquire the key again (a new lease, the next generation). A renewal
 * that fails for another reason is reported through `onError` and the `failed` event and
 * tried again on the next tick, while the deadline still allows.
 *
 * The keeper's timers do not keep the process alive on their own.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BackendError, LeaseLostError, UsageError } from '../errors.js';
import { LeaseDeadlines } from '../lease/deadlines.js';
import { callTimeout, jittered, renewalInterval, safetyMargin } from '../lease/timing.js';
import type { AcquiredLease, Lease, LeaseStore } from '../state/types.js';
import { mapLimit } from '../util/concurrency.js';
import { DeadlineError, remainingMs, settlesWithin, withDeadline } from '../util/deadline.js';
import { HttpLeaseClient } from './http-lease-client.js';

/** Why a kept lease was lost: what the store said, or `deadline` (no renewal confirmed in time). */
export type LostReason = LeaseLostError['why'];

/** The part of a state store a keeper uses. */
export type KeeperStore = Pick<LeaseStore, 'acquireLease' | 'renewLeases' | 'releaseLease'>;

/** A lease the keeper keeps: the lease, and a signal that aborts the moment it stops protecting anything. */
export interface KeptLease extends AcquiredLease {
  /**
   * Aborted when the lease is lost (reason: a LeaseLostError with `why`), released
   * (`why: 'released'`), or when the keeper stops. Hand it to the work the lease protects.
   */
  readonly signal: AbortSignal;
}

export interface LeaseKeeperOptions {
  /** Where the leases live: a state store, or a daemon through an HttpLeaseClient. */
  leases: KeeperStore | HttpLeaseClient;
  ttlMs: number;
  /** Renewal interval: default and maximum ttl/3; each wait is jittered ±10%. */
  intervalMs?: number;
  /** Deadline of each renewal call: default half the interval, at most 10 s; shorter than the interval. (An acquisition waits at most the ttl minus the margin, a release `stopTimeoutMs`.) */
  callTimeoutMs?: number;
  /** A lease counts as kept until its last confirmed send time + ttl − this (default ttl/10). */
  safetyMarginMs?: number;
  /** Who holds the leases (default `pid-PID@HOST`). */
  holder?: string;
  /** A lease was lost (see LostReason); it is no longer kept. */
  onLost?: (lease: KeptLease, why: LostReason) => void;
  /** A renewal or release failed for another reason; renewals are tried again next tick. */
  onError?: (error: unknown) => void;
  /** The most stop() takes, a renewal in flight and the releases together; also a release()'s deadline (default 5 s). */
  stopTimeoutMs?: number;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

export interface LeaseKeeperEvents {
  lost: [lease: KeptLease, why: LostReason];
  renewed: [lease: KeptLease];
  failed: [error: unknown];
}

interface Outcome {
  leaseId: string;
  lease?: Lease;
  lost?: LostReason;
  error?: unknown;
}

interface Transport {
  acquire(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease>;
  renew(leases: readonly AcquiredLease[], ttlMs: number, holder: string): Promise<Outcome[]>;
  release(lease: AcquiredLease, holder: string): Promise<void>;
}

interface Kept {
  lease: AcquiredLease;
  controller: AbortController;
}

/** HTTP renewals in flight at once. */
const HTTP_RENEW_CONCURRENCY = 8;

function transportFor(leases: KeeperStore | HttpLeaseClient): Transport {
  if (leases instanceof HttpLeaseClient) {
    return {
      acquire: (input) => leases.acquireLease(input),
      renew: (held, ttlMs) =>
        mapLimit(held, HTTP_RENEW_CONCURRENCY, async (lease): Promise<Outcome> => {
          try {
            return { leaseId: lease.leaseId, lease: await leases.renewLease(lease, { ttlMs }) };
          } catch (error) {
            if (error instanceof LeaseLostError) return { leaseId: lease.leaseId, lost: error.why };
            return { leaseId: lease.leaseId, error };
          }
        }),
      release: (lease) => leases.releaseLease(lease),
    };
  }
  return {
    acquire: (input) => leases.acquireLease(input),
    renew: (held, ttlMs, holder) =>
      leases.renewLeases(
        held.map((l) => l.leaseId),
        { ttlMs, holder },
      ),
    release: (lease, holder) => leases.releaseLease(lease.leaseId, { holder }),
  };
}

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  readonly ttlMs: number;
  readonly intervalMs: number;
  readonly callTimeoutMs: number;
  readonly safetyMarginMs: number;
  readonly stopTimeoutMs: number;
  readonly holder: string;
  private readonly transport: Transport;
  /** Kept leases by id. */
  private readonly held = new Map<string, Kept>();
  private readonly deadlines: LeaseDeadlines<string>;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: LeaseKeeperOptions) {
    super();
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) throw new UsageError('a LeaseKeeper needs a positive ttlMs');
    const interval = renewalInterval(options.ttlMs, options.intervalMs);
    if (typeof interval !== 'number') throw new UsageError(interval.error);
    const timeout = callTimeout(interval, options.callTimeoutMs);
    if (typeof timeout !== 'number') throw new UsageError(timeout.error);
    const margin = safetyMargin(options.ttlMs, interval, options.safetyMarginMs);
    if (typeof margin !== 'number') throw new UsageError(margin.error);
    this.ttlMs = options.ttlMs;
    this.intervalMs = interval;
    this.callTimeoutMs = timeout;
    this.safetyMarginMs = margin;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
    this.holder = options.holder ?? `pid-${process.pid}@${hostname()}`;
    this.transport = transportFor(options.leases);
    this.deadlines = new LeaseDeadlines(margin, (leaseId) => this.lose(leaseId, 'deadline'));
  }

  /** Take a new lease on `key` and keep it alive until released, lost or stopped. */
  async acquire(key: string): Promise<KeptLease> {
    if (this.stopping) throw new UsageError('this LeaseKeeper was stopped');
    const sentAt = performance.now();
    // An acquisition answered later than the ttl minus the margin would be past its deadline on arrival.
    const lease = await this.call(
      this.transport.acquire({ key, holder: this.holder, ttlMs: this.ttlMs }),
      'acquiring a lease',
      (late) =>
        // Taken after the deadline, with nobody keeping it: hand it back.
        this.transport.release(late, this.holder).catch(() => undefined),
      this.ttlMs - this.safetyMarginMs,
    );
    if (this.stopping) {
      // stop() began while the lease was being taken: hand it back rather than leave it to expire.
      await this.transport.release(lease, this.holder).catch((error: unknown) => this.failed(error));
      throw new UsageError('this LeaseKeeper was stopped');
    }
    const kept: Kept = { lease, controller: new AbortController() };
    this.held.set(lease.leaseId, kept);
    this.deadlines.confirm(lease.leaseId, sentAt, lease.ttlMs);
    this.schedule();
    return view(kept);
  }

  /** Stop keeping a lease and release it (its signal aborts with `why: 'released'`). */
  async release(lease: string | { leaseId: string }): Promise<void> {
    const leaseId = typeof lease === 'string' ? lease : lease.leaseId;
    const kept = this.drop(leaseId, new LeaseLostError(leaseId, 'released'));
    if (!kept) return;
    await this.call(this.transport.release(kept.lease, this.holder), 'releasing a lease', undefined, this.stopTimeoutMs);
  }

  /** The leases kept now (confirmed, and not past their deadline), with their latest expiry. */
  leases(): KeptLease[] {
    this.deadlines.check();
    return [...this.held.values()].map(view);
  }

  /**
   * Stop renewing; wait for a renewal in flight; release every kept lease unless
   * `release: false` — all within `stopTimeoutMs`, whatever the store does. Every kept
   * lease's signal aborts. Idempotent: later calls return the first call's promise.
   */
  stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      const deadline = performance.now() + this.stopTimeoutMs;
      if (this.inFlight) await settlesWithin(this.inFlight, remainingMs(deadline));
      this.deadlines.check();
      this.deadlines.stop();
      const release = options.release !== false;
      const leases = [...this.held.keys()].map((id) => this.drop(id, release ? new LeaseLostError(id, 'released') : new Error('the LeaseKeeper stopped; the lease is no longer renewed'))!);
      if (!release || leases.length === 0) return;
      const releasing = Promise.all(
        leases.map((kept) =>
          this.call(this.transport.release(kept.lease, this.holder), 'releasing a lease', undefined, remainingMs(deadline)).catch((error: unknown) => this.failed(error)),
        ),
      );
      await settlesWithin(releasing, remainingMs(deadline));
    })();
    return this.stopping;
  }

  private schedule(): void {
    if (this.timer || this.stopping || this.held.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inFlight = this.tick()
        .catch((error: unknown) => this.failed(error))
        .finally(() => {
          this.inFlight = null;
          this.schedule();
        });
    }, jittered(this.intervalMs, this.options.random));
    this.timer.unref();
  }

  /**
   * A call with a deadline (a missed one is a BackendError): renewals `callTimeoutMs`,
   * acquisitions the ttl minus the margin, releases `stopTimeoutMs`. `onLate` gets the
   * value of a call that succeeded after its deadline.
   */
  private call<T>(promise: Promise<T>, what: string, onLate?: (value: T) => void, timeoutMs = this.callTimeoutMs): Promise<T> {
    return withDeadline(promise, Math.max(1, timeoutMs), what, onLate).catch((error: unknown) => {
      throw error instanceof DeadlineError ? new BackendError(error.message, { cause: error }) : error;
    });
  }

  private async tick(): Promise<void> {
    const current = this.leases();
    if (current.length === 0) return;
    const sentAt = performance.now();
    let outcomes: Outcome[];
    try {
      outcomes = await this.call(this.transport.renew(current, this.ttlMs, this.holder), 'renewing leases');
    } catch (error) {
      this.failed(error);
      return;
    }
    for (const outcome of outcomes) {
      const kept = this.held.get(outcome.leaseId);
      // Released, lost by its deadline, or stopped while the renewal was on its way: nothing to report.
      if (!kept || this.stopping) continue;
      if (outcome.lease) {
        kept.lease = { ...outcome.lease, token: kept.lease.token };
        this.deadlines.confirm(outcome.leaseId, sentAt, outcome.lease.ttlMs);
        if (this.held.has(outcome.leaseId)) this.notify(() => this.emit('renewed', view(kept)));
      } else if (outcome.lost) {
        this.lose(outcome.leaseId, outcome.lost);
      } else {
        this.failed(outcome.error);
      }
    }
  }

  /** Forget a kept lease and abort its signal with `reason`; returns it, if it was kept. */
  private drop(leaseId: string, reason: Error): Kept | undefined {
    const kept = this.held.get(leaseId);
    if (!kept) return undefined;
    this.held.delete(leaseId);
    this.deadlines.forget(leaseId);
    kept.controller.abort(reason);
    return kept;
  }

  private lose(leaseId: string, why: LostReason): void {
    const kept = this.drop(leaseId, new LeaseLostError(leaseId, why));
    if (!kept) return;
    const lease = view(kept);
    this.notify(() => this.options.onLost?.(lease, why));
    this.notify(() => this.emit('lost', lease, why));
  }

  private failed(error: unknown): void {
    this.notify(() => this.options.onError?.(error), false);
    this.notify(() => this.emit('failed', error), false);
  }

  /** Run a listener; one that throws is reported as a failure, never crashes the timer. */
  private notify(call: () => unknown, report = true): void {
    try {
      call();
    } catch (error) {
      if (report) this.failed(error);
    }
  }
}

function view(kept: Kept): KeptLease {
  return { ...kept.lease, signal: kept.controller.signal };
}
