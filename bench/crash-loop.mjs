#!/usr/bin/env node
// bench/crash-loop: the kill -9 crash loop of the test suite (test/integration/reap-crash-loop.test.ts),
// run longer and bigger, over one or more seeds, with its figures summed per (backend, state store)
// pair: loops, kills, orphans deleted, survivors checked after every loop, survivors lost.
//
//   node bench/crash-loop.mjs                              # 30 loops of 40 resources per pair, one seed
//   node bench/crash-loop.mjs --loops 50 --size 60 --seeds 3 --full --json crash.json
//
// --full runs every backend on every state store (REAPER_TEST_FULL=1); by default every backend on
// SQLite and the files backend on PostgreSQL and MariaDB, as in CI. Needs `npm run build` first,
// PostgreSQL and MariaDB at the test URLs and moto_server on PATH (the test suite's services). A
// failure (a survivor lost, the journal and the resources disagreeing) exits 1 with vitest's report.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fmt, load1, log, machineInfo, repoDir, table } from './lib/common.mjs';

const args = process.argv.slice(2);
const value = (flag, fallback) => {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const loops = Number(value('--loops', 30));
const size = Number(value('--size', 40));
const seeds = Number(value('--seeds', 1));
const firstSeed = Number(value('--seed', 20261206));
const jsonOut = value('--json', null);
const full = args.includes('--full');

if (!existsSync(path.join(repoDir, 'dist', 'index.js'))) {
  console.error('bench: dist/ is missing; run `npm run build` first');
  process.exit(2);
}

const work = mkdtempSync(path.join(tmpdir(), 'reaper-bench-crash-'));
const reportFile = path.join(work, 'figures.ndjson');
const machine = machineInfo();
log(`crash loop: ${loops} loops × ${size} resources per pair, ${seeds} seed(s) from ${firstSeed}, ${full ? 'every pair' : 'the CI pairs'}; load ${load1()}`);
console.log(`reaper ${machine.commit}; PostgreSQL ${machine.postgres}; MariaDB ${machine.mariadb}; moto ${machine.moto}`);

const started = Date.now();
let failed = false;
for (let s = 0; s < seeds; s++) {
  const seed = firstSeed + s;
  const run = spawnSync(process.execPath, [path.join(repoDir, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/integration/reap-crash-loop.test.ts'], {
    cwd: repoDir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      CI: 'true',
      REAPER_CRASH_LOOPS: String(loops),
      REAPER_CRASH_SIZE: String(size),
      REAPER_CRASH_SEED: String(seed),
      REAPER_CRASH_REPORT: reportFile,
      ...(full ? { REAPER_TEST_FULL: '1' } : {}),
    },
  });
  if (run.status !== 0) failed = true;
}
const seconds = (Date.now() - started) / 1000;

const figures = existsSync(reportFile)
  ? readFileSync(reportFile, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
rmSync(work, { recursive: true, force: true });

const byPair = new Map();
for (const f of figures) {
  const sum = byPair.get(f.pair) ?? { pair: f.pair, seeds: 0, loops: 0, kills: 0, orphansDeleted: 0, survivorsChecked: 0, lost: 0, seconds: 0 };
  for (const k of ['loops', 'kills', 'orphansDeleted', 'survivorsChecked', 'lost', 'seconds']) sum[k] += f[k];
  sum.seeds++;
  byPair.set(f.pair, sum);
}
const rows = [...byPair.values()].sort((a, b) => (a.pair < b.pair ? -1 : 1));
const total = rows.reduce((t, r) => {
  for (const k of ['loops', 'kills', 'orphansDeleted', 'survivorsChecked', 'lost']) t[k] += r[k];
  return t;
}, { pair: 'total', loops: 0, kills: 0, orphansDeleted: 0, survivorsChecked: 0, lost: 0 });
console.log(`\n#### Crash loop: ${loops} loops × ${size} resources per pair, seeds ${firstSeed}–${firstSeed + seeds - 1} (load ${load1()}, ${fmt.s(seconds)} s)\n`);
console.log(
  table(
    ['pair (backend, state store)', 'seeds', 'loops', 'kills', 'orphans deleted', 'survivors checked', 'lost'],
    [...rows, total].map((r) => [r.pair, r.seeds ?? '', fmt.n(r.loops), fmt.n(r.kills), fmt.n(r.orphansDeleted), fmt.n(r.survivorsChecked), fmt.n(r.lost)]),
  ),
);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ machine, loops, size, seeds, firstSeed, full, seconds, pairs: rows, total }, null, 2)}\n`);
if (failed) {
  console.error('crash loop: a loop failed (see vitest\'s report above)');
  process.exit(1);
}
