/**
 * What a run killed with -9 leaves behind, and how the next run settles it (library
 * level; the same through the built CLI is in reap-crash.test.ts):
 * - its run record: kept alive by a heartbeat while the run's context is open, recorded
 *   `abandoned` by a later run once the heartbeat lapsed;
 * - files it had renamed into quarantine and not yet unlinked (or linked back), with the run's
 *   state on SQLite and on PostgreSQL (and MySQL in the long matrix).
 */
import { appendFile, link, lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { quarantineName } from '../../src/backends/fs/fs-sweep.js';
import { openRunContext } from '../../src/run/context.js';
import type { ReapReport } from '../../src/report/reap-report.js';
import { runReap } from '../../src/run/reap.js';
import type { StateStore } from '../../src/state/types.js';
import { filesFixture, freshSceneState, fullMatrix, loadReapManifest, openFixtureStore, ownerKey, reapManifest, reapPairs, waitStoreTime, type ReapFixture, type SceneState } from './support/reap-fixture.js';
import { runCleanups } from './support/services.js';

// A seam in the files sweep: an unlink of a quarantined file can be made to throw, as a run killed
// between its rename into quarantine and the unlink leaves things (the write-ahead intents stay open).
// Every unlink in the batch throws while it is on: the batch's files are swept side by side, so the
// seam stays on until each of them has met it (`thrown`), as a real kill stops them all.
const fsSeam = vi.hoisted(() => ({ crashBeforeUnlink: false, thrown: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const hooked = async (file: Parameters<typeof real.unlink>[0]) => {
    if (fsSeam.crashBeforeUnlink && String(file).includes(`${path.sep}.reaper-quarantine${path.sep}`)) {
      fsSeam.thrown++;
      throw new Error('killed between the rename and the unlink (simulated)');
    }
    return real.unlink(file);
  };
  return { ...real, unlink: hooked, default: { ...real, unlink: hooked } };
});

describe('run records of killed runs', () => {
  // guard: the heartbeat a run context keeps (context.startRun); without it a long run would be recorded
  // abandoned while it runs, and with it never stopped a killed run could not be told from a live one.
  it('a run stays running past its ttl while its context is open, and lapses to abandoned once it is closed', async () => {
    const fx = await filesFixture.open();
    const store = await openFixtureStore(fx);
    try {
      const manifest = loadReapManifest(fx, reapManifest(fx, { resources: [{ name: 'items' }] }));
      const context = await openRunContext(manifest);
      const run = await context.startRun({ kind: 'audit', manifestDigest: manifest.digest, execute: false }, 300);
      try {
        await waitStoreTime(store, 1_000); // three ttls
        await store.startRun({ kind: 'audit', manifestDigest: manifest.digest, execute: false }); // abandons what lapsed
        const alive = (await store.getRun(run.runId))!;
        expect(alive.status).toBe('running');
        expect(alive.heartbeatAt).toBeGreaterThan(run.startedAt);
      } finally {
        await context.close();
      }
      const last = (await store.getRun(run.runId))!;
      await waitStoreTime(store, 400);
      expect(await store.abandonStaleRuns()).toBe(1); // this one (the run started above has the default ttl)
      expect(await store.getRun(run.runId)).toMatchObject({ status: 'abandoned', finishedAt: last.heartbeatAt });
    } finally {
      await store.close();
      await fx.cleanup();
    }
  });
});

const T = 'items';
const only = (report: ReapReport) => report.resources[0]!;

interface Scene {
  fx: ReapFixture;
  store: StateStore;
  /** Orphans swept into quarantine by a run that died before unlinking them. */
  swept: string[];
  quarantine: string;
  reap(): Promise<ReapReport>;
}

/** Two orphans marked, then swept by a run that dies between the rename into quarantine and the unlink. */
async function killedMidSweep(fx: ReapFixture, store: StateStore, state: SceneState): Promise<Scene> {
  await store.acquireLease({ key: ownerKey('alice'), holder: 'alice-service', ttlMs: 3_600_000 });
  await fx.create(T, [{ owner: 'alice' }]);
  const swept = await fx.create(T, [{ owner: 'bob', bytes: 11 }, { owner: 'bob', bytes: 13 }]);
  const manifest = loadReapManifest(fx, reapManifest(fx, { resources: [{ name: T }], state }));
  const reap = () => runReap(manifest, { execute: true, store });
  expect(only(await reap()).outcomes.marked).toBe(2);
  await waitStoreTime(store, 1_020);
  fsSeam.crashBeforeUnlink = true;
  fsSeam.thrown = 0;
  try {
    await expect(reap()).rejects.toThrow(/killed between the rename and the unlink/);
    await vi.waitFor(() => expect(fsSeam.thrown).toBe(swept.length));
  } finally {
    fsSeam.crashBeforeUnlink = false;
  }
  const quarantine = path.join(fx.dir, 'data', T, '.reaper-quarantine');
  expect((await store.journal({ resource: T })).map((e) => e.outcome)).toEqual(['intent', 'intent']);
  expect(await readdir(quarantine)).toHaveLength(2);
  return { fx, store, swept, quarantine, reap };
}

/** `body` on a sweep killed mid-way, its runs on a fresh state store of `dialect`; kept as evidence when it fails. */
async function withKilledSweep(dialect: SceneState['dialect'], body: (s: Scene) => Promise<void>): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  let passed = false;
  const state = await freshSceneState(dialect, cleanups, () => !passed);
  const fx = await filesFixture.open();
  const store = await openFixtureStore(fx, state);
  try {
    await body(await killedMidSweep(fx, store, state));
    passed = true;
  } finally {
    await store.close();
    await fx.cleanup({ keep: !passed });
    await runCleanups(cleanups);
  }
}

const copyOf = async (s: Scene, id: string) => {
  const [tombstone] = await s.store.findTombstones({ resource: T, resourceId: id });
  const names = await readdir(s.quarantine);
  const hash = quarantineName({ id, fingerprint: tombstone!.fingerprint }, 0).split('-')[1];
  return path.join(s.quarantine, names.find((n) => n.endsWith(`-${hash}`))!);
};

// The files backend on SQLite and PostgreSQL (the MySQL store with REAPER_TEST_FULL=1: it adds some 5 s;
// reap-crash.test.ts kills a sweep after its rename on every store already).
for (const pair of reapPairs().filter((p) => p.backend === filesFixture && (fullMatrix || p.store !== 'mysql'))) {
  // Skipped only when a service is missing here; under CI the global setup fails instead.
  describe.skipIf(!pair.available())(`files a killed sweep left in quarantine (no retain), ${pair.store} store`, () => {
    // guard: recovery of pending intents finishes the delete of a quarantined copy that is the journaled file.
    it('are unlinked by the next run when they are the journaled files: the journal and the quarantine agree', () =>
      withKilledSweep(pair.store, async (s) => {
        const next = only(await s.reap());
        expect(next.outcomes).toMatchObject({ deleted: 2, failed: 0, bytesReclaimed: 24 });
        expect(await readdir(s.quarantine)).toEqual([]);
        const journal = await s.store.journal({ resource: T });
        expect(journal.map((e) => [e.resourceId, e.outcome]).sort()).toEqual(s.swept.map((id) => [id, 'deleted']).sort());
        expect(await s.store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
        expect(await s.fx.present(T)).toEqual(new Set([expect.stringMatching(/^alice\//)]));
      }));

    // guard: a quarantined copy whose identity is not the journaled one (a file replaced between the sweep's
    // check and its rename, the process killed before it linked it back) is put back, never unlinked.
    it('are put back when they are not the journaled files, and a half-done put-back is finished', () =>
      withKilledSweep(pair.store, async (s) => {
        const [changed, relinked] = s.swept as [string, string];
        const changedCopy = await copyOf(s, changed);
        const relinkedCopy = await copyOf(s, relinked);
        await appendFile(changedCopy, ' and more'); // not the file the journal fingerprinted
        await appendFile(relinkedCopy, ' and more');
        // The killed run had linked this one back already, and died before unlinking its copy.
        await link(relinkedCopy, path.join(s.fx.dir, 'data', T, ...relinked.split('/')));
        const next = only(await s.reap());
        expect(next.outcomes).toMatchObject({ deleted: 0, lifted: 2, failed: 0 });
        expect(next.lifts).toEqual({ changed: 2 });
        expect(await readdir(s.quarantine)).toEqual([]);
        for (const id of s.swept) expect(await readFile(path.join(s.fx.dir, 'data', T, ...id.split('/')), 'utf8')).toMatch(/ and more$/);
        expect((await lstat(path.join(s.fx.dir, 'data', T, ...relinked.split('/')))).nlink).toBe(1);
        const journal = await s.store.journal({ resource: T });
        expect(journal.map((e) => e.outcome)).toEqual(['changed', 'changed']);
        expect(await s.store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
      }));

    // guard: a put-back never clobbers: a new file at the path wins, and the copy stays, reported.
    it('stay in quarantine, reported, when they are not the journaled files and their path is taken again', () =>
      withKilledSweep(pair.store, async (s) => {
        const [changed] = s.swept as [string, string];
        const changedCopy = await copyOf(s, changed);
        await appendFile(changedCopy, ' and more');
        const source = path.join(s.fx.dir, 'data', T, ...changed.split('/'));
        await writeFile(source, 'a new file under the same name');
        const next = only(await s.reap());
        expect(next.outcomes).toMatchObject({ deleted: 1, lifted: 1, failed: 0 });
        expect(await readFile(source, 'utf8')).toBe('a new file under the same name');
        expect(await readdir(s.quarantine)).toEqual([path.basename(changedCopy)]);
        const entry = (await s.store.journal({ resource: T })).find((e) => e.resourceId === changed)!;
        expect(entry).toMatchObject({ outcome: 'changed', error: expect.stringContaining(changedCopy) });
      }));
  });
}
