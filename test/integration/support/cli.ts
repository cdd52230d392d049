/**
 * Spawning the built CLI (`npm run build` first) with a minimal environment: PATH and
 * HOME only, plus what a test passes. `user` runs it as another user (setpriv), for
 * tests that need permissions to apply — the tests run as root, which ignores them.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

export const BIN = path.resolve(__dirname, '../../../bin/reaper');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string>;
  /** Run as this unprivileged user (and its group) through setpriv, with no supplementary groups. */
  user?: { user: string; group: string };
}

function command(args: readonly string[], options: CliOptions): { file: string; argv: string[]; env: Record<string, string> } {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env };
  if (!options.user) return { file: process.execPath, argv: [BIN, ...args], env };
  return { file: 'setpriv', argv: [`--reuid=${options.user.user}`, `--regid=${options.user.group}`, '--clear-groups', process.execPath, BIN, ...args], env };
}

export function reaperSync(args: readonly string[], options: CliOptions): CliRun {
  const { file, argv, env } = command(args, options);
  const result = spawnSync(file, argv, { cwd: options.cwd, env, encoding: 'utf8', timeout: 90_000 });
  if (result.error) throw result.error;
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** The CLI as a child process: `done` resolves when it exits; `kill` sends it a signal. */
export function reaperSpawn(args: readonly string[], options: CliOptions): { done: Promise<CliRun>; kill(signal: NodeJS.Signals): void } {
  const { file, argv, env } = command(args, options);
  const child = spawn(file, argv, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { done, kill: (signal) => child.kill(signal) };
}
