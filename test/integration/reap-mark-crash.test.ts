/**
 * A visible mark across a crash (docs/safety.md §14): the built CLI (run `npm run build` first) is
 * killed with SIGKILL between a mark batch's tombstone write and its visible mark (`before-mark`),
 * and between the mark and the recording of the fingerprints it answered (`before-confirm`); then
 * either the owners come back, and the reruns must leave no mark on anything and delete nothing,
 * or they stay dead, and the reruns must delete the orphans (after their grace) and nothing else.
 *
 * On a PostgreSQL and a MariaDB table with `mark: { column }` (the mark changes the row's
 * fingerprint: xmin, an ON UPDATE version column) and on S3 with `mark: tag` (tagging leaves the
 * ETag as it was), each with a SQLite state store.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { GetObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { runReap } from '../../src/run/reap.js';
import type { StateStore } from '../../src/state/types.js';
import {
  hookStore,
  loadReapManifest,
  manifestFile,
  mysqlFixture,
  openFixtureStore,
  ownerKey,
  postgresFixture,
  reapManifest,
  s3Fixture,
  waitStoreTime,
  type ReapFixture,
  type ReapFixtureKind,
  type S3ReapFixture,
  type StoreHooks,
} from './support/reap-fixture.js';
import { reaper, report } from './support/reap-cli.js';
import { s3Settings } from './support/services.js';

vi.setConfig({ maxConcurrency: 4 });

const T = 'items';
const HOUR = 3_600_000;
const GRACE_MS = 1_000;

interface Marked {
  kind: ReapFixtureKind;
  /** Called once the type's resources exist: adds what the visible mark needs, writes the manifest; returns how to read the marks. */
  prepare(fx: ReapFixture): Promise<{ marked: () => Promise<string[]>; close: () => Promise<void> }>;
}

/** The connection URL the SQL fixture writes into its manifest. */
const sqlUrl = (fx: ReapFixture): string => /url: "([^"]+)"/.exec(fx.connectionsYaml())![1]!;

/** The fixture's manifest for `items`, with `mark: { column: reaper_mark }`. */
async function writeColumnManifest(fx: ReapFixture): Promise<void> {
  const owner = '    owner: { column: owner, key: "session:{value}" }';
  const text = reapManifest(fx, { resources: [{ name: T }] });
  if (!text.includes(owner)) throw new Error('the SQL fixture no longer writes the owner line this test extends');
  await writeFile(manifestFile(fx), text.replace(owner, `${owner}\n    mark: { column: reaper_mark }`));
}

const backends: Marked[] = [
  {
    kind: postgresFixture,
    async prepare(fx) {
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: sqlUrl(fx) });
      await client.connect();
      await client.query(`ALTER TABLE "${T}" ADD COLUMN reaper_mark text`);
      await writeColumnManifest(fx);
      return {
        marked: async () => (await client.query<{ id: string }>(`SELECT id::text AS id FROM "${T}" WHERE reaper_mark IS NOT NULL `)).rows.map((r) => r.id).sort(),
        close: () => client.end(),
      };
    },
  },
  {
    kind: mysqlFixture,
    async prepare(fx) {
      const driver = await import('mysql2/promise');
      const c = await driver.createConnection({ uri: sqlUrl(fx) });
      await c.query(`ALTER TABLE \`${T}\` ADD COLUMN reaper_mark VARCHAR(100) NULL`);
      await writeColumnManifest(fx);
      return {
        marked: async () => ((await c.query(`SELECT CAST(id AS CHAR) AS id FROM \`${T}\` WHERE reaper_mark IS NOT NULL `))[0] as { id: string }[]).map((r) => r.id).sort(),
        close: () => c.end(),
      };
    },
  },
  {
    kind: s3Fixture,
    async prepare(fx) {
      const s = s3Settings();
      const client = new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
      const bucket = (fx as S3ReapFixture).bucket;
      await writeFile(manifestFile(fx), reapManifest(fx, { resources: [{ name: T, policy: { mark: 'tag' } }] }));
      return {
        marked: async () => {
          const out: string[] = [];
          for (const id of [...(await fx.present(T))].sort()) {
            const tags = (await client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: id }))).TagSet ?? [];
            if (tags.some((t) => t.Key === 'reaper-tombstone')) out.push(id);
          }
          return out;
        },
        close: async () => client.destroy(),
      };
    },
  },
];

interface Scene {
  fx: ReapFixture;
  store: StateStore;
  keep: string[];
  orphans: string[];
  marked: () => Promise<string[]>;
}

async function withScene(b: Marked, body: (s: Scene) => Promise<void>): Promise<void> {
  const fx = await b.kind.open();
  let store: StateStore | null = null;
  let marks: Awaited<ReturnType<Marked['prepare']>> | null = null;
  let ok = false;
  try {
    store = await openFixtureStore(fx);
    await store.acquireLease({ key: ownerKey('anchor'), holder: 'anchor-service', ttlMs: HOUR });
    await store.acquireLease({ key: ownerKey('alice'), holder: 'alice-service', ttlMs: HOUR });
    const keep = await fx.create(T, [{ owner: 'alice' }, { owner: 'bob', protected: true }]);
    const orphans = await fx.create(T, [{ owner: 'dead0' }, { owner: 'dead1' }, { owner: 'dead0' }]);
    marks = await b.prepare(fx);
    await body({ fx, store, keep, orphans, marked: marks.marked });
    ok = true;
  } finally {
    await marks?.close();
    await store?.close();
    await fx.cleanup({ keep: !ok });
    if (!ok) console.warn(`kept ${fx.dir} (${fx.kind})`);
  }
}

/** A reap killed at `failpoint`; then its lock's ttl waited out. */
async function killedAt(s: Scene, failpoint: string): Promise<void> {
  const killed = await reaper(s.fx, ['reap', '--execute', '--lock-ttl', '1s'], { REAPER_FAILPOINT: failpoint });
  expect(killed.signal, killed.stderr).toBe('SIGKILL');
  await waitStoreTime(s.store, 1_100);
}

/** Reruns `reap --execute`, each after the grace, until `done` holds (at most `runs` of them). */
async function rerunUntil(s: Scene, runs: number, done: () => Promise<boolean>): Promise<void> {
  for (let run = 0; run < runs; run++) {
    const exit = await reaper(s.fx, ['reap', '--execute']);
    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    if (await done()) return;
    await waitStoreTime(s.store, GRACE_MS + 20);
  }
}

const sorted = (ids: readonly string[]) => [...ids].sort();

describe('a visible mark across a crash (§14)', { concurrent: true }, () => {
  for (const b of backends) {
    describe.skipIf(!b.kind.available())(`${b.kind.kind}`, { concurrent: true }, () => {
      const points = [
        { failpoint: 'before-mark', what: 'the tombstones written, no mark sent' },
        { failpoint: 'before-confirm', what: 'the marks on, the fingerprints they answered not recorded' },
      ];
      for (const p of points) {
        // guard: applyMarks writes the tombstones before the mark; a tombstone left with the fingerprint
        // read (the mark's not recorded) is judged at its sweep like any other: lifted (changed, or its
        // owner live), and its mark taken off.
        it(`killed at ${p.failpoint} (${p.what}), the owners come back: no mark stays, nothing is deleted`, () =>
          withScene(b, async (s) => {
            await killedAt(s, p.failpoint);
            expect(await s.marked()).toEqual(p.failpoint === 'before-mark' ? [] : sorted(s.orphans));
            expect.soft(await s.store.countTombstones(T)).toMatchObject({ marked: s.orphans.length });
            await s.store.acquireLease({ key: ownerKey('dead0'), holder: 'dead0-service', ttlMs: HOUR });
            await s.store.acquireLease({ key: ownerKey('dead1'), holder: 'dead1-service', ttlMs: HOUR });
            await waitStoreTime(s.store, GRACE_MS + 20);
            await rerunUntil(s, 3, async () => (await s.store.countTombstones(T)).marked === 0 && (await s.marked()).length === 0);
            expect(await s.marked()).toEqual([]);
            expect(await s.fx.present(T)).toEqual(new Set([...s.keep, ...s.orphans]));
            expect(await s.store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
            expect((await s.store.journal({ resource: T })).filter((e) => e.outcome === 'deleted')).toEqual([]);
          }),
        );

        // guard: the same, and a tombstone whose mark was confirmed is swept after its grace.
        it(`killed at ${p.failpoint} (${p.what}), the owners stay dead: the reruns delete the orphans after their grace, and only them`, () =>
          withScene(b, async (s) => {
            await killedAt(s, p.failpoint);
            await waitStoreTime(s.store, GRACE_MS + 20);
            await rerunUntil(s, 6, async () => (await s.fx.present(T)).size === s.keep.length && (await s.store.countTombstones(T)).marked === 0);
            expect(await s.fx.present(T)).toEqual(new Set(s.keep));
            expect(await s.marked()).toEqual([]);
            expect(await s.store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
            const deleted = (await s.store.journal({ resource: T })).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId);
            expect(sorted(deleted)).toEqual(sorted(s.orphans));
          }),
        );
      }

      // guard: a type with a visible mark sweeps only tombstones whose mark was confirmed (the store's
      // confirmMarks, read by decideSweep): a run killed before its marks went on leaves tombstones that
      // the sweep lifts, and the resources are marked afresh, so none is deleted before its mark has
      // shown for a whole grace.
      it('killed at before-mark, the owners stay dead: nothing is deleted before its mark has shown for a grace', () =>
        withScene(b, async (s) => {
          await killedAt(s, 'before-mark');
          await waitStoreTime(s.store, GRACE_MS + 20);
          const first = await reaper(s.fx, ['reap', '--execute']);
          expect(first.code, first.stderr).toBe(0);
          expect(report(first).resources[0]!.outcomes).toMatchObject({ deleted: 0, lifted: s.orphans.length });
          expect(report(first).resources[0]!.lifts).toEqual({ 'mark-unconfirmed': s.orphans.length });
          expect(await s.fx.present(T)).toEqual(new Set([...s.keep, ...s.orphans]));
          const second = await reaper(s.fx, ['reap', '--execute']);
          expect(second.code, second.stderr).toBe(0);
          expect(report(second).resources[0]!.outcomes).toMatchObject({ marked: s.orphans.length, deleted: 0 });
          expect(await s.marked()).toEqual(sorted(s.orphans));
          await waitStoreTime(s.store, GRACE_MS + 20);
          const third = await reaper(s.fx, ['reap', '--execute']);
          expect(third.code, third.stderr).toBe(0);
          expect(report(third).resources[0]!.outcomes).toMatchObject({ deleted: s.orphans.length, lifted: 0 });
          expect(await s.fx.present(T)).toEqual(new Set(s.keep));
        }),
      );

      // guard: applyMarks records the fingerprint each mark answered; without it, where the mark changes
      // the fingerprint, the sweep would find every marked resource changed and never delete it.
      it('uninterrupted: marked and tombstoned with the fingerprint the mark answered, swept after one grace', () =>
        withScene(b, async (s) => {
          const first = await reaper(s.fx, ['reap', '--execute']);
          expect(first.code, first.stderr).toBe(0);
          expect(report(first).resources[0]!.outcomes).toMatchObject({ marked: s.orphans.length });
          expect(await s.marked()).toEqual(sorted(s.orphans));
          await waitStoreTime(s.store, GRACE_MS + 20);
          const second = await reaper(s.fx, ['reap', '--execute']);
          expect(second.code, second.stderr).toBe(0);
          expect(report(second).resources[0]!.outcomes).toMatchObject({ deleted: s.orphans.length, lifted: 0 });
          expect(await s.fx.present(T)).toEqual(new Set(s.keep));
          expect(await s.marked()).toEqual([]);
        }),
      );

      // guard: takeMarksOff after every lift of a sweep, not only the plan's own lifts: here a saved
      // plan's sweep, judged again at --execute (reverifySweeps), finds the owners back.
      it('a saved plan whose owners came back lifts the tombstones and takes their marks off', () =>
        withScene(b, async (s) => {
          const first = await reaper(s.fx, ['reap', '--execute']);
          expect(first.code, first.stderr).toBe(0);
          expect(await s.marked()).toEqual(sorted(s.orphans));
          await waitStoreTime(s.store, GRACE_MS + 20);
          const planned = await reaper(s.fx, ['reap', '--plan-out', 'plan.ndjson']);
          expect(planned.code, planned.stderr).toBe(0);
          expect(report(planned).resources[0]!.toSweep).toBe(s.orphans.length);
          await s.store.acquireLease({ key: ownerKey('dead0'), holder: 'dead0-service', ttlMs: HOUR });
          await s.store.acquireLease({ key: ownerKey('dead1'), holder: 'dead1-service', ttlMs: HOUR });
          const applied = await reaper(s.fx, ['reap', '--execute', '--plan', 'plan.ndjson']);
          expect(applied.code, applied.stderr).toBe(0);
          expect(report(applied).resources[0]!.outcomes).toMatchObject({ deleted: 0, lifted: s.orphans.length });
          expect(await s.marked()).toEqual([]);
          expect(await s.fx.present(T)).toEqual(new Set([...s.keep, ...s.orphans]));
        }),
      );

      // guard: takeMarksOff for the tombstones the last look spares (an owner back after the write-ahead).
      it('owners that come back just before the delete keep their resources, and the marks come off', () =>
        withScene(b, async (s) => {
          const manifest = loadReapManifest(s.fx, await readFile(manifestFile(s.fx), 'utf8'));
          const first = await runReap(manifest, { execute: true, store: s.store });
          expect(first.resources[0]!.outcomes).toMatchObject({ marked: s.orphans.length });
          await waitStoreTime(s.store, GRACE_MS + 20);
          const hooks: StoreHooks = {
            beginBatch: async (next, ...args) => {
              const batch = await next(...args);
              await s.store.acquireLease({ key: ownerKey('dead0'), holder: 'dead0-service', ttlMs: HOUR });
              await s.store.acquireLease({ key: ownerKey('dead1'), holder: 'dead1-service', ttlMs: HOUR });
              return batch;
            },
          };
          const second = await runReap(manifest, { execute: true, store: hookStore(s.store, hooks) });
          expect(second.resources[0]!.outcomes).toMatchObject({ deleted: 0, lifted: s.orphans.length });
          expect(await s.marked()).toEqual([]);
          expect(await s.fx.present(T)).toEqual(new Set([...s.keep, ...s.orphans]));
        }),
      );

      // guard: applyMarks marks only the tombstones its own batch wrote: a stale saved plan's marks of
      // resources another run has marked since leave those runs' tombstones and marks alone.
      it('a saved plan applied after another run marked its resources marks nothing again', () =>
        withScene(b, async (s) => {
          const planned = await reaper(s.fx, ['reap', '--plan-out', 'plan.ndjson']);
          expect(planned.code, planned.stderr).toBe(0);
          expect(report(planned).resources[0]!.toMark).toBe(s.orphans.length);
          const other = await reaper(s.fx, ['reap', '--execute']);
          expect(other.code, other.stderr).toBe(0);
          expect(report(other).resources[0]!.outcomes).toMatchObject({ marked: s.orphans.length });
          const before = await s.store.findTombstones({ resource: T });
          const stale = await reaper(s.fx, ['reap', '--execute', '--plan', 'plan.ndjson']);
          expect(stale.code, stale.stderr).toBe(0);
          expect(report(stale).resources[0]!.outcomes).toMatchObject({ marked: 0 });
          expect(await s.store.findTombstones({ resource: T })).toEqual(before);
          expect(await s.marked()).toEqual(sorted(s.orphans));
        }),
      );

      // guard: applyMarks reads its tombstones back after confirming: one lifted meanwhile (a restore
      // between the tombstone write and the mark found no mark to take off) gets its mark taken off.
      it('tombstones lifted by a restore between their write and the mark: the mark that went on after comes off', () =>
        withScene(b, async (s) => {
          let written = false;
          const hooks: StoreHooks = {
            insertTombstones: async (next, runId, items) => {
              const n = await next(runId, items);
              written = true;
              return n;
            },
            activeTombstones: async (next, resource, ids) => {
              const found = await next(resource, ids);
              if (written) {
                written = false;
                // What `restore --resource items` does to marked tombstones: lift them (no mark is on yet).
                await s.store.liftTombstones('restore-run', [...found.values()].map((t) => t.tombstoneId), 'restored by operator');
              }
              return found;
            },
          };
          const manifest = loadReapManifest(s.fx, await readFile(manifestFile(s.fx), 'utf8'));
          const run = await runReap(manifest, { execute: true, store: hookStore(s.store, hooks) });
          expect(run.resources[0]!.outcomes).toMatchObject({ marked: 0 });
          expect(await s.marked()).toEqual([]);
          expect(await s.store.countTombstones(T)).toMatchObject({ marked: 0 });
        }),
      );

      // guard: applyMarks lifts the fresh tombstone of a resource the mark did not answer: nothing is swept on
      // a fingerprint the mark did not confirm.
      it('a resource changed between the tombstone write and the mark is not marked, its fresh tombstone lifted at once', () =>
        withScene(b, async (s) => {
          const [changed, ...rest] = s.orphans;
          const hooks: StoreHooks = {
            insertTombstones: async (next, runId, items) => {
              const n = await next(runId, items);
              await s.fx.rewrite(T, changed!);
              return n;
            },
          };
          const manifest = loadReapManifest(s.fx, await readFile(manifestFile(s.fx), 'utf8'));
          const first = await runReap(manifest, { execute: true, store: hookStore(s.store, hooks) });
          expect(first.resources[0]!.outcomes).toMatchObject({ marked: rest.length, lifted: 0 });
          expect(await s.marked()).toEqual(sorted(rest));
          const tombstones = await s.store.findTombstones({ resource: T, resourceId: changed! });
          expect(tombstones.map((t) => [t.state, t.note])).toEqual([['lifted', 'changed before the mark']]);
          expect(await s.store.countTombstones(T)).toMatchObject({ marked: rest.length });
          // Still an orphan: marked afresh by the next run, while the others are swept.
          await waitStoreTime(s.store, GRACE_MS + 20);
          const second = await runReap(manifest, { execute: true, store: s.store });
          expect(second.resources[0]!.outcomes).toMatchObject({ deleted: rest.length, marked: 1, lifted: 0 });
          expect(await s.marked()).toEqual([changed]);
        }),
      );
    });
  }
});
