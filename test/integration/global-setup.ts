/**
 * Probes the real services the integration tests use and starts an S3 server:
 * - PostgreSQL: REAPER_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres)
 * - MariaDB/MySQL: REAPER_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/test)
 * - S3: REAPER_TEST_S3_ENDPOINT, or `moto_server` started here on a free port.
 * Under CI=true a missing service fails the run with a hint; elsewhere its tests skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { freePort } from '../support/net.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string | null;
    mysqlUrl: string | null;
    s3Endpoint: string | null;
    serviceErrors: Record<string, string>;
  }
}

const PG_URL = process.env.REAPER_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MYSQL_URL = process.env.REAPER_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

async function probePg(): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5_000 });
  await client.connect();
  await client.query('SELECT 1');
  await client.end();
}

async function probeMysql(): Promise<void> {
  const mysql = await import('mysql2/promise');
  const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 5_000 });
  await conn.query('SELECT 1');
  await conn.end();
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await fetch(url);
      return;
    } catch (error) {
      last = error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`no answer from ${url} within ${timeoutMs} ms: ${String(last)}`);
}

async function startMoto(): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (e) => reject(new Error(`cannot start moto_server: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`moto_server exited with code ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await Promise.race([waitForHttp(endpoint, 30_000), exited]);
  return { endpoint, child };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const errors: Record<string, string> = {};
  const hints: Record<string, string> = {
    postgres: `start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set REAPER_TEST_PG_URL`,
    mysql: 'start MariaDB (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd) or set REAPER_TEST_MYSQL_URL',
    s3: 'install moto (pip install "moto[server]") so moto_server is on PATH, or set REAPER_TEST_S3_ENDPOINT',
  };

  let pgUrl: string | null = PG_URL;
  let mysqlUrl: string | null = MYSQL_URL;
  let s3Endpoint: string | null = process.env.REAPER_TEST_S3_ENDPOINT ?? null;
  let moto: ChildProcess | undefined;

  await Promise.all([
    probePg().catch((e: Error) => {
      errors.postgres = e.message;
      pgUrl = null;
    }),
    probeMysql().catch((e: Error) => {
      errors.mysql = e.message;
      mysqlUrl = null;
    }),
    (async () => {
      if (s3Endpoint) return;
      try {
        const started = await startMoto();
        moto = started.child;
        s3Endpoint = started.endpoint;
      } catch (e) {
        errors.s3 = (e as Error).message;
      }
    })(),
  ]);

  const missing = Object.keys(errors);
  if (missing.length > 0) {
    const lines = missing.map((name) => `  ${name}: ${errors[name]}\n    hint: ${hints[name]}`).join('\n');
    if (process.env.CI === 'true') {
      moto?.kill();
      throw new Error(`integration services missing under CI=true (never skipped in CI):\n${lines}`);
    }
    console.warn(`[reaper tests] skipping tests of missing services:\n${lines}`);
  }

  project.provide('pgUrl', pgUrl);
  project.provide('mysqlUrl', mysqlUrl);
  project.provide('s3Endpoint', s3Endpoint);
  project.provide('serviceErrors', errors);

  return async () => {
    if (moto && moto.exitCode === null) {
      moto.kill('SIGTERM');
      await new Promise((r) => moto!.once('exit', r));
    }
  };
}
