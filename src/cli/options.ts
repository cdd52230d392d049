/**
 * Option resolution shared by the commands: flag > environment (REAPER_*) > manifest > default.
 * The manifest is loaded here, once, and handed on frozen.
 */
import { existsSync, statSync } from 'node:fs';
import { userInfo, hostname } from 'node:os';
import path from 'node:path';
import { activeFilter, type FindingFilter } from '../engine/filters.js';
import { checkedShard, parseShard, type Shard } from '../engine/shard.js';
import { redact, UsageError } from '../errors.js';
import { parseDuration } from '../manifest/duration.js';
import { loadManifest } from '../manifest/load.js';
import { resolveStateUrl } from '../manifest/normalize.js';
import type { Manifest } from '../manifest/types.js';
import { stateUrlProblem } from '../manifest/urls.js';
import { requireVariables, USES_EVERYTHING, type ManifestUse } from '../manifest/variables.js';
import { BUILTIN_DEFAULTS } from '../manifest/types.js';
import type { OpenStateStoreOptions } from '../state/open.js';
import type { StateStore } from '../state/types.js';
import type { FilterFlags, ManifestFlags, OutputFlags, ResourceFlags, ShardFlags } from './flags.js';
import type { CliIO } from './io.js';
import { writeJson } from './print.js';

export type OutputFormat = 'table' | 'json';

export function outputFormat(io: CliIO, options: OutputFlags): OutputFormat {
  const chosen = options.output ?? io.env.REAPER_OUTPUT;
  if (chosen === 'table' || chosen === 'json') return chosen;
  if (chosen !== undefined) throw new UsageError(`${options.output !== undefined ? '--output' : '$REAPER_OUTPUT'}: table or json (got "${chosen}")`);
  return io.stdout.isTTY ? 'table' : 'json';
}

/** Whether JSON was asked for by --output or $REAPER_OUTPUT (not merely chosen because stdout is no TTY). */
export function explicitJson(io: CliIO, options: OutputFlags): boolean {
  return (options.output ?? io.env.REAPER_OUTPUT) === 'json';
}

/** The manifest path: -c, then $REAPER_CONFIG, then ./reaper.yaml if present. */
export function configPath(io: CliIO, options: ManifestFlags, required = true): string | undefined {
  const given = options.config ?? io.env.REAPER_CONFIG;
  if (given) return path.resolve(io.cwd, given);
  const fallback = path.join(io.cwd, 'reaper.yaml');
  if (existsSync(fallback)) return fallback;
  if (required) throw new UsageError('no manifest: pass -c FILE (or set REAPER_CONFIG, or put reaper.yaml in the current directory; `reaper init` writes one to start from)');
  return undefined;
}

/** --state, then $REAPER_STATE: the state store URL that replaces the manifest's, checked; undefined when neither is given. */
function stateOverride(io: CliIO, options: ManifestFlags): string | undefined {
  const flag = options.state;
  const given = flag ?? io.env.REAPER_STATE;
  if (given === undefined || given === '') return undefined;
  const problem = stateUrlProblem(given);
  if (problem) throw new UsageError(`${flag !== undefined ? '--state' : '$REAPER_STATE'}: ${problem}`);
  return resolveStateUrl(given, io.cwd);
}

/**
 * The manifest, with its state store overridden by --state or $REAPER_STATE when given.
 * `${VAR}`s are resolved lazily: only those of the values `use` names must be set.
 */
export async function manifestFrom(
  io: CliIO,
  options: ManifestFlags,
  use: ManifestUse | ((manifest: Manifest) => ManifestUse) = USES_EVERYTHING,
): Promise<Manifest> {
  const manifest = await loadManifest(configPath(io, options)!, io.env, { lazyEnv: true });
  const override = stateOverride(io, options);
  const used = typeof use === 'function' ? use(manifest) : use;
  requireVariables(manifest, { ...used, state: used.state && override === undefined });
  if (!override) return manifest;
  return Object.freeze({ ...manifest, state: override });
}

/** The state store URL: --state, then $REAPER_STATE, then the manifest's state:, then the default. */
export async function stateUrl(io: CliIO, options: ManifestFlags): Promise<string> {
  const override = stateOverride(io, options);
  if (override) return override;
  const file = configPath(io, options, false);
  if (!file) return resolveStateUrl(BUILTIN_DEFAULTS.state, io.cwd);
  // Only the state store is read: the manifest's other variables need not be set.
  const manifest = await loadManifest(file, io.env, { lazyEnv: true });
  requireVariables(manifest, { state: true, owners: false, resources: [] });
  return manifest.state;
}

/**
 * Why an audit or reap should warn before it starts, or null: the store named by --state or
 * $REAPER_STATE is a SQLite file that does not exist yet, which the run would create. The store
 * holds the leases, so a mistyped path would judge every owner known only by a lease against a
 * new, empty store without a word (the outage breaker still stops a reap whose lease source is
 * below its minLiveKeys). The manifest's own `state:` is what `reaper validate` looks at.
 */
export function newStoreWarning(io: CliIO, options: ManifestFlags, manifest: Manifest): string | null {
  const given = stateOverride(io, options);
  if (given === undefined || !given.startsWith('sqlite:')) return null;
  const file = given.slice('sqlite:'.length);
  if (file === ':memory:' || existsSync(file)) return null;
  const flag = options.state !== undefined ? '--state' : '$REAPER_STATE';
  const leases = manifest.owners.some((source) => source.kind === 'leases') ? ' (every owner known only by a lease counts as dead)' : '';
  return `no state store at ${file} yet (${flag}): this run creates it, with no leases${leases}; check ${flag} if you expected one`;
}

export async function openStore(io: CliIO, options: ManifestFlags, storeOptions: OpenStateStoreOptions = {}): Promise<StateStore> {
  const { openStateStore } = await import('../state/open.js');
  return openStateStore(await stateUrl(io, options), storeOptions);
}

/**
 * The state store for a command that only reads it (`runs`, `lease list`): `store` is null
 * when there is none yet — no SQLite file, or a server database without reaper's tables — so
 * that reading never creates one (a mistyped --state would otherwise leave an empty store
 * behind and answer "nothing"). `missing` says so, for the command to print.
 */
export async function openStoreToRead(io: CliIO, options: ManifestFlags): Promise<{ store: StateStore | null; missing: string }> {
  const url = await stateUrl(io, options);
  const missing = `no state store at ${redact(url)} yet (the first audit, reap or lease acquire creates it)`;
  const { inspectStateStore } = await import('../state/inspect.js');
  const { state } = await inspectStateStore(url);
  if (state === 'missing' || state === 'empty') return { store: null, missing };
  const { openStateStore } = await import('../state/open.js');
  return { store: await openStateStore(url), missing };
}

/**
 * What a command that only reads the state store (`runs`, `lease list`) reads from it, or null
 * when there is no store yet: that is said on stderr (with `[]` as the JSON answer), and no
 * store is created.
 */
export async function readFromStore<T>(io: CliIO, options: ManifestFlags & OutputFlags, read: (store: StateStore) => Promise<T>): Promise<T | null> {
  const format = outputFormat(io, options);
  const { store, missing } = await openStoreToRead(io, options);
  if (!store) {
    io.stderr.write(`reaper: ${missing}\n`);
    if (format === 'json') writeJson(io, []);
    return null;
  }
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

/**
 * The resource types `--resource` names, less those `--exclude-resource` names, in the
 * manifest's order (undefined: all of them). An unknown name is a usage error that lists
 * the valid ones.
 */
export function selectedResources(manifest: Manifest, options: ResourceFlags): string[] | undefined {
  const known = manifest.resources.map((r) => r.name);
  const names = (value: string | string[] | undefined, flag: string): string[] | undefined => {
    if (value === undefined) return undefined;
    const wanted = typeof value === 'string' ? [value] : value;
    const unknown = wanted.filter((name) => !known.includes(name));
    if (unknown.length > 0) {
      throw new UsageError(`${flag}: no resource type ${unknown.map((n) => `"${n}"`).join(', ')} in ${manifest.file}; its types are: ${known.join(', ')}`);
    }
    return wanted;
  };
  const included = names(options.resource, '--resource');
  const excluded = names(options.excludeResource, '--exclude-resource');
  if (included === undefined && excluded === undefined) return undefined;
  return known.filter((name) => (included ?? known).includes(name) && !(excluded ?? []).includes(name));
}

/** --older-than and --owner as a finding filter (undefined when neither is given). */
export function findingFilter(options: FilterFlags): FindingFilter | undefined {
  return activeFilter({
    olderThanSeconds: options.olderThan === undefined ? undefined : durationOption(options.olderThan, '--older-than') / 1000,
    owners: options.owner,
  });
}

/**
 * The shard of this run (docs/scale-out.md): --shard i/N, else $JOB_COMPLETION_INDEX (set by a
 * Kubernetes Indexed Job) of $REAPER_SHARDS (Kubernetes does not export the completion count,
 * so the job's template sets it); null unsharded. Bad input is a UsageError naming the flag or
 * variable (exit 2).
 */
export function shardOption(io: CliIO, options: ShardFlags): Shard | null {
  if (options.shard !== undefined) return parseShard(options.shard, '--shard');
  const index = io.env.JOB_COMPLETION_INDEX;
  const count = io.env.REAPER_SHARDS;
  if (index === undefined || index === '') {
    if (count !== undefined && count !== '') throw new UsageError('$REAPER_SHARDS is set but $JOB_COMPLETION_INDEX is not: pass --shard i/N, or run as a Kubernetes Indexed Job');
    return null;
  }
  if (count === undefined || count === '') {
    throw new UsageError('$JOB_COMPLETION_INDEX is set but $REAPER_SHARDS is not: set REAPER_SHARDS to the job\'s completions (Kubernetes does not export it), or pass --shard i/N');
  }
  if (!/^\d{1,4}$/.test(index)) throw new UsageError(`$JOB_COMPLETION_INDEX: expected a whole number, got ${JSON.stringify(index)}`);
  if (!/^\d{1,4}$/.test(count)) throw new UsageError(`$REAPER_SHARDS: expected a whole number, got ${JSON.stringify(count)}`);
  return checkedShard(Number(index), Number(count), `$JOB_COMPLETION_INDEX/$REAPER_SHARDS (${index}/${count})`);
}

/** --job, then $REAPER_JOB: the job this run is a shard of (letters, digits, `.`, `_`, `-`; at most 128); null when neither is given. */
export function jobOption(io: CliIO, options: ShardFlags): string | null {
  const flag = options.job;
  const job = flag ?? io.env.REAPER_JOB;
  if (job === undefined || job === '') return null;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(job)) throw new UsageError(`${flag !== undefined ? '--job' : '$REAPER_JOB'}: expected letters, digits, ".", "_" or "-" (at most 128), got ${JSON.stringify(job)}`);
  return job;
}

/** The terminal's width for tables: stdout's columns on a TTY, else $COLUMNS; undefined means no limit. */
export function terminalWidth(io: CliIO): number | undefined {
  const stdout = io.stdout as { isTTY?: boolean; columns?: number };
  if (stdout.isTTY && Number.isInteger(stdout.columns) && stdout.columns! > 0) return stdout.columns;
  const fromEnv = Number(io.env.COLUMNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : undefined;
}

export function durationOption(value: string, flag: string): number {
  const parsed = parseDuration(value);
  if (typeof parsed !== 'number') throw new UsageError(`${flag}: ${parsed.error}`);
  return parsed;
}

/**
 * A file an output goes to, resolved against the working directory. An empty or blank name (an
 * unset variable, as `--summary "$GITHUB_STEP_SUMMARY"` gives outside GitHub Actions) would name
 * the directory itself and fail only once the run is over, and `-` is not stdout: each is a usage
 * error, found before anything is contacted. With `directoryMustExist` (a file the run cannot go
 * on without) the directory the file goes into is checked now too.
 */
export function outputFile(io: CliIO, value: string | undefined, flag: string, directoryMustExist = false): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new UsageError(`${flag}: the file name is empty (is the variable that should name it set?)`);
  // Not stdout: that carries the run's own output (the table, the JSON document), and a file named "-" would surprise.
  if (value === '-') throw new UsageError(`${flag}: "-" is not stdout here (stdout carries the run's own output); name a file`);
  const file = path.resolve(io.cwd, value);
  if (directoryMustExist) {
    const dir = path.dirname(file);
    const stat = statSync(dir, { throwIfNoEntry: false });
    if (!stat) throw new UsageError(`${flag}: the directory ${dir} does not exist`);
    if (!stat.isDirectory()) throw new UsageError(`${flag}: ${dir} is not a directory`);
  }
  return file;
}

export function integerOption(value: string, flag: string, min = 0): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag}: expected a whole number ≥ ${min}, got "${value}"`);
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
