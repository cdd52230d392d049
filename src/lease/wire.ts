/**
 * The lease API's JSON shapes, shared by the daemon (which writes them) and the HTTP
 * client (which reads them). Times travel as ISO-8601 strings of the store's clock.
 */
import type { LeaseLostError } from '../errors.js';
import { formatDuration, parseDuration } from '../manifest/duration.js';
import type { AcquiredLease, Lease, LeaseBounds } from '../state/types.js';

export interface LeaseJson {
  leaseId: string;
  key: string;
  holder: string;
  generation: number;
  ttlSeconds: number;
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
  releasedAt: string | null;
}

export interface AcquiredLeaseJson extends LeaseJson {
  token: string;
}

/** What a failed call answers: `{error}`, and for a lost lease why it was lost. */
export interface ErrorJson {
  error: string;
  lost?: LeaseLostError['why'];
}

export const LEASE_TOKEN_HEADER = 'x-lease-token';

/** Longest owner key and holder name the API accepts. */
export const MAX_KEY_LENGTH = 1024;
export const MAX_HOLDER_LENGTH = 256;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Lease ids are UUIDs (the stores make them with randomUUID). */
const LEASE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isLeaseId(text: string): boolean {
  return LEASE_ID.test(text);
}

/**
 * What is wrong with a key or holder name, or null: 1 to `max` characters, no NUL (which
 * a PostgreSQL text value cannot hold) and no unpaired surrogate (which is not text). A
 * value the store would choke on is the caller's mistake, not a store outage.
 */
export function checkText(value: string, what: string, max: number): string | null {
  if (value.length === 0 || value.length > max) return `${what} must be 1 to ${max} characters`;
  if (value.includes('\u0000')) return `${what} must not contain a NUL character`;
  if (LONE_SURROGATE.test(value)) return `${what} must be well-formed Unicode (it has an unpaired surrogate)`;
  return null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function leaseToJson(lease: Lease): LeaseJson {
  return {
    leaseId: lease.leaseId,
    key: lease.key,
    holder: lease.holder,
    generation: lease.generation,
    ttlSeconds: lease.ttlMs / 1000,
    acquiredAt: iso(lease.acquiredAt),
    renewedAt: iso(lease.renewedAt),
    expiresAt: iso(lease.expiresAt),
    releasedAt: lease.releasedAt === null ? null : iso(lease.releasedAt),
  };
}

export function acquiredToJson(lease: AcquiredLease): AcquiredLeaseJson {
  return { ...leaseToJson(lease), token: lease.token };
}

function time(value: unknown, field: string): number {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new TypeError(`the daemon answered an invalid ${field}: ${JSON.stringify(value)}`);
  return ms;
}

export function leaseFromJson(json: unknown): Lease {
  const j = (json ?? {}) as Partial<LeaseJson>;
  if (typeof j.leaseId !== 'string' || typeof j.key !== 'string' || typeof j.generation !== 'number') {
    throw new TypeError('the daemon answered something that is not a lease');
  }
  return {
    leaseId: j.leaseId,
    key: j.key,
    holder: String(j.holder ?? ''),
    generation: j.generation,
    ttlMs: Math.round(Number(j.ttlSeconds) * 1000),
    acquiredAt: time(j.acquiredAt, 'acquiredAt'),
    renewedAt: time(j.renewedAt, 'renewedAt'),
    expiresAt: time(j.expiresAt, 'expiresAt'),
    releasedAt: j.releasedAt === null || j.releasedAt === undefined ? null : time(j.releasedAt, 'releasedAt'),
  };
}

export function acquiredFromJson(json: unknown): AcquiredLease {
  const token = (json as Partial<AcquiredLeaseJson> | null)?.token;
  if (typeof token !== 'string' || token === '') throw new TypeError('the daemon answered a lease without its token');
  return { ...leaseFromJson(json), token };
}

/**
 * A ttl as the API takes it: a duration string with a unit (`"60s"`, `"500ms"`) or a
 * number of seconds, within the store's bounds. Returns milliseconds, or what is wrong with
 * it; every refusal names the range (docs/http-api.md).
 */
export function parseTtl(value: unknown, bounds: LeaseBounds): number | { error: string } {
  let ms: number | null = null;
  if (typeof value === 'number' && Number.isFinite(value)) ms = Math.round(value * 1000);
  else if (typeof value === 'string') {
    const parsed = parseDuration(value);
    if (typeof parsed === 'number') ms = parsed;
  }
  const range = `a lease ttl must be from ${formatDuration(bounds.minTtlMs)} to ${formatDuration(bounds.maxTtlMs)}`;
  if (ms === null) {
    const given = JSON.stringify(value) ?? String(value);
    return { error: `ttl: ${range}, got ${given.length > 80 ? `${given.slice(0, 80)}…` : given} (a duration such as "60s", or a number of seconds)` };
  }
  if (Number.isSafeInteger(ms) && ms >= bounds.minTtlMs && ms <= bounds.maxTtlMs) return ms;
  const given = typeof value === 'string' ? value : ms < 0 || !Number.isSafeInteger(ms) ? `${String(value)} seconds` : formatDuration(ms);
  return { error: `ttl: ${range}, got ${given}` };
}
