// PostgreSQL: reaper (mark, then sweep) beside the limit — one
// `DELETE … WHERE NOT EXISTS (live owner)` — and a keyset batch loop in PL/pgSQL that
// deletes 10,000-id windows and commits after each. Every tool gets its own copy of one
// template database (CREATE DATABASE … TEMPLATE), warmed with a count(*) first.
//
// The data: bench_rows(id bigint primary key, owner text, created_at, payload) with
// `size` rows a day old, owners owner-0 … owner-999; live_owners holds the 500 even ones,
// so half the rows are orphans. reaper's liveness source is `SELECT id FROM live_owners`.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, load1, log, median, PG, reaperMarkThenSweep, run, timed, timingRow } from '../lib/common.mjs';

export const name = 'postgres';

const withDb = (url, db) => Object.assign(new URL(url), { pathname: `/${db}` }).toString();
const psql = (db, sql, options = {}) => run('psql', [withDb(PG, db), '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], options);

const KEYSET_LOOP = `DO $$
DECLARE lo bigint := 0; top bigint;
BEGIN
  SELECT max(id) INTO top FROM bench_rows;
  WHILE lo < top LOOP
    DELETE FROM bench_rows r WHERE r.id > lo AND r.id <= lo + 10000
      AND NOT EXISTS (SELECT 1 FROM live_owners o WHERE o.id = r.owner);
    COMMIT;
    lo := lo + 10000;
  END LOOP;
END $$`;
const SINGLE_DELETE = 'DELETE FROM bench_rows r WHERE NOT EXISTS (SELECT 1 FROM live_owners o WHERE o.id = r.owner)';

function manifest(dir, url) {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 1m, grace: 1s, batchSize: 10000, maxDeletesPerRun: 100000000, maxDeleteFraction: 1 }
connections:
  db: { kind: postgres, url: "${url}" }
owners:
  - sql: { connection: db, query: "SELECT id FROM live_owners" }
resources:
  - name: rows
    postgres: { connection: db, table: bench_rows, id: id, createdAt: created_at }
    owner: { column: owner }
`,
  );
  return file;
}

export async function run_({ quick, reps, work, sizeOverride }) {
  const size = sizeOverride ?? (quick ? 100_000 : 1_000_000);
  const template = `reaper_bench_pg_tmpl_${process.pid}`;
  const created = [];
  log(`postgres: building the template database with ${size.toLocaleString('en-US')} rows…`);
  await psql('postgres', `CREATE DATABASE ${template}`);
  created.push(template);
  const results = { mark: [], sweep: [], markSweep: [], single: [], keyset: [] };
  let orphans;
  try {
    await psql(
      template,
      `CREATE TABLE live_owners (id text PRIMARY KEY);
       INSERT INTO live_owners SELECT 'owner-' || g FROM generate_series(0, 998, 2) g;
       CREATE TABLE bench_rows (id bigint PRIMARY KEY, owner text NOT NULL, created_at timestamptz NOT NULL, payload text);
       INSERT INTO bench_rows SELECT g, 'owner-' || (g % 1000), now() - interval '1 day', md5(g::text) FROM generate_series(1, ${size}) g;`,
    );
    await run('psql', [withDb(PG, template), '-qAtc', 'VACUUM ANALYZE']);
    orphans = Number((await psql(template, 'SELECT count(*) FROM bench_rows r WHERE NOT EXISTS (SELECT 1 FROM live_owners o WHERE o.id = r.owner)')).stdout.trim());
    let serial = 0;
    const copy = async () => {
      const db = `reaper_bench_pg_${process.pid}_${serial++}`;
      await psql('postgres', `CREATE DATABASE ${db} TEMPLATE ${template}`);
      created.push(db);
      await psql(db, 'SELECT count(*) FROM bench_rows; SELECT count(*) FROM live_owners'); // warm the cache
      return db;
    };
    const drop = async (db) => {
      await psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      created.splice(created.indexOf(db), 1);
    };
    const left = async (db) => Number((await psql(db, 'SELECT count(*) FROM bench_rows')).stdout.trim());
    const order = ['reaper', 'single', 'keyset'];
    for (let i = 0; i < reps; i++) {
      for (const tool of [...order.slice(i % 3), ...order.slice(0, i % 3)]) {
        const db = await copy();
        if (tool === 'reaper') {
          const dir = path.join(work, db);
          mkdirSync(dir, { recursive: true });
          const r = await reaperMarkThenSweep(manifest(dir, withDb(PG, db)), orphans);
          const n = await left(db);
          for (const k of ['mark', 'sweep', 'markSweep']) results[k].push({ ...r[k], left: n });
          rmSync(dir, { recursive: true, force: true });
          log(`  rep ${i + 1} reaper: mark ${r.mark.seconds.toFixed(1)} s, sweep ${r.sweep.seconds.toFixed(1)} s, ${n} rows left (load ${r.sweep.load})`);
        } else {
          const l = load1();
          const t = await timed('psql', [withDb(PG, db), '-v', 'ON_ERROR_STOP=1', '-qAtc', tool === 'single' ? SINGLE_DELETE : KEYSET_LOOP]);
          const n = await left(db);
          results[tool].push({ seconds: t.seconds, rss: null, load: l, left: n });
          log(`  rep ${i + 1} ${tool}: ${t.seconds.toFixed(2)} s, ${n} rows left (load ${l})`);
        }
        await drop(db);
      }
    }
  } finally {
    for (const db of [...created].reverse()) await psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`, { allowFail: true });
  }
  const single = median(results.single.map((x) => x.seconds));
  const head = ['tool', 'what', 'median s', 'orphan rows/s', 'speed vs single DELETE', 'peak RSS MiB', 'runs (s)', 'load avg', 'rows left'];
  const leftOf = (list) => [String(list[0]?.left ?? '—')];
  const rows = [
    timingRow('reaper reap --execute (2nd run)', 'sweep only', results.sweep, orphans, single, leftOf(results.sweep)),
    timingRow('reaper reap --execute (1st run)', 'mark only', results.mark, orphans, null, leftOf(results.mark)),
    timingRow('reaper, both runs', 'mark+sweep', results.markSweep, orphans, single, leftOf(results.markSweep)),
    timingRow('DELETE … WHERE NOT EXISTS (psql)', 'one statement', results.single, orphans, null, leftOf(results.single)),
    timingRow('keyset loop, 10k ids, COMMIT each (psql DO)', 'batched', results.keyset, orphans, single, leftOf(results.keyset)),
  ];
  const ratio = single / median(results.sweep.map((x) => x.seconds));
  return {
    name,
    size,
    tables: [{ title: `PostgreSQL: ${size.toLocaleString('en-US')} rows, ${orphans.toLocaleString('en-US')} orphans (speed = single DELETE time / tool time)`, head, rows }],
    ratios: {
      'sweep only vs single DELETE (speed)': ratio,
      'mark+sweep vs single DELETE (speed)': single / median(results.markSweep.map((x) => x.seconds)),
      'keyset loop vs single DELETE (speed)': single / median(results.keyset.map((x) => x.seconds)),
    },
    targets: [{ target: 'PostgreSQL sweep ≥ 0.3× the single DELETE', value: fmt.x(ratio), met: ratio >= 0.3 }],
    skipped: [],
    raw: results,
  };
}

export { run_ as run };
