/**
 * reaper's JSON log, kept by the daemon and by audit and reap with `--log-format json`:
 * one JSON object per line (`time`, `level`, `event`, fields).
 * Every line passes through `redact` (passwords in URLs, `token=` pairs), and any
 * registered secret (the API token, lease tokens it handed out) is replaced by `***`
 * wherever it appears, so no secret reaches the log even through an error message.
 */
import { redact } from '../errors.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Where log lines go: anything with `write` (process.stdout, a file stream, a test buffer). */
export interface LogStream {
  write(chunk: string): unknown;
}

export type LogFields = Record<string, unknown>;

export interface DaemonLog {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export interface JsonLogOptions {
  /** Lowest level written (default info). */
  level?: LogLevel;
  /** Strings that must never appear in a line. */
  secrets?: readonly string[];
}

/** Strings shorter than this are not scrubbed on their own (they would mangle ordinary words). */
const MIN_SECRET_LENGTH = 6;

export function jsonLog(stream: LogStream | null, options: JsonLogOptions = {}): DaemonLog {
  const threshold = LEVELS[options.level ?? 'info'];
  const secrets = (options.secrets ?? []).filter((s) => s.length >= MIN_SECRET_LENGTH);
  const write = (level: LogLevel, event: string, fields: LogFields = {}) => {
    if (!stream || LEVELS[level] < threshold) return;
    stream.write(`${scrub(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }, jsonSafe), secrets)}\n`);
  };
  return {
    debug: (event, fields) => write('debug', event, fields),
    info: (event, fields) => write('info', event, fields),
    warn: (event, fields) => write('warn', event, fields),
    error: (event, fields) => write('error', event, fields),
  };
}

/** Errors as their (redacted) message; bigints as numbers. */
function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return Number(value);
  return value;
}

function scrub(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const secret of secrets) {
    out = out.split(secret).join('***');
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret) out = out.split(escaped).join('***');
  }
  return redact(out);
}

/** An error's message with passwords and tokens removed, for a log field. */
export function errorText(error: unknown): string {
  return redact(error instanceof Error ? error.message : String(error));
}
