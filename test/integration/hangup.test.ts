/**
 * SIGHUP (the terminal closed, a `kubectl exec` or ssh session gone) stops reaper the way
 * SIGTERM does: a reap stops at its next safe point, exits 130, records its run
 * `interrupted` and gives up its lock (docs/safety.md §19); the daemon stops and, with `--release-on-exit`,
 * releases its leases. Without a handler Node.js dies of it (129), leaving the run
 * `running` and the lock held until its ttl.
 *
 * The reap stops itself (a failpoint's SIGSTOP) after planning, holding its lock; the test
 * sends SIGHUP and then SIGCONT, so the signal is there when the process runs again.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { filesFixture, manifestFile, openFixtureStore, ownerKey, reapManifest } from './support/reap-fixture.js';
import { reaper, start } from './support/reap-cli.js';
import { stopped, until } from './support/child-state.js';
import { runCleanups } from './support/services.js';
import { BIN, reaperSync, removeTempDirs, tmp } from './support/cli.js';
import { openStateStore } from '../../src/state/open.js';

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

  it('stops the daemon as SIGTERM does: exit 0, and --release-on-exit releases its leases', async () => {
    const dir = tmp('reaper-hup-');
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, 'hangup-test-token-0123456789abcdef', { mode: 0o600 });
    const state = `sqlite:${path.join(dir, 'state.db')}`;
    const child = spawn(
      process.execPath,
      [BIN, 'daemon', '--state', state, '--lease', 'svc:hup', '--ttl', '1h', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--release-on-exit'],
      { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    try {
      await until('the daemon to be ready', () => out.includes('"event":"ready"') || child.exitCode !== null);
      child.kill('SIGHUP');
      expect(await exited).toEqual({ code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(out).toMatch(/"signal":"SIGHUP"/);
    const after = await openStateStore(state);
    try {
      expect(await after.liveKeys(['svc:hup'])).toEqual(new Set());
    } finally {
      await after.close();
    }
  });
});
