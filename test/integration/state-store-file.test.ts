/**
 * The SQLite state store's file taken away from a process that has it open: removed, or
 * replaced by another file under the same path (a backup put back, a volume swapped). The
 * open handle still writes to the old file, which no other process reads any more, so every
 * write from then on would be lost: a lease renewed where no reaper sees it, a sweep's
 * write-ahead entry in a file that is gone. The store notices and refuses instead
 * (docs/safety.md §10, §17).
 * - a store whose file was removed or replaced refuses its next statement, naming the file;
 * - a reap whose store file is replaced mid-run stops before it deletes anything;
 * - a driver error outside a statement's run (preparing one on a dropped table) names the store too;
 * - a store in a directory the user cannot write says so, not only SQLite's "unable to open";
 * - a write that finds the disk full says so, and that the next run settles what was under way
 *   (root only: a small tmpfs).
 * Outside CI a missing privilege or tool skips its test; under CI=true it fails the run.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { filesFixture, manifestFile, ownerKey, reapManifest, stateFile, waitStoreTime, openFixtureStore } from './support/reap-fixture.js';
import { start, reaper, report } from './support/reap-cli.js';
import { stopped, until } from './support/child-state.js';
import { runCleanups } from './support/services.js';
import { reaperSync, tmp, removeTempDirs } from './support/cli.js';
import { requiredUnderCI } from './support/ci.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await runCleanups(cleanups);
  removeTempDirs();
});

const HOUR = 3_600_000;
const isRoot = process.getuid?.() === 0;
const haveSetpriv = spawnSync('setpriv', ['--version']).status === 0;
requiredUnderCI('the store-file tests', {
  root: { have: isRoot, hint: 'run the tests as root (the full-disk test mounts a small tmpfs)' },
  setpriv: { have: !isRoot || haveSetpriv, hint: 'apt-get install util-linux (as root, setpriv runs the CLI as nobody)' },
});

/** Put a copy of the store's files (database, WAL) over the originals: same content, another file. */
function replaceWithCopy(file: string): void {
  for (const suffix of ['', '-wal']) {
    if (!existsSync(file + suffix)) continue;
    copyFileSync(file + suffix, `${file}${suffix}.copy`);
    renameSync(`${file}${suffix}.copy`, file + suffix);
  }
}

describe('a SQLite state store whose file is taken away while open', () => {
  for (const how of ['removed', 'replaced'] as const) {
    it(`refuses the next statement once its file was ${how}, naming the file`, async () => {
      const file = path.join(tmp('reaper-store-file-'), 'state.db');
      const store = await SqliteStateStore.open(file);
      cleanups.push(() => store.close());
      const lease = await store.acquireLease({ key: 'session:a', holder: 'test', ttlMs: 60_000 });
      if (how === 'removed') for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      else replaceWithCopy(file);
      await expect(store.renewLeases([lease.leaseId], { ttlMs: 60_000 })).rejects.toThrow(new RegExp(`${file}.*(removed|replaced)`));
      await expect(store.acquireLease({ key: 'session:b', holder: 'test', ttlMs: 60_000 })).rejects.toThrow(/removed|replaced/);
    });
  }

  it('a reap whose store file is replaced mid-run (after planning) deletes nothing and says why', async () => {
    const fx = await filesFixture.open();
    cleanups.push(() => fx.cleanup());
    const orphans = await fx.create('items', [1, 2, 3].map(() => ({ owner: 'gone', ageMs: 2 * HOUR })));
    const live = await fx.create('items', [{ owner: 'alive', ageMs: 2 * HOUR }]);
    writeFileSync(manifestFile(fx), reapManifest(fx, { resources: [{ name: 'items' }] }));
    const store = await openFixtureStore(fx);
    await store.acquireLease({ key: ownerKey('alive'), holder: 'test', ttlMs: HOUR });
    const mark = await reaper(fx, ['reap', '--execute']);
    expect(mark.code, mark.stderr).toBe(0);
    expect(report(mark).resources[0]!.outcomes.marked).toBe(orphans.length);
    await waitStoreTime(store, 1_100);
    await store.close();

    const sweep = start(fx, ['reap', '--execute'], { REAPER_FAILPOINT: 'after-plan:1:stop' });
    await until('the sweep to stop itself after planning', () => stopped(sweep.child) || sweep.child.exitCode !== null);
    expect(sweep.child.exitCode, 'the sweep ended instead of stopping at its failpoint').toBeNull();
    replaceWithCopy(stateFile(fx));
    sweep.child.kill('SIGCONT');
    const exit = await sweep.exit;
    expect(exit.stderr).toMatch(/state store .*state\.db.*(removed|replaced)/);
    expect(exit.code).not.toBe(0);
    expect([...(await fx.present('items'))].sort()).toEqual([...orphans, ...live].sort());
  });

  it('a table dropped under an open store: the error names the store, as every driver error does', async () => {
    const file = path.join(tmp('reaper-store-file-'), 'state.db');
    const store = await SqliteStateStore.open(file);
    cleanups.push(() => store.close());
    const { default: Database } = await import('better-sqlite3');
    const other = new Database(file);
    other.exec('DROP TABLE leases');
    other.close();
    // Twice: the first statement finds the schema changed as it runs; the next fails as it is prepared.
    for (const key of ['session:a', 'session:b']) {
      await expect(store.acquireLease({ key, holder: 'test', ttlMs: 60_000 })).rejects.toThrow(`state store sqlite:${file}`);
    }
  });
});

describe('a SQLite state store the user cannot write', () => {
  it.skipIf(isRoot && !haveSetpriv)('names the directory that is not writable', () => {
    const base = tmp('reaper-store-ro-');
    chmodSync(base, 0o755);
    const dir = path.join(base, 'state');
    mkdirSync(dir);
    // Root-owned and 0755: not writable for nobody; as another user, 0555 does it.
    if (!isRoot) chmodSync(dir, 0o555);
    // A command that creates the store (reading commands only say there is none yet).
    const r = reaperSync(['lease', 'acquire', 'svc:a', '--ttl', '60s', '--state', `sqlite:${path.join(dir, 'state.db')}`], {
      cwd: base,
      env: { HOME: base },
      ...(isRoot ? { user: { user: 'nobody', group: 'nogroup' } } : {}),
    });
    chmodSync(dir, 0o755);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot open the state store sqlite:${path.join(dir, 'state.db')}`);
    expect(r.stderr).toMatch(new RegExp(`${dir} is not writable \\((EACCES|EROFS)\\)`));
  });
});

describe.skipIf(!isRoot)('a SQLite state store on a full disk', () => {
  it('a write that finds the disk full says so and what then happens', async () => {
    const mnt = tmp('reaper-store-full-');
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt], { encoding: 'utf8' });
    expect(mounted.status, mounted.stderr).toBe(0);
    cleanups.push(async () => void spawnSync('umount', [mnt]));
    const store = await SqliteStateStore.open(path.join(mnt, 'state.db'));
    cleanups.push(() => store.close());
    spawnSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'filler')}`, 'bs=4k']);
    const keys = Array.from({ length: 200 }, (_, i) => `session:${i}`);
    await expect(store.acquireLeases(keys, { holder: 'test', ttlMs: 60_000 })).rejects.toThrow(
      /database or disk is full; hint: the disk of the state store is full: free space there; what a run was doing is settled by the next run/,
    );
  });
});
