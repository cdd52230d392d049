/**
 * Group commit for renewals over the HTTP API. Each HTTP renewal used to be its own
 * `renewLease` call: its own transaction and, on SQLite, its own fsync. Here renewals
 * that arrive while a `renewLeases` call is in flight queue up and go together in the
 * next call, so a burst of clients costs one statement per round trip instead of one
 * per client. A call starts on the event loop's next turn after the first renewal is
 * queued (setImmediate), so the renewals read from the sockets in the same turn join
 * it; that matters on SQLite, whose calls run synchronously and would otherwise end
 * before the next request is even parsed. A lone renewal waits for nothing else.
 *
 * Each renewal still gets its own answer: the renewed lease, or LeaseLostError with the
 * reason the store gave for that id. A failed call (the store unreachable) fails every
 * renewal in it; none of them is retried behind the caller's back.
 */
import { LeaseLostError } from '../errors.js';
import type { Lease, LeaseStore } from '../state/types.js';

interface Pending {
  leaseId: string;
  ttlMs: number | undefined;
  resolve(lease: Lease): void;
  reject(error: unknown): void;
}

export class RenewBatcher {
  private queue: Pending[] = [];
  private inFlight = false;
  private scheduled = false;

  constructor(
    private readonly store: Pick<LeaseStore, 'renewLeases'>,
    /** Most renewals one call carries; the rest wait for the next. */
    private readonly maxBatch = 2_000,
  ) {}

  /** Renew one lease, in whichever call comes next; resolves to it renewed, or rejects. */
  renew(leaseId: string, ttlMs?: number): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      this.queue.push({ leaseId, ttlMs, resolve, reject });
      if (this.inFlight || this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.pump();
      });
    });
  }

  /** Renewals queued behind the call in flight (for tests and metrics). */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    if (this.inFlight || this.queue.length === 0) return;
    // One call renews with one ttl: take the renewals that ask for the first one's ttl
    // (the common case is that all ask for the same, or for the lease's own).
    const ttlMs = this.queue[0]!.ttlMs;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    for (const item of this.queue) (item.ttlMs === ttlMs && batch.length < this.maxBatch ? batch : rest).push(item);
    this.queue = rest;
    this.inFlight = true;
    this.store
      .renewLeases(
        batch.map((item) => item.leaseId),
        ttlMs === undefined ? {} : { ttlMs },
      )
      .then(
        (outcomes) =>
          batch.forEach((item, i) => {
            const outcome = outcomes[i];
            if (outcome?.lease) item.resolve(outcome.lease);
            else item.reject(new LeaseLostError(item.leaseId, outcome?.lost ?? 'not-found'));
          }),
        (error: unknown) => batch.forEach((item) => item.reject(error)),
      )
      .finally(() => {
        this.inFlight = false;
        this.pump();
      });
  }
}
