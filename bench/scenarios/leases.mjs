// Leases: how many renewals per second, at what latency, on the SQLite and the
// PostgreSQL state store, by each path a renewal can take:
//
// - renewLeases over every held lease in one call: the daemon's heartbeat path (and a
//   LeaseKeeper's when it talks to a store), measured straight on the store;
// - the daemon itself holding `leases` keys, ticking every second: its own metrics say how
//   many renewals it made and how long the ticks took (capacity = renewals / tick time);
// - single renewLease calls, one at a time and 8 in flight;
// - the HTTP API: a load generator with 64 keep-alive clients renewing their own leases
//   back to back (every renewal checks the lease and its token, then renews);
// - the floor: the same UPDATE alone — pgbench for PostgreSQL (`-c 8`), a prepared
//   better-sqlite3 statement for SQLite.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { benchDir, child, ensureTools, fmt, load1, log, median, PG, run, skipLine, sleep } from '../lib/common.mjs';

export const name = 'leases';
const TOKEN = 'bench-token-0123456789abcdef';

/** Start the daemon child; resolves {info, stop()} where stop() resolves its /metrics text. */
async function startDaemonChild(payload) {
  const proc = spawn(process.execPath, [path.join(benchDir, 'lib', 'lease-daemon.mjs'), JSON.stringify(payload)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = createInterface({ input: proc.stdout });
  const queue = [];
  let waiting = null;
  lines.on('line', (line) => (waiting ? (waiting(line), (waiting = null)) : queue.push(line)));
  const next = () =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      waiting = resolve;
      proc.once('exit', (code) => reject(new Error(`the daemon exited ${code}: ${stderr}`)));
    });
  const info = JSON.parse(await next());
  return {
    info,
    pid: proc.pid,
    stop: async () => {
      proc.kill('SIGTERM');
      return JSON.parse(await next()).metrics;
    },
  };
}

/** A Prometheus sample's value (summed over label sets that contain `labels`). */
function metric(text, name, labels = '') {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^\s{]+)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) total += Number(m[3]);
  }
  return total;
}

async function pgbenchScript(schema, dir) {
  const script = path.join(dir, 'renew.sql');
  const clock = '(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint';
  writeFileSync(
    script,
    `\\set n random(1, :leases)
UPDATE ${schema}.leases l SET renewed_at = c.now, expires_at = c.now + l.ttl_ms FROM (SELECT ${clock} AS now) c WHERE l.lease_id = 'bench-' || :n AND l.released_at IS NULL AND l.expires_at > c.now;
`,
  );
  return script;
}

export async function run_({ quick, reps, work }) {
  const count = quick ? 2_000 : 10_000;
  const seconds = quick ? 2 : 5;
  const pgbenchSeconds = quick ? 3 : 10;
  const tools = ensureTools({ pgbench: 'postgresql-contrib' });
  const skipped = [];
  if (!tools.pgbench) skipped.push(skipLine(name, 'pgbench', 'pgbench is not on PATH and `apt-get install -y postgresql-contrib` did not provide it'));
  const stores = ['sqlite', 'postgres'];
  const data = {};
  let serial = 0;
  for (const kind of stores) {
    const d = (data[kind] = { batch: [], daemon: [], single: [], concurrent: [], http: [], floor: [], acquire: [], daemonStart: [] });
    for (let i = 0; i < reps; i++) {
      const dir = path.join(work, `leases-${kind}-${i}`);
      mkdirSync(dir, { recursive: true });
      const schema = `reaper_bench_leases_${process.pid}_${serial++}`;
      const url = kind === 'sqlite' ? `sqlite:${path.join(dir, 'state.db')}` : `${PG}${PG.includes('?') ? '&' : '?'}schema=${schema}`;
      try {
        // Straight on the store.
        const l = load1();
        const direct = await child('lease-store.mjs', { url, leases: count, batch: count, seconds });
        d.acquire.push({ perSec: direct.acquire.perSec, load: l });
        d.batch.push({ ...direct.batch, load: l });
        d.single.push({ ...direct.single, load: l });
        d.concurrent.push({ ...direct.concurrent, load: l });
        if (direct.floor) d.floor.push({ ...direct.floor, load: l });
        log(`  ${kind} rep ${i + 1}: renewLeases(${count}) ${fmt.n(direct.batch.perSec)}/s, renewLease ${fmt.n(direct.single.perSec)}/s (load ${l})`);

        // The floor for PostgreSQL: pgbench running the renewal UPDATE on the same table.
        if (kind === 'postgres' && tools.pgbench) {
          await run('psql', [
            PG,
            '-qAt',
            '-c',
            `UPDATE ${schema}.leases SET lease_id = 'bench-' || m.n FROM (SELECT lease_id AS old, row_number() OVER (ORDER BY lease_id) AS n FROM ${schema}.leases) m WHERE lease_id = m.old`,
            '-c',
            `VACUUM ANALYZE ${schema}.leases`,
          ]);
          const script = await pgbenchScript(schema, dir);
          const logDir = path.join(dir, 'pgbench-log');
          mkdirSync(logDir, { recursive: true });
          const l2 = load1();
          const r = await run(tools.pgbench, ['-n', '-f', script, '-D', `leases=${count}`, '-c', '8', '-j', '2', '-T', String(pgbenchSeconds), '-l', `--log-prefix=${path.join(logDir, 'pgb')}`, PG], { cwd: dir });
          const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout)?.[1] ?? /tps = ([\d.]+)/.exec(r.stdout)?.[1]);
          const lat = readdirSync(logDir)
            .flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').trim().split('\n'))
            .map((line) => Number(line.split(' ')[2]) / 1000)
            .filter(Number.isFinite)
            .sort((a, b) => a - b);
          const at = (p) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)];
          d.floor.push({ what: 'pgbench -c 8, the renewal UPDATE', perSec: tps, p50: at(50), p99: at(99), load: l2 });
          log(`  postgres rep ${i + 1}: pgbench ${fmt.n(tps)} tps (load ${l2})`);
        }

        // The daemon's own heartbeat: `count` keys, ticking every second.
        const l3 = load1();
        const daemon = await startDaemonChild({ url, keys: count, ttlMs: 60_000, intervalMs: 1_000, token: TOKEN });
        await sleep(seconds * 1000 + 1500);
        const metrics = await daemon.stop();
        const ok = metric(metrics, 'reaper_daemon_renewals_total', 'outcome="ok"');
        const failed = metric(metrics, 'reaper_daemon_renewals_total', 'outcome="failed"');
        const tickSeconds = metric(metrics, 'reaper_daemon_renewal_duration_seconds_sum');
        const ticks = metric(metrics, 'reaper_daemon_renewal_duration_seconds_count');
        d.daemonStart.push({ seconds: daemon.info.startSeconds, held: daemon.info.held });
        d.daemon.push({ perSec: tickSeconds > 0 ? ok / tickSeconds : null, renewed: ok, failed, ticks, meanTickMs: ticks ? (tickSeconds / ticks) * 1000 : null, load: l3 });
        log(`  ${kind} rep ${i + 1}: daemon started with ${daemon.info.held} leases in ${daemon.info.startSeconds.toFixed(1)} s; ${ticks} ticks, ${ok} renewed (${failed} failed), mean tick ${ticks ? ((tickSeconds / ticks) * 1000).toFixed(0) : '—'} ms (load ${l3})`);

        // The HTTP API under 64 keep-alive clients.
        const api = await startDaemonChild({ url, keys: 0, token: TOKEN });
        const l4 = load1();
        const http = await child('lease-http-load.mjs', { url: api.info.url, token: TOKEN, clients: 64, seconds });
        await api.stop();
        d.http.push({ ...http, load: l4 });
        log(`  ${kind} rep ${i + 1}: HTTP ${fmt.n(http.perSec)} renewals/s, p50 ${fmt.ms(http.p50)} ms, p99 ${fmt.ms(http.p99)} ms, ${http.errors} errors (load ${l4})`);
      } finally {
        if (kind === 'postgres') await run('psql', [PG, '-qAtc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`], { allowFail: true });
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  const head = ['store', 'path', 'renewals/s (median)', 'p50 ms', 'p99 ms', 'per-run renewals/s', 'load avg', 'what the latency is'];
  const rows = [];
  const med = (list, key) => median(list.map((x) => x[key]));
  const runs = (list) => list.map((x) => fmt.n(x.perSec)).join(' / ');
  const loads = (list) => list.map((x) => x.load).join(' / ');
  for (const kind of stores) {
    const d = data[kind];
    rows.push([kind, `daemon heartbeat, ${count.toLocaleString('en-US')} keys`, fmt.n(med(d.daemon, 'perSec')), fmt.ms(med(d.daemon, 'meanTickMs')), '—', runs(d.daemon), loads(d.daemon), 'mean tick (one renewLeases call for every key)']);
    rows.push([kind, `renewLeases, ${count.toLocaleString('en-US')} ids per call`, fmt.n(med(d.batch, 'perSec')), fmt.ms(med(d.batch, 'p50')), fmt.ms(med(d.batch, 'p99')), runs(d.batch), loads(d.batch), 'per call']);
    rows.push([kind, 'renewLease, 1 at a time', fmt.n(med(d.single, 'perSec')), fmt.ms(med(d.single, 'p50')), fmt.ms(med(d.single, 'p99')), runs(d.single), loads(d.single), 'per call']);
    rows.push([kind, 'renewLease, 8 in flight', fmt.n(med(d.concurrent, 'perSec')), fmt.ms(med(d.concurrent, 'p50')), fmt.ms(med(d.concurrent, 'p99')), runs(d.concurrent), loads(d.concurrent), 'per call']);
    rows.push([kind, 'HTTP API, 64 keep-alive clients', fmt.n(med(d.http, 'perSec')), fmt.ms(med(d.http, 'p50')), fmt.ms(med(d.http, 'p99')), runs(d.http), loads(d.http), 'per request, at the client']);
    if (d.floor.length) rows.push([kind, `floor: ${d.floor[0].what}`, fmt.n(med(d.floor, 'perSec')), fmt.ms(med(d.floor, 'p50')), fmt.ms(med(d.floor, 'p99')), runs(d.floor), loads(d.floor), 'per statement']);
  }
  const startHead = ['store', 'acquireLease, 1 at a time (leases/s)', `daemon start with ${count.toLocaleString('en-US')} keys (s)`];
  const startRows = stores.map((kind) => [kind, fmt.n(med(data[kind].acquire, 'perSec')), fmt.s(median(data[kind].daemonStart.map((x) => x.seconds)))]);
  const targets = stores.map((kind) => {
    const v = med(data[kind].daemon, 'perSec');
    return { target: `≥ 50k lease renewals/s per daemon (batched heartbeat, ${kind})`, value: `${fmt.n(v)}/s`, met: v >= 50_000 };
  });
  const ratios = {};
  for (const kind of stores) {
    const floor = med(data[kind].floor, 'perSec');
    if (floor) {
      ratios[`${kind}: HTTP renewals vs floor`] = med(data[kind].http, 'perSec') / floor;
      ratios[`${kind}: single renewLease vs floor`] = med(data[kind].single, 'perSec') / floor;
      ratios[`${kind}: batched heartbeat vs floor`] = med(data[kind].daemon, 'perSec') / floor;
    }
  }
  return {
    name,
    size: count,
    tables: [
      { title: `Lease renewals (${count.toLocaleString('en-US')} leases; ${seconds} s per measurement; reference: ~15k renews/s at ~0.6 ms for a comparable tool)`, head, rows },
      { title: 'Lease acquisition', head: startHead, rows: startRows },
    ],
    ratios,
    targets,
    skipped,
    raw: data,
  };
}

export { run_ as run };
