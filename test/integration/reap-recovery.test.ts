/**
 * What a run killed with -9 leaves behind, and how the next run settles it (library
 * level; the same through the built CLI is in reap-crash.test.ts):
 * - its run record: kept alive by a heartbeat while the run's context is open, recorded
 *   `abandoned` by a later run once the heartbeat lapsed;
 * - files it had renamed into quarantine and not yet unlinked (or linked back).
 */
import { describe, expect, it } from 'vitest';
import { openRunContext } from '../../src/run/context.js';
import { filesFixture, loadReapManifest, openFixtureStore, reapManifest, waitStoreTime } from './support/reap-fixture.js';

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
