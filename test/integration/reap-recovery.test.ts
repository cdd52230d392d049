/**
 * What a run killed with -9 leaves behind, and how the next run settles it (library
 * level; the same through the built CLI is in reap-crash.test.ts):
 * - its run record: kept alive by a heartbeat while the run's context is open, recorded
 *   `abandoned` by a later run once the heartbeat lapsed;
 * - files it had renamed into quarantine and not yet unlinked (or linked back).
 */
import { appendFile, link, lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { quarantineName } from '../../src/backends/fs/fs-sweep.js';
import { openRunContext } from '../../src/run/context.js';
import type { ReapReport } from '../../src/report/reap-report.js';
import { runReap } from '../../src/run/reap.js';
import type { StateStore } from '../../src/state/types.js';
import { filesFixture, loadReapManifest, openFixtureStore, ownerKey, reapManifest, waitStoreTime, type ReapFixture } from './support/reap-fixture.js';

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
async function killedMidSweep(fx: ReapFixture, store: StateStore): Promise<Scene> {
  await store.acquireLease({ key: ownerKey('alice'), holder: 'alice-service', ttlMs: 3_600_000 });
  await fx.create(T, [{ owner: 'alice' }]);
  const swept = await fx.create(T, [{ owner: 'bob', bytes: 11 }, { owner: 'bob', bytes: 13 }]);
  const manifest = loadReapManifest(fx, reapManifest(fx, { resources: [{ name: T }] }));
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

async function withKilledSweep(body: (s: Scene) => Promise<void>): Promise<void> {
  const fx = await filesFixture.open();
  const store = await openFixtureStore(fx);
  let passed = false;
  try {
    await body(await killedMidSweep(fx, store));
    passed = true;
  } finally {
    await store.close();
    await fx.cleanup({ keep: !passed });
  }
}

const copyOf = async (s: Scene, id: string) => {
  const [tombstone] = await s.store.findTombstones({ resource: T, resourceId: id });
  const names = await readdir(s.quarantine);
  const hash = quarantineName({ id, fingerprint: tombstone!.fingerprint }, 0).split('-')[1];
  return path.join(s.quarantine, names.find((n) => n.endsWith(`-${hash}`))!);
};

describe('files a killed sweep left in quarantine (no retain)', () => {
  // guard: recovery of pending intents finishes the delete of a quarantined copy that is the journaled file.
  it('are unlinked by the next run when they are the journaled files: the journal and the quarantine agree', () =>
    withKilledSweep(async (s) => {
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
    withKilledSweep(async (s) => {
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
    withKilledSweep(async (s) => {
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
