/**
 * What the server dialects (PostgreSQL, MySQL/MariaDB) share and SQLite does not: a pool
 * of connections to a server, behind a deadline (docs/safety.md §19), and identity strings
 * (keys, resource ids, owners, cursors) stored and read back as bytes.
 */
import { createHash } from 'node:crypto';
import { redact, type BackendError } from '../errors.js';
import { serverAddress, storeError, type ServerAddress } from '../sql/errors.js';
import { DEFAULT_STORE_TIMEOUT_MS, type Row } from './common.js';
import type { StoreDriver } from './core.js';
import { StoreSockets } from './sockets.js';
import type { LeaseBounds } from './types.js';

/** The options of a server dialect's `open`. */
export interface ServerStoreOptions {
  leaseBounds?: LeaseBounds;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Deadline of every call (default 30 s): see `open`. */
  timeoutMs?: number;
}

/** A server store's deadline of every call, and the sockets its pool opens, kept so that close can cut them. */
export interface ServerDeadline {
  timeoutMs: number;
  sockets: StoreSockets;
}

/** The deadline a server store keeps (whole ms, at least 1; default 30 s). */
export function serverDeadline(timeoutMs: number | undefined): ServerDeadline {
  const ms = Math.max(1, Math.round(timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS));
  return { timeoutMs: ms, sockets: new StoreSockets(ms) };
}

/** A server dialect as its driver declares it: the contract's dialect, migrations and column lists, and the server as error hints name it. */
export interface ServerDialect extends Pick<StoreDriver, 'dialect' | 'migrations' | 'columns'> {
  server: 'PostgreSQL' | 'MySQL';
  defaultPort: number;
}

/**
 * The part of a server dialect's driver that does not depend on the database: its pool, its
 * name in messages (the URL, redacted), the server's address for error hints, the deadline,
 * and a close that ends the pool within the deadline and then cuts what is left.
 */
export abstract class ServerDriver<P extends { end(): Promise<void> }> {
  readonly dialect: StoreDriver['dialect'];
  readonly migrations: StoreDriver['migrations'];
  readonly columns: StoreDriver['columns'];
  readonly description: string;
  protected readonly address: ServerAddress;
  protected readonly timeoutMs: number;
  private readonly sockets: StoreSockets;
  private closing: Promise<void> | null = null;

  constructor(
    protected readonly pool: P,
    url: string,
    spec: ServerDialect,
    deadline: ServerDeadline,
  ) {
    this.dialect = spec.dialect;
    this.migrations = spec.migrations;
    this.columns = spec.columns;
    this.description = redact(url);
    this.address = serverAddress(url, spec.server, spec.defaultPort);
    this.timeoutMs = deadline.timeoutMs;
    this.sockets = deadline.sockets;
  }

  /** A driver error as the store's BackendError, saying what it was `doing`. */
  protected fail(error: unknown, doing: string): BackendError {
    return storeError(error, this.description, this.address, doing);
  }

  /** End the pool, waiting for the server at most `timeoutMs` (default the store's deadline); then cut what is left. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.sockets.close(() => this.pool.end(), Math.min(options.timeoutMs ?? this.timeoutMs, this.timeoutMs));
    return this.closing;
  }
}

/**
 * Server dialects read identity strings (keys, resource ids, cursors) back as bytes;
 * turn every Buffer of a row into its UTF-8 string before the shared decoders see it.
 */
export function textRow(r: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(r)) out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : v;
  return out;
}

export const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
export const utf8OrNull = (s: string | null | undefined): Buffer | null => (s === null || s === undefined ? null : Buffer.from(s, 'utf8'));
/** The SHA-256 of an identity's bytes: what the server dialects index an active tombstone's resource id by. */
export const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
