/**
 * An audit stopped by SIGTERM (or SIGINT) exits 130, says it was interrupted, and its
 * run is recorded as `interrupted`, never left `running`.
 *
 * The built CLI audits a bucket on a stub S3 endpoint that answers GetBucketVersioning
 * and then holds one request without answering (the bucket's versioning, or its
 * listing): the signal is sent once that request has arrived, so it lands mid-audit
 * every time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { run } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';
import { reaperSpawn, reaperSync } from './support/cli.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

function tmp(): string {
  return testTempDir('reaper-int-');
}

/** A stub S3 endpoint: answers GetBucketVersioning (unless it is the request to hold) and holds `hold`; `held` resolves when it arrives. */
async function stubS3(hold: 'versioning' | 'listing'): Promise<{ endpoint: string; held: Promise<void> }> {
  let arrived!: () => void;
  const held = new Promise<void>((resolve) => (arrived = resolve));
  const isVersioning = (req: IncomingMessage) => (req.url ?? '').includes('versioning');
  const server = createServer((req, res) => {
    if (isVersioning(req) && hold !== 'versioning') {
      res.writeHead(200, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
      return;
    }
    arrived(); // and never answer
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held };
}

function manifestFor(dir: string, endpoint: string): string {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'connections:',
      `  blobs: { kind: s3, endpoint: "${endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }`,
      'resources:',
      '  - name: blobs',
      '    s3: { connection: blobs, bucket: stub-bucket, prefix: tmp/ }',
      '    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }',
      '',
    ].join('\n'),
  );
  return file;
}

interface RunRow {
  kind: string;
  status: string;
  error: string | null;
}

describe('an interrupted audit', () => {
  for (const [hold, signal] of [
    ['versioning', 'SIGTERM'],
    ['listing', 'SIGTERM'],
    ['listing', 'SIGINT'],
  ] as const) {
    it(`exits 130 on ${signal} while waiting for the bucket's ${hold}, and its run is recorded as interrupted`, async () => {
      const dir = tmp();
      const stub = await stubS3(hold);
      const manifest = manifestFor(dir, stub.endpoint);
      const child = reaperSpawn(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
      await stub.held;
      child.kill(signal);
      const r = await child.done;
      // An audit has no batch to finish: it stops where it stands.
      expect(r.stderr).toContain(`reaper: ${signal} received; stopping at the next safe point (send it again to stop at once)`);
      expect(r.stderr).not.toMatch(new RegExp(`^reaper: ${signal}$`, 'm'));
      expect(r.stderr).toMatch(/^reaper: interrupted/m);
      expect(r.code).toBe(130);
      const runs = JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as RunRow[];
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ kind: 'audit', status: 'interrupted' });
    });
  }

  it('exits 130, not 3, when the stop lands in a directory walk (the signal\'s reason is an Error)', async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'scratch', 'a'), { recursive: true });
    writeFileSync(path.join(dir, 'scratch', 'a', 'x.part'), 'x');
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(manifest, 'version: 1\nresources:\n  - name: scratch\n    fs: { path: ./scratch }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n');
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      env: {},
      cwd: dir,
      signal: AbortSignal.abort(new Error('SIGTERM')),
      version: () => 'test',
    };
    const code = await run(['node', 'reaper', 'audit', '-c', manifest, '--output', 'json'], io);
    expect(err.join('')).toMatch(/^reaper: interrupted/m);
    expect(code).toBe(130);
    const runs = JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as RunRow[];
    expect(runs[0]).toMatchObject({ kind: 'audit', status: 'interrupted' });
  });
});
