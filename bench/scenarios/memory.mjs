// Memory: peak RSS of `reaper audit` (the CLI, under GNU time) at two sizes, on PostgreSQL
// rows (half of them orphans) and on files (all orphans; full mode only), to see whether
// a scan's memory grows with what it scans. Each audit is its own process.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { child, fmt, load1, log, median, PG, reaper, run } from '../lib/common.mjs';

export const name = 'memory';
const withDb = (url, db) => Object.assign(new URL(url), { pathname: `/${db}` }).toString();

function manifest(dir, resource, extra = '') {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(file, `version: 1\nstate: sqlite:${path.join(dir, 'state.db')}\ndefaults: { minAge: 1m, batchSize: 1000 }\n${extra}resources:\n${resource}`);
  return file;
}

async function audits(file, reps, expected) {
  const out = [];
  for (let i = 0; i < reps; i++) {
    const l = load1();
    const r = await reaper(['audit', '-c', file, '--output', 'json']);
    if (r.json?.summary?.scanned !== expected) throw new Error(`audit scanned ${r.json?.summary?.scanned}, expected ${expected}: ${r.stderr.slice(-500)}`);
    out.push({ seconds: r.seconds, rssKiB: r.maxRssKiB, load: l });
  }
  return out;
}

export async function run_({ quick, reps, work }) {
  const sizes = quick ? [10_000, 100_000] : [10_000, 1_000_000];
  const results = [];
  for (const size of sizes) {
    // PostgreSQL rows.
    const db = `reaper_bench_mem_${process.pid}_${size}`;
    const dir = path.join(work, db);
    mkdirSync(dir, { recursive: true });
    const url = withDb(PG, db);
    try {
      await run('psql', [PG, '-qAtc', `CREATE DATABASE ${db}`]);
      await run('psql', [
        url,
        '-v',
        'ON_ERROR_STOP=1',
        '-qAtc',
        `CREATE TABLE live_owners (id text PRIMARY KEY);
         INSERT INTO live_owners SELECT 'owner-' || g FROM generate_series(0, 998, 2) g;
         CREATE TABLE bench_rows (id bigint PRIMARY KEY, owner text NOT NULL, created_at timestamptz NOT NULL, payload text);
         INSERT INTO bench_rows SELECT g, 'owner-' || (g % 1000), now() - interval '1 day', md5(g::text) FROM generate_series(1, ${size}) g;
         ANALYZE;`,
      ]);
      const file = manifest(
        dir,
        `  - name: rows\n    postgres: { connection: db, table: bench_rows, id: id, createdAt: created_at }\n    owner: { column: owner }\n`,
        `connections:\n  db: { kind: postgres, url: "${url}" }\nowners:\n  - sql: { connection: db, query: "SELECT id FROM live_owners" }\n`,
      );
      const runs = await audits(file, reps, size);
      results.push({ backend: 'postgres rows', size, runs });
      log(`  postgres ${size}: peak RSS ${runs.map((r) => Math.round(r.rssKiB / 1024)).join(' / ')} MiB, ${runs.map((r) => r.seconds.toFixed(1)).join(' / ')} s`);
    } finally {
      await run('psql', [PG, '-qAtc', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    }
    // Files (full mode only: filling and scanning them does not fit the quick budget).
    if (quick) continue;
    const fdir = path.join(work, `mem-files-${size}`);
    const root = path.join(fdir, 'data');
    try {
      await child('fs-fill.mjs', { root, size, perDir: 1000 });
      const file = manifest(fdir, `  - name: files\n    fs: { path: ${JSON.stringify(root)} }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n`, 'owners:\n  - static: [live-0]\n');
      const runs = await audits(file, reps, size);
      results.push({ backend: 'files', size, runs });
      log(`  files ${size}: peak RSS ${runs.map((r) => Math.round(r.rssKiB / 1024)).join(' / ')} MiB, ${runs.map((r) => r.seconds.toFixed(1)).join(' / ')} s`);
    } finally {
      rmSync(fdir, { recursive: true, force: true });
    }
  }
  const head = ['backend', 'resources scanned', 'peak RSS MiB (median)', 'per-run MiB', 'audit s (median)', 'load avg'];
  const mib = (r) => median(r.runs.map((x) => x.rssKiB)) / 1024;
  const rows = results.map((r) => [r.backend, fmt.n(r.size), fmt.f(mib(r), 1), r.runs.map((x) => (x.rssKiB / 1024).toFixed(0)).join(' / '), fmt.s(median(r.runs.map((x) => x.seconds))), r.runs.map((x) => x.load).join(' / ')]);
  const targets = [];
  for (const backend of ['postgres rows', 'files']) {
    const [small, big] = results.filter((r) => r.backend === backend).sort((a, b) => a.size - b.size);
    if (!big) continue;
    const growthMB = ((mib(big) - mib(small)) * 1024 * 1024) / 1e6;
    targets.push({ target: `RSS grows ≤ 50 MB from ${fmt.n(small.size)} to ${fmt.n(big.size)} (${backend})`, value: `${fmt.f(growthMB, 1)} MB`, met: sizes[1] >= 1_000_000 ? growthMB <= 50 : null });
  }
  return { name, tables: [{ title: 'Memory: peak RSS of `reaper audit` (GNU time %M)', head, rows }], ratios: {}, targets, skipped: [], raw: results };
}

export { run_ as run };
