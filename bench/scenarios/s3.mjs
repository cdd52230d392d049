// S3 on moto: reaper's sweep beside `aws s3 rm --recursive` and `rclone delete --min-age`,
// in an unversioned and a versioned bucket, each tool on its own freshly filled bucket
// with the same keys. Every request goes through a counting proxy (bench/lib/counting-proxy.mjs)
// in front of moto, for every tool alike, so the requests per 1,000 objects deleted are
// counted at the server side, by operation.
//
// The objects: `size` one-byte keys tmp/owner-<i % 500>/obj-<i>, no owner alive. reaper
// marks in a first `reap --execute` (grace 1s), then the second run sweeps: that run is
// "sweep only". In a versioned bucket every tool leaves a delete marker per key (none
// removes versions), so all three do the same thing there too.
//
// reaper runs twice per bucket kind: with the default `deleteMode: auto` (the probe finds
// that moto ignores per-object ETags in DeleteObjects, so it deletes one key at a time with
// If-Match), and with `deleteMode: batch-if-match` (one DeleteObjects per 1,000 keys). moto
// does not enforce the ETag of a DeleteObjects entry, so the second row measures speed and
// request count only, not a conditional delete; on AWS S3 the same requests are conditional.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { child, ensureTools, fmt, load1, log, median, reaper, skipLine, sleep, startMoto, timed } from '../lib/common.mjs';
import { startCountingProxy } from '../lib/counting-proxy.mjs';

export const name = 's3';
const CREDS = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_DEFAULT_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

const BATCH_LABEL = 'reaper (deleteMode: batch-if-match — moto does not enforce the per-object ETag; speed and request count only)';

function manifest(dir, endpoint, bucket, deleteMode = null) {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 1s, grace: 1s, batchSize: 1000, maxDeletesPerRun: 100000000, maxDeleteFraction: 1 }
connections:
  blobs: { kind: s3, region: us-east-1, endpoint: "${endpoint}", forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
owners:
  - static: [live-owner]
resources:
  - name: objects
    s3: { connection: blobs, bucket: ${bucket}, prefix: "tmp/"${deleteMode ? `, deleteMode: ${deleteMode}` : ''} }
    owner: { keyPattern: "^tmp/(?<owner>[^/]+)/" }
`,
  );
  return file;
}

/** Current objects left under tmp/ (read from moto directly, not counted). */
async function remaining(endpoint, bucket) {
  let count = 0;
  let token = '';
  for (;;) {
    const r = await fetch(`${endpoint}/${bucket}?list-type=2&prefix=tmp/&max-keys=1000${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`);
    const xml = await r.text();
    count += Number(/<KeyCount>(\d+)<\/KeyCount>/.exec(xml)?.[1] ?? 0);
    const next = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(xml)?.[1];
    if (!next) return count;
    token = next.replaceAll('&amp;', '&');
  }
}

export async function run_({ quick, reps, work, sizeOverride }) {
  // Quick mode uses 400 objects: moto answers about 100 requests/s on 2 cores, and the
  // whole quick suite must stay under 5 minutes.
  const size = sizeOverride ?? (quick ? 400 : 10_000);
  const tools = ensureTools({ aws: 'awscli', rclone: 'rclone' });
  const skipped = [];
  if (!tools.aws) skipped.push(skipLine(name, 'aws s3 rm', 'the aws CLI is not on PATH'));
  if (!tools.rclone) skipped.push(skipLine(name, 'rclone', 'rclone is not on PATH and `apt-get install -y rclone` did not provide it'));
  const moto = await startMoto({ seeded: true });
  const proxy = await startCountingProxy(moto.endpoint);
  const notes = [];
  const fill = async (bucket, versioned) => {
    if (moto.seed) await moto.seed({ bucket, size, versioned });
    else {
      await child('s3-fill.mjs', { endpoint: moto.endpoint, bucket, size, versioned });
    }
    await sleep(1200); // older than minAge / --min-age 1s
  };
  if (!moto.seed) notes.push('moto was started as moto_server and filled with PutObject requests (the seeding helper was not available)');
  const env = { ...process.env, ...CREDS };
  const rcloneEnv = {
    ...env,
    RCLONE_CONFIG: '/dev/null',
    RCLONE_CONFIG_MOTO_TYPE: 's3',
    RCLONE_CONFIG_MOTO_PROVIDER: 'Other',
    RCLONE_CONFIG_MOTO_ENDPOINT: proxy.url,
    RCLONE_CONFIG_MOTO_ACCESS_KEY_ID: 'testing',
    RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY: 'testing',
    RCLONE_CONFIG_MOTO_REGION: 'us-east-1',
    RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE: 'true',
  };
  // rclone's S3 SDK refuses to start with a custom CA bundle set (it only talks plain HTTP to loopback here).
  delete rcloneEnv.AWS_CA_BUNDLE;
  const results = {};
  let serial = 0;
  try {
    for (const versioned of [false, true]) {
      const kind = versioned ? 'versioned' : 'unversioned';
      const r = (results[kind] = { mark: [], sweep: [], markSweep: [], batchSweep: [], batchMarkSweep: [], aws: [], rclone: [] });
      const order = ['reaper', 'reaper-batch', 'aws', 'rclone'].filter((t) => t.startsWith('reaper') || tools[t]);
      for (let i = 0; i < reps; i++) {
        const rotated = [...order.slice(i % order.length), ...order.slice(0, i % order.length)];
        for (const tool of rotated) {
          const bucket = `rb-${kind.slice(0, 3)}-${tool}-${process.pid}-${serial++}`;
          await fill(bucket, versioned);
          if (tool === 'reaper' || tool === 'reaper-batch') {
            const batch = tool === 'reaper-batch';
            const dir = path.join(work, bucket);
            mkdirSync(dir, { recursive: true });
            const m = manifest(dir, proxy.url, bucket, batch ? 'batch-if-match' : null);
            proxy.reset();
            const l = load1();
            const marked = await reaper(['reap', '-c', m, '--execute', '--output', 'json'], { env });
            const markCounts = proxy.counts();
            if (marked.json?.outcomes?.marked !== size) throw new Error(`reaper marked ${marked.json?.outcomes?.marked} of ${size}: ${marked.stderr.slice(-800)}`);
            await sleep(1500);
            proxy.reset();
            const l2 = load1();
            // BENCH_SWEEP_ONLY=1: the sweep run skips the scan (reap --sweep-only).
            const sweepOnly = process.env.BENCH_SWEEP_ONLY === '1' ? ['--sweep-only'] : [];
            const swept = await reaper(['reap', '-c', m, '--execute', ...sweepOnly, '--output', 'json'], { env });
            const sweepCounts = proxy.counts();
            if (swept.json?.outcomes?.deleted !== size) throw new Error(`reaper deleted ${swept.json?.outcomes?.deleted} of ${size}: ${swept.stderr.slice(-800)}`);
            const left = await remaining(moto.endpoint, bucket);
            const deleteMode = swept.json?.resources?.[0]?.deleteMode ?? null;
            if (!batch) r.mark.push({ seconds: marked.seconds, rss: marked.maxRssKiB, load: l, counts: markCounts, left });
            (batch ? r.batchSweep : r.sweep).push({ seconds: swept.seconds, rss: swept.maxRssKiB, load: l2, counts: sweepCounts, left, deleteMode });
            (batch ? r.batchMarkSweep : r.markSweep).push({
              seconds: marked.seconds + swept.seconds,
              rss: Math.max(marked.maxRssKiB ?? 0, swept.maxRssKiB ?? 0) || null,
              load: l,
              counts: { total: markCounts.total + sweepCounts.total, byOp: mergeOps(markCounts.byOp, sweepCounts.byOp) },
              left,
            });
            rmSync(dir, { recursive: true, force: true });
            log(`  ${kind} rep ${i + 1} ${tool} (${deleteMode}): mark ${marked.seconds.toFixed(1)} s / ${markCounts.total} req, sweep ${swept.seconds.toFixed(1)} s / ${sweepCounts.total} req, ${left} left (load ${l2})`);
          } else {
            proxy.reset();
            const l = load1();
            const t =
              tool === 'aws'
                ? await timed(tools.aws, ['s3', 'rm', '--recursive', '--only-show-errors', '--endpoint-url', proxy.url, `s3://${bucket}/tmp/`], { env })
                : await timed(tools.rclone, ['delete', '--min-age', '1s', `moto:${bucket}/tmp/`], { env: rcloneEnv });
            const counts = proxy.counts();
            const left = await remaining(moto.endpoint, bucket);
            r[tool].push({ seconds: t.seconds, rss: t.maxRssKiB, load: l, counts, left });
            log(`  ${kind} rep ${i + 1} ${tool}: ${t.seconds.toFixed(1)} s / ${counts.total} req, ${left} left (load ${l})`);
          }
        }
      }
    }
  } finally {
    await proxy.close();
    await moto.stop();
  }

  const tables = [];
  const ratios = {};
  const targets = [];
  const per1000 = (list) => median(list.map((x) => (x.counts.total / size) * 1000));
  const opsText = (list) => {
    const ops = {};
    for (const x of list) for (const [op, n] of Object.entries(x.counts.byOp)) (ops[op] ??= []).push(n);
    return Object.entries(ops)
      .map(([op, ns]) => [op, median(ns)])
      .sort((a, b) => b[1] - a[1])
      .map(([op, n]) => `${op} ${fmt.n(n)}`)
      .join(', ');
  };
  for (const [kind, r] of Object.entries(results)) {
    const med = (list) => median(list.map((x) => x.seconds));
    const head = ['tool', 'what', 'median s', 'objects/s', 'speed vs aws s3 rm', 'speed vs rclone', 'requests / 1,000 objects', 'requests by operation (median per run)', 'runs (s)', 'load avg', 'left'];
    const aws = r.aws.length ? med(r.aws) : null;
    const rcl = r.rclone.length ? med(r.rclone) : null;
    const row = (tool, what, list) => {
      const s = med(list);
      return [
        tool,
        what,
        fmt.s(s),
        fmt.n(size / s),
        aws ? fmt.x(aws / s) : '—',
        rcl ? fmt.x(rcl / s) : '—',
        fmt.f(per1000(list), 1),
        opsText(list),
        list.map((x) => x.seconds.toFixed(1)).join(' / '),
        list.map((x) => x.load).join(' / '),
        String(list[0].left),
      ];
    };
    const rows = [row('reaper (2nd run)', 'sweep only', r.sweep), row('reaper (1st run)', 'mark only', r.mark), row('reaper, both runs', 'mark+sweep', r.markSweep)];
    const batchMode = r.batchSweep[0]?.deleteMode;
    rows.push(row(`${BATCH_LABEL}, 2nd run`, `sweep only (${batchMode})`, r.batchSweep), row(`${BATCH_LABEL}, both runs`, 'mark+sweep', r.batchMarkSweep));
    if (r.aws.length) rows.push(row('aws s3 rm --recursive', 'delete', r.aws));
    if (r.rclone.length) rows.push(row('rclone delete --min-age 1s', 'delete', r.rclone));
    const mode = r.sweep[0]?.deleteMode;
    tables.push({ title: `S3 (moto), ${kind} bucket, ${size.toLocaleString('en-US')} objects; reaper delete mode: ${mode} (auto), ${batchMode} (batch-if-match)`, head, rows });

    // What the same sweep would send where DeleteObjects enforces per-object ETags (the
    // s3-batch-if-match mode): the measured requests, with the per-object DeleteObject
    // calls replaced by one DeleteObjects per 1,000 keys. A projection, not a measurement.
    const sweepOps = r.sweep[0].counts.byOp;
    const projected = r.sweep.length && !versionedKind(kind) ? median(r.sweep.map((x) => ((x.counts.total - size + Math.ceil(size / 1000)) / size) * 1000)) : null;
    const sweepSpeedAws = aws ? aws / med(r.sweep) : null;
    const sweepSpeedRclone = rcl ? rcl / med(r.sweep) : null;
    ratios[`${kind}: sweep only vs aws s3 rm (speed)`] = sweepSpeedAws;
    ratios[`${kind}: sweep only vs rclone (speed)`] = sweepSpeedRclone;
    ratios[`${kind}: mark+sweep vs aws s3 rm (speed)`] = aws ? aws / med(r.markSweep) : null;
    ratios[`${kind}: sweep only, deleteMode batch-if-match (ETag not enforced by moto) vs aws s3 rm (speed)`] = aws ? aws / med(r.batchSweep) : null;
    ratios[`${kind}: sweep only, deleteMode batch-if-match (ETag not enforced by moto) vs auto (speed)`] = med(r.sweep) / med(r.batchSweep);
    targets.push({ target: `S3 ${kind}: sweep ≥ 8× aws s3 rm`, value: fmt.x(sweepSpeedAws), met: sweepSpeedAws === null ? null : sweepSpeedAws >= 8 });
    targets.push({ target: `S3 ${kind}: sweep ≥ 8× rclone`, value: fmt.x(sweepSpeedRclone), met: sweepSpeedRclone === null ? null : sweepSpeedRclone >= 8 });
    targets.push({ target: `S3 ${kind}: ≤ 2.1 requests per 1,000 objects (sweep run)`, value: fmt.f(per1000(r.sweep), 1), met: per1000(r.sweep) <= 2.1 });
    if (projected !== null) {
      notes.push(
        `${kind}: reaper's sweep sent ${Object.entries(sweepOps).map(([k, v]) => `${k} ${v}`).join(', ')} for ${size} objects; on an endpoint that enforces per-object ETags in DeleteObjects it would send one DeleteObjects per 1,000 keys instead of one DeleteObject per key: ${projected.toFixed(1)} requests per 1,000 objects (projection from the measured breakdown; the deleteMode: batch-if-match row sends such batches to moto, which does not check their ETags)`,
      );
      results[kind].projectedPer1000 = projected;
    }
  }
  return { name, size, tables, ratios: Object.fromEntries(Object.entries(ratios).filter(([, v]) => v !== null)), targets, notes, skipped, raw: results };
}

const versionedKind = (kind) => kind === 'versioned';

function mergeOps(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export { run_ as run };
