/**
 * The daemon's live dashboard at /ui: the report's views from the state store (the newest
 * audit, the trend over runs, pending tombstones) plus active leases by holder, leases
 * about to expire, renewal failures and recent reap runs, refreshed by the page's script
 * from /ui/data.json without a reload.
 *
 *   GET  /ui                 the page (signed in), else 303 to /ui/sign-in
 *   GET  /ui/sign-in         a form that takes the API token
 *   POST /ui/sign-in         token=… → 303 to /ui with a session cookie; 401 on a wrong token
 *   POST /ui/sign-out        ends the session
 *   GET  /ui/data.json       fresh sections (signed in), else 401 {signIn}
 *   GET  /ui/report.js|.css  the page's script and style sheet (public: they hold no data)
 *
 * The token is only ever in a POST body: never in a URL, a cookie or a log line. The
 * session cookie is a random id (HttpOnly, SameSite=Strict, Path=/ui, Secure over TLS);
 * the daemon keeps the SHA-256 of each live one, for at most SESSION_TTL_MS. Every answer
 * carries a strict Content-Security-Policy: the daemon's own script and style, nothing
 * inline, no framing. Wrong tokens are throttled.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import { leaseTelemetry } from '../report/document.js';
import { clientAssets } from '../report/html/assets.js';
import { buildReportData } from '../report/html/build.js';
import { latestAudit, manifestScope, readPending, readTrend, recordedTypes } from '../report/html/history.js';
import { REPORT_LIMITS, type LiveData, type ReapRunRow, type ReportData } from '../report/html/model.js';
import { LIVE_CSP, liveFragments, renderLivePage, renderSignIn } from '../report/html/page.js';
import type { StateStore } from '../state/types.js';
import { reaperVersion } from '../version.js';
import { errorText, type DaemonLog } from '../util/json-log.js';
import type { DaemonMetrics } from './metrics.js';

export type UiStore = Pick<StateStore, 'listRuns' | 'getRun' | 'countTombstones' | 'listLeases' | 'leaseStats' | 'now'> & { readonly description?: string };

export interface UiOptions {
  store: UiStore;
  /** The API token; null: the daemon runs without one (--no-auth), and so does /ui. */
  token: string | null;
  /** Served over TLS: the cookie gets `Secure`. */
  secure: boolean;
  holder: string;
  metrics: DaemonMetrics;
  log: DaemonLog;
  /** The heartbeat now: ready, leases held and wanted. */
  heartbeat(): { ready: boolean; held: number; wanted: number };
  /** The manifest's types and their grace, for pending tombstones' earliest sweep (else the types runs recorded). */
  resources?: readonly { name: string; graceMs: number }[];
  refreshSeconds?: number;
  /** For tests: the clock of sessions and throttling. */
  clock?: () => number;
}

export type UiHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

const COOKIE = 'reaper_ui';
export const SESSION_TTL_MS = 12 * 3_600_000;
const MAX_SESSIONS = 1_000;
/** Wrong tokens allowed per minute (over all clients) before sign-in answers 429 for the rest of it. */
const MAX_FAILURES_PER_MINUTE = 10;
const MAX_FORM_BYTES = 4 * 1024;
/** Fresh data is computed at most this often, however many pages refresh. */
const DATA_CACHE_MS = 2_000;
const LEASE_WINDOW_MS = 3_600_000;
const LEASES_COUNTED = 10_000;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

class UiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createUiHandler(options: UiOptions): UiHandler {
  const clock = options.clock ?? Date.now;
  const tokenDigest = options.token === null ? null : sha256(options.token);
  /** SHA-256 (hex) of each live session id → when it ends. */
  const sessions = new Map<string, number>();
  let failures: number[] = [];
  let cached: { at: number; data: Promise<{ data: ReportData; live: LiveData }> } | null = null;

  const signedIn = (req: IncomingMessage): boolean => {
    if (tokenDigest === null) return true;
    const id = cookieValue(req.headers.cookie, COOKIE);
    if (!id) return false;
    const key = sha256(id).toString('hex');
    const until = sessions.get(key);
    if (until === undefined) return false;
    if (until <= clock()) {
      sessions.delete(key);
      return false;
    }
    return true;
  };

  const startSession = (): string => {
    const id = randomBytes(32).toString('base64url');
    for (const [key, until] of sessions) if (until <= clock()) sessions.delete(key);
    // The oldest session makes room (a Map keeps insertion order).
    while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    sessions.set(sha256(id).toString('hex'), clock() + SESSION_TTL_MS);
    return id;
  };

  const cookie = (value: string, maxAgeSeconds: number) =>
    `${COOKIE}=${value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${options.secure ? '; Secure' : ''}`;

  const throttled = (): boolean => {
    const now = clock();
    failures = failures.filter((t) => t > now - 60_000);
    return failures.length >= MAX_FAILURES_PER_MINUTE;
  };

  const liveView = (): Promise<{ data: ReportData; live: LiveData }> => {
    const now = clock();
    if (cached && now - cached.at < DATA_CACHE_MS) return cached.data;
    const data = gather(options);
    cached = { at: now, data };
    data.catch(() => {
      if (cached?.data === data) cached = null;
    });
    return data;
  };

  const page = (res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { ...securityHeaders(), 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(html)), ...headers });
    res.end(html);
  };
  const redirect = (res: ServerResponse, location: string, headers: Record<string, string> = {}) => {
    res.writeHead(303, { ...securityHeaders(), location, 'content-length': '0', ...headers });
    res.end();
  };
  const signInPage = (res: ServerResponse, status: number, error: string | null, headers: Record<string, string> = {}) =>
    page(res, status, renderSignIn({ action: '/ui/sign-in', assetBase: '/ui/', error }), headers);

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    'GET /ui': async (req, res) => {
      if (!signedIn(req)) return redirect(res, '/ui/sign-in');
      const { data, live } = await liveView();
      page(res, 200, renderLivePage(data, live, { dataUrl: '/ui/data.json', refreshSeconds: options.refreshSeconds ?? 10, assetBase: '/ui/', signOutUrl: tokenDigest ? '/ui/sign-out' : null }));
    },
    'GET /ui/data.json': async (req, res) => {
      if (!signedIn(req)) return json(res, 401, { error: 'signed out', signIn: '/ui/sign-in' });
      const { data, live } = await liveView();
      json(res, 200, liveFragments(data, live));
    },
    'GET /ui/sign-in': async (req, res) => {
      if (signedIn(req)) return redirect(res, '/ui');
      signInPage(res, 200, null);
    },
    'POST /ui/sign-in': async (req, res) => {
      sameOrigin(req);
      const form = await readForm(req);
      if (tokenDigest === null) return redirect(res, '/ui');
      if (throttled()) return signInPage(res, 429, 'Too many wrong tokens: try again in a minute.', { 'retry-after': '60' });
      const presented = form.get('token') ?? '';
      if (!timingSafeEqual(sha256(presented), tokenDigest)) {
        failures.push(clock());
        options.log.warn('ui-sign-in-refused', {});
        return signInPage(res, 401, 'That is not the API token.');
      }
      options.log.info('ui-signed-in', {});
      redirect(res, '/ui', { 'set-cookie': cookie(startSession(), SESSION_TTL_MS / 1000) });
    },
    'POST /ui/sign-out': async (req, res) => {
      sameOrigin(req);
      await readForm(req);
      const id = cookieValue(req.headers.cookie, COOKIE);
      if (id) sessions.delete(sha256(id).toString('hex'));
      redirect(res, '/ui/sign-in', { 'set-cookie': cookie('', 0) });
    },
    'GET /ui/report.js': async (_req, res) => asset(res, (await clientAssets()).script, 'text/javascript; charset=utf-8'),
    'GET /ui/report.css': async (_req, res) => asset(res, (await clientAssets()).css, 'text/css; charset=utf-8'),
  };

  return async (req, res, url) => {
    const path = url.pathname.length > 3 && url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
    const route = routes[`${req.method ?? 'GET'} ${path}`];
    try {
      if (!route) throw new UiError(Object.keys(routes).some((k) => k.endsWith(` ${path}`)) ? 405 : 404, 'no such page');
      await route(req, res);
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = error instanceof UiError ? error.status : 503;
      if (status === 413) res.setHeader('connection', 'close');
      if (!(error instanceof UiError)) options.log.error('ui-failed', { error: errorText(error) });
      const text = error instanceof UiError ? error.message : 'the state store did not answer; the page will try again';
      json(res, status, { error: text });
    }
  };
}

/** What the page shows, from the state store and the heartbeat. */
async function gather(options: UiOptions): Promise<{ data: ReportData; live: LiveData }> {
  const { store } = options;
  const nowMs = await store.now();
  // With the daemon's manifest, its runs only: a store may be shared by several manifests.
  const scope = options.resources ? manifestScope({ resources: options.resources }) : null;
  const found = await latestAudit(store, undefined, scope);
  const types = options.resources?.map((r) => r.name) ?? (await recordedTypes(store));
  const grace = options.resources ? new Map(options.resources.map((r) => [r.name, r.graceMs])) : undefined;
  const history = { trend: await readTrend(store, 30, scope), pending: await readPending(store, types, grace) };
  const sources = [`state store ${store.description ?? ''}`.trim(), ...(found ? [`audit run ${found.run.runId}`] : [])];
  const data = buildReportData({ title: 'reaper daemon', generatedAt: new Date(nowMs).toISOString(), reaper: reaperVersion(), sources, audit: found?.audit ?? null, history });

  const leases = await store.listLeases({ limit: LEASES_COUNTED });
  const byHolder = new Map<string, number>();
  for (const l of leases) byHolder.set(l.holder, (byHolder.get(l.holder) ?? 0) + 1);
  const expiring = leases
    .filter((l) => l.expiresAt - nowMs < l.ttlMs / 3)
    .sort((a, b) => a.expiresAt - b.expiresAt)
    .slice(0, REPORT_LIMITS.expiring)
    .map((l) => ({ key: l.key, holder: l.holder, generation: l.generation, expiresInSeconds: (l.expiresAt - nowMs) / 1000, ttlSeconds: l.ttlMs / 1000 }));
  const reapRuns: ReapRunRow[] = (await store.listRuns({ kind: 'reap', limit: REPORT_LIMITS.reapRuns })).map((run) => {
    const outcomes = (run.summary as { outcomes?: ReapRunRow['outcomes'] } | null)?.outcomes ?? null;
    return {
      runId: run.runId,
      status: run.status,
      execute: run.execute,
      startedAt: new Date(run.startedAt).toISOString(),
      finishedAt: run.finishedAt === null ? null : new Date(run.finishedAt).toISOString(),
      outcomes: outcomes && { marked: outcomes.marked, deleted: outcomes.deleted, lifted: outcomes.lifted, failed: outcomes.failed },
      error: run.error,
    };
  });
  const counter = async (c: Counter<string>, outcome?: string) => (await c.get()).values.filter((v) => outcome === undefined || v.labels.outcome === outcome).reduce((s, v) => s + v.value, 0);
  const beat = options.heartbeat();
  const live: LiveData = {
    at: new Date(nowMs).toISOString(),
    holder: options.holder,
    ready: beat.ready,
    heartbeat: {
      held: beat.held,
      wanted: beat.wanted,
      renewalsOk: await counter(options.metrics.renewals, 'ok'),
      renewalsFailed: await counter(options.metrics.renewals, 'failed'),
      leasesLost: await counter(options.metrics.leasesLost),
    },
    renewals: leaseTelemetry(await store.leaseStats(LEASE_WINDOW_MS), LEASE_WINDOW_MS),
    activeLeases: leases.length,
    leasesCapped: leases.length >= LEASES_COUNTED,
    holders: [...byHolder.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, REPORT_LIMITS.holders).map(([holder, active]) => ({ holder, active })),
    expiring,
    reapRuns,
  };
  return { data, live };
}

function securityHeaders(): Record<string, string> {
  return {
    'content-security-policy': LIVE_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-store',
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...securityHeaders(), 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function asset(res: ServerResponse, text: string, type: string): void {
  res.writeHead(200, { ...securityHeaders(), 'content-type': type, 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-cache' });
  res.end(text);
}

export function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

/** A form posted from another site is refused (with SameSite=Strict the cookie is not sent either). */
function sameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new UiError(403, 'cross-site form refused');
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new UiError(403, 'cross-site form refused');
    }
    if (host !== req.headers.host) throw new UiError(403, 'cross-site form refused');
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type'] ?? '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new UiError(413, 'the form is too large');
    chunks.push(chunk);
  }
  if (size === 0) return new URLSearchParams();
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) throw new UiError(415, 'expected a form (application/x-www-form-urlencoded)');
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
