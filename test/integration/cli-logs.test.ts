/**
 * Logs for machines: compact JSON on stdout when it is not a terminal, `--quiet` (the
 * summary line only), `--log-format json` (one JSON event per line on stderr), and a
 * daemon whose output is JSON lines only, a signal included.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

type Event = { time: string; level: string; event: string } & Record<string, unknown>;

/** Every stderr line as a JSON event; a line that is not one fails the test. */
function events(stderr: string): Event[] {
  return stderr
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Event;
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
}

describe('machine-readable output', () => {
  let dir: string;
  let manifest: string;
  beforeAll(() => {
    dir = tmp();
    expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
    manifest = path.join(dir, 'reaper-demo', 'reaper.yaml');
  });

  it('stdout that is not a terminal gets one compact JSON document, one line', () => {
    const r = reaper(['audit', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout).summary).toMatchObject({ scanned: 13, orphaned: 6 });
    const runs = reaper(['runs', '-c', manifest], { cwd: dir });
    expect(runs.stdout.trimEnd().split('\n')).toHaveLength(1);
  });

  it('--quiet prints the summary line only, for audit and reap, as text or as one JSON object', () => {
    const audit = reaper(['audit', '-c', manifest, '--quiet'], { cwd: dir });
    expect(audit.code).toBe(0);
    expect(audit.stderr).toBe('');
    expect(audit.stdout).toMatch(/^audit \S+: 13 scanned, 3 live, 6 orphaned, 2 expired, 1 protected, 1 young, 0 unknown; 482\.3 KiB orphaned\n$/);
    const json = reaper(['audit', '-c', manifest, '--quiet', '--output', 'json'], { cwd: dir });
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'audit', runId: expect.any(String), summary: { scanned: 13, orphaned: 6 } });
    expect(JSON.parse(json.stdout)).not.toHaveProperty('findings');
    const reap = reaper(['reap', '-c', manifest, '--quiet'], { cwd: dir });
    expect(reap.code).toBe(0);
    expect(reap.stdout).toMatch(/^reap \S+ \(dry run\): 13 scanned; 6 to mark, 0 to sweep, 0 to lift\n$/);
  });

  it('--log-format json: run started, each type scanned with its counts, each gate, run finished; one JSON event per line on stderr', () => {
    const r = reaper(['audit', '-c', manifest, '--log-format', 'json', '--quiet', '--fail-on', 'orphaned>0', '--fail-on', 'unknown>0'], { cwd: dir });
    expect(r.code).toBe(1);
    const log = events(r.stderr);
    expect(log.map((e) => e.event)).toEqual(['run-started', 'resource-scanned', 'resource-scanned', 'gate', 'gate', 'run-finished']);
    const runId = log[0]!.runId;
    expect(runId).toEqual(expect.any(String));
    expect(log[0]).toMatchObject({ level: 'info', command: 'audit' });
    expect(log[1]).toMatchObject({ runId, resource: 'scratch-uploads', backend: 'fs', scanned: 10, live: 2, orphaned: 5, expired: 1, protected: 1, young: 1, unknown: 0 });
    expect(log[2]).toMatchObject({ runId, resource: 'report-exports', scanned: 3, orphaned: 1 });
    expect(log[3]).toMatchObject({ level: 'error', gate: 'orphaned>0', ok: false, actual: 6 });
    expect(log[4]).toMatchObject({ level: 'info', gate: 'unknown>0', ok: true, actual: 0 });
    expect(log[5]).toMatchObject({ runId, exitCode: 1, summary: { scanned: 13, orphaned: 6 } });
    for (const e of log) expect(Date.parse(e.time)).not.toBeNaN();
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
  });

  it('--log-format json for reap, and a failure is an event too (exit 3), not a plain line', () => {
    const r = reaper(['reap', '-c', manifest, '--log-format', 'json', '--output', 'json'], { cwd: dir });
    expect(r.code).toBe(0);
    const log = events(r.stderr);
    expect(log.map((e) => e.event)).toEqual(['run-started', 'resource-planned', 'resource-planned', 'run-finished']);
    expect(log[1]).toMatchObject({ command: 'reap', resource: 'scratch-uploads', scanned: 10, toMark: 5, toSweep: 0, pending: 0 });

    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'version: 1\nresources:\n  - name: gone\n    fs: { path: ./missing }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n');
    const failed = reaper(['audit', '-c', broken, '--log-format', 'json'], { cwd: dir });
    expect(failed.code).toBe(3);
    // The type that could not be read is an error event; the run still finishes (and reports the rest) with exit 3.
    const log2 = events(failed.stderr);
    const problem = log2.find((e) => e.level === 'error');
    expect(problem).toMatchObject({ event: 'unreadable' });
    expect(String(problem!.message)).toContain('ENOENT');
    expect(log2.at(-1)).toMatchObject({ event: 'run-finished', exitCode: 3 });
  });

  it('--log-format text is the default and json is the only other choice', () => {
    const r = reaper(['audit', '-c', manifest, '--log-format', 'xml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--log-format');
  });
});

describe('the daemon log', () => {
  it('holds JSON lines only, from start to the SIGTERM that stops it (stdout and stderr alike)', async () => {
    const dir = tmp();
    const state = `sqlite:${path.join(dir, 'state.db')}`;
    const child = spawn(process.execPath, [BIN, 'daemon', '--state', state, '--lease', 'svc:log', '--ttl', '3s', '--listen', '127.0.0.1:0', '--no-auth'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('"event":"ready"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('"event":"ready"');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const log = events(out);
    expect(log.map((e) => e.event)).toContain('stopped');
    // The daemon has no batch to finish: it stops (and says in `stopping` what becomes of its leases).
    expect(log.find((e) => e.event === 'signal')).toMatchObject({ signal: 'SIGTERM', message: 'stopping (send it again to stop at once)' });
  });
});
