#!/usr/bin/env node
// bench/simulate: the strategy simulator's throughput — a scenario (by default
// bench/simulate/million.yaml, about a million resources) through every strategy it
// compares, one after another in this process, as `reaper simulate` runs them. Prints wall
// and CPU time per strategy and in total, the load average beside them (the machine is
// shared), and the results table, so a speed-up that changes a result shows.
//
//   npm run build && node bench/simulate.mjs [SCENARIO] [--json FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, load1, machineInfo, repoDir, table } from './lib/common.mjs';

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonOut = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
const file = args.find((a, i) => !a.startsWith('--') && i !== jsonAt + 1) ?? path.join(repoDir, 'bench', 'simulate', 'million.yaml');

const { parseScenario } = await import(path.join(repoDir, 'dist', 'sim', 'scenario.js'));
const { runStrategy } = await import(path.join(repoDir, 'dist', 'sim', 'run.js'));
const scenario = parseScenario(readFileSync(file, 'utf8'), file);

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

console.log(`scenario ${scenario.name}: ${resources.toLocaleString('en-US')} resources, ${scenario.compare.length} strategies; load ${loadBefore} → ${load1()}`);
console.log(
  table(
    ['strategy', 'wall s', 'CPU s', 'premature', 'leaked', 'p50 s', 'p99 s', 'msgs/res', 'ops/res', 'peak state'],
    [
      ...rows.map(({ name, wallS, cpuS, result: r }) => [name, fmt.s(wallS), fmt.s(cpuS), r.premature, r.leaked, r.latencyP50Seconds, r.latencyP99Seconds, r.messagesPerResource, r.storeOpsPerResource, r.peakStateSize]),
      ['total', fmt.s(total.wallS), fmt.s(total.cpuS), '', '', '', '', '', '', ''],
    ],
  ),
);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ machine: machineInfo(), scenario: scenario.name, resources, load: [loadBefore, load1()], total, rows }, null, 2));
