/**
 * A client for the daemon's HTTP lease API, for services that reach the state store
 * only through a reaper daemon. Uses the global `fetch` (or one passed in, e.g. with a
 * dispatcher that trusts a private CA). Every call carries the API token; renew and
 * release also carry the lease's own token, which only its holder knows.
 *
 * Outcomes map onto the library's errors: a lease that expired, was released, is gone
 * or belongs to someone else throws `LeaseLostError` (with why); a refused API token,
 * an unreachable daemon or a 5xx throws `BackendError`; a request the daemon rejected as
 * malformed throws `UsageError`.
 */
import { BackendError, LEASE_LOSS_REASONS, LeaseLostError, redact, UsageError } from '../errors.js';
import { acquiredFromJson, LEASE_TOKEN_HEADER, leaseFromJson, type ErrorJson } from '../lease/wire.js';
import type { AcquiredLease, Lease } from '../state/types.js';

export interface HttpLeaseClientOptions {
  /** The daemon's base URL, e.g. `http://127.0.0.1:8476`. */
  url: string;
  /** The daemon's API token (omit only for a daemon started with --no-auth). */
  token?: string;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

/** What renew and release need: the lease id and the token handed out at acquire. */
export interface LeaseHandle {
  leaseId: string;
  token: string;
}


export class HttpLeaseClient {
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HttpLeaseClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new UsageError(`the lease daemon URL "${redact(options.url)}" is not a URL (e.g. http://127.0.0.1:8476)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`the lease daemon URL must be http:// or https://, got ${parsed.protocol}`);
    this.base = parsed.toString().replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** Take a new lease on `key`; the answer carries the lease token (keep it: renew and release need it). */
  async acquireLease(input: { key: string; ttlMs: number; holder?: string }): Promise<AcquiredLease> {
    const body: Record<string, unknown> = { key: input.key, ttl: input.ttlMs / 1000 };
    if (input.holder !== undefined) body.holder = input.holder;
    const { status, json } = await this.call('POST', '/v1/leases', { body });
    if (status !== 201) throw this.failure(status, json, null);
    return acquiredFromJson(json);
  }

  /** Renew; throws LeaseLostError once the lease expired or was released (a late renewal never revives it). */
  async renewLease(lease: LeaseHandle, options: { ttlMs?: number } = {}): Promise<Lease> {
    const body = options.ttlMs === undefined ? undefined : { ttl: options.ttlMs / 1000 };
    const { status, json } = await this.call('POST', `/v1/leases/${encodeURIComponent(lease.leaseId)}/renew`, { body, leaseToken: lease.token });
    if (status !== 200) throw this.failure(status, json, lease.leaseId);
    return leaseFromJson(json);
  }

  /** Release (idempotent for its holder). */
  async releaseLease(lease: LeaseHandle): Promise<void> {
    const { status, json } = await this.call('DELETE', `/v1/leases/${encodeURIComponent(lease.leaseId)}`, { leaseToken: lease.token });
    if (status !== 204) throw this.failure(status, json, lease.leaseId);
  }

  async getLease(leaseId: string): Promise<Lease | null> {
    const { status, json } = await this.call('GET', `/v1/leases/${encodeURIComponent(leaseId)}`, {});
    if (status === 404) return null;
    if (status !== 200) throw this.failure(status, json, leaseId);
    return leaseFromJson(json);
  }

  async listLeases(filter: { key?: string; includeInactive?: boolean; limit?: number } = {}): Promise<Lease[]> {
    const query = new URLSearchParams();
    if (filter.key !== undefined) query.set('key', filter.key);
    if (filter.includeInactive) query.set('all', 'true');
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const qs = query.toString();
    const { status, json } = await this.call('GET', `/v1/leases${qs ? `?${qs}` : ''}`, {});
    if (status !== 200) throw this.failure(status, json, null);
    const leases = (json as { leases?: unknown } | null)?.leases;
    if (!Array.isArray(leases)) throw new BackendError('the lease daemon answered a list without leases');
    return leases.map(leaseFromJson);
  }

  /** Whether the daemon answers /readyz with 200. */
  async ready(): Promise<boolean> {
    try {
      return (await this.call('GET', '/readyz', {})).status === 200;
    } catch {
      return false;
    }
  }

  private async call(method: string, path: string, options: { body?: unknown; leaseToken?: string }): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (options.leaseToken !== undefined) headers[LEASE_TOKEN_HEADER] = options.leaseToken;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const response = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: controller.signal,
      });
      const text = await response.text();
      let json: unknown = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = { error: text.slice(0, 200) };
        }
      }
      return { status: response.status, json };
    } catch (error) {
      // fetch wraps the network error (ECONNREFUSED, a closed socket…) in `cause`.
      const cause = controller.signal.aborted ? controller.signal.reason : ((error as { cause?: unknown })?.cause ?? error);
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new BackendError(`cannot reach the lease daemon at ${redact(this.base)}: ${redact(detail)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(status: number, json: unknown, leaseId: string | null): Error {
    const body = (json ?? {}) as Partial<ErrorJson>;
    const message = redact(typeof body.error === 'string' ? body.error : `HTTP ${status}`);
    if (leaseId !== null) {
      const lost = LEASE_LOSS_REASONS.find((why) => why === body.lost);
      if (status === 409) return new LeaseLostError(leaseId, lost ?? 'expired');
      if (status === 404) return new LeaseLostError(leaseId, 'not-found');
      if (status === 403) return new LeaseLostError(leaseId, 'not-holder');
    }
    if (status === 401) return new BackendError(`the lease daemon at ${redact(this.base)} refused the API token (401); check --token-file / $REAPER_TOKEN`);
    if (status >= 400 && status < 500) return new UsageError(`the lease daemon rejected the request (${status}): ${message}`);
    return new BackendError(`the lease daemon at ${redact(this.base)} answered ${status}: ${message}`);
  }
}
