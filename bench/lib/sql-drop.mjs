// Drops a bench database.
const { kind, url, database } = JSON.parse(process.argv[2]);
if (kind === 'postgres') {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await c.end();
} else {
  const mysql = await import('mysql2/promise');
  const c = await mysql.createConnection({ uri: url });
  await c.query(`DROP DATABASE IF EXISTS ${database}`);
  await c.end();
}
console.log(JSON.stringify({ ok: true }));
