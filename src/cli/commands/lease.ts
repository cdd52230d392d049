/** `reaper lease acquire|renew|release|list|prune` against the state store. */
import { acquiredToJson, leaseToJson } from '../../daemon/wire.js';
import type { AcquiredLease, Lease } from '../../state/types.js';
import { leaseTable } from '../../report/table.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { defaultHolder, durationOption, openStore, outputFormat, terminalWidth } from '../options.js';

/** The same JSON shape as the daemon's HTTP API. */
const leaseJson = (lease: Lease | AcquiredLease) => ('token' in lease ? acquiredToJson(lease) : leaseToJson(lease));

function print(io: CliIO, options: Record<string, unknown>, leases: (Lease | AcquiredLease)[], single: boolean): void {
  if (outputFormat(io, options) === 'json') {
    writeJson(io, single ? leaseJson(leases[0]!) : leases.map(leaseJson));
  } else {
    io.stdout.write(`${leaseTable(leases, { width: terminalWidth(io) })}\n`);
  }
}

async function withStore<T>(io: CliIO, options: Record<string, unknown>, fn: (store: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  const store = await openStore(io, options);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function leaseAcquire(io: CliIO, args: unknown[], options: Record<string, unknown>): Promise<number> {
  const ttlMs = durationOption(options.ttl, '--ttl');
  const holder = (options.holder as string | undefined) ?? defaultHolder(io);
  const lease = await withStore(io, options, (store) => store.acquireLease({ key: String(args[0]), holder, ttlMs }));
  print(io, options, [lease], true);
  return 0;
}

export async function leaseRenew(io: CliIO, args: unknown[], options: Record<string, unknown>): Promise<number> {
  const ttlMs = options.ttl === undefined ? undefined : durationOption(options.ttl, '--ttl');
  const lease = await withStore(io, options, (store) => store.renewLease(String(args[0]), { ttlMs }));
  print(io, options, [lease], true);
  return 0;
}

export async function leaseRelease(io: CliIO, args: unknown[], options: Record<string, unknown>): Promise<number> {
  const lease = await withStore(io, options, async (store) => {
    await store.releaseLease(String(args[0]));
    return store.getLease(String(args[0]));
  });
  print(io, options, [lease!], true);
  return 0;
}

export async function leaseList(io: CliIO, _args: unknown[], options: Record<string, unknown>): Promise<number> {
  const leases = await withStore(io, options, (store) =>
    store.listLeases({ key: options.key as string | undefined, includeInactive: Boolean(options.all) }),
  );
  print(io, options, leases, false);
  return 0;
}

/** Delete leases that ended longer ago than --older-than (default 7d), and old renewal statistics. */
export async function leasePrune(io: CliIO, _args: unknown[], options: Record<string, unknown>): Promise<number> {
  const olderThanMs = durationOption(options.olderThan ?? '7d', '--older-than');
  const pruned = await withStore(io, options, (store) => store.pruneLeases(olderThanMs));
  if (outputFormat(io, options) === 'json') writeJson(io, { pruned, olderThanSeconds: olderThanMs / 1000 });
  else io.stdout.write(`pruned ${pruned} lease${pruned === 1 ? '' : 's'} that ended more than ${String(options.olderThan ?? '7d')} ago\n`);
  return 0;
}
