/**
 * A second SIGINT/SIGTERM ends `reaper reap --execute` or `reaper audit` at once (exit 130) —
 * and its run is recorded `interrupted` on the way out, not left `running` until a later run
 * finds its heartbeat lapsed; the exit stays bounded (docs/safety.md §19).
 *
 * The built CLI reaps a `command` type whose handler's `mark` never answers: the run is
 * inside a batch, which the first signal does not cut short ("finishing the current
 * batch"); the second kills the handler's process group, so it acts on nothing afterwards. It audits a PostgreSQL table the test holds locked: the scan's query waits on the
 * lock, and a query under way is not cancelled by the first signal. The second signal is
 * sent once the first one's notice is on stderr.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, reaperSync } from './support/cli.js';
import { freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    // The hung handler outlives the reaper it served: end it (it wrote its own pid).
    const pidFile = path.join(dir, 'mark.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

const HANDLER = `
import { writeFileSync } from 'node:fs';
const op = process.argv[2];
if (op === 'list') {
  process.stdout.write(JSON.stringify({ id: 'orphan-1', fingerprint: 'v1', createdAt: '2020-01-01T00:00:00Z', attributes: { owner: 'gone' } }) + '\\n');
  process.stdout.write(JSON.stringify({ next: null }) + '\\n');
} else if (op === 'mark') {
  writeFileSync('mark.pid', String(process.pid));
  // Never answers; acts on its own after 3 s, as a delete that was slow to start would.
  setTimeout(() => writeFileSync('acted-late', ''), 3000);
  setInterval(() => {}, 1000);
} else {
  process.exit(1);
}
`;

function fixture(): { dir: string; manifest: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sig2-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'handler.mjs'), HANDLER);
  const call = (op: string) => JSON.stringify([process.execPath, path.join(dir, 'handler.mjs'), op]);
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      'resources:',
      '  - name: things',
      '    command:',
      `      list: ${call('list')}`,
      `      delete: ${call('delete')}`,
      `      mark: ${call('mark')}`,
      `      unmark: ${call('unmark')}`,
      '      timeout: 10m',
      '    owner: { attribute: owner, key: "session:{value}" }',
      '    minAge: 0s',
      '    maxDeleteFraction: 1',
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

/**
 * Run the built CLI with ARGS in DIR; once `busy()` says it is where the test wants it, send
 * `signal`, wait for its notice on stderr, and send it again. Resolves to the exit code.
 */
async function signalTwice(args: string[], dir: string, signal: NodeJS.Signals, busy: () => Promise<boolean>): Promise<number | null> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let noticed!: () => void;
  const notice = new Promise<void>((resolve) => (noticed = resolve));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    if (stderr.includes(`${signal} received`)) noticed();
  });
  let exited = false;
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => ((exited = true), resolve(code))));
  while (!(await busy())) {
    if (exited) throw new Error(`reaper ended before the test could signal it: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill(signal);
  await notice;
  child.kill(signal);
  return exit;
}

/** Whether PID is a live process (a zombie, killed and not yet reaped by its new parent, is not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

interface RunRow {
  kind: string;
  status: string;
  error: string | null;
}

describe('a second signal during reap --execute', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits 130 at once on a second ${signal} and records the run as interrupted`, async () => {
      const { dir, manifest } = fixture();
      // The handler's mark is running once it wrote its pid: the run is inside a batch.
      const code = await signalTwice(['reap', '--execute', '--allow-liveness-drop', '-c', manifest, '--output', 'json'], dir, signal, async () => existsSync(path.join(dir, 'mark.pid')));
      expect(code).toBe(130);
      // The handler call in flight was killed with reaper: it does nothing after reaper has gone.
      expect(alive(Number(readFileSync(path.join(dir, 'mark.pid'), 'utf8')))).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(existsSync(path.join(dir, 'acted-late'))).toBe(false);
      const runs = JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as RunRow[];
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ kind: 'reap', status: 'interrupted' });
      expect(runs[0]!.error).toMatch(/second signal/);
    });
  }
});

describe.skipIf(!serviceAvailable('postgres'))('a second signal during audit', () => {
  it('exits 130 at once while the scan waits on a locked table, and records the run as interrupted', async () => {
    const pgUrl = await freshPgDatabase(cleanups);
    const { default: pg } = await import('pg');
    const holder = new pg.Client({ connectionString: pgUrl });
    await holder.connect();
    cleanups.push(async () => {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    });
    await holder.query(`CREATE TABLE uploads (id int PRIMARY KEY, owner text, created_at timestamptz NOT NULL);
      INSERT INTO uploads VALUES (1, 'gone', now() - interval '2 hours')`);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE');
    const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sig2-'));
    dirs.push(dir);
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        'connections:',
        `  main: { kind: postgres, url: "${pgUrl}" }`,
        'resources:',
        '  - name: uploads',
        '    postgres: { connection: main, table: uploads, id: id, createdAt: created_at }',
        '    owner: { column: owner }',
        '',
      ].join('\n'),
    );
    const database = new URL(pgUrl).pathname.slice(1);
    // Another session of this database waits on a lock: the audit's scan. (Asked outside the
    // holder's transaction, which would keep seeing its first snapshot of the statistics.)
    const watcher = new pg.Client({ connectionString: pgUrl });
    await watcher.connect();
    cleanups.push(() => watcher.end());
    const waiting = async () =>
      Number((await watcher.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [database])).rows[0].n) > 0;
    const code = await signalTwice(['audit', '-c', manifest, '--output', 'json'], dir, 'SIGTERM', waiting);
    expect(code).toBe(130);
    await holder.query('ROLLBACK');
    const runs = JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as RunRow[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ kind: 'audit', status: 'interrupted' });
    expect(runs[0]!.error).toMatch(/second signal/);
  });
});
