/**
 * The daemon's HTTP lease API (node:http, no framework).
 *
 *   POST   /v1/leases              {key, ttl, holder?}  → 201 lease + its token
 *   GET    /v1/leases?key=K        → {leases} (never tokens)
 *   GET    /v1/leases/{id}         → the lease
 *   POST   /v1/leases/{id}/renew   {ttl?}               → 200 | 409 lost | 404
 *   DELETE /v1/leases/{id}         → 204
 *   GET    /metrics  /healthz  /readyz
 *   GET    /openapi.json           → the OpenAPI 3.1 document of these routes (config/openapi.json)
 *
 * Every route except /healthz, /readyz and /openapi.json (and /metrics when public) needs
 * `Authorization: Bearer TOKEN`, compared in constant time on SHA-256 digests.
 * Renew and release also need the lease's own token (`X-Lease-Token`), so a holder
 * can act only on its own leases (docs/safety.md §16). A late renewal of an expired or
 * released lease answers 409 and changes nothing (§15). Errors are `{error}`.
 *
 * Input the store cannot take is refused here with 400, before the store sees it: a lease
 * id that is not a UUID, a key or holder with a NUL or an unpaired surrogate, a ttl
 * outside the store's bounds. Only a store that fails answers 503, so no client can make
 * the daemon report an outage.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { BackendError, LeaseLostError } from '../errors.js';
import { formatDuration } from '../manifest/duration.js';
import { DEFAULT_LEASE_BOUNDS, type LeaseBounds, type LeaseStore } from '../state/types.js';
import { errorText, type DaemonLog } from '../util/json-log.js';
import type { DaemonMetrics } from './metrics.js';
import { RenewBatcher } from './renew-batcher.js';
import type { UiHandler } from './ui.js';
import { acquiredToJson, checkText, isLeaseId, LEASE_TOKEN_HEADER, leaseToJson, MAX_HOLDER_LENGTH, MAX_KEY_LENGTH, parseTtl, type ErrorJson } from '../lease/wire.js';

export type ApiStore = Pick<LeaseStore, 'acquireLease' | 'renewLeases' | 'releaseLease' | 'getLease' | 'verifyLeaseToken' | 'listLeases'> & {
  /** The ttls the store grants, named in the API's refusals; DEFAULT_LEASE_BOUNDS when the store does not say. */
  readonly leaseBounds?: LeaseBounds;
};

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

export interface ApiOptions {
  store: ApiStore;
  /** Holder recorded for leases acquired without one. */
  holder: string;
  /** The API token, or null when authentication was explicitly disabled. */
  token: string | null;
  metricsPublic: boolean;
  maxBodyBytes: number;
  metrics: DaemonMetrics;
  log: DaemonLog;
  readiness(): Readiness;
  /** The dashboard under /ui (ui.ts): it signs its users in with the same token; null: not served. */
  ui?: UiHandler | null;
}

/** Route templates: the only values of the `route` label. */
export type Route = '/v1/leases' | '/v1/leases/{id}' | '/v1/leases/{id}/renew' | '/metrics' | '/healthz' | '/readyz' | '/openapi.json' | '/ui' | 'unmatched';

const ALLOWED: Record<Exclude<Route, 'unmatched' | '/ui'>, readonly string[]> = {
  '/v1/leases': ['GET', 'POST'],
  '/v1/leases/{id}': ['GET', 'DELETE'],
  '/v1/leases/{id}/renew': ['POST'],
  '/metrics': ['GET'],
  '/healthz': ['GET'],
  '/readyz': ['GET'],
  '/openapi.json': ['GET'],
};

/** The API's OpenAPI document, checked in beside the manifest schema (and in the npm package). */
export const OPENAPI_FILE = new URL('../../config/openapi.json', import.meta.url);
let openapiText: Promise<string> | null = null;

const MAX_LIST_LIMIT = 1_000;
/** A body this many times over the limit is not even drained: the connection is closed. */
const DRAIN_FACTOR = 16;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Partial<ErrorJson> = {},
    readonly close = false,
  ) {
    super(message);
  }
}

/** The route of a path; `id` is the decoded lease id, or null when it does not decode. */
export function matchRoute(pathname: string): { route: Route; id?: string | null } {
  if (pathname === '/v1/leases' || pathname === '/metrics' || pathname === '/healthz' || pathname === '/readyz' || pathname === '/openapi.json') return { route: pathname };
  if (pathname === '/ui' || pathname.startsWith('/ui/')) return { route: '/ui' };
  const m = /^\/v1\/leases\/([^/]+)(\/renew)?$/.exec(pathname);
  if (!m) return { route: 'unmatched' };
  let id: string | null;
  try {
    id = decodeURIComponent(m[1]!);
  } catch {
    id = null;
  }
  return { route: m[2] ? '/v1/leases/{id}/renew' : '/v1/leases/{id}', id };
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export function createApiHandler(options: ApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, metrics, log } = options;
  const bounds = store.leaseBounds ?? DEFAULT_LEASE_BOUNDS;
  const tokenDigest = options.token === null ? null : digest(options.token);

  const authorized = (req: IncomingMessage): boolean => {
    if (tokenDigest === null) return true;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    // Equal-length digests: the comparison takes the same time whatever was presented.
    return m !== null && timingSafeEqual(digest(m[1]!), tokenDigest);
  };

  /**
   * The lease exists and the caller presented its own token; else 404 or 403. A token
   * that matches proves the lease exists, so the common case is one read; only a
   * refusal reads again, to tell "no such lease" from "not yours".
   */
  const requireHolder = async (req: IncomingMessage, id: string): Promise<void> => {
    const presented = req.headers[LEASE_TOKEN_HEADER];
    const hasToken = typeof presented === 'string' && presented !== '';
    if (hasToken && (await store.verifyLeaseToken(id, presented))) return;
    if ((await store.getLease(id)) === null) throw new HttpError(404, `no lease ${id}`, { lost: 'not-found' });
    if (!hasToken) throw new HttpError(403, `renewing or releasing a lease needs its own token in the ${LEASE_TOKEN_HEADER} header`, { lost: 'not-holder' });
    throw new HttpError(403, `the lease token does not match lease ${id}`, { lost: 'not-holder' });
  };
  // Concurrent renewals share one renewLeases call (group commit): see RenewBatcher.
  const renewals = new RenewBatcher(store);

  const routes = {
    'GET /healthz': async (_req: IncomingMessage, res: ServerResponse) => sendJson(res, 200, { status: 'ok' }),
    'GET /readyz': async (_req: IncomingMessage, res: ServerResponse) => {
      const { ready, detail } = options.readiness();
      sendJson(res, ready ? 200 : 503, { ready, ...detail });
    },
    'GET /openapi.json': async (_req: IncomingMessage, res: ServerResponse) => {
      const text = await (openapiText ??= readFile(OPENAPI_FILE, 'utf8'));
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache' });
      res.end(text);
    },
    'GET /metrics': async (_req: IncomingMessage, res: ServerResponse) => {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    },
    'GET /v1/leases': async (_req: IncomingMessage, res: ServerResponse, url: URL) => {
      const key = url.searchParams.get('key') ?? undefined;
      if (key !== undefined) badText(key, 'key', MAX_KEY_LENGTH);
      rejectUnknown(Object.fromEntries(url.searchParams), ['key', 'all', 'limit'], 'query parameter');
      const repeated = ['key', 'all', 'limit'].filter((p) => url.searchParams.getAll(p).length > 1);
      if (repeated.length > 0) throw new HttpError(400, `query parameter given more than once: ${repeated.join(', ')}`);
      const all = url.searchParams.get('all');
      if (all !== null && !['true', 'false', '1', '0'].includes(all)) throw new HttpError(400, 'all must be true, false, 1 or 0');
      const limitText = url.searchParams.get('limit');
      const limit = limitText === null ? undefined : Number(limitText);
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)) {
        throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
      }
      const leases = await store.listLeases({ key, includeInactive: all === 'true' || all === '1', limit: limit ?? MAX_LIST_LIMIT });
      sendJson(res, 200, { leases: leases.map(leaseToJson) });
    },
    'POST /v1/leases': async (req: IncomingMessage, res: ServerResponse) => {
      const body = await readJson(req, options.maxBodyBytes, true);
      rejectUnknown(body, ['key', 'ttl', 'holder']);
      const { key, holder } = body;
      if (typeof key !== 'string') throw new HttpError(400, `key must be a string of 1 to ${MAX_KEY_LENGTH} characters`);
      badText(key, 'key', MAX_KEY_LENGTH);
      if (holder !== undefined) {
        if (typeof holder !== 'string') throw new HttpError(400, `holder must be a string of 1 to ${MAX_HOLDER_LENGTH} characters`);
        badText(holder, 'holder', MAX_HOLDER_LENGTH);
      }
      const ttlMs = ttlFrom(body.ttl, true, bounds)!;
      const lease = await store.acquireLease({ key, holder: holder ?? options.holder, ttlMs });
      res.setHeader('location', `/v1/leases/${encodeURIComponent(lease.leaseId)}`);
      sendJson(res, 201, acquiredToJson(lease));
    },
    'GET /v1/leases/{id}': async (_req: IncomingMessage, res: ServerResponse, _url: URL, id: string) => {
      const lease = await store.getLease(id);
      if (!lease) throw new HttpError(404, `no lease ${id}`, { lost: 'not-found' });
      sendJson(res, 200, leaseToJson(lease));
    },
    'POST /v1/leases/{id}/renew': async (req: IncomingMessage, res: ServerResponse, _url: URL, id: string) => {
      const body = await readJson(req, options.maxBodyBytes, false);
      rejectUnknown(body, ['ttl']);
      const ttlMs = ttlFrom(body.ttl, false, bounds);
      await requireHolder(req, id);
      const endTimer = metrics.renewalDuration.startTimer();
      try {
        const lease = await renewals.renew(id, ttlMs);
        metrics.renewals.inc({ outcome: 'ok' });
        sendJson(res, 200, leaseToJson(lease));
      } catch (error) {
        if (error instanceof LeaseLostError) metrics.renewals.inc({ outcome: 'failed' });
        throw error;
      } finally {
        endTimer();
      }
    },
    'DELETE /v1/leases/{id}': async (req: IncomingMessage, res: ServerResponse, _url: URL, id: string) => {
      await readBody(req, options.maxBodyBytes);
      await requireHolder(req, id);
      await store.releaseLease(id);
      res.writeHead(204, { 'cache-control': 'no-store' });
      res.end();
    },
  } satisfies Record<string, (req: IncomingMessage, res: ServerResponse, url: URL, id: string) => Promise<void>>;

  const serve = async (req: IncomingMessage, res: ServerResponse, route: Route, url: URL, id: string | null | undefined): Promise<void> => {
    // The dashboard checks the token itself, at sign-in, and its session cookie after.
    if (route === '/ui' && options.ui) return options.ui(req, res, url);
    const isPublic = route === '/healthz' || route === '/readyz' || route === '/openapi.json' || (route === '/metrics' && options.metricsPublic);
    if (!isPublic && !authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="reaper"');
      throw new HttpError(401, 'missing or wrong API token (Authorization: Bearer TOKEN)');
    }
    if (route === 'unmatched' || route === '/ui') throw new HttpError(404, `no route ${req.method ?? ''} ${url.pathname}`);
    const method = req.method ?? 'GET';
    if (!ALLOWED[route].includes(method)) {
      res.setHeader('allow', ALLOWED[route].join(', '));
      throw new HttpError(405, `${method} is not allowed on ${route}`);
    }
    if (id !== undefined && (id === null || !isLeaseId(id))) {
      throw new HttpError(400, 'malformed lease id: a lease id is a UUID such as 0b9a5a8e-3c1f-4d2a-9e61-7f2c4a1b8d30');
    }
    const handler = routes[`${method} ${route}` as keyof typeof routes];
    await handler(req, res, url, id ?? '');
  };

  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://reaper.invalid');
    } catch {
      url = new URL('http://reaper.invalid/');
    }
    const { route, id } = matchRoute(url.pathname);
    const started = performance.now();
    res.once('finish', () => {
      metrics.httpRequests.inc({ route, code: String(res.statusCode) });
      // The route template only: never the URL (ids, keys) nor any header.
      log.debug('request', { method: req.method, route, code: res.statusCode, ms: Math.round(performance.now() - started) });
    });
    serve(req, res, route, url, id).catch((error: unknown) => {
      const { status, body, close } = errorResponse(error, log, route);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (close) res.setHeader('connection', 'close');
      sendJson(res, status, body);
    });
  };
}

function errorResponse(error: unknown, log: DaemonLog, route: Route): { status: number; body: ErrorJson; close: boolean } {
  if (error instanceof HttpError) return { status: error.status, body: { error: error.message, ...error.extra }, close: error.close };
  if (error instanceof LeaseLostError) {
    const status = error.why === 'not-found' ? 404 : error.why === 'not-holder' ? 403 : 409;
    return { status, body: { error: error.message, lost: error.why }, close: false };
  }
  if (error instanceof RangeError) return { status: 400, body: { error: error.message }, close: false };
  if (error instanceof BackendError) {
    log.error('store-error', { route, error: errorText(error) });
    return { status: 503, body: { error: 'the state store is unavailable; try again' }, close: false };
  }
  log.error('request-failed', { route, error: errorText(error) });
  return { status: 500, body: { error: 'internal error' }, close: false };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

function ttlFrom(value: unknown, required: boolean, bounds: LeaseBounds): number | undefined {
  if (value === undefined) {
    if (required) throw new HttpError(400, `ttl is required, e.g. "60s" or 60 (seconds), from ${formatDuration(bounds.minTtlMs)} to ${formatDuration(bounds.maxTtlMs)}`);
    return undefined;
  }
  const parsed = parseTtl(value, bounds);
  if (typeof parsed !== 'number') throw new HttpError(400, parsed.error);
  return parsed;
}

function badText(value: string, what: string, max: number): void {
  const problem = checkText(value, what, max);
  if (problem) throw new HttpError(400, problem);
}

function rejectUnknown(body: Record<string, unknown>, known: readonly string[], what = 'field'): void {
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown ${what}${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
}

/**
 * Read a request body of at most `limit` bytes. A larger one is drained and discarded
 * (so the client can read the 413 on a healthy connection) up to DRAIN_FACTOR times the
 * limit; beyond that, or when the declared length is that large, the connection closes.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (close: boolean) => new HttpError(413, `the request body is larger than ${limit} bytes`, {}, close);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit * DRAIN_FACTOR) return Promise.reject(tooLarge(true));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit * DRAIN_FACTOR) {
        cleanup();
        reject(tooLarge(true));
        return;
      }
      if (size > limit) {
        over = true;
        chunks.length = 0;
      }
      if (!over) chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      if (over) reject(tooLarge(false));
      else resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** A JSON object body; an empty body is `{}` unless `required`. */
async function readJson(req: IncomingMessage, limit: number, required: boolean): Promise<Record<string, unknown>> {
  const raw = await readBody(req, limit);
  if (raw.length === 0) {
    if (required) throw new HttpError(400, 'a JSON body is required');
    return {};
  }
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new HttpError(415, 'the body must be JSON (Content-Type: application/json)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}
