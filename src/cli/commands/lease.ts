/**
 * `reaper lease acquire|renew|release|list|prune` against the state store. Input the
 * store cannot honour — a ttl out of range, a malformed lease id, a key with a NUL — is
 * a usage error (exit 2) before the store is contacted.
 */
import { ExitCode, LeaseLostError, ReaperError, UsageError } from '../../errors.js';
import { acquiredToJson, checkText, isLeaseId, leaseToJson, MAX_HOLDER_LENGTH, MAX_KEY_LENGTH } from '../../lease/wire.js';
import { ttlProblem } from '../../state/common.js';
import { DEFAULT_LEASE_BOUNDS, type AcquiredLease, type Lease } from '../../state/types.js';
import { leaseTable } from '../../report/table.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { defaultHolder, durationOption, openStore, outputFormat, readFromStore, terminalWidth } from '../options.js';

/** A lease ttl every store honours exactly (1s to 7d), or a usage error naming the range and the ttl as it was typed. */
export function leaseTtlOption(text: string, flag = '--ttl'): number {
  const ttlMs = durationOption(text, flag);
  const problem = ttlProblem(ttlMs, DEFAULT_LEASE_BOUNDS);
  if (problem) throw new UsageError(`${flag}: ${problem.replace(/, got .*$/, `, got ${text}`)}`);
  return ttlMs;
}

export function checkLeaseKey(key: string): string {
  const problem = checkText(key, 'a lease key', MAX_KEY_LENGTH);
  if (problem) throw new UsageError(problem);
  return key;
}

function checkHolder(holder: string): string {
  const problem = checkText(holder, '--holder', MAX_HOLDER_LENGTH);
  if (problem) throw new UsageError(problem);
  return holder;
}

function checkLeaseId(id: unknown): string {
  const text = String(id);
  if (!isLeaseId(text)) throw new UsageError(`"${text.slice(0, 80)}" is not a lease id (a UUID, as \`reaper lease list\` shows)`);
  return text;
}

/** The same JSON shape as the daemon's HTTP API. */
const leaseJson = (lease: Lease | AcquiredLease) => ('token' in lease ? acquiredToJson(lease) : leaseToJson(lease));

/** `now`: the store's clock when the leases were read, which tells a held lease from an expired one. */
function print(io: CliIO, options: OutputFlags, leases: (Lease | AcquiredLease)[], single: boolean, now: number): void {
  if (outputFormat(io, options) === 'json') {
    writeJson(io, single ? leaseJson(leases[0]!) : leases.map(leaseJson));
  } else {
    io.stdout.write(`${leaseTable(leases, now, { width: terminalWidth(io) })}\n`);
  }
}

/** The leases `read` returns, and the store's clock read right after them. */
async function readWithNow<T>(store: Awaited<ReturnType<typeof openStore>>, read: () => Promise<T>): Promise<{ value: T; now: number }> {
  const value = await read();
  return { value, now: await store.now() };
}

async function withStore<T>(io: CliIO, options: ManifestFlags, fn: (store: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  const store = await openStore(io, options);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A lease that cannot be renewed any more (expired or released): exit 3, as every lost lease. */
class LeaseGoneError extends ReaperError {
  readonly exitCode = ExitCode.runtime;
}

/**
 * A lost lease said plainly: an id the store does not know is a usage error (exit 2), found
 * before the store is asked (so a typo is not counted as a holder's failed renewal); an
 * expired or released one names what to do instead, since a renewal never revives it.
 */
async function saidPlainly<T>(store: Awaited<ReturnType<typeof openStore>>, id: string, act: () => Promise<T>): Promise<T> {
  // An id the store does not know is refused before the store counts a failed renewal for it (the renewal-failure rate is the holders').
  if ((await store.getLease(id)) === null) throw new UsageError(`no lease ${id} in the state store (\`reaper lease list --all\` lists them)`);
  try {
    return await act();
  } catch (error) {
    if (!(error instanceof LeaseLostError) || error.leaseId !== id) throw error;
    if (error.why !== 'expired' && error.why !== 'released') throw error;
    const key = (await store.getLease(id))?.key ?? 'KEY';
    throw new LeaseGoneError(`${error.message}; a renewal never revives a lease: acquire a new one (\`reaper lease acquire ${key} --ttl D\`)`);
  }
}

/** The options every lease command takes. */
type LeaseFlags = ManifestFlags & OutputFlags;

export async function leaseAcquire(io: CliIO, args: unknown[], options: LeaseFlags & { ttl: string; holder?: string }): Promise<number> {
  const key = checkLeaseKey(String(args[0]));
  const ttlMs = leaseTtlOption(options.ttl);
  const holder = checkHolder(options.holder ?? defaultHolder(io));
  const { value: lease, now } = await withStore(io, options, (store) => readWithNow(store, () => store.acquireLease({ key, holder, ttlMs })));
  print(io, options, [lease], true, now);
  return 0;
}

export async function leaseRenew(io: CliIO, args: unknown[], options: LeaseFlags & { ttl?: string }): Promise<number> {
  const id = checkLeaseId(args[0]);
  const ttlMs = options.ttl === undefined ? undefined : leaseTtlOption(options.ttl);
  const { value: lease, now } = await withStore(io, options, (store) => saidPlainly(store, id, () => readWithNow(store, () => store.renewLease(id, { ttlMs }))));
  print(io, options, [lease], true, now);
  return 0;
}

export async function leaseRelease(io: CliIO, args: unknown[], options: LeaseFlags): Promise<number> {
  const id = checkLeaseId(args[0]);
  const { value: lease, now } = await withStore(io, options, async (store) => {
    await saidPlainly(store, id, () => store.releaseLease(id));
    return readWithNow(store, () => store.getLease(id));
  });
  print(io, options, [lease!], true, now);
  return 0;
}

export async function leaseList(io: CliIO, _args: unknown[], options: LeaseFlags & { key?: string; all?: boolean }): Promise<number> {
  const key = options.key === undefined ? undefined : checkLeaseKey(options.key);
  const listed = await readFromStore(io, options, (store) => readWithNow(store, () => store.listLeases({ key, includeInactive: options.all === true })));
  if (listed === null) return 0;
  print(io, options, listed.value, false, listed.now);
  return 0;
}

/** Delete leases that ended longer ago than --older-than (default 7d), and old renewal statistics. */
export async function leasePrune(io: CliIO, _args: unknown[], options: LeaseFlags & { olderThan?: string }): Promise<number> {
  const olderThanMs = durationOption(options.olderThan ?? '7d', '--older-than');
  const pruned = await withStore(io, options, (store) => store.pruneLeases(olderThanMs));
  if (outputFormat(io, options) === 'json') writeJson(io, { pruned, olderThanSeconds: olderThanMs / 1000 });
  else io.stdout.write(`pruned ${pruned} lease${pruned === 1 ? '' : 's'} that ended more than ${options.olderThan ?? '7d'} ago\n`);
  return 0;
}
