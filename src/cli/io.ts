/** What a command may touch: streams, environment, working directory, the stop signal. */
import type { DaemonLog } from '../util/json-log.js';
import { reaperVersion } from '../version.js';

export interface OutputStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface CliIO {
  stdout: OutputStream;
  stderr: OutputStream;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Aborted on the first SIGINT/SIGTERM: commands stop at the next safe point. */
  signal: AbortSignal;
  /** Highest exit code a command asked for (commands return it; main reads it). */
  exitCode?: number;
  /**
   * The command's JSON log, when it keeps one (the daemon; audit and reap with
   * --log-format json): main writes the signal notice and a failure there, not as plain text.
   */
  log?: DaemonLog;
  version(): string;
}

export function processIO(signal: AbortSignal): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal,
    version: reaperVersion,
  };
}
