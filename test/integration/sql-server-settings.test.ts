/**
 * A PostgreSQL resource database whose server settings get in a reap's way, through the
 * built CLI: `default_transaction_read_only` on the database (a standby, or a database put
 * read-only for maintenance), and a `statement_timeout` set on the role in the database (not
 * in the manifest). The sweep's deletes fail, are counted as failed (exit 3), change nothing,
 * and the message says which setting to look at; once the setting is gone (or, for the
 * timeout, the manifest's statementTimeout overrides it) the next run deletes them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { reaperSpawn, removeTempDirs, tmp, type CliRun } from './support/cli.js';
import { freshPgDatabase, pgQuery, runCleanups, serviceAvailable } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));
afterAll(() => removeTempDirs());

type Run = CliRun;

/** The CLI, asynchronously (reaperSpawn): a synchronous spawn would block this process. */
const reaper = (dir: string, args: string[]): Promise<Run> =>
  reaperSpawn([...args, '-c', path.join(dir, 'reaper.yaml'), '--output', 'json'], { cwd: dir, env: { HOME: dir } }).done;

type Outcomes = { marked: number; deleted: number; failed: number };
const outcomes = (run: Run): Outcomes => (JSON.parse(run.stdout) as { resources: { outcomes: Outcomes }[] }).resources[0]!.outcomes;

const sql = pgQuery;

/** A table of 8 rows, 6 of them orphaned (owner `gone`), marked by a first reap; the grace is over when it returns. */
async function markedScene(): Promise<{ url: string; dbName: string; dir: string; rows: () => Promise<number> }> {
  const url = await freshPgDatabase(cleanups);
  const dbName = new URL(url).pathname.slice(1);
  await sql(
    url,
    'CREATE TABLE items (id bigint PRIMARY KEY, owner text, created_at timestamptz NOT NULL)',
    "INSERT INTO items SELECT g, CASE WHEN g <= 6 THEN 'gone' ELSE 'alive' END, now() - interval '2 hours' FROM generate_series(1, 8) g",
  );
  const dir = tmp('reaper-pg-settings-');
  writeFileSync(
    path.join(dir, 'reaper.yaml'),
    [
      'version: 1',
      'state: "sqlite:.reaper/state.db"',
      'defaults: { minAge: 30m, grace: 1s, maxDeleteFraction: 1 }',
      'connections:',
      `  db: { kind: postgres, url: "${url}" }`,
      'owners: [{ static: [alive] }]',
      'resources:',
      '  - name: items',
      '    postgres: { connection: db, table: items, id: id, createdAt: created_at }',
      '    owner: { column: owner }',
      '',
    ].join('\n'),
  );
  const mark = await reaper(dir, ['reap', '--execute']);
  expect(mark.code, mark.stderr).toBe(0);
  expect(outcomes(mark).marked).toBe(6);
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  const rows = async () => Number((await sql(url, 'SELECT count(*) AS n FROM items'))[0]!.n);
  return { url, dbName, dir, rows };
}

describe.skipIf(!serviceAvailable('postgres'))('PostgreSQL server settings in a reap\'s way', () => {
  it('default_transaction_read_only on the database: deletes counted as failed, nothing changed, the hint names the setting; then the next run deletes', async () => {
    const s = await markedScene();
    const admin = inject('pgUrl')!;
    await sql(admin, `ALTER DATABASE "${s.dbName}" SET default_transaction_read_only = on`);
    const sweep = await reaper(s.dir, ['reap', '--execute']);
    expect(sweep.code, sweep.stderr).toBe(3);
    expect(outcomes(sweep)).toMatchObject({ deleted: 0, failed: 6 });
    expect(sweep.stderr).toMatch(/read-only transaction; hint: .*default_transaction_read_only/);
    expect(await s.rows()).toBe(8);
    await sql(admin, `ALTER DATABASE "${s.dbName}" RESET default_transaction_read_only`);
    const again = await reaper(s.dir, ['reap', '--execute']);
    expect(again.code, again.stderr).toBe(0);
    expect(outcomes(again)).toMatchObject({ deleted: 6, failed: 0 });
    expect(await s.rows()).toBe(2);
  });

  it('a statement_timeout on the role in the database cancels a slow delete: counted as failed, nothing changed, the hint names the server setting', async () => {
    const s = await markedScene();
    const admin = inject('pgUrl')!;
    const user = decodeURIComponent(new URL(admin).username) || 'postgres';
    await sql(
      s.url,
      'CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN OLD; END $$',
      'CREATE TRIGGER slow_delete BEFORE DELETE ON items FOR EACH ROW EXECUTE FUNCTION slow_delete()',
    );
    await sql(admin, `ALTER ROLE "${user}" IN DATABASE "${s.dbName}" SET statement_timeout = '1s'`);
    cleanups.push(async () => void (await sql(admin, `ALTER ROLE "${user}" IN DATABASE "${s.dbName}" RESET statement_timeout`)));
    const sweep = await reaper(s.dir, ['reap', '--execute']);
    expect(sweep.code, sweep.stderr).toBe(3);
    expect(outcomes(sweep)).toMatchObject({ deleted: 0, failed: 6 });
    expect(sweep.stderr).toMatch(/statement timeout; hint: .*statement_timeout/);
    expect(await s.rows()).toBe(8);
    // As the hint says: the manifest's statementTimeout overrides the role's.
    const manifest = path.join(s.dir, 'reaper.yaml');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(`url: "${s.url}" }`, `url: "${s.url}", statementTimeout: 30s }`));
    const again = await reaper(s.dir, ['reap', '--execute']);
    expect(again.code, again.stderr).toBe(0);
    expect(outcomes(again)).toMatchObject({ deleted: 6, failed: 0 });
    expect(await s.rows()).toBe(2);
  });
});
