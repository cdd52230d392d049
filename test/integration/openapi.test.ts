/**
 * config/openapi.json, the lease API's OpenAPI 3.1 document (docs/http-api.md): a real
 * validator (@apidevtools/swagger-parser) accepts it, the daemon serves it at /openapi.json,
 * and a contract test drives every route of a running daemon to each response the document
 * promises, checking the real status against the operation's documented ones and the real
 * body against its schema — and that the document's methods are exactly those the daemon
 * serves (any other method answers 405).
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { matchRoute } from '../../src/daemon/http-api.js';
import { openStateStore } from '../../src/state/open.js';
import type { StateStore } from '../../src/state/types.js';

const FILE = path.resolve(__dirname, '../../config/openapi.json');
const TOKEN = 'openapi-contract-token-0123456789';
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

type Operation = { responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }> };
type Doc = { openapi: string; paths: Record<string, Partial<Record<Lowercase<(typeof METHODS)[number]>, Operation>>> };

let doc: Doc;
let daemon: Daemon;
let store: StateStore;
let dir: string;
const covered = new Set<string>();

beforeAll(async () => {
  doc = (await SwaggerParser.dereference(JSON.parse(readFileSync(FILE, 'utf8')))) as unknown as Doc;
  dir = mkdtempSync(path.join(tmpdir(), 'reaper-openapi-'));
  store = await openStateStore(`sqlite:${path.join(dir, 'state.db')}`, { leaseBounds: { minTtlMs: 100, maxTtlMs: 86_400_000 } });
  daemon = await startDaemon({ store, holder: 'daemon@test', listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, maxBodyBytes: 1024, stopTimeoutMs: 2_000 });
});

afterAll(async () => {
  await daemon?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Call {
  token?: string | null;
  leaseToken?: string;
  body?: unknown;
  raw?: string;
  contentType?: string;
}

/** Call the daemon and check the answer against the document: a documented status, a body its schema accepts. */
async function call(template: string, method: (typeof METHODS)[number], url: string, c: Call = {}) {
  const headers: Record<string, string> = {};
  const token = c.token === undefined ? TOKEN : c.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (c.leaseToken !== undefined) headers['x-lease-token'] = c.leaseToken;
  const body = c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
  if (body !== undefined) headers['content-type'] = c.contentType ?? 'application/json';
  const response = await fetch(`${daemon.url}${url}`, { method, headers, body });
  const text = await response.text();
  const operation = doc.paths[template]?.[method.toLowerCase() as Lowercase<typeof method>];
  expect(operation, `${method} ${template} is in the document`).toBeDefined();
  const documented = operation!.responses[String(response.status)];
  expect(documented, `${method} ${template} answered ${response.status}, which the document does not list (${text})`).toBeDefined();
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!;
  if (documented!.content) {
    expect(Object.keys(documented!.content), `${method} ${template} ${response.status} content type`).toContain(type);
    if (type === 'application/json') {
      const parsed = z.fromJSONSchema(documented!.content[type]!.schema as never).safeParse(JSON.parse(text));
      expect(parsed.success, `${method} ${template} ${response.status}: ${text}\n${parsed.error?.message}`).toBe(true);
    }
  } else {
    expect(text, `${method} ${template} ${response.status} has no body`).toBe('');
  }
  covered.add(`${method} ${template} ${response.status}`);
  return { status: response.status, json: type === 'application/json' && text ? (JSON.parse(text) as Record<string, unknown>) : null, text, headers: response.headers };
}

describe('config/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document (swagger-parser)', async () => {
    const api = await SwaggerParser.validate(JSON.parse(readFileSync(FILE, 'utf8')));
    expect((api as { openapi?: string }).openapi).toBe('3.1.0');
  });

  it('is served at /openapi.json without a token, byte for byte', async () => {
    const served = await call('/openapi.json', 'GET', '/openapi.json', { token: null });
    expect(served.status).toBe(200);
    expect(served.text).toBe(readFileSync(FILE, 'utf8'));
  });

  it('names exactly the daemon\'s routes and methods: every other method answers 405', async () => {
    for (const [template, operations] of Object.entries(doc.paths)) {
      const concrete = template.replace('{id}', '0b9a5a8e-3c1f-4d2a-9e61-7f2c4a1b8d30');
      expect(matchRoute(concrete).route, template).toBe(template);
      for (const method of METHODS) {
        if (operations[method.toLowerCase() as Lowercase<typeof method>]) continue;
        const response = await fetch(`${daemon.url}${concrete}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
        expect(response.status, `${method} ${template}`).toBe(405);
      }
    }
  });

  it('every route\'s real responses match the document', async () => {
    const L = '/v1/leases';
    const ID = '/v1/leases/{id}';
    const RENEW = '/v1/leases/{id}/renew';
    // acquire: 201 with Location, 400, 401, 413, 415
    const acquired = await call(L, 'POST', L, { body: { key: 'session:contract', ttl: '30s', holder: 'contract-test' } });
    expect(acquired.status).toBe(201);
    const lease = acquired.json as { leaseId: string; token: string };
    expect(acquired.headers.get('location')).toBe(`/v1/leases/${lease.leaseId}`);
    expect((await call(L, 'POST', L, { body: { key: 'session:x' } })).status).toBe(400);
    expect((await call(L, 'POST', L, { body: { key: 'session:x', ttl: 5, extra: 1 } })).status).toBe(400);
    expect((await call(L, 'POST', L, { token: 'wrong-token-wrong-token', body: { key: 'k', ttl: 5 } })).status).toBe(401);
    expect((await call(L, 'POST', L, { raw: JSON.stringify({ key: 'x'.repeat(2048), ttl: 5 }) })).status).toBe(413);
    expect((await call(L, 'POST', L, { raw: 'key=x', contentType: 'text/plain' })).status).toBe(415);
    // list: 200, 400, 401
    const listed = await call(L, 'GET', `${L}?key=session:contract`);
    expect((listed.json as { leases: unknown[] }).leases).toHaveLength(1);
    expect((await call(L, 'GET', `${L}?all=true&limit=5`)).status).toBe(200);
    expect((await call(L, 'GET', `${L}?limit=0`)).status).toBe(400);
    // A value or a parameter the document does not name is refused, not read as its default.
    const yes = await call(L, 'GET', `${L}?all=yes`);
    expect(yes.status).toBe(400);
    expect(JSON.stringify(yes.json)).toContain('all must be true, false, 1 or 0');
    const keys = await call(L, 'GET', `${L}?keys=session:contract`);
    expect(keys.status).toBe(400);
    expect(JSON.stringify(keys.json)).toContain('unknown query parameter: keys');
    const twice = await call(L, 'GET', `${L}?all=true&all=yes`);
    expect(twice.status).toBe(400);
    expect(JSON.stringify(twice.json)).toContain('query parameter given more than once: all');
    expect((await call(L, 'GET', L, { token: null })).status).toBe(401);
    // get: 200, 400, 401, 404
    expect((await call(ID, 'GET', `${L}/${lease.leaseId}`)).status).toBe(200);
    expect((await call(ID, 'GET', `${L}/not-a-uuid`)).status).toBe(400);
    expect((await call(ID, 'GET', `${L}/${lease.leaseId}`, { token: null })).status).toBe(401);
    expect((await call(ID, 'GET', `${L}/0b9a5a8e-3c1f-4d2a-9e61-7f2c4a1b8d30`)).status).toBe(404);
    // renew: 200, 400, 401, 403, 404, 413, 415, 409
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl: '60s' } })).status).toBe(200);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token })).status).toBe(200);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token, body: { ttl: 'soon' } })).status).toBe(400);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { token: null, leaseToken: lease.token })).status).toBe(401);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`)).status).toBe(403);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: 'not-its-token' })).status).toBe(403);
    expect((await call(RENEW, 'POST', `${L}/0b9a5a8e-3c1f-4d2a-9e61-7f2c4a1b8d30/renew`, { leaseToken: 'x' })).status).toBe(404);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token, raw: JSON.stringify({ ttl: 'x'.repeat(2048) }) })).status).toBe(413);
    expect((await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token, raw: 'ttl=5', contentType: 'text/plain' })).status).toBe(415);
    // release: 204, 400, 401, 403, 404; then a renewal is lost (409)
    expect((await call(ID, 'DELETE', `${L}/${lease.leaseId}`)).status).toBe(403);
    expect((await call(ID, 'DELETE', `${L}/${lease.leaseId}`, { token: null, leaseToken: lease.token })).status).toBe(401);
    expect((await call(ID, 'DELETE', `${L}/nope`, { leaseToken: lease.token })).status).toBe(400);
    expect((await call(ID, 'DELETE', `${L}/0b9a5a8e-3c1f-4d2a-9e61-7f2c4a1b8d30`, { leaseToken: 'x' })).status).toBe(404);
    expect((await call(ID, 'DELETE', `${L}/${lease.leaseId}`, { leaseToken: lease.token })).status).toBe(204);
    const lost = await call(RENEW, 'POST', `${L}/${lease.leaseId}/renew`, { leaseToken: lease.token });
    expect(lost.status).toBe(409);
    expect(lost.json).toMatchObject({ lost: 'released' });
    // health, readiness, metrics
    expect((await call('/healthz', 'GET', '/healthz', { token: null })).status).toBe(200);
    expect((await call('/readyz', 'GET', '/readyz', { token: null })).status).toBe(200);
    expect((await call('/metrics', 'GET', '/metrics')).status).toBe(200);
    expect((await call('/metrics', 'GET', '/metrics', { token: null })).status).toBe(401);

    // Every documented response was seen, but those that need a failing store (503) to happen.
    const documented = Object.entries(doc.paths).flatMap(([template, ops]) =>
      Object.entries(ops)
        .filter(([method]) => (METHODS as readonly string[]).includes(method.toUpperCase()))
        .flatMap(([method, op]) => Object.keys((op as Operation).responses).map((status) => `${method.toUpperCase()} ${template} ${status}`)),
    );
    expect(documented.filter((d) => !covered.has(d) && !d.endsWith(' 503'))).toEqual([]);
  });
});
