#!/usr/bin/env node
// bench/report: page weight and render time of the HTML report for a large audit.
//
//   node bench/report.mjs [--findings 100000] [--reps 3]
//
// 1. Writes an audit of `--findings` non-live findings over 20 types: its JSON document
//    (the default 1,000 findings listed) and its --findings NDJSON file.
// 2. `reaper report a.json f.ndjson` (the built binary): wall time, median of `--reps`.
// 3. The page in Debian's Chromium (playwright-core, the test flags): from navigation start
//    to the load event and to the first table rows, median of `--reps`; then one search
//    keystroke and one sort over the table's rows, timed inside the page.
// Needs `npm run build` and /usr/bin/chromium (or REAPER_TEST_CHROMIUM).
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { load1 } from './lib/common.mjs';

/* global document */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const N = flag('--findings', 100_000);
const REPS = flag('--reps', 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const { TelemetryAccumulator } = await import(pathToFileURL(path.join(root, 'dist/report/telemetry.js')).href);

const dir = mkdtempSync(path.join(tmpdir(), 'reaper-bench-report-'));
try {
  // 1. The audit: a mix of statuses, ages up to 120 days, owners from a pool of 5,000.
  const statuses = ['orphaned', 'orphaned', 'orphaned', 'expired', 'unknown', 'protected', 'young'];
  const accs = new Map();
  const listed = [];
  const ndjson = createWriteStream(path.join(dir, 'f.ndjson'));
  for (let i = 0; i < N; i++) {
    const status = statuses[i % statuses.length];
    const f = {
      resource: `type-${i % 20}`,
      backend: 'fs',
      id: `tenant-${i % 97}/session-${(i * 7919) % 5000}/upload-${i}.part`,
      status,
      reason: status === 'orphaned' ? 'owner-dead' : status === 'expired' ? 'ttl' : null,
      owner: `session:${(i * 7919) % 5000}`,
      ageSeconds: (i * 3613) % (120 * 86400),
      bytes: 1000 + (i % 100000),
    };
    if (!ndjson.write(`${JSON.stringify(f)}\n`)) await new Promise((r) => ndjson.once('drain', r));
    if (listed.length < 1000) listed.push(f);
    let acc = accs.get(f.resource);
    if (!acc) accs.set(f.resource, (acc = new TelemetryAccumulator(f.resource, 'fs', `/data/${f.resource}`)));
    acc.add({ ...f, fingerprint: '', beyondTtlSeconds: null });
  }
  await new Promise((r) => ndjson.end(r));
  const doc = {
    version: 1, kind: 'audit', reaper: 'bench', runId: 'bench', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), durationSeconds: 1,
    manifest: 'bench.yaml', state: 'sqlite:bench.db', complete: true, summary: {},
    resources: [...accs.values()].map((a) => a.result({ count: 0, oldestAgeSeconds: null })),
    leases: { active: 0, expired: 0, renewals: 0, renewalFailures: 0, renewalFailureRate: 0, windowSeconds: 3600 },
    sources: {}, sourceErrors: {}, findings: listed, findingsTotal: N, findingsTruncated: true,
  };
  writeFileSync(path.join(dir, 'a.json'), JSON.stringify(doc));
  const ndjsonMiB = statSync(path.join(dir, 'f.ndjson')).size / 2 ** 20;

  // 2. reaper report.
  const times = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    execFileSync(process.execPath, [path.join(root, 'bin/reaper'), 'report', 'a.json', 'f.ndjson', '--out', 'r.html'], { cwd: dir, stdio: 'ignore' });
    times.push(performance.now() - t0);
  }
  const html = path.join(dir, 'r.html');
  const bytes = statSync(html).size;
  console.log(`findings: ${N.toLocaleString('en-US')} (NDJSON ${ndjsonMiB.toFixed(1)} MiB); load ${load1()}`);
  console.log(`reaper report: median ${(median(times) / 1000).toFixed(2)} s of ${REPS} (${times.map((t) => (t / 1000).toFixed(2)).join(', ')})`);
  console.log(`page weight: ${(bytes / 1024).toFixed(0)} KiB (${bytes.toLocaleString('en-US')} bytes)`);

  // 3. Chromium.
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(tmpdir(), 'reaper-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.REAPER_TEST_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  try {
    const load = [];
    const table = [];
    let interaction = null;
    for (let r = 0; r < REPS; r++) {
      const page = await context.newPage();
      await page.goto(pathToFileURL(html).href);
      await page.waitForSelector('#findings tbody tr');
      const t = await page.evaluate(() => ({ load: performance.getEntriesByType('navigation')[0].loadEventEnd, table: performance.now() }));
      load.push(t.load);
      table.push(t.table);
      if (r === REPS - 1) {
        interaction = await page.evaluate(() => {
          const input = document.querySelector('#findings input[name="q"]');
          const t0 = performance.now();
          input.value = 'session-42';
          input.dispatchEvent(new Event('input', { bubbles: true }));
          const search = performance.now() - t0;
          input.value = '';
          input.dispatchEvent(new Event('input', { bubbles: true }));
          const t1 = performance.now();
          document.querySelector('#findings th[data-sort="owner"] button').click();
          return { search, sort: performance.now() - t1, rows: document.querySelectorAll('#findings tbody tr').length };
        });
      }
      await page.close();
    }
    console.log(`Chromium: load event median ${median(load).toFixed(0)} ms (${load.map((x) => x.toFixed(0)).join(', ')}); first table rows ${median(table).toFixed(0)} ms (${table.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`in the page: one search keystroke ${interaction.search.toFixed(1)} ms, one sort ${interaction.sort.toFixed(1)} ms (over the table's rows; ${interaction.rows} shown per page); load ${load1()}`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
