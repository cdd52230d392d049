/**
 * The lease holders in a partition (docs/safety.md §19, §20): the daemon and the
 * LeaseKeeper with their PostgreSQL or MariaDB state store behind a TCP proxy that hangs
 * (stops forwarding, closes nothing) or refuses, and the SQLite store held locked by
 * another connection. A holder must count its lease as held only until the send time
 * of its last confirmed renewal plus the ttl, minus a margin, by its own clock: its
 * readiness, metrics and signals must say "lost" before the store's clock lets the lease
 * expire, whether the store answers, refuses or hangs. And the built `reaper daemon`
 * must exit within its shutdown bound on SIGTERM while the store hangs.
 *
 * An observer store, connected directly (not through the proxy), plays the reaper: it
 * sees what a reap would see.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, test } from 'vitest';
import { LeaseKeeper, type LostReason } from '../../src/client/lease-keeper.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { LeaseLostError } from '../../src/errors.js';
import { openStateStore } from '../../src/state/open.js';
import type { AcquiredLease, Lease, StateStore } from '../../src/state/types.js';
import { LogCapture } from './support/log-capture.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable, type KeepOptions } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

const BIN = path.resolve(__dirname, '../../bin/reaper');
const TOKEN = 'partition-test-token-0123456789abcdef';
const TEST_LEASE_BOUNDS = { minTtlMs: 100, maxTtlMs: 86_400_000 };
/** Short leases, so a partition outlasts them in a few seconds; a margin wide enough for a loaded CI machine. */
const TTL_MS = 4_000;
const INTERVAL_MS = 1_000;
const MARGIN_MS = 1_000;
/** The store's own deadline for each call (driver timeouts, server statement timeouts). */
const STORE_TIMEOUT_MS = 500;
const KEYS = ['svc:a', 'svc:b'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A daemon holding KEYS with the short test leases, over `store`, logging to `log`. */
function startHolder(store: StateStore, log: LogCapture, options: Partial<DaemonOptions> = {}): Promise<Daemon> {
  return startDaemon({
    store,
    holder: 'partition-test',
    listen: { host: '127.0.0.1', port: 0 },
    token: TOKEN,
    log,
    leases: KEYS,
    ttlMs: TTL_MS,
    intervalMs: INTERVAL_MS,
    safetyMarginMs: MARGIN_MS,
    ...options,
  });
}

/** Poll until `check` holds (a wait, not a timed assertion: the limit only guards against a hang). */
async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (!line) throw new Error(`no sample ${name}${labels}`);
  return Number(line.split(' ')[1]);
}

async function readyz(daemon: Daemon): Promise<{ status: number; json: { ready: boolean; leases: { held: number; wanted: number } } }> {
  const response = await fetch(`${daemon.url}/readyz`);
  return { status: response.status, json: (await response.json()) as { ready: boolean; leases: { held: number; wanted: number } } };
}

/**
 * The leases a holder took after a partition are new ones for the same keys: a later generation
 * than the lost ones. Not necessarily the next: an acquire the holder gave up on at its deadline
 * may still have committed when the partition lifted, and its retry then takes one more.
 */
function expectNewLeases(lost: readonly Lease[], fresh: readonly Lease[]): void {
  expect(fresh.map((l) => l.key).sort()).toEqual(lost.map((l) => l.key).sort());
  for (const lease of fresh) {
    const old = lost.find((l) => l.key === lease.key)!;
    expect(lease.generation, lease.key).toBeGreaterThan(old.generation);
    expect(lease.leaseId).not.toBe(old.leaseId);
  }
}

interface Dialect {
  name: 'postgres' | 'mysql';
  available(): boolean;
  fresh(cleanups: (() => Promise<void>)[], options: KeepOptions): Promise<string>;
}

const dialects: Dialect[] = [
  { name: 'postgres', available: () => serviceAvailable('postgres'), fresh: freshPgDatabase },
  { name: 'mysql', available: () => serviceAvailable('mysql'), fresh: freshMysqlDatabase },
];

// The dialects' blocks run side by side (each test has its own database, proxy, store connections and log);
// the tests within a block one after another, sharing its hooks' variables (it.sequential). Most of a test
// is waiting for a ttl, a deadline or a lease to run out.
for (const dialect of dialects) {
  describe.skipIf(!dialect.available()).concurrent(`lease holders with a partitioned ${dialect.name} state store`, () => {
    const it = test.sequential;
    const cleanups: (() => Promise<void>)[] = [];
    const stops: (() => Promise<unknown>)[] = [];
    let proxy: TcpProxy;
    let proxiedUrl: string;
    /** The holder's store, through the proxy. */
    let store: StateStore;
    /** The reaper's view: the same database, connected directly. */
    let observer: StateStore;
    let log: LogCapture;
    /** Whether the test failed: its database is kept as evidence (known in afterEach; onTestFailed cannot follow a test across awaits when blocks run side by side). */
    let failed = false;

    beforeEach(async () => {
      failed = false;
      const url = await dialect.fresh(cleanups, { keep: () => failed });
      ({ proxy, url: proxiedUrl } = await TcpProxy.forUrl(url));
      cleanups.push(() => proxy.close());
      observer = await openStateStore(url, { leaseBounds: TEST_LEASE_BOUNDS });
      cleanups.push(() => observer.close());
      store = await openStateStore(proxiedUrl, { leaseBounds: TEST_LEASE_BOUNDS, timeoutMs: STORE_TIMEOUT_MS });
      cleanups.push(() => store.close());
      log = new LogCapture();
    });

    afterEach(async (context) => {
      failed = context.task.result?.state === 'fail';
      await Promise.all(stops.splice(0).map((stop) => stop()));
      await runCleanups(cleanups);
    });

    const start = async (): Promise<Daemon> => {
      const daemon = await startHolder(store, log, { stopTimeoutMs: 2_000 });
      stops.push(() => daemon.stop());
      return daemon;
    };

    /** The lease-lost events of the daemon's log, with the store's expiry of each lost lease. */
    async function lostBeforeExpiry(held: readonly Lease[]): Promise<void> {
      const lost = log.events().filter((e) => e.event === 'lease-lost');
      expect(lost.map((e) => e.key).sort()).toEqual([...KEYS].sort());
      for (const event of lost) {
        const lease = held.find((l) => l.leaseId === event.leaseId)!;
        const inStore = (await observer.getLease(lease.leaseId))!;
        // The holder said "lost" no later than the store's clock let the lease run out (same host, same clock).
        expect(Date.parse(event.time), JSON.stringify({ event, inStore })).toBeLessThanOrEqual(inStore.expiresAt);
      }
    }

    it('a hung store: readiness, leases_active, heartbeat lag and leases_lost follow the daemon\'s own clock, ahead of the store; then it recovers with new leases', async () => {
      const daemon = await start();
      await until('ready', () => daemon.isReady());
      const held = daemon.leases();
      expect(held).toHaveLength(2);

      proxy.hang();
      await until('the daemon to count its leases lost', () => daemon.leases().length === 0);
      expect(daemon.isReady()).toBe(false);
      const metrics = await daemon.metrics();
      expect(sample(metrics, 'reaper_daemon_ready')).toBe(0);
      expect(sample(metrics, 'reaper_daemon_leases_active')).toBe(0);
      expect(sample(metrics, 'reaper_daemon_leases_lost_total')).toBe(2);
      expect(sample(metrics, 'reaper_daemon_renewals_total', '{outcome="failed"}')).toBeGreaterThan(0);
      // Overdue by at least what separates the last confirmed renewal from the lost lease.
      expect(sample(metrics, 'reaper_daemon_heartbeat_lag_seconds')).toBeGreaterThan(0);
      const probe = await readyz(daemon);
      expect(probe.status).toBe(503);
      expect(probe.json.leases).toEqual({ held: 0, wanted: 2 });
      await lostBeforeExpiry(held);

      // What the reaper sees: the leases run out by the store's clock, and the daemon already said so.
      await until('the store to let the leases expire', async () => (await observer.liveKeys(KEYS)).size === 0);
      expect(daemon.isReady()).toBe(false);
      expect(sample(await daemon.metrics(), 'reaper_daemon_leases_active')).toBe(0);

      await proxy.resume();
      await until('ready again', () => daemon.isReady());
      const fresh = daemon.leases();
      expectNewLeases(held, fresh);
      expect(await observer.liveKeys(KEYS)).toEqual(new Set(KEYS));
      // The lost leases stay lost: renewals held up in the partition find them expired (docs/safety.md §15).
      const storeNow = await observer.now();
      for (const old of held) expect((await observer.getLease(old.leaseId))!.expiresAt).toBeLessThanOrEqual(storeNow);
    });

    it('a refused store: leases_active and /readyz say the leases are gone once their deadline passed, before the store is back', async () => {
      const daemon = await start();
      await until('ready', () => daemon.isReady());
      const held = daemon.leases();

      await proxy.refuse();
      await until('the store to let the leases expire', async () => (await observer.liveKeys(KEYS)).size === 0);
      const probe = await readyz(daemon);
      expect(probe.status).toBe(503);
      expect(probe.json.leases).toEqual({ held: 0, wanted: 2 });
      const metrics = await daemon.metrics();
      expect(sample(metrics, 'reaper_daemon_leases_active')).toBe(0);
      expect(sample(metrics, 'reaper_daemon_leases_lost_total')).toBe(2);
      await lostBeforeExpiry(held);

      await proxy.resume();
      await until('ready again', () => daemon.isReady());
      expectNewLeases(held, daemon.leases());
    });

    it('LeaseKeeper: a hung store aborts the lease\'s signal and reports it lost before the store lets it expire; stop() stays bounded', async () => {
      const lost: [AcquiredLease, LostReason][] = [];
      const keeper = new LeaseKeeper({
        leases: store,
        ttlMs: TTL_MS,
        intervalMs: INTERVAL_MS,
        safetyMarginMs: MARGIN_MS,
        stopTimeoutMs: 1_000,
        holder: 'keeper-test',
        onLost: (lease, why) => lost.push([lease, why]),
      });
      stops.push(() => keeper.stop());
      const lease = await keeper.acquire('svc:kept');
      expect(lease.signal).toBeInstanceOf(AbortSignal);
      expect(lease.signal.aborted).toBe(false);
      let abortedAt = 0;
      lease.signal.addEventListener('abort', () => (abortedAt = Date.now()));

      proxy.hang();
      await until('the lease signal to abort', () => lease.signal.aborted);
      expect(lease.signal.reason).toBeInstanceOf(LeaseLostError);
      expect((lease.signal.reason as LeaseLostError).why).toBe('deadline');
      expect(lost.map(([l, why]) => [l.leaseId, why])).toEqual([[lease.leaseId, 'deadline']]);
      expect(keeper.leases()).toEqual([]);
      expect(abortedAt).toBeLessThanOrEqual((await observer.getLease(lease.leaseId))!.expiresAt);

      // Stopping while the store hangs: the release cannot be confirmed, and stop() still returns.
      await keeper.stop();
      await proxy.resume();
    });

    it('the built `reaper daemon` exits 0 within its shutdown bound on SIGTERM while the store hangs', async ({ onTestFailed }) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'reaper-partition-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const tokenFile = path.join(dir, 'token');
      writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
      let stdout = '';
      let stderr = '';
      // Evidence on failure: what the daemon logged.
      onTestFailed(() => console.error(`[partition test] daemon output:\n${stdout}\n${stderr}`));
      const child = spawn(
        process.execPath,
        [BIN, 'daemon', '--state', proxiedUrl, '--lease', ...KEYS, '--ttl', '6s', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--release-on-exit', '--shutdown-timeout', '1s'],
        { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      child.once('exit', (code, signal) => (exit = { code, signal }));
      try {
        await until('the daemon to be ready', () => /"event":"ready"/.test(stdout), 30_000);
        proxy.hang();
        // Past the renewal interval (2 s): a renewal is under way and hangs when the signal comes.
        await sleep(2_500);
        child.kill('SIGTERM');
        // The bound: --shutdown-timeout 1s (the releases cannot finish in it); the limit here only stops a hang.
        await until('the daemon to exit', () => exit !== null, 20_000);
      } finally {
        if (exit === null) child.kill('SIGKILL');
      }
      expect(exit, stderr).toEqual({ code: 0, signal: null });
      const events = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { event: string }).event);
      // The releases waited on the store until their share of the bound ran out (a tenth is kept
      // for closing), and the daemon exited anyway: its close of the hung store either fit in what
      // was left (`stopped` last) or was cut by the bound (`shutdown-timeout` last).
      expect(events).toEqual(expect.arrayContaining(['stopping', 'release-failed', 'stopped']));
      expect(['stopped', 'shutdown-timeout']).toContain(events.at(-1));
      expect(stdout + stderr).not.toContain(TOKEN);
      await proxy.resume();
    });
  });
}

describe.concurrent('lease holders with a locked SQLite state store (busy)', () => {
  let dir: string;
  let store: StateStore;
  const stops: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'reaper-busy-'));
    store = await openStateStore(`sqlite:${path.join(dir, 'state.db')}`, { leaseBounds: TEST_LEASE_BOUNDS, timeoutMs: 200 });
  });

  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the daemon counts its leases lost by its own clock while the store answers "busy", then recovers', async () => {
    const log = new LogCapture();
    const daemon = await startHolder(store, log);
    stops.push(() => daemon.stop());
    await until('ready', () => daemon.isReady());

    const locker = new Database(path.join(dir, 'state.db'));
    locker.exec('BEGIN EXCLUSIVE');
    try {
      await until('the daemon to count its leases lost', async () => (await readyz(daemon)).json.leases.held === 0);
      const metrics = await daemon.metrics();
      expect(sample(metrics, 'reaper_daemon_ready')).toBe(0);
      expect(sample(metrics, 'reaper_daemon_leases_active')).toBe(0);
      expect(sample(metrics, 'reaper_daemon_leases_lost_total')).toBe(2);
      expect(log.events().filter((e) => e.event === 'renewal-failed').length).toBeGreaterThan(0);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    await until('ready again', () => daemon.isReady());
    expect(daemon.leases().map((l) => l.generation)).toEqual([2, 2]);
  });
});
