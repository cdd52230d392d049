/**
 * Option resolution shared by the commands: flag > environment (REAPER_*) > manifest > default.
 * The manifest is loaded here, once, and handed on frozen.
 */
import { existsSync } from 'node:fs';
import { userInfo, hostname } from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { parseDuration } from '../manifest/duration.js';
import { loadManifest, resolveStateUrl } from '../manifest/load.js';
import type { Manifest } from '../manifest/types.js';
import { BUILTIN_DEFAULTS } from '../manifest/types.js';
import type { OpenStateStoreOptions } from '../state/open.js';
import type { StateStore } from '../state/types.js';
import type { CliIO } from './io.js';

export type OutputFormat = 'table' | 'json';

export function outputFormat(io: CliIO, options: Record<string, unknown>): OutputFormat {
  const chosen = (options.output as string | undefined) ?? io.env.REAPER_OUTPUT;
  if (chosen === 'table' || chosen === 'json') return chosen;
  if (chosen !== undefined) throw new UsageError(`unknown output format "${chosen}" (table or json)`);
  return io.stdout.isTTY ? 'table' : 'json';
}

/** The manifest path: -c, then $REAPER_CONFIG, then ./reaper.yaml if present. */
export function configPath(io: CliIO, options: Record<string, unknown>, required = true): string | undefined {
  const given = (options.config as string | undefined) ?? io.env.REAPER_CONFIG;
  if (given) return path.resolve(io.cwd, given);
  const fallback = path.join(io.cwd, 'reaper.yaml');
  if (existsSync(fallback)) return fallback;
  if (required) throw new UsageError('no manifest: pass -c FILE (or set REAPER_CONFIG, or put reaper.yaml in the current directory)');
  return undefined;
}

/** The manifest, with its state store overridden by --state or $REAPER_STATE when given. */
export async function manifestFrom(io: CliIO, options: Record<string, unknown>): Promise<Manifest> {
  const manifest = await loadManifest(configPath(io, options)!, io.env);
  const override = typeof options.state === 'string' ? options.state : io.env.REAPER_STATE;
  if (!override) return manifest;
  return Object.freeze({ ...manifest, state: resolveStateUrl(override, io.cwd) });
}

/** The state store URL: --state, then $REAPER_STATE, then the manifest's state:, then the default. */
export async function stateUrl(io: CliIO, options: Record<string, unknown>): Promise<string> {
  const given = typeof options.state === 'string' ? options.state : io.env.REAPER_STATE;
  if (given) return resolveStateUrl(given, io.cwd);
  const file = configPath(io, options, false);
  if (file) return (await loadManifest(file, io.env)).state;
  return resolveStateUrl(BUILTIN_DEFAULTS.state, io.cwd);
}

export async function openStore(io: CliIO, options: Record<string, unknown>, storeOptions: OpenStateStoreOptions = {}): Promise<StateStore> {
  const { openStateStore } = await import('../state/open.js');
  return openStateStore(await stateUrl(io, options), storeOptions);
}

export function durationOption(value: unknown, flag: string): number {
  const parsed = parseDuration(String(value));
  if (typeof parsed !== 'number') throw new UsageError(`${flag}: ${parsed.error}`);
  return parsed;
}

export function integerOption(value: unknown, flag: string, min = 0): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag}: expected a whole number ≥ ${min}, got "${String(value)}"`);
  return n;
}

export function defaultHolder(io: CliIO): string {
  if (io.env.REAPER_HOLDER) return io.env.REAPER_HOLDER;
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `pid-${process.pid}@${hostname()}`;
  }
}
