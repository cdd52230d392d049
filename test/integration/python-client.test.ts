/**
 * The standard-library Python client (clients/python/reaper_lease.py, docs/http-api.md)
 * against a running daemon on a real SQLite store: acquire, renew with the lease's own
 * token, a heartbeat thread that holds a 1 s lease through several ttls, loss on expiry
 * (409 expired, and a heartbeat that reports it), release, and a renewal after release
 * (409 released). Under CI=true a missing python3 fails instead of skipping.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { openStateStore } from '../../src/state/open.js';
import type { StateStore } from '../../src/state/types.js';

const havePython = spawnSync('python3', ['--version']).status === 0;
if (!havePython && process.env.CI === 'true') throw new Error('the Python client test needs python3');
const TOKEN = 'python-client-token-0123456789';
const SCRIPT = path.resolve(__dirname, 'support/python-lease-check.py');

let daemon: Daemon | null = null;
let store: StateStore | null = null;
let dir = '';
afterEach(async () => {
  await daemon?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!havePython)('Python lease client', () => {
  it('acquires, renews with the lease token, holds through a heartbeat, loses on expiry, releases', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'reaper-python-'));
    store = await openStateStore(`sqlite:${path.join(dir, 'state.db')}`, { leaseBounds: { minTtlMs: 100, maxTtlMs: 86_400_000 } });
    daemon = await startDaemon({ store, holder: 'daemon@test', listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, stopTimeoutMs: 2_000 });
    const { stdout } = await promisify(execFile)('python3', [SCRIPT, daemon.url, TOKEN], { timeout: 60_000 });
    const seen = JSON.parse(stdout);
    expect(seen.acquired).toEqual({ key: 'session:py-1', holder: 'python-test', generation: 1, hasToken: true });
    expect(seen.renewed).toEqual({ generation: 1, sameId: true, later: true });
    expect(seen.foreignToken).toEqual({ status: 403, why: 'not-holder' });
    expect(seen.heartbeat.lost).toBe(false);
    expect(seen.heartbeat.errors).toEqual([]);
    expect(seen.heartbeat.renewals).toBeGreaterThanOrEqual(2); // a 1 s lease alive after 2.5 s was renewed
    expect(seen.afterHeartbeat).toEqual({ active: true, renewedSinceAcquire: true });
    expect(seen.renewAfterExpiry).toEqual({ status: 409, why: 'expired' });
    expect(seen.lateHeartbeat).toEqual({ lost: true, why: 'expired', onLost: ['expired'] });
    expect(seen.renewAfterRelease).toEqual({ status: 409, why: 'released' });
    expect(seen.listed).toEqual(['session:py-1', 'session:py-1']);
    expect(seen.wrongApiToken).toEqual({ status: 401 });
    // A renewal hanging on a daemon that stopped answering does not keep the holder past its deadline.
    expect(seen.hungDaemon).toEqual({ lost: true, why: 'deadline', withinTtlAndABit: true });
    // What the daemon's store says: two leases on the key, the second a newer generation, both ended.
    const leases = await store.listLeases({ key: 'session:py-1', includeInactive: true, limit: 10 });
    expect(leases.map((l) => l.generation).sort()).toEqual([1, 2]);
  });
});
