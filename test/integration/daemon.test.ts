/**
 * The lease daemon against a real state store: the HTTP lease API (auth, holder
 * isolation, no resurrection, limits), readiness, Prometheus metrics, the heartbeat
 * loop, graceful stop, secrets kept out of logs, TLS, and `reaper daemon` itself.
 *
 * Stores come from `storeFactories`; the SQLite store runs everywhere, and the server
 * dialects join by adding a factory (each test gets a fresh store).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFailed, vi } from 'vitest';
import { daemonCommand } from '../../src/cli/commands/daemon.js';
import type { CliIO } from '../../src/cli/io.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { BackendError } from '../../src/errors.js';
import { openStateStore } from '../../src/state/open.js';
import { requiredUnderCI } from './support/ci.js';
import { LogCapture } from './support/log-capture.js';
import { describeWhere, itWhere } from '../support/matrix.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';
import type { StateStore } from '../../src/state/types.js';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/reaper');
const TOKEN = 'daemon-test-token-0123456789abcdef';
const OTHER_TOKEN = 'wrong-token-wrong-token-wrong-token';
/** Short leases are allowed in these tests, so expiry can be watched in well under a second. */
const TEST_LEASE_BOUNDS = { minTtlMs: 100, maxTtlMs: 86_400_000 };

// ------------------------------------------------------------------ stores

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

// ------------------------------------------------------------------ helpers

/** Counts of the handle types a daemon could leave behind. */
function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

const WATCHED = ['Timeout', 'TCPServerWrap', 'TCPSocketWrap', 'TLSWrap'];

/** Wait briefly for sockets and timers to wind down, then require no more than before. */
async function expectNoLeaks(before: Record<string, number>, types: readonly string[] = WATCHED): Promise<void> {
  const excess = () => types.filter((t) => (handleCounts()[t] ?? 0) > (before[t] ?? 0));
  for (let i = 0; i < 40 && excess().length > 0; i++) await sleep(50);
  expect(excess().map((t) => `${t}: ${handleCounts()[t]} > ${before[t] ?? 0}`)).toEqual([]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ApiCall {
  token?: string | null;
  leaseToken?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

async function api(daemon: Daemon, method: string, route: string, call: ApiCall = {}) {
  const headers: Record<string, string> = { ...call.headers };
  const token = call.token === undefined ? TOKEN : call.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (call.leaseToken !== undefined) headers['x-lease-token'] = call.leaseToken;
  let body: string | undefined = call.rawBody;
  if (call.body !== undefined) {
    body = JSON.stringify(call.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${daemon.url}${route}`, { method, headers, body });
  const text = await response.text();
  let json: unknown = null;
  if (text && (response.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(text);
  return { status: response.status, json: json as Record<string, unknown> & { error?: string }, text, headers: response.headers };
}

/** A tiny Prometheus text-format reader: families with their type and samples. Throws on a malformed line. */
function parsePrometheus(text: string): Map<string, { type: string; samples: { name: string; labels: Record<string, string>; value: number }[] }> {
  const families = new Map<string, { type: string; samples: { name: string; labels: Record<string, string>; value: number }[] }>();
  // Values as Prometheus's own parser reads them (NaN and Inf in any case).
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.]+(?:e[+-]?\d+)?|nan|[+-]?inf))(?: \d+)?$/i;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      families.set(type[1]!, { type: type[2]!, samples: [] });
      continue;
    }
    const m = sample.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    const family = [...families.keys()].filter((f) => m[1] === f || m[1]!.startsWith(`${f}_`)).sort((a, b) => b.length - a.length)[0];
    if (!family) throw new Error(`sample without a TYPE line: ${line}`);
    const raw = m[3]!.toLowerCase();
    const value = raw === 'nan' ? NaN : raw.endsWith('inf') ? (raw.startsWith('-') ? -Infinity : Infinity) : Number(raw);
    families.get(family)!.samples.push({ name: m[1]!, labels, value });
  }
  return families;
}

function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const family = parsePrometheus(text).get(name.replace(/_(bucket|sum|count)$/, ''));
  const s = family?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (!s) throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
  return s.value;
}

/** A store whose chosen methods fail as an unreachable store would. */
function failing<T extends object>(store: T, methods: readonly string[]): T {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && methods.includes(prop)) return () => Promise.reject(new BackendError('state store sqlite:x: connection refused'));
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

// ------------------------------------------------------------------ suites

/** `reaper daemon` reaches the built CLI once src/cli/main.ts has its commander entry (and `npm run build` ran). */
const cliHasDaemon =
  existsSync(path.join(ROOT, 'dist/cli/commands/daemon.js')) &&
  /^\s+daemon\b/m.test(spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8', timeout: 30_000 }).stdout ?? '');
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

// Outside CI a missing tool skips its test; under CI=true it fails the run, never a silent skip.
requiredUnderCI('the daemon tests', {
  openssl: { have: hasOpenssl, hint: 'apt-get install openssl (the HTTPS test needs it)' },
  'the built daemon command': { have: cliHasDaemon, hint: 'the built CLI has no `daemon` command: run `npm run build`' },
});

for (const factory of storeFactories) {
  describe.skipIf(!factory.available())(`lease daemon over ${factory.name}`, () => {
    /**
     * Tests of the HTTP layer alone do not depend on the store: they run once, over the first store.
     * So does the multi-second heartbeat endurance test; every store still runs the heartbeat's
     * batched renewal and re-acquisition (and the LeaseKeeper's batch test).
     */
    const primary = factory === storeFactories[0];
    const itOnce = itWhere(primary);
    const describeOnce = describeWhere(primary);
    let dir: string;
    let store: StateStore;
    const storeCleanups: (() => Promise<void>)[] = [];
    let log: LogCapture;
    let before: Record<string, number>;
    const daemons: Daemon[] = [];

    const start = async (options: Partial<DaemonOptions> = {}): Promise<Daemon> => {
      const daemon = await startDaemon({
        store,
        holder: 'daemon-test@host',
        listen: { host: '127.0.0.1', port: 0 },
        token: TOKEN,
        log,
        stopTimeoutMs: 2_000,
        ...options,
      });
      daemons.push(daemon);
      return daemon;
    };

    beforeEach(async () => {
      before = handleCounts();
      dir = mkdtempSync(path.join(tmpdir(), 'reaper-daemon-'));
      store = await factory.open(dir, storeCleanups);
      log = new LogCapture();
      let failed = false;
      onTestFailed(() => {
        failed = true;
        console.error(`[daemon test] evidence kept in ${dir}; log:\n${log.text}`);
      });
      return async () => {
        if (!failed) rmSync(dir, { recursive: true, force: true });
      };
    });

    afterEach(async () => {
      await Promise.all(daemons.splice(0).map((d) => d.stop()));
      await store.close();
      await runCleanups(storeCleanups);
      // docs/safety.md §17: whatever a test did, the API token never reached the log.
      expect(log.text).not.toContain(TOKEN);
      await expectNoLeaks(before);
    });

    describeOnce('authentication (§16)', () => {
      itOnce('answers 401 without a token, with a wrong one, and to a malformed Authorization header', async () => {
        const daemon = await start();
        for (const token of [null, OTHER_TOKEN, TOKEN.slice(0, -1), `${TOKEN}x`]) {
          const r = await api(daemon, 'GET', '/v1/leases', { token });
          expect(r.status, String(token)).toBe(401);
          expect(r.json.error).toMatch(/token/);
          expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
        }
        const basic = await api(daemon, 'GET', '/v1/leases', { token: null, headers: { authorization: `Basic ${TOKEN}` } });
        expect(basic.status).toBe(401);
        // Unknown routes and writes are refused the same way: nothing is revealed without the token.
        expect((await api(daemon, 'GET', '/nope', { token: null })).status).toBe(401);
        expect((await api(daemon, 'POST', '/v1/leases', { token: null, body: { key: 'k', ttl: '60s' } })).status).toBe(401);
        expect(await store.listLeases({ includeInactive: true })).toEqual([]);
        expect((await api(daemon, 'GET', '/v1/leases')).status).toBe(200);
      });

      itOnce('serves /healthz and /readyz without a token, /metrics only with one unless metricsPublic', async () => {
        const daemon = await start();
        expect((await api(daemon, 'GET', '/healthz', { token: null })).status).toBe(200);
        expect((await api(daemon, 'GET', '/readyz', { token: null })).status).toBe(200);
        expect((await api(daemon, 'GET', '/metrics', { token: null })).status).toBe(401);
        expect((await api(daemon, 'GET', '/metrics')).status).toBe(200);
        const open = await start({ metricsPublic: true });
        expect((await api(open, 'GET', '/metrics', { token: null })).status).toBe(200);
        expect((await api(open, 'GET', '/v1/leases', { token: null })).status).toBe(401);
      });

      itOnce('refuses to start without a token unless noAuth is said explicitly', async () => {
        await expect(start({ token: undefined })).rejects.toThrow(/needs a token/);
        await expect(start({ token: 'short' })).rejects.toThrow(/at least 16/);
        await expect(start({ noAuth: true })).rejects.toThrow(/not both/);
        const open = await start({ token: undefined, noAuth: true });
        expect((await api(open, 'GET', '/v1/leases', { token: null })).status).toBe(200);
        expect(log.events().some((e) => e.event === 'auth-disabled' && e.level === 'warn')).toBe(true);
      });
    });

    describe('lease API', () => {
      it('acquires (201 with token), lists without tokens, renews (200), releases (204)', async () => {
        const daemon = await start();
        const acquired = await api(daemon, 'POST', '/v1/leases', { body: { key: 'session:1', ttl: '60s', holder: 'web-1' } });
        expect(acquired.status).toBe(201);
        const lease = acquired.json as { leaseId: string; key: string; holder: string; generation: number; expiresAt: string; token: string };
        expect(lease).toMatchObject({ key: 'session:1', holder: 'web-1', generation: 1, ttlSeconds: 60 });
        expect(typeof lease.token).toBe('string');
        expect(Date.parse(lease.expiresAt)).toBeGreaterThan(Date.now());
        expect(acquired.headers.get('location')).toBe(`/v1/leases/${lease.leaseId}`);
        expect(await store.liveKeys(['session:1'])).toEqual(new Set(['session:1']));

        const second = await api(daemon, 'POST', '/v1/leases', { body: { key: 'session:1', ttl: 30 } });
        expect(second.status).toBe(201);
        expect(second.json).toMatchObject({ generation: 2, holder: 'daemon-test@host', ttlSeconds: 30 });

        const list = await api(daemon, 'GET', '/v1/leases?key=session%3A1');
        expect(list.status).toBe(200);
        const leases = list.json.leases as Record<string, unknown>[];
        expect(leases.map((l) => l.generation).sort()).toEqual([1, 2]);
        for (const l of leases) expect(l).not.toHaveProperty('token');
        expect(list.text).not.toContain(lease.token);

        const got = await api(daemon, 'GET', `/v1/leases/${lease.leaseId}`);
        expect(got.status).toBe(200);
        expect(got.json).not.toHaveProperty('token');

        const renewed = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl: '120s' } });
        expect(renewed.status).toBe(200);
        expect(renewed.json.ttlSeconds).toBe(120);
        expect(Date.parse(renewed.json.expiresAt as string)).toBeGreaterThan(Date.parse(lease.expiresAt));
        const plain = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token });
        expect(plain.status).toBe(200);

        const released = await api(daemon, 'DELETE', `/v1/leases/${lease.leaseId}`, { leaseToken: lease.token });
        expect(released.status).toBe(204);
        expect(released.text).toBe('');
        expect((await store.getLease(lease.leaseId))!.releasedAt).not.toBeNull();
        // Releasing again is harmless.
        expect((await api(daemon, 'DELETE', `/v1/leases/${lease.leaseId}`, { leaseToken: lease.token })).status).toBe(204);
      });

      it('a renewal after expiry answers 409 and the lease stays expired (no resurrection, §15)', async () => {
        const daemon = await start();
        const { json } = await api(daemon, 'POST', '/v1/leases', { body: { key: 'job:late', ttl: '200ms' } });
        const lease = json as { leaseId: string; token: string };
        await vi.waitFor(async () => expect(await store.liveKeys(['job:late'])).toEqual(new Set()), { timeout: 3_000, interval: 50 });
        const expired = (await store.getLease(lease.leaseId))!;

        const late = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl: '60s' } });
        // On failure, the evidence: the lease as the store saw it expired, the answer, and the store's clock now.
        expect(late.status, JSON.stringify({ expired, answer: late.json, storeNow: await store.now() })).toBe(409);
        expect(late.json).toMatchObject({ lost: 'expired' });
        expect(late.json.error).toMatch(/expired/);

        expect(await store.getLease(lease.leaseId)).toEqual(expired);
        expect(await store.liveKeys(['job:late'])).toEqual(new Set());
        expect((await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token })).status).toBe(409);
        expect(await store.getLease(lease.leaseId)).toEqual(expired);
        const metrics = await daemon.metrics();
        expect(sampleValue(metrics, 'reaper_daemon_renewals_total', { outcome: 'failed' })).toBe(2);
      });

      it('release then renew answers 409 (released), and an unknown lease 404', async () => {
        const daemon = await start();
        const { json } = await api(daemon, 'POST', '/v1/leases', { body: { key: 'job:1', ttl: '60s' } });
        const lease = json as { leaseId: string; token: string };
        expect((await api(daemon, 'DELETE', `/v1/leases/${lease.leaseId}`, { leaseToken: lease.token })).status).toBe(204);
        const renew = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token });
        expect(renew.status).toBe(409);
        expect(renew.json.lost).toBe('released');
        expect(await store.liveKeys(['job:1'])).toEqual(new Set());

        const unknown = '00000000-0000-4000-8000-000000000000';
        expect((await api(daemon, 'POST', `/v1/leases/${unknown}/renew`, { leaseToken: lease.token })).status).toBe(404);
        expect((await api(daemon, 'DELETE', `/v1/leases/${unknown}`, { leaseToken: lease.token })).status).toBe(404);
        expect((await api(daemon, 'GET', `/v1/leases/${unknown}`)).status).toBe(404);
      });

      it('renews concurrent requests together, in fewer store calls than requests, each with its own answer', async () => {
        let calls = 0;
        const counting = new Proxy(store, {
          get(target, prop, receiver) {
            if (prop === 'renewLeases') {
              return (...args: Parameters<StateStore['renewLeases']>) => {
                calls += 1;
                return target.renewLeases(...args);
              };
            }
            const value = Reflect.get(target, prop, receiver) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        const daemon = await start({ store: counting });
        const leases = [] as { leaseId: string; token: string }[];
        for (let i = 0; i < 30; i++) leases.push((await api(daemon, 'POST', '/v1/leases', { body: { key: `burst:${i}`, ttl: '60s' } })).json as { leaseId: string; token: string });
        await store.releaseLease(leases[7]!.leaseId);
        // Open the client's connections first (kept alive), so the renewals below are
        // written in one turn and reach the daemon together.
        await Promise.all(leases.map((l) => api(daemon, 'GET', `/v1/leases/${l.leaseId}`)));
        const callsBefore = calls;

        const answers = await Promise.all(leases.map((l) => api(daemon, 'POST', `/v1/leases/${l.leaseId}/renew`, { leaseToken: l.token, body: { ttl: '90s' } })));
        expect(answers.map((a) => a.status)).toEqual(leases.map((_, i) => (i === 7 ? 409 : 200)));
        expect(answers[7]!.json.lost).toBe('released');
        answers.forEach((a, i) => {
          if (i !== 7) expect(a.json).toMatchObject({ leaseId: leases[i]!.leaseId, key: `burst:${i}`, ttlSeconds: 90 });
        });
        for (const [i, l] of leases.entries()) expect((await store.getLease(l.leaseId))!.ttlMs).toBe(i === 7 ? 60_000 : 90_000);
        expect(calls - callsBefore).toBeGreaterThan(0);
        expect(calls - callsBefore).toBeLessThan(30);
      });

      it("answers 403 to renew or release with another lease's token, or none, and the lease is untouched", async () => {
        const daemon = await start();
        const a = (await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:a', ttl: '60s', holder: 'a' } })).json as { leaseId: string; token: string };
        const b = (await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:b', ttl: '60s', holder: 'b' } })).json as { leaseId: string; token: string };
        const before = await store.getLease(a.leaseId);

        const renew = await api(daemon, 'POST', `/v1/leases/${a.leaseId}/renew`, { leaseToken: b.token });
        expect(renew.status).toBe(403);
        expect(renew.json.lost).toBe('not-holder');
        expect((await api(daemon, 'DELETE', `/v1/leases/${a.leaseId}`, { leaseToken: b.token })).status).toBe(403);
        expect((await api(daemon, 'DELETE', `/v1/leases/${a.leaseId}`)).status).toBe(403);
        expect((await api(daemon, 'POST', `/v1/leases/${a.leaseId}/renew`)).status).toBe(403);

        expect(await store.getLease(a.leaseId)).toEqual(before);
        expect(await store.liveKeys(['svc:a'])).toEqual(new Set(['svc:a']));
      });

      it('answers 400 to a malformed lease id, key or holder and 404 to an unknown lease, never 503: no client can fake an outage', async () => {
        const daemon = await start();
        const lease = (await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:real', ttl: '60s' } })).json as { leaseId: string; token: string };
        for (const id of ['x%00y', 'x', 'nope%ZZ', `${lease.leaseId}0`, 'a'.repeat(200), '%F0%9F%92%A5']) {
          for (const [method, route] of [
            ['GET', `/v1/leases/${id}`],
            ['DELETE', `/v1/leases/${id}`],
            ['POST', `/v1/leases/${id}/renew`],
          ] as const) {
            const r = await api(daemon, method, route, { leaseToken: lease.token });
            expect(r.status, `${method} ${route}`).toBe(400);
            expect(r.json.error).toMatch(/malformed lease id/);
          }
        }
        const unknown = '00000000-0000-4000-8000-000000000000';
        expect((await api(daemon, 'GET', `/v1/leases/${unknown}`)).status).toBe(404);
        expect((await api(daemon, 'DELETE', `/v1/leases/${unknown}`, { leaseToken: lease.token })).status).toBe(404);
        for (const body of [
          { key: 'x\u0000y', ttl: '60s' },
          { key: '\ud800', ttl: '60s' },
          { key: 'k', ttl: '60s', holder: 'h\u0000' },
          { key: 'k', ttl: '60s', holder: 'h\udc00' },
        ]) {
          const r = await api(daemon, 'POST', '/v1/leases', { body });
          expect(r.status, JSON.stringify(body)).toBe(400);
          expect(r.json.error).toMatch(/NUL|unpaired surrogate/);
        }
        expect((await api(daemon, 'GET', '/v1/leases?key=x%00y')).status).toBe(400);
        // Nothing reached the store as an error: no store-error logged, no lease but the real one.
        expect(log.events().filter((e) => e.level === 'error')).toEqual([]);
        expect((await store.listLeases({ includeInactive: true })).map((l) => l.key)).toEqual(['svc:real']);
        expect((await store.getLease(lease.leaseId))!.releasedAt).toBeNull();
      });

      it('refuses a ttl outside the store bounds with 400 naming the range, instead of rounding or capping it', async () => {
        const daemon = await start();
        // Zero, negative and malformed ttls too: every refusal names the store's range (docs/http-api.md).
        for (const ttl of ['2d', 86_401, '50ms', 0.05, '0s', 0, -5, '-5s', 'soon', '60', true, null]) {
          const r = await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:ttl', ttl } });
          expect(r.status, String(ttl)).toBe(400);
          expect(r.json.error, String(ttl)).toMatch(/^ttl: a lease ttl must be from 100ms to 1d, got /);
        }
        expect(await store.listLeases({ includeInactive: true })).toEqual([]);
        const lease = (await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:ttl', ttl: '1d' } })).json as { leaseId: string; token: string; ttlSeconds: number };
        expect(lease.ttlSeconds).toBe(86_400);
        const before = await store.getLease(lease.leaseId);
        const renew = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl: '30d' } });
        expect(renew.status).toBe(400);
        expect(renew.json.error).toMatch(/from 100ms to 1d, got 30d/);
        for (const ttl of ['0s', 0, 'soon']) {
          const r = await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl } });
          expect(r.status, String(ttl)).toBe(400);
          expect(r.json.error, String(ttl)).toMatch(/^ttl: a lease ttl must be from 100ms to 1d, got /);
        }
        expect(await store.getLease(lease.leaseId)).toEqual(before);
      });

      itOnce('rejects bad input: 400 for bad fields, 413 for a body over the limit, 415 for non-JSON, 405, 404', async () => {
        const daemon = await start();
        const bad = [
          { key: 'k' },
          { key: '', ttl: '60s' },
          { key: 'k', ttl: '60' },
          { key: 'k', ttl: 0 },
          { key: 'k', ttl: -5 },
          { key: 'k', ttl: '-5s' },
          { key: 'k', ttl: '60s', extra: true },
          { key: 42, ttl: '60s' },
          { key: 'k', ttl: '60s', holder: '' },
          { key: 'x'.repeat(1025), ttl: '60s' },
        ];
        for (const body of bad) {
          const r = await api(daemon, 'POST', '/v1/leases', { body });
          expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(400);
          expect(typeof r.json.error).toBe('string');
        }
        expect((await api(daemon, 'POST', '/v1/leases', { rawBody: '{not json', headers: { 'content-type': 'application/json' } })).status).toBe(400);
        expect((await api(daemon, 'POST', '/v1/leases', { rawBody: '[1]', headers: { 'content-type': 'application/json' } })).status).toBe(400);
        expect((await api(daemon, 'POST', '/v1/leases', { rawBody: '{"key":"k","ttl":"60s"}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);

        const big = await api(daemon, 'POST', '/v1/leases', { body: { key: 'k', ttl: '60s', pad: 'x'.repeat(100 * 1024) } });
        expect(big.status).toBe(413);
        expect(big.json.error).toMatch(/larger than 65536 bytes/);
        // Far over the limit the daemon does not even read the body; either way nothing is accepted.
        const huge = await api(daemon, 'POST', '/v1/leases', { rawBody: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } }).catch(
          () => ({ status: 0 }),
        );
        expect([0, 413]).toContain(huge.status);

        const put = await api(daemon, 'PUT', '/v1/leases');
        expect(put.status).toBe(405);
        expect(put.headers.get('allow')).toBe('GET, POST');
        expect((await api(daemon, 'GET', '/v1/nothing')).status).toBe(404);
        expect((await api(daemon, 'GET', '/v1/leases?limit=0')).status).toBe(400);
        expect(await store.listLeases({ includeInactive: true })).toEqual([]);
        // Still serving after all that.
        expect((await api(daemon, 'POST', '/v1/leases', { body: { key: 'k', ttl: '60s' } })).status).toBe(201);
      });
    });

    describeOnce('readiness', () => {
      itOnce('/readyz is 200 once the store answered and the leases are held; 503 while they cannot be', async () => {
        const ok = await start({ leases: ['svc:ready'], ttlMs: 60_000 });
        const ready = await api(ok, 'GET', '/readyz', { token: null });
        expect(ready.status).toBe(200);
        expect(ready.json).toMatchObject({ ready: true, leases: { held: 1, wanted: 1 } });

        const down = await start({ store: failing(store, ['acquireLeases', 'renewLeases']), leases: ['svc:down'], ttlMs: 60_000 });
        expect(down.isReady()).toBe(false);
        const notReady = await api(down, 'GET', '/readyz', { token: null });
        expect(notReady.status).toBe(503);
        expect(notReady.json).toMatchObject({ ready: false, leases: { held: 0, wanted: 1 } });
        expect((await api(down, 'GET', '/healthz', { token: null })).status).toBe(200);
        expect(log.events().some((e) => e.event === 'acquire-failed' && e.level === 'error')).toBe(true);

        const apiOnly = await start({ store: failing(store, ['now']) });
        expect((await api(apiOnly, 'GET', '/readyz', { token: null })).status).toBe(503);
        const apiOnlyOk = await start();
        expect((await api(apiOnlyOk, 'GET', '/readyz', { token: null })).status).toBe(200);
      });

      itOnce('an API-only daemon asks its store now and then for /readyz, not in a busy loop', async () => {
        const now = vi.spyOn(store, 'now');
        const daemon = await start();
        await sleep(300);
        expect((await api(daemon, 'GET', '/readyz', { token: null })).status).toBe(200);
        // The first tick only: the next ping is 10 s away.
        expect(now.mock.calls.length).toBe(1);
        now.mockRestore();
      });

      itOnce('a store failure during a request answers 503 without details', async () => {
        const daemon = await start({ store: failing(store, ['acquireLease']) });
        const r = await api(daemon, 'POST', '/v1/leases', { body: { key: 'k', ttl: '60s' } });
        expect(r.status).toBe(503);
        expect(r.json.error).toMatch(/state store is unavailable/);
        expect(r.text).not.toContain('sqlite:x');
      });
    });

    describeOnce('metrics', () => {
      itOnce('/metrics is Prometheus text with the daemon and process metrics, labels bounded', async () => {
        const daemon = await start({ leases: ['svc:m1', 'svc:m2'], ttlMs: 60_000 });
        const { json } = await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:x', ttl: '60s' } });
        const lease = json as { leaseId: string; token: string };
        await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token });
        await api(daemon, 'GET', '/v1/leases', { token: null });

        const r = await api(daemon, 'GET', '/metrics');
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        const families = parsePrometheus(r.text);
        const types = Object.fromEntries([...families].map(([name, f]) => [name, f.type]));
        expect(types).toMatchObject({
          reaper_daemon_leases_active: 'gauge',
          reaper_daemon_renewals_total: 'counter',
          reaper_daemon_renewal_duration_seconds: 'histogram',
          reaper_daemon_heartbeat_lag_seconds: 'gauge',
          reaper_daemon_http_requests_total: 'counter',
          reaper_daemon_leases_lost_total: 'counter',
          reaper_daemon_ready: 'gauge',
          process_open_fds: 'gauge',
          process_heap_bytes: 'gauge',
          nodejs_eventloop_lag_seconds: 'gauge',
          nodejs_heap_size_used_bytes: 'gauge',
        });
        expect(sampleValue(r.text, 'reaper_daemon_leases_active')).toBe(2);
        expect(sampleValue(r.text, 'reaper_daemon_ready')).toBe(1);
        expect(sampleValue(r.text, 'reaper_daemon_renewals_total', { outcome: 'ok' })).toBe(1);
        expect(sampleValue(r.text, 'reaper_daemon_renewals_total', { outcome: 'failed' })).toBe(0);
        expect(sampleValue(r.text, 'reaper_daemon_renewal_duration_seconds_count')).toBe(1);
        expect(sampleValue(r.text, 'reaper_daemon_http_requests_total', { route: '/v1/leases/{id}/renew', code: '200' })).toBe(1);
        expect(sampleValue(r.text, 'reaper_daemon_http_requests_total', { route: '/v1/leases', code: '201' })).toBe(1);
        expect(sampleValue(r.text, 'reaper_daemon_http_requests_total', { route: '/v1/leases', code: '401' })).toBe(1);

        // No per-lease or per-key labels, and no secrets.
        for (const [name, family] of families) {
          if (!name.startsWith('reaper_')) continue;
          for (const s of family.samples) expect(Object.keys(s.labels).every((l) => ['outcome', 'route', 'code', 'le'].includes(l)), s.name).toBe(true);
        }
        for (const secret of [lease.leaseId, lease.token, TOKEN, 'svc:m1', 'svc:x']) expect(r.text).not.toContain(secret);

        // Each daemon has its own registry: a second one starts from zero.
        const other = await start();
        expect(other.registry).not.toBe(daemon.registry);
        expect(sampleValue(await other.metrics(), 'reaper_daemon_renewals_total', { outcome: 'ok' })).toBe(0);
      });
    });

    describe('heartbeat', () => {
      itOnce('keeps its keys live across several ttl periods with one batched renewal per tick', async () => {
        const renewLeases = vi.spyOn(store, 'renewLeases');
        const daemon = await start({ leases: ['svc:hb1', 'svc:hb2', 'svc:hb3'], ttlMs: 1_200, intervalMs: 400 });
        const first = daemon.leases().map((l) => l.leaseId).sort();
        expect(first).toHaveLength(3);
        const until = Date.now() + 3_700;
        while (Date.now() < until) {
          expect(await store.liveKeys(['svc:hb1', 'svc:hb2', 'svc:hb3'])).toEqual(new Set(['svc:hb1', 'svc:hb2', 'svc:hb3']));
          await sleep(250);
        }
        // The same leases all along (renewed, never re-acquired), in one call per tick.
        expect(daemon.leases().map((l) => l.leaseId).sort()).toEqual(first);
        expect(daemon.leases().every((l) => l.generation === 1)).toBe(true);
        expect(renewLeases.mock.calls.length).toBeGreaterThanOrEqual(6);
        for (const [ids] of renewLeases.mock.calls) expect([...ids].sort()).toEqual(first);
        const metrics = await daemon.metrics();
        expect(sampleValue(metrics, 'reaper_daemon_renewals_total', { outcome: 'ok' })).toBe(3 * renewLeases.mock.calls.length);
        expect(sampleValue(metrics, 'reaper_daemon_renewals_total', { outcome: 'failed' })).toBe(0);
        expect(sampleValue(metrics, 'reaper_daemon_heartbeat_lag_seconds')).toBeGreaterThanOrEqual(0);
        expect(sampleValue(metrics, 'reaper_daemon_renewal_duration_seconds_count')).toBe(renewLeases.mock.calls.length);
        renewLeases.mockRestore();
      });

      it('re-acquires a lease released behind its back as a new generation, counted as a failed renewal', async () => {
        const daemon = await start({ leases: ['svc:victim', 'svc:bystander'], ttlMs: 1_500, intervalMs: 300 });
        const victim = daemon.leases().find((l) => l.key === 'svc:victim')!;
        const bystander = daemon.leases().find((l) => l.key === 'svc:bystander')!;
        await store.releaseLease(victim.leaseId);

        await vi.waitFor(() => expect(daemon.leases().find((l) => l.key === 'svc:victim')!.generation).toBe(victim.generation + 1), {
          timeout: 3_000,
          interval: 50,
        });
        const replacement = daemon.leases().find((l) => l.key === 'svc:victim')!;
        expect(replacement.leaseId).not.toBe(victim.leaseId);
        // The old lease stays released: it was replaced, not revived.
        expect((await store.getLease(victim.leaseId))!.releasedAt).not.toBeNull();
        expect(daemon.leases().find((l) => l.key === 'svc:bystander')!.leaseId).toBe(bystander.leaseId);
        expect(await store.liveKeys(['svc:victim'])).toEqual(new Set(['svc:victim']));

        const metrics = await daemon.metrics();
        expect(sampleValue(metrics, 'reaper_daemon_renewals_total', { outcome: 'failed' })).toBe(1);
        expect(sampleValue(metrics, 'reaper_daemon_leases_lost_total')).toBe(1);
        const lost = log.events().find((e) => e.event === 'lease-lost');
        expect(lost).toMatchObject({ level: 'warn', key: 'svc:victim', leaseId: victim.leaseId, why: 'released' });
        expect(log.events().filter((e) => e.event === 'lease-acquired' && e.key === 'svc:victim').map((e) => e.generation)).toEqual([1, 2]);
      });

      it('acquires its keys in batches and keeps the first leases of a start longer than the ttl alive meanwhile', async () => {
        // 2,500 keys: five batches of 500, each taking at least 1.85 s (yet answering within the
        // 2.99 s store deadline, which must stay under the 3 s interval), so the start outlasts the 9 s ttl.
        // The second of headroom is for the real acquisition of 500 keys on a loaded machine.
        const acquireLeases = store.acquireLeases.bind(store);
        const acquire = vi.spyOn(store, 'acquireLeases').mockImplementation(async (keys, options) => {
          const [acquired] = await Promise.all([acquireLeases(keys, options), sleep(1_850)]);
          return acquired;
        });
        const renewLeases = vi.spyOn(store, 'renewLeases');
        const keys = Array.from({ length: 2_500 }, (_, i) => `svc:slow${i}`);
        const startedAt = Date.now();
        const daemon = await start({ leases: keys, ttlMs: 9_000, intervalMs: 3_000, storeTimeoutMs: 2_990 });
        expect(Date.now() - startedAt).toBeGreaterThan(9_000);
        expect(acquire.mock.calls.map(([batch]) => batch.length)).toEqual([500, 500, 500, 500, 500]);
        // Renewed during the start, each time only what was held by then.
        expect(renewLeases.mock.calls.length).toBeGreaterThanOrEqual(2);
        expect(renewLeases.mock.calls[0]![0].length).toBeLessThan(keys.length);
        expect(daemon.leases()).toHaveLength(keys.length);
        expect(await store.liveKeys(keys)).toEqual(new Set(keys));
        expect(daemon.leases().every((l) => l.generation === 1)).toBe(true);
        expect(log.events().filter((e) => e.event === 'lease-lost')).toEqual([]);
      });

      itOnce('renews thousands of leases on rhythm, none lost to the deadline, during and after the start', async () => {
        // 5,000 keys with a 3 s ttl: renewal every second, a lease counts as held until 2.7 s
        // after its last confirmed renewal. Confirming a lease used to rescan every deadline
        // (quadratic: seconds of blocked event loop per round at this size), so renewals
        // fell behind and leases were lost to the deadline although the store answered.
        const renewLeases = vi.spyOn(store, 'renewLeases');
        const keys = Array.from({ length: 5_000 }, (_, i) => `svc:many${i}`);
        const daemon = await start({ leases: keys, ttlMs: 3_000 });
        expect(daemon.isReady()).toBe(true);
        await sleep(4_500);
        expect(log.events().filter((e) => e.event === 'lease-lost')).toEqual([]);
        expect(daemon.leases()).toHaveLength(keys.length);
        expect(daemon.isReady()).toBe(true);
        // Every second or so (jittered ±10%), each round renewing every lease.
        expect(renewLeases.mock.calls.length).toBeGreaterThanOrEqual(3);
        for (const [ids] of renewLeases.mock.calls) expect(ids).toHaveLength(keys.length);
        renewLeases.mockRestore();
      });

      itOnce('rejects a renewal interval over a third of the ttl', async () => {
        await expect(start({ leases: ['k'], ttlMs: 3_000, intervalMs: 1_500 })).rejects.toThrow(/at most a third of the ttl/);
        await expect(start({ leases: ['k'] })).rejects.toThrow(/positive ttl/);
      });
    });

    describe('pruning', () => {
      it('deletes leases that ended longer ago than its retention, keeps the ones it holds, and stops pruning on stop', async () => {
        const ended = await store.acquireLease({ key: 'svc:gone', holder: 'h', ttlMs: 60_000 });
        await store.releaseLease(ended.leaseId);
        const daemon = await start({ leases: ['svc:kept'], ttlMs: 60_000, leaseRetentionMs: 100, pruneEveryMs: 150, random: () => 0 });
        const held = daemon.leases()[0]!;
        await vi.waitFor(() => expect(log.events().some((e) => e.event === 'leases-pruned' && e.pruned === 1)).toBe(true), { timeout: 5_000, interval: 50 });
        expect(await store.getLease(ended.leaseId)).toBeNull();
        expect(await store.getLease(held.leaseId)).not.toBeNull();

        await daemon.stop();
        const prunes = log.events().filter((e) => e.event === 'leases-pruned').length;
        const late = await store.acquireLease({ key: 'svc:late', holder: 'h', ttlMs: 60_000 });
        await store.releaseLease(late.leaseId);
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(log.events().filter((e) => e.event === 'leases-pruned').length).toBe(prunes);
        expect(await store.getLease(late.leaseId)).not.toBeNull();
      });
    });

    describe('stop', () => {
      it('is idempotent, releases its leases with releaseOnExit, closes the server and leaves no handle', async () => {
        // An interval of 3 s gives each store call (release included) a 1.5 s deadline: ample on a loaded machine.
        const daemon = await start({ leases: ['svc:s1', 'svc:s2'], ttlMs: 60_000, intervalMs: 3_000, releaseOnExit: true });
        // A keep-alive connection is open when stop() begins.
        expect((await api(daemon, 'GET', '/healthz')).status).toBe(200);
        const held = daemon.leases();
        const first = daemon.stop();
        const second = daemon.stop();
        expect(second).toBe(first);
        await first;
        await daemon.stop();
        expect(await store.liveKeys(['svc:s1', 'svc:s2'])).toEqual(new Set());
        for (const lease of held) expect((await store.getLease(lease.leaseId))!.releasedAt).not.toBeNull();
        await expect(fetch(`${daemon.url}/healthz`)).rejects.toThrow();
        expect(daemon.isReady()).toBe(false);
        const events = log.events().map((e) => e.event);
        expect(events.filter((e) => e === 'lease-released')).toHaveLength(2);
        expect(events.slice(-1)).toEqual(['stopped']);
        // The store is still open here (a server dialect keeps pooled sockets); afterEach checks everything once it is closed.
        await expectNoLeaks(before, ['TCPServerWrap']);
      });

      it('without releaseOnExit leaves the leases to run out by their ttl', async () => {
        const daemon = await start({ leases: ['svc:keep'], ttlMs: 60_000 });
        await daemon.stop();
        expect(await store.liveKeys(['svc:keep'])).toEqual(new Set(['svc:keep']));
      });

      itOnce('a stop signal during a long start ends the acquisitions at once and stops within the stop budget', async () => {
        // 20 batches of 250 ms: a start of 5 s. The signal comes during the second batch.
        const acquireLeases = store.acquireLeases.bind(store);
        const acquire = vi.spyOn(store, 'acquireLeases').mockImplementation(async (keys, options) => {
          const [acquired] = await Promise.all([acquireLeases(keys, options), sleep(250)]);
          return acquired;
        });
        const keys = Array.from({ length: 10_000 }, (_, i) => `svc:abort${i}`);
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 400);
        const startedAt = performance.now();
        // A stop budget ample for releasing the (at most 1,000) leases taken, on a loaded machine.
        const daemon = await start({ leases: keys, ttlMs: 30_000, intervalMs: 3_000, releaseOnExit: true, stopTimeoutMs: 8_000, signal: controller.signal });
        expect(performance.now() - startedAt).toBeLessThan(1_500);
        await daemon.stop();
        expect(performance.now() - startedAt).toBeLessThan(1_500 + 8_000);
        // At most the batch under way when the signal came was still sent.
        expect(acquire.mock.calls.length).toBeLessThanOrEqual(2);
        acquire.mockRestore();
        const held = log.events().filter((e) => e.event === 'lease-acquired').map((e) => String(e.key));
        expect(held.length).toBeGreaterThan(0);
        expect(await store.liveKeys(keys)).toEqual(new Set());
        expect(log.events().filter((e) => e.event === 'lease-released')).toHaveLength(held.length);
        expect(log.events().slice(-1)[0]!.event).toBe('stopped');
      });

      itOnce('releases many leases on stop a few at a time, so each release finishes instead of all queueing for the store', async () => {
        // On a server store a release is two statements: started all at once, every first one
        // queued ahead of any second one and none finished within the bound (20,000 on PostgreSQL).
        let inFlight = 0;
        let most = 0;
        const releaseLease = store.releaseLease.bind(store);
        vi.spyOn(store, 'releaseLease').mockImplementation(async (leaseId, options) => {
          most = Math.max(most, ++inFlight);
          try {
            await sleep(1);
            return await releaseLease(leaseId, options);
          } finally {
            inFlight--;
          }
        });
        const keys = Array.from({ length: 1_000 }, (_, i) => `svc:rel${i}`);
        const daemon = await start({ leases: keys, ttlMs: 60_000, intervalMs: 3_000, releaseOnExit: true, stopTimeoutMs: 10_000 });
        await daemon.stop();
        expect(most).toBeGreaterThan(1);
        expect(most).toBeLessThanOrEqual(16);
        expect(await store.liveKeys(keys)).toEqual(new Set());
        expect(log.events().filter((e) => e.event === 'lease-released')).toHaveLength(keys.length);
      });

      itOnce('waits for a request in flight before closing', async () => {
        let releaseCall!: () => void;
        const gate = new Promise<void>((r) => (releaseCall = r));
        const slow = new Proxy(store, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver) as unknown;
            if (prop === 'listLeases') {
              return async (...args: unknown[]) => {
                await gate;
                return (value as (...a: unknown[]) => unknown).apply(target, args);
              };
            }
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        const daemon = await start({ store: slow });
        const pending = api(daemon, 'GET', '/v1/leases');
        await sleep(100);
        const stopping = daemon.stop();
        await sleep(100);
        releaseCall();
        expect((await pending).status).toBe(200);
        await stopping;
      });

      itOnce('a failed start (port in use) leaves nothing behind', async () => {
        const first = await start();
        await expect(start({ listen: { host: '127.0.0.1', port: first.port } })).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      });
    });

    describeOnce('secrets (§17)', () => {
      itOnce('the API token and lease tokens never appear in the log, even in a logged error', async () => {
        const leaky = new Proxy(store, {
          get(target, prop, receiver) {
            if (prop === 'listLeases') return () => Promise.reject(new BackendError(`postgres://reaper:hunter2@db/x rejected token=${TOKEN} and ${TOKEN}`));
            const value = Reflect.get(target, prop, receiver) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        const daemon = await start({ store: leaky, leases: ['svc:secret'], ttlMs: 60_000, releaseOnExit: true, logLevel: 'debug' });
        const { json } = await api(daemon, 'POST', '/v1/leases', { body: { key: 'svc:other', ttl: '60s' } });
        const lease = json as { leaseId: string; token: string };
        await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: lease.token });
        await api(daemon, 'POST', `/v1/leases/${lease.leaseId}/renew`, { leaseToken: OTHER_TOKEN });
        await api(daemon, 'GET', '/v1/leases', { token: OTHER_TOKEN });
        expect((await api(daemon, 'GET', '/v1/leases')).status).toBe(503);
        await api(daemon, 'DELETE', `/v1/leases/${lease.leaseId}`, { leaseToken: lease.token });
        await daemon.stop();

        const text = log.text;
        expect(log.events().map((e) => e.event)).toEqual(expect.arrayContaining(['listening', 'lease-acquired', 'ready', 'request', 'store-error', 'stopping', 'stopped']));
        expect(text).toContain('***');
        for (const secret of [TOKEN, lease.token, 'hunter2']) expect(text).not.toContain(secret);
        expect(text).not.toContain(OTHER_TOKEN);
        expect(text).not.toContain(lease.leaseId.concat('/renew'));
      });
    });

    describeOnce('TLS', () => {

      function selfSigned(name: string): { cert: string; key: string } {
        const certFile = path.join(dir, `${name}.crt`);
        const keyFile = path.join(dir, `${name}.key`);
        execFileSync(
          'openssl',
          ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
          { stdio: 'ignore' },
        );
        return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
      }

      function httpsStatus(url: string, options: { ca: string; cert?: string; key?: string }): Promise<number> {
        return new Promise((resolve, reject) => {
          const req = httpsGet(url, { ...options, agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
        });
      }

      it.skipIf(!hasOpenssl)('serves HTTPS, and with requireClientCert only to clients holding a certificate from the CA', async () => {
        const server = selfSigned('127.0.0.1');
        const client = selfSigned('client');
        const daemon = await start({ tls: { ...server } });
        expect(daemon.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        expect(await httpsStatus(`${daemon.url}/healthz`, { ca: server.cert })).toBe(200);

        const mtls = await start({ tls: { ...server, ca: client.cert, requireClientCert: true } });
        await expect(httpsStatus(`${mtls.url}/healthz`, { ca: server.cert })).rejects.toThrow();
        expect(await httpsStatus(`${mtls.url}/healthz`, { ca: server.cert, cert: client.cert, key: client.key })).toBe(200);
        await expect(start({ tls: { ...server, requireClientCert: true } })).rejects.toThrow(/needs a CA/);
      });
    });

    describeOnce('reaper daemon (command)', () => {
      const io = (signal: AbortSignal, stdout: LogCapture, env: Record<string, string> = {}): CliIO => ({
        stdout,
        stderr: stdout,
        env,
        cwd: dir,
        signal,
        version: () => 'test',
      });

      itOnce('runs in-process until the stop signal, logs JSON lines without the token, and returns 0', async () => {
        const tokenFile = path.join(dir, 'token');
        writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
        chmodSync(tokenFile, 0o600);
        const controller = new AbortController();
        const out = new LogCapture();
        const state = `sqlite:${path.join(dir, 'command.db')}`;
        const running = daemonCommand(io(controller.signal, out), [], {
          state,
          lease: ['svc:cli'],
          ttl: '3s',
          listen: '127.0.0.1:0',
          tokenFile: 'token',
          releaseOnExit: true,
          auth: true,
        });
        await vi.waitFor(() => expect(out.events().some((e) => e.event === 'ready')).toBe(true), { timeout: 5_000, interval: 50 });
        const listening = out.events().find((e) => e.event === 'listening')!;
        expect(listening.port).toBeGreaterThan(0);
        const base = String(listening.url);
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        expect((await fetch(`${base}/v1/leases`)).status).toBe(401);
        const list = await fetch(`${base}/v1/leases?key=svc%3Acli`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(((await list.json()) as { leases: unknown[] }).leases).toHaveLength(1);

        controller.abort();
        expect(await running).toBe(0);
        expect(out.text).not.toContain(TOKEN);
        expect(out.events().slice(-1)[0]!.event).toBe('stopped');
        const after = await openStateStore(state);
        expect(await after.liveKeys(['svc:cli'])).toEqual(new Set());
        expect(await after.listLeases({ key: 'svc:cli', includeInactive: true })).toHaveLength(1);
        await after.close();
      });

      itOnce('refuses to start without a token (usage error) unless --no-auth, and rejects bad flags', async () => {
        const controller = new AbortController();
        const out = new LogCapture();
        const state = `sqlite:${path.join(dir, 'cli.db')}`;
        await expect(daemonCommand(io(controller.signal, out), [], { state, auth: true })).rejects.toThrow(/needs a token/);
        await expect(daemonCommand(io(controller.signal, out), [], { state, auth: true, lease: ['k'] })).rejects.toThrow(/--lease needs --ttl/);
        await expect(daemonCommand(io(controller.signal, out, { REAPER_TOKEN: TOKEN }), [], { state, auth: true, listen: 'nonsense' })).rejects.toThrow(/--listen/);
        await expect(daemonCommand(io(controller.signal, out, { REAPER_TOKEN: TOKEN }), [], { state, auth: true, tlsCert: 'x.crt' })).rejects.toThrow(/--tls-key/);
        await expect(daemonCommand(io(controller.signal, out), [], { state, auth: false, tokenFile: 'token' })).rejects.toThrow(/contradict/);

        controller.abort();
        expect(await daemonCommand(io(controller.signal, out, { REAPER_TOKEN: TOKEN }), [], { state, auth: false, listen: '127.0.0.1:0' })).toBe(0);
        expect(out.events().some((e) => e.event === 'auth-disabled' && e.level === 'warn')).toBe(true);
        expect(out.text).not.toContain(TOKEN);
      });

      itOnce('checks the token (and the other flags) before it opens the state store: a usage error contacted nothing', async () => {
        writeFileSync(path.join(dir, 'short'), 'abcdef\n', { mode: 0o600 });
        const out = new LogCapture();
        const db = path.join(dir, 'never.db');
        const controller = new AbortController();
        await expect(daemonCommand(io(controller.signal, out), [], { state: `sqlite:${db}`, auth: true, tokenFile: 'short', listen: '127.0.0.1:0' })).rejects.toThrow(
          /6 characters; use at least 16/,
        );
        await expect(
          daemonCommand(io(controller.signal, out, { REAPER_TOKEN: TOKEN }), [], { state: `sqlite:${db}`, auth: true, lease: ['k'], ttl: '3s', holder: '', listen: '127.0.0.1:0' }),
        ).rejects.toThrow(/holder/);
        expect(existsSync(db)).toBe(false);
      });

      // SIGHUP (a terminal or an exec session gone) stops it as SIGTERM does, releasing with --release-on-exit (docs/safety.md §19).
      it.skipIf(!cliHasDaemon).each(['SIGTERM', 'SIGHUP'] as const)('the built `reaper daemon` answers on its port and exits 0 soon after %s', async (signal) => {
        const tokenFile = path.join(dir, 'token');
        writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
        const state = `sqlite:${path.join(dir, 'spawned.db')}`;
        const child = spawn(
          process.execPath,
          [BIN, 'daemon', '--state', state, '--lease', 'svc:spawned', '--ttl', '3s', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--release-on-exit'],
          { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        try {
          await vi.waitFor(() => expect(stdout).toMatch(/"event":"ready"/), { timeout: 10_000, interval: 50 });
          const listening = stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { event: string; url?: string })
            .find((e) => e.event === 'listening')!;
          expect((await fetch(`${listening.url}/healthz`)).status).toBe(200);
          expect((await fetch(`${listening.url}/readyz`)).status).toBe(200);
          const list = await fetch(`${listening.url}/v1/leases?key=svc%3Aspawned`, { headers: { authorization: `Bearer ${TOKEN}` } });
          expect(((await list.json()) as { leases: unknown[] }).leases).toHaveLength(1);

          const sentAt = Date.now();
          child.kill(signal);
          expect(await exited).toBe(0);
          expect(Date.now() - sentAt).toBeLessThan(5_000);
        } finally {
          if (child.exitCode === null) child.kill('SIGKILL');
        }
        expect(stdout).toContain(`"signal":"${signal}"`);
        expect(stdout + stderr).not.toContain(TOKEN);
        const after = await openStateStore(state);
        expect(await after.liveKeys(['svc:spawned'])).toEqual(new Set());
        await after.close();
      });
    });
  });
}
