/**
 * The one translator of driver errors (pg, mysql2, better-sqlite3) into BackendErrors, for
 * the SQL backends and the state stores alike: it says what failed and what to do, with any
 * password or token in the text redacted (docs/safety.md §17).
 */
import { BackendError, redact } from '../errors.js';
import type { Dialect } from './text.js';

const SERVER: Record<Dialect, string> = { postgres: 'PostgreSQL', mysql: 'MySQL/MariaDB' };

interface DriverError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** Where a server is, for hints (never includes credentials). */
export interface ServerAddress {
  /** "PostgreSQL" or "MySQL", as a person would name the server. */
  server: string;
  host: string;
  port: number;
}

/** Where a database URL points. */
export function serverAddress(url: string, server: string, defaultPort: number): ServerAddress {
  try {
    const u = new URL(url);
    return { server, host: decodeURIComponent(u.hostname) || 'localhost', port: u.port ? Number(u.port) : defaultPort };
  } catch {
    return { server, host: 'localhost', port: defaultPort };
  }
}

/**
 * A driver error as a BackendError: `context` says what failed; the hint says what to do
 * about reaching or entering the server (naming it at `at` when known) and, for `sql`
 * (a backend's manifest-driven statements), about the manifest's SQL.
 */
export function driverError(error: unknown, context: string, at: ServerAddress, sql = false): BackendError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as DriverError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const errno = typeof e.errno === 'number' ? e.errno : undefined;
  const message = errorText(error);
  const advice = connectionHint(code, message, at) ?? (sql ? sqlHint(code, errno, message) : null);
  return new BackendError(redact(`${context}: ${message}${advice ? `; hint: ${advice}` : ''}`), { cause: error });
}

/** A backend's driver error; `context` names the connection or table (`postgres public.images (connection "main")`). */
export function sqlError(dialect: Dialect, context: string, error: unknown): BackendError {
  if (error instanceof BackendError) return error;
  return driverError(error, context, { server: SERVER[dialect], host: '', port: 0 }, true);
}

/** A state store's driver error: which store, and what it was doing. */
export function storeError(error: unknown, description: string, at: ServerAddress, doing: string): BackendError {
  return driverError(error, `state store ${description}: ${doing} failed`, at);
}

function errorText(error: unknown): string {
  const e = (typeof error === 'object' && error !== null ? error : {}) as DriverError;
  if (typeof e.message === 'string' && e.message !== '') return e.message;
  // Node reports a refused connection to every address of a host as an AggregateError with no message.
  if (Array.isArray(e.errors)) {
    const inner = e.errors.map((x: unknown) => errorText(x)).filter((m) => m !== '');
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  if (typeof e.code === 'string') return e.code;
  return String(error);
}

function connectionHint(code: string | undefined, message: string, at: ServerAddress): string | null {
  const { server } = at;
  const place = at.host ? ` at ${at.host}:${at.port}` : '';
  switch (code) {
    case 'ECONNREFUSED':
      return `${place ? `is ${server} running${place}? ` : ''}nothing accepts connections there; start the ${server} server or correct the host and port of the URL`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name${at.host ? ` "${at.host}"` : ''} does not resolve; check the host of the URL`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'PROTOCOL_CONNECTION_LOST':
      return `the connection to the ${server} server${place} failed or was lost; check the network and that the server is up`;
    // PostgreSQL: invalid_password, invalid_authorization_specification; MySQL: access denied.
    case '28P01':
    case '28000':
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_DBACCESS_DENIED_ERROR':
      return 'authentication failed; check the user name and password in the URL';
    // SQLite: the file's disk; PostgreSQL: disk_full on the server.
    case 'SQLITE_FULL':
    case '53100':
      return `the disk of the ${code === 'SQLITE_FULL' ? 'state store' : `${server} server${place}`} is full: free space there; what a run was doing is settled by the next run (a delete in flight, by reading the resource)`;
    // PostgreSQL: invalid_catalog_name; MySQL: unknown database.
    case '3D000':
    case 'ER_BAD_DB_ERROR':
      return 'the database named in the URL does not exist; create it first (reaper creates its tables, not the database)';
  }
  if (/timeout expired|connection timeout|timeout/i.test(message) && code !== '57014') {
    return `no answer from the ${server} server${place} in time; check the host, the network and the server's load`;
  }
  return null;
}

/** The limit comes from the manifest or, without one there, from the server's settings for the user or database. */
const STATEMENT_TIMEOUT =
  "the statement ran longer than the statement timeout: the connection's statementTimeout, or without one the server's own (statement_timeout, max_statement_time or max_execution_time set for this user or database); raise statementTimeout, which overrides the server's, or narrow the where";

/** What to check in the manifest's SQL, for a backend's statement. */
function sqlHint(code: string | undefined, errno: number | undefined, message: string): string | null {
  switch (code) {
    case '57014':
      return STATEMENT_TIMEOUT;
    case '25006':
      return 'the database takes no writes: default_transaction_read_only is on for this user or database, or the server is a standby; reap on a writable primary';
    case '42P01':
    case 'ER_NO_SUCH_TABLE':
      return 'check the table names in the manifest and in its SQL fragments';
    case '42703':
    case 'ER_BAD_FIELD_ERROR':
      return 'check the column names in the manifest and in its where, protect and owner-query SQL';
    case '42601':
    case 'ER_PARSE_ERROR':
      return 'check the SQL of the where and protect fragments and of the owner query';
    case '42501':
    case 'ER_TABLEACCESS_DENIED_ERROR':
    case 'ER_COLUMNACCESS_DENIED_ERROR':
    case 'ER_SPECIFIC_ACCESS_DENIED_ERROR':
      return 'the database user lacks a privilege this needs (SELECT to audit; UPDATE, DELETE and INSERT into the archive to reap)';
  }
  // MariaDB max_statement_time (1969) and MySQL max_execution_time (3024).
  if (errno === 1969 || errno === 3024) return STATEMENT_TIMEOUT;
  // MySQL/MariaDB read_only (or super_read_only) on the server; 1290 names other options too.
  if (errno === 1836 || (errno === 1290 && /read[-_]only/i.test(message))) return 'the server takes no writes (read_only, or a replica); reap on a writable primary';
  return null;
}
