// Startup: `reaper --help` beside `node -e 0` (the floor: Node itself), with hyperfine
// when it is installed (warm-up 3, no shell), else a loop of 20 runs of each; medians.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ensureTools, fmt, load1, log, median, reaperBin, run, skipLine } from '../lib/common.mjs';

export const name = 'startup';

export async function run_({ quick, work }) {
  const runs = quick ? 10 : 20;
  const tools = ensureTools({ hyperfine: 'hyperfine' });
  const skipped = [];
  const commands = [
    ['reaper --help', process.execPath, [reaperBin, '--help']],
    ['node -e 0', process.execPath, ['-e', '0']],
  ];
  const measured = {};
  const l = load1();
  if (tools.hyperfine) {
    const out = path.join(work, 'hyperfine.json');
    await run(tools.hyperfine, ['-N', '--warmup', '3', '--runs', String(runs), '--export-json', out, ...commands.map(([, cmd, argv]) => [cmd, ...argv].join(' '))]);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    json.results.forEach((r, i) => (measured[commands[i][0]] = { median: r.median, mean: r.mean, stddev: r.stddev, min: r.min, max: r.max, runs: r.times.length }));
    rmSync(out, { force: true });
  } else {
    skipped.push(skipLine(name, 'hyperfine', 'hyperfine is not installed; timing a loop of runs instead'));
    for (const [label, cmd, argv] of commands) {
      const times = [];
      for (let i = 0; i < 3; i++) await run(cmd, argv);
      for (let i = 0; i < runs; i++) times.push((await run(cmd, argv)).seconds);
      measured[label] = { median: median(times), min: Math.min(...times), max: Math.max(...times), runs: times.length };
    }
  }
  const ratio = measured['reaper --help'].median / measured['node -e 0'].median;
  log(`  reaper --help ${(measured['reaper --help'].median * 1000).toFixed(0)} ms, node -e 0 ${(measured['node -e 0'].median * 1000).toFixed(0)} ms (load ${l})`);
  const head = ['command', 'median ms', 'min ms', 'max ms', 'runs', 'vs node -e 0', 'load avg', 'timed with'];
  const rows = Object.entries(measured).map(([label, m]) => [
    label,
    fmt.ms(m.median * 1000),
    fmt.ms(m.min * 1000),
    fmt.ms(m.max * 1000),
    String(m.runs),
    fmt.x(m.median / measured['node -e 0'].median),
    String(l),
    tools.hyperfine ? 'hyperfine -N --warmup 3' : 'loop',
  ]);
  return {
    name,
    tables: [{ title: 'Startup', head, rows }],
    ratios: { 'reaper --help vs node -e 0 (time)': ratio },
    targets: [{ target: '`reaper --help` ≤ 1.5× `node -e 0`', value: fmt.x(ratio), met: ratio <= 1.5 }],
    skipped,
    raw: measured,
  };
}

export { run_ as run };
