/**
 * LeaseKeeper: keeps a service's owner leases alive from inside the service.
 *
 *   const keeper = new LeaseKeeper({ leases: store, ttlMs: 30_000, onLost: (lease, why) => … });
 *   const lease = await keeper.acquire('session:42');
 *   …
 *   await keeper.stop();   // releases what it holds
 *
 * `leases` is either a state store (all held leases are renewed in one `renewLeases`
 * statement per tick) or an `HttpLeaseClient` talking to a reaper daemon (one renewal
 * request per lease, a few at a time). Renewals run every `intervalMs` (default and
 * maximum a third of the ttl, jittered ±10%). When a renewal reports the lease expired,
 * released, gone or held by someone else, the keeper drops it and reports it through
 * `onLost` and the `lost` event: the lease is never revived, and the service learns
 * that whatever it fenced with that lease's generation is no longer its own. A renewal
 * that fails for another reason (store or daemon unreachable) is reported through
 * `onError` and the `failed` event and tried again on the next tick; only the store's
 * clock decides whether the lease ran out meanwhile.
 *
 * The keeper's timer does not keep the process alive on its own.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { LeaseLostError, UsageError } from '../errors.js';
import { jittered, renewalInterval, settlesWithin } from '../daemon/timing.js';
import type { AcquiredLease, LeaseStore, RenewOutcome } from '../state/types.js';
import { mapLimit } from '../util/concurrency.js';
import { HttpLeaseClient } from './http-lease-client.js';

export type LostReason = LeaseLostError['why'];

/** The part of a state store a keeper uses. */
export type KeeperStore = Pick<LeaseStore, 'acquireLease' | 'renewLeases' | 'releaseLease'>;

export interface LeaseKeeperOptions {
  /** Where the leases live: a state store, or a daemon through an HttpLeaseClient. */
  leases: KeeperStore | HttpLeaseClient;
  ttlMs: number;
  /** Renewal interval: default and maximum ttl/3; each wait is jittered ±10%. */
  intervalMs?: number;
  /** Who holds the leases (default `pid-PID@HOST`). */
  holder?: string;
  /** A renewal reported the lease lost; it is no longer kept. */
  onLost?: (lease: AcquiredLease, why: LostReason) => void;
  /** A renewal or release failed for another reason; renewals are tried again next tick. */
  onError?: (error: unknown) => void;
  /** How long stop() waits for a renewal in flight and for releases (default 5 s). */
  stopTimeoutMs?: number;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

export interface LeaseKeeperEvents {
  lost: [lease: AcquiredLease, why: LostReason];
  renewed: [lease: AcquiredLease];
  failed: [error: unknown];
}

type Outcome = RenewOutcome & { error?: unknown };

interface Transport {
  acquire(input: { key: string; holder: string; ttlMs: number }): Promise<AcquiredLease>;
  renew(leases: readonly AcquiredLease[], ttlMs: number, holder: string): Promise<Outcome[]>;
  release(lease: AcquiredLease, holder: string): Promise<void>;
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
  readonly holder: string;
  private readonly transport: Transport;
  /** Held leases by id. */
  private readonly held = new Map<string, AcquiredLease>();
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: LeaseKeeperOptions) {
    super();
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) throw new UsageError('a LeaseKeeper needs a positive ttlMs');
    const interval = renewalInterval(options.ttlMs, options.intervalMs);
    if (typeof interval !== 'number') throw new UsageError(interval.error);
    this.ttlMs = options.ttlMs;
    this.intervalMs = interval;
    this.holder = options.holder ?? `pid-${process.pid}@${hostname()}`;
    this.transport = transportFor(options.leases);
  }

  /** Take a new lease on `key` and keep it alive until released, lost or stopped. */
  async acquire(key: string): Promise<AcquiredLease> {
    if (this.stopping) throw new UsageError('this LeaseKeeper was stopped');
    const lease = await this.transport.acquire({ key, holder: this.holder, ttlMs: this.ttlMs });
    if (this.stopping) {
      // stop() began while the lease was being taken: hand it back rather than leave it to expire.
      await this.transport.release(lease, this.holder).catch((error: unknown) => this.failed(error));
      throw new UsageError('this LeaseKeeper was stopped');
    }
    this.held.set(lease.leaseId, lease);
    this.schedule();
    return { ...lease };
  }

  /** Stop keeping a lease and release it. */
  async release(lease: string | { leaseId: string }): Promise<void> {
    const leaseId = typeof lease === 'string' ? lease : lease.leaseId;
    const held = this.held.get(leaseId);
    if (!held) return;
    this.held.delete(leaseId);
    await this.transport.release(held, this.holder);
  }

  /** The leases kept now, with their latest expiry. */
  leases(): AcquiredLease[] {
    return [...this.held.values()].map((l) => ({ ...l }));
  }

  /**
   * Stop renewing; wait (bounded) for a renewal in flight; release every kept lease
   * unless `release: false`. Idempotent: later calls return the first call's promise.
   */
  stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      const timeoutMs = this.options.stopTimeoutMs ?? 5_000;
      if (this.inFlight) await settlesWithin(this.inFlight, timeoutMs);
      const leases = [...this.held.values()];
      this.held.clear();
      if (options.release === false || leases.length === 0) return;
      const releasing = Promise.all(leases.map((lease) => this.transport.release(lease, this.holder).catch((error: unknown) => this.failed(error))));
      await settlesWithin(releasing, timeoutMs);
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

  private async tick(): Promise<void> {
    const current = [...this.held.values()];
    if (current.length === 0) return;
    let outcomes: Outcome[];
    try {
      outcomes = await this.transport.renew(current, this.ttlMs, this.holder);
    } catch (error) {
      this.failed(error);
      return;
    }
    for (const outcome of outcomes) {
      const kept = this.held.get(outcome.leaseId);
      // Released (or stopped) while the renewal was on its way: nothing to report.
      if (!kept || this.stopping) continue;
      if (outcome.lease) {
        const renewed = { ...outcome.lease, token: kept.token };
        this.held.set(outcome.leaseId, renewed);
        this.notify(() => this.emit('renewed', { ...renewed }));
      } else if (outcome.lost) {
        this.held.delete(outcome.leaseId);
        const why = outcome.lost;
        this.notify(() => this.options.onLost?.({ ...kept }, why));
        this.notify(() => this.emit('lost', { ...kept }, why));
      } else {
        this.failed(outcome.error);
      }
    }
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

