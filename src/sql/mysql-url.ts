/**
 * The one reader of `mysql://` URLs, for backend connections and the state store alike:
 * the URL is read here rather than handed to mysql2, so that only known parameters
 * apply (a URL cannot switch on multipleStatements, for one).
 */
import type { PoolOptions } from 'mysql2/promise';
import { BackendError, redact } from '../errors.js';

/** URL query parameters passed on to the driver. */
const URL_OPTIONS = new Set(['ssl', 'charset']);

/** Settings from a `mysql://user:password@host:port/database?ssl=…` URL. */
export function mysqlUrlOptions(url: string, context: string): PoolOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BackendError(`${context}: not a valid URL: ${redact(url)}`);
  }
  if (parsed.protocol !== 'mysql:') throw new BackendError(`${context}: expected a mysql:// URL, got ${redact(url)}`);
  const options: PoolOptions = {
    host: decodeURIComponent(parsed.hostname.replace(/^\[(.*)\]$/, '$1')) || 'localhost',
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database !== '') options.database = database;
  for (const [key, value] of parsed.searchParams) {
    if (!URL_OPTIONS.has(key)) {
      throw new BackendError(`${context}: unsupported URL parameter "${key}" (supported: ${[...URL_OPTIONS].join(', ')})`);
    }
    if (key === 'charset') options.charset = value;
    else options.ssl = parseSsl(value);
  }
  return options;
}

function parseSsl(value: string): PoolOptions['ssl'] {
  if (value === 'true') return {};
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed === 'object' && parsed !== null) return parsed as PoolOptions['ssl'];
  } catch {
    // a named profile, e.g. "Amazon RDS"
  }
  return value;
}

