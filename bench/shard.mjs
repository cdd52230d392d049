#!/usr/bin/env node
// bench/shard: `reaper audit --shard i/N` for N = 1, 2, 4 on the same data (all N processes
// at once, as an Indexed Job's pods would run), per backend: wall time of the slowest shard and
// resources per second over the whole type. Then the S3 requests of an audit that reads an
// S3 Inventory report (CSV and Parquet) beside one that lists, counted at the server by a proxy.
//
//   node bench/shard.mjs [--size 40000] [--reps 3] [--backends fs,s3,postgres]
//
// Needs `npm run build` first, PostgreSQL at REAPER_TEST_PG_URL, moto on PATH. The machine
// has 2 cores shared with other jobs: 4 shards cannot run 4 times faster here; the point is
// what scales (a backend that waits on I/O) and what does not (CPU in one process).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fmt, load1, log, machineInfo, median, PG, reaper, startMoto, table } from './lib/common.mjs';
import { startCountingProxy } from './lib/counting-proxy.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const size = Number(flag('--size', '40000'));
const reps = Number(flag('--reps', '3'));
const backends = flag('--backends', 'fs,s3,postgres').split(',');
const SHARDS = [1, 2, 4];
const work = mkdtempSync(path.join(tmpdir(), 'reaper-bench-shard-'));
const rows = [];

/** Split points cutting `keys` (ascending) into `ranges` equal-count ranges. */
const splitPoints = (keys, ranges) => Array.from({ length: ranges - 1 }, (_, k) => keys[Math.floor(((k + 1) * keys.length) / ranges) - 1]);

function manifest(dir, resource) {
  const file = path.join(dir, `reaper-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `version: 1\nstate: sqlite:${path.join(dir, 'state.db')}\ndefaults: { minAge: 0s, batchSize: 1000 }\nowners:\n  - static: [owner-0]\n${resource}`);
  return file;
}

/** N shards at once; the wall time is the slowest one's (they start together). */
async function sharded(file, n) {
  const start = process.hrtime.bigint();
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => reaper(['audit', '-c', file, '--output', 'json', ...(n > 1 ? ['--shard', `${i}/${n}`] : [])])));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const scanned = runs.reduce((sum, r) => sum + (r.json?.resources?.[0]?.scanned ?? NaN), 0);
  return { seconds, scanned, shardScanned: runs.map((r) => r.json?.resources?.[0]?.scanned) };
}

async function measure(backend, file) {
  for (const n of SHARDS) {
    const times = [];
    let last = null;
    const l1 = load1();
    for (let r = 0; r < reps; r++) {
      last = await sharded(file, n);
      if (last.scanned !== size) throw new Error(`${backend} with ${n} shards scanned ${last.scanned}, expected ${size}`);
      times.push(last.seconds);
    }
    const seconds = median(times);
    rows.push([backend, n, fmt.n(size), fmt.s(seconds), fmt.n(size / seconds), last.shardScanned.map((s) => fmt.n(s)).join(' / '), l1]);
    log(`${backend} ${n} shard(s): ${fmt.s(seconds)} s`);
  }
}

let moto = null;
try {
  const info = machineInfo();
  log(`machine: ${JSON.stringify(info)}`);

  if (backends.includes('fs')) {
    const dir = path.join(work, 'fs');
    const tops = 256;
    for (let i = 0; i < size; i++) {
      const top = path.join(dir, 'scratch', `owner-${i % tops}`);
      if (i < tops) mkdirSync(top, { recursive: true });
      writeFileSync(path.join(top, `f-${i}`), 'x');
    }
    await measure('fs', manifest(dir, `resources:\n  - name: scratch\n    fs: { path: ./scratch }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n`));
  }

  if (backends.includes('postgres')) {
    const { default: pg } = await import('pg');
    const db = `reaper_bench_shard_${process.pid}`;
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.query(`CREATE DATABASE ${db}`);
    const url = new URL(PG);
    url.pathname = `/${db}`;
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    await c.query(`CREATE TABLE items (id bigint PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO items SELECT g, 'owner-' || (g % 500), now() - interval '1 day' FROM generate_series(1, ${size}) g`);
    await c.end();
    const points = splitPoints(Array.from({ length: size }, (_, i) => i + 1), 8);
    const dir = path.join(work, 'pg');
    mkdirSync(dir);
    await measure(
      'postgres',
      manifest(dir, `connections:\n  db: { kind: postgres, url: "${url}" }\nresources:\n  - name: items\n    postgres: { connection: db, table: items, id: id, createdAt: created_at }\n    owner: { column: owner }\n    shard: { splitPoints: [${points.join(', ')}] }\n`),
    );
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
  }

  if (backends.includes('s3')) {
    moto = await startMoto({ seeded: true });
    if (!moto.seed) throw new Error('bench/shard needs the seeded moto (bench/lib/moto-seeded.py)');
    const bucket = 'bench-shard';
    await moto.seed({ bucket, size, prefix: 'tmp/', owners: 500 });
    const { S3Client, ListObjectsV2Command, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    const objects = [];
    let token;
    do {
      const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'tmp/', ContinuationToken: token }));
      objects.push(...(out.Contents ?? []));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    const keys = objects.map((o) => o.Key).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    // An inventory report of the same objects (as S3 writes one: gzip CSV, 1 file per 10,000 lines).
    const report = 'inventory/bench-shard/daily/';
    const files = [];
    for (let i = 0; i < objects.length; i += 10_000) {
      const lines = objects.slice(i, i + 10_000).map((o) => [bucket, encodeURIComponent(o.Key).replace(/%2F/g, '/'), String(o.Size), o.LastModified.toISOString(), o.ETag.replace(/"/g, '')].map((f) => `"${f}"`).join(','));
      const key = `${report}data/${i}.csv.gz`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: gzipSync(`${lines.join('\n')}\n`) }));
      files.push({ key });
    }
    const inventory = { sourceBucket: bucket, fileFormat: 'CSV', fileSchema: 'Bucket, Key, Size, LastModifiedDate, ETag', creationTimestamp: String(Date.now()), files };
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${report}2026-12-06T00-00Z/manifest.json`, Body: JSON.stringify(inventory) }));
    // The same report as Parquet (Snappy, as S3 writes it), under its own configuration's folder:
    // one file per 10,000 objects, row groups of 5,000.
    const { parquetWriteBuffer } = await import('hyparquet-writer');
    const parquetReport = 'inventory/bench-shard/parquet/';
    const parquetFiles = [];
    for (let i = 0; i < objects.length; i += 10_000) {
      const part = objects.slice(i, i + 10_000);
      const body = new Uint8Array(
        parquetWriteBuffer({
          rowGroupSize: 5_000,
          columnData: [
            { name: 'bucket', data: part.map(() => bucket), type: 'STRING' },
            { name: 'key', data: part.map((o) => o.Key), type: 'STRING' },
            { name: 'size', data: part.map((o) => BigInt(o.Size)), type: 'INT64' },
            { name: 'last_modified_date', data: part.map((o) => o.LastModified), type: 'TIMESTAMP' },
            { name: 'e_tag', data: part.map((o) => o.ETag.replace(/"/g, '')), type: 'STRING' },
          ],
        }),
      );
      const key = `${parquetReport}data/${i}.parquet`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      parquetFiles.push({ key, size: body.length });
    }
    const parquetSchema = 'message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); }';
    const parquetManifest = { sourceBucket: bucket, fileFormat: 'Parquet', fileSchema: parquetSchema, creationTimestamp: String(Date.now()), files: parquetFiles };
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${parquetReport}2026-12-06T00-00Z/manifest.json`, Body: JSON.stringify(parquetManifest) }));
    s3.destroy();

    const proxy = await startCountingProxy(moto.endpoint);
    const dir = path.join(work, 's3');
    mkdirSync(dir);
    const location = (extra) =>
      `connections:\n  blobs: { kind: s3, endpoint: "${proxy.url}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }\nresources:\n  - name: blobs\n    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/${extra} }\n    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }\n    shard: { splitPoints: [${splitPoints(keys, 8).join(', ')}] }\n`;
    await measure('s3', manifest(dir, location('')));

    const requests = [];
    for (const [what, extra] of [
      ['listing', ''],
      ['inventory report (CSV)', `, inventory: { prefix: ${report} }`],
      ['inventory report (Parquet)', `, inventory: { prefix: ${parquetReport} }`],
    ]) {
      for (const n of [1, 4]) {
        proxy.reset();
        const r = await sharded(manifest(dir, location(extra)), n);
        const counts = proxy.counts();
        requests.push([what, n, fmt.n(r.scanned), fmt.n(counts.byOp.ListObjectsV2 ?? 0), fmt.n(counts.byOp.GetObject ?? 0), fmt.n(counts.total), fmt.s(r.seconds)]);
      }
    }
    await proxy.close();
    console.log(`\nS3 requests of an audit of ${fmt.n(size)} objects (all shards together; counted at the server)\n`);
    console.log(table(['source', 'shards', 'scanned', 'ListObjectsV2', 'GetObject', 'all requests', 'wall s'], requests));
  }

  console.log(`\nAudit wall time by shard count (median of ${reps}; N processes at once; 2 cores shared with other jobs)\n`);
  console.log(table(['backend', 'shards', 'resources', 'wall s', 'resources/s', 'per shard', 'load1 before'], rows));
} finally {
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
}
