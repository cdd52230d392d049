#!/usr/bin/env node
// bench/run: reaper side by side with the peer tools, one scenario after another, each
// measurement in its own child process, medians and ratios printed as tables.
//
//   npm run bench                      # full sizes, at least 3 repetitions
//   npm run bench -- --quick           # small sizes (under 5 minutes on 2 cores)
//   npm run bench -- --only files,s3   # some scenarios (repeatable)
//   npm run bench -- --reps 5 --json results.json --size s3=3000
//
// Scenarios: files, s3, postgres, mariadb, leases, startup, memory. The soak test is
// separate: bench/soak.mjs. Needs `npm run build` first (everything runs from dist/),
// PostgreSQL and MariaDB at the test URLs (REAPER_TEST_PG_URL, REAPER_TEST_MYSQL_URL),
// moto_server on PATH. Peer tools missing from PATH are installed from Debian when
// running as root, otherwise that peer is skipped with a line saying so.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fmt, load1, log, machineInfo, repoDir, table } from './lib/common.mjs';

const ALL = ['files', 's3', 'postgres', 'mariadb', 'leases', 'startup', 'memory'];
const args = process.argv.slice(2);
const values = (flag) => args.flatMap((a, i) => (a === flag && args[i + 1] ? args[i + 1].split(',') : []));
const quick = args.includes('--quick');
const only = values('--only');
const unknown = only.filter((n) => !ALL.includes(n));
if (unknown.length) {
  console.error(`unknown scenario(s): ${unknown.join(', ')} (choose from ${ALL.join(', ')})`);
  process.exit(2);
}
const selected = only.length ? ALL.filter((n) => only.includes(n)) : ALL;
const reps = Number(values('--reps')[0] ?? (quick ? 1 : 3));
const jsonOut = values('--json')[0];
const sizes = Object.fromEntries(values('--size').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));

if (!existsSync(path.join(repoDir, 'dist', 'index.js'))) {
  console.error('bench: dist/ is missing; run `npm run build` first');
  process.exit(2);
}

const work = mkdtempSync(path.join(tmpdir(), 'reaper-bench-'));
let cleaned = false;
const cleanup = () => {
  if (cleaned) return;
  cleaned = true;
  rmSync(work, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const machine = machineInfo();
const started = Date.now();
log(`bench: ${quick ? 'quick' : 'full'} mode, ${reps} repetition(s); scenarios ${selected.join(', ')}; load ${load1()}`);
console.log(`reaper ${machine.commit}${Number(machine.uncommittedSrc) ? ` (+${machine.uncommittedSrc} uncommitted files in src/)` : ''}; PostgreSQL ${machine.postgres}; MariaDB ${machine.mariadb}; moto ${machine.moto}`);
const results = [];
const failures = [];

function print(result) {
  for (const t of result.tables) {
    console.log(`\n### ${t.title}\n`);
    console.log(table(t.head, t.rows));
  }
  if (result.ratios && Object.keys(result.ratios).length) {
    console.log('');
    for (const [k, v] of Object.entries(result.ratios)) console.log(`${result.name}: ${k} = ${fmt.x(v)}`);
  }
  for (const n of result.notes ?? []) console.log(`${result.name}: note: ${n}`);
  for (const s of result.skipped ?? []) console.log(s);
}

try {
  for (const name of selected) {
    const t0 = Date.now();
    log(`\n== ${name} (load ${load1()})`);
    try {
      const scenario = await import(`./scenarios/${name}.mjs`);
      const result = await scenario.run({ quick, reps, work, sizeOverride: sizes[name] });
      result.seconds = (Date.now() - t0) / 1000;
      results.push(result);
      print(result);
      log(`== ${name} done in ${result.seconds.toFixed(0)} s`);
    } catch (error) {
      failures.push({ name, error: error.stack ?? String(error) });
      console.log(`\nFAILED ${name}: ${error.message}`);
      log(error.stack);
    }
  }
} finally {
  cleanup();
}

console.log('\n## Targets\n');
const targetRows = results.flatMap((r) => (r.targets ?? []).map((t) => [r.name, t.target, t.value, t.met === null ? 'n/a' : t.met ? 'met' : 'NOT met']));
console.log(table(['scenario', 'target', 'measured', 'result'], targetRows));
for (const f of failures) console.log(`FAILED ${f.name} (see stderr)`);
console.log(`\nmachine: ${machine.cores} cores (${machine.cpu}), ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ quick, reps, machine, startedAt: new Date(started).toISOString(), results, failures }, null, 2));
process.exitCode = failures.length ? 1 : 0;
