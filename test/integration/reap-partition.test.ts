/**
 * `reap --execute` in a partition (docs/safety.md §10, §11, §19): the PostgreSQL state
 * store sits behind a TCP proxy that hangs at an exact statement — the write-ahead
 * batch record (beginBatch) or the outcomes after the deletes (finishBatch) — holding
 * that statement back and then everything else. The run must end within a bounded time
 * with exit 3 (or 130 on SIGTERM), delete nothing it has not journaled, and once the
 * partition heals the next run must converge: every orphan deleted, every live file
 * kept, no journal entry left at `intent`.
 *
 * The state store URL carries `?timeout=2s`, the deadline of each store call; the built
 * binary runs as a CronJob would (run `npm run build` first).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/state/open.js';
import type { StateStore } from '../../src/state/types.js';
import { filesFixture, manifestFile, ownerKey, reapManifest, waitStoreTime, type ReapFixture } from './support/reap-fixture.js';
import { freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

const BIN = path.resolve(__dirname, '../../bin/reaper');
const T = 'items';
/** What binds the run: each store call's deadline, and the per-type lock the hung run cannot release. */
const STORE_TIMEOUT = '2s';
const LOCK_TTL = '3s';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function reap(fx: ReapFixture, onStart?: (kill: (signal: NodeJS.Signals) => void) => void): Promise<Exit> {
  const child = spawn(process.execPath, [BIN, 'reap', '--execute', '--lock-ttl', LOCK_TTL, '-c', manifestFile(fx), '--output', 'json'], {
    cwd: fx.dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  onStart?.((signal) => child.kill(signal));
  // The limit only stops a hang (the old behaviour: a run waiting on the store forever).
  const limit = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const moments = [
  { name: 'at the write-ahead journal (the batch record, beginBatch)', statement: "SET state = 'deleting'" },
  { name: 'after the deletes, while recording their outcomes (finishBatch)', statement: "UPDATE reap_batches SET state = 'done'" },
] as const;

// The tests run side by side (each has its own directory, database and proxy): most of each is waiting on a
// store deadline or a lock's ttl.
describe.skipIf(!serviceAvailable('postgres')).concurrent('reap --execute with a PostgreSQL state store that hangs mid-run', () => {
  /** Run `body` with the test's own cleanups, run when it ends (its database kept when it failed). */
  async function withCleanups(body: (cleanups: (() => Promise<void>)[], failed: () => boolean) => Promise<void>): Promise<void> {
    const cleanups: (() => Promise<void>)[] = [];
    let ok = false;
    try {
      await body(cleanups, () => !ok);
      ok = true;
    } finally {
      await runCleanups(cleanups);
    }
  }

  /** Files of a live owner and orphans of a dead one, marked by a first run; returns what the test needs. */
  async function scene(cleanups: (() => Promise<void>)[], failed: () => boolean): Promise<{ fx: ReapFixture; proxy: TcpProxy; observer: StateStore; live: string[]; orphans: string[] }> {
    const fx = await filesFixture.open();
    cleanups.push(() => fx.cleanup());
    const url = await freshPgDatabase(cleanups, { keep: failed });
    const { proxy, url: proxied } = await TcpProxy.forUrl(url);
    cleanups.push(() => proxy.close());
    const observer = await openStateStore(url);
    cleanups.push(() => observer.close());
    const state = new URL(proxied);
    state.searchParams.set('timeout', STORE_TIMEOUT);
    const manifest = reapManifest(fx, { resources: [{ name: T }], state: { dialect: 'postgres', url: state.toString() } });
    await writeFile(manifestFile(fx), manifest);

    await observer.acquireLease({ key: ownerKey('alice'), holder: 'test', ttlMs: 3_600_000 });
    const live = await fx.create(T, Array.from({ length: 5 }, () => ({ owner: 'alice' })));
    const orphans = await fx.create(T, Array.from({ length: 20 }, () => ({ owner: 'bob' })));
    const first = await reap(fx);
    expect(first.code, first.stderr).toBe(0);
    expect(await observer.countTombstones(T)).toMatchObject({ marked: orphans.length });
    await waitStoreTime(observer, 1_100); // the suite's grace is 1s
    return { fx, proxy, observer, live, orphans };
  }

  /** What disappeared is what the journal names (intent or deleted): nothing deleted unjournaled, nothing live. */
  async function deletedOnlyJournaled(fx: ReapFixture, observer: StateStore, live: readonly string[], orphans: readonly string[]): Promise<void> {
    const present = await fx.present(T);
    for (const id of live) expect(present.has(id), id).toBe(true);
    const gone = orphans.filter((id) => !present.has(id));
    const journaled = new Set((await observer.journal({ resource: T, limit: 1_000 })).map((e) => e.resourceId));
    expect(gone.filter((id) => !journaled.has(id))).toEqual([]);
  }

  async function converges(fx: ReapFixture, observer: StateStore, live: readonly string[], orphans: readonly string[]): Promise<void> {
    // The hung run's per-type lock outlives it by its ttl.
    await waitStoreTime(observer, 3_100);
    const next = await reap(fx);
    expect(next.code, next.stderr).toBe(0);
    const present = await fx.present(T);
    expect([...present].sort()).toEqual([...live].sort());
    expect(orphans.every((id) => !present.has(id))).toBe(true);
    expect(await observer.pendingBatches(T)).toEqual([]);
    expect(await observer.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
  }

  for (const moment of moments) {
    it(`hung ${moment.name}: exit 3 within the store deadlines, nothing deleted unjournaled, the next run converges`, () =>
      withCleanups(async (cleanups, failed) => {
        const { fx, proxy, observer, live, orphans } = await scene(cleanups, failed);
        proxy.hangWhen(moment.statement);
        const hung = await reap(fx);
        expect(proxy.isHung).toBe(true);
        expect(hung.code, hung.stderr).toBe(3);
        expect(hung.stderr).toMatch(/state store postgres:.*: no answer within 2000 ms/);
        // The report of what the run did is printed all the same, the failure in its errors.
        const printed = JSON.parse(hung.stdout) as { errors: string[] };
        expect(printed.errors).toEqual([expect.stringMatching(/^applying stopped: state store postgres:.*: no answer within 2000 ms/)]);
        await deletedOnlyJournaled(fx, observer, live, orphans);
        if (moment.statement.startsWith('SET')) expect((await fx.present(T)).size).toBe(live.length + orphans.length);

        // The partition heals; what was held back reaches the server late, and the next run sorts it out.
        await proxy.resume();
        await converges(fx, observer, live, orphans);
      }),
    );
  }

  it('SIGTERM while the store hangs: exit 130 or 3 within the store deadlines, then the next run converges', () =>
    withCleanups(async (cleanups, failed) => {
      const { fx, proxy, observer, live, orphans } = await scene(cleanups, failed);
      proxy.hangWhen(moments[0].statement);
      let kill: (signal: NodeJS.Signals) => void = () => undefined;
      const running = reap(fx, (k) => (kill = k));
      const hangAt = Date.now();
      while (!proxy.isHung && Date.now() - hangAt < 60_000) await new Promise((r) => setTimeout(r, 20));
      expect(proxy.isHung).toBe(true);
      kill('SIGTERM');
      const stopped = await running;
      expect([3, 130], stopped.stderr).toContain(stopped.code);
      await deletedOnlyJournaled(fx, observer, live, orphans);
      await proxy.resume();
      await converges(fx, observer, live, orphans);
    }),
  );
});
