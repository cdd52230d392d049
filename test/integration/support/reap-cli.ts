/**
 * The built CLI (`bin/reaper`; run `npm run build` first) as the crash suites spawn it: in
 * the fixture's directory, with a minimal environment, its manifest and JSON output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { manifestFile, type ReapFixture } from './reap-fixture.js';

const BIN = path.resolve(__dirname, '../../../bin/reaper');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawn `reaper ARGS -c MANIFEST --output json` in the fixture's directory with a minimal environment. */
export function start(fx: ReapFixture, args: string[], env: Record<string, string> = {}): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(process.execPath, [BIN, ...args, '-c', manifestFile(fx), '--output', 'json'], {
    cwd: fx.dir,
    // TMPDIR: where a run's plan spool is a named file (no /proc), a run killed before its end leaves it behind; in the fixture's directory it goes with it.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TMPDIR: fx.dir, ...fx.env(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exit };
}

export const reaper = (fx: ReapFixture, args: string[], env?: Record<string, string>): Promise<Exit> => start(fx, args, env).exit;

/** The JSON report a reap printed (also printed with exit 3 when some deletes failed). */
export function report(exit: Exit): { runId: string; resources: { toMark: number; toSweep: number; lifts: Record<string, number>; outcomes: Record<string, number> }[] } {
  return JSON.parse(exit.stdout) as ReturnType<typeof report>;
}
