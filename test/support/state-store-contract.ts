/**
 * The StateStore contract, one suite run against every dialect (as Kysely runs one suite
 * per dialect): SQLite in a temp directory (test/unit/state-store.sqlite.test.ts, no
 * services), PostgreSQL and MariaDB each test in a fresh database
 * (test/integration/state-store.contract.test.ts). Time is never mocked: expiry and grace are judged by the store's clock,
 * using short ttls and graces with real waits, or rows moved in time directly.
 */
import { itWhere } from './matrix.js';
import { freePort } from './net.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, LeaseLostError } from '../../src/errors.js';
import { hashToken } from '../../src/state/common.js';
import { openStateStore } from '../../src/state/open.js';
import type { LeaseBounds, NewTombstone, StateStore, StoreDialect } from '../../src/state/types.js';

export type Row = Record<string, unknown>;
export type Cleanups = (() => Promise<void>)[];

/** The schema versions every dialect's migrations record (4 is the batch ledger's, on its own branch). */
const VERSIONS = [1, 2, 3, 4, 5, 6, 7];

/** Short bounds so that expiry can be watched happen in a test. */
const BOUNDS: LeaseBounds = { minTtlMs: 100, maxTtlMs: 60_000 };

export interface Target {
  url: string;
  /** Open (and migrate) a store on this target; closed after the test. */
  open(bounds?: LeaseBounds): Promise<StateStore>;
  /** Plain SQL on the store's tables, `?` placeholders, for moving rows in time and peeking. */
  raw(sql: string, params?: unknown[]): Promise<Row[]>;
}

/**
 * A fresh, empty place for a store. `drops` remove it (run only when the test passed,
 * so a failing test leaves its database behind as evidence); `closers` end every
 * connection the test opened (always run, first).
 */
/** Where a dialect's store lives for one test: its URL and plain SQL on its tables (`?` placeholders). */
export type ServerPlace = (dialect: StoreDialect, drops: Cleanups, closers: Cleanups) => Promise<{ url: string; raw: Target['raw'] }>;

const runCleanups = async (cleanups: Cleanups): Promise<void> => {
  while (cleanups.length) await cleanups.pop()!();
};

/** A fresh SQLite file in a temp directory. */
const sqlitePlace: ServerPlace = async (_dialect, drops, closers) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-contract-'));
  drops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const url = `sqlite:${path.join(dir, 'state.db')}`;
  const { default: Database } = await import('better-sqlite3');
  let db: InstanceType<typeof Database> | undefined;
  closers.push(async () => {
    db?.close();
  });
  const raw: Target['raw'] = async (sql, params = []) => {
    db ??= new Database(url.slice('sqlite:'.length));
    const statement = db.prepare(sql);
    if (statement.reader) return statement.all(...params) as Row[];
    statement.run(...params);
    return [];
  };
  return { url, raw };
};

/**
 * A fresh, empty place for a store. `drops` remove it (run only when the test passed,
 * so a failing test leaves its database behind as evidence); `closers` end every
 * connection the test opened (always run, first).
 */
async function makeTarget(dialect: StoreDialect, drops: Cleanups, closers: Cleanups, server: ServerPlace): Promise<Target> {
  const { url, raw } = await (dialect === 'sqlite' ? sqlitePlace : server)(dialect, drops, closers);
  return {
    url,
    raw,
    async open(bounds = BOUNDS) {
      const store = await openStateStore(url, { leaseBounds: bounds });
      closers.push(() => store.close());
      return store;
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until the store's own clock reads at least `t`. */
async function untilStoreTime(store: StateStore, t: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const now = await store.now();
    if (now >= t) return now;
    if (Date.now() > deadline) throw new Error(`the store clock did not reach ${t} (at ${now})`);
    await sleep(Math.min(50, Math.max(1, t - now)));
  }
}

const tomb = (resourceId: string, over: Partial<NewTombstone> = {}): NewTombstone => ({
  resource: 'files',
  resourceId,
  fingerprint: `mtime:1700000000;ino:${resourceId.length}`,
  owner: 'svc:gone',
  ownerValue: 'gone',
  reason: 'owner-dead',
  bytes: 42,
  ...over,
});


/** The contract for these dialects; `server` makes the place of a server dialect's store. */
export function stateStoreContract(dialects: readonly StoreDialect[], available: (dialect: StoreDialect) => boolean = () => true, server: ServerPlace = sqlitePlace): void {
// The dialects' blocks run side by side (each test has its own database); the tests within a block one
// after another (describe.sequential), sharing its hooks' variables. A test is mostly waiting on its server.
for (const dialect of dialects) {
  describe.skipIf(!available(dialect)).concurrent(dialect, () => {
    let drops: Cleanups;
    let closers: Cleanups;
    let target: Target;
    let store: StateStore;

    beforeEach(async () => {
      drops = [];
      closers = [];
      target = await makeTarget(dialect, drops, closers, server);
      store = await target.open();
    });

    afterEach(async (context) => {
      await runCleanups(closers);
      if (context.task.result?.state !== 'fail') await runCleanups(drops);
    });

    const expired = async (leaseId: string): Promise<void> => {
      await target.raw('UPDATE leases SET expires_at = expires_at - 3600000 WHERE lease_id = ?', [leaseId]);
    };

    describe.sequential('leases', () => {
      it('acquires a lease by the store clock and keeps only a hash of its token', async () => {
        const before = await store.now();
        const lease = await store.acquireLease({ key: 'svc:a', holder: 'h1', ttlMs: 5_000 });
        expect(lease).toMatchObject({ key: 'svc:a', holder: 'h1', generation: 1, ttlMs: 5_000, releasedAt: null });
        expect(lease.acquiredAt).toBeGreaterThanOrEqual(before);
        expect(lease.renewedAt).toBe(lease.acquiredAt);
        expect(lease.expiresAt).toBe(lease.acquiredAt + 5_000);
        const { token, ...stored } = lease;
        expect(await store.getLease(lease.leaseId)).toEqual(stored);
        expect(await store.getLease('no-such-lease')).toBeNull();

        expect(await store.verifyLeaseToken(lease.leaseId, token)).toBe(true);
        expect(await store.verifyLeaseToken(lease.leaseId, `${token}x`)).toBe(false);
        expect(await store.verifyLeaseToken('no-such-lease', token)).toBe(false);
        const [row] = await target.raw('SELECT token_hash FROM leases WHERE lease_id = ?', [lease.leaseId]);
        expect(row!.token_hash).toBe(hashToken(token));
        expect(JSON.stringify(await target.raw('SELECT * FROM leases'))).not.toContain(token);
      });

      it('raises the fencing generation with every acquisition, also when they race', async () => {
        expect((await store.acquireLease({ key: 'k1', holder: 'h', ttlMs: 5_000 })).generation).toBe(1);
        expect((await store.acquireLease({ key: 'k1', holder: 'h', ttlMs: 5_000 })).generation).toBe(2);
        expect((await store.acquireLease({ key: 'k2', holder: 'h', ttlMs: 5_000 })).generation).toBe(1);

        const other = await target.open();
        const leases = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 ? other : store).acquireLease({ key: 'k3', holder: `h${i}`, ttlMs: 5_000 })),
        );
        expect(leases.map((l) => l.generation).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      });

      it('acquires many keys in one call, in their order, each at its next generation, and races settle like single acquisitions', async () => {
        await store.acquireLease({ key: 'm-2', holder: 'h', ttlMs: 5_000 });
        // More keys than one statement's chunk, in an order that is not sorted.
        const keys = Array.from({ length: 1_203 }, (_, i) => `m-${(i * 7) % 1_203}`);
        const leases = await store.acquireLeases(keys, { holder: 'hb', ttlMs: 5_000 });
        expect(leases.map((l) => l.key)).toEqual(keys);
        expect(leases.find((l) => l.key === 'm-2')!.generation).toBe(2);
        expect(leases.filter((l) => l.generation !== 1).map((l) => l.key)).toEqual(['m-2']);
        expect(new Set(leases.map((l) => l.leaseId)).size).toBe(keys.length);
        expect(leases.every((l) => l.holder === 'hb' && l.ttlMs === 5_000 && l.expiresAt === l.acquiredAt + 5_000)).toBe(true);
        const sample = leases[617]!;
        const { token, ...stored } = sample;
        expect(await store.getLease(sample.leaseId)).toEqual(stored);
        expect(await store.verifyLeaseToken(sample.leaseId, token)).toBe(true);
        expect(await store.verifyLeaseToken(sample.leaseId, leases[618]!.token)).toBe(false);
        expect(await store.liveKeys(keys)).toEqual(new Set(keys));

        // Two callers, overlapping keys in opposite orders: no deadlock, consecutive generations.
        const other = await target.open();
        const shared = ['r-a', 'r-b', 'r-c', 'r-d'];
        const [one, two] = await Promise.all([
          store.acquireLeases(shared, { holder: 'h1', ttlMs: 5_000 }),
          other.acquireLeases([...shared].reverse(), { holder: 'h2', ttlMs: 5_000 }),
        ]);
        for (const key of shared) {
          expect([one.find((l) => l.key === key)!.generation, two.find((l) => l.key === key)!.generation].sort()).toEqual([1, 2]);
        }

        await expect(store.acquireLeases(['d-1', 'd-2', 'd-1'], { holder: 'h', ttlMs: 5_000 })).rejects.toThrow(/given twice/);
        expect(await store.liveKeys(['d-1', 'd-2'])).toEqual(new Set());
        expect(await store.acquireLeases([], { holder: 'h', ttlMs: 5_000 })).toEqual([]);
      });

      it('refuses ttls outside the store bounds, naming the range, and changes nothing', async () => {
        for (const ttlMs of [1, BOUNDS.minTtlMs - 1, BOUNDS.maxTtlMs + 1, 10 * BOUNDS.maxTtlMs, 0, -5, Number.NaN]) {
          await expect(store.acquireLease({ key: 'k', holder: 'h', ttlMs }), String(ttlMs)).rejects.toThrow(RangeError);
        }
        await expect(store.acquireLease({ key: 'k', holder: 'h', ttlMs: 1 })).rejects.toThrow('a lease ttl must be from 100ms to 1m, got 1ms');
        expect(await store.listLeases({ key: 'k', includeInactive: true })).toEqual([]);
        // The bounds themselves are granted exactly.
        const short = await store.acquireLease({ key: 'k', holder: 'h', ttlMs: BOUNDS.minTtlMs });
        expect(short.expiresAt - short.acquiredAt).toBe(BOUNDS.minTtlMs);
        const long = await store.acquireLease({ key: 'k', holder: 'h', ttlMs: BOUNDS.maxTtlMs });
        expect(long.expiresAt - long.acquiredAt).toBe(BOUNDS.maxTtlMs);

        for (const ttlMs of [1, 10 * BOUNDS.maxTtlMs, 0]) {
          await expect(store.renewLease(long.leaseId, { ttlMs }), String(ttlMs)).rejects.toThrow(RangeError);
          await expect(store.renewLeases([long.leaseId], { ttlMs }), String(ttlMs)).rejects.toThrow(/from 100ms to 1m/);
        }
        expect(await store.getLease(long.leaseId)).toEqual((({ token: _t, ...rest }) => rest)(long));
      });

      it('renews from the store clock, keeping or replacing the ttl', async () => {
        const lease = await store.acquireLease({ key: 'k', holder: 'h', ttlMs: 1_000 });
        await untilStoreTime(store, lease.acquiredAt + 2);
        const renewed = await store.renewLease(lease.leaseId, { holder: 'h' });
        expect(renewed.renewedAt).toBeGreaterThan(lease.acquiredAt);
        expect(renewed.acquiredAt).toBe(lease.acquiredAt);
        expect(renewed.ttlMs).toBe(1_000);
        expect(renewed.expiresAt).toBe(renewed.renewedAt + 1_000);
        expect(renewed.generation).toBe(lease.generation);
        const longer = await store.renewLease(lease.leaseId, { ttlMs: 2_000 });
        expect(longer.ttlMs).toBe(2_000);
        expect(longer.expiresAt).toBe(longer.renewedAt + 2_000);
        expect(await store.getLease(lease.leaseId)).toEqual(longer);
      });

      it('fails a renewal after expiry and never resurrects the lease', async () => {
        const lease = await store.acquireLease({ key: 'svc:late', holder: 'h', ttlMs: 1_500 });
        expect(await store.liveKeys(['svc:late'])).toEqual(new Set(['svc:late']));
        await untilStoreTime(store, lease.expiresAt);

        await expect(store.renewLease(lease.leaseId)).rejects.toMatchObject({ name: 'LeaseLostError', why: 'expired' });
        await expect(store.renewLease(lease.leaseId, { holder: 'h', ttlMs: 10_000 })).rejects.toBeInstanceOf(LeaseLostError);
        expect(await store.renewLeases([lease.leaseId])).toEqual([{ leaseId: lease.leaseId, lost: 'expired' }]);

        expect(await store.liveKeys(['svc:late'])).toEqual(new Set());
        expect(await store.countLiveKeys()).toBe(0);
        expect(await store.listLeases()).toEqual([]);
        const after = await store.getLease(lease.leaseId);
        expect(after).toMatchObject({ renewedAt: lease.renewedAt, expiresAt: lease.expiresAt, releasedAt: null });
        expect((await store.listLeases({ includeInactive: true })).map((l) => l.leaseId)).toEqual([lease.leaseId]);
      });

      it('fails a renewal that arrives the instant the lease ends', async () => {
        const lease = await store.acquireLease({ key: 'svc:edge', holder: 'h', ttlMs: 60_000 });
        const now = await store.now();
        await target.raw('UPDATE leases SET expires_at = ? WHERE lease_id = ?', [now, lease.leaseId]);
        await expect(store.renewLease(lease.leaseId)).rejects.toMatchObject({ why: 'expired' });
        expect(await store.liveKeys(['svc:edge'])).toEqual(new Set());
        expect((await store.getLease(lease.leaseId))!.expiresAt).toBe(now);
      });

      it('releases idempotently, only for its holder, and a released lease cannot be renewed', async () => {
        const lease = await store.acquireLease({ key: 'svc:r', holder: 'h1', ttlMs: 60_000 });
        await expect(store.releaseLease(lease.leaseId, { holder: 'h2' })).rejects.toMatchObject({ why: 'not-holder' });
        expect(await store.liveKeys(['svc:r'])).toEqual(new Set(['svc:r']));

        await store.releaseLease(lease.leaseId, { holder: 'h1' });
        const released = (await store.getLease(lease.leaseId))!;
        expect(released.releasedAt).not.toBeNull();
        expect(released.expiresAt).toBeLessThanOrEqual(released.releasedAt!);
        expect(await store.liveKeys(['svc:r'])).toEqual(new Set());

        await expect(store.renewLease(lease.leaseId)).rejects.toMatchObject({ why: 'released' });
        await expect(store.renewLease(lease.leaseId, { holder: 'h1' })).rejects.toMatchObject({ why: 'released' });
        await store.releaseLease(lease.leaseId);
        expect((await store.getLease(lease.leaseId))!.releasedAt).toBe(released.releasedAt);
        await expect(store.releaseLease('no-such-lease')).rejects.toMatchObject({ why: 'not-found' });
      });

      it('refuses a renewal by another holder or of an unknown lease', async () => {
        const lease = await store.acquireLease({ key: 'svc:x', holder: 'h1', ttlMs: 60_000 });
        await expect(store.renewLease(lease.leaseId, { holder: 'h2' })).rejects.toMatchObject({ why: 'not-holder' });
        expect(await store.getLease(lease.leaseId)).toMatchObject({ renewedAt: lease.renewedAt, expiresAt: lease.expiresAt });
        await expect(store.renewLease('no-such-lease')).rejects.toMatchObject({ why: 'not-found' });
      });

      it('renews many leases in one call, explains each failure and counts the failure rate', async () => {
        const a = await store.acquireLease({ key: 'a', holder: 'h1', ttlMs: 1_000 });
        const b = await store.acquireLease({ key: 'b', holder: 'h1', ttlMs: 1_000 });
        const c = await store.acquireLease({ key: 'c', holder: 'h1', ttlMs: 1_000 });
        const d = await store.acquireLease({ key: 'd', holder: 'h1', ttlMs: 1_000 });
        const e = await store.acquireLease({ key: 'e', holder: 'h2', ttlMs: 1_000 });
        await store.releaseLease(c.leaseId);
        await expired(d.leaseId);
        expect(await store.leaseStats(60_000)).toMatchObject({ renewals: 0, renewalFailures: 0, renewalFailureRate: 0 });

        const outcomes = await store.renewLeases([a.leaseId, 'no-such-lease', c.leaseId, d.leaseId, b.leaseId, e.leaseId], { holder: 'h1', ttlMs: 3_000 });
        expect(outcomes.map((o) => [o.leaseId, o.lost ?? 'ok'])).toEqual([
          [a.leaseId, 'ok'],
          ['no-such-lease', 'not-found'],
          [c.leaseId, 'released'],
          [d.leaseId, 'expired'],
          [b.leaseId, 'ok'],
          [e.leaseId, 'not-holder'],
        ]);
        expect(outcomes[0]!.lease).toMatchObject({ leaseId: a.leaseId, key: 'a', ttlMs: 3_000 });
        expect(outcomes[0]!.lease!.expiresAt).toBe(outcomes[0]!.lease!.renewedAt + 3_000);
        expect(await store.getLease(e.leaseId)).toMatchObject({ ttlMs: 1_000, renewedAt: e.renewedAt });

        expect(await store.renewLeases([])).toEqual([]);
        await expect(store.renewLease(d.leaseId)).rejects.toBeInstanceOf(LeaseLostError);
        expect(await store.leaseStats(60_000)).toMatchObject({ renewals: 2, renewalFailures: 5, renewalFailureRate: 5 / 7 });
      });

      it('keeps a key live while any of its holders has an unexpired lease', async () => {
        const first = await store.acquireLease({ key: 'svc:shared', holder: 'h1', ttlMs: 150 });
        const second = await store.acquireLease({ key: 'svc:shared', holder: 'h2', ttlMs: 60_000 });
        expect(await store.liveKeys(['svc:shared', 'svc:other'])).toEqual(new Set(['svc:shared']));
        expect(await store.countLiveKeys()).toBe(1);

        await untilStoreTime(store, first.expiresAt);
        expect(await store.liveKeys(['svc:shared'])).toEqual(new Set(['svc:shared']));
        expect(await store.leaseStats(60_000)).toMatchObject({ active: 1, expired: 1 });

        await expired(second.leaseId);
        expect(await store.liveKeys(['svc:shared'])).toEqual(new Set());
        expect(await store.countLiveKeys()).toBe(0);
        expect(await store.leaseStats(60_000)).toMatchObject({ active: 0, expired: 2 });
      });

      it('compares owner keys byte for byte', async () => {
        const leased = ['owner', 'caf\u00e9', 'line\nbreak', 'nul\u0000byte', '\u{1F980}', 'x'.repeat(1_000)];
        const twins = ['Owner', 'owner ', 'cafe\u0301', 'line\r\nbreak', 'nul', 'x'.repeat(999)];
        for (const key of leased) await store.acquireLease({ key, holder: 'h', ttlMs: 60_000 });
        expect(await store.liveKeys([...leased, ...twins])).toEqual(new Set(leased));
        expect(await store.keysActiveSince([...leased, ...twins], 0)).toEqual(new Set(leased));
        expect(await store.countLiveKeys()).toBe(leased.length);
        expect(await store.listLeases({ key: 'cafe\u0301' })).toEqual([]);
        expect((await store.listLeases({ key: 'caf\u00e9' })).map((l) => l.key)).toEqual(['caf\u00e9']);
        expect((await store.listLeases({ key: 'nul\u0000byte' })).map((l) => l.key)).toEqual(['nul\u0000byte']);
      });

      it('lists leases by key, activity and limit, ordered by key', async () => {
        await store.acquireLease({ key: 'b', holder: 'h', ttlMs: 60_000 });
        await store.acquireLease({ key: 'a', holder: 'h1', ttlMs: 60_000 });
        await store.acquireLease({ key: 'a', holder: 'h2', ttlMs: 60_000 });
        const gone = await store.acquireLease({ key: 'c', holder: 'h', ttlMs: 60_000 });
        await store.releaseLease(gone.leaseId);

        expect((await store.listLeases()).map((l) => l.key)).toEqual(['a', 'a', 'b']);
        expect((await store.listLeases({ key: 'a' })).map((l) => l.holder).sort()).toEqual(['h1', 'h2']);
        expect(await store.listLeases({ limit: 1 })).toHaveLength(1);
        expect((await store.listLeases({ includeInactive: true })).map((l) => l.key)).toEqual(['a', 'a', 'b', 'c']);
        expect(await store.listLeases({ key: 'c' })).toEqual([]);
      });

      it('tells which keys were acquired or renewed since an instant of the store clock', async () => {
        const a = await store.acquireLease({ key: 'a', holder: 'h', ttlMs: 60_000 });
        const b = await store.acquireLease({ key: 'b', holder: 'h', ttlMs: 60_000 });
        const since = await untilStoreTime(store, b.acquiredAt + 1);
        await store.renewLease(a.leaseId);
        await store.acquireLease({ key: 'c', holder: 'h', ttlMs: 60_000 });
        expect(await store.keysActiveSince(['a', 'b', 'c', 'd'], since)).toEqual(new Set(['a', 'c']));
        expect(await store.keysActiveSince(['a', 'b', 'c', 'd'], b.acquiredAt)).toEqual(new Set(['a', 'b', 'c']));
        expect(await store.keysActiveSince([], since)).toEqual(new Set());
      });

      it('counts active and expired leases; released ones are neither', async () => {
        await store.acquireLease({ key: 'a', holder: 'h', ttlMs: 60_000 });
        await store.acquireLease({ key: 'b', holder: 'h', ttlMs: 60_000 });
        const c = await store.acquireLease({ key: 'c', holder: 'h', ttlMs: 60_000 });
        const d = await store.acquireLease({ key: 'd', holder: 'h', ttlMs: 60_000 });
        await expired(c.leaseId);
        await store.releaseLease(d.leaseId);
        expect(await store.leaseStats(60_000)).toEqual({ active: 2, expired: 1, renewals: 0, renewalFailures: 0, renewalFailureRate: 0 });
      });

      it('prunes leases that ended long enough ago, and fencing survives pruning', async () => {
        const oldExpired = await store.acquireLease({ key: 'k-old', holder: 'h', ttlMs: 60_000 });
        const oldReleased = await store.acquireLease({ key: 'k-rel', holder: 'h', ttlMs: 60_000 });
        const recentReleased = await store.acquireLease({ key: 'k-recent', holder: 'h', ttlMs: 60_000 });
        const live = await store.acquireLease({ key: 'k-live', holder: 'h', ttlMs: 60_000 });
        await store.releaseLease(oldReleased.leaseId);
        await store.releaseLease(recentReleased.leaseId);
        const now = await store.now();
        await target.raw('UPDATE leases SET expires_at = ? WHERE lease_id = ?', [now - 10_000, oldExpired.leaseId]);
        await target.raw('UPDATE leases SET expires_at = ?, released_at = ? WHERE lease_id = ?', [now - 10_000, now - 10_000, oldReleased.leaseId]);

        expect(await store.pruneLeases(5_000)).toBe(2);
        expect(await store.getLease(oldExpired.leaseId)).toBeNull();
        expect(await store.getLease(oldReleased.leaseId)).toBeNull();
        expect(await store.getLease(recentReleased.leaseId)).not.toBeNull();
        expect(await store.getLease(live.leaseId)).not.toBeNull();
        expect(await store.pruneLeases(5_000)).toBe(0);

        expect((await store.acquireLease({ key: 'k-old', holder: 'h', ttlMs: 60_000 })).generation).toBe(2);
      });
      it('never prunes a lease renewed since the mark of a pending tombstone, and drops old renewal statistics', async () => {
        const lease = await store.acquireLease({ key: 'owner-a', holder: 'h', ttlMs: 60_000 });
        await store.releaseLease(lease.leaseId);
        const run = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        await store.insertTombstones(run.runId, [tomb('r1', { owner: 'owner-a' })]);
        const now = await store.now();
        // Marked 30 s ago; the owner renewed 20 s ago and its lease ended 10 s ago.
        await target.raw('UPDATE tombstones SET marked_at = ?', [now - 30_000]);
        await target.raw('UPDATE leases SET renewed_at = ?, expires_at = ?, released_at = ? WHERE lease_id = ?', [now - 20_000, now - 10_000, now - 10_000, lease.leaseId]);
        await target.raw('INSERT INTO lease_renewal_stats (bucket, ok, failed) VALUES (?, 5, 5)', [Math.floor((now - 3_600_000) / 60_000)]);
        expect((await store.leaseStats(2 * 3_600_000)).renewals).toBe(5);

        expect(await store.pruneLeases(5_000)).toBe(0);
        expect(await store.getLease(lease.leaseId)).not.toBeNull();
        expect(await store.keysActiveSince(['owner-a'], now - 30_000)).toEqual(new Set(['owner-a']));
        expect(await store.leaseStats(2 * 3_600_000)).toMatchObject({ renewals: 0, renewalFailures: 0 });

        // Once no tombstone waits on that answer, the lease goes like any other.
        await target.raw(`UPDATE tombstones SET state = 'lifted'`);
        expect(await store.pruneLeases(5_000)).toBe(1);
        expect(await store.getLease(lease.leaseId)).toBeNull();
      });
    });

    describe.sequential('runs, checkpoints and locks', () => {
      it('records runs and lists them newest first', async () => {
        const before = await store.now();
        const first = await store.startRun({ kind: 'audit', manifestDigest: 'sha256:one', execute: false });
        expect(first).toMatchObject({ kind: 'audit', status: 'running', finishedAt: null, manifestDigest: 'sha256:one', execute: false, summary: null, sourceCounts: null, error: null });
        expect(first.runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
        expect(first.startedAt).toBeGreaterThanOrEqual(before);
        await untilStoreTime(store, first.startedAt + 1);
        const second = await store.startRun({ kind: 'reap', manifestDigest: 'sha256:two', execute: true });
        expect(second.execute).toBe(true);

        const summary = { version: 1, summary: { live: 3, orphaned: 1 }, resources: [{ name: 'files', note: 'caf\u00e9 \u0000' }] };
        await store.finishRun(first.runId, { status: 'ok', summary, sourceCounts: { leases: 3, static: 1 } });
        await store.finishRun(second.runId, { status: 'failed', error: 'backend unreachable' });
        const done = (await store.getRun(first.runId))!;
        expect(done).toMatchObject({ status: 'ok', summary, sourceCounts: { leases: 3, static: 1 }, error: null });
        expect(done.finishedAt).toBeGreaterThanOrEqual(done.startedAt);
        expect(await store.getRun(second.runId)).toMatchObject({ status: 'failed', error: 'backend unreachable', summary: null, sourceCounts: null });
        expect(await store.getRun('no-such-run')).toBeNull();

        expect((await store.listRuns()).map((r) => r.runId)).toEqual([second.runId, first.runId]);
        expect((await store.listRuns({ kind: 'audit' })).map((r) => r.runId)).toEqual([first.runId]);
        expect((await store.listRuns({ limit: 1 })).map((r) => r.runId)).toEqual([second.runId]);

        const third = await store.startRun({ kind: 'audit', manifestDigest: 'd', execute: false });
        await store.finishRun(third.runId, { status: 'ok', summary: 'just text' });
        expect((await store.getRun(third.runId))!.summary).toBe('just text');
      });

      it('remembers the source counts of the latest successful run for the breaker', async () => {
        expect(await store.lastSourceCounts('reap')).toBeNull();
        const ok = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        await store.finishRun(ok.runId, { status: 'ok', sourceCounts: { leases: 5 } });
        const failed = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        await store.finishRun(failed.runId, { status: 'failed', sourceCounts: { leases: 0 } });
        expect(await store.lastSourceCounts('reap')).toEqual({ leases: 5 });

        await untilStoreTime(store, (await store.getRun(failed.runId))!.finishedAt! + 1);
        const gated = await store.startRun({ kind: 'audit', manifestDigest: 'd', execute: false });
        await store.finishRun(gated.runId, { status: 'gate-failed', sourceCounts: { leases: 7 } });
        expect(await store.lastSourceCounts('audit')).toEqual({ leases: 7 });
        // An audit never becomes the reap breaker's baseline.
        expect(await store.lastSourceCounts('reap')).toEqual({ leases: 5 });
      });

      it('marks a running run whose heartbeat lapsed abandoned when a later run starts; a beating run stays running', async () => {
        const lost = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, ttlMs: 1_500 });
        const beating = await store.startRun({ kind: 'audit', manifestDigest: 'd', execute: false, ttlMs: 1_500 });
        const done = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: false, ttlMs: 1_500 });
        await store.finishRun(done.runId, { status: 'ok' });
        expect(lost).toMatchObject({ status: 'running', heartbeatAt: lost.startedAt, aliveUntil: lost.startedAt + 1_500 });
        expect(await store.heartbeatRun(beating.runId, 60_000)).toBe(true);
        const beat = (await store.getRun(beating.runId))!;
        expect(beat.heartbeatAt).toBeGreaterThanOrEqual(beating.startedAt);
        expect(beat.aliveUntil).toBe(beat.heartbeatAt! + 60_000);

        // Within its ttl a run is never judged gone (a ttl long enough for a loaded machine to get here within it).
        expect(await store.abandonStaleRuns()).toBe(0);
        expect((await store.getRun(lost.runId))!.status).toBe('running');

        await untilStoreTime(store, lost.aliveUntil!);
        const later = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        const abandoned = (await store.getRun(lost.runId))!;
        expect(abandoned).toMatchObject({ status: 'abandoned', finishedAt: lost.heartbeatAt });
        expect(abandoned.error).toMatch(/^abandoned: no heartbeat since \S+Z \(ttl 1\.5 s\); the process was killed or lost/);
        expect((await store.getRun(beating.runId))!.status).toBe('running');
        expect((await store.getRun(done.runId))!.status).toBe('ok');
        expect((await store.getRun(later.runId))!.status).toBe('running');
        expect((await store.listRuns({ kind: 'reap' })).map((r) => [r.runId, r.status])).toEqual([
          [later.runId, 'running'],
          [done.runId, 'ok'],
          [lost.runId, 'abandoned'],
        ]);
        expect(await store.abandonStaleRuns()).toBe(0); // each once

        // A run judged gone that beats again was only paused: it is running again, and its end is its own.
        expect(await store.heartbeatRun(lost.runId, 60_000)).toBe(true);
        expect(await store.getRun(lost.runId)).toMatchObject({ status: 'running', finishedAt: null, error: null });
        await store.finishRun(lost.runId, { status: 'ok' });
        expect(await store.heartbeatRun(lost.runId, 60_000)).toBe(false);
        expect(await store.heartbeatRun('no-such-run', 60_000)).toBe(false);
        expect((await store.getRun(lost.runId))!.status).toBe('ok');
      });

      it('abandons a running run recorded without a heartbeat (by an older reaper) at the next run', async () => {
        const legacy = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        await target.raw('UPDATE runs SET heartbeat_at = NULL, alive_until = NULL WHERE run_id = ?', [legacy.runId]);
        expect(await store.getRun(legacy.runId)).toMatchObject({ status: 'running', heartbeatAt: null, aliveUntil: null });
        await store.startRun({ kind: 'audit', manifestDigest: 'd', execute: false });
        const abandoned = (await store.getRun(legacy.runId))!;
        expect(abandoned).toMatchObject({ status: 'abandoned', finishedAt: legacy.startedAt });
        expect(abandoned.error).toMatch(/^abandoned: no heartbeat recorded/);
      });

      it('upserts checkpoints per run, type and phase', async () => {
        expect(await store.loadCheckpoint('run-1', 'files', 'mark')).toBeUndefined();
        await store.saveCheckpoint('run-1', 'files', 'mark', 'page-1');
        expect(await store.loadCheckpoint('run-1', 'files', 'mark')).toBe('page-1');
        await store.saveCheckpoint('run-1', 'files', 'mark', 'page-2');
        expect(await store.loadCheckpoint('run-1', 'files', 'mark')).toBe('page-2');
        expect(await store.loadCheckpoint('run-1', 'files', 'sweep')).toBeUndefined();
        expect(await store.loadCheckpoint('run-2', 'files', 'mark')).toBeUndefined();
        await store.saveCheckpoint('run-1', 'files', 'mark', null);
        expect(await store.loadCheckpoint('run-1', 'files', 'mark')).toBeNull();
        const cursor = 'tmp/caf\u00e9/line\nbreak/\u0000/\u{1F980}';
        await store.saveCheckpoint('run-1', 'blobs', 'mark', cursor);
        expect(await store.loadCheckpoint('run-1', 'blobs', 'mark')).toBe(cursor);
      });

      it('gives a lock to one run at a time; its holder re-takes and refreshes it', async () => {
        expect(await store.acquireLock('files', 'run-a', 60_000)).toBe(true);
        expect(await store.acquireLock('files', 'run-a', 60_000)).toBe(true);
        expect(await store.acquireLock('files', 'run-b', 60_000)).toBe(false);
        expect(await store.acquireLock('blobs', 'run-b', 60_000)).toBe(true);
        expect(await store.refreshLock('files', 'run-a', 60_000)).toBe(true);
        expect(await store.refreshLock('files', 'run-a', 60_000)).toBe(true);
        expect(await store.refreshLock('files', 'run-b', 60_000)).toBe(false);
        await store.releaseLock('files', 'run-b');
        expect(await store.acquireLock('files', 'run-b', 60_000)).toBe(false);
        await store.releaseLock('files', 'run-a');
        expect(await store.refreshLock('files', 'run-a', 60_000)).toBe(false);
        expect(await store.acquireLock('files', 'run-b', 60_000)).toBe(true);
        expect((await store.liveLocks()).map((l) => [l.resource, l.runId])).toEqual([
          ['blobs', 'run-b'],
          ['files', 'run-b'],
        ]);
      });

      it('lists the live locks with their expiry by the store clock, and no expired one', async () => {
        const before = await store.now();
        expect(await store.acquireLock('blobs@1/4', 'run-a', 60_000)).toBe(true);
        expect(await store.acquireLock('blobs', 'run-b', 60_000)).toBe(true);
        expect(await store.acquireLock('files', 'run-c', 1)).toBe(true);
        const [row] = await target.raw("SELECT expires_at FROM resource_locks WHERE resource = 'files'");
        await untilStoreTime(store, Number(row!.expires_at));
        const live = await store.liveLocks();
        expect(live.map((l) => [l.resource, l.runId])).toEqual([
          ['blobs', 'run-b'],
          ['blobs@1/4', 'run-a'],
        ]);
        for (const lock of live) expect(lock.expiresAt).toBeGreaterThanOrEqual(before + 60_000);
      });

      it('lets another run take over an expired lock, and the old holder learns it lost it', async () => {
        expect(await store.acquireLock('files', 'run-a', 1_500)).toBe(true);
        expect(await store.acquireLock('files', 'run-b', 60_000)).toBe(false);
        const [row] = await target.raw('SELECT expires_at FROM resource_locks');
        await untilStoreTime(store, Number(row!.expires_at));
        expect(await store.acquireLock('files', 'run-b', 60_000)).toBe(true);
        expect(await store.refreshLock('files', 'run-a', 60_000)).toBe(false);
        expect(await store.acquireLock('files', 'run-a', 60_000)).toBe(false);
      });

      it('gives a contested lock to exactly one of many concurrent runs, free or expired', async () => {
        const stores = [store, await target.open(), await target.open()];
        const race = (round: string) =>
          Promise.all(Array.from({ length: 12 }, (_, i) => stores[i % stores.length]!.acquireLock('files', `run-${round}-${i}`, 60_000)));
        expect((await race('free')).filter(Boolean)).toHaveLength(1);

        await target.raw('UPDATE resource_locks SET expires_at = 0');
        const takeovers = await race('expired');
        expect(takeovers.filter(Boolean)).toHaveLength(1);
        const [row] = await target.raw('SELECT run_id FROM resource_locks');
        expect(String(row!.run_id)).toBe(`run-expired-${takeovers.indexOf(true)}`);
      });
    });

    describe.sequential('jobs of shards: runs, claims, the breaker verdict, resumed checkpoints', () => {
      it('records the job and shard of a run and lists a job\'s runs', async () => {
        const plain = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true });
        expect(plain).toMatchObject({ job: null, shard: null });
        const s0 = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, job: 'nightly-1', shard: '0/2' });
        await untilStoreTime(store, s0.startedAt + 1);
        const s1 = await store.startRun({ kind: 'audit', manifestDigest: 'd', execute: false, job: 'nightly-1', shard: '1/2' });
        await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, job: 'nightly-2', shard: '0/2' });
        expect(await store.getRun(s0.runId)).toMatchObject({ job: 'nightly-1', shard: '0/2' });
        expect((await store.listRuns({ job: 'nightly-1' })).map((r) => [r.runId, r.shard])).toEqual([
          [s1.runId, '1/2'],
          [s0.runId, '0/2'],
        ]);
        expect((await store.listRuns({ job: 'nightly-1', kind: 'reap' })).map((r) => r.runId)).toEqual([s0.runId]);
        expect(await store.listRuns({ job: 'no-such-job' })).toEqual([]);
      });

      it('grants claims within the job\'s cap, all or nothing, and a shard\'s rerun keeps its grant for what earlier runs condemned', async () => {
        const claim = (shard: string, runId: string, want: number, cap = 10) => store.claimJobDeletes({ job: 'j', resource: 'files', shard, runId, want, cap });
        expect(await claim('0/3', 'r0', 4)).toMatchObject({ granted: true, need: 4, priorUse: 0, shardGranted: 4, claimed: 4, cap: 10 });
        expect(await claim('1/3', 'r1', 7)).toMatchObject({ granted: false, shardGranted: 0, claimed: 4 });
        expect(await claim('1/3', 'r1', 6)).toMatchObject({ granted: true, shardGranted: 6, claimed: 10 });
        expect(await claim('2/3', 'r2', 1)).toMatchObject({ granted: false, claimed: 10 });
        expect(await claim('2/3', 'r2', 0)).toMatchObject({ granted: true, claimed: 10 });
        // Another type and another job have caps of their own; the lowest cap claimed with holds.
        expect(await store.claimJobDeletes({ job: 'j', resource: 'blobs', shard: '2/3', runId: 'r2', want: 5, cap: 5 })).toMatchObject({ granted: true, claimed: 5 });
        expect(await store.claimJobDeletes({ job: 'k', resource: 'files', shard: '2/3', runId: 'r3', want: 8, cap: 10 })).toMatchObject({ granted: true, claimed: 8 });
        expect(await store.claimJobDeletes({ job: 'k', resource: 'files', shard: '1/3', runId: 'r4', want: 1, cap: 8 })).toMatchObject({ granted: false, claimed: 8, cap: 8 });

        // A rerun of shard 0/3: its killed run r0 marked two and began one delete; they count.
        const killed = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, job: 'j', shard: '0/3' });
        expect(await store.insertTombstones(killed.runId, [tomb('a'), tomb('b')])).toBe(2);
        const [a] = await store.findTombstones({ resourceId: 'a' });
        await store.beginBatch(killed.runId, 'files', [a!.tombstoneId], null);
        const rerun = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, job: 'j', shard: '0/3' });
        expect(await claim('0/3', rerun.runId, 1)).toMatchObject({ granted: true, priorUse: 3, need: 4, shardGranted: 4, claimed: 10 });
        expect(await claim('0/3', rerun.runId, 2)).toMatchObject({ granted: false, priorUse: 3, need: 5, shardGranted: 4 });
        // An unsharded job's runs are its shard ''.
        expect(await store.claimJobDeletes({ job: 'u', resource: 'files', shard: null, runId: 'x', want: 2, cap: 2 })).toMatchObject({ granted: true, claimed: 2 });
        await expect(claim('0/3', 'r0', -1)).rejects.toThrow(RangeError);
      });

      it('never lets concurrent claims together exceed the cap', async () => {
        const stores = [store, await target.open(), await target.open()];
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => stores[i % stores.length]!.claimJobDeletes({ job: 'race', resource: 'files', shard: `${i}/12`, runId: `r${i}`, want: 3, cap: 10 })),
        );
        expect(results.filter((r) => r.granted)).toHaveLength(3);
        const [row] = await target.raw('SELECT claimed FROM job_claims');
        expect(Number(row!.claimed)).toBe(9);
        const shards = await target.raw('SELECT SUM(granted) AS n FROM job_claim_shards');
        expect(Number(shards[0]!.n)).toBe(9);
      });

      it('keeps the first breaker verdict of a job; later ones get it back until it is too old', async () => {
        const hour = 3_600_000;
        expect(await store.jobVerdict('j', hour)).toBeNull();
        const first = await store.recordJobVerdict('j', { runId: 'r0', reasons: [], sourceCounts: { leases: 5 } }, hour);
        expect(first).toMatchObject({ job: 'j', runId: 'r0', reasons: [], sourceCounts: { leases: 5 } });
        const second = await store.recordJobVerdict('j', { runId: 'r1', reasons: ['liveness source leases fell'], sourceCounts: { leases: 1 } }, hour);
        expect(second).toEqual(first);
        expect(await store.jobVerdict('j', hour)).toEqual(first);
        const other = await store.recordJobVerdict('k', { runId: 'r2', reasons: ['caf\u00e9 down'], sourceCounts: {} }, hour);
        expect(other).toMatchObject({ runId: 'r2', reasons: ['caf\u00e9 down'], sourceCounts: {} });
        const racing = await Promise.all(['a', 'b', 'c', 'd'].map((runId) => store.recordJobVerdict('race', { runId, reasons: [runId], sourceCounts: {} }, hour)));
        expect(new Set(racing.map((v) => v.runId)).size).toBe(1);
        // Two hours on, the job id's verdict is no longer adopted: the next judgement replaces it.
        await target.raw('UPDATE job_verdicts SET judged_at = judged_at - 7200000');
        expect(await store.jobVerdict('j', hour)).toBeNull();
        expect(await store.recordJobVerdict('j', { runId: 'r3', reasons: ['fell'], sourceCounts: { leases: 1 } }, hour)).toMatchObject({ runId: 'r3', reasons: ['fell'] });
        expect(await store.jobVerdict('k', 3 * hour)).toMatchObject({ runId: 'r2' });
      });

      it('gives a rerun the checkpoints of the run it resumes, keeping its own', async () => {
        await store.saveCheckpoint('killed', 'files', 'mark', 'm-7');
        await store.saveCheckpoint('killed', 'files', 'sweep', 's-3');
        await store.saveCheckpoint('rerun', 'files', 'sweep', 's-9');
        expect(await store.adoptCheckpoints('killed', 'rerun')).toBe(1);
        expect(await store.loadCheckpoint('rerun', 'files', 'mark')).toBe('m-7');
        expect(await store.loadCheckpoint('rerun', 'files', 'sweep')).toBe('s-9');
        expect(await store.adoptCheckpoints('killed', 'rerun')).toBe(0);
        expect(await store.adoptCheckpoints('no-such-run', 'rerun')).toBe(0);
      });
    });

    describe.sequential('tombstones and journal', () => {
      it('inserts tombstones by the store clock, skipping resources that already have an active one', async () => {
        const before = await store.now();
        expect(await store.insertTombstones('run-1', [tomb('a'), tomb('b', { owner: null, ownerValue: null, reason: 'no-owner', bytes: null }), tomb('a')])).toBe(2);
        expect(await store.insertTombstones('run-2', [tomb('a'), tomb('c')])).toBe(1);
        expect(await store.insertTombstones('run-2', [tomb('a', { resource: 'blobs' })])).toBe(1);
        expect(await store.insertTombstones('run-2', [])).toBe(0);

        const files = await store.findTombstones({ resource: 'files' });
        expect(files.map((t) => [t.resourceId, t.markedRunId])).toEqual([
          ['a', 'run-1'],
          ['b', 'run-1'],
          ['c', 'run-2'],
        ]);
        expect(files[0]).toMatchObject({ ...tomb('a'), state: 'marked', outcomeRunId: null, note: null, restoreHandle: null });
        expect(files[1]).toMatchObject({ owner: null, ownerValue: null, reason: 'no-owner', bytes: null });
        expect(files[0]!.markedAt).toBeGreaterThanOrEqual(before);
        expect(files[0]!.updatedAt).toBe(files[0]!.markedAt);
      });

      it('accepts a new tombstone once the previous one is deleted or lifted, not while it is deleting', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b')]);
        const [a, b] = await store.findTombstones({ resource: 'files' });
        expect(await store.liftTombstones('run-1', [a!.tombstoneId], 'owner came back')).toBe(1);
        expect(await store.insertTombstones('run-2', [tomb('a')])).toBe(1);

        const batch = await store.beginBatch('run-2', 'files', [b!.tombstoneId], null);
        expect(await store.insertTombstones('run-2', [tomb('b')])).toBe(0);
        await store.finishBatch('run-2', batch!.batchId, [{ tombstoneId: b!.tombstoneId, outcome: 'deleted' }]);
        expect(await store.insertTombstones('run-3', [tomb('b')])).toBe(1);

        expect((await store.findTombstones({ resourceId: 'a' })).map((t) => t.state)).toEqual(['lifted', 'marked']);
        expect((await store.findTombstones({ resourceId: 'b' })).map((t) => t.state)).toEqual(['deleted', 'marked']);
      });

      it('records the fingerprints a mark answered only on tombstones of the marking run still marked', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('c'), tomb('d')]);
        await store.insertTombstones('run-0', [tomb('e')]);
        const [a, b, c, d] = await store.findTombstones({ runId: 'run-1' });
        const [e] = await store.findTombstones({ runId: 'run-0' });
        await store.liftTombstones('run-1', [c!.tombstoneId], 'changed before the mark');
        await store.beginBatch('run-2', 'files', [d!.tombstoneId], null);
        await store.confirmMarks('run-1', [
          { tombstoneId: a!.tombstoneId, fingerprint: 'after-mark-a' },
          { tombstoneId: b!.tombstoneId, fingerprint: b!.fingerprint },
          { tombstoneId: c!.tombstoneId, fingerprint: 'after-mark-c' },
          { tombstoneId: d!.tombstoneId, fingerprint: 'after-mark-d' },
          { tombstoneId: e!.tombstoneId, fingerprint: 'after-mark-e' },
          { tombstoneId: 987_654, fingerprint: 'nothing' },
        ]);
        await store.confirmMarks('run-1', []);
        const now = new Map((await store.findTombstones({})).map((t) => [t.resourceId, t]));
        expect([...now.values()].map((t) => [t.resourceId, t.state, t.fingerprint])).toEqual([
          ['a', 'marked', 'after-mark-a'],
          ['b', 'marked', b!.fingerprint],
          ['c', 'lifted', c!.fingerprint],
          ['d', 'deleting', d!.fingerprint],
          ['e', 'marked', e!.fingerprint],
        ]);
        expect(now.get('a')).toMatchObject({ ...a, fingerprint: 'after-mark-a', markConfirmedAt: expect.any(Number) });
        // Confirmed: the tombstones the call took (b answered its old fingerprint); unconfirmed the rest.
        expect(a!.markConfirmedAt).toBeNull();
        expect([...now.values()].map((t) => [t.resourceId, t.markConfirmedAt !== null])).toEqual([
          ['a', true],
          ['b', true],
          ['c', false],
          ['d', false],
          ['e', false],
        ]);
        // Many in one call: chunked, each its own fingerprint.
        const ids = Array.from({ length: 620 }, (_, i) => `many/${i}`);
        await store.insertTombstones('run-3', ids.map((id) => tomb(id)));
        const many = await store.findTombstones({ runId: 'run-3' });
        await store.confirmMarks('run-3', many.map((t) => ({ tombstoneId: t.tombstoneId, fingerprint: `fp-${t.resourceId}` })));
        expect((await store.findTombstones({ runId: 'run-3' })).every((t) => t.fingerprint === `fp-${t.resourceId}`)).toBe(true);
      });

      it('stores and compares resource ids byte for byte', async () => {
        const ids = [
          'tmp/line\nbreak',
          'tmp/line\r\nbreak',
          'tmp/caf\u00e9.txt',
          'tmp/cafe\u0301.txt',
          'tmp/Case',
          'tmp/case',
          'tmp/trail',
          'tmp/trail ',
          'tmp/tab\there',
          'tmp/nul\u0000byte',
          'tmp/\u{1F980}',
          `tmp/${'k'.repeat(1_020)}`,
          `tmp/${'k'.repeat(1_019)}`,
          '\u00e9'.repeat(512),
        ];
        expect(Buffer.byteLength(ids[11]!)).toBe(1_024);
        expect(Buffer.byteLength(ids[13]!)).toBe(1_024);
        expect(await store.insertTombstones('run-1', ids.map((id) => tomb(id)))).toBe(ids.length);
        expect(await store.insertTombstones('run-1', ids.map((id) => tomb(id)))).toBe(0);

        const active = await store.activeTombstones('files', [...ids, 'tmp/CASE', 'tmp/nul', 'tmp/line']);
        expect([...active.keys()].sort()).toEqual([...ids].sort());
        for (const [id, t] of active) expect(t.resourceId).toBe(id);
        expect([...(await store.activeTombstones('files', ['tmp/cafe\u0301.txt'])).keys()]).toEqual(['tmp/cafe\u0301.txt']);
        expect(await store.activeTombstones('blobs', ids)).toEqual(new Map());

        const found = await store.findTombstones({ resourceId: 'tmp/caf\u00e9.txt' });
        expect(found.map((t) => t.resourceId)).toEqual(['tmp/caf\u00e9.txt']);
        const batch = await store.beginBatch('run-2', 'files', [active.get('tmp/nul\u0000byte')!.tombstoneId], { id: 'tmp/nul\u0000byte' });
        expect(batch).toMatchObject({ evidence: { id: 'tmp/nul\u0000byte' }, tombstones: [{ resourceId: 'tmp/nul\u0000byte' }] });
        expect(await store.journal({ runId: 'run-2' })).toMatchObject([{ resourceId: 'tmp/nul\u0000byte', evidence: { id: 'tmp/nul\u0000byte' }, outcome: 'intent' }]);
      });

      it('finds due tombstones by the store clock after the grace, in id order after a cursor', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b', { owner: null, ownerValue: null, reason: 'no-owner', bytes: null }), tomb('c'), tomb('z', { resource: 'blobs' })]);
        // A short grace, watched pass on the store's clock.
        expect(await store.dueTombstones('files', 1_500, 0, 100)).toEqual([]);
        expect(await store.countDueTombstones('files', 1_500)).toBe(0);
        const [a, b, c] = await store.findTombstones({ resource: 'files' });
        await untilStoreTime(store, c!.markedAt + 1_500);
        expect((await store.dueTombstones('files', 1_500, 0, 100)).map((t) => t.resourceId)).toEqual(['a', 'b', 'c']);
        expect(await store.countDueTombstones('files', 1_500)).toBe(3);
        expect(await store.countDueTombstones('blobs', 0)).toBe(1);

        expect(await store.dueTombstones('files', 60_000, 0, 100)).toEqual([]);
        expect((await store.dueTombstones('files', 0, 0, 100)).map((t) => t.resourceId)).toEqual(['a', 'b', 'c']);
        // Every field as the other reads give it, nulls and a confirmed mark included (the
        // SQLite store reads these rows as arrays of values, not as keyed objects).
        await store.confirmMarks('run-1', [{ tombstoneId: c!.tombstoneId, fingerprint: 'after-mark-c' }]);
        const confirmed = (await store.findTombstones({ resource: 'files' }))[2]!;
        expect(confirmed.markConfirmedAt).toEqual(expect.any(Number));
        expect(await store.dueTombstones('files', 0, 0, 100)).toEqual([a, b, confirmed]);
        expect((await store.dueTombstones('files', 0, a!.tombstoneId, 1)).map((t) => t.resourceId)).toEqual(['b']);
        expect(await store.dueTombstones('files', 0, c!.tombstoneId, 100)).toEqual([]);

        // An hour's grace, by moving one mark back in time.
        await target.raw('UPDATE tombstones SET marked_at = marked_at - 3600000 WHERE tombstone_id = ?', [b!.tombstoneId]);
        expect((await store.dueTombstones('files', 3_600_000, 0, 100)).map((t) => t.resourceId)).toEqual(['b']);
        expect(await store.countDueTombstones('files', 3_600_000)).toBe(1);

        // Only tombstones still marked are due.
        await store.beginBatch('run-2', 'files', [a!.tombstoneId], null);
        await store.liftTombstones('run-2', [c!.tombstoneId], 'owner came back');
        expect((await store.dueTombstones('files', 0, 0, 100)).map((t) => t.resourceId)).toEqual(['b']);
        expect(await store.countDueTombstones('files', 0)).toBe(1);
      });

      it('counts marked and deleting tombstones and the oldest mark', async () => {
        expect(await store.countTombstones('files')).toEqual({ marked: 0, deleting: 0, oldestMarkedAt: null });
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('c'), tomb('z', { resource: 'blobs' })]);
        const [a, , c] = await store.findTombstones({ resource: 'files' });
        await target.raw('UPDATE tombstones SET marked_at = marked_at - 5000 WHERE tombstone_id = ?', [c!.tombstoneId]);
        await store.beginBatch('run-2', 'files', [c!.tombstoneId], null);
        await store.liftTombstones('run-2', [a!.tombstoneId], 'owner came back');
        expect(await store.countTombstones('files')).toEqual({ marked: 1, deleting: 1, oldestMarkedAt: c!.markedAt - 5_000 });
      });

      it('writes a batch ahead of its deletes, moving only tombstones of its type still marked', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b', { bytes: null, owner: null }), tomb('c'), tomb('z', { resource: 'blobs' })]);
        const [a, b, c, z] = await store.findTombstones({});
        await store.liftTombstones('run-1', [c!.tombstoneId], 'owner came back');
        const before = await store.now();
        const evidence = { items: 4, statuses: { orphaned: 4 }, note: 'caf\u00e9' };
        const batch = await store.beginBatch('run-2', 'files', [b!.tombstoneId, a!.tombstoneId, c!.tombstoneId, b!.tombstoneId, 987_654, z!.tombstoneId], evidence);
        expect(batch).toMatchObject({ runId: 'run-2', resource: 'files', evidence, state: 'pending', finishedAt: null });
        expect(batch!.createdAt).toBeGreaterThanOrEqual(before);
        expect(batch!.tombstones.map((t) => [t.resourceId, t.state, t.outcomeRunId])).toEqual([
          ['a', 'deleting', 'run-2'],
          ['b', 'deleting', 'run-2'],
        ]);
        expect(batch!.tombstones[1]).toMatchObject({ tombstoneId: b!.tombstoneId, fingerprint: b!.fingerprint, owner: null, bytes: null });

        // The journal answers per resource, from the batch: each an intent, with the batch's evidence.
        const entries = await store.journal({ runId: 'run-2' });
        expect(entries.map((e) => [e.resourceId, e.outcome, e.journalId, e.batchId, e.evidence])).toEqual([
          ['a', 'intent', null, batch!.batchId, evidence],
          ['b', 'intent', null, batch!.batchId, evidence],
        ]);
        expect(entries[0]).toMatchObject({ runId: 'run-2', tombstoneId: a!.tombstoneId, resource: 'files', owner: 'svc:gone', reason: 'owner-dead', bytes: 42, error: null });
        expect(await store.pendingBatches('files')).toEqual([batch]);
        expect(await store.pendingBatches('blobs')).toEqual([]);

        expect(await store.findTombstones({})).toMatchObject([
          { resourceId: 'a', state: 'deleting' },
          { resourceId: 'b', state: 'deleting' },
          { resourceId: 'c', state: 'lifted' },
          { resourceId: 'z', state: 'marked' },
        ]);
        // Nothing left to move: no batch recorded.
        expect(await store.beginBatch('run-3', 'files', [a!.tombstoneId, c!.tombstoneId], null)).toBeNull();
        expect(await store.beginBatch('run-3', 'files', [], null)).toBeNull();
        expect(await store.beginBatch('run-3', 'files', [z!.tombstoneId], null)).toBeNull();
        expect((await store.pendingBatches('files')).map((p) => p.batchId)).toEqual([batch!.batchId]);
      });

      it("leaves out of pendingBatches the batches of a run still alive (a sibling shard's delete in flight), until it ends or its heartbeat lapses", async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b')]);
        const [a, b] = await store.findTombstones({ resource: 'files' });
        const alive = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, ttlMs: 60_000 });
        const killed = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, ttlMs: 60_000 });
        const frozen = await store.startRun({ kind: 'reap', manifestDigest: 'd', execute: true, ttlMs: 1 });
        await store.insertTombstones('run-1', [tomb('c'), tomb('d')]);
        const [, , c, d] = await store.findTombstones({ resource: 'files' });
        const inFlight = await store.beginBatch(alive.runId, 'files', [a!.tombstoneId], null);
        const left = await store.beginBatch(killed.runId, 'files', [b!.tombstoneId], null);
        const lapsed = await store.beginBatch(frozen.runId, 'files', [c!.tombstoneId], null);
        const unknown = await store.beginBatch('run-of-an-older-reaper', 'files', [d!.tombstoneId], null);
        await store.finishRun(killed.runId, { status: 'interrupted' });
        const startedAt = await store.now();
        while ((await store.now()) < startedAt + 5) await new Promise((r) => setTimeout(r, 5));
        // Recovered: an ended run's batch, a lapsed heartbeat's, and an unknown run's (an older reaper's).
        expect((await store.pendingBatches('files')).map((p) => p.batchId)).toEqual([left!.batchId, lapsed!.batchId, unknown!.batchId]);
        await store.finishRun(alive.runId, { status: 'failed' });
        expect((await store.pendingBatches('files')).map((p) => p.batchId)).toEqual([inFlight!.batchId, left!.batchId, lapsed!.batchId, unknown!.batchId]);
      });

      it('moves nothing when a batch write-ahead fails', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b')]);
        const [a, b] = await store.findTombstones({ resource: 'files' });
        const circular: Record<string, unknown> = {};
        circular.self = circular;
        await expect(store.beginBatch('run-2', 'files', [a!.tombstoneId, b!.tombstoneId], circular)).rejects.toThrow();
        expect((await store.findTombstones({ resource: 'files' })).map((t) => t.state)).toEqual(['marked', 'marked']);
        expect(await store.journal({})).toEqual([]);
        expect(await store.pendingBatches('files')).toEqual([]);
      });

      it('puts each tombstone in one batch when two sweeps begin the same deletes at once', async () => {
        await store.insertTombstones('run-1', Array.from({ length: 20 }, (_, i) => tomb(`f${i}`)));
        const ids = (await store.findTombstones({ resource: 'files' })).map((t) => t.tombstoneId);
        const other = await target.open();
        const [mine, theirs] = await Promise.all([store.beginBatch('run-a', 'files', ids, null), other.beginBatch('run-b', 'files', [...ids].reverse(), null)]);
        const moved = [...(mine?.tombstones ?? []), ...(theirs?.tombstones ?? [])].map((t) => t.tombstoneId).sort((x, y) => x - y);
        expect(moved).toEqual(ids);
        expect((await store.journal({})).length).toBe(ids.length);
        expect((await store.pendingBatches('files')).flatMap((p) => p.tombstones).length).toBe(ids.length);
        expect((await store.pendingBatches('files')).every((p) => p.tombstones.length > 0)).toBe(true);
      });

      it('records a batch outcome per tombstone, keeps the history of failed attempts, and closes the batch', async () => {
        await store.insertTombstones('run-1', ['a', 'b', 'c', 'd', 'e'].map((id) => tomb(id)));
        const marked = await store.findTombstones({ resource: 'files' });
        const id = (rid: string) => marked.find((t) => t.resourceId === rid)!.tombstoneId;
        const batch = (await store.beginBatch('run-2', 'files', marked.map((t) => t.tombstoneId), { items: 5 }))!;
        await store.finishBatch('run-2', batch.batchId, [
          { tombstoneId: id('c'), outcome: 'changed' },
          { tombstoneId: id('e'), outcome: 'changed', error: 'etag differs' },
        ]);
        expect((await store.pendingBatches('files')).map((p) => p.tombstones.map((t) => t.resourceId))).toEqual([['a', 'b', 'd']]);
        await store.finishBatch('run-2', batch.batchId, [
          { tombstoneId: id('a'), outcome: 'deleted', restoreHandle: 'version:3HL4kqtJ' },
          { tombstoneId: id('b'), outcome: 'absent' },
          { tombstoneId: id('d'), outcome: 'failed', error: 'timeout after 30s' },
          // Not deleting in this batch any more: ignored.
          { tombstoneId: id('c'), outcome: 'deleted' },
        ]);
        await store.finishBatch('run-2', batch.batchId, []);

        expect((await store.findTombstones({ resource: 'files' })).map((t) => [t.resourceId, t.state, t.note, t.restoreHandle, t.outcomeRunId])).toEqual([
          ['a', 'deleted', null, 'version:3HL4kqtJ', 'run-2'],
          ['b', 'deleted', null, null, 'run-2'],
          ['c', 'lifted', 'resource changed since it was marked', null, 'run-2'],
          ['d', 'marked', 'timeout after 30s', null, 'run-2'],
          ['e', 'lifted', 'etag differs', null, 'run-2'],
        ]);
        const journal = await store.journal({ runId: 'run-2' });
        expect(journal.map((e) => [e.resourceId, e.outcome, e.error, e.batchId])).toEqual([
          ['a', 'deleted', null, batch.batchId],
          ['b', 'absent', null, batch.batchId],
          ['c', 'changed', null, batch.batchId],
          ['d', 'failed', 'timeout after 30s', batch.batchId],
          ['e', 'changed', 'etag differs', batch.batchId],
        ]);
        // A plain delete is derived from its tombstone and batch; every other outcome is a row of its own.
        expect(journal.map((e) => e.journalId === null)).toEqual([true, false, false, false, false]);
        for (const e of journal) expect(e.evidence).toEqual({ items: 5 });
        expect(await store.pendingBatches('files')).toEqual([]);
        // A failed delete is retried by a later sweep: the tombstone is due again, and its history stays.
        expect((await store.dueTombstones('files', 0, 0, 100)).map((t) => t.resourceId)).toEqual(['d']);
        expect(await store.countTombstones('files')).toMatchObject({ marked: 1, deleting: 0 });
        const again = (await store.beginBatch('run-3', 'files', [id('d')], { items: 1 }))!;
        await store.finishBatch('run-3', again.batchId, [{ tombstoneId: id('d'), outcome: 'deleted' }]);
        expect((await store.journal({ resource: 'files' })).filter((e) => e.resourceId === 'd').map((e) => [e.runId, e.outcome, e.batchId])).toEqual([
          ['run-2', 'failed', batch.batchId],
          ['run-3', 'deleted', again.batchId],
        ]);
        expect((await store.journal({ runId: 'run-3' })).map((e) => e.resourceId)).toEqual(['d']);
      });

      it('finds the batches a crash left between write-ahead and outcome', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('c')]);
        const [a, b] = await store.findTombstones({ resource: 'files' });
        const batch = await store.beginBatch('run-2', 'files', [a!.tombstoneId, b!.tombstoneId], { step: 'sweep' });
        await store.close();

        const restarted = await target.open();
        const pending = await restarted.pendingBatches('files');
        expect(pending).toEqual([batch]);
        expect(await restarted.pendingBatches('blobs')).toEqual([]);
        expect((await restarted.dueTombstones('files', 0, 0, 100)).map((t) => t.resourceId)).toEqual(['c']);
        const active = await restarted.activeTombstones('files', ['a', 'b', 'c']);
        expect([...active.values()].map((t) => [t.resourceId, t.state])).toEqual(
          expect.arrayContaining([
            ['a', 'deleting'],
            ['b', 'deleting'],
            ['c', 'marked'],
          ]),
        );
        expect(await restarted.insertTombstones('run-3', [tomb('a')])).toBe(0);

        await restarted.finishBatch('run-3', batch!.batchId, [{ tombstoneId: a!.tombstoneId, outcome: 'absent', error: 'recovered: gone' }]);
        expect((await restarted.pendingBatches('files')).map((p) => p.tombstones.map((t) => t.resourceId))).toEqual([['b']]);
        await restarted.finishBatch('run-3', batch!.batchId, [{ tombstoneId: b!.tombstoneId, outcome: 'failed', error: 'interrupted before the delete' }]);
        expect(await restarted.pendingBatches('files')).toEqual([]);
        expect((await restarted.dueTombstones('files', 0, 0, 100)).map((t) => t.resourceId)).toEqual(['b', 'c']);
        // Journal entries belong to the run that began the batch; the tombstones name the run that settled them.
        expect((await restarted.findTombstones({ resource: 'files' })).map((t) => t.outcomeRunId)).toEqual(['run-3', 'run-3', null]);
        expect((await restarted.journal({ runId: 'run-2' })).map((e) => [e.resourceId, e.outcome])).toEqual([
          ['a', 'absent'],
          ['b', 'failed'],
        ]);
      });

      it('turns the intent entries of schema 3 into pending batches (migration 4)', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('c'), tomb('x', { resource: 'blobs' })]);
        const [a, b, c, x] = await store.findTombstones({});
        // As a reaper of schema 3 left them: a run died with a, b and x at intent; c was deleted before.
        await target.raw(`UPDATE tombstones SET state = 'deleting', outcome_run_id = 'run-old' WHERE tombstone_id IN (?, ?, ?)`, [a!.tombstoneId, b!.tombstoneId, x!.tombstoneId]);
        await target.raw(`UPDATE tombstones SET state = 'deleted', outcome_run_id = 'run-old' WHERE tombstone_id = ?`, [c!.tombstoneId]);
        for (const [t, outcome] of [[c!, 'deleted'], [a!, 'intent'], [b!, 'intent'], [x!, 'intent']] as const) {
          await target.raw(
            `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, at)
             SELECT 'run-old', tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, NULL, '${outcome}', marked_at FROM tombstones WHERE tombstone_id = ?`,
            [t.tombstoneId],
          );
        }
        // A store that has version 5 (job claims, released first) and not 4 gets 4 all the same.
        await target.raw('DELETE FROM reaper_migrations WHERE version = 4');
        const upgraded = await target.open();
        expect((await target.raw('SELECT version FROM reaper_migrations ORDER BY version')).map((r) => Number(r.version))).toEqual(VERSIONS);

        const files = await upgraded.pendingBatches('files');
        const blobs = await upgraded.pendingBatches('blobs');
        expect(files.map((p) => [p.runId, p.state, p.tombstones.map((t) => t.resourceId)])).toEqual([['run-old', 'pending', ['a', 'b']]]);
        expect(blobs.map((p) => [p.runId, p.tombstones.map((t) => t.resourceId)])).toEqual([['run-old', ['x']]]);
        expect((await upgraded.journal({ runId: 'run-old' })).map((e) => [e.resourceId, e.outcome])).toEqual([
          ['c', 'deleted'],
          ['a', 'intent'],
          ['b', 'intent'],
          ['x', 'intent'],
        ]);
        await upgraded.finishBatch('run-new', files[0]!.batchId, [
          { tombstoneId: a!.tombstoneId, outcome: 'deleted', error: 'recovered after interruption: the resource is gone' },
          { tombstoneId: b!.tombstoneId, outcome: 'failed', error: 'interrupted before the delete; will be re-verified' },
        ]);
        expect(await upgraded.pendingBatches('files')).toEqual([]);
        expect((await upgraded.findTombstones({ resource: 'files' })).map((t) => t.state)).toEqual(['deleted', 'marked', 'deleted']);
      });

      it('lifts only tombstones that are still marked', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('c')]);
        const [a, b, c] = await store.findTombstones({ resource: 'files' });
        await store.beginBatch('run-2', 'files', [c!.tombstoneId], null);
        expect(await store.liftTombstones('run-3', [a!.tombstoneId, c!.tombstoneId, a!.tombstoneId, 424_242], 'owner svc:gone is live again')).toBe(1);
        expect(await store.liftTombstones('run-3', [], 'nothing')).toBe(0);
        expect(await store.findTombstones({ resource: 'files' })).toMatchObject([
          { tombstoneId: a!.tombstoneId, state: 'lifted', note: 'owner svc:gone is live again', outcomeRunId: 'run-3' },
          { tombstoneId: b!.tombstoneId, state: 'marked', note: null },
          { tombstoneId: c!.tombstoneId, state: 'deleting', outcomeRunId: 'run-2' },
        ]);
        expect(await store.liftTombstones('run-4', [a!.tombstoneId], 'again')).toBe(0);
      });

      it('finds tombstones by run, type, id and state', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('x', { resource: 'blobs' })]);
        const [a] = await store.findTombstones({ resource: 'files' });
        await store.beginBatch('run-2', 'files', [a!.tombstoneId], null);
        const ids = async (filter: Parameters<StateStore['findTombstones']>[0]) => (await store.findTombstones(filter)).map((t) => t.resourceId);
        expect(await ids({ runId: 'run-1' })).toEqual(['a', 'b', 'x']);
        expect(await ids({ runId: 'run-2' })).toEqual(['a']);
        expect(await ids({ resource: 'blobs' })).toEqual(['x']);
        expect(await ids({ states: ['deleting'] })).toEqual(['a']);
        expect(await ids({ states: ['marked', 'deleting'], resource: 'files' })).toEqual(['a', 'b']);
        expect(await ids({ resource: 'files', resourceId: 'b' })).toEqual(['b']);
        expect(await ids({ resource: 'blobs', resourceId: 'b' })).toEqual([]);
        expect(await ids({ limit: 1 })).toEqual(['a']);
        expect(await ids({ states: ['restored'] })).toEqual([]);
      });

      it('sets a tombstone state directly (restore)', async () => {
        await store.insertTombstones('run-1', [tomb('a')]);
        const [a] = await store.findTombstones({});
        const batch = await store.beginBatch('run-2', 'files', [a!.tombstoneId], null);
        await store.finishBatch('run-2', batch!.batchId, [{ tombstoneId: a!.tombstoneId, outcome: 'deleted', restoreHandle: 'quarantine/a' }]);
        expect(await store.setTombstoneState(a!.tombstoneId, 'restored', 'restored by operator')).toBe(true);
        expect(await store.findTombstones({})).toMatchObject([{ state: 'restored', note: 'restored by operator', restoreHandle: 'quarantine/a' }]);
      });

      it('sets a state only from the state named, and finds tombstones by the end of their note', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b')]);
        const [a, b] = await store.findTombstones({});
        await store.beginBatch('run-2', 'files', [a!.tombstoneId], null);
        // a moved on to deleting: a note meant for a lifted tombstone leaves it as it is.
        expect(await store.setTombstoneState(a!.tombstoneId, 'lifted', 'owner-live; mark left', 'lifted')).toBe(false);
        expect(await store.liftTombstones('run-3', [b!.tombstoneId], 'owner-live')).toBe(1);
        expect(await store.setTombstoneState(b!.tombstoneId, 'lifted', 'owner-live; mark left', 'lifted')).toBe(true);
        expect(await store.findTombstones({})).toMatchObject([
          { resourceId: 'a', state: 'deleting', note: null },
          { resourceId: 'b', state: 'lifted', note: 'owner-live; mark left' },
        ]);
        expect((await store.findTombstones({ noteEndsWith: 'mark left' })).map((t) => t.resourceId)).toEqual(['b']);
        expect(await store.findTombstones({ noteEndsWith: 'owner-live' })).toEqual([]);
        await expect(store.findTombstones({ noteEndsWith: '50%' })).rejects.toThrow(/noteEndsWith/);
      });

      it('reads the journal by run and type', async () => {
        await store.insertTombstones('run-1', [tomb('a'), tomb('b'), tomb('x', { resource: 'blobs' })]);
        const [a, b, x] = await store.findTombstones({});
        await store.beginBatch('run-2', 'files', [a!.tombstoneId], null);
        await store.beginBatch('run-2', 'blobs', [x!.tombstoneId], null);
        await store.beginBatch('run-3', 'files', [b!.tombstoneId], null);
        const ids = (entries: { resourceId: string }[]) => entries.map((e) => e.resourceId);
        expect(ids(await store.journal({}))).toEqual(['a', 'x', 'b']);
        expect(ids(await store.journal({ runId: 'run-2' }))).toEqual(['a', 'x']);
        expect(ids(await store.journal({ resource: 'files' }))).toEqual(['a', 'b']);
        expect(ids(await store.journal({ runId: 'run-2', resource: 'blobs' }))).toEqual(['x']);
        expect(ids(await store.journal({ limit: 2 }))).toEqual(['a', 'x']);
      });
    });

    describe.sequential('the store itself', () => {
      it('reads time from the store clock, in whole milliseconds', async () => {
        const first = await store.now();
        const second = await store.now();
        expect(Number.isInteger(first)).toBe(true);
        expect(second).toBeGreaterThanOrEqual(first);
        // The servers here share the machine's clock; a store elsewhere need not.
        expect(Math.abs(first - Date.now())).toBeLessThan(60_000);
      });

      it('migrates idempotently, also when several processes open a new store at once', async () => {
        await store.migrate();
        await store.migrate();
        expect((await target.raw('SELECT version FROM reaper_migrations')).map((r) => Number(r.version))).toEqual(VERSIONS);

        const fresh = await makeTarget(dialect, drops, closers, server);
        const stores = await Promise.all([fresh.open(), fresh.open(), fresh.open()]);
        expect(stores.map((s) => s.dialect)).toEqual([dialect, dialect, dialect]);
        expect((await fresh.raw('SELECT version FROM reaper_migrations')).map((r) => Number(r.version))).toEqual(VERSIONS);
        await stores[0]!.acquireLease({ key: 'k', holder: 'h', ttlMs: 5_000 });
        expect(await stores[2]!.liveKeys(['k'])).toEqual(new Set(['k']));
      });

      it('refuses a schema newer than it knows', async () => {
        await target.raw('INSERT INTO reaper_migrations (version, applied_at) VALUES (999, 0)');
        await expect(store.migrate()).rejects.toThrow(BackendError);
        await expect(store.migrate()).rejects.toThrow(/schema version 999, newer than this reaper knows \(7\)/);
        await expect(target.open()).rejects.toThrow(/upgrade reaper/);
      });

      it('upgrades a version-1 store in place: held leases stay live, and renewals write no indexed column', async () => {
        // Back to version 1's lease indexes and runs table, as a store written by an older reaper has them.
        const v1 =
          dialect === 'mysql'
            ? [
                'ALTER TABLE leases DROP INDEX leases_key, ADD INDEX leases_key_expires (`key`, expires_at), ADD INDEX leases_expires (expires_at)',
                'ALTER TABLE runs DROP INDEX runs_running, DROP COLUMN heartbeat_at, DROP COLUMN alive_until',
                'ALTER TABLE runs DROP INDEX runs_job, DROP COLUMN job, DROP COLUMN shard',
                'DROP TABLE job_claims',
                'DROP TABLE job_claim_shards',
                'DROP TABLE job_verdicts',
              ]
            : [
                'DROP INDEX leases_key',
                'CREATE INDEX leases_key_expires ON leases (key, expires_at)',
                'CREATE INDEX leases_expires ON leases (expires_at)',
                'DROP INDEX runs_running',
                'ALTER TABLE runs DROP COLUMN heartbeat_at',
                'ALTER TABLE runs DROP COLUMN alive_until',
                'DROP INDEX runs_job',
                'ALTER TABLE runs DROP COLUMN job',
                'ALTER TABLE runs DROP COLUMN shard',
                'DROP TABLE job_claims',
                'DROP TABLE job_claim_shards',
                'DROP TABLE job_verdicts',
              ];
        for (const sql of [...v1, 'DELETE FROM reaper_migrations WHERE version >= 2']) await target.raw(sql);
        const held = await store.acquireLease({ key: 'svc:upgrade', holder: 'h', ttlMs: 5_000 });

        const upgraded = await target.open();
        expect((await target.raw('SELECT version FROM reaper_migrations ORDER BY version')).map((r) => Number(r.version))).toEqual(VERSIONS);
        expect(await upgraded.liveKeys(['svc:upgrade'])).toEqual(new Set(['svc:upgrade']));
        const [renewed] = await upgraded.renewLeases([held.leaseId], { ttlMs: 10_000 });
        expect(renewed!.lease?.expiresAt).toBeGreaterThan(held.expiresAt);

        const indexed = new Set(
          (
            await target.raw(
              dialect === 'sqlite'
                ? `SELECT ii.name AS col FROM pragma_index_list('leases') AS il JOIN pragma_index_info(il.name) AS ii`
                : dialect === 'postgres'
                  ? `SELECT a.attname AS col FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'leases'::regclass`
                  : `SELECT column_name AS col FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'leases'`,
            )
          ).map((r) => String(r.col ?? r.COLUMN_NAME)),
        );
        expect(indexed).toContain('key');
        for (const written of ['renewed_at', 'ttl_ms', 'expires_at']) expect(indexed).not.toContain(written);

        // The upgraded runs table keeps a heartbeat.
        const run = await upgraded.startRun({ kind: 'audit', manifestDigest: 'd', execute: false, ttlMs: 5_000 });
        expect(run.aliveUntil).toBe(run.startedAt + 5_000);

        // A migration cut short after its DDL committed (MySQL commits each DDL statement
        // on its own) is applied again without failing. (A SQLite migration commits with
        // its record, so it cannot be cut short; PostgreSQL's DDL is re-runnable all the same.)
        if (dialect === 'sqlite') return;
        await target.raw('DELETE FROM reaper_migrations WHERE version >= 2');
        await target.open();
        expect((await target.raw('SELECT version FROM reaper_migrations ORDER BY version')).map((r) => Number(r.version))).toEqual(VERSIONS);
      });

      it('is opened by URL and describes itself without secrets', async () => {
        expect(store.dialect).toBe(dialect);
        if (dialect === 'sqlite') {
          expect(store.description).toBe(target.url);
          return;
        }
        const port = await freePort();
        const scheme = dialect === 'postgres' ? 'postgresql' : 'mysql';
        const refused = openStateStore(`${scheme}://reaper:s3cret-pw@127.0.0.1:${port}/reaper`, { leaseBounds: BOUNDS });
        await expect(refused).rejects.toThrow(BackendError);
        const error = (await refused.catch((e: unknown) => e)) as Error;
        expect(error.message).toContain(`is ${dialect === 'postgres' ? 'PostgreSQL' : 'MySQL'} running at 127.0.0.1:${port}?`);
        expect(error.message).not.toContain('s3cret-pw');

        // A wrong password: refused by a server that checks it (with a hint), accepted by
        // one that trusts loopback; the password shows up in neither case.
        const withPassword = new URL(target.url);
        withPassword.username ||= dialect === 'postgres' ? 'postgres' : 'root';
        withPassword.password = 's3cret-pw';
        const outcome = await openStateStore(withPassword.toString(), { leaseBounds: BOUNDS }).catch((e: unknown) => e);
        if (outcome instanceof Error) {
          expect(outcome).toBeInstanceOf(BackendError);
          expect(outcome.message).toContain('check the user name and password');
          expect(outcome.message).toContain(':***@');
          expect(outcome.message).not.toContain('s3cret-pw');
        } else {
          const opened = outcome as StateStore;
          closers.push(() => opened.close());
          expect(opened.description).toContain(':***@');
          expect(opened.description).not.toContain('s3cret-pw');
        }
      });

      itWhere(dialect === 'postgres')('keeps its tables in the schema named by ?schema=', async () => {
        const scoped = await openStateStore(`${target.url}?schema=reaper_state`, { leaseBounds: BOUNDS });
        closers.push(() => scoped.close());
        expect(scoped.description).toContain('?schema=reaper_state');
        const tables = (await target.raw(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'reaper_state'`)).map((r) => r.table_name);
        expect(tables).toEqual(expect.arrayContaining(['leases', 'tombstones', 'journal', 'reaper_migrations']));

        await scoped.acquireLease({ key: 'svc:scoped', holder: 'h', ttlMs: 5_000 });
        expect(await scoped.liveKeys(['svc:scoped'])).toEqual(new Set(['svc:scoped']));
        expect(await store.liveKeys(['svc:scoped'])).toEqual(new Set());
        await expect(openStateStore(`${target.url}?schema=bad-name`, { leaseBounds: BOUNDS })).rejects.toThrow(/not a plain identifier/);
      });
    });
  });
}
}
