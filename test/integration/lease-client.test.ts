/**
 * The Node library services use to keep their owner leases: LeaseKeeper over a state
 * store directly and over a reaper daemon through HttpLeaseClient, and HttpLeaseClient's
 * own mapping of the API's answers onto the library's errors.
 *
 * Stores come from `storeFactories`; the SQLite store runs everywhere, and the server
 * dialects join by adding a factory (each test gets a fresh store).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFailed, vi } from 'vitest';
import { HttpLeaseClient } from '../../src/client/http-lease-client.js';
import { LeaseKeeper, type KeeperStore, type LostReason } from '../../src/client/lease-keeper.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { BackendError, LeaseLostError, UsageError } from '../../src/errors.js';
import * as library from '../../src/index.js';
import { openStateStore } from '../../src/state/open.js';
import { describeWhere, itWhere } from '../support/matrix.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';
import type { AcquiredLease, StateStore } from '../../src/state/types.js';

const TOKEN = 'lease-client-test-token-0123456789';
const TEST_LEASE_BOUNDS = { minTtlMs: 100, maxTtlMs: 86_400_000 };

interface StoreFactory {
  name: string;
  available(): boolean;
  /** A fresh, empty store; `cleanups` run (last first) after the store is closed. */
  open(dir: string, cleanups: (() => Promise<void>)[]): Promise<StateStore>;
}

const storeFactories: StoreFactory[] = [
  {
    name: 'sqlite',
    available: () => true,
    open: (dir) => openStateStore(`sqlite:${path.join(dir, 'state.db')}`, { leaseBounds: TEST_LEASE_BOUNDS }),
  },
  {
    name: 'postgres',
    available: () => serviceAvailable('postgres'),
    open: async (_dir, cleanups) => openStateStore(await freshPgDatabase(cleanups), { leaseBounds: TEST_LEASE_BOUNDS }),
  },
  {
    name: 'mysql',
    available: () => serviceAvailable('mysql'),
    open: async (_dir, cleanups) => openStateStore(await freshMysqlDatabase(cleanups), { leaseBounds: TEST_LEASE_BOUNDS }),
  },
];

const WATCHED = ['Timeout', 'TCPServerWrap', 'TCPSocketWrap'];

function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

async function expectNoLeaks(before: Record<string, number>): Promise<void> {
  const excess = () => WATCHED.filter((t) => (handleCounts()[t] ?? 0) > (before[t] ?? 0));
  for (let i = 0; i < 40 && excess().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(excess().map((t) => `${t}: ${handleCounts()[t]} > ${before[t] ?? 0}`)).toEqual([]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The store, with renewals that fail `failures.count` times as an unreachable store would. */
function flaky(store: StateStore, failures: { count: number }): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if ((prop === 'renewLeases' || prop === 'renewLease') && typeof value === 'function') {
        return (...args: unknown[]) => {
          if (failures.count > 0) {
            failures.count--;
            return Promise.reject(new BackendError('state store: connection refused'));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

type Mode = 'store' | 'http';

for (const factory of storeFactories) {
  describe.skipIf(!factory.available())(`lease clients over ${factory.name}`, () => {
    /** What does not depend on the store (the HTTP layer, option checks) runs once, over the first store. */
    const primary = factory === storeFactories[0];
    const itOnce = itWhere(primary);
    const describeOnce = describeWhere(primary);
    let dir: string;
    let store: StateStore;
    const storeCleanups: (() => Promise<void>)[] = [];
    let before: Record<string, number>;
    const failures = { count: 0 };
    const cleanups: (() => Promise<void>)[] = [];

    beforeEach(async () => {
      before = handleCounts();
      dir = mkdtempSync(path.join(tmpdir(), 'reaper-lease-client-'));
      store = await factory.open(dir, storeCleanups);
      failures.count = 0;
      let failed = false;
      onTestFailed(() => {
        failed = true;
        console.error(`[lease client test] evidence kept in ${dir}`);
      });
      return async () => {
        if (!failed) rmSync(dir, { recursive: true, force: true });
      };
    });

    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
      await store.close();
      await runCleanups(storeCleanups);
      await expectNoLeaks(before);
    });

    async function daemonFor(backing: StateStore): Promise<Daemon> {
      const daemon = await startDaemon({ store: backing, holder: 'test-daemon', listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
      cleanups.push(() => daemon.stop());
      return daemon;
    }

    /** What a keeper talks to in each mode: the (flaky) store itself, or a daemon in front of it. */
    async function leasesFor(mode: Mode): Promise<KeeperStore | HttpLeaseClient> {
      const backing = flaky(store, failures);
      if (mode === 'store') return backing;
      return new HttpLeaseClient({ url: (await daemonFor(backing)).url, token: TOKEN });
    }

    function keeperWith(leases: KeeperStore | HttpLeaseClient, options: { ttlMs?: number; intervalMs?: number; onLost?: (lease: AcquiredLease, why: LostReason) => void } = {}) {
      const errors: unknown[] = [];
      // Short leases (a test's scale), yet long enough that a loaded CI machine does not miss
      // a keeper's own deadline (ttl − margin after the last confirmed renewal); and each
      // renewal gets the longest call deadline the contract allows (just under the interval).
      const ttlMs = options.ttlMs ?? 1_500;
      const callTimeoutMs = (options.intervalMs ?? Math.floor(ttlMs / 3)) - 10;
      const keeper = new LeaseKeeper({ leases, ttlMs, intervalMs: options.intervalMs, callTimeoutMs, holder: 'svc@test', onLost: options.onLost, onError: (e) => errors.push(e) });
      cleanups.push(() => keeper.stop());
      return { keeper, errors };
    }

    // Over the daemon, the store is behind the same HTTP layer: one store suffices.
    for (const mode of primary ? (['store', 'http'] as const) : (['store'] as const)) {
      describe(`LeaseKeeper over ${mode === 'store' ? 'the state store' : 'the daemon HTTP API'}`, () => {
        itOnce('keeps a lease alive across several ttl periods, renewing the same lease', async () => {
          const { keeper, errors } = keeperWith(await leasesFor(mode), { ttlMs: 1_500 });
          const renewed: AcquiredLease[] = [];
          keeper.on('renewed', (l) => renewed.push(l));
          const lease = await keeper.acquire('session:alive');
          expect(lease).toMatchObject({ key: 'session:alive', holder: 'svc@test', generation: 1 });
          expect(keeper.intervalMs).toBe(500);
          const until = Date.now() + 3_600;
          while (Date.now() < until) {
            expect(await store.liveKeys(['session:alive'])).toEqual(new Set(['session:alive']));
            await sleep(100);
          }
          expect(renewed.length).toBeGreaterThanOrEqual(5);
          expect(renewed.every((l) => l.leaseId === lease.leaseId)).toBe(true);
          expect(keeper.leases()[0]!.expiresAt).toBeGreaterThan(lease.expiresAt);
          expect(errors).toEqual([]);
        });

        it('fires onLost and the lost event when the lease is released externally, and does not revive it', async () => {
          const lost: [AcquiredLease, LostReason][] = [];
          const { keeper } = keeperWith(await leasesFor(mode), { onLost: (l, why) => lost.push([l, why]) });
          const events: LostReason[] = [];
          keeper.on('lost', (_l, why) => events.push(why));
          const lease = await keeper.acquire('session:victim');
          const other = await keeper.acquire('session:other');
          await store.releaseLease(lease.leaseId);

          await vi.waitFor(() => expect(lost).toHaveLength(1), { timeout: 3_000, interval: 25 });
          expect(lost[0]![0]).toMatchObject({ leaseId: lease.leaseId, key: 'session:victim' });
          expect(lost[0]![1]).toBe('released');
          expect(events).toEqual(['released']);
          expect(keeper.leases().map((l) => l.leaseId)).toEqual([other.leaseId]);
          await sleep(500);
          expect(await store.liveKeys(['session:victim', 'session:other'])).toEqual(new Set(['session:other']));
          expect(lost).toHaveLength(1);
        });

        it('rides out a failing renewal and reports it, then renews again', async () => {
          const { keeper, errors } = keeperWith(await leasesFor(mode), { ttlMs: 1_500 });
          const lease = await keeper.acquire('session:bumpy');
          failures.count = 1;
          await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 3_000, interval: 25 });
          expect(errors[0]).toBeInstanceOf(BackendError);
          const afterFailure = keeper.leases()[0]!.expiresAt;
          await vi.waitFor(() => expect(keeper.leases()[0]!.expiresAt).toBeGreaterThan(afterFailure), { timeout: 3_000, interval: 25 });
          expect(keeper.leases()[0]!.leaseId).toBe(lease.leaseId);
          expect(await store.liveKeys(['session:bumpy'])).toEqual(new Set(['session:bumpy']));
        });

        it('stop() is idempotent, releases what it keeps and leaves no timer; release() drops one lease', async () => {
          const { keeper } = keeperWith(await leasesFor(mode));
          const a = await keeper.acquire('session:a');
          const b = await keeper.acquire('session:b');
          await keeper.release(a);
          expect((await store.getLease(a.leaseId))!.releasedAt).not.toBeNull();
          expect(keeper.leases().map((l) => l.leaseId)).toEqual([b.leaseId]);

          const first = keeper.stop();
          expect(keeper.stop()).toBe(first);
          await first;
          expect(await store.liveKeys(['session:a', 'session:b'])).toEqual(new Set());
          expect((await store.getLease(b.leaseId))!.releasedAt).not.toBeNull();
          expect(keeper.leases()).toEqual([]);
          await expect(keeper.acquire('session:c')).rejects.toThrow(/stopped/);
          expect(await store.listLeases({ key: 'session:c', includeInactive: true })).toEqual([]);
        });

        it('stop({ release: false }) stops renewing and leaves the lease to expire by the store clock', async () => {
          const { keeper } = keeperWith(await leasesFor(mode), { ttlMs: 300 });
          const lease = await keeper.acquire('session:abandoned');
          await keeper.stop({ release: false });
          expect(await store.liveKeys(['session:abandoned'])).toEqual(new Set(['session:abandoned']));
          await vi.waitFor(async () => expect(await store.liveKeys(['session:abandoned'])).toEqual(new Set()), { timeout: 3_000, interval: 50 });
          expect((await store.getLease(lease.leaseId))!.releasedAt).toBeNull();
        });
      });
    }

    it('LeaseKeeper over the store renews all its leases in one renewLeases call per tick', async () => {
      const renewLeases = vi.spyOn(store, 'renewLeases');
      const { keeper } = keeperWith(store);
      const leases = await Promise.all(['k1', 'k2', 'k3'].map((k) => keeper.acquire(k)));
      await vi.waitFor(() => expect(renewLeases.mock.calls.length).toBeGreaterThanOrEqual(3), { timeout: 5_000, interval: 25 });
      const ids = leases.map((l) => l.leaseId).sort();
      for (const [called, options] of renewLeases.mock.calls) {
        expect([...called].sort()).toEqual(ids);
        expect(options).toMatchObject({ holder: 'svc@test' });
      }
      renewLeases.mockRestore();
    });

    itOnce('LeaseKeeper rejects an interval over a third of the ttl', () => {
      expect(() => new LeaseKeeper({ leases: store, ttlMs: 3_000, intervalMs: 1_001 })).toThrow(UsageError);
      expect(() => new LeaseKeeper({ leases: store, ttlMs: 0 })).toThrow(UsageError);
    });

    describeOnce('HttpLeaseClient', () => {
      itOnce('acquires, gets, lists, renews and releases through the daemon', async () => {
        const daemon = await daemonFor(store);
        const client = new HttpLeaseClient({ url: `${daemon.url}/`, token: TOKEN });
        expect(await client.ready()).toBe(true);
        const lease = await client.acquireLease({ key: 'job:1', ttlMs: 60_000, holder: 'worker-1' });
        expect(lease).toMatchObject({ key: 'job:1', holder: 'worker-1', generation: 1, ttlMs: 60_000, releasedAt: null });
        expect(lease.token).toEqual(expect.any(String));
        expect(await store.verifyLeaseToken(lease.leaseId, lease.token)).toBe(true);

        expect(await client.getLease(lease.leaseId)).toEqual((({ token: _t, ...rest }) => rest)(lease));
        expect(await client.getLease('00000000-0000-4000-8000-000000000000')).toBeNull();
        expect((await client.listLeases({ key: 'job:1' })).map((l) => l.leaseId)).toEqual([lease.leaseId]);

        const renewed = await client.renewLease(lease, { ttlMs: 120_000 });
        expect(renewed.ttlMs).toBe(120_000);
        expect(renewed.expiresAt).toBeGreaterThan(lease.expiresAt);

        await client.releaseLease(lease);
        expect(await client.listLeases({ key: 'job:1' })).toEqual([]);
        expect((await client.listLeases({ key: 'job:1', includeInactive: true }))[0]!.releasedAt).not.toBeNull();
        await client.releaseLease(lease);
      });

      itOnce('maps lost leases to LeaseLostError: expired (stays expired), released, not-holder, not-found', async () => {
        const daemon = await daemonFor(store);
        const client = new HttpLeaseClient({ url: daemon.url, token: TOKEN });
        const short = await client.acquireLease({ key: 'job:short', ttlMs: 200 });
        await vi.waitFor(async () => expect(await store.liveKeys(['job:short'])).toEqual(new Set()), { timeout: 3_000, interval: 50 });
        const expired = await store.getLease(short.leaseId);
        const late = await client.renewLease(short).catch((e: unknown) => e);
        expect(late).toBeInstanceOf(LeaseLostError);
        expect((late as LeaseLostError).why).toBe('expired');
        expect(await store.getLease(short.leaseId)).toEqual(expired);

        const a = await client.acquireLease({ key: 'job:a', ttlMs: 60_000 });
        const b = await client.acquireLease({ key: 'job:b', ttlMs: 60_000 });
        await expect(client.renewLease({ leaseId: a.leaseId, token: b.token })).rejects.toMatchObject({ why: 'not-holder' });
        await expect(client.releaseLease({ leaseId: a.leaseId, token: b.token })).rejects.toMatchObject({ why: 'not-holder' });
        expect(await store.liveKeys(['job:a'])).toEqual(new Set(['job:a']));
        await client.releaseLease(a);
        await expect(client.renewLease(a)).rejects.toMatchObject({ name: 'LeaseLostError', why: 'released' });
        await expect(client.renewLease({ leaseId: '00000000-0000-4000-8000-000000000000', token: b.token })).rejects.toMatchObject({ why: 'not-found' });
      });

      itOnce('reports a refused API token, a rejected request and an unreachable daemon clearly, without the token', async () => {
        const daemon = await daemonFor(store);
        const wrong = new HttpLeaseClient({ url: daemon.url, token: 'not-the-token-not-the-token' });
        const refused = await wrong.acquireLease({ key: 'k', ttlMs: 60_000 }).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(BackendError);
        expect(String((refused as Error).message)).toMatch(/refused the API token \(401\)/);

        const client = new HttpLeaseClient({ url: daemon.url, token: TOKEN });
        await expect(client.acquireLease({ key: '', ttlMs: 60_000 })).rejects.toBeInstanceOf(UsageError);

        const port = daemon.port;
        await daemon.stop();
        const gone = new HttpLeaseClient({ url: `http://127.0.0.1:${port}`, token: TOKEN, timeoutMs: 2_000 });
        const unreachable = await gone.acquireLease({ key: 'k', ttlMs: 60_000 }).catch((e: unknown) => e);
        expect(unreachable).toBeInstanceOf(BackendError);
        // Refused, or (when a pooled connection was closed under it) "other side closed".
        expect((unreachable as Error).message).toMatch(/^cannot reach the lease daemon at http:\/\/127\.0\.0\.1:\d+: (connect ECONNREFUSED|other side closed)/);
        expect((unreachable as Error).message).not.toContain(TOKEN);
        expect(() => new HttpLeaseClient({ url: 'ftp://x' })).toThrow(UsageError);
      });
    });
  });
}

describe('the package entry (src/index.ts)', () => {
  it('exports the library functions, error classes and lease clients', () => {
    for (const name of ['loadManifest', 'parseManifest', 'runAudit', 'runReap', 'runRestore', 'openStateStore', 'startDaemon', 'parseDuration'] as const) {
      expect(typeof library[name], name).toBe('function');
    }
    for (const name of ['LeaseKeeper', 'HttpLeaseClient', 'ReaperError', 'UsageError', 'ManifestError', 'BackendError', 'SafetyError', 'LeaseLostError', 'InterruptedError'] as const) {
      expect(typeof library[name], name).toBe('function');
    }
    expect(library.ExitCode.safety).toBe(4);
  });
});
