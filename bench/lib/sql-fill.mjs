// Creates a fresh database with bench_rows(id, owner, created_at) holding `size` rows.
import { randomBytes } from 'node:crypto';

const { kind, url, size } = JSON.parse(process.argv[2]);
const database = `reaper_bench_${randomBytes(4).toString('hex')}`;
const withDb = (u, db) => Object.assign(new URL(u), { pathname: `/${db}` }).toString();
if (kind === 'postgres') {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const c = new pg.Client({ connectionString: withDb(url, database) });
  await c.connect();
  await c.query('CREATE TABLE bench_rows (id bigint PRIMARY KEY, owner text, created_at timestamptz NOT NULL)');
  await c.query(`INSERT INTO bench_rows SELECT g, 'owner-' || (g % 500), now() - interval '1 day' FROM generate_series(1, $1) g`, [size]);
  await c.query('ANALYZE bench_rows');
  await c.end();
} else {
  const mysql = await import('mysql2/promise');
  const admin = await mysql.createConnection({ uri: url });
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const c = await mysql.createConnection({ uri: withDb(url, database) });
  await c.query('CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, owner VARCHAR(64), created_at DATETIME(3) NOT NULL)');
  await c.query('SET SESSION cte_max_recursion_depth = 10000000').catch(() => undefined);
  for (let start = 1; start <= size; start += 10000) {
    const rows = [];
    for (let i = start; i < Math.min(start + 10000, size + 1); i++) rows.push([i, `owner-${i % 500}`, new Date(Date.now() - 86_400_000)]);
    await c.query('INSERT INTO bench_rows (id, owner, created_at) VALUES ?', [rows]);
  }
  await c.end();
}
console.log(JSON.stringify({ database, url: withDb(url, database) }));
