#!/usr/bin/env node
// bench/scan: reaper audit throughput (resources/s) and peak RSS per backend at two sizes,
// beside a baseline on the same data: `find` for files, a bare ListObjectsV2 loop for S3,
// `SELECT count(*)` for PostgreSQL and MariaDB. Each measurement runs in a fresh child
// process so peak RSS is its own.
//
//   node bench/scan.mjs [--quick] [--sizes 10000,100000] [--backends fs,s3,postgres,mysql]
//
// Needs `npm run build` first. PostgreSQL/MariaDB at the test URLs (REAPER_TEST_PG_URL,
// REAPER_TEST_MYSQL_URL), moto_server on PATH for S3.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const quick = args.includes('--quick');
const sizes = flag('--sizes', quick ? '2000,20000' : '10000,100000').split(',').map(Number);
const backends = flag('--backends', 'fs,s3,postgres,mysql').split(',');
const PG = process.env.REAPER_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MY = process.env.REAPER_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

const work = mkdtempSync(path.join(tmpdir(), 'reaper-bench-scan-'));
const results = [];

function child(script, payload) {
  const out = execFileSync(process.execPath, [path.join(here, 'lib', script), JSON.stringify(payload)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out.trim().split('\n').pop());
}

function timeCommand(cmd, argv, options = {}) {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 256 << 20, ...options });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, stdout: r.stdout };
}

function manifestFor(dir, resource) {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(file, `version: 1\nstate: sqlite:${path.join(dir, 'state.db')}\ndefaults: { minAge: 0s, batchSize: 1000 }\n${resource}`);
  return file;
}

function record(backend, size, audit, baselineName, baseline) {
  results.push({
    backend,
    size,
    scanned: audit.scanned,
    reaperPerSec: Math.round(audit.scanned / audit.seconds),
    reaperSeconds: audit.seconds,
    peakRssMiB: Math.round(audit.maxRssKiB / 1024),
    baseline: baselineName,
    baselineSeconds: baseline.seconds,
    baselinePerSec: Math.round(size / baseline.seconds),
    baselineRssMiB: baseline.maxRssKiB ? Math.round(baseline.maxRssKiB / 1024) : null,
  });
  console.error(`  ${backend} ${size}: reaper ${audit.seconds.toFixed(2)}s (${audit.scanned} scanned, ${Math.round(audit.maxRssKiB / 1024)} MiB), ${baselineName} ${baseline.seconds.toFixed(2)}s`);
}

// ------------------------------------------------------------------ files
async function benchFs(size) {
  const dir = path.join(work, `fs-${size}`);
  const root = path.join(dir, 'data');
  const old = new Date(Date.now() - 86_400_000);
  for (let i = 0; i < size; i++) {
    const owner = `owner-${Math.floor(i / 1000)}`;
    const sub = path.join(root, owner);
    if (i % 1000 === 0) mkdirSync(sub, { recursive: true });
    const file = path.join(sub, `f-${i}.part`);
    writeFileSync(file, 'x');
    utimesSync(file, old, old);
  }
  const manifest = manifestFor(dir, `resources:\n  - name: files\n    fs: { path: ./data }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n`);
  const audit = child('audit-child.mjs', { manifest });
  const find = timeCommand('bash', ['-c', `find '${root}' -type f -mmin +60 | wc -l`]);
  record('fs', size, audit, 'find -mmin', find);
  rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------ S3 (moto)
function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function withMoto(fn) {
  const port = await freePort();
  const moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(endpoint);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn(endpoint);
  } finally {
    moto.kill();
  }
}

async function benchS3(size, endpoint) {
  const bucket = `bench-${size}`;
  child('s3-fill.mjs', { endpoint, bucket, size });
  const dir = path.join(work, `s3-${size}`);
  mkdirSync(dir, { recursive: true });
  const manifest = manifestFor(
    dir,
    `connections:\n  blobs: { kind: s3, region: us-east-1, endpoint: "${endpoint}", forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }\nresources:\n  - name: objects\n    s3: { connection: blobs, bucket: ${bucket}, prefix: "tmp/" }\n    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }\n`,
  );
  const audit = child('audit-child.mjs', { manifest });
  const list = child('s3-list.mjs', { endpoint, bucket, prefix: 'tmp/' });
  record('s3', size, audit, 'ListObjectsV2 loop', list);
}

// ------------------------------------------------------------------ SQL
async function benchSql(kind, size) {
  const filled = child('sql-fill.mjs', { kind, url: kind === 'postgres' ? PG : MY, size });
  const dir = path.join(work, `${kind}-${size}`);
  mkdirSync(dir, { recursive: true });
  const manifest = manifestFor(
    dir,
    `connections:\n  db: { kind: ${kind}, url: "${filled.url}" }\nresources:\n  - name: rows\n    ${kind}: { connection: db, table: bench_rows, id: id, createdAt: created_at }\n    owner: { column: owner }\n`,
  );
  try {
    const audit = child('audit-child.mjs', { manifest });
    const count = child('sql-count.mjs', { kind, url: filled.url });
    record(kind, size, audit, 'SELECT count(*)', count);
  } finally {
    child('sql-drop.mjs', { kind, url: kind === 'postgres' ? PG : MY, database: filled.database });
  }
}

console.error(`bench/scan: sizes ${sizes.join(', ')}; backends ${backends.join(', ')}`);
try {
  for (const size of sizes) if (backends.includes('fs')) await benchFs(size);
  if (backends.includes('s3')) await withMoto(async (endpoint) => {
    for (const size of sizes) await benchS3(size, endpoint);
  });
  for (const kind of ['postgres', 'mysql']) {
    if (!backends.includes(kind)) continue;
    for (const size of sizes) await benchSql(kind, size);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const head = ['backend', 'resources', 'reaper res/s', 'reaper s', 'peak RSS MiB', 'baseline', 'baseline s', 'baseline res/s', 'reaper/baseline time'];
const rows = results.map((r) => [r.backend, r.size, r.reaperPerSec, r.reaperSeconds.toFixed(2), r.peakRssMiB, r.baseline, r.baselineSeconds.toFixed(3), r.baselinePerSec, (r.reaperSeconds / r.baselineSeconds).toFixed(1) + '×']);
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) => '| ' + cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
console.log(line(head));
console.log('| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |');
for (const r of rows) console.log(line(r));
for (const backend of new Set(results.map((r) => r.backend))) {
  const rs = results.filter((r) => r.backend === backend).sort((a, b) => a.size - b.size);
  if (rs.length >= 2) console.log(`${backend}: peak RSS ${rs[0].peakRssMiB} MiB at ${rs[0].size} → ${rs.at(-1).peakRssMiB} MiB at ${rs.at(-1).size} (growth ${rs.at(-1).peakRssMiB - rs[0].peakRssMiB} MiB)`);
}
