/**
 * The `http` kind through the built CLI (docs/resource-protocol.md): the same protocol POSTed
 * to a webhook — here a real node:http / node:https server in the test process, holding its
 * resources in memory and deleting only on a matching fingerprint. A bearer token from a
 * file or the environment, certificates verified (a CA file trusts the test's own CA; without
 * it the self-signed chain is refused), and time and size bounds on every answer.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { reaperSpawn, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);
const servers: Server[] = [];
afterEach(async () => {
  while (servers.length) {
    const s = servers.pop()!;
    s.closeAllConnections?.();
    await new Promise((resolve) => s.close(resolve));
  }
});

const TOKEN = 's3cret-token';
const OLD = new Date(Date.now() - 3 * 3_600_000).toISOString();

interface Webhook {
  url: string;
  /** `mark`: the run whose visible marker the resource carries (mark bumps the version: the fingerprint changes). */
  resources: Map<string, { owner: string; version: number; mark?: string }>;
  /** Deleted resources kept for restore, by restore handle. */
  trash: Map<string, { id: string; owner: string; version: number; mark?: string }>;
  requests: { op: string; auth: string | undefined; protocol: string | undefined; type?: string; resource?: string; lines: unknown[] }[];
  /** Answer /list this way instead (a hang, a flood). */
  list?: (res: ServerResponse) => void;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
  });
}

async function webhook(tls?: { key: string; cert: string }): Promise<Webhook> {
  const hook: Webhook = { url: '', resources: new Map(), trash: new Map(), requests: [] };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const op = req.url!.replace(/^\/reaper\//, '');
    const text = await body(req);
    hook.requests.push({
      op,
      auth: req.headers.authorization,
      protocol: req.headers['reaper-protocol'] as string | undefined,
      type: req.headers['content-type'],
      resource: req.headers['reaper-resource'] as string | undefined,
      lines: text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as unknown),
    });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end('bad token');
      return;
    }
    if (op === 'list' && hook.list) return hook.list(res);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const say = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
    const rec = (id: string) => {
      const r = hook.resources.get(id)!;
      return { id, fingerprint: `v${r.version}`, createdAt: OLD, bytes: 10, attributes: { owner: r.owner } };
    };
    if (op === 'list') {
      const request = JSON.parse(text) as { limit: number; cursor: string | null; ids?: string[] };
      if (request.ids) {
        for (const id of request.ids) if (hook.resources.has(id)) say(rec(id));
        say({ next: null });
      } else {
        const ids = [...hook.resources.keys()].sort().filter((id) => request.cursor === null || id > request.cursor);
        const page = ids.slice(0, request.limit);
        for (const id of page) say(rec(id));
        say({ next: ids.length > page.length ? page[page.length - 1] : null });
      }
    } else if (op === 'delete') {
      for (const line of text.split('\n').filter(Boolean)) {
        const { id, fingerprint } = JSON.parse(line) as { id: string; fingerprint: string };
        const r = hook.resources.get(id);
        if (!r) say({ id, result: 'absent' });
        else if (`v${r.version}` !== fingerprint) say({ id, result: 'changed' });
        else {
          hook.resources.delete(id);
          const handle = `trash-${id}`;
          hook.trash.set(handle, { id, owner: r.owner, version: r.version, ...(r.mark !== undefined ? { mark: r.mark } : {}) });
          say({ id, result: 'deleted', restoreHandle: handle });
        }
      }
    } else if (op === 'mark' || op === 'unmark') {
      for (const line of text.split('\n').filter(Boolean)) {
        const { id, fingerprint, run } = JSON.parse(line) as { id: string; fingerprint: string; run?: string };
        const r = hook.resources.get(id);
        if (!r) say({ id, result: 'absent' });
        else if (op === 'mark' && `v${r.version}` !== fingerprint) say({ id, result: 'changed' });
        else if (op === 'mark') {
          r.mark = run;
          r.version++;
          say({ id, result: 'marked', fingerprint: `v${r.version}` });
        } else {
          delete r.mark;
          say({ id, result: 'unmarked' });
        }
      }
    } else if (op === 'restore') {
      for (const line of text.split('\n').filter(Boolean)) {
        const { id, handle } = JSON.parse(line) as { id: string; handle: string };
        const kept = hook.trash.get(handle);
        if (!kept || kept.id !== id) say({ id, result: 'error', message: 'no such restore handle' });
        else {
          hook.trash.delete(handle);
          // What was deleted comes back as it was, its marker too.
          hook.resources.set(id, { owner: kept.owner, version: kept.version, ...(kept.mark !== undefined ? { mark: kept.mark } : {}) });
          say({ id, result: 'restored' });
        }
      }
    }
    res.end();
  };
  const server = tls ? createHttps(tls, (req, res) => void handle(req, res)) : createHttp((req, res) => void handle(req, res));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hook.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/reaper`;
  return hook;
}

function manifest(dir: string, http: string, name = 'tenants'): string {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'defaults: { minAge: 1m, grace: 1s, maxDeleteFraction: 1 }',
      'owners: [{ static: ["tenant:alive"] }]',
      'resources:',
      `  - name: ${name}`,
      `    http: ${http}`,
      '    owner: { attribute: owner, key: "tenant:{value}" }',
      '',
    ].join('\n'),
  );
  return file;
}

async function cli(dir: string, args: string[], env: Record<string, string> = {}) {
  const run = await reaperSpawn(args, { cwd: dir, env }).done;
  let doc: { resources: { name: string; status?: string; error?: string | null; scanned: number; orphaned?: number; outcomes?: Record<string, number> }[] } | null = null;
  try {
    doc = JSON.parse(run.stdout);
  } catch {
    // not JSON: the test looks at stderr
  }
  return { ...run, doc };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('http kind', () => {
  it('audits and reaps through a webhook with a bearer token from the environment: the orphan only, after its grace, conditionally', async () => {
    const hook = await webhook();
    hook.resources.set('t-1', { owner: 'alive', version: 1 });
    hook.resources.set('t-2', { owner: 'gone', version: 1 });
    hook.resources.set('t-3', { owner: 'gone', version: 1 });
    const dir = tmp();
    const m = manifest(dir, `{ url: "${hook.url}", token: { env: TENANTS_TOKEN }, timeout: 10s }`);
    const env = { TENANTS_TOKEN: TOKEN };
    const audit = await cli(dir, ['audit', '-c', m, '-o', 'json'], env);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.doc!.resources[0]).toMatchObject({ status: 'ok', scanned: 3, orphaned: 2 });
    expect(hook.requests.every((r) => r.auth === `Bearer ${TOKEN}` && r.protocol === '1')).toBe(true);

    expect((await cli(dir, ['reap', '-c', m, '--execute'], env)).code).toBe(0);
    hook.resources.get('t-3')!.version = 2; // changed after it was judged: its delete answers `changed`
    await sleep(1_200);
    const sweep = await cli(dir, ['reap', '-c', m, '--execute', '-o', 'json'], env);
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(sweep.doc!.resources[0]!.outcomes).toMatchObject({ deleted: 1 });
    expect([...hook.resources.keys()].sort()).toEqual(['t-1', 't-3']);
  });

  it('marks, unmarks and restores through the webhook when it declares mark and restore: each request as the protocol says', async () => {
    const hook = await webhook();
    hook.resources.set('t-1', { owner: 'alive', version: 1 });
    hook.resources.set('t-2', { owner: 'gone', version: 1 });
    hook.resources.set('t-3', { owner: 'gone', version: 1 });
    const dir = tmp();
    const m = manifest(dir, `{ url: "${hook.url}", token: { env: TENANTS_TOKEN }, mark: true, restore: true }`);
    const env = { TENANTS_TOKEN: TOKEN };
    const ndjson = (op: string) => hook.requests.filter((r) => r.op === op);

    // The first run marks both orphans, each on the fingerprint it listed, with its run id.
    const first = await cli(dir, ['reap', '-c', m, '--execute', '-o', 'json'], env);
    expect(first.code, first.stderr).toBe(0);
    const runId = (JSON.parse(first.stdout) as { runId: string }).runId;
    expect(first.doc!.resources[0]!.outcomes).toMatchObject({ marked: 2 });
    expect(ndjson('mark')).toHaveLength(1);
    expect(ndjson('mark')[0]).toMatchObject({ auth: `Bearer ${TOKEN}`, protocol: '1', type: 'application/x-ndjson', resource: 'tenants' });
    expect(ndjson('mark')[0]!.lines).toEqual([
      { id: 't-2', fingerprint: 'v1', run: runId },
      { id: 't-3', fingerprint: 'v1', run: runId },
    ]);
    expect([hook.resources.get('t-2')!.mark, hook.resources.get('t-3')!.mark]).toEqual([runId, runId]);
    expect(hook.resources.get('t-1')!.mark).toBeUndefined();

    // t-3's owner comes back: its tombstone is lifted and its marker taken off; t-2 is deleted on
    // the fingerprint the mark answered (v2), not the one listed before the mark.
    hook.resources.get('t-3')!.owner = 'alive';
    await sleep(1_200);
    const second = await cli(dir, ['reap', '-c', m, '--execute', '-o', 'json'], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.doc!.resources[0]!.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    expect(ndjson('unmark')).toHaveLength(1);
    expect(ndjson('unmark')[0]).toMatchObject({ type: 'application/x-ndjson', resource: 'tenants' });
    expect(ndjson('unmark')[0]!.lines.map((l) => (l as { id: string }).id)).toEqual(['t-3']);
    expect(hook.resources.get('t-3')).toEqual({ owner: 'alive', version: 2 });
    expect(ndjson('delete').flatMap((r) => r.lines)).toEqual([{ id: 't-2', fingerprint: 'v2' }]);
    expect(hook.resources.has('t-2')).toBe(false);

    // restore sends the restore handle the delete answered, and the resource is back; it came back
    // marked (the copy kept its marker), and a restore lifts the tombstone, so the marker is taken off.
    expect(hook.trash.get('trash-t-2')).toMatchObject({ mark: runId });
    const restore = await cli(dir, ['restore', '-c', m, '--run', (JSON.parse(second.stdout) as { runId: string }).runId, '-o', 'json'], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(ndjson('restore')).toHaveLength(1);
    expect(ndjson('restore')[0]).toMatchObject({ type: 'application/x-ndjson', resource: 'tenants' });
    expect(ndjson('restore')[0]!.lines).toEqual([{ id: 't-2', handle: 'trash-t-2' }]);
    expect(ndjson('unmark')).toHaveLength(2);
    expect(ndjson('unmark')[1]!.lines).toEqual([{ id: 't-2', fingerprint: 'v2' }]);
    expect(hook.resources.get('t-2')).toEqual({ owner: 'gone', version: 2 });
  });

  it('a wrong token is that type\'s error (HTTP 401, its body in the message), exit 3; an unset token variable too', async () => {
    const hook = await webhook();
    hook.resources.set('t-1', { owner: 'gone', version: 1 });
    const dir = tmp();
    writeFileSync(path.join(dir, 'token'), 'wrong\n');
    const wrong = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { file: ./token } }`), '-o', 'json']);
    expect(wrong.code).toBe(3);
    expect(wrong.doc!.resources[0]!.error).toBe(`http ${hook.url}: list request (POST ${hook.url}/list) answered HTTP 401: bad token`);
    const unset = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { env: NO_SUCH_TOKEN } }`), '-o', 'json']);
    expect(unset.code).toBe(3);
    expect(unset.doc!.resources[0]!.error).toContain('the token variable $NO_SUCH_TOKEN is not set');
    expect(hook.requests.filter((r) => r.auth === undefined)).toHaveLength(0); // never sent without its token
  });

  it('verifies certificates: the test CA through `ca:` is trusted, the same server without it is refused', async () => {
    const dir = tmp();
    const at = (f: string) => path.join(dir, f);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=reaper test CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(at('ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext');
    const hook = await webhook({ key: readFileSync(at('srv.key'), 'utf8'), cert: readFileSync(at('srv.pem'), 'utf8') });
    hook.resources.set('t-1', { owner: 'gone', version: 1 });
    writeFileSync(at('token'), TOKEN);
    const trusted = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { file: ./token }, ca: ./ca.pem }`), '-o', 'json']);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.doc!.resources[0]).toMatchObject({ status: 'ok', scanned: 1, orphaned: 1 });
    const refused = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { file: ./token } }`), '-o', 'json']);
    expect(refused.code).toBe(3);
    expect(refused.doc!.resources[0]!.error).toMatch(/list request \(POST https:\/\/127\.0\.0\.1:\d+\/reaper\/list\) failed: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT)/);
  });

  it('a webhook that does not answer in time, or floods, is that type\'s error; the connection is dropped', async () => {
    const hook = await webhook();
    hook.list = () => undefined; // never answers
    const dir = tmp();
    writeFileSync(path.join(dir, 'token'), TOKEN);
    const slow = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { file: ./token }, timeout: 1s }`), '-o', 'json']);
    expect(slow.code).toBe(3);
    expect(slow.doc!.resources[0]!.error).toContain('did not answer within 1000 ms (timeout)');
    hook.list = (res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => undefined);
      pump();
    };
    const flood = await cli(dir, ['audit', '-c', manifest(dir, `{ url: "${hook.url}", token: { file: ./token }, maxLineBytes: 4096 }`), '-o', 'json']);
    expect(flood.code).toBe(3);
    expect(flood.doc!.resources[0]!.error).toContain('wrote a line longer than 4096 bytes (maxLineBytes)');
  });
});
