/**
 * `reaper daemon`: heartbeat leases for owner keys and serve the HTTP lease API,
 * /metrics, /healthz and /readyz until the CLI's stop signal (SIGTERM/SIGINT/SIGHUP) aborts,
 * then stop gracefully and exit 0 — within `--shutdown-timeout` (default 10 s) all told,
 * whatever the state store does: what still waits on the store when the time is up is
 * abandoned (unreleased leases run out by their ttl). Logs are JSON lines on stdout; the
 * API token never appears in them.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { checkDaemonOptions, startDaemon, type DaemonOptions, type DaemonTlsOptions } from '../../daemon/daemon.js';
import { DEFAULT_LISTEN, parseListenAddress, type ListenAddress } from '../../daemon/listen.js';
import { jsonLog, type LogLevel } from '../../util/json-log.js';
import { callTimeout, renewalInterval } from '../../lease/timing.js';
import { remainingMs, untilAborted } from '../../util/deadline.js';
import type { ManifestFlags } from '../flags.js';
import { manifestIfAny } from '../html-report.js';
import type { CliIO } from '../io.js';
import { checkLeaseKey, leaseTtlOption } from './lease.js';
import { defaultHolder, durationOption, openStore } from '../options.js';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const DEFAULT_SHUTDOWN_TIMEOUT = '10s';
/** An API-only daemon's store calls wait this long by default (it has no renewal interval to stay under). */
const API_ONLY_STORE_TIMEOUT_MS = 5_000;

async function readOptionFile(io: CliIO, file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path.resolve(io.cwd, file));
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}

function listenAddress(io: CliIO, options: DaemonFlags): ListenAddress {
  const text = options.listen ?? io.env.REAPER_LISTEN;
  if (text === undefined) return DEFAULT_LISTEN;
  const parsed = parseListenAddress(text);
  if ('error' in parsed) throw new UsageError(`--listen: ${parsed.error}`);
  return parsed;
}

/** The API token: --token-file, then $REAPER_TOKEN; none only with --no-auth. */
async function apiToken(io: CliIO, options: DaemonFlags, warnings: string[]): Promise<string | undefined> {
  const file = options.tokenFile;
  if (options.auth === false) {
    if (file !== undefined) throw new UsageError('--no-auth and --token-file contradict each other; give one');
    if (io.env.REAPER_TOKEN) warnings.push('$REAPER_TOKEN is set but ignored: --no-auth serves the API without a token');
    return undefined;
  }
  let token: string | undefined;
  if (file !== undefined) {
    token = (await readOptionFile(io, file, '--token-file')).toString('utf8').trim();
    if (token === '') throw new UsageError(`--token-file ${file}: the file is empty`);
    const mode = (await stat(path.resolve(io.cwd, file))).mode;
    if (mode & 0o077) warnings.push(`the token file ${file} can be read by other users; chmod 600 it`);
  } else {
    token = io.env.REAPER_TOKEN?.trim() || undefined;
  }
  if (token === undefined) {
    throw new UsageError('the daemon API needs a token: --token-file FILE or $REAPER_TOKEN (to serve without one, say --no-auth; not recommended)');
  }
  return token;
}

async function tlsOptions(io: CliIO, options: DaemonFlags): Promise<DaemonTlsOptions | undefined> {
  const { tlsCert: cert, tlsKey: key, tlsCa: ca } = options;
  const requireClientCert = options.requireClientCert === true;
  if (cert === undefined && key === undefined) {
    if (ca !== undefined || requireClientCert) throw new UsageError('--tls-ca and --require-client-cert need --tls-cert and --tls-key');
    return undefined;
  }
  if (cert === undefined || key === undefined) throw new UsageError('HTTPS needs both --tls-cert and --tls-key');
  if (requireClientCert && ca === undefined) throw new UsageError('--require-client-cert needs --tls-ca (the CA that signs client certificates)');
  return {
    cert: await readOptionFile(io, cert, '--tls-cert'),
    key: await readOptionFile(io, key, '--tls-key'),
    ca: ca === undefined ? undefined : await readOptionFile(io, ca, '--tls-ca'),
    requireClientCert,
  };
}

/** The deadline of every store call: --store-timeout, else half the renewal interval (at most 10 s). */
function storeTimeout(options: DaemonFlags, ttlMs: number | undefined, intervalMs: number | undefined): number {
  const given = options.storeTimeout === undefined ? undefined : durationOption(options.storeTimeout, '--store-timeout');
  if (ttlMs === undefined) {
    if (given !== undefined && given <= 0) throw new UsageError('--store-timeout must be more than 0');
    return given ?? API_ONLY_STORE_TIMEOUT_MS;
  }
  const interval = renewalInterval(ttlMs, intervalMs);
  if (typeof interval !== 'number') throw new UsageError(`--interval: ${interval.error}`);
  const timeout = callTimeout(interval, given);
  if (typeof timeout !== 'number') throw new UsageError(`--store-timeout: ${timeout.error}`);
  return timeout;
}

export interface DaemonFlags extends ManifestFlags {
  lease?: string[];
  ttl?: string;
  interval?: string;
  storeTimeout?: string;
  shutdownTimeout?: string;
  holder?: string;
  listen?: string;
  tokenFile?: string;
  /** false with --no-auth */
  auth?: boolean;
  releaseOnExit?: boolean;
  leaseRetention?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  requireClientCert?: boolean;
  metricsPublic?: boolean;
  logLevel?: LogLevel;
  /** false with --no-ui */
  ui?: boolean;
}

export async function daemonCommand(io: CliIO, _args: unknown[], options: DaemonFlags): Promise<number> {
  const keys = options.lease ?? [];
  for (const key of keys) checkLeaseKey(key);
  const ttlMs = options.ttl === undefined ? undefined : leaseTtlOption(options.ttl);
  const intervalMs = options.interval === undefined ? undefined : durationOption(options.interval, '--interval');
  if (keys.length > 0 && ttlMs === undefined) throw new UsageError('--lease needs --ttl (e.g. --ttl 30s)');
  const storeTimeoutMs = storeTimeout(options, ttlMs, intervalMs);
  const shutdownTimeoutMs = durationOption(options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT, '--shutdown-timeout');
  if (shutdownTimeoutMs <= 0) throw new UsageError('--shutdown-timeout must be more than 0');
  const retention = options.leaseRetention ?? '7d';
  const leaseRetentionMs = retention === 'off' ? null : durationOption(retention, '--lease-retention');
  const logLevel = options.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}`);
  const listen = listenAddress(io, options);
  const warnings: string[] = [];
  const token = await apiToken(io, options, warnings);
  const tls = await tlsOptions(io, options);
  const holder = options.holder ?? defaultHolder(io);

  const log = jsonLog(io.stdout, { level: logLevel, secrets: token ? [token] : [] });
  io.log = log; // the signal notice (and a failure) become lines of this JSON log
  for (const message of warnings) log.warn('config', { message });

  const daemonOptions: Omit<DaemonOptions, 'store' | 'ui'> = {
    leases: keys,
    ttlMs,
    intervalMs,
    storeTimeoutMs,
    stopTimeoutMs: shutdownTimeoutMs,
    holder,
    listen,
    token,
    noAuth: options.auth === false,
    releaseOnExit: options.releaseOnExit === true,
    leaseRetentionMs,
    tls,
    metricsPublic: options.metricsPublic === true,
    log: io.stdout,
    logLevel,
    // A signal during a long start stops it there (the acquisitions end after the batch under way).
    signal: io.signal,
  };
  // Every flag (the token's length too) is checked before the store is opened: exit 2 contacted nothing.
  checkDaemonOptions(daemonOptions);

  // The dashboard reads the same store; the manifest (when there is one) gives its types' grace.
  const uiResources = options.ui === false ? undefined : (await manifestIfAny(io, options))?.resources;
  const store = await openStore(io, options, { timeoutMs: storeTimeoutMs });
  let stopDeadline = Infinity;
  try {
    const daemon = await startDaemon({ ...daemonOptions, store, ui: options.ui === false ? null : { store, resources: uiResources } });
    try {
      await untilAborted(io.signal);
    } finally {
      stopDeadline = performance.now() + shutdownTimeoutMs;
      await daemon.stop();
    }
    return 0;
  } finally {
    // Bounded by the store's own deadline, and once a stop began by what is left of the shutdown bound.
    await store.close(stopDeadline === Infinity ? {} : { timeoutMs: remainingMs(stopDeadline) });
    if (stopDeadline !== Infinity && remainingMs(stopDeadline) === 0) {
      log.warn('shutdown-timeout', { shutdownTimeoutMs, message: 'the shutdown bound ran out; what still waited on the state store was abandoned' });
    }
  }
}
