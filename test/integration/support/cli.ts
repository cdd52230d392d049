/**
 * Spawning the built CLI (`npm run build` first) the way users do: with a minimal
 * environment (PATH and HOME, plus what a test passes) through a pipe, as another user
 * (setpriv: the tests run as root, which ignores permissions), or inside a real
 * pseudo-terminal (util-linux `script`) whose size the test sets with `stty`. Every spawn
 * has a bound: a CLI that never ends fails the test instead of hanging it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const BIN = path.resolve(__dirname, '../../../bin/reaper');
const made: string[] = [];

/** A fresh temporary directory, removed by `removeTempDirs` (each test file calls it after all its tests). */
export function tmp(prefix = 'reaper-cli-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  while (made.length) rmSync(made.pop()!, { recursive: true, force: true });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the bound ran out and the process was killed. */
  timedOut: boolean;
}

const baseEnv = () => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' });

/** The built CLI; `input`, when given, comes through a pipe on its stdin. */
export function reaper(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): CliResult {
  // Without a cwd: a fresh empty one, removed again at once (nobody else knows its path).
  const cwd = options.cwd ?? mkdtempSync(path.join(tmpdir(), 'reaper-cli-'));
  try {
    return run(args, cwd, options);
  } finally {
    if (options.cwd === undefined) rmSync(cwd, { recursive: true, force: true });
  }
}

function run(args: string[], cwd: string, options: { env?: Record<string, string>; timeoutMs?: number; input?: string }): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    ...(options.input === undefined ? {} : { input: options.input }),
    env: { ...baseEnv(), ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    killSignal: 'SIGKILL',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, timedOut: result.error !== undefined && /ETIMEDOUT/.test(String(result.error)) };
}

/** Whether util-linux `script` is installed (needed for the pseudo-terminal tests). */
export function hasScript(): boolean {
  return spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Run the CLI in a pseudo-terminal of `cols` columns (0: a terminal that reports no width).
 * `output` is everything written to the terminal, stdout and stderr interleaved, as bytes
 * decoded latin1 so that nothing is hidden by decoding. Bounded by `timeoutMs` twice: by
 * `timeout` inside the terminal and by the spawn itself.
 */
export function reaperInPty(
  args: string[],
  options: { cwd: string; cols: number; env?: Record<string, string>; timeoutMs?: number },
): { code: number | null; output: string; timedOut: boolean } {
  const seconds = Math.ceil((options.timeoutMs ?? 30_000) / 1000);
  const command = `stty cols ${options.cols} rows 24; exec timeout -s KILL ${seconds} ${quote(process.execPath)} ${[BIN, ...args].map(quote).join(' ')}`;
  const result = spawnSync('script', ['-qfec', command, '/dev/null'], {
    cwd: options.cwd,
    env: { ...baseEnv(), TERM: 'xterm-256color', SHELL: '/bin/sh', ...options.env },
    input: '',
    encoding: 'latin1',
    timeout: (seconds + 10) * 1000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  const timedOut = (result.error !== undefined && /ETIMEDOUT|ENOBUFS/.test(String(result.error))) || result.status === 137;
  return { code: result.status, output: result.stdout ?? '', timedOut };
}

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
