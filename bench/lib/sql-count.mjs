// Baseline: SELECT count(*) on the same table; prints {count, seconds, maxRssKiB}.
const { kind, url } = JSON.parse(process.argv[2]);
let count;
let seconds;
if (kind === 'postgres') {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const start = process.hrtime.bigint();
  count = Number((await c.query('SELECT count(*) AS n FROM bench_rows')).rows[0].n);
  seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await c.end();
} else {
  const mysql = await import('mysql2/promise');
  const c = await mysql.createConnection({ uri: url });
  const start = process.hrtime.bigint();
  count = Number((await c.query('SELECT count(*) AS n FROM bench_rows'))[0][0].n);
  seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await c.end();
}
console.log(JSON.stringify({ count, seconds, maxRssKiB: process.resourceUsage().maxRSS }));
