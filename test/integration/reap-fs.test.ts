/**
 * The reap safety suite (docs/safety.md §1–§10, §12–§15), library-level: runReap / runRestore /
 * runAudit against every backend fixture in support/reap-fixture.ts — files, S3 (moto),
 * PostgreSQL and MariaDB — over a SQLite state store, and the files backend over a
 * PostgreSQL and a MariaDB state store too (every pair with REAPER_TEST_FULL=1; see
 * `reapPairs`). Crash and signal tests that need the real process are in reap-crash.test.ts.
 *
 * Every guard has a negative test: a scenario in which something would be deleted if the
 * guard were gone. The comment `guard:` above each test names it.
 *
 * The backends' blocks run concurrently, each test with its own directory, store and
 * bucket/database. Scenarios read the fixture's `traits` where a backend cannot express
 * something: S3 cannot backdate an object (LastModified is the upload time), so it runs
 * with `minAge: 0s` and without young resources; a SQL row's size is its stored size, not
 * a seed's byte count. Scenarios that only make sense for one backend are in the blocks
 * at the end, each saying why.
 *
 * What the servers under the §3 scenarios enforce (a test must not claim a property
 * its server cannot fail):
 * - S3 on moto: moto ignores the per-object ETags of a DeleteObjects batch, but enforces
 *   If-Match on a single DeleteObject. reaper's adapter probes this and deletes one object
 *   at a time with If-Match, so "rewritten/replaced after the re-verification survives"
 *   is a server-side precondition here; on a server where neither held, reaper would
 *   refuse to delete at all (`s3-no-conditional-delete`). An unversioned bucket's only
 *   identity is the ETag, so the S3 fixture's `replace` re-uploads different bytes (see
 *   reap-fixture-s3.ts); the byte-identical re-upload is covered on a versioned bucket.
 * - PostgreSQL: the DELETE's WHERE re-checks id, xmin, owner, `where` and protect rules.
 * - MariaDB: the same checks on rows locked FOR UPDATE in the deleting transaction, with
 *   the fixture's `version: updated_at` column as the fingerprint.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, PutObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { fileFingerprint } from '../../src/backends/fs/fs-identity.js';
import { BackendError, InterruptedError, LeaseLostError, SafetyError } from '../../src/errors.js';
import type { Manifest } from '../../src/manifest/types.js';
import { runAudit } from '../../src/run/audit.js';
import type { ReapReport } from '../../src/report/reap-report.js';
import { runReap, type ReapOptions } from '../../src/run/reap.js';
import type { PlanHeader } from '../../src/run/plan-file.js';
import { runRestore } from '../../src/run/restore.js';
import type { JournalEntry, StateStore, StoreDialect } from '../../src/state/types.js';
import {
  freshSceneState,
  hookStore,
  loadReapManifest,
  openFixtureStore,
  ownerKey,
  reapManifest,
  reapPairs,
  filesFixture,
  s3Fixture,
  waitStoreTime,
  type FixtureOptions,
  type ManifestOptions,
  type Policy,
  type ReapFixture,
  type ReapFixtureKind,
  type ResourceOptions,
  type SceneState,
  type StoreHooks,
} from './support/reap-fixture.js';
import { isResourceDelete, networkTimeout, type S3ReapFixture } from './support/reap-fixture-s3.js';
import { runCleanups, s3Settings } from './support/services.js';

// A seam inside the files backend's conditional delete: lets one test swap a file between
// the identity check and the rename (docs/safety.md §3). Every other call passes straight through.
// Another lets a test act just before the sweep removes a directory it emptied.
const fsSeam = vi.hoisted(() => ({
  beforeRename: null as null | ((from: string) => Promise<void>),
  beforeRmdir: null as null | ((dir: string) => Promise<void>),
}));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const rename = async (from: Parameters<typeof real.rename>[0], to: Parameters<typeof real.rename>[1]) => {
    const hook = fsSeam.beforeRename;
    if (hook) await hook(String(from));
    return real.rename(from, to);
  };
  const rmdir = async (dir: Parameters<typeof real.rmdir>[0]) => {
    const hook = fsSeam.beforeRmdir;
    if (hook) await hook(String(dir));
    return real.rmdir(dir);
  };
  return { ...real, rename, rmdir, default: { ...real, rename, rmdir } };
});

// Most of a scenario is waiting out a 1 s grace on the store's clock, not CPU: let more of the four
// backends' scenarios wait side by side than the project's default of 5.
vi.setConfig({ maxConcurrency: 16 });

const T = 'items';
const HOUR = 3_600_000;
const GRACE_MS = 1_000;

interface Harness {
  fx: ReapFixture;
  state: SceneState;
  store: StateStore;
  manifest(options?: Partial<ManifestOptions> & { policy?: Policy; resource?: ResourceOptions }): Manifest;
  reap(manifest: Manifest, options?: Partial<ReapOptions>): Promise<ReapReport>;
  refused(manifest: Manifest, options?: Partial<ReapOptions>): Promise<SafetyError>;
  lease(owner: string, ttlMs?: number): Promise<{ leaseId: string }>;
  tombstoned(state?: 'marked' | 'deleted' | 'lifted' | 'restored' | 'deleting'): Promise<Set<string>>;
  journal(): Promise<JournalEntry[]>;
  afterGrace(): Promise<void>;
}

async function openHarness(kind: ReapFixtureKind, fixtureOptions: FixtureOptions, state: SceneState): Promise<Harness> {
  const fx = await kind.open(fixtureOptions);
  const store = await openFixtureStore(fx, state);
  // One long-lived owner keeps the lease registry from looking empty (the breaker of docs/safety.md §8).
  await store.acquireLease({ key: ownerKey('anchor'), holder: 'anchor-service', ttlMs: HOUR });
  return {
    fx,
    state,
    store,
    manifest: (options = {}) => loadReapManifest(fx, reapManifest(fx, { resources: [{ name: T, policy: options.policy, options: options.resource }], state, ...options })),
    reap: (manifest, options = {}) => runReap(manifest, { execute: true, store, ...options }),
    refused: async (manifest, options = {}) => {
      const error = await runReap(manifest, { execute: true, store, ...options }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SafetyError);
      return error as SafetyError;
    },
    lease: (owner, ttlMs = HOUR) => store.acquireLease({ key: ownerKey(owner), holder: `${owner}-service`, ttlMs }),
    tombstoned: async (state) => new Set((await store.findTombstones({ resource: T, ...(state ? { states: [state] } : {}) })).map((t) => t.resourceId)),
    journal: () => store.journal({ resource: T }),
    afterGrace: () => waitStoreTime(store, GRACE_MS + 20),
  };
}

/**
 * A test with its own directory, state store and bucket/database; kept as evidence when the test fails.
 * The state store is SQLite in the test's directory unless `dialect` names a server store.
 */
function scenarios(kind: ReapFixtureKind, dialect: StoreDialect = 'sqlite') {
  const wrap = (body: (h: Harness) => Promise<void>, fixtureOptions: FixtureOptions) => async () => {
    const cleanups: (() => Promise<void>)[] = [];
    let passed = false;
    const h = await openHarness(kind, fixtureOptions, await freshSceneState(dialect, cleanups, () => !passed));
    try {
      await body(h);
      passed = true;
    } finally {
      await h.store.close();
      await h.fx.cleanup({ keep: !passed });
      await runCleanups(cleanups);
      if (!passed) console.warn(`kept ${h.fx.dir} (${kind.kind}, state ${h.state.url})`);
    }
  };
  const test = (name: string, body: (h: Harness) => Promise<void>, fixtureOptions: FixtureOptions = {}) => it(name, wrap(body, fixtureOptions));
  return { test };
}

/** An age for a seed that only needs to be old (past minAge): left out where the backend cannot backdate (S3, whose minAge is 0s). */
const aged = (fx: ReapFixture, ageMs: number) => (fx.traits.backdate ? { ageMs } : {});

type PlanTrailer = PlanHeader & { trailer: true; items: number; digest: string };

const sorted = (ids: Iterable<string>) => [...ids].sort();
const only = (report: ReapReport) => report.resources[0]!;

/** Run `run` while every S3 request of the fixture's bucket is shown to `see` first. */
/** A run of `m` on `store` is refused because another run holds the type's lock (§13). */
async function expectLockRefused(m: Manifest, store: StateStore): Promise<void> {
  const error = await runReap(m, { execute: true, store }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SafetyError);
  expect((error as Error).message).toMatch(/another reap run holds the lock on items/);
}

/** The store, holding the first call of `method` until `resume`: a run stopped mid-way, `reached` once it gets there. */
function pauseAt(store: StateStore, method: 'beginBatch' | 'activeTombstones'): { hooked: StateStore; reached: Promise<void>; resume: () => void } {
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => (resume = resolve));
  let arrived!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const hold = async (next: (...args: never[]) => unknown, ...args: never[]) => {
    arrived();
    await paused;
    return next(...args);
  };
  return { hooked: hookStore(store, { [method]: hold } as StoreHooks), reached, resume };
}

async function sweepOnlySeeing(fx: S3ReapFixture, run: () => Promise<ReapReport>, see: (command: object) => void): Promise<ReapReport> {
  const undo = fx.intercept(async (command, send) => {
    see(command);
    return send();
  });
  try {
    return await run();
  } finally {
    await undo();
  }
}

/** One of bob's orphans, marked and due, saved in a plan as a sweep; then bob comes back with a lease. */
async function sweepPlannedThenOwnerBack(h: Harness): Promise<{ file: string; m: Manifest; plan: string }> {
  const [file] = await h.fx.create(T, [{ owner: 'bob' }]);
  const m = h.manifest();
  await h.reap(m);
  await h.afterGrace();
  const plan = path.join(h.fx.dir, 'plan.ndjson');
  expect(only(await h.reap(m, { execute: false, planOut: plan })).toSweep).toBe(1);
  await h.lease('bob');
  return { file: file!, m, plan };
}

// The backends' blocks run side by side: every test has its own directory, store and bucket/database.
describe('reap safety', { concurrent: true }, () => {
  for (const pair of reapPairs()) {
    const kind = pair.backend;
    // Skipped only when a service is missing here; under CI the global setup fails instead.
    describe.skipIf(!pair.available())(`reap safety on ${pair.name}`, { concurrent: true }, () => {
      const { test } = scenarios(kind, pair.store);

      describe('§1/§2: no live-owner deletion; resurrection wins', () => {
        // guard: grace — only tombstones at least `grace` old (store clock) are swept.
        // S3 has no young neighbour: LastModified cannot be backdated, so its minAge is 0s (the minAge guard is
        // covered on the three other backends).
        test('marks an orphan, keeps it through the grace period, deletes it only after; live, young and protected neighbours are untouched', async (h) => {
          const { fx, reap, lease, tombstoned, afterGrace, manifest } = h;
          await lease('alice');
          const [live, dead, stray] = await fx.create(T, [{ owner: 'alice' }, { owner: 'bob' }, { owner: null }]);
          const young = fx.traits.backdate ? await fx.create(T, [{ owner: 'carol', ageMs: 1_000 }]) : [];
          const [kept] = await fx.create(T, [{ owner: 'bob', protected: true, ...aged(fx, 30 * 24 * HOUR) }]);
          // "Within grace" with a grace of an hour, so no run's duration (a run against moto on a busy machine can
          // take a second) can carry it past; the sweep then runs with the suite's 1 s grace, waited out.
          const patient = manifest({ defaults: { grace: '1h' } });
          const first = await reap(patient);
          expect(only(first).outcomes).toMatchObject({ marked: 2, deleted: 0 });
          expect(sorted(await tombstoned('marked'))).toEqual(sorted([dead!, stray!]));

          const early = await reap(patient); // within grace: nothing is due
          expect(only(early)).toMatchObject({ toSweep: 0, outcomes: { deleted: 0 } });
          expect(await fx.present(T)).toEqual(new Set([live, dead, stray, ...young, kept]));

          await afterGrace();
          const sweep = await reap(manifest());
          expect(only(sweep).outcomes).toMatchObject({ deleted: 2, lifted: 0, failed: 0 });
          expect(await fx.present(T)).toEqual(new Set([live, ...young, kept]));
          expect(sorted(await tombstoned('deleted'))).toEqual(sorted([dead!, stray!]));
        });

        // guard: --sweep-only judges every due tombstone afresh from a read by id; it marks nothing.
        test('§1/§3 (--sweep-only): sweeps due tombstones from the ledger without scanning; a revived owner and a rewritten resource are spared, nothing new is marked', async (h) => {
          const { fx, reap, lease, tombstoned, afterGrace, manifest } = h;
          const [dead, revived, rewritten] = await fx.create(T, [{ owner: 'bob' }, { owner: 'erin' }, { owner: 'frank' }]);
          const m = manifest();
          expect(only(await reap(m)).outcomes).toMatchObject({ marked: 3 });
          const [late] = await fx.create(T, [{ owner: 'gina', ...aged(fx, 30 * 24 * HOUR) }]); // an orphan only a scan would find
          await afterGrace();
          await lease('erin');
          await fx.rewrite(T, rewritten!);
          const sweep = only(await reap(m, { sweepOnly: true }));
          expect(sweep).toMatchObject({ scanned: 0, toMark: 0, toSweep: 1, outcomes: { marked: 0, deleted: 1 } });
          expect(sweep.outcomes.lifted).toBe(2);
          expect(await fx.present(T)).toEqual(new Set([revived, rewritten, late]));
          expect(sorted(await tombstoned('deleted'))).toEqual([dead!]);
          expect(await tombstoned('marked')).toEqual(new Set());
        });

        // guard: sweep-time liveness — the owner is judged again when the tombstone is due.
        // The lease is taken between the scan and the mark, so it is older than the tombstone and
        // "activity since the mark" cannot see it: only the fresh judgement keeps the file.
        test('lifts the tombstone when the owner is live at sweep time (lease taken just before the mark)', async (h) => {
          const { fx, store, reap, afterGrace, manifest } = h;
          const [file] = await fx.create(T, [{ owner: 'bob' }]);
          const hooks: StoreHooks = {
            insertTombstones: async (next, runId, items) => {
              await store.acquireLease({ key: ownerKey('bob'), holder: 'bob-service', ttlMs: HOUR });
              await waitStoreTime(store, 5); // the lease is strictly older than the tombstone
              return next(runId, items);
            },
          };
          const m = manifest();
          expect(only(await reap(m, { store: hookStore(store, hooks) })).outcomes.marked).toBe(1);
          delete hooks.insertTombstones;
          await afterGrace();
          const sweep = only(await reap(m));
          expect(sweep.outcomes).toMatchObject({ deleted: 0, lifted: 1 });
          expect(sweep.lifts).toEqual({ 'owner-live': 1 });
          expect(await fx.present(T)).toContain(file);
          expect((await store.findTombstones({ resource: T }))[0]).toMatchObject({ state: 'lifted', note: 'owner-live' });
        });

        // guard: activity since the mark — a lease taken, renewed and released during grace leaves the owner
        // dead at sweep time, yet it lived in between: the delete must not happen.
        test('lifts the tombstone when the owner held a lease at any moment during grace (owner-renewed)', async (h) => {
          const { fx, store, reap, lease, afterGrace, manifest } = h;
          const [file, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'dan' }]);
          const m = manifest();
          expect(only(await reap(m)).outcomes.marked).toBe(2);
          const revived = await lease('bob');
          await store.renewLease(revived.leaseId);
          await store.releaseLease(revived.leaseId);
          await afterGrace();
          const sweep = only(await reap(m));
          expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
          expect(sweep.lifts).toEqual({ 'owner-renewed': 1 });
          const present = await fx.present(T);
          expect(present).toContain(file);
          expect(present).not.toContain(other);
        });

        test('counts lifts in the report by why: owner-live, owner-renewed, changed, vanished', async (h) => {
          const { fx, reap, lease, store, afterGrace, manifest } = h;
          const [a, b, c, d] = await fx.create(T, [{ owner: 'p' }, { owner: 'q' }, { owner: 'r' }, { owner: 's' }]);
          const m = manifest();
          expect(only(await reap(m)).outcomes.marked).toBe(4);
          await lease('p');
          await store.releaseLease((await lease('q')).leaseId);
          await fx.rewrite(T, c!);
          await fx.replace(T, d!);
          await afterGrace();
          const sweep = only(await reap(m));
          expect(sweep.outcomes).toMatchObject({ deleted: 0, lifted: 4 });
          expect(sweep.lifts).toEqual({ 'owner-live': 1, 'owner-renewed': 1, changed: 2 });
          expect(sweep.toLift).toBe(4);
          expect(await fx.present(T)).toEqual(new Set([a, b, c, d]));
        });
      });

      describe('§3: conditional at the resource', () => {
        // guard: the fingerprint captured at mark time is re-checked when the tombstone is due.
        test('a resource rewritten or replaced between mark and sweep survives, lifted as changed, and is never journaled', async (h) => {
          const { fx, reap, journal, afterGrace, manifest } = h;
          const [rewritten, replaced, untouched] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: 'bob' }]);
          const m = manifest();
          expect(only(await reap(m)).outcomes.marked).toBe(3);
          await fx.rewrite(T, rewritten!);
          await fx.replace(T, replaced!);
          await afterGrace();
          const sweep = only(await reap(m));
          expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 2 });
          expect(sweep.lifts).toEqual({ changed: 2 });
          expect(await fx.present(T)).toEqual(new Set([rewritten, replaced]));
          // Lifted while planning, before any write-ahead: only the untouched one reached the journal.
          expect((await journal()).map((e) => e.resourceId)).toEqual([untouched]);
        });

        // guard: the backend's own identity precondition at delete time. The change lands after the sweep's
        // re-verification and its write-ahead, so only the delete itself can refuse it: files — dev/ino/size/mtime
        // checked before the rename; PostgreSQL — `xmin` in the DELETE's WHERE; MariaDB — `updated_at` re-read under
        // FOR UPDATE locks in the deleting transaction; S3 on moto — If-Match on each single DeleteObject. The S3 case
        // is valid only because moto enforces If-Match there (it ignores the per-object ETags of DeleteObjects, and
        // the adapter's probe therefore picks one-by-one deletes): on a server that enforced neither, this scenario
        // could not fail for the right reason, and reaper would refuse to delete at all.
        // (Unversioned S3: the fixture's replace uploads different bytes, since the ETag is the whole identity.)
        test('a resource changed after the sweep re-verified it is not deleted: the delete itself is conditional', async (h) => {
          const { fx, store, reap, journal, afterGrace, manifest } = h;
          const [rewritten, replaced, untouched] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: 'bob' }]);
          const m = manifest();
          await reap(m);
          await afterGrace();
          const hooks: StoreHooks = {
            beginBatch: async (next, ...args) => {
              const entries = await next(...args);
              await fx.rewrite(T, rewritten!);
              await fx.replace(T, replaced!);
              return entries;
            },
          };
          const sweep = only(await reap(m, { store: hookStore(store, hooks) }));
          expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 2 });
          expect(sweep.lifts).toEqual({ changed: 2 });
          expect(await fx.present(T)).toEqual(new Set([rewritten, replaced]));
          const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
          expect(outcomes).toEqual({ [rewritten!]: 'changed', [replaced!]: 'changed', [untouched!]: 'deleted' });
        });
      });

      describe('§4: unknown means alive', () => {
        const failingLookups: StoreHooks = {
          liveKeys: async () => {
            throw new Error('lease registry timed out');
          },
        };

        // guard: a liveness source that cannot answer makes its keys unknown, never dead.
        test('an owner that cannot be judged is unknown: never marked, reported apart from orphans', async (h) => {
          const { fx, store, reap, tombstoned, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }, { owner: 'dan' }]);
          const report = await reap(manifest(), { store: hookStore(store, failingLookups) });
          expect(report.summary).toMatchObject({ unknown: 2, orphaned: 0 });
          expect(only(report).telemetry?.reasons).toMatchObject({ 'unknown/liveness-unavailable': 2 });
          expect(only(report)).toMatchObject({ toMark: 0, outcomes: { marked: 0 } });
          expect(await tombstoned()).toEqual(new Set());
          // "Found 0" is another answer: with the source healthy both are orphans.
          const audit = await runAudit(manifest(), { store });
          expect(audit.summary).toMatchObject({ unknown: 0, orphaned: 2 });
        });

        // guard: a due tombstone whose owner cannot be judged is kept for a later run, not swept.
        test('a due tombstone whose owner cannot be judged at sweep time is kept, and swept once it can be', async (h) => {
          const { fx, store, reap, tombstoned, afterGrace, manifest } = h;
          const [file] = await fx.create(T, [{ owner: 'bob' }]);
          const m = manifest();
          await reap(m);
          await afterGrace();
          const blind = only(await reap(m, { store: hookStore(store, failingLookups) }));
          expect(blind.outcomes).toMatchObject({ kept: 1, deleted: 0, lifted: 0 });
          expect(await fx.present(T)).toContain(file);
          expect(await tombstoned('marked')).toEqual(new Set([file]));
          expect(only(await reap(m)).outcomes).toMatchObject({ deleted: 1 });
        });

        // guard: the breaker counts every source; a source that cannot be counted stops the run.
        test('a liveness source that errors when counted stops the run before anything is marked', async (h) => {
          const { fx, store, refused, tombstoned, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }]);
          const error = await refused(manifest(), {
            store: hookStore(store, {
              countLiveKeys: async () => {
                throw new Error('connection refused');
              },
            }),
          });
          expect(error.message).toMatch(/liveness source leases failed: connection refused/);
          expect(await tombstoned()).toEqual(new Set());
        });
      });

      describe('§5: protection overrides', () => {
        // guard: protect rules come first in classification; protected resources never get a tombstone.
        test('protected resources are never tombstoned nor deleted, even orphaned, ownerless and old', async (h) => {
          const { fx, reap, tombstoned, afterGrace, manifest } = h;
          const old = 90 * 24 * HOUR;
          const guarded = await fx.create(T, [
            { owner: 'bob', protected: true, ...aged(fx, old) },
            { owner: null, protected: true, ...aged(fx, old) },
          ]);
          const [orphan] = await fx.create(T, [{ owner: 'bob' }]);
          const m = manifest();
          const first = await reap(m);
          expect(first.summary).toMatchObject({ protected: 2, orphaned: 1 });
          await afterGrace();
          await reap(m);
          await afterGrace();
          await reap(m);
          expect(await fx.present(T)).toEqual(new Set(guarded));
          expect(await tombstoned()).toEqual(new Set([orphan]));
        });

        // guard: a protect rule is re-evaluated at sweep time. The rule added after the mark protects bob's
        // resources (files: a pathPattern, S3: a keyPattern, SQL: a where), none of which changes the resource.
        test('a protect rule that matches at sweep time lifts the tombstone', async (h) => {
          const { fx, reap, afterGrace, manifest } = h;
          const [file, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'dan' }]);
          await reap(manifest());
          await afterGrace();
          const sweep = only(await reap(manifest({ resource: { protectOwners: ['bob'] } })));
          expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
          expect(sweep.lifts).toEqual({ protected: 1 });
          expect(await fx.present(T)).toEqual(new Set([file]));
          expect(other).toBeDefined();
        });
      });

      describe('§6: scope confinement', () => {
        // guard: a sweep reads and deletes only inside the scope — files: ids are relative paths without `..`
        // resolved under the real root; S3: keys under the prefix (and `..` is a literal key); SQL: rows inside
        // the `where`, in the read and again in the DELETE. The ledger is forged: reaper never writes such ids.
        test('a tombstone whose id reaches outside the scope never deletes there', async (h) => {
          const { fx, store, reap, lease, journal, tombstoned, afterGrace, manifest } = h;
          await lease('alice');
          await fx.create(T, Array.from({ length: 5 }, () => ({ owner: 'alice' }))); // keeps the caps out of the way
          const outsiders = await fx.outsideScope(T);
          const m = manifest();
          // A ledger entry reaper would never write itself: a corrupted or hostile state store.
          const run = await store.startRun({ kind: 'reap', manifestDigest: m.digest, execute: true });
          await store.insertTombstones(
            run.runId,
            outsiders.forged.map((f) => ({ resource: T, resourceId: f.id, fingerprint: f.fingerprint, owner: ownerKey('mallory'), ownerValue: f.ownerValue, reason: 'owner-dead', bytes: 8 })),
          );
          await afterGrace();
          const sweep = only(await reap(m));
          const n = outsiders.forged.length;
          expect(sweep.outcomes).toMatchObject({ deleted: 0, lifted: n });
          expect(sweep.lifts).toEqual({ vanished: n });
          expect(await outsiders.intact()).toBe(true);
          expect(await journal()).toEqual([]);
          expect(await tombstoned('marked')).toEqual(new Set());
        });
      });

      describe('§7: caps', () => {
        // guard: maxDeletesPerRun, checked on the whole plan before the first tombstone.
        test('maxDeletesPerRun exceeded refuses the run and writes no tombstone; within the cap it proceeds', async (h) => {
          const { fx, refused, reap, tombstoned, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: null }]);
          const error = await refused(manifest({ policy: { maxDeletesPerRun: 2 } }));
          expect(error.message).toMatch(/3 to mark or sweep exceeds maxDeletesPerRun 2/);
          expect(await tombstoned()).toEqual(new Set());
          expect(only(await reap(manifest({ policy: { maxDeletesPerRun: 3 } }))).outcomes.marked).toBe(3);
        });

        // guard: maxDeleteFraction of what was scanned.
        test('maxDeleteFraction exceeded refuses the run and writes no tombstone; within it the run proceeds', async (h) => {
          const { fx, refused, reap, lease, tombstoned, manifest } = h;
          await lease('alice');
          await fx.create(T, [{ owner: 'alice' }, { owner: 'bob' }, { owner: 'bob' }, { owner: 'bob' }]);
          const error = await refused(manifest({ policy: { maxDeleteFraction: 0.5 } }));
          expect(error.message).toMatch(/3 to mark or sweep of 4 scanned exceeds maxDeleteFraction 0.5 \(at most 2\)/);
          expect(await tombstoned()).toEqual(new Set());
          expect(only(await reap(manifest({ policy: { maxDeleteFraction: 0.75 } }))).outcomes.marked).toBe(3);
        });

        // guard: a run that does not scan judges maxDeleteFraction against what the last scanning run saw.
        test('§7 (--sweep-only): maxDeleteFraction is judged against the last scanning run; exceeded, nothing is deleted', async (h) => {
          const { fx, refused, reap, lease, tombstoned, afterGrace, manifest } = h;
          await lease('alice');
          const ids = await fx.create(T, [{ owner: 'alice' }, { owner: 'alice' }, { owner: 'bob' }, { owner: 'bob' }]);
          expect(only(await reap(manifest({ policy: { maxDeleteFraction: 0.5 } }))).outcomes.marked).toBe(2); // 2 of 4 scanned
          await afterGrace();
          const error = await refused(manifest({ policy: { maxDeleteFraction: 0.25 } }), { sweepOnly: true });
          expect(error.message).toMatch(/2 to mark or sweep of 4 scanned exceeds maxDeleteFraction 0.25 \(at most 1\)/);
          expect(await fx.present(T)).toEqual(new Set(ids));
          expect((await tombstoned('marked')).size).toBe(2);
          expect(only(await reap(manifest({ policy: { maxDeleteFraction: 0.5 } }), { sweepOnly: true })).outcomes.deleted).toBe(2);
        });

        // guard: sweeps count against the cap as well as new marks.
        test('due sweeps count against the cap: a run that would exceed it deletes nothing', async (h) => {
          const { fx, refused, reap, tombstoned, afterGrace, manifest } = h;
          const first = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
          const m = manifest({ policy: { maxDeletesPerRun: 2 } });
          await reap(m);
          await fx.create(T, [{ owner: 'dan' }]);
          await afterGrace();
          await refused(m);
          for (const id of first) expect(await fx.present(T)).toContain(id);
          expect((await tombstoned('marked')).size).toBe(2);
        });
      });

      describe('§8: registry-outage breaker', () => {
        // guard: minLiveKeys — an empty lease table never reads as "every owner is gone".
        test('an empty lease table (every lease released) refuses the run and touches nothing', async (h) => {
          const { fx, store, refused, reap, lease, tombstoned, journal, afterGrace, manifest } = h;
          const alice = await lease('alice');
          const ids = await fx.create(T, [{ owner: 'alice' }, { owner: 'alice' }, { owner: 'bob' }]);
          const m = manifest();
          await reap(m); // bob's file is marked while the registry is healthy
          for (const l of await store.listLeases()) await store.releaseLease(l.leaseId);
          expect((await store.getLease(alice.leaseId))?.releasedAt).not.toBeNull();
          await afterGrace();
          const error = await refused(m);
          expect(error.message).toMatch(/registry-outage breaker: nothing reaped/);
          expect(error.message).toMatch(/leases reports 0 live key/);
          expect(await fx.present(T)).toEqual(new Set(ids));
          expect((await tombstoned('marked')).size).toBe(1);
          expect(await journal()).toEqual([]);
        });

        // guard: maxDrop against the last run's count.
        test('a sharp drop against the last run trips it; --allow-liveness-drop overrides', async (h) => {
          const { fx, store, refused, reap, lease, tombstoned, manifest } = h;
          const leases = [await lease('p'), await lease('q'), await lease('r'), await lease('s')];
          await fx.create(T, [{ owner: 'p' }, { owner: 'q' }, { owner: 'r' }, { owner: 's' }]);
          const m = manifest();
          expect(only(await reap(m)).outcomes.marked).toBe(0); // baseline: 5 live keys
          for (const l of leases.slice(0, 3)) await store.releaseLease(l.leaseId);
          const error = await refused(m);
          expect(error.message).toMatch(/leases fell from 5 to 2 live keys \(-60%, more than maxDrop 50%\)/);
          expect(await tombstoned()).toEqual(new Set());
          const deliberate = await reap(m, { allowLivenessDrop: true });
          expect(only(deliberate).outcomes.marked).toBe(3);
        });

        // The breaker's baseline is the last successful reap run: an audit taken during the outage
        // records its (low) counts too, and must not hide the drop from the next reap.
        test('an audit taken during an outage does not become the baseline that hides the drop', async (h) => {
          const { fx, store, refused, reap, lease, manifest } = h;
          const leases = [await lease('p'), await lease('q'), await lease('r'), await lease('s')];
          await fx.create(T, [{ owner: 'p' }, { owner: 'q' }, { owner: 'r' }, { owner: 's' }]);
          const m = manifest();
          await reap(m);
          for (const l of leases.slice(0, 3)) await store.releaseLease(l.leaseId);
          await runAudit(m, { store });
          const error = await refused(m);
          expect(error.message).toMatch(/registry-outage breaker: nothing reaped/);
          expect(error.message).toMatch(/leases fell from 5 to 2 live keys \(-60%, more than maxDrop 50%\)/);
        });
      });

      describe('§9: dry run and execute share one candidate set', () => {
        const planItems = async (file: string) =>
          (await readFile(file, 'utf8'))
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .filter((l) => !l.trailer)
            // The same decisions; a sweep's journaled evidence (ages) is an observation of its moment.
            .map(({ evidence: _evidence, ...item }) => item);

        test('a dry run writes no tombstone, deletes nothing, and plans exactly what execute then does', async (h) => {
          const { fx, reap, lease, tombstoned, journal, afterGrace, manifest } = h;
          await lease('alice');
          const all = await fx.create(T, [{ owner: 'alice' }, { owner: 'bob' }, { owner: 'bob' }, { owner: null }]);
          const m = manifest();
          const dryPlan = path.join(fx.dir, 'dry.ndjson');
          const wetPlan = path.join(fx.dir, 'wet.ndjson');
          const dry = await reap(m, { execute: false, planOut: dryPlan });
          expect(only(dry)).toMatchObject({ toMark: 3, outcomes: { marked: 0, deleted: 0 } });
          expect(await tombstoned()).toEqual(new Set());
          const wet = await reap(m, { planOut: wetPlan });
          expect(await planItems(wetPlan)).toEqual(await planItems(dryPlan));
          expect(sorted(await tombstoned('marked'))).toEqual(sorted((await planItems(dryPlan)).map((i) => i.id as string)));
          expect(only(wet).outcomes.marked).toBe(3);

          await afterGrace();
          const drySweep = await reap(m, { execute: false, planOut: dryPlan });
          expect(only(drySweep)).toMatchObject({ toSweep: 3, outcomes: { deleted: 0 } });
          expect(await fx.present(T)).toEqual(new Set(all));
          expect(await journal()).toEqual([]);
          await reap(m, { planOut: wetPlan });
          expect(await planItems(wetPlan)).toEqual(await planItems(dryPlan));
          const swept = (await planItems(dryPlan)).map((i) => i.id as string);
          expect(sorted((await journal()).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId))).toEqual(sorted(swept));
          expect(await fx.present(T)).toEqual(new Set(all.filter((id) => !swept.includes(id))));
        });

        // guard: --plan applies the saved plan, not a fresh one.
        test('--plan-out then --plan FILE --execute applies exactly that plan: a newer orphan waits for the next plan', async (h) => {
          const { fx, reap, tombstoned, manifest } = h;
          const planned = await fx.create(T, [{ owner: 'bob' }, { owner: null }]);
          const m = manifest();
          const plan = path.join(fx.dir, 'plan.ndjson');
          await reap(m, { execute: false, planOut: plan });
          const [late] = await fx.create(T, [{ owner: 'bob' }]);
          const applied = await reap(m, { planIn: plan });
          expect(await tombstoned()).not.toContain(late);
          expect(await tombstoned()).toEqual(new Set(planned));
          expect(only(applied).outcomes.marked).toBe(2);
          expect(applied.plan).toBe(plan);
        });

        // guard: marks from a saved plan are re-verified (fingerprint and liveness) before they are written.
        test('a plan item whose resource changed, or whose owner came back, after planning is not marked', async (h) => {
          const { fx, reap, lease, tombstoned, manifest } = h;
          const [changed, revived, still] = await fx.create(T, [{ owner: 'bob' }, { owner: 'carol' }, { owner: 'bob' }]);
          const m = manifest();
          const plan = path.join(fx.dir, 'plan.ndjson');
          expect(only(await reap(m, { execute: false, planOut: plan })).toMark).toBe(3);
          await fx.rewrite(T, changed!);
          await lease('carol');
          expect(only(await reap(m, { planIn: plan })).outcomes.marked).toBe(1);
          expect(await tombstoned()).toEqual(new Set([still]));
          expect(revived).toBeDefined();
        });

        // guard: sweeps from a saved plan are re-verified against a fresh read and fresh liveness.
        test('a sweep item whose owner came back after planning is lifted, not deleted', async (h) => {
          const { file, m, plan } = await sweepPlannedThenOwnerBack(h);
          const applied = only(await h.reap(m, { planIn: plan }));
          expect(applied.outcomes).toMatchObject({ deleted: 0, lifted: 1 });
          expect(applied.lifts).toEqual({ 'owner-live': 1 });
          expect(await h.fx.present(T)).toContain(file);
        });

        // guard: one tally — a lift is counted, in `outcomes.lifted` and in `lifts` alike, only when the store lifted
        // the tombstone. Here an operator's restore lifts it between the re-verification and the reap's own lift.
        test('a sweep item whose tombstone was lifted meanwhile is counted in neither lift total', async (h) => {
          const { fx, store, reap } = h;
          const { file, m, plan } = await sweepPlannedThenOwnerBack(h);
          const hooks: StoreHooks = {
            liftTombstones: async (next, runId, ids, note) => {
              await store.liftTombstones(runId, ids, 'restored by operator');
              return next(runId, ids, note);
            },
          };
          const applied = only(await reap(m, { planIn: plan, store: hookStore(store, hooks) }));
          expect(applied.outcomes).toMatchObject({ deleted: 0, lifted: 0 });
          expect(applied.lifts).toEqual({});
          expect(await fx.present(T)).toContain(file);
        });

        // guard: the plan's digest (items and header) and its manifest digest.
        test('a tampered plan or a plan made from another manifest is refused before anything is marked', async (h) => {
          const { fx, refused, tombstoned, reap, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: 'bob' }]);
          const m = manifest({ policy: { maxDeletesPerRun: 3 } });
          const plan = path.join(fx.dir, 'plan.ndjson');
          await reap(m, { execute: false, planOut: plan });
          const original = await readFile(plan, 'utf8');
          const lines = original.trimEnd().split('\n');

          const editedItem = path.join(fx.dir, 'edited-item.ndjson');
          const item = JSON.parse(lines[0]!) as { id: string };
          await writeFile(editedItem, [JSON.stringify({ ...item, id: `${item.id}x` }), ...lines.slice(1)].join('\n') + '\n');
          expect((await refused(m, { planIn: editedItem })).message).toMatch(/does not match its digest/);

          // The trailer carries the counts the caps are checked against: editing it must not slip past them.
          const editedCounts = path.join(fx.dir, 'edited-counts.ndjson');
          const trailer = JSON.parse(lines[lines.length - 1]!) as PlanTrailer;
          trailer.resources[0]!.toMark = 0;
          trailer.resources[0]!.scanned = 1_000;
          await writeFile(editedCounts, [...lines.slice(0, -1), JSON.stringify(trailer)].join('\n') + '\n');
          expect((await refused(manifest({ policy: { maxDeletesPerRun: 2 } }), { planIn: editedCounts })).message).toMatch(/does not match its digest|different manifest/);
          expect((await refused(m, { planIn: editedCounts })).message).toMatch(/does not match its digest/);

          // A digest is no signature: a forger can recompute it. The counts are then checked against the items.
          const forged = path.join(fx.dir, 'forged.ndjson');
          const header = JSON.parse(lines[lines.length - 1]!) as PlanTrailer;
          header.resources[0]!.toMark = 0;
          const digest = createHash('sha256');
          for (const line of lines.slice(0, -1)) digest.update(line).update('\n');
          const { kind: k, version, runId, createdAt, manifestDigest, resources, selected } = header;
          digest.update(JSON.stringify({ kind: k, version, runId, createdAt, manifestDigest, resources, ...(selected ? { selected } : {}) }));
          await writeFile(forged, [...lines.slice(0, -1), JSON.stringify({ ...header, digest: digest.digest('hex') })].join('\n') + '\n');
          expect((await refused(m, { planIn: forged })).message).toMatch(/counts other items than it holds/);

          const truncated = path.join(fx.dir, 'truncated.ndjson');
          await writeFile(truncated, [...lines.slice(1)].join('\n') + '\n');
          expect((await refused(m, { planIn: truncated })).message).toMatch(/does not match its digest/);

          const other = manifest({ policy: { maxDeletesPerRun: 4 } });
          expect((await refused(other, { planIn: plan })).message).toMatch(/made from a different manifest/);
          expect(await tombstoned()).toEqual(new Set());
          expect(only(await reap(m, { planIn: plan })).outcomes.marked).toBe(3);
        });
      });

      describe('§10: write-ahead journal', () => {
        // guard: the journal entry is durable before the delete request leaves the process.
        test('every delete has a journal entry written before it; what disappeared equals what the journal says was deleted', async (h) => {
          const { fx, store, reap, lease, journal, afterGrace, manifest } = h;
          await lease('alice');
          const all = await fx.create(T, [
            { owner: 'alice' },
            ...Array.from({ length: 7 }, (_, i) => ({ owner: i % 2 ? 'bob' : null, bytes: 100 + i })),
          ]);
          const m = manifest({ policy: { batchSize: 2 } });
          await reap(m);
          await afterGrace();
          // At every write-ahead, and at every outcome, whatever has disappeared must already be journaled.
          const journaled = new Set<string>();
          const disappearedOnlyIfJournaled = async () => {
            const now = await fx.present(T);
            for (const id of all.filter((i) => !now.has(i))) expect(journaled, `${id} disappeared before its journal entry`).toContain(id);
          };
          let batches = 0;
          const hooks: StoreHooks = {
            beginBatch: async (next, ...args) => {
              await disappearedOnlyIfJournaled();
              const entries = await next(...args);
              for (const t of entries?.tombstones ?? []) journaled.add(t.resourceId);
              batches++;
              return entries;
            },
            finishBatch: async (next, ...args) => {
              await disappearedOnlyIfJournaled();
              return next(...args);
            },
          };
          const sweep = only(await reap(m, { store: hookStore(store, hooks) }));
          const present = await fx.present(T);
          expect(batches).toBe(4);
          expect(sweep.outcomes).toMatchObject({ deleted: 7, failed: 0 });
          const entries = await journal();
          const disappeared = all.filter((id) => !present.has(id));
          expect(sorted(entries.filter((e) => e.outcome === 'deleted').map((e) => e.resourceId))).toEqual(sorted(disappeared));
          expect(entries.filter((e) => e.outcome === 'intent')).toEqual([]);
          for (const e of entries) {
            expect(e.fingerprint).not.toBe('');
            expect(e.evidence).toMatchObject({ status: 'orphaned', markedAt: expect.any(Number) });
            expect(e.reason).toMatch(/owner-dead|no-owner/);
          }
          expect(entries.find((e) => e.owner === ownerKey('bob'))).toBeDefined();
          // The bytes reclaimed are the journaled sizes; files and objects are exactly their seeds' bytes
          // (a SQL row's size is its stored size, which the seed's payload only contributes to).
          const journaledBytes = entries.filter((e) => e.outcome === 'deleted').reduce((n, e) => n + (e.bytes ?? 0), 0);
          expect(sweep.outcomes.bytesReclaimed).toBe(journaledBytes);
          if (fx.traits.exactBytes) expect(sweep.outcomes.bytesReclaimed).toBe(7 * 100 + (0 + 1 + 2 + 3 + 4 + 5 + 6));
          else expect(sweep.outcomes.bytesReclaimed).toBeGreaterThan(7 * 100);
        });
      });

      describe('§13: one reaper per scope', () => {
        // guard: the per-type lock in the state store.
        test('a second run on the same type refuses while the first holds the lock; each resource is deleted at most once', async (h) => {
          const { fx, store, reap, journal, afterGrace, manifest } = h;
          const ids = await fx.create(T, Array.from({ length: 6 }, () => ({ owner: 'bob' })));
          const m = manifest({ policy: { batchSize: 2 } });
          await reap(m);
          await afterGrace();
          const { hooked, reached: atFirstBatch, resume } = pauseAt(store, 'beginBatch');
          const first = reap(m, { store: hooked });
          await atFirstBatch;
          const other = await openFixtureStore(fx, h.state); // another process's connection
          try {
            await expectLockRefused(m, other);
            resume();
            expect(only(await first).outcomes.deleted).toBe(6);
            expect(only(await runReap(m, { execute: true, store: other })).outcomes.deleted).toBe(0);
          } finally {
            resume();
            await first.catch(() => undefined);
            await other.close();
          }
          const deletes = (await journal()).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId);
          expect(sorted(deletes)).toEqual(sorted(ids));
          expect(await fx.present(T)).toEqual(new Set());
        });
      });

      describe('§12: ambiguous outcomes are resolved by reading', () => {
        // guard: a failed delete is resolved by reading, never retried blindly; a pending intent is recovered on
        // the next run. How the delete fails is the backend's: files — the quarantine cannot be created, the
        // delete call throws and leaves its write-ahead intents; SQL — a trigger makes the server refuse the
        // DELETE; S3 — the DeleteObject times out in the network before it reaches moto. SQL and S3 report the
        // failure per item, and the run reads each one back (still there, unchanged) and journals it failed.
        test('deletes that fail are resolved by reading, at once or on the next run; each resource is deleted exactly once', async (h) => {
          const { fx, store, reap, journal, afterGrace, manifest } = h;
          const ids = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
          const m = manifest();
          await reap(m);
          await afterGrace();
          const undo = await fx.failDeletes(T);
          let failing: unknown;
          try {
            failing = await reap(m).then(
              () => null,
              (e: unknown) => e,
            );
          } finally {
            await undo();
          }
          expect(failing).toBeInstanceOf(Error);
          expect(await fx.present(T)).toEqual(new Set(ids));
          const left = (await journal()).map((e) => e.outcome);
          expect(left).toEqual(fx.kind === 'fs' ? ['intent', 'intent'] : ['failed', 'failed']);
          const next = only(await reap(m));
          expect(next.outcomes).toMatchObject({ deleted: 2, failed: 0 });
          expect(await fx.present(T)).toEqual(new Set());
          const entries = await journal();
          expect(entries.filter((e) => e.outcome === 'intent')).toEqual([]);
          expect(sorted(entries.filter((e) => e.outcome === 'deleted').map((e) => e.resourceId))).toEqual(sorted(ids));
          expect(entries.filter((e) => e.outcome === 'failed')).toHaveLength(2);
          expect(await store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
        });
      });

      describe('§14: restorable', () => {
        // guard: restore lifts a marked tombstone, so the sweep never deletes it.
        test('restore of a marked tombstone lifts it: the resource is not swept', async (h) => {
          const { fx, reap, afterGrace, manifest, tombstoned } = h;
          const [file] = await fx.create(T, [{ owner: 'bob' }]);
          const m = manifest();
          const marking = await reap(m);
          const restored = await runRestore(m, { runId: marking.runId, store: h.store });
          expect(restored).toEqual([{ resource: T, id: file, action: 'lifted' }]);
          await afterGrace();
          expect(only(await reap(m)).outcomes).toMatchObject({ deleted: 0 });
          expect(await fx.present(T)).toContain(file);
          expect(await tombstoned('lifted')).toEqual(new Set([file]));
        });

        // guard: what the backend kept (files: quarantine + retain; SQL: the archive table; S3: the delete marker in
        // a versioned bucket) is recorded as the restore handle, and restore --run brings each resource back intact.
        test(
          'deleted resources kept by the backend come back with restore --run, content and all',
          async (h) => {
            const { fx, store, reap, afterGrace, manifest } = h;
            const ids = await fx.create(T, [{ owner: 'bob', bytes: 321 }, { owner: null, bytes: 123 }]);
            const before = await fx.snapshot(T);
            const m = manifest();
            await reap(m);
            await afterGrace();
            const sweep = await reap(m);
            expect(only(sweep).outcomes.deleted).toBe(2);
            expect(await fx.present(T)).toEqual(new Set());
            const restored = await runRestore(m, { runId: sweep.runId, store });
            expect(sorted(restored.map((r) => `${r.action} ${r.id}`))).toEqual(sorted(ids.map((id) => `restored ${id}`)));
            expect(await fx.present(T)).toEqual(new Set(ids));
            expect(await fx.snapshot(T)).toEqual(before);
            expect(await h.tombstoned('restored')).toEqual(new Set(ids));
          },
          { restorable: true },
        );

        test('without retain, archive or versioning the backend keeps nothing, and restore says so', async (h) => {
          const { fx, store, reap, afterGrace, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }]);
          const m = manifest();
          await reap(m);
          await afterGrace();
          const sweep = await reap(m);
          expect(only(sweep).outcomes.deleted).toBe(1);
          const restored = await runRestore(m, { runId: sweep.runId, store });
          expect(restored.map((r) => r.action)).toEqual(['not-restorable']);
        });
      });

      describe('signals', () => {
        // guard: a stop requested before the apply phase surfaces as an interruption (exit 130), never as a
        // backend failure, and nothing is acted on. (The CLI aborts with the signal's name as the reason.)
        test('a stop requested while planning interrupts the run before anything is marked', async (h) => {
          const { fx, store, tombstoned, manifest } = h;
          await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: null }]);
          const controller = new AbortController();
          const hooks: StoreHooks = {
            activeTombstones: async (next, ...args) => {
              controller.abort(new Error('SIGTERM')); // the scan's first page is being planned
              return next(...args);
            },
          };
          const error = await runReap(manifest(), { execute: true, store: hookStore(store, hooks), signal: controller.signal }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(InterruptedError);
          expect((error as InterruptedError).exitCode).toBe(130);
          expect(await tombstoned()).toEqual(new Set());
          expect((await store.listRuns({ kind: 'reap', limit: 1 }))[0]?.status).toBe('interrupted');
        });

        // guard: a batch once begun is finished (its re-verification reads, write-ahead, deletes and outcomes); the stop
        // is honoured between batches. The stop lands as the first sweep batch begins (its lock refresh), before its
        // re-reads: were the signal passed into them, S3 and SQL reads would abort and abandon the batch.
        // guard: the stop check before each batch begins. A stop that lands after planning (here while a
        // sweep-only run reads the last scans for its caps) and before the first batch acts on nothing.
        test('a stop requested between planning and the first batch deletes nothing; the next run does it all', async (h) => {
          const { fx, store, journal, afterGrace, manifest } = h;
          const ids = await fx.create(T, [{ owner: null }, { owner: null }, { owner: null }]);
          const m = manifest({ policy: { batchSize: 2 } });
          await runReap(m, { execute: true, store });
          await afterGrace();
          const controller = new AbortController();
          const hooks: StoreHooks = {
            listRuns: async (next, ...args) => {
              controller.abort(new Error('SIGTERM'));
              return next(...args);
            },
          };
          const error = await runReap(m, { execute: true, sweepOnly: true, store: hookStore(store, hooks), signal: controller.signal }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(InterruptedError);
          expect((error as { report?: { outcomes: { deleted: number } } }).report?.outcomes.deleted).toBe(0);
          expect((await journal()).filter((e) => e.outcome === 'deleted')).toEqual([]);
          expect((await fx.present(T)).size).toBe(3);
          expect(only(await runReap(m, { execute: true, store })).outcomes).toMatchObject({ deleted: 3, failed: 0 });
          expect(sorted((await journal()).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId))).toEqual(sorted(ids));
        });

        // guard: only the stop is an interruption. A store failure while a stop is pending stays a
        // failure (exit 3) with its own message, which says the batch's deletes were sent unrecorded.
        test('a store failure while a stop is pending is reported as that failure, not as an interruption', async (h) => {
          const { fx, store, afterGrace, manifest } = h;
          await fx.create(T, [{ owner: null }, { owner: null }]);
          const m = manifest({ policy: { batchSize: 2 } });
          await runReap(m, { execute: true, store });
          await afterGrace();
          const controller = new AbortController();
          const hooks: StoreHooks = {
            finishBatch: async () => {
              controller.abort(new Error('SIGTERM'));
              throw new BackendError('state store: the file was removed or replaced while open');
            },
          };
          const error = await runReap(m, { execute: true, store: hookStore(store, hooks), signal: controller.signal }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error).not.toBeInstanceOf(InterruptedError);
          expect(error).toBeInstanceOf(BackendError);
          expect((error as Error).message).toMatch(/the file was removed or replaced while open/);
          expect((error as Error).message).toMatch(/2 delete\(s\) of .* were sent and their outcomes are not recorded/);
          expect((await store.listRuns({ kind: 'reap', limit: 1 }))[0]?.status).toBe('failed');
        });

        test('a stop requested as a sweep batch begins finishes that batch, then interrupts; the next run does the rest', async (h) => {
          const { fx, store, journal, afterGrace, manifest } = h;
          const ids = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: null }, { owner: null }]);
          const m = manifest({ policy: { batchSize: 2 } });
          await runReap(m, { execute: true, store });
          await afterGrace();
          const controller = new AbortController();
          const hooks: StoreHooks = {
            refreshLock: async (next, ...args) => {
              controller.abort(new Error('SIGTERM'));
              return next(...args);
            },
          };
          const error = await runReap(m, { execute: true, store: hookStore(store, hooks), signal: controller.signal }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(InterruptedError);
          expect((error as Error).message).toMatch(/stopped after finishing the current batch/);
          const entries = await journal();
          expect(entries.map((e) => e.outcome)).toEqual(['deleted', 'deleted']);
          expect((await fx.present(T)).size).toBe(2);
          expect(only(await runReap(m, { execute: true, store })).outcomes).toMatchObject({ deleted: 2, failed: 0 });
          expect(await fx.present(T)).toEqual(new Set());
          expect(sorted((await journal()).filter((e) => e.outcome === 'deleted').map((e) => e.resourceId))).toEqual(sorted(ids));
        });
      });

      describe('§15: store clock only; no resurrection', () => {
        // guard: a renew after expiry fails and does not bring the lease back.
        test('a late renew after expiry fails, the lease stays dead, and the orphan is still reaped', async (h) => {
          const { fx, store, reap, afterGrace, manifest } = h;
          const short = await store.acquireLease({ key: ownerKey('bob'), holder: 'bob-service', ttlMs: 1_000 });
          const [file] = await fx.create(T, [{ owner: 'bob' }]);
          const m = manifest();
          await waitStoreTime(store, 1_050); // the heartbeat stopped: the lease ran out
          const late = await store.renewLease(short.leaseId).then(
            () => null,
            (e: unknown) => e,
          );
          expect(late).toBeInstanceOf(LeaseLostError);
          expect((late as LeaseLostError).why).toBe('expired');
          expect(await store.liveKeys([ownerKey('bob')])).toEqual(new Set());
          expect(only(await reap(m)).outcomes.marked).toBe(1);
          await expect(store.renewLease(short.leaseId)).rejects.toBeInstanceOf(LeaseLostError);
          await afterGrace();
          const sweep = only(await reap(m));
          expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 0 });
          expect(await fx.present(T)).not.toContain(file);
        });
      });
    });
  }
});

// ------------------------------------------------------------------ files only

// Files only, each for a reason the other backends do not share: the rename seam between the identity check and
// the rename (files' own conditional delete), symlinks, and reaper's own files (state store, quarantine, manifest,
// plan) inside a scanned directory. Their shared counterparts (§3, §6) run on all four backends above.
describe.concurrent('reap safety, files backend specifics', () => {
  const { test } = scenarios(filesFixture);
  const root = (fx: ReapFixture) => path.join(fx.dir, 'data', T);
  const fingerprintOf = async (file: string) => fileFingerprint(await lstat(file, { bigint: true }));

  // guard: §13 through a long scan — the run's heartbeat refreshes its locks, so a scan longer than the
  // lock's ttl does not let a second run take the type over (run/context.ts keepAlive).
  test('§13: a run keeps its lock through a scan longer than the lock ttl; a second run started meanwhile refuses', async (h) => {
    const { fx, store, reap, manifest } = h;
    await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const m = manifest();
    const { hooked, reached: scanning, resume } = pauseAt(store, 'activeTombstones');
    const first = reap(m, { lockTtlMs: 1_500, store: hooked });
    await scanning;
    const other = await openFixtureStore(fx, h.state);
    try {
      // Twice the ttl into the scan: the lock was refreshed meanwhile, not left to lapse.
      await waitStoreTime(store, 3_000);
      await expectLockRefused(m, other);
      resume();
      expect(only(await first).outcomes.marked).toBe(2);
    } finally {
      resume();
      await first.catch(() => undefined);
      await other.close();
    }
  });

  // guard: the rename-then-verify step — the moved entry's identity is checked again before unlink,
  // and a mismatch is linked back. The swap happens between the pre-check and the rename.
  test('§3: a file replaced between the identity check and the rename is put back, not deleted', async (h) => {
    const { fx, reap, journal, afterGrace, manifest } = h;
    const [file, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const m = manifest();
    await reap(m);
    await afterGrace();
    const target = path.join(root(fx), ...file!.split('/'));
    fsSeam.beforeRename = async (from) => {
      if (from !== target) return;
      fsSeam.beforeRename = null;
      await fx.replace(T, file!);
    };
    const replacedFingerprint = { value: '' };
    try {
      const sweep = only(await reap(m));
      replacedFingerprint.value = await fingerprintOf(target);
      expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    } finally {
      fsSeam.beforeRename = null;
    }
    expect(await fx.present(T)).toEqual(new Set([file]));
    expect(replacedFingerprint.value).not.toBe('');
    const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
    expect(outcomes).toEqual({ [file!]: 'changed', [other!]: 'deleted' });
  });

  // guard: the identity check before the rename (fs-sweep.ts). The path becomes a directory after the sweep's
  // re-verification and its write-ahead, so the run's own read cannot see it: only the check just before the
  // rename keeps the whole directory from being moved into quarantine, where it could not be linked back.
  test('§3: a path that became a directory after the sweep read it is not moved; the directory stays whole', async (h) => {
    const { fx, store, reap, journal, afterGrace, manifest } = h;
    const [file, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const m = manifest();
    await reap(m);
    await afterGrace();
    const target = path.join(root(fx), ...file!.split('/'));
    const inner = path.join(target, 'inner.dat');
    const hooks: StoreHooks = {
      beginBatch: async (next, ...args) => {
        const entries = await next(...args);
        await rm(target);
        await mkdir(target);
        await writeFile(inner, 'written since the read');
        return entries;
      },
    };
    const sweep = only(await reap(m, { store: hookStore(store, hooks) }));
    expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    expect(await readFile(inner, 'utf8')).toBe('written since the read');
    expect(await readdir(path.join(root(fx), '.reaper-quarantine'))).toEqual([]);
    const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
    expect(outcomes).toEqual({ [file!]: 'changed', [other!]: 'deleted' });
  });

  // guard: the scope check at the rename (sweepScopeCheck in fs-identity.ts). The owner's directory is moved
  // out of the scope and replaced by a symlink after the sweep's re-verification and its write-ahead: the
  // read-time check cannot see it, and the identity check passes (a moved file keeps its inode). Only the
  // parent resolved again at the rename keeps the file outside the scope from being swept.
  test('§6: a directory swapped for a symlink out of the scope after the sweep read it: nothing outside is deleted', async (h) => {
    const { fx, store, reap, lease, journal, afterGrace, manifest } = h;
    await lease('alice');
    await fx.create(T, [{ owner: 'alice' }, { owner: 'alice' }]); // keeps the caps out of the way
    const [moved, stays] = await fx.create(T, [{ owner: 'bob' }, { owner: 'dan' }]);
    const m = manifest();
    await reap(m);
    await afterGrace();
    const elsewhere = path.join(fx.dir, 'elsewhere');
    const hooks: StoreHooks = {
      beginBatch: async (next, ...args) => {
        const entries = await next(...args);
        await mkdir(elsewhere, { recursive: true });
        await rename(path.join(root(fx), 'bob'), path.join(elsewhere, 'bob'));
        await symlink(path.join(elsewhere, 'bob'), path.join(root(fx), 'bob'));
        return entries;
      },
    };
    const sweep = only(await reap(m, { store: hookStore(store, hooks) }));
    expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    const outside = path.join(elsewhere, ...moved!.split('/'));
    expect((await lstat(outside)).isFile()).toBe(true);
    const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
    expect(outcomes).toEqual({ [moved!]: 'changed', [stays!]: 'deleted' });
  });

  // guard: the sweep removes only directories it emptied, deepest first, each with rmdir (which refuses a
  // directory that is not empty) and only while it resolves inside the scope; never the root.
  test('a sweep removes the owner directories it emptied, and no other', async (h) => {
    const { fx, reap, lease, afterGrace, manifest } = h;
    await lease('alice');
    const [live] = await fx.create(T, [{ owner: 'alice' }]);
    const [, , , protectedFile] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: 'dan' }, { owner: 'dan', protected: true }]);
    // carol's file sits two directories down; `empty` was empty before the sweep.
    const deep = path.join(root(fx), 'carol', 'a', 'b', 'item.dat');
    await mkdir(path.dirname(deep), { recursive: true });
    await writeFile(deep, 'orphan');
    const old = new Date(Date.now() - HOUR);
    await utimes(deep, old, old);
    await mkdir(path.join(root(fx), 'empty'));
    const m = manifest();
    expect(only(await reap(m)).outcomes.marked).toBe(4);
    await afterGrace();
    expect(only(await reap(m)).outcomes).toMatchObject({ deleted: 4, failed: 0 });
    expect(sorted(await readdir(root(fx)))).toEqual(['.reaper-quarantine', 'alice', 'dan', 'empty']);
    expect(await fx.present(T)).toEqual(new Set([live, protectedFile]));
  });

  // guard: rmdir, not a recursive remove: a file written into an emptied directory before it is removed keeps it.
  // And the scope check before each rmdir: a parent swapped for a symlink out of the scope is not followed.
  // (Directories go deepest first: erin/x/y before dan/sub, so the swap lands before dan/sub is checked.)
  test('a directory a writer filled again, or one reached through a symlink out of the scope, is not removed', async (h) => {
    const { fx, reap, afterGrace, manifest } = h;
    await fx.create(T, [{ owner: 'bob' }]);
    const old = new Date(Date.now() - HOUR);
    for (const id of ['dan/sub/item.dat', 'erin/x/y/item.dat']) {
      const file = path.join(root(fx), ...id.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, 'orphan');
      await utimes(file, old, old);
    }
    const m = manifest();
    expect(only(await reap(m)).outcomes.marked).toBe(3);
    await afterGrace();
    const elsewhere = path.join(fx.dir, 'elsewhere');
    fsSeam.beforeRmdir = async (dir) => {
      if (dir === path.join(root(fx), 'bob')) await writeFile(path.join(dir, 'new.dat'), 'just written');
      if (dir === path.join(root(fx), 'erin', 'x', 'y')) {
        // dan/ is moved out of the scope (its emptied sub/ with it) and a symlink left in its place.
        await mkdir(elsewhere, { recursive: true });
        await rename(path.join(root(fx), 'dan'), path.join(elsewhere, 'dan'));
        await symlink(path.join(elsewhere, 'dan'), path.join(root(fx), 'dan'));
      }
    };
    try {
      expect(only(await reap(m)).outcomes).toMatchObject({ deleted: 3, failed: 0 });
    } finally {
      fsSeam.beforeRmdir = null;
    }
    expect(await readFile(path.join(root(fx), 'bob', 'new.dat'), 'utf8')).toBe('just written');
    expect((await lstat(path.join(elsewhere, 'dan', 'sub'))).isDirectory()).toBe(true);
    expect(sorted(await readdir(root(fx)))).toEqual(['.reaper-quarantine', 'bob', 'dan']);
  });

  // guard: restore's scope check (restoreFile in fs-sweep.ts) is a safety rail: an id that leaves the scope, by `..` or
  // through a directory swapped for a symlink, is refused (SafetyError, exit 4), and nothing is written outside.
  // The ledger is forged: reaper never journals such an id itself.
  test('§6: restore refuses a deleted tombstone whose id leaves the scope; nothing is written outside', async (h) => {
    const { fx, store, manifest } = h;
    const m = manifest();
    const elsewhere = path.join(fx.dir, 'elsewhere');
    await mkdir(elsewhere, { recursive: true });
    await mkdir(root(fx), { recursive: true });
    await symlink(elsewhere, path.join(root(fx), 'linked'));
    const quarantine = path.join(root(fx), '.reaper-quarantine');
    await mkdir(quarantine, { recursive: true });
    const ids = ['../escaped.dat', 'linked/escaped.dat'];
    const run = await store.startRun({ kind: 'reap', manifestDigest: m.digest, execute: true });
    await store.insertTombstones(
      run.runId,
      ids.map((id) => ({ resource: T, resourceId: id, fingerprint: '1:2:3:4', owner: ownerKey('mallory'), ownerValue: null, reason: 'owner-dead', bytes: 8 })),
    );
    const tombstones = await store.findTombstones({ runId: run.runId });
    const batch = (await store.beginBatch(run.runId, T, tombstones.map((t) => t.tombstoneId), null))!;
    const entries = batch.tombstones;
    const handles = new Map<string, string>();
    for (const entry of entries) {
      const handle = path.join(quarantine, `forged-${entry.tombstoneId}`);
      await writeFile(handle, 'kept copy');
      handles.set(entry.resourceId, handle);
    }
    await store.finishBatch(
      run.runId,
      batch.batchId,
      entries.map((e) => ({ tombstoneId: e.tombstoneId, outcome: 'deleted' as const, restoreHandle: handles.get(e.resourceId)! })),
    );
    await store.finishRun(run.runId, { status: 'ok' });

    const restored = await runRestore(m, { runId: run.runId, store });
    expect(sorted(restored.map((r) => `${r.action} ${r.id}`))).toEqual(sorted(ids.map((id) => `refused ${id}`)));
    for (const r of restored) expect(r.detail).toMatch(/^refusing .*out(side)? (of )?the scope/);
    expect(await readdir(elsewhere)).toEqual([]);
    expect(await readdir(fx.dir)).not.toContain('escaped.dat');
    expect(await readdir(path.join(root(fx), '..'))).not.toContain('escaped.dat');
    for (const handle of handles.values()) expect(await readFile(handle, 'utf8')).toBe('kept copy');
  });

  // guard: the walk never follows symlinks, and a delete resolves its parent to a real path inside the root.
  test('§6: symlinks are never followed, not even a directory swapped for one after the mark', async (h) => {
    const { fx, reap, lease, tombstoned, journal, afterGrace, manifest } = h;
    await lease('alice');
    await fx.create(T, [{ owner: 'alice' }, { owner: 'alice' }, { owner: 'alice' }]); // keeps the caps out of the way
    const [moved, stays] = await fx.create(T, [{ owner: 'bob' }, { owner: 'dan' }]);
    const elsewhere = path.join(fx.dir, 'elsewhere');
    await mkdir(path.join(elsewhere, 'deep'), { recursive: true });
    await writeFile(path.join(elsewhere, 'deep', 'file.dat'), 'not ours');
    const old = new Date(Date.now() - 10 * HOUR);
    await utimes(path.join(elsewhere, 'deep', 'file.dat'), old, old);
    await symlink(path.join(elsewhere, 'deep'), path.join(root(fx), 'linked'));
    await symlink(path.join(elsewhere, 'deep', 'file.dat'), path.join(root(fx), 'link.dat'));
    const m = manifest();
    await reap(m);
    expect(await tombstoned()).toEqual(new Set([moved, stays]));
    // Someone moves bob's directory out of the scope and leaves a symlink in its place.
    await mkdir(path.join(elsewhere, 'moved'), { recursive: true });
    await rename(path.join(root(fx), 'bob'), path.join(elsewhere, 'moved', 'bob'));
    await symlink(path.join(elsewhere, 'moved', 'bob'), path.join(root(fx), 'bob'));
    await afterGrace();
    const sweep = only(await reap(m));
    expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    expect(sweep.lifts).toEqual({ vanished: 1 });
    expect(await readFile(path.join(elsewhere, 'deep', 'file.dat'), 'utf8')).toBe('not ours');
    const movedFile = path.join(elsewhere, 'moved', ...moved!.split('/'));
    expect((await lstat(movedFile)).isFile()).toBe(true);
    expect((await journal()).map((e) => e.resourceId)).toEqual([stays]);
  });

  // guard: the state store's files, the quarantine directory, the manifest and a plan being
  // written are excluded from the scan.
  test('§6: the state store, the quarantine, the manifest and the plan inside a scanned directory are never resources', async (h) => {
    const { fx, store, afterGrace } = h;
    const text = [
      'version: 1',
      'state: sqlite:.reaper/state.db',
      'defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }',
      'resources:',
      '  - name: items',
      '    fs: { path: . }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }',
      '    quarantine: ./q',
      '    retain: 7d',
      '',
    ].join('\n');
    const m = loadReapManifest(fx, text);
    await writeFile(path.resolve(m.file), text); // the manifest itself sits in the scanned directory
    const plan = path.join(fx.dir, 'plan.ndjson');
    await mkdir(path.join(fx.dir, 'bob'), { recursive: true });
    await writeFile(path.join(fx.dir, 'bob', 'b.dat'), 'orphan');
    const reap = () => runReap(m, { execute: true, store, planOut: plan });
    await reap();
    await afterGrace();
    await reap(); // bob/b.dat goes to ./q
    await afterGrace();
    await reap();
    await afterGrace();
    const last = only(await reap());
    const ids = (await store.findTombstones({ resource: T })).map((t) => t.resourceId);
    expect(ids).toEqual(['bob/b.dat']);
    expect(last.scanned).toBe(0);
    expect((await lstat(path.join(fx.dir, '.reaper', 'state.db'))).isFile()).toBe(true);
    expect((await lstat(path.resolve(m.file))).isFile()).toBe(true);
    expect((await store.findTombstones({ resource: T }))[0]).toMatchObject({ state: 'deleted', restoreHandle: expect.stringContaining(`${path.sep}q${path.sep}`) });
  });
});

// ------------------------------------------------------------------ S3 only

describe.skipIf(!s3Fixture.available())('reap safety, S3 specifics (moto)', { concurrent: true }, () => {
  const { test } = scenarios(s3Fixture);
  const s3 = () => {
    const settings = s3Settings();
    return new S3Client({ endpoint: settings.endpoint, region: settings.region, forcePathStyle: true, credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } });
  };

  // guard (restore lifts the tombstone, and a lifted tombstone leaves no mark, docs/manifest.md `mark`): the
  // tag put on the fingerprinted version when it was marked is on that version again when its delete marker
  // goes; restore takes it off, and leaves the object's other tags as they were.
  test(
    '§14 (versioned bucket, mark: tag): a restored object carries no tombstone tag and keeps its own tags',
    async (h) => {
      const fx = h.fx as S3ReapFixture;
      const { store, reap, afterGrace, manifest } = h;
      const ids = await fx.create(T, [{ owner: 'bob' }, { owner: 'carol' }]);
      const client = s3();
      try {
        const tagsOf = async (key: string) =>
          Object.fromEntries(((await client.send(new GetObjectTaggingCommand({ Bucket: fx.bucket, Key: key }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
        // One object with a tag of its user's, one with none.
        const own = await client.send(new GetObjectTaggingCommand({ Bucket: fx.bucket, Key: ids[0] }));
        await client.send(new PutObjectTaggingCommand({ Bucket: fx.bucket, Key: ids[0], Tagging: { TagSet: [...(own.TagSet ?? []), { Key: 'team', Value: 'blue' }] } }));
        const before = await fx.snapshot(T);
        const userTags = await tagsOf(ids[0]!);
        expect(userTags).toMatchObject({ team: 'blue' });

        const m = manifest({ policy: { mark: 'tag' } });
        const marking = await reap(m);
        expect(only(marking).outcomes.marked).toBe(2);
        expect(await tagsOf(ids[0]!)).toEqual({ ...userTags, 'reaper-tombstone': marking.runId });
        await afterGrace();
        const sweep = await reap(m);
        expect(only(sweep).deleteMode).toBe('s3-versioned-delete-marker');
        expect(only(sweep).outcomes.deleted).toBe(2);
        expect(await fx.present(T)).toEqual(new Set());

        const restored = await runRestore(m, { resource: T, store });
        expect(sorted(restored.map((r) => `${r.action} ${r.id}`))).toEqual(sorted(ids.map((id) => `restored ${id}`)));
        expect(await tagsOf(ids[0]!)).toEqual(userTags);
        expect((await tagsOf(ids[1]!))['reaper-tombstone']).toBeUndefined();
        expect(await fx.snapshot(T)).toEqual(before);
        expect(await h.tombstoned('restored')).toEqual(new Set(ids));
      } finally {
        client.destroy();
      }
    },
    { restorable: true },
  );

  // guard (applyMarks writes the tombstones before the mark): a mark with no tombstone would never be lifted,
  // and the tag would stay on an object whose owner came back.
  test('mark: tag: a tombstone write that fails tags nothing; the run fails, reporting it', async (h) => {
    const fx = h.fx as S3ReapFixture;
    const { store, reap, manifest } = h;
    const ids = await fx.create(T, [{ owner: 'bob' }, { owner: 'carol' }]);
    const client = s3();
    try {
      const tagsOf = async (key: string) => Object.fromEntries(((await client.send(new GetObjectTaggingCommand({ Bucket: fx.bucket, Key: key }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
      const m = manifest({ policy: { mark: 'tag' } });
      const refused = { insertTombstones: () => Promise.reject(new BackendError('tombstones refused by the test')) } as StoreHooks;
      const error = await reap(m, { store: hookStore(store, refused) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect((error as { report?: ReapReport }).report?.errors).toEqual([expect.stringContaining('tombstones refused by the test')]);
      for (const id of ids) expect(await tagsOf(id)).not.toHaveProperty('reaper-tombstone');
      expect(await h.tombstoned('marked')).toEqual(new Set());
    } finally {
      client.destroy();
    }
  });

  // S3-only: an unversioned bucket cannot express a byte-identical re-upload as a new identity (the ETag is
  // the same), so the shared §3 scenarios re-upload different bytes there. In a versioned bucket the
  // new version id is the new identity. What guards it, honestly: at planning, the re-read fingerprint
  // (ETag#versionId) differs; after the re-verification, the adapter's check of the current version just
  // before its If-Match DeleteObject (checkCurrentVersions in s3-delete.ts, by listing the batch's keys) —
  // If-Match alone would match (same ETag), so that check, not the server, keeps it. (A re-upload landing
  // between that check and the DeleteObject would get a delete marker, which restore can lift: the residual
  // window of a versioned bucket.)
  test(
    '§3 (versioned bucket): a byte-identical re-upload is a new version and survives, before and after the re-verification',
    async (h) => {
      const fx = h.fx as S3ReapFixture;
      const { store, reap, journal, afterGrace, manifest } = h;
      const [early, late, untouched] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: 'bob' }]);
      const client = s3();
      try {
        const etag = async (key: string) => (await client.send(new HeadObjectCommand({ Bucket: fx.bucket, Key: key }))).ETag;
        const before = { early: await etag(early!), late: await etag(late!) };
        const m = manifest();
        expect(only(await reap(m)).outcomes.marked).toBe(3);
        await fx.replace(T, early!);
        await afterGrace();
        const hooks: StoreHooks = {
          beginBatch: async (next, ...args) => {
            const entries = await next(...args);
            await fx.replace(T, late!);
            return entries;
          },
        };
        const sweep = only(await reap(m, { store: hookStore(store, hooks) }));
        expect(sweep.deleteMode).toBe('s3-versioned-delete-marker');
        expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 2 });
        expect(sweep.lifts).toEqual({ changed: 2 });
        expect(await fx.present(T)).toEqual(new Set([early, late]));
        // The same bytes: If-Match on the ETag alone could not have told them apart.
        expect({ early: await etag(early!), late: await etag(late!) }).toEqual(before);
        const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
        expect(outcomes).toEqual({ [late!]: 'changed', [untouched!]: 'deleted' });
      } finally {
        client.destroy();
      }
    },
    { restorable: true },
  );

  // guard (--sweep-only, versioned, batch-if-match): the tombstone stands in for the judging read; the check of the
  // current versions just before the DeleteObjects (checkCurrentVersions) is then the only read, and it is what
  // keeps a byte-identical re-upload (a new version id, moto answers it truthfully).
  test(
    '§3 (versioned bucket, --sweep-only): the current versions are read once, before the DeleteObjects; a byte-identical re-upload survives',
    async (h) => {
      const fx = h.fx as S3ReapFixture;
      fx.deleteMode = 'batch-if-match';
      const { reap, lease, journal, afterGrace, manifest } = h;
      const [replaced, revived, plain] = await fx.create(T, [{ owner: 'bob' }, { owner: 'erin' }, { owner: 'bob' }]);
      const m = manifest();
      expect(only(await reap(m)).outcomes.marked).toBe(3);
      await fx.replace(T, replaced!);
      await afterGrace();
      await lease('erin');
      const reads: string[] = [];
      const sweep = only(
        await sweepOnlySeeing(fx, () => reap(m, { sweepOnly: true }), (command) => {
          if (command instanceof HeadObjectCommand) reads.push(command.input.Key!);
          else if (command.constructor.name.startsWith('List')) reads.push(command.constructor.name);
        }),
      );
      expect(sweep.deleteMode).toBe('s3-versioned-batch-delete-marker');
      expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 2 });
      expect(sorted(reads)).toEqual(sorted([replaced!, plain!])); // the revived owner's object is never read
      expect(await fx.present(T)).toEqual(new Set([replaced, revived]));
      const outcomes = Object.fromEntries((await journal()).map((e) => [e.resourceId, e.outcome]));
      expect(outcomes).toEqual({ [replaced!]: 'changed', [plain!]: 'deleted' });
    },
    { restorable: true },
  );

  // guard: minAge on S3. An object's age is its LastModified, which moto cannot backdate, so the shared suite
  // runs S3 with minAge 0s; here objects written just before the run meet a large minAge and are young.
  test('minAge: objects written just before the run are young under a large minAge and never marked; orphans without it', async (h) => {
    const { fx, reap, tombstoned, manifest } = h;
    const ids = await fx.create(T, [{ owner: 'bob' }, { owner: null }]);
    const young = only(await reap(manifest({ defaults: { minAge: '1h' } })));
    expect(young.telemetry?.reasons).toEqual({ 'young/min-age': 2 });
    expect(young).toMatchObject({ toMark: 0, outcomes: { marked: 0 } });
    expect(await tombstoned()).toEqual(new Set());
    // The same objects with minAge 0s: judged, and orphans.
    const judged = only(await reap(manifest()));
    expect(judged.telemetry?.reasons).toEqual({ 'orphaned/owner-dead': 1, 'orphaned/no-owner': 1 });
    expect(await tombstoned()).toEqual(new Set(ids));
  });

  // S3-only: a tag is the one thing an object can gain without a new ETag, so nothing but the sweep-time protect
  // check (the tags re-read for each due object) keeps it. The fixture protects by tag here, not by key pattern.
  test('§5 (tag rule): a keep=true tag added after the mark, ETag unchanged, lifts the tombstone as protected', async (h) => {
    const fx = h.fx as S3ReapFixture;
    fx.protectByTag = true;
    const { reap, tombstoned, afterGrace, manifest } = h;
    const [tagged, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const [kept] = await fx.create(T, [{ owner: 'bob', protected: true }]);
    const client = s3();
    try {
      const m = manifest();
      expect(only(await reap(m)).outcomes.marked).toBe(2);
      expect(await tombstoned()).toEqual(new Set([tagged, other]));
      const etag = async () => (await client.send(new HeadObjectCommand({ Bucket: fx.bucket, Key: tagged! }))).ETag;
      const before = await etag();
      await client.send(new PutObjectTaggingCommand({ Bucket: fx.bucket, Key: tagged!, Tagging: { TagSet: [{ Key: 'keep', Value: 'true' }] } }));
      expect(await etag()).toBe(before); // the fingerprint cannot tell
      await afterGrace();
      const sweep = only(await reap(m));
      expect(sweep.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
      expect(sweep.lifts).toEqual({ protected: 1 });
      expect(await fx.present(T)).toEqual(new Set([tagged, kept]));
    } finally {
      client.destroy();
    }
  });

  // guard: the sweeps of a saved plan are read and judged again when it is applied (reverifySweeps in
  // src/run/reap.ts). A tag added after planning changes neither the ETag nor the owner, so neither If-Match nor
  // the last look can see it: only the fresh read of the tags keeps the object.
  test('§5/§9 (tag rule, saved plan): a sweep item whose object gained a keep tag after planning is lifted as protected, not deleted', async (h) => {
    const fx = h.fx as S3ReapFixture;
    fx.protectByTag = true;
    const { reap, afterGrace, manifest } = h;
    const [tagged, other] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const m = manifest();
    expect(only(await reap(m)).outcomes.marked).toBe(2);
    await afterGrace();
    const plan = path.join(fx.dir, 'plan.ndjson');
    expect(only(await reap(m, { execute: false, planOut: plan })).toSweep).toBe(2);
    const client = s3();
    try {
      await client.send(new PutObjectTaggingCommand({ Bucket: fx.bucket, Key: tagged!, Tagging: { TagSet: [{ Key: 'keep', Value: 'true' }] } }));
    } finally {
      client.destroy();
    }
    const applied = only(await reap(m, { planIn: plan }));
    expect(applied.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    expect(applied.lifts).toEqual({ protected: 1 });
    expect(await fx.present(T)).toEqual(new Set([tagged]));
    expect(other).toBeDefined();
  });

  // guard (docs/safety.md §4, unreadable protection): an object whose tags cannot be read is unknown, never marked —
  // not "no tag, so unprotected". GetObjectTagging is refused (403) for one key, as a missing permission would.
  test('§4 (tag rule): an object whose tags cannot be read is unknown and never marked', async (h) => {
    const fx = h.fx as S3ReapFixture;
    fx.protectByTag = true;
    const { reap, tombstoned, manifest } = h;
    const [hidden, plain] = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }]);
    const undo = fx.intercept(async (command, send) => {
      if (command instanceof GetObjectTaggingCommand && command.input.Key === hidden) {
        throw Object.assign(new Error('Access Denied (injected by the test)'), { name: 'AccessDenied', Code: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
      }
      return send();
    });
    try {
      // The type is read `partial` (one object could not be read): the rest is reaped, and the run fails (exit 3) with its report.
      const failed = await reap(manifest()).then(
        () => null,
        (error: { report?: ReapReport }) => error.report ?? null,
      );
      const report = only(failed!);
      expect(report.telemetry).toMatchObject({ status: 'partial', unreadable: 1 });
      expect(report.telemetry?.reasons).toEqual({ 'unknown/protection-unreadable': 1, 'orphaned/owner-dead': 1 });
      expect(report.outcomes.marked).toBe(1);
      expect(await tombstoned()).toEqual(new Set([plain]));
    } finally {
      await undo();
    }
    expect(only(await reap(manifest())).outcomes.marked).toBe(1); // readable again: judged, and an orphan
    expect(await tombstoned()).toEqual(new Set([hidden, plain]));
  });

  // guard (cost): a sweep run judges the due tombstones it meets against its own scan page, so an object is read
  // once per run — by the listing — and not read again object by object before its conditional delete. A
  // tombstone whose object the scan did not meet (deleted by someone else) is still read back, alone.
  test('a sweep run reads each object once: the listing, no HeadObject; an object the scan missed is read back', async (h) => {
    const fx = h.fx as S3ReapFixture;
    const { reap, afterGrace, manifest } = h;
    const ids = await fx.create(T, [{ owner: 'bob' }, { owner: 'bob' }, { owner: null }, { owner: null }]);
    const m = manifest();
    expect(only(await reap(m)).outcomes.marked).toBe(4);
    await afterGrace();
    const client = s3();
    await client.send(new DeleteObjectCommand({ Bucket: fx.bucket, Key: ids[3]! })); // gone behind reaper's back
    client.destroy();
    const heads: string[] = [];
    const undo = fx.intercept(async (command, send) => {
      // (the delete-mode probe reads its own probe object)
      if (command instanceof HeadObjectCommand && !command.input.Key!.includes('.reaper-probe-')) heads.push(command.input.Key!);
      return send();
    });
    let sweep: ReapReport;
    try {
      sweep = await reap(m);
    } finally {
      await undo();
    }
    expect(only(sweep).outcomes).toMatchObject({ deleted: 3, lifted: 1 });
    expect(only(sweep).lifts).toEqual({ vanished: 1 });
    expect(heads).toEqual([ids[3]]);
    expect(await fx.present(T)).toEqual(new Set());
  });

  // guard (cost, --sweep-only): where the server checks each DeleteObjects ETag, the ledger's ETag stands in for a
  // read: no listing, no HeadObject — and the owners are still judged. (moto does not check per-object ETags in
  // DeleteObjects, so this test shows the requests and the owner judgement, not the ETag check; see s3-delete.ts.)
  test('--sweep-only with batch-if-match: one DeleteObjects, no listing or HeadObject; a revived owner is still lifted', async (h) => {
    const fx = h.fx as S3ReapFixture;
    fx.deleteMode = 'batch-if-match';
    const { reap, lease, afterGrace, manifest } = h;
    const [dead, stray, revived] = await fx.create(T, [{ owner: 'bob' }, { owner: null }, { owner: 'erin' }]);
    const m = manifest();
    expect(only(await reap(m)).outcomes.marked).toBe(3);
    await afterGrace();
    await lease('erin');
    const sent: string[] = [];
    const sweep = await sweepOnlySeeing(fx, () => reap(m, { sweepOnly: true }), (command) => sent.push(command.constructor.name));
    expect(only(sweep).outcomes).toMatchObject({ deleted: 2, lifted: 1 });
    expect(sent.filter((name) => name !== 'GetBucketVersioningCommand')).toEqual(['DeleteObjectsCommand']);
    expect(await fx.present(T)).toEqual(new Set([revived]));
    expect([dead, stray]).toHaveLength(2);
  });

  // guard: docs/safety.md §12, "never retry an unconditional delete": a DeleteObject that reached moto and deleted the
  // object, but whose answer was lost (a timeout after the request left), is resolved by reading the key —
  // gone, so it is journaled deleted — and is never sent a second time.
  test('§12: a DeleteObject whose answer is lost is resolved by reading: journaled deleted, sent once', async (h) => {
    const fx = h.fx as S3ReapFixture;
    const { reap, journal, afterGrace, manifest } = h;
    const ids = await fx.create(T, [{ owner: 'bob' }, { owner: null }]);
    const m = manifest();
    await reap(m);
    await afterGrace();
    const sent: string[] = [];
    const undo = fx.intercept(async (command, send) => {
      if (!isResourceDelete(command)) return send();
      if (command instanceof DeleteObjectCommand) sent.push(command.input.Key!);
      await send(); // moto deletes the object…
      throw networkTimeout(); // …and the answer never arrives
    });
    let sweep: ReapReport;
    try {
      sweep = await reap(m);
    } finally {
      await undo();
    }
    expect(only(sweep).deleteMode).toBe('s3-per-object-if-match');
    expect(only(sweep).outcomes).toMatchObject({ deleted: 2, failed: 0 });
    expect(sorted(sent)).toEqual(sorted(ids)); // one DeleteObject per object: no blind retry
    expect(await fx.present(T)).toEqual(new Set());
    const entries = await journal();
    expect(entries.map((e) => e.outcome)).toEqual(['deleted', 'deleted']);
    for (const e of entries) expect(e.error).toMatch(/the resource is gone; recorded as deleted after reading/);
    expect(only(await reap(m)).outcomes).toMatchObject({ deleted: 0, failed: 0 });
  });
});
