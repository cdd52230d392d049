/**
 * The live mode's sandbox: a directory of files owned by per-resource keys, a manifest over
 * it with the scenario's lease policy, a SQLite state store, and the `reaper daemon`
 * processes that stand for the services (each serves the lease API its service's leases go
 * through, and holds the service's session key).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scenario } from '../scenario.js';

/** The built CLI (dist/sim/live → bin/reaper). */
export const REAPER_BIN = fileURLToPath(new URL('../../../bin/reaper', import.meta.url));

const ms = (n: number) => `${Math.round(n)}ms`;

export function fileOf(group: number): string {
  return `r${group}.dat`;
}

export function groupOfFile(id: string): number | null {
  const m = /^r(\d+)\.dat$/.exec(id);
  return m ? Number(m[1]) : null;
}

export async function writeSandbox(dir: string, s: Scenario): Promise<string> {
  const l = s.leases;
  await mkdir(path.join(dir, 'files'), { recursive: true });
  const manifest = [
    '# Written by reaper simulate --live: the scenario\'s lease policy over a directory of files.',
    'version: 1',
    'state: sqlite:state.db',
    `defaults: { minAge: ${ms(l.minAgeMs)}, grace: ${ms(l.graceMs)}, maxDeletesPerRun: ${l.maxDeletesPerRun}, maxDeleteFraction: ${l.maxDeleteFraction}, breaker: { maxDrop: ${l.breaker.maxDrop}, minLiveKeys: ${l.breaker.minLiveKeys} } }`,
    'resources:',
    '  - name: objects',
    '    fs: { path: ./files }',
    '    owner: { pathPattern: "^r(?<owner>\\\\d+)\\\\.dat$", key: "res:{value}" }',
    '',
  ].join('\n');
  const file = path.join(dir, 'reaper.yaml');
  await writeFile(file, manifest);
  return file;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface Daemon {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
}

export function startDaemon(manifest: string, service: number, port: number, s: Scenario): Daemon {
  const child = spawn(
    process.execPath,
    [
      REAPER_BIN,
      'daemon',
      '-c',
      manifest,
      '--lease',
      `svc:${service}`,
      '--ttl',
      ms(s.leases.ttlMs),
      '--interval',
      ms(s.leases.intervalMs),
      '--holder',
      `svc-${service}`,
      '--listen',
      `127.0.0.1:${port}`,
      '--no-auth',
      '--lease-retention',
      'off',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { port, child, exited };
}

export interface ReapRun {
  code: number;
  killed: boolean;
}

/** One `reaper reap --execute`; with `kill`, the run dies after its write-ahead journal (a failpoint), before any delete. */
export function reapOnce(manifest: string, s: Scenario, kill: boolean): Promise<ReapRun> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...(kill ? { REAPER_FAILPOINT: 'after-journal' } : {}) };
    delete env.REAPER_CONFIG;
    delete env.REAPER_STATE;
    const child = spawn(process.execPath, [REAPER_BIN, 'reap', '-c', manifest, '--execute', '--lock-ttl', ms(s.leases.lockTtlMs), '-o', 'json'], { stdio: 'ignore', env });
    child.once('exit', (code, signal) => resolve({ code: code ?? (signal ? 137 : 1), killed: signal === 'SIGKILL' }));
  });
}
