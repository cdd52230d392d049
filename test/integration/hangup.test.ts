/**
 * SIGHUP (the terminal closed, a `kubectl exec` or ssh session gone) stops a reap the way
 * SIGTERM does: it stops at its next safe point, exits 130, records its run `interrupted` and
 * gives up its lock (docs/safety.md §19). Without a handler Node.js dies of it (129), leaving
 * the run `running` and the lock held until its ttl. (The daemon's SIGHUP: daemon.test.ts.)
 *
 * The reap stops itself (a failpoint's SIGSTOP) after planning, holding its lock; the test
 * sends SIGHUP and then SIGCONT, so the signal is there when the process runs again.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { filesFixture, manifestFile, openFixtureStore, ownerKey, reapManifest } from './support/reap-fixture.js';
import { reaper, start } from './support/reap-cli.js';
import { stopped, until } from './support/child-state.js';
import { runCleanups } from './support/services.js';
import { reaperSync, removeTempDirs } from './support/cli.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await runCleanups(cleanups);
  removeTempDirs();
});

const HOUR = 3_600_000;

interface RunRow {
  kind: string;
  status: string;
}

describe('SIGHUP', () => {
  it('stops a reap as SIGTERM does: exit 130, the run recorded interrupted, its lock given up', async () => {
    const fx = await filesFixture.open();
    cleanups.push(() => fx.cleanup());
    await fx.create('items', [1, 2, 3].map(() => ({ owner: 'gone', ageMs: 2 * HOUR })));
    writeFileSync(manifestFile(fx), reapManifest(fx, { resources: [{ name: 'items' }] }));
    const store = await openFixtureStore(fx);
    await store.acquireLease({ key: ownerKey('alive'), holder: 'test', ttlMs: HOUR });
    await store.close();

    const run = start(fx, ['reap', '--execute'], { REAPER_FAILPOINT: 'after-plan:1:stop' });
    await until('the reap to stop itself after planning', () => stopped(run.child) || run.child.exitCode !== null);
    expect(run.child.exitCode, 'the reap ended instead of stopping at its failpoint').toBeNull();
    run.child.kill('SIGHUP');
    run.child.kill('SIGCONT');
    const exit = await run.exit;
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(130);
    expect(exit.stderr).toMatch(/SIGHUP received; finishing the current batch/);

    const runs = JSON.parse(reaperSync(['runs', '-c', manifestFile(fx), '--output', 'json'], { cwd: fx.dir }).stdout) as RunRow[];
    expect(runs[0]).toMatchObject({ kind: 'reap', status: 'interrupted' });
    // The lock went with the run: the next reap takes it (a held lock is exit 4).
    const next = await reaper(fx, ['reap', '--execute']);
    expect(next.stderr).not.toMatch(/holds the lock/);
    expect(next.code).toBe(0);
  });
});
