/**
 * Driver errors from pg and mysql2 turned into BackendErrors that say what failed and
 * what to do, with any password or token in the text redacted (docs/safety.md §17).
 */
import { BackendError, redact } from '../../errors.js';
import type { Dialect } from './sql-text.js';

const SERVER: Record<Dialect, string> = { postgres: 'PostgreSQL', mysql: 'MySQL/MariaDB' };

interface DriverError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** Wrap a driver error; `context` names the connection or table (`postgres public.images (connection "main")`). */
export function sqlError(dialect: Dialect, context: string, error: unknown): BackendError {
  if (error instanceof BackendError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as DriverError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const errno = typeof e.errno === 'number' ? e.errno : undefined;
  const message = errorText(error);
  const advice = hint(dialect, code, errno, message);
  return new BackendError(redact(`${context}: ${message}${advice ? `; ${advice}` : ''}`), { cause: error });
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

function hint(dialect: Dialect, code: string | undefined, errno: number | undefined, message: string): string | null {
  const server = SERVER[dialect];
  switch (code) {
    case 'ECONNREFUSED':
      return `hint: nothing accepts connections there; start the ${server} server or correct the host and port of the connection URL`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'hint: the host name does not resolve; check the host of the connection URL';
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'PROTOCOL_CONNECTION_LOST':
      return `hint: the connection to the ${server} server failed; check the network and that the server is up`;
    case '28P01':
    case '28000':
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_DBACCESS_DENIED_ERROR':
      return 'hint: authentication failed; check the user and password of the connection URL';
    case '3D000':
    case 'ER_BAD_DB_ERROR':
      return 'hint: the database named in the connection URL does not exist';
    case '57014':
      return 'hint: the statement ran longer than the connection\'s statementTimeout; raise it, or narrow the where';
    case '42P01':
    case 'ER_NO_SUCH_TABLE':
      return 'hint: check the table names in the manifest and in its SQL fragments';
    case '42703':
    case 'ER_BAD_FIELD_ERROR':
      return 'hint: check the column names in the manifest and in its where, protect and owner-query SQL';
    case '42601':
    case 'ER_PARSE_ERROR':
      return 'hint: check the SQL of the where and protect fragments and of the owner query';
    case '42501':
    case 'ER_TABLEACCESS_DENIED_ERROR':
    case 'ER_COLUMNACCESS_DENIED_ERROR':
    case 'ER_SPECIFIC_ACCESS_DENIED_ERROR':
      return 'hint: the database user lacks a privilege this needs (SELECT to audit; UPDATE, DELETE and INSERT into the archive to reap)';
  }
  // MariaDB max_statement_time (1969) and MySQL max_execution_time (3024).
  if (errno === 1969 || errno === 3024) return 'hint: the statement ran longer than the connection\'s statementTimeout; raise it, or narrow the where';
  if (/timeout expired|connection timeout/i.test(message)) {
    return `hint: no connection to the ${server} server within the connect timeout; check the host, the network and the server's load`;
  }
  return null;
}
