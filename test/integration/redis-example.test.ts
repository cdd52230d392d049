/**
 * config/examples/redis-sessions, run by the built CLI against a real redis-server started
 * here on a free port: the handler (a few lines of shell over redis-cli and one Lua script)
 * passes `reaper conformance`, an audit classifies the sessions by their users' leases, and
 * a reap deletes the orphaned session after its grace — conditionally: a session written to
 * after it was marked survives. The manifest is the example's, copied with its handler, with
 * only `grace: 1h` shortened to 1s (and minAge to 1m) so the test need not wait an hour.
 * Under CI=true a missing redis-server fails the test instead of skipping it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/aged-moto.js';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

const EXAMPLE = path.resolve(__dirname, '../../config/examples/redis-sessions');
const haveRedis = spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;
if (!haveRedis && process.env.CI === 'true') throw new Error('the Redis example needs redis-server and redis-cli (apt-get install redis-server)');

let server: ChildProcess | null = null;
let port = 0;

const cli = (...args: string[]) => {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

beforeAll(async () => {
  if (!haveRedis) return;
  port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server did not answer on port ${port}`);
});

afterAll(() => {
  server?.kill('SIGKILL');
  removeTempDirs();
});

describe.skipIf(!haveRedis)('config/examples/redis-sessions', () => {
  it('passes conformance, audits by lease, and reaps only the orphaned session, conditionally', async () => {
    const dir = tmp();
    for (const f of ['sessions.sh', 'sessions.lua']) copyFileSync(path.join(EXAMPLE, f), path.join(dir, f));
    const example = readFileSync(path.join(EXAMPLE, 'reaper.yaml'), 'utf8');
    expect(example).toContain('    grace: 1h\n');
    writeFileSync(path.join(dir, 'reaper.yaml'), example.replace('    grace: 1h\n', '    grace: 1s\n').replace('    minAge: 10m\n', '    minAge: 1m\n'));
    spawnSync('chmod', ['+x', path.join(dir, 'sessions.sh')]);
    const env = { REDIS_PORT: String(port) };
    const old = new Date(Date.now() - 3 * 3_600_000).toISOString();
    cli('FLUSHALL');
    cli('HSET', 'session:a1', 'user', 'alice', 'created', old);
    cli('HSET', 'session:b1', 'user', 'bob', 'created', old);
    cli('HSET', 'session:b2', 'user', 'bob', 'created', old);
    cli('HSET', 'session:b3', 'user', 'bob', 'created', old, 'pinned', 'yes');
    cli('HSET', 'session:c1', 'user', 'carol', 'created', new Date().toISOString());
    cli('SET', 'cache:x', 'not a session');

    const conformance = reaper(['conformance', '-c', 'reaper.yaml', '--type', 'redis-sessions', '-o', 'table'], { cwd: dir, env });
    expect(conformance.code, conformance.stdout + conformance.stderr).toBe(0);
    expect(conformance.stdout).toMatch(/^PASS list: 5 record\(s\)/m);

    for (const user of ['alice', 'anchor']) expect(reaper(['lease', 'acquire', `user:${user}`, '--ttl', '1h', '-c', 'reaper.yaml'], { cwd: dir, env }).code).toBe(0);
    const audit = reaper(['audit', '-c', 'reaper.yaml', '-o', 'json'], { cwd: dir, env });
    expect(audit.code, audit.stderr).toBe(0);
    const doc = JSON.parse(audit.stdout) as { resources: Record<string, unknown>[]; findings: { id: string; status: string }[] };
    expect(doc.resources[0]).toMatchObject({ name: 'redis-sessions', backend: 'command', scanned: 5, live: 1, orphaned: 2, protected: 1, young: 1 });
    expect(Object.fromEntries(doc.findings.map((f) => [f.id, f.status]))).toEqual({ 'session:b1': 'orphaned', 'session:b2': 'orphaned', 'session:b3': 'protected', 'session:c1': 'young' });

    expect(reaper(['reap', '-c', 'reaper.yaml', '--execute'], { cwd: dir, env }).code).toBe(0);
    cli('HSET', 'session:b2', 'last-seen', new Date().toISOString()); // written to after it was marked
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const sweep = reaper(['reap', '-c', 'reaper.yaml', '--execute', '-o', 'json'], { cwd: dir, env });
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(JSON.parse(sweep.stdout).resources[0].outcomes).toMatchObject({ deleted: 1 });
    expect(cli('KEYS', '*').split('\n').sort()).toEqual(['cache:x', 'session:a1', 'session:b2', 'session:b3', 'session:c1']);
  });
});
