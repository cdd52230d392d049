// MariaDB: reaper (mark, then sweep) beside `pt-archiver --purge --limit 10000
// --bulk-delete --commit-each` and one `DELETE … LEFT JOIN`. Every tool gets its own copy
// of one template database (CREATE TABLE … LIKE + INSERT … SELECT), warmed with a count(*).
//
// The data: bench_rows(id BIGINT PRIMARY KEY, owner VARCHAR(64), created_at DATETIME(3),
// payload CHAR(32)) with `size` rows a day old, owners owner-0 … owner-999; live_owners
// holds the 500 even ones, so half the rows are orphans.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureTools, fmt, load1, log, median, MY, reaperMarkThenSweep, run, skipLine, timed, timingRow } from '../lib/common.mjs';

export const name = 'mariadb';

const conn = new URL(MY);
const clientArgs = ['-h', conn.hostname, '-P', conn.port || '3306', '-u', decodeURIComponent(conn.username || 'root'), ...(conn.password ? [`-p${decodeURIComponent(conn.password)}`] : [])];
const sql = (statement, options = {}) => run('mariadb', [...clientArgs, '-N', '-e', statement], options);
const withDb = (db) => Object.assign(new URL(MY), { pathname: `/${db}` }).toString();
const LEFT_JOIN_DELETE = 'DELETE r FROM bench_rows r LEFT JOIN live_owners o ON o.id = r.owner WHERE o.id IS NULL';

function manifest(dir, url) {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 1m, grace: 1s, batchSize: 10000, maxDeletesPerRun: 100000000, maxDeleteFraction: 1 }
connections:
  db: { kind: mysql, url: "${url}" }
owners:
  - sql: { connection: db, query: "SELECT id FROM live_owners" }
resources:
  - name: rows
    mysql: { connection: db, table: bench_rows, id: id, createdAt: created_at }
    owner: { column: owner }
`,
  );
  return file;
}

export async function run_({ quick, reps, work, sizeOverride }) {
  const size = sizeOverride ?? (quick ? 100_000 : 1_000_000);
  const tools = ensureTools({ 'pt-archiver': 'percona-toolkit' });
  const skipped = [];
  if (!tools['pt-archiver']) skipped.push(skipLine(name, 'pt-archiver', 'pt-archiver is not on PATH and `apt-get install -y percona-toolkit` did not provide it'));
  const template = `reaper_bench_my_tmpl_${process.pid}`;
  const created = [];
  const results = { mark: [], sweep: [], markSweep: [], ptArchiver: [], leftJoin: [] };
  let orphans;
  log(`mariadb: building the template database with ${size.toLocaleString('en-US')} rows…`);
  try {
    await sql(`CREATE DATABASE ${template}`);
    created.push(template);
    await sql(
      `USE ${template};
       CREATE TABLE live_owners (id VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB;
       INSERT INTO live_owners SELECT CONCAT('owner-', seq) FROM seq_0_to_998_step_2;
       CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, created_at DATETIME(3) NOT NULL, payload CHAR(32)) ENGINE=InnoDB;
       INSERT INTO bench_rows SELECT seq, CONCAT('owner-', seq % 1000), NOW(3) - INTERVAL 1 DAY, MD5(seq) FROM seq_1_to_${size};
       ANALYZE TABLE bench_rows, live_owners;`,
    );
    orphans = Number((await sql(`SELECT count(*) FROM ${template}.bench_rows r LEFT JOIN ${template}.live_owners o ON o.id = r.owner WHERE o.id IS NULL`)).stdout.trim());
    let serial = 0;
    const copy = async () => {
      const db = `reaper_bench_my_${process.pid}_${serial++}`;
      await sql(
        `CREATE DATABASE ${db}; USE ${db};
         CREATE TABLE live_owners LIKE ${template}.live_owners; INSERT INTO live_owners SELECT * FROM ${template}.live_owners;
         CREATE TABLE bench_rows LIKE ${template}.bench_rows; INSERT INTO bench_rows SELECT * FROM ${template}.bench_rows;
         ANALYZE TABLE bench_rows, live_owners; SELECT count(*) FROM bench_rows;`,
      );
      created.push(db);
      return db;
    };
    const drop = async (db) => {
      await sql(`DROP DATABASE IF EXISTS ${db}`);
      created.splice(created.indexOf(db), 1);
    };
    const left = async (db) => Number((await sql(`SELECT count(*) FROM ${db}.bench_rows`)).stdout.trim());
    const order = ['reaper', 'ptArchiver', 'leftJoin'].filter((t) => t !== 'ptArchiver' || tools['pt-archiver']);
    for (let i = 0; i < reps; i++) {
      for (const tool of [...order.slice(i % order.length), ...order.slice(0, i % order.length)]) {
        const db = await copy();
        if (tool === 'reaper') {
          const dir = path.join(work, db);
          mkdirSync(dir, { recursive: true });
          const r = await reaperMarkThenSweep(manifest(dir, withDb(db)), orphans);
          const n = await left(db);
          for (const k of ['mark', 'sweep', 'markSweep']) results[k].push({ ...r[k], left: n });
          rmSync(dir, { recursive: true, force: true });
          log(`  rep ${i + 1} reaper: mark ${r.mark.seconds.toFixed(1)} s, sweep ${r.sweep.seconds.toFixed(1)} s, ${n} rows left (load ${r.sweep.load})`);
        } else {
          const l = load1();
          const t =
            tool === 'leftJoin'
              ? await timed('mariadb', [...clientArgs, db, '-e', LEFT_JOIN_DELETE])
              : await timed(tools['pt-archiver'], [
                  '--source',
                  `h=${conn.hostname},P=${conn.port || 3306},u=${decodeURIComponent(conn.username || 'root')}${conn.password ? `,p=${decodeURIComponent(conn.password)}` : ''},D=${db},t=bench_rows`,
                  '--purge',
                  '--where',
                  'NOT EXISTS (SELECT 1 FROM live_owners o WHERE o.id = bench_rows.owner)',
                  '--limit',
                  '10000',
                  '--bulk-delete',
                  '--commit-each',
                  '--no-check-charset',
                ]);
          const n = await left(db);
          results[tool].push({ seconds: t.seconds, rss: t.maxRssKiB, load: l, left: n });
          log(`  rep ${i + 1} ${tool}: ${t.seconds.toFixed(2)} s, ${n} rows left (load ${l})`);
        }
        await drop(db);
      }
    }
  } finally {
    for (const db of [...created].reverse()) await sql(`DROP DATABASE IF EXISTS ${db}`, { allowFail: true });
  }
  const pt = results.ptArchiver.length ? median(results.ptArchiver.map((x) => x.seconds)) : null;
  const leftJoin = median(results.leftJoin.map((x) => x.seconds));
  const head = ['tool', 'what', 'median s', 'orphan rows/s', 'speed vs pt-archiver', 'peak RSS MiB', 'runs (s)', 'load avg', 'rows left', 'speed vs DELETE … LEFT JOIN'];
  const sweepS = median(results.sweep.map((x) => x.seconds));
  const extra = (list) => [String(list[0]?.left ?? '—'), fmt.x(leftJoin / median(list.map((x) => x.seconds)))];
  const rows = [
    timingRow('reaper reap --execute (2nd run)', 'sweep only', results.sweep, orphans, pt, extra(results.sweep)),
    timingRow('reaper reap --execute (1st run)', 'mark only', results.mark, orphans, null, extra(results.mark)),
    timingRow('reaper, both runs', 'mark+sweep', results.markSweep, orphans, pt, extra(results.markSweep)),
  ];
  if (pt) rows.push(timingRow('pt-archiver --purge --limit 10000 --bulk-delete --commit-each', 'batched', results.ptArchiver, orphans, null, extra(results.ptArchiver)));
  rows.push(timingRow('DELETE … LEFT JOIN (mariadb client)', 'one statement', results.leftJoin, orphans, pt, extra(results.leftJoin)));
  const ratio = pt ? pt / sweepS : null;
  return {
    name,
    size,
    tables: [{ title: `MariaDB: ${size.toLocaleString('en-US')} rows, ${orphans.toLocaleString('en-US')} orphans (speed = peer time / tool time)`, head, rows }],
    ratios: {
      ...(pt ? { 'sweep only vs pt-archiver (speed)': ratio, 'mark+sweep vs pt-archiver (speed)': pt / median(results.markSweep.map((x) => x.seconds)) } : {}),
      'sweep only vs DELETE … LEFT JOIN (speed)': leftJoin / sweepS,
    },
    targets: [{ target: 'MariaDB sweep ≥ 1.5× pt-archiver', value: fmt.x(ratio), met: ratio === null ? null : ratio >= 1.5 }],
    skipped,
    raw: results,
  };
}

export { run_ as run };
