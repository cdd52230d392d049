// Helpers shared by the benchmark scenarios: child processes, timing, medians, tables,
// load average, free ports, moto_server, and finding (or installing) the peer tools.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = path.resolve(benchDir, '..');
export const reaperBin = path.join(repoDir, 'bin', 'reaper');
export const PG = process.env.REAPER_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const MY = process.env.REAPER_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const log = (...parts) => console.error(...parts);

/** The 1-minute load average, rounded, recorded beside every measurement. */
export const load1 = () => Math.round(os.loadavg()[0] * 100) / 100;

export function median(values) {
  const v = values.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Nearest-rank percentile of an ascending-sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const fmt = {
  s: (x) => (x === null || x === undefined ? '—' : x < 10 ? x.toFixed(3) : x.toFixed(2)),
  n: (x) => (x === null || x === undefined ? '—' : Math.round(x).toLocaleString('en-US')),
  ms: (x) => (x === null || x === undefined ? '—' : x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0)),
  x: (x) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}×`),
  f: (x, d = 2) => (x === null || x === undefined ? '—' : x.toFixed(d)),
};

/** A Markdown table (also readable as plain text). */
export function table(head, rows) {
  const cells = rows.map((r) => r.map((c) => String(c ?? '—')));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (cs) => '| ' + cs.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...cells.map(line)].join('\n');
}

/**
 * Run a command asynchronously (so a proxy or server in this process keeps serving) and
 * time it from spawn to exit. Rejects on a non-zero exit unless `allowFail`.
 */
export function run(cmd, argv, options = {}) {
  const { allowFail = false, input, timeoutMs = 30 * 60_000, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const result = { code, signal, seconds, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (code !== 0 && !allowFail) {
        reject(new Error(`${cmd} ${argv.join(' ')} exited ${code ?? signal}: ${result.stderr.slice(-2000) || result.stdout.slice(-2000)}`));
      } else resolve(result);
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Run a bench/lib child script with a JSON payload; resolves its last stdout line as JSON. */
export async function child(script, payload, options = {}) {
  const r = await run(process.execPath, [...(options.nodeArgs ?? []), path.join(benchDir, 'lib', script), JSON.stringify(payload)], options);
  const last = r.stdout.trim().split('\n').pop();
  try {
    return { ...JSON.parse(last), wallSeconds: r.seconds };
  } catch {
    throw new Error(`${script} printed no JSON result: ${r.stdout.slice(-500)} ${r.stderr.slice(-1500)}`);
  }
}

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The Python that runs moto_server (pyenv's), found from the moto_server script's shebang. */
function motoPython() {
  const script = spawnSync('bash', ['-c', 'command -v pyenv >/dev/null && pyenv which moto_server || command -v moto_server'], { encoding: 'utf8' }).stdout.trim();
  if (!script) return null;
  const first = readFileSync(script, 'utf8').split('\n')[0];
  return first.startsWith('#!') ? first.slice(2).trim().split(' ')[0] : 'python3';
}

/**
 * Start moto's S3 server on a free loopback port; resolves {endpoint, pid, seed, stop}.
 * With `seeded`, the server is moto's ThreadedMotoServer (the same app and werkzeug
 * server moto_server runs) in a process that can also create objects directly through
 * moto's backend (bench/lib/moto-seeded.py): `seed({bucket, size, versioned})`. Without
 * it (or when that Python cannot be found), it is `moto_server` and seed is null.
 */
export async function startMoto({ seeded = false } = {}) {
  const port = await freePort();
  const python = seeded ? motoPython() : null;
  const controlPort = python ? await freePort() : null;
  const moto = python
    ? spawn(python, [path.join(benchDir, 'lib', 'moto-seeded.py'), String(port), String(controlPort)], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  moto.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const endpoint = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 150 && !up && moto.exitCode === null; i++) {
    try {
      await fetch(endpoint);
      if (controlPort) await fetch(`http://127.0.0.1:${controlPort}/`, { method: 'POST', body: '{"bucket":"moto-ready-check","size":0}' });
      up = true;
    } catch {
      await sleep(200);
    }
  }
  if (!up) {
    moto.kill('SIGKILL');
    throw new Error(`the S3 server (moto) did not start within 30 s: ${stderr}`);
  }
  const seed = controlPort
    ? async ({ bucket, size, versioned = false, prefix = 'tmp/', owners = 500 }) => {
        const r = await fetch(`http://127.0.0.1:${controlPort}/seed`, { method: 'POST', body: JSON.stringify({ bucket, size, versioned, prefix, owners }) });
        const answer = await r.json();
        if (!answer.ok) throw new Error(`seeding ${bucket} failed: ${answer.error}`);
        return answer;
      }
    : null;
  return {
    endpoint,
    pid: moto.pid,
    seed,
    stop: () =>
      new Promise((resolve) => {
        if (moto.exitCode !== null) return resolve();
        moto.once('exit', () => resolve());
        moto.kill('SIGTERM');
        setTimeout(() => moto.kill('SIGKILL'), 3000).unref();
      }),
  };
}

export function which(cmd) {
  const r = spawnSync('bash', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

let aptUpdated = false;
/**
 * Make sure each command is on PATH, installing its Debian package when it is not
 * (`apt-get update` once, then `apt-get install -y`). Returns {cmd: path | null}; a
 * missing command is reported by the caller, which skips that peer with a clear line.
 */
export function ensureTools(wanted) {
  const missing = Object.entries(wanted).filter(([cmd]) => !which(cmd));
  if (missing.length > 0 && process.getuid?.() === 0 && which('apt-get')) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    log(`  installing ${packages.join(' ')} (missing: ${missing.map(([c]) => c).join(', ')})`);
    if (!aptUpdated) {
      spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
      aptUpdated = true;
    }
    const r = spawnSync('apt-get', ['install', '-y', '-q', ...packages], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) log(`  apt-get install ${packages.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
  }
  return Object.fromEntries(Object.keys(wanted).map((cmd) => [cmd, which(cmd)]));
}

/** One line saying a peer is skipped and why; it also goes into the results. */
export function skipLine(scenario, peer, why) {
  const line = `SKIPPED ${scenario}/${peer}: ${why}`;
  log(`  ${line}`);
  return line;
}

/** Versions of the things the numbers depend on. */
export function machineInfo() {
  const sh = (c) => {
    const r = spawnSync('bash', ['-c', c], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim().split('\n')[0] : null;
  };
  const cpu = os.cpus();
  return {
    cores: cpu.length,
    cpu: cpu[0]?.model ?? null,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    postgres: sh(`psql "${PG}" -Atc 'show server_version'`),
    mariadb: sh(`mariadb -h127.0.0.1 -uroot -N -e 'select version()'`),
    moto: sh(`python -c 'import moto; print(moto.__version__)' 2>/dev/null || $(dirname $(pyenv which moto_server 2>/dev/null || echo /x))/python -c 'import moto; print(moto.__version__)'`),
    aws: sh('aws --version 2>&1'),
    rclone: sh('rclone version 2>/dev/null'),
    ptArchiver: sh('pt-archiver --version 2>/dev/null'),
    tmpreaper: sh("dpkg-query -W -f='${Version}' tmpreaper 2>/dev/null"),
    hyperfine: sh('hyperfine --version 2>/dev/null'),
    pgbench: sh('pgbench --version 2>/dev/null'),
    findutils: sh('find --version | head -1'),
    fs: sh('findmnt -n -o FSTYPE -T /tmp'),
    commit: sh(`git -C '${repoDir}' rev-parse --short HEAD`),
    uncommittedSrc: sh(`git -C '${repoDir}' status --porcelain -- src | wc -l`),
  };
}

/** Resident set size (KiB) and open descriptors of a process, read from /proc. */
export function procSample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  return { rssKiB, fds };
}

/**
 * Run a command under GNU time for its peak RSS (when /usr/bin/time exists); resolves
 * {seconds, maxRssKiB, stdout, stderr, code}. The wall time is measured here, spawn to exit.
 */
export async function timed(cmd, argv, options = {}) {
  if (!existsSync('/usr/bin/time')) return { ...(await run(cmd, argv, options)), maxRssKiB: null };
  const file = path.join(os.tmpdir(), `reaper-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const r = await run('/usr/bin/time', ['-f', '%M', '-o', file, cmd, ...argv], options);
    const kib = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
    return { ...r, maxRssKiB: Number.isFinite(kib) ? kib : null };
  } finally {
    rmSync(file, { force: true });
  }
}

/** `reaper ARGS…` (the built CLI), timed, with its JSON output parsed when it printed one. */
export async function reaper(argv, options = {}) {
  const r = await timed(process.execPath, [reaperBin, ...argv], options);
  let json = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = null;
  }
  return { ...r, json };
}

/**
 * reaper's two runs on one copy of the data: `reap --execute` to mark (the manifest's
 * grace is 1s), a wait for the grace to pass, then `reap --execute` again, which sweeps.
 * Checks that the first marked and the second deleted `expected` resources.
 */
export async function reaperMarkThenSweep(manifestFile, expected, options = {}) {
  const l1 = load1();
  const mark = await reaper(['reap', '-c', manifestFile, '--execute', '--output', 'json'], options);
  if (mark.json?.outcomes?.marked !== expected) throw new Error(`reaper marked ${mark.json?.outcomes?.marked}, expected ${expected}: ${mark.stderr.slice(-800)}`);
  await sleep(1500);
  const l2 = load1();
  // BENCH_SWEEP_ONLY=1: the 2nd run sweeps from the ledger without scanning (reap --sweep-only).
  const sweepOnly = process.env.BENCH_SWEEP_ONLY === '1' ? ['--sweep-only'] : [];
  const sweep = await reaper(['reap', '-c', manifestFile, '--execute', ...sweepOnly, '--output', 'json'], options);
  if (sweep.json?.outcomes?.deleted !== expected) throw new Error(`reaper deleted ${sweep.json?.outcomes?.deleted}, expected ${expected}: ${sweep.stderr.slice(-800)}`);
  return {
    mark: { seconds: mark.seconds, rss: mark.maxRssKiB, load: l1 },
    sweep: { seconds: sweep.seconds, rss: sweep.maxRssKiB, load: l2 },
    markSweep: { seconds: mark.seconds + sweep.seconds, rss: Math.max(mark.maxRssKiB ?? 0, sweep.maxRssKiB ?? 0) || null, load: l1 },
  };
}

/** One table row for a tool: median seconds, rate, speed against a baseline, RSS, runs, loads. */
export function timingRow(tool, what, list, size, baselineSeconds, extra = []) {
  const s = median(list.map((x) => x.seconds));
  return [
    tool,
    what,
    fmt.s(s),
    fmt.n(size / s),
    baselineSeconds ? fmt.x(baselineSeconds / s) : '',
    list.some((x) => x.rss) ? fmt.n(median(list.map((x) => x.rss)) / 1024) : '—',
    list.map((x) => x.seconds.toFixed(2)).join(' / '),
    list.map((x) => x.load).join(' / '),
    ...extra,
  ];
}
