/**
 * `reaper simulate --live`: the scenario's leases strategy for real, beside the simulator.
 * The workload and faults are the simulator's own trace for the seed (recordTrace); this
 * process plays the services' application side — it writes each resource as a file and
 * keeps a lease per holder and resource through that service's `reaper daemon` (a
 * LeaseKeeper over the daemon's HTTP API) — while `reaper reap --execute` runs every
 * `sweepEvery`. A pause stops the service's daemon (SIGSTOP), a crash kills it (SIGKILL)
 * and starts it again, a collector kill makes one reap run die after its write-ahead
 * journal. Afterwards the journal says what was deleted and when; the simulator's ground
 * truth says whether it was still referenced then. Both runs are judged the same way.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { HttpLeaseClient } from '../../client/http-lease-client.js';
import { LeaseKeeper } from '../../client/lease-keeper.js';
import { UsageError } from '../../errors.js';
import { openStateStore } from '../../state/open.js';
import { writeJson } from '../../util/json-out.js';
import type { AcquiredLease } from '../../state/types.js';
import { formatLatency } from '../document.js';
import { round, type StrategyResult } from '../metrics.js';
import { runStrategy } from '../run.js';
import type { Scenario } from '../scenario.js';
import { fileOf, freePort, groupOfFile, reapOnce, startDaemon, writeSandbox, type Daemon } from './sandbox.js';
import { recordTrace, type Trace } from './trace.js';

/** A live run is real time: keep it to minutes. */
const MAX_LIVE_MS = 10 * 60_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** What the live mode cannot reproduce with real processes, named so the scenario can be cut down. */
export function liveObstacles(s: Scenario): string[] {
  const out: string[] = [];
  if (s.durationMs + s.drainMs > MAX_LIVE_MS) out.push(`duration + drain is ${(s.durationMs + s.drainMs) / 1000}s; a live run is real time, at most ${MAX_LIVE_MS / 60_000} minutes`);
  if (s.services > 8) out.push(`${s.services} services; at most 8 daemons`);
  if (s.workload.creations > 500) out.push(`${s.workload.creations} creations; at most 500`);
  if (s.workload.chains || s.workload.cycles) out.push('chains and cycles (a file has one owner key here)');
  const n = s.network;
  if (n.loss > 0 || n.duplicate > 0 || n.jitterMs > 0) out.push('network loss, duplication and jitter (loopback HTTP does not lose messages)');
  if (s.clocks.skewMs > 0 || s.clocks.drift > 0 || Object.keys(s.clocks.offsets).length > 0) out.push('clock skew and drift (every process reads this machine\'s clock)');
  for (const f of s.faults) if (f.kind === 'partition' || f.kind === 'registry-outage') out.push(`${f.kind} faults`);
  if (s.leases.clock !== 'store') out.push('clock: holder (reaper\'s leases are stamped by the store)');
  if (s.leases.lockTtlMs < 1000) out.push('a lockTtl under 1s');
  if (s.leases.ttlMs < 1000) out.push('a ttl under 1s (the store refuses it)');
  if (s.leases.intervalMs > Math.floor(s.leases.ttlMs / 3)) out.push('a renewal interval over ttl/3 (the daemon refuses it)');
  for (const [k, v] of [['grace', s.leases.graceMs], ['minAge', s.leases.minAgeMs]] as const) if (v % 1 !== 0) out.push(`${k} in fractions of a millisecond`);
  return [...new Set(out)];
}

/** What one side of a live comparison did; the JSON document has one for the simulator and one for the live run. */
export interface LiveOutcome {
  resources: number;
  reclaimed: number;
  premature: number;
  leaked: number;
  latencyP50Seconds: number | null;
  latencyP99Seconds: number | null;
  lifts: number;
  reapRuns: number;
  refusedRuns: number;
  killedRuns: number;
}

function quantile(sorted: readonly number[], p: number): number | null {
  return sorted.length === 0 ? null : round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! / 1000);
}

/** What the live mode needs of its caller (the CLI's io has it): where to write, where relative paths start, the stop signal. */
export interface LiveIO {
  stdout: { write(chunk: string): unknown; isTTY?: boolean };
  stderr: { write(chunk: string): unknown };
  cwd: string;
  signal: AbortSignal;
}

export async function runLive(io: LiveIO, scenario: Scenario, options: { workDir?: string; format: 'table' | 'json' }): Promise<number> {
  const obstacles = liveObstacles(scenario);
  if (obstacles.length) throw new UsageError(`--live cannot reproduce: ${obstacles.join('; ')}`);
  // The daemon's keeper can only release a lease a holder drops, so both sides release on drop.
  const s: Scenario = { ...scenario, compare: ['leases'], leases: { ...scenario.leases, releaseOnDrop: true } };
  const trace = recordTrace(s);
  const simulated = runStrategy(s, 'leases').result;
  const dir = options.workDir ? path.resolve(io.cwd, options.workDir) : await mkdtemp(path.join(tmpdir(), 'reaper-live-'));
  io.stderr.write(`reaper: live run of ${s.name} (seed ${s.seed}) in ${dir}: ${(trace.endMs / 1000).toFixed(0)}s of real time\n`);
  let live: LiveOutcome;
  try {
    live = await play(s, trace, dir, io.signal);
  } finally {
    if (!options.workDir) await rm(dir, { recursive: true, force: true });
  }
  const doc = { version: 1, kind: 'simulate-live', scenario: s.name, seed: s.seed, releaseOnDrop: true, simulator: simulatedOutcome(simulated, Math.floor(trace.endMs / s.leases.sweepEveryMs)), live };
  if (options.format === 'json') writeJson(io, doc);
  else io.stdout.write(`${liveTable(doc.simulator, live)}\n`);
  return 0;
}

function simulatedOutcome(r: StrategyResult, reapRuns: number): LiveOutcome {
  return {
    resources: r.resources,
    reclaimed: r.reclaimed + r.premature,
    premature: r.premature,
    leaked: r.leaked,
    latencyP50Seconds: r.latencyP50Seconds,
    latencyP99Seconds: r.latencyP99Seconds,
    lifts: r.extras.lifts ?? 0,
    reapRuns,
    refusedRuns: (r.extras['runs refused (breaker)'] ?? 0) + (r.extras['runs refused (cap)'] ?? 0) + (r.extras['runs refused (lock)'] ?? 0),
    killedRuns: r.extras['runs killed mid-sweep'] ?? 0,
  };
}

async function play(s: Scenario, trace: Trace, dir: string, signal: AbortSignal): Promise<LiveOutcome> {
  const manifest = await writeSandbox(dir, s);
  const ports = await Promise.all([...Array(s.services).keys()].map(() => freePort()));
  const daemons: Daemon[] = ports.map((port, i) => startDaemon(manifest, i, port, s));
  const keepers: LeaseKeeper[] = [];
  /** The lease each service holds for each group. */
  const held: Map<number, AcquiredLease | null>[] = ports.map(() => new Map());
  const errors: string[] = [];
  const clients = ports.map((port) => new HttpLeaseClient({ url: `http://127.0.0.1:${port}`, timeoutMs: Math.max(1000, s.leases.intervalMs) }));
  const keeperFor = (svc: number): LeaseKeeper =>
    new LeaseKeeper({
      leases: clients[svc]!,
      ttlMs: s.leases.ttlMs,
      intervalMs: s.leases.intervalMs,
      holder: `svc-${svc}`,
      // Like the simulated daemon: a lost lease is replaced, never revived.
      onLost: (lease) => {
        const group = Number(lease.key.slice('res:'.length));
        if (held[svc]!.get(group)?.leaseId === lease.leaseId) void take(svc, group);
      },
      onError: () => {},
    });
  const take = async (svc: number, group: number) => {
    held[svc]!.set(group, null);
    try {
      const lease = await keepers[svc]!.acquire(`res:${group}`);
      if (held[svc]!.get(group) === null) held[svc]!.set(group, lease);
      else await keepers[svc]!.release(lease);
    } catch (error) {
      // The daemon is stopped or down: the simulated holder retries on its next tick, and so does this one.
      if (held[svc]!.get(group) === null) setTimeout(() => held[svc]!.get(group) === null && void take(svc, group), s.leases.intervalMs);
      errors.push((error as Error).message);
    }
  };
  let reapRuns = 0;
  let refusedRuns = 0;
  let killedRuns = 0;
  let stop = false;
  try {
    await Promise.all(clients.map((c) => waitReady(c)));
    for (let i = 0; i < s.services; i++) keepers.push(keeperFor(i));
    const start = Date.now();
    const kills = trace.faults.filter((f) => f.kind === 'collector-kill').map((f) => f.at);
    const reaping = (async () => {
      for (let k = 1; !stop; k++) {
        await sleep(start + k * s.leases.sweepEveryMs - Date.now());
        if (stop || signal.aborted) break;
        // A pending kill rides on every run until one writes a journal and dies there.
        const kill = kills.length > 0 && kills[0]! <= Date.now() - start;
        const run = await reapOnce(manifest, s, kill);
        reapRuns++;
        if (run.killed) {
          killedRuns++;
          kills.shift();
        } else if (run.code === 4) refusedRuns++;
      }
    })();
    const steps = [
      ...trace.events.map((e) => ({ at: e.at, act: () => applyEvent(e) })),
      ...trace.faults.filter((f) => f.kind === 'pause').map((f) => ({ at: f.at, act: () => pause(f.service, f.durationMs) })),
    ].sort((a, b) => a.at - b.at);
    async function applyEvent(e: Trace['events'][number]): Promise<void> {
      switch (e.type) {
        case 'create':
          await writeFile(path.join(dir, 'files', fileOf(e.group)), `resource ${e.group}\n`);
          return take(e.service, e.group);
        case 'receive':
          return take(e.service, e.group);
        case 'drop': {
          const lease = held[e.service]!.get(e.group);
          held[e.service]!.delete(e.group);
          if (lease) await keepers[e.service]!.release(lease).catch((error: unknown) => void errors.push((error as Error).message));
          return;
        }
        case 'crash':
          daemons[e.service]!.child.kill('SIGKILL');
          if (e.loseState) {
            void keepers[e.service]!.stop({ release: false });
            held[e.service]!.clear();
            keepers[e.service] = keeperFor(e.service);
          }
          return;
        case 'restart':
          await daemons[e.service]!.exited;
          daemons[e.service] = startDaemon(manifest, e.service, ports[e.service]!, s);
          await waitReady(clients[e.service]!);
          // A restarted holder that kept its state renews at once; lost leases are replaced through onLost.
          return;
      }
    }
    async function pause(svc: number, durationMs: number): Promise<void> {
      const d = daemons[svc]!;
      d.child.kill('SIGSTOP');
      await sleep(durationMs);
      d.child.kill('SIGCONT');
    }
    const pending: Promise<void>[] = [];
    for (const step of steps) {
      if (signal.aborted) break;
      await sleep(start + step.at - Date.now());
      pending.push(step.act());
    }
    await Promise.all(pending);
    await sleep(start + trace.endMs - Date.now());
    stop = true;
    await reaping;
    return await judge(s, trace, dir, start, { reapRuns, refusedRuns, killedRuns });
  } finally {
    stop = true;
    await Promise.all(keepers.map((k) => k.stop({ release: false })));
    for (const d of daemons) {
      d.child.kill('SIGCONT');
      d.child.kill('SIGTERM');
    }
    await Promise.race([Promise.all(daemons.map((d) => d.exited)), sleep(5_000)]);
    for (const d of daemons) d.child.kill('SIGKILL');
  }
}

async function waitReady(client: HttpLeaseClient): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (await client.ready().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error('a reaper daemon did not become ready within 20 s');
}

/** Deletions from the journal, judged against the simulator's ground truth on the same clock (ms since the start). */
async function judge(s: Scenario, trace: Trace, dir: string, start: number, runs: Pick<LiveOutcome, 'reapRuns' | 'refusedRuns' | 'killedRuns'>): Promise<LiveOutcome> {
  const store = await openStateStore(`sqlite:${path.join(dir, 'state.db')}`);
  try {
    const journal = await store.journal({ limit: 1_000_000 });
    const lifted = await store.findTombstones({ states: ['lifted'], limit: 1_000_000 });
    const t = trace.table;
    const latencies: number[] = [];
    let premature = 0;
    const deleted = new Set<number>();
    for (const entry of journal) {
      if (entry.outcome !== 'deleted') continue;
      const g = groupOfFile(entry.resourceId);
      if (g === null || deleted.has(g)) continue;
      deleted.add(g);
      const at = entry.at - start;
      const garbageAt = t.garbageAt(g);
      if (Number.isNaN(garbageAt) || at < garbageAt) premature++;
      else latencies.push(at - garbageAt);
    }
    let leaked = 0;
    for (let g = 0; g < t.groups; g++) if (!Number.isNaN(t.garbageAt(g)) && existsSync(path.join(dir, 'files', fileOf(g)))) leaked++;
    latencies.sort((a, b) => a - b);
    return {
      resources: t.resources,
      reclaimed: deleted.size,
      premature,
      leaked,
      latencyP50Seconds: quantile(latencies, 0.5),
      latencyP99Seconds: quantile(latencies, 0.99),
      lifts: lifted.length,
      ...runs,
    };
  } finally {
    await store.close();
  }
}

function liveTable(sim: LiveOutcome, live: LiveOutcome): string {
  const table = new Table({ head: ['', 'simulator', 'live'], colAligns: ['left', 'right', 'right'], style: { head: [], border: [], compact: true } });
  const rows: [string, keyof LiveOutcome][] = [
    ['resources', 'resources'],
    ['deleted', 'reclaimed'],
    ['premature', 'premature'],
    ['leaked at the end', 'leaked'],
    ['latency p50', 'latencyP50Seconds'],
    ['latency p99', 'latencyP99Seconds'],
    ['tombstones lifted', 'lifts'],
    ['reap runs refused', 'refusedRuns'],
    ['reap runs killed', 'killedRuns'],
  ];
  for (const [label, key] of rows) {
    const f = (o: LiveOutcome) => (key.startsWith('latency') ? formatLatency(o[key] as number | null) : String(o[key]));
    table.push([label, f(sim), f(live)]);
  }
  return [
    table.toString(),
    `reap runs: ${sim.reapRuns} simulated, ${live.reapRuns} live. The live side differs by what the simulator leaves out: each reap run is a process that takes a`,
    'moment to start and runs after the previous one ends, the daemons and the keeper heartbeat over HTTP with their own jitter, and',
    'deletes happen when a run reaches them, not at the instant the simulator uses.',
  ].join('\n');
}
