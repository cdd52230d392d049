#!/usr/bin/env node
// bench/soak: one reaper lease daemon heartbeating 10,000 leases for 10 minutes, with a
// service beside it keeping 100 more leases alive through the daemon's HTTP API
// (LeaseKeeper + HttpLeaseClient). Every 10 s the daemon process's resident set size and
// open file descriptors are read from /proc/PID (status, fd/), and its /metrics for the
// leases held and renewals made. Prints the series and min / max / growth per store.
//
//   node bench/soak.mjs [--minutes 10] [--keys 10000] [--ttl 15] [--store sqlite,postgres]
//                       [--sample 10] [--http-leases 100] [--json FILE]
//
// Needs `npm run build` first; PostgreSQL at REAPER_TEST_PG_URL for the postgres store
// (a schema of its own, dropped afterwards). Not part of `npm run bench`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { benchDir, fmt, load1, log, machineInfo, PG, procSample, run, sleep, table } from './lib/common.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const minutes = Number(flag('--minutes', '10'));
const keys = Number(flag('--keys', '10000'));
const ttlSeconds = Number(flag('--ttl', '15'));
const sampleSeconds = Number(flag('--sample', '10'));
const httpLeases = Number(flag('--http-leases', '100'));
const stores = flag('--store', 'sqlite').split(',');
const jsonOut = flag('--json', null);
const TOKEN = 'soak-token-0123456789abcdef';

function spawnLines(script, payload) {
  const proc = spawn(process.execPath, [path.join(benchDir, 'lib', script), JSON.stringify(payload)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const queue = [];
  let waiting = null;
  createInterface({ input: proc.stdout }).on('line', (line) => (waiting ? (waiting(line), (waiting = null)) : queue.push(line)));
  const next = () =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      waiting = resolve;
      proc.once('exit', (code) => reject(new Error(`${script} exited ${code}: ${stderr}`)));
    });
  return { proc, next, stderr: () => stderr };
}

function metric(text, name, labels = '') {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([^\s{]+)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) total += Number(m[3]);
  }
  return total;
}

async function soak(kind, work) {
  const schema = `reaper_bench_soak_${process.pid}`;
  const url = kind === 'sqlite' ? `sqlite:${path.join(work, 'state.db')}` : `${PG}${PG.includes('?') ? '&' : '?'}schema=${schema}`;
  const daemon = spawnLines('lease-daemon.mjs', { url, keys, ttlMs: ttlSeconds * 1000, token: TOKEN });
  const samples = [];
  let keeper = null;
  try {
    const info = JSON.parse(await daemon.next());
    log(`soak ${kind}: daemon pid ${info.pid} at ${info.url} holds ${info.held} leases (started in ${info.startSeconds.toFixed(1)} s); sampling every ${sampleSeconds} s for ${minutes} min`);
    keeper = spawnLines('soak-keeper.mjs', { url: info.url, token: TOKEN, leases: httpLeases, ttlMs: ttlSeconds * 1000 });
    JSON.parse(await keeper.next());
    const started = Date.now();
    const end = started + minutes * 60_000;
    for (let i = 0; ; i++) {
      const at = started + i * sampleSeconds * 1000;
      if (at > end) break;
      await sleep(Math.max(0, at - Date.now()));
      const { rssKiB, fds } = procSample(info.pid);
      const text = await (await fetch(`${info.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      const sample = {
        t: Math.round((Date.now() - started) / 1000),
        rssMiB: Math.round((rssKiB / 1024) * 10) / 10,
        fds,
        held: metric(text, 'reaper_daemon_leases_active'),
        renewedOk: metric(text, 'reaper_daemon_renewals_total', 'outcome="ok"'),
        renewFailed: metric(text, 'reaper_daemon_renewals_total', 'outcome="failed"'),
        lost: metric(text, 'reaper_daemon_leases_lost_total'),
        httpRequests: metric(text, 'reaper_daemon_http_requests_total'),
        load: load1(),
      };
      samples.push(sample);
      log(`  t=${sample.t}s rss ${sample.rssMiB} MiB, fds ${sample.fds}, held ${sample.held}, renewed ${sample.renewedOk} (failed ${sample.renewFailed}, lost ${sample.lost}), http ${sample.httpRequests}, load ${sample.load}`);
    }
    keeper.proc.kill('SIGTERM');
    const kept = JSON.parse(await keeper.next());
    daemon.proc.kill('SIGTERM');
    await daemon.next();
    return { kind, keys, httpLeases, ttlSeconds, samples, keeper: kept };
  } finally {
    if (keeper && keeper.proc.exitCode === null) keeper.proc.kill('SIGKILL');
    if (daemon.proc.exitCode === null) daemon.proc.kill('SIGKILL');
    if (kind === 'postgres') await run('psql', [PG, '-qAtc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`], { allowFail: true });
  }
}

function summarize(r) {
  const s = r.samples;
  const rss = s.map((x) => x.rssMiB);
  const fds = s.map((x) => x.fds);
  const afterWarmup = s.filter((x) => x.t >= 60);
  const first = s[0];
  const last = s.at(-1);
  const w0 = afterWarmup[0] ?? first;
  return {
    rss: { min: Math.min(...rss), max: Math.max(...rss), first: first.rssMiB, last: last.rssMiB, growth: last.rssMiB - first.rssMiB, growthAfter60s: last.rssMiB - w0.rssMiB },
    fds: { min: Math.min(...fds), max: Math.max(...fds), first: first.fds, last: last.fds, growth: last.fds - first.fds },
    renewalsPerSec: (last.renewedOk - first.renewedOk) / Math.max(1, last.t - first.t),
    renewFailed: last.renewFailed,
    lost: last.lost,
  };
}

const work = mkdtempSync(path.join(tmpdir(), 'reaper-soak-'));
const machine = machineInfo();
const results = [];
try {
  for (const kind of stores) results.push(await soak(kind, path.join(work, kind)));
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const r of results) {
  const sum = (r.summary = summarize(r));
  console.log(`\n### Soak: ${r.kind} store, ${r.keys.toLocaleString('en-US')} daemon leases (ttl ${r.ttlSeconds} s) + ${r.httpLeases} leases renewed over HTTP, ${minutes} min\n`);
  console.log(
    table(
      ['t (s)', 'RSS MiB', 'open fds', 'leases held', 'renewals ok (total)', 'failed', 'lost', 'HTTP requests', 'load avg'],
      r.samples.map((x) => [x.t, fmt.f(x.rssMiB, 1), x.fds, x.held, fmt.n(x.renewedOk), x.renewFailed, x.lost, fmt.n(x.httpRequests), x.load]),
    ),
  );
  console.log(
    `\n${r.kind}: RSS min ${sum.rss.min} / max ${sum.rss.max} MiB, growth ${fmt.f(sum.rss.growth, 1)} MiB (first→last), ${fmt.f(sum.rss.growthAfter60s, 1)} MiB after the first minute; ` +
      `fds min ${sum.fds.min} / max ${sum.fds.max}, growth ${sum.fds.growth}; ${fmt.n(sum.renewalsPerSec)} heartbeat renewals/s; ${sum.renewFailed} failed, ${sum.lost} lost; ` +
      `HTTP keeper: ${r.keeper.renewed} renewed, ${r.keeper.lost} lost, ${r.keeper.errors} errors`,
  );
}
console.log(`\nmachine: ${machine.cores} cores, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ machine, minutes, results }, null, 2));
