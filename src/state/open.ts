/**
 * Open the state store named by a URL: `sqlite:PATH` (default), `postgres://…`, `mysql://…`.
 *
 * Every store call has a deadline (docs/safety.md §19): `timeoutMs`, default 30 s, or the
 * URL's own `?timeout=DURATION` on a server URL (the smaller of the two when both are
 * given). See each dialect's `open` for what the deadline bounds there.
 */
import { UsageError } from '../errors.js';
import { formatDuration, parseDuration } from '../manifest/duration.js';
import { DEFAULT_STORE_TIMEOUT_MS } from './common.js';
import type { LeaseBounds, StateStore } from './types.js';

export interface OpenStateStoreOptions {
  leaseBounds?: LeaseBounds;
  /** Deadline of every store call, in ms (default 30 s; SQLite: its busy timeout, default 5 s). */
  timeoutMs?: number;
}

export async function openStateStore(url: string, options: OpenStateStoreOptions = {}): Promise<StateStore> {
  if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
    throw new UsageError(`the state store timeout must be positive, got ${options.timeoutMs}`);
  }
  if (url.startsWith('sqlite:')) {
    const { SqliteStateStore } = await import('./sqlite/sqlite-state-store.js');
    return SqliteStateStore.open(url.slice('sqlite:'.length), { leaseBounds: options.leaseBounds, busyTimeoutMs: options.timeoutMs });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStateStore } = await import('./postgres/postgres-state-store.js');
    const { url: plain, timeoutMs } = splitTimeout(url, options.timeoutMs);
    return PostgresStateStore.open(plain, { leaseBounds: options.leaseBounds, timeoutMs });
  }
  if (url.startsWith('mysql://')) {
    const { MysqlStateStore } = await import('./mysql/mysql-state-store.js');
    const { url: plain, timeoutMs } = splitTimeout(url, options.timeoutMs);
    return MysqlStateStore.open(plain, { leaseBounds: options.leaseBounds, timeoutMs });
  }
  throw new UsageError(`unsupported state store URL (expected sqlite:PATH, postgres://… or mysql://…)`);
}

/** Take reaper's own `?timeout=DURATION` out of a server URL (the driver never sees it); the deadline to use. */
export function splitTimeout(url: string, given: number | undefined): { url: string; timeoutMs: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, timeoutMs: given ?? DEFAULT_STORE_TIMEOUT_MS };
  }
  const text = parsed.searchParams.get('timeout');
  if (text === null) return { url, timeoutMs: given ?? DEFAULT_STORE_TIMEOUT_MS };
  const fromUrl = parseDuration(text);
  if (typeof fromUrl !== 'number' || fromUrl <= 0) {
    throw new UsageError(`the state store URL's timeout=${text}: ${typeof fromUrl === 'number' ? 'must be more than 0' : fromUrl.error} (e.g. timeout=${formatDuration(DEFAULT_STORE_TIMEOUT_MS)})`);
  }
  parsed.searchParams.delete('timeout');
  return { url: parsed.toString(), timeoutMs: Math.min(fromUrl, given ?? Infinity) };
}
