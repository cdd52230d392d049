/**
 * The lease daemon: runs beside a service, heartbeats that service's owner leases in
 * the state store, and serves the HTTP lease API, /metrics, /healthz and /readyz.
 *
 * Start: metrics, then the HTTP server (so /healthz answers while the store is slow),
 * then the first heartbeat tick (the initial acquisitions). Each resource registers a
 * releaser; `stop()` (idempotent) runs them last-in-first-out within one time budget
 * (`stopTimeoutMs`, default 10 s), whatever the store does: stop scheduling, wait for
 * the tick in flight, release the leases if `releaseOnExit`, close the HTTP server (idle
 * connections at once, busy ones when the budget runs out). The store belongs to the
 * caller and stays open. Signals are the CLI's business.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { BackendError, UsageError } from '../errors.js';
import type { Lease, LeaseBounds, StateStore } from '../state/types.js';
import { remainingMs, settlesWithin, untilAborted } from '../util/deadline.js';
import { Releasers } from '../util/releasers.js';
import { Heartbeat } from './heartbeat.js';
import { createApiHandler } from './http-api.js';
import { DEFAULT_LISTEN, formatHostPort, type ListenAddress } from './listen.js';
import { errorText, jsonLog, type DaemonLog, type LogLevel, type LogStream } from '../util/json-log.js';
import { createDaemonMetrics } from './metrics.js';
import { createUiHandler, type UiOptions } from './ui.js';
import { callTimeout, renewalInterval, safetyMargin } from '../lease/timing.js';
import { checkText, MAX_KEY_LENGTH } from '../lease/wire.js';

export interface DaemonTlsOptions {
  /** PEM certificate (chain) and private key the server presents. */
  cert: string | Buffer;
  key: string | Buffer;
  /** PEM CA bundle that client certificates must chain to. */
  ca?: string | Buffer;
  /** Refuse clients without a certificate signed by `ca`. */
  requireClientCert?: boolean;
}

export type DaemonStore = Pick<
  StateStore,
  'acquireLease' | 'acquireLeases' | 'renewLease' | 'renewLeases' | 'releaseLease' | 'getLease' | 'verifyLeaseToken' | 'listLeases' | 'now' | 'pruneLeases'
> & { readonly description?: string; readonly leaseBounds?: LeaseBounds };

export interface DaemonOptions {
  store: DaemonStore;
  /** Owner keys to hold a lease on (`--lease KEY…`); may be empty for an API-only daemon. */
  leases?: readonly string[];
  /** Lease ttl; required when `leases` is not empty. */
  ttlMs?: number;
  /** Renewal interval: default and maximum a third of the ttl; each wait is jittered ±10%. */
  intervalMs?: number;
  /**
   * Deadline of each store call the heartbeat makes (default half the renewal interval,
   * at most 10 s; must be shorter than the interval). Give the store the same deadline
   * when opening it (`openStateStore(url, { timeoutMs })`), so the API's calls have it too.
   */
  storeTimeoutMs?: number;
  /**
   * A lease counts as held until the send time of its last confirmed renewal plus the
   * ttl, minus this margin (default a tenth of the ttl); readiness and the metrics follow.
   */
  safetyMarginMs?: number;
  /** Who holds the daemon's leases (also the holder of API leases acquired without one). */
  holder: string;
  /** Where to listen (default 127.0.0.1:8476; port 0 picks a free port). */
  listen?: Partial<ListenAddress>;
  /** The API token clients present as `Authorization: Bearer TOKEN` (at least 16 characters). */
  token?: string;
  /** Serve the API without a token. Must be said explicitly; conflicts with `token`. */
  noAuth?: boolean;
  /** Release the daemon's leases on stop (default: let them run out by their ttl). */
  releaseOnExit?: boolean;
  tls?: DaemonTlsOptions;
  /** Serve /metrics without the token. */
  metricsPublic?: boolean;
  /** Where JSON log lines go (default: nowhere). */
  log?: LogStream | null;
  logLevel?: LogLevel;
  /** Largest request body (default 64 KiB); larger ones answer 413. */
  maxBodyBytes?: number;
  /** The most stop() takes, all steps together: a heartbeat in flight, lease releases, open requests (default 10 s). */
  stopTimeoutMs?: number;
  /**
   * Leases that ended longer ago than this are deleted from the store, with renewal
   * statistics as old (default 7 days; null: never). The store keeps any lease a pending
   * tombstone may still ask about, whatever its age.
   */
  leaseRetentionMs?: number | null;
  /** How often to prune (default hourly; the first prune comes at a random point of the first period). */
  pruneEveryMs?: number;
  /**
   * The caller's stop signal. When it aborts during the start, the start stops waiting for
   * the initial acquisitions and returns at once; the caller then calls `stop()`, which
   * ends the acquisitions after the batch under way (docs/leases.md, the shutdown row).
   */
  signal?: AbortSignal;
  /** For tests: the jitter's random source. */
  random?: () => number;
  /** Serve the dashboard at /ui (ui.ts) from this store; the manifest's types give pending tombstones their earliest sweep. */
  ui?: Pick<UiOptions, 'store' | 'resources' | 'refreshSeconds'> | null;
}

export interface Daemon {
  /** Base URL of the API, with the actual port (`http://127.0.0.1:PORT`). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** This daemon's own metrics registry (the process metrics are added at scrape time). */
  readonly registry: Registry;
  /** The Prometheus text /metrics serves. */
  metrics(): Promise<string>;
  /** What /readyz answers 200 for: the store answered and every key holds a lease not past its deadline. */
  isReady(): boolean;
  /** The leases the heartbeat holds now (no tokens). */
  leases(): Lease[];
  /** Stop gracefully; idempotent (every call returns the same promise). */
  stop(): Promise<void>;
}

export const MIN_TOKEN_LENGTH = 16;
const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** How often an API-only daemon (no keys) checks that the store answers, for /readyz. */
const API_ONLY_PING_MS = 10_000;
const DEFAULT_LEASE_RETENTION_MS = 7 * 24 * 3_600_000;
const DEFAULT_PRUNE_EVERY_MS = 3_600_000;

interface Settings {
  keys: string[];
  ttlMs: number;
  intervalMs: number;
  callTimeoutMs: number;
  marginMs: number;
  token: string | null;
  host: string;
  port: number;
  maxBodyBytes: number;
}

/**
 * Check the options as startDaemon() will, without the store: the CLI calls it before it
 * opens the store, so a usage error (exit 2) has contacted nothing.
 */
export function checkDaemonOptions(options: Omit<DaemonOptions, 'store'>): void {
  settings(options);
}

function settings(options: Omit<DaemonOptions, 'store'>): Settings {
  const keys = [...new Set(options.leases ?? [])];
  for (const key of keys) {
    const problem = checkText(key, 'a lease key', MAX_KEY_LENGTH);
    if (problem) throw new UsageError(problem);
  }
  if (!options.holder) throw new UsageError('the daemon needs a holder name');
  let ttlMs = 0;
  // An API-only daemon pings the store for /readyz; its interval stays above the store timeout.
  let intervalMs = Math.max(API_ONLY_PING_MS, 2 * (options.storeTimeoutMs ?? 0));
  let marginMs = 0;
  if (keys.length > 0 || options.ttlMs !== undefined) {
    ttlMs = options.ttlMs ?? NaN;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new UsageError('holding leases needs a positive ttl (--ttl, e.g. 30s)');
    const interval = renewalInterval(ttlMs, options.intervalMs);
    if (typeof interval !== 'number') throw new UsageError(interval.error);
    intervalMs = interval;
    const margin = safetyMargin(ttlMs, intervalMs, options.safetyMarginMs);
    if (typeof margin !== 'number') throw new UsageError(margin.error);
    marginMs = margin;
  }
  const timeout = callTimeout(intervalMs, options.storeTimeoutMs);
  if (typeof timeout !== 'number') throw new UsageError(timeout.error);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new UsageError('maxBodyBytes must be a positive whole number');
  if (options.noAuth && options.token !== undefined) throw new UsageError('give either an API token or noAuth, not both');
  let token: string | null = null;
  if (!options.noAuth) {
    if (options.token === undefined || options.token === '') {
      throw new UsageError('the daemon API needs a token (--token-file FILE or $REAPER_TOKEN); to serve without one, say so with --no-auth');
    }
    if (options.token.length < MIN_TOKEN_LENGTH) {
      throw new UsageError(`the API token is ${options.token.length} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`);
    }
    token = options.token;
  }
  if (options.tls?.requireClientCert && !options.tls.ca) throw new UsageError('requiring client certificates needs a CA to check them against (--tls-ca)');
  const host = options.listen?.host ?? DEFAULT_LISTEN.host;
  const port = options.listen?.port ?? DEFAULT_LISTEN.port;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`the port must be a number from 0 to 65535, got ${port}`);
  return { keys, ttlMs, intervalMs, callTimeoutMs: timeout, marginMs, token, host, port, maxBodyBytes };
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const s = settings(options);
  const log: DaemonLog = jsonLog(options.log ?? null, { level: options.logLevel, secrets: s.token ? [s.token] : [] });
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const releasers = new Releasers();
  let stopping = false;
  /** The end of stop()'s time budget (performance.now()), set when stop() begins. */
  let stopDeadline = Infinity;
  const stopLeft = () => Math.min(stopTimeoutMs, remainingMs(stopDeadline));
  try {
    let heartbeat: Heartbeat | null = null;
    const isReady = (): boolean => !stopping && heartbeat !== null && heartbeat.ready;
    const metrics = await createDaemonMetrics({
      ready: isReady,
      leasesActive: () => heartbeat?.leases().length ?? 0,
      heartbeatLagSeconds: () => heartbeat?.lagSeconds() ?? 0,
    });
    const beat = new Heartbeat({
      store: options.store,
      keys: s.keys,
      ttlMs: s.ttlMs,
      intervalMs: s.intervalMs,
      callTimeoutMs: s.callTimeoutMs,
      marginMs: s.marginMs,
      holder: options.holder,
      metrics,
      log,
      random: options.random,
    });
    heartbeat = beat;
    const handler = createApiHandler({
      store: options.store,
      holder: options.holder,
      token: s.token,
      metricsPublic: Boolean(options.metricsPublic),
      maxBodyBytes: s.maxBodyBytes,
      metrics,
      log,
      readiness: () => ({ ready: isReady(), detail: { stopping, leases: { held: beat.leases().length, wanted: beat.wanted } } }),
      ui: options.ui
        ? createUiHandler({
            ...options.ui,
            token: s.token,
            secure: Boolean(options.tls),
            holder: options.holder,
            metrics,
            log,
            heartbeat: () => ({ ready: isReady(), held: beat.leases().length, wanted: beat.wanted }),
          })
        : null,
    });

    const server = createServer(options.tls, (req, res) => {
      if (stopping) res.setHeader('connection', 'close');
      // A keep-alive connection that finishes a response during stop() closes now, not at the stop deadline.
      res.once('finish', () => {
        if (stopping) setImmediate(() => server.closeIdleConnections());
      });
      handler(req, res);
    });
    await listen(server, s.host, s.port);
    releasers.add(() => closeServer(server, stopLeft()));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : s.port;
    const url = `${options.tls ? 'https' : 'http'}://${formatHostPort(s.host, port)}`;
    log.info('listening', {
      host: s.host,
      port,
      url,
      tls: Boolean(options.tls),
      clientCerts: Boolean(options.tls?.requireClientCert),
      auth: s.token !== null,
      metricsPublic: Boolean(options.metricsPublic),
      keys: s.keys.length,
      ttlMs: s.ttlMs,
      intervalMs: s.intervalMs,
      storeTimeoutMs: s.callTimeoutMs,
      safetyMarginMs: s.marginMs,
      stopTimeoutMs,
      store: options.store.description,
    });
    if (s.token === null) log.warn('auth-disabled', { message: 'the lease API accepts requests without a token (--no-auth)' });

    releasers.add(async () => {
      await beat.stop(stopLeft());
      // Releases leave a tenth of the budget (at most 1 s) for closing the server and the store.
      if (options.releaseOnExit) await beat.releaseAll(Math.max(0, stopLeft() - Math.min(1_000, stopTimeoutMs / 10)));
    });
    const signal = options.signal;
    if (!signal?.aborted) await Promise.race([beat.start(), ...(signal ? [untilAborted(signal)] : [])]);
    if (signal?.aborted) log.info('start-interrupted', { leases: beat.leases().length, wanted: beat.wanted });
    else log.info(isReady() ? 'ready' : 'not-ready', { leases: beat.leases().length, wanted: beat.wanted });
    const retentionMs = options.leaseRetentionMs === undefined ? DEFAULT_LEASE_RETENTION_MS : options.leaseRetentionMs;
    if (retentionMs !== null) releasers.add(schedulePrune(options, retentionMs, log, () => stopping, stopLeft));

    let stopped: Promise<void> | undefined;
    return {
      url,
      host: s.host,
      port,
      registry: metrics.registry,
      metrics: () => metrics.text(),
      isReady,
      leases: () => beat.leases(),
      stop() {
        stopped ??= (async () => {
          stopping = true;
          stopDeadline = performance.now() + stopTimeoutMs;
          log.info('stopping', { releaseOnExit: Boolean(options.releaseOnExit), stopTimeoutMs });
          try {
            await releasers.releaseAll();
          } catch (error) {
            log.error('stop-failed', { error: errorText(error) });
            throw error;
          }
          if (remainingMs(stopDeadline) === 0) log.warn('stop-timed-out', { stopTimeoutMs, message: 'the stop budget ran out; work still waiting on the store was abandoned' });
          log.info('stopped');
        })();
        return stopped;
      },
    };
  } catch (error) {
    stopping = true;
    await releasers.releaseAll().catch(() => undefined);
    throw error;
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type Server = HttpServer | HttpsServer;

function createServer(tls: DaemonTlsOptions | undefined, handler: Handler): Server {
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: Boolean(tls.requireClientCert), rejectUnauthorized: Boolean(tls.requireClientCert) }, handler)
    : createHttpServer(handler);
  // Slow clients cannot hold connections open: whole headers within 10 s, the whole request within 30 s.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  return server;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const hint = error.code === 'EADDRINUSE' ? ' (another process listens there; pick another --listen port)' : '';
      reject(new BackendError(`cannot listen on ${formatHostPort(host, port)}: ${error.code ?? error.message}${hint}`, { cause: error }));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** Stop accepting, close idle keep-alive connections now, and busy ones after `timeoutMs`. */
async function closeServer(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  if (!(await settlesWithin(closed, timeoutMs))) {
    server.closeAllConnections();
    await closed;
  }
}

/**
 * Prune ended leases every `pruneEveryMs`, the first time at a random point of the first
 * period (sidecars restarted together do not prune together). A failed prune is logged
 * and tried again next period. Returns the releaser that stops it.
 */
function schedulePrune(options: DaemonOptions, retentionMs: number, log: DaemonLog, stopping: () => boolean, stopLeft: () => number): () => Promise<void> {
  const everyMs = options.pruneEveryMs ?? DEFAULT_PRUNE_EVERY_MS;
  const random = options.random ?? Math.random;
  let timer: NodeJS.Timeout | undefined;
  let pruning: Promise<void> = Promise.resolve();
  const next = (delayMs: number) => {
    timer = setTimeout(() => {
      if (stopping()) return;
      pruning = options.store.pruneLeases(retentionMs).then(
        (pruned) => log.info('leases-pruned', { pruned, retentionMs }),
        (error: unknown) => log.warn('prune-failed', { error: errorText(error) }),
      );
      void pruning.then(() => stopping() || next(everyMs));
    }, delayMs);
    timer.unref();
  };
  next(Math.floor(random() * everyMs));
  return async () => {
    clearTimeout(timer);
    // A prune under way is not waited for past the stop budget (a hung store never answers).
    await settlesWithin(pruning, stopLeft());
  };
}
