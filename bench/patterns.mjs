#!/usr/bin/env node
// bench/patterns: what the linear-time pattern engine (re2js, src/manifest/pattern.ts) costs
// against JavaScript's backtracking RegExp, per match and on a whole files audit.
//
//   node bench/patterns.mjs [--paths 100000] [--files 100000] [--reps 3]
//
// 1. Owner patterns of the README, the examples and the demo, each matched on `--paths`
//    realistic paths and S3 keys, by RegExp (flag u, as before) and by re2js: median of
//    `--reps` runs, after a warm-up.
// 2. `reaper audit` (in-process, from dist/) of a tree of `--files` files with a
//    pathPattern owner and a pathPattern protect rule: the pattern share is the per-match
//    cost measured in 1, times the two matches per file, over the audit's wall time.
// Needs `npm run build` first. `--files 0` skips the audit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load1 } from './lib/common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const PATHS = flag('--paths', 100_000);
const FILES = flag('--files', 100_000);
const REPS = flag('--reps', 3);

const { matchOwner, matchesPattern } = await import('../dist/manifest/pattern.js');

const hex = (i, n) => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0').slice(0, n);
const files = Array.from({ length: PATHS }, (_, i) => `sess-${hex(i % 977, 6)}/dir${i % 13}/file-${i}.part`);
const keys = Array.from({ length: PATHS }, (_, i) => `tmp/${hex(i % 4093, 8)}-${hex(i, 4)}/upload-${i}.bin`);
const cases = [
  { pattern: '^(?<owner>[^/]+)/', texts: files, where: 'README, examples: pathPattern' },
  { pattern: '^tmp/(?<owner>[^/]+)/', texts: keys, where: 'README, examples: keyPattern' },
  { pattern: '^thumbs/(?<owner>[^/.]+)', texts: keys, where: 'examples: keyPattern (no match)' },
  { pattern: '^(?<owner>[a-z]+)-', texts: files, where: 'demo: pathPattern' },
  { pattern: '(^|/)keep-[^/]*$', texts: files, where: 'tests: protect pathPattern (test)', protect: true },
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(fn) {
  fn(); // warm-up
  const runs = [];
  for (let r = 0; r < REPS; r++) {
    const start = process.hrtime.bigint();
    fn();
    runs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(runs);
}

console.log(`patterns: ${PATHS.toLocaleString('en')} texts per pattern, median of ${REPS}, load ${load1()}`);
console.log('| pattern | used in | RegExp ms | re2js ms | re2js µs/match | ratio |');
console.log('| --- | --- | ---: | ---: | ---: | ---: |');
const rows = [];
for (const c of cases) {
  const js = new RegExp(c.pattern, 'u');
  let a = 0;
  let b = 0;
  const native = time(() => {
    a = 0;
    for (const t of c.texts) if (c.protect ? js.test(t) : js.exec(t)?.groups?.owner !== undefined) a++;
  });
  const linear = time(() => {
    b = 0;
    for (const t of c.texts) if (c.protect ? matchesPattern(c.pattern, t) === true : typeof matchOwner(c.pattern, t) === 'string') b++;
  });
  if (a !== b) throw new Error(`${c.pattern}: RegExp matched ${a}, re2js ${b}`);
  rows.push({ ...c, native, linear });
  console.log(`| \`${c.pattern}\` | ${c.where} | ${native.toFixed(0)} | ${linear.toFixed(0)} | ${((linear * 1000) / PATHS).toFixed(2)} | ${(linear / native).toFixed(1)}× |`);
}

if (FILES > 0) {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-bench-patterns-'));
  try {
    execFileSync(process.execPath, [path.join(here, 'lib', 'fs-fill.mjs'), JSON.stringify({ root: path.join(dir, 'scratch'), size: FILES })]);
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      `version: 1\nstate: sqlite:${path.join(dir, 'state.db')}\ndefaults: { minAge: 0s, batchSize: 1000 }\nresources:\n  - name: scratch\n    fs: { path: ./scratch }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n    protect: [{ pathPattern: "(^|/)keep-[^/]*$" }]\n`,
    );
    const audits = [];
    for (let r = 0; r < REPS; r++) {
      audits.push(JSON.parse(execFileSync(process.execPath, [path.join(here, 'lib', 'audit-child.mjs'), JSON.stringify({ manifest })], { encoding: 'utf8' }).trim().split('\n').pop()));
    }
    const seconds = median(audits.map((x) => x.seconds));
    const perFile = (rows[0].linear + rows[4].linear) / PATHS / 1000; // seconds per file: one owner match, one protect match
    const perFileNative = (rows[0].native + rows[4].native) / PATHS / 1000;
    console.log(
      `\naudit of ${audits[0].scanned.toLocaleString('en')} files (pathPattern owner + protect): ${seconds.toFixed(2)} s median of ${REPS}, load ${load1()}; ` +
        `pattern matching with re2js ≈ ${(perFile * audits[0].scanned).toFixed(2)} s of it (${((100 * perFile * audits[0].scanned) / seconds).toFixed(0)}%), ` +
        `with RegExp it would be ≈ ${(perFileNative * audits[0].scanned).toFixed(2)} s`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
