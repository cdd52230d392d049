#!/usr/bin/env node
// bench/simulate: the strategy simulator's throughput — a scenario (by default
// bench/simulate/million.yaml, about a million resources) through every strategy it
// compares. First as `reaper simulate` runs them (worker threads, one per core): the wall
// time of the whole. Then one after another in this thread, for the time each strategy
// takes. CPU time (all threads) and the load average are printed beside each wall time —
// the machine is shared — and the results table, so a speed-up that changes a result shows.
//
//   npm run build && node bench/simulate.mjs [SCENARIO] [--json FILE] [--parallel-only]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, load1, machineInfo, repoDir, table } from './lib/common.mjs';

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonOut = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
const file = args.find((a, i) => !a.startsWith('--') && i !== jsonAt + 1) ?? path.join(repoDir, 'bench', 'simulate', 'million.yaml');

const { parseScenario } = await import(path.join(repoDir, 'dist', 'sim', 'scenario.js'));
const { runStrategy } = await import(path.join(repoDir, 'dist', 'sim', 'run.js'));
const { runTasks } = await import(path.join(repoDir, 'dist', 'sim', 'parallel.js'));
const scenario = parseScenario(readFileSync(file, 'utf8'), file);

const p0 = process.hrtime.bigint();
const pc0 = process.cpuUsage();
const pLoad = load1();
const parallelResults = await runTasks(scenario.compare.map((strategy) => ({ scenario, strategy })));
const pc = process.cpuUsage(pc0);
const parallel = { wallS: Number(process.hrtime.bigint() - p0) / 1e9, cpuS: (pc.user + pc.system) / 1e6, load: [pLoad, load1()] };
console.error(`all strategies in worker threads: ${fmt.s(parallel.wallS)} s wall, ${fmt.s(parallel.cpuS)} s CPU, load ${pLoad} → ${load1()}`);
if (args.includes('--parallel-only')) {
  console.log(`scenario ${scenario.name}: ${parallelResults[0].resources.toLocaleString('en-US')} resources, ${scenario.compare.length} strategies in worker threads: ${fmt.s(parallel.wallS)} s wall, ${fmt.s(parallel.cpuS)} s CPU; load ${pLoad} → ${load1()}`);
  process.exit(0);
}

const rows = [];
const wall0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const loadBefore = load1();
for (const name of scenario.compare) {
  const w = process.hrtime.bigint();
  const c = process.cpuUsage();
  const { result } = runStrategy(scenario, name);
  const cpu = process.cpuUsage(c);
  rows.push({ name, wallS: Number(process.hrtime.bigint() - w) / 1e9, cpuS: (cpu.user + cpu.system) / 1e6, result });
  console.error(`${name}: ${fmt.s(rows.at(-1).wallS)} s wall, ${fmt.s(rows.at(-1).cpuS)} s CPU`);
}
const cpu = process.cpuUsage(cpu0);
const total = { wallS: Number(process.hrtime.bigint() - wall0) / 1e9, cpuS: (cpu.user + cpu.system) / 1e6 };
const resources = rows[0]?.result.resources ?? 0;

console.log(`scenario ${scenario.name}: ${resources.toLocaleString('en-US')} resources, ${scenario.compare.length} strategies`);
console.log(`in worker threads (as reaper simulate runs them): ${fmt.s(parallel.wallS)} s wall, ${fmt.s(parallel.cpuS)} s CPU; load ${parallel.load.join(' → ')}`);
console.log(`one after another in one thread: load ${loadBefore} → ${load1()}`);
const same = JSON.stringify(parallelResults) === JSON.stringify(rows.map((r) => r.result));
console.log(same ? 'worker-thread results equal the one-thread results' : 'WORKER-THREAD RESULTS DIFFER FROM ONE-THREAD RESULTS');
console.log(
  table(
    ['strategy', 'wall s', 'CPU s', 'premature', 'leaked', 'p50 s', 'p99 s', 'msgs/res', 'ops/res', 'peak state'],
    [
      ...rows.map(({ name, wallS, cpuS, result: r }) => [name, fmt.s(wallS), fmt.s(cpuS), r.premature, r.leaked, r.latencyP50Seconds, r.latencyP99Seconds, r.messagesPerResource, r.storeOpsPerResource, r.peakStateSize]),
      ['total', fmt.s(total.wallS), fmt.s(total.cpuS), '', '', '', '', '', '', ''],
    ],
  ),
);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ machine: machineInfo(), scenario: scenario.name, resources, parallel, sequential: { load: [loadBefore, load1()], total, rows } }, null, 2));
if (!same) process.exit(1);
