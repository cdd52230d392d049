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
  /** Aborted on the first SIGINT/SIGTERM/SIGHUP: commands stop at the next safe point. */
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

/**
 * The process's stdout and stderr, each given up quietly once its reader is gone: `reaper
 * audit | head -1` closes the pipe, and the next write fails with EPIPE. Unhandled, that
 * error would end the process mid-run (a reap before it recorded what it did) with exit 1,
 * the code of a failed gate. Node then drops further writes to the stream; the run goes on
 * and exits with its own code. Any other write error (a full disk under `> file`) is said
 * once on the other stream and passed to `onFailure` (main makes the exit at least 3).
 */
export function guardStreams(streams: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }, onFailure: () => void): void {
  const guard = (stream: NodeJS.WriteStream, name: string, other: NodeJS.WriteStream) =>
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
      onFailure();
      if (!other.destroyed) other.write(`reaper: cannot write to ${name}: ${error.code ?? error.message}\n`);
    });
  guard(streams.stdout, 'stdout', streams.stderr);
  guard(streams.stderr, 'stderr', streams.stdout);
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
