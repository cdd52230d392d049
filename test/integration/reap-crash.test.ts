/**
 * The reap safety suite through the real process (docs/safety.md §7–§9, §11–§13, signals): the built
 * binary `bin/reaper` (run `npm run build` first) is spawned with a minimal environment,
 * killed with SIGKILL at named failpoints (REAPER_FAILPOINT), stopped with SIGTERM or with
 * a failpoint's SIGSTOP, and re-run. The end state must be the one an uninterrupted run reaches:
 * every orphan deleted exactly once, nothing live deleted, nothing skipped, and no
 * journal entry left at `intent`.
 *
 * Every test runs for every fixture in `reapFixtures` (files, S3 on moto, PostgreSQL,
 * MariaDB) over a SQLite state store, and for the files backend over a PostgreSQL and a
 * MariaDB state store (every pair with REAPER_TEST_FULL=1; see `reapPairs`), side by
 * side. The CLI reads its manifest from the fixture's
 * directory, with the connection URL or endpoint (and moto's static test credentials)
 * written inline. S3 objects cannot be backdated, so the S3 scene has no young object
 * and runs with `minAge: 0s` (see support/reap-fixture-s3.ts).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runReap } from '../../src/run/reap.js';
import type { StateStore, StoreDialect } from '../../src/state/types.js';
import {
  freshSceneState,
  fullMatrix,
  loadReapManifest,
  manifestFile,
  openFixtureStore,
  ownerKey,
  reapManifest,
  reapPairs,
  waitStoreTime,
  type Policy,
  type ReapFixture,
  type ReapFixtureKind,
  type SceneState,
} from './support/reap-fixture.js';
import { reaper, report, start } from './support/reap-cli.js';
import { describeWhere, itWhere } from '../support/matrix.js';
import { stopped, until } from './support/child-state.js';
import { runCleanups } from './support/services.js';
import { reaperSync } from './support/cli.js';

// Much of a crash test is waiting (for a grace, a lock's ttl, a child process): let a few more run side by
// side than the project's default of 5. Not many more: every CLI spawn is half a second of CPU on 2 cores.
vi.setConfig({ maxConcurrency: 8 });

const T = 'items';
const HOUR = 3_600_000;
const GRACE_MS = 1_000;

interface Scene {
  fx: ReapFixture;
  state: SceneState;
  store: StateStore;
  /** Files that must survive: live owner, protected, young. */
  keep: string[];
  /** Orphans: each must end deleted exactly once. */
  orphans: string[];
}

/**
 * A type with live, protected, young and orphaned resources; the manifest is written to disk for the CLI.
 * (No young resource on S3: an object's age is its upload time, and the S3 fixture's minAge is 0s.)
 */
async function scene(kind: ReapFixtureKind, state: SceneState, policy: Policy = {}, orphanCount = 7): Promise<Scene> {
  const fx = await kind.open();
  const store = await openFixtureStore(fx, state);
  await store.acquireLease({ key: ownerKey('anchor'), holder: 'anchor-service', ttlMs: HOUR });
  await store.acquireLease({ key: ownerKey('alice'), holder: 'alice-service', ttlMs: HOUR });
  const keep = await fx.create(T, [
    { owner: 'alice' },
    { owner: 'alice' },
    { owner: 'bob', protected: true },
    ...(fx.traits.backdate ? [{ owner: 'bob', ageMs: 1_000 }] : []),
  ]);
  const orphans = await fx.create(
    T,
    Array.from({ length: orphanCount }, (_, i) => ({ owner: i % 3 === 2 ? null : `dead${i % 2}` })),
  );
  await writeFile(manifestFile(fx), reapManifest(fx, { resources: [{ name: T, policy }], state }));
  return { fx, state, store, keep, orphans };
}

/** What the files backend's quarantine holds (nothing, without `retain`, once every sweep finished). */
const quarantined = (s: Scene): Promise<string[]> => readdir(path.join(s.fx.dir, 'data', T, '.reaper-quarantine')).catch(() => []);

/** The end state of an uninterrupted run, checked on the resources and on the ledger. */
async function expectConverged(s: Scene): Promise<void> {
  const { fx, store, keep, orphans } = s;
  expect(await fx.present(T)).toEqual(new Set(keep));
  if (fx.kind === 'fs') expect(await quarantined(s)).toEqual([]);
  const journal = await store.journal({ resource: T });
  expect(journal.filter((e) => e.outcome === 'intent')).toEqual([]);
  const deletions = journal.filter((e) => e.outcome === 'deleted' || e.outcome === 'absent').map((e) => e.resourceId);
  expect(deletions.sort()).toEqual([...orphans].sort()); // each orphan exactly once, nothing else
  expect(journal.filter((e) => e.outcome === 'absent')).toEqual([]); // nothing was found already gone: no double delete
  expect(await store.countTombstones(T)).toMatchObject({ marked: 0, deleting: 0 });
  expect(await store.pendingBatches(T)).toEqual([]);
}

/** Re-run `reap --execute` (waiting out the grace between runs) until a run marked nothing new and left no tombstone pending. */
async function converge(s: Scene): Promise<void> {
  for (let run = 0; run < 4; run++) {
    const exit = await reaper(s.fx, ['reap', '--execute']);
    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    const pending = await s.store.countTombstones(T);
    if (report(exit).resources[0]!.toMark === 0 && pending.marked === 0 && pending.deleting === 0) return;
    await waitStoreTime(s.store, GRACE_MS + 20);
  }
  throw new Error('reap did not converge in 4 runs');
}

/** Mark in-process (quicker than spawning the CLI), then let the grace pass. */
async function markAndWait(s: Scene): Promise<number> {
  const manifest = loadReapManifest(s.fx, await readFile(manifestFile(s.fx), 'utf8'));
  const marked = (await runReap(manifest, { execute: true, store: s.store })).outcomes.marked;
  await waitStoreTime(s.store, GRACE_MS + 20);
  return marked;
}

async function close(s: Scene | null, failed: boolean): Promise<void> {
  if (!s) return;
  await s.store.close();
  await s.fx.cleanup({ keep: failed });
  if (failed) console.warn(`kept ${s.fx.dir} (${s.fx.kind}, state ${s.state.url})`);
}

/** Run `body` on a fresh scene (its state store of `dialect`); the scene is kept as evidence when the body fails. */
async function withScene(kind: ReapFixtureKind, dialect: StoreDialect, policy: Policy, orphanCount: number, body: (s: Scene) => Promise<void>): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  let s: Scene | null = null;
  let ok = false;
  try {
    s = await scene(kind, await freshSceneState(dialect, cleanups, () => !ok), policy, orphanCount);
    await body(s);
    ok = true;
  } finally {
    await close(s, !ok);
    await runCleanups(cleanups);
  }
}

// The backends' blocks run side by side: each test has its own directory, store and bucket/database.
describe('reap crash safety', { concurrent: true }, () => {
  for (const pair of reapPairs()) {
    const kind = pair.backend;
    const dialect = pair.store;
    // Skipped only when a service is missing here; under CI the global setup fails instead.
    describe.skipIf(!pair.available())(`reap crash safety on ${pair.name} (the built CLI)`, { concurrent: true }, () => {
      describe.concurrent('§11/§12: kill -9 at a failpoint, then re-run: the same end state as an uninterrupted run', () => {
        const cases: { failpoint: string; phase: 'mark' | 'sweep'; what: string }[] = [
          { failpoint: 'after-plan', phase: 'sweep', what: 'planned, nothing applied' },
          { failpoint: 'after-mark', phase: 'mark', what: 'the first batch of tombstones written, the rest not' },
          { failpoint: 'after-journal', phase: 'sweep', what: 'write-ahead intents durable, nothing deleted' },
          { failpoint: 'after-delete', phase: 'sweep', what: 'a batch deleted, its outcomes not journaled' },
          { failpoint: 'after-journal:2', phase: 'sweep', what: 'the second batch journaled after the first completed' },
          { failpoint: 'after-finish', phase: 'sweep', what: 'the run recorded, its lock not released' },
          // Files only: a file renamed into quarantine, not yet checked there and unlinked.
          ...(kind.kind === 'fs' ? [{ failpoint: 'after-rename', phase: 'sweep' as const, what: 'a file in quarantine, not yet unlinked' }] : []),
        ];
        // (after-batch is the same point as after-journal, its older name: src/run/reap/sweep.ts calls the two
        // one after the other.)
        // guard: write-ahead intents are resolved by reading on the next run (recoverIntents), and the
        // tombstone state machine (only `marked` tombstones are due, and only they move to `deleting`)
        // keeps a recovered batch from being swept twice.
        for (const c of cases) {
          it(`${c.failpoint} during the ${c.phase} run (${c.what})`, ({ expect: local }) =>
            withScene(kind, dialect, { batchSize: 2 }, 7, async (s) => {
              if (c.phase === 'sweep') local(await markAndWait(s)).toBe(s.orphans.length);
              const killed = await reaper(s.fx, ['reap', '--execute', '--lock-ttl', '1s'], { REAPER_FAILPOINT: c.failpoint });
              local(killed.signal).toBe('SIGKILL');
              // The killed run's lock and heartbeat outlive it by --lock-ttl: until then it may be a run
              // frozen mid-batch, whose batch is not left behind (pendingBatches leaves it out); the
              // next run waits that out.
              await waitStoreTime(s.store, 1_100);
              const killedRun = (await s.store.listRuns({ kind: 'reap', limit: 1 }))[0]!;
              const journal = await s.store.journal({ resource: T });
              if (c.failpoint.startsWith('after-journal')) local(journal.filter((e) => e.outcome === 'intent')).toHaveLength(2);
              if (['after-journal', 'after-delete'].includes(c.failpoint)) {
                // One batch pending, its two tombstones deleting: after-delete, gone from the backend already.
                const [pending, ...more] = await s.store.pendingBatches(T);
                local(more).toEqual([]);
                local(pending!.tombstones).toHaveLength(2);
                const present = await s.fx.present(T);
                for (const t of pending!.tombstones) local(present.has(t.resourceId), t.resourceId).toBe(c.failpoint !== 'after-delete');
              }
              if (c.failpoint === 'after-journal:2') local(journal.filter((e) => e.outcome === 'deleted')).toHaveLength(2);
              if (c.failpoint === 'after-mark') local(await s.store.countTombstones(T)).toMatchObject({ marked: 2 });
              if (c.failpoint === 'after-rename') {
                local(journal.filter((e) => e.outcome === 'intent')).toHaveLength(2);
                local(await quarantined(s)).not.toEqual([]);
              }
              await converge(s);
              await expectConverged(s);
              // Its heartbeat lapsed with its lock: the next run recorded it abandoned (unless it had finished).
              local((await s.store.getRun(killedRun.runId))!.status).toBe(c.failpoint === 'after-finish' ? 'ok' : 'abandoned');
            }),
          );
        }
      });

      // A run killed with -9 cannot record its end; its heartbeat (kept like its locks, every --lock-ttl / 3)
      // stops, and the first run after --lock-ttl records it abandoned. (Files only: the rule is the store's,
      // and this pair runs on each store.)
      describeWhere(kind.kind === 'fs')('runs killed with -9', () => {
        // guard: abandonStaleRuns in every store's startRun.
        it('are recorded abandoned by the next run once their heartbeat lapsed, and `reaper runs` shows it', ({ expect: local }) =>
          withScene(kind, dialect, {}, 3, async (s) => {
            const killed = await reaper(s.fx, ['reap', '--execute', '--lock-ttl', '1s'], { REAPER_FAILPOINT: 'after-plan' });
            local(killed.signal).toBe('SIGKILL');
            type Listed = { runId: string; status: string; finishedAt: string | null; error: string | null }[];
            const listed = async () => JSON.parse((await reaper(s.fx, ['runs'])).stdout) as Listed;
            const [victim] = await listed();
            local(victim).toMatchObject({ status: 'running', finishedAt: null });
            await waitStoreTime(s.store, 1_100);
            const next = await reaper(s.fx, ['reap', '--execute']);
            local(next.code).toBe(0);
            const [latest, before] = await listed();
            local(latest).toMatchObject({ runId: report(next).runId, status: 'ok' });
            local(before).toMatchObject({ runId: victim!.runId, status: 'abandoned', finishedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) });
            local(before!.error).toMatch(/^abandoned: no heartbeat since .*the process was killed or lost/);
          }),
        );
      });

      describe('§3/§12 across a crash', () => {
        // guard: a pending intent is resolved by reading the resource, conditionally on its fingerprint.
        it('a journaled resource changed while the killed run was down survives the recovery, lifted as changed', ({ expect: local }) =>
          withScene(kind, dialect, { batchSize: 2 }, 7, async (s) => {
            local(await markAndWait(s)).toBe(s.orphans.length);
            local((await reaper(s.fx, ['reap', '--execute', '--lock-ttl', '1s'], { REAPER_FAILPOINT: 'after-journal' })).signal).toBe('SIGKILL');
            const intents = (await s.store.journal({ resource: T })).filter((e) => e.outcome === 'intent');
            local(intents).toHaveLength(2);
            const changed = intents[0]!.resourceId;
            await s.fx.rewrite(T, changed);
            await waitStoreTime(s.store, 1_100);
            const rerun = await reaper(s.fx, ['reap', '--execute']);
            local(rerun.code).toBe(0);
            local(report(rerun).resources[0]!.lifts).toEqual({ changed: 1 });
            local(await s.fx.present(T)).toEqual(new Set([...s.keep, changed]));
            const entries = (await s.store.journal({ resource: T })).filter((e) => e.resourceId === changed);
            local(entries.map((e) => e.outcome)).toEqual(['changed']);
            // Still an orphan with its new content: marked afresh, it goes after a new grace.
            await converge(s);
            await expectConverged(s);
          }),
        );
      });

      // Orphans in batches of 4. The SIGTERM-at-start test races the run (the signal lands wherever the run
      // is, usually while it plans): its sweep must be long enough not to end first — 400 on files and SQL;
      // 60 on S3, where moto answers about 100 requests a second and each delete is a HeadObject (the batch's
      // re-verification) and a conditional DeleteObject — a sweep of seconds; 60 on the command kind too,
      // whose every page and batch is a child process.
      // The other two stop the run at a failpoint (SIGSTOP) mid-sweep, wherever the load puts the scheduler:
      // three batches are enough.
      const racing = kind.kind === 's3' || kind.kind === 'command' ? 60 : 400;
      const stopping = 12;
      describe.concurrent('signals and concurrency', () => {
        // The SIGTERM tests are about the process, whatever its store: on a server store only with
        // REAPER_TEST_FULL=1. The lock test runs on every store (freezing a run is the store's business).
        const sweeping = (name: string, orphans: number, body: (sc: Scene, local: typeof expect) => Promise<void>, everyStore = false) =>
          itWhere(everyStore || dialect === 'sqlite' || fullMatrix)(name, ({ expect: local }) =>
            withScene(kind, dialect, { batchSize: 4 }, orphans, async (sc) => {
              local(await markAndWait(sc)).toBe(orphans);
              await body(sc, local);
            }),
          );

        const deletedSoFar = async (sc: Scene) => (await sc.store.journal({ resource: T })).filter((e) => e.outcome === 'deleted').length;

        // guard: the stop check after each applied batch (the batch in flight is finished, not abandoned).
        // The run stops itself (SIGSTOP) after its first batch's delete, before recording it; the SIGTERM sent
        // then is delivered when it continues, with that batch in flight.
        sweeping('SIGTERM during a long reap --execute exits 130 after finishing the batch; a re-run completes', stopping, async (sc, local) => {
          const run = start(sc.fx, ['reap', '--execute'], { REAPER_FAILPOINT: 'after-delete:1:stop' });
          await until('the run to stop itself mid-sweep', async () => stopped(run.child) || run.child.exitCode !== null);
          local(run.child.exitCode, 'the run ended instead of stopping at its failpoint').toBeNull();
          run.child.kill('SIGTERM');
          run.child.kill('SIGCONT');
          const exit = await run.exit;
          local(exit.code).toBe(130);
          local(exit.stderr).toMatch(/SIGTERM received; finishing the current batch/);
          local(exit.stderr).toMatch(/stopped after finishing the current batch/);
          const journal = await sc.store.journal({ resource: T });
          local(journal.filter((e) => e.outcome === 'intent')).toEqual([]); // the batch in flight was finished
          const deleted = journal.filter((e) => e.outcome === 'deleted').length;
          local(deleted % 4).toBe(0); // whole batches only
          local(deleted).toBeLessThan(sc.orphans.length);
          local(sc.orphans.length - (await sc.fx.present(T)).size + sc.keep.length).toBe(deleted);
          const [interrupted] = await sc.store.listRuns({ kind: 'reap', limit: 1 });
          local(interrupted?.status).toBe('interrupted');
          // What it did until the stop, in its JSON document and its run record alike.
          const printed = JSON.parse(exit.stdout) as { runId: string; outcomes: { deleted: number }; errors: string[]; interrupted?: boolean };
          local(printed.runId).toBe(interrupted?.runId);
          local(printed.interrupted).toBe(true);
          local(printed.outcomes.deleted).toBe(deleted);
          local(printed.errors).toEqual([expect.stringMatching(/^interrupted: stopped after finishing the current batch/)]);
          local((interrupted?.summary as { outcomes?: { deleted?: number } } | null)?.outcomes?.deleted).toBe(deleted);
          // Its record keeps what it did: `reaper runs` shows its scan's and its deletes' counts, not '-'.
          const [listed] = JSON.parse((await reaper(sc.fx, ['runs'])).stdout) as { runId: string; summary: { summary?: { scanned?: number; orphaned?: number }; outcomes?: { deleted?: number; lifted?: number } } | null }[];
          local(listed!.summary).toMatchObject({ summary: { scanned: sc.keep.length + sc.orphans.length }, outcomes: { deleted, lifted: 0 } });
          const table = reaperSync(['runs', '-c', manifestFile(sc.fx), '--output', 'table'], { cwd: sc.fx.dir, env: { ...sc.fx.env(), COLUMNS: '200' } });
          local(table.code).toBe(0);
          const row = table.stdout.split('\n').find((line) => line.includes(` ${listed!.runId} `))!;
          const [scanned, orphaned, deletedCell, lifted] = row.split('│').slice(6, 10).map((cell) => cell.trim());
          local({ scanned, orphaned, deleted: deletedCell, lifted }).toEqual({
            scanned: String(sc.keep.length + sc.orphans.length),
            orphaned: String(listed!.summary!.summary!.orphaned),
            deleted: String(deleted),
            lifted: '0',
          });
          await converge(sc);
          await expectConverged(sc);
        });

        // guard: a stop before the apply phase is an interruption, not a failure. Usually lands while the
        // run plans (a deterministic library test in reap-fs.test.ts covers that case exactly).
        sweeping('SIGTERM as soon as the run starts exits 130 with nothing half-done; a re-run completes', racing, async (sc, local) => {
          const run = start(sc.fx, ['reap', '--execute']);
          // The run record appears before the breaker and planning start: signal at once.
          await until('the run to start', async () => (await sc.store.listRuns({ kind: 'reap', limit: 1 }))[0]?.status === 'running');
          run.child.kill('SIGTERM');
          const exit = await run.exit;
          local(exit.code).toBe(130);
          local(exit.stderr).not.toMatch(/^reaper: SIGTERM$/m); // not reported as a backend failure
          local((await sc.store.journal({ resource: T })).filter((e) => e.outcome === 'intent')).toEqual([]);
          local((await sc.store.listRuns({ kind: 'reap', limit: 1 }))[0]?.status).toBe('interrupted');
          await converge(sc);
          await expectConverged(sc);
        });

        // docs/safety.md §13 with two live processes: the first is frozen (SIGSTOP) while it holds the lock.
        // guard: the per-type lock in the state store.
        sweeping('two concurrent reap runs on the same type: the second refuses (exit 4, lock); each resource is deleted at most once', stopping, async (sc, local) => {
          // The first run stops itself (SIGSTOP) after its second batch's delete: mid-sweep, lock held, no
          // store transaction open — wherever the machine's load puts the scheduler.
          const first = start(sc.fx, ['reap', '--execute'], { REAPER_FAILPOINT: 'after-delete:2:stop' });
          await until('the first run to stop itself mid-sweep', async () => stopped(first.child) || first.child.exitCode !== null);
          local(first.child.exitCode, 'the first run ended instead of stopping at its failpoint').toBeNull();
          local(await deletedSoFar(sc)).toBeLessThan(sc.orphans.length);
          try {
            const second = await reaper(sc.fx, ['reap', '--execute']);
            local(second.stderr).toMatch(/another reap run holds the lock on items/);
            local(second.code).toBe(4);
          } finally {
            first.child.kill('SIGCONT');
          }
          const done = await first.exit;
          local(done.code).toBe(0);
          await converge(sc);
          await expectConverged(sc);
        }, true);
      });

      // Files only: every rail here (the breaker, the caps, the plan's digest, the lock) refuses before the
      // backend is written to, so what these add over the library suite — which runs the same rails on all four
      // backends — is the CLI's exit code and messages, the same for every backend. Each spawn of the CLI costs
      // about half a second of CPU on this 2-core machine; the failpoint and signal tests above need them more.
      // (On the SQLite store only by default: the rails refuse before the store is written to, bar the lock,
      // which the library suite's §13 test holds on every store.)
      describeWhere(kind.kind === 'fs' && (dialect === 'sqlite' || fullMatrix)).concurrent('safety rails exit 4 through the CLI and touch nothing', () => {
        const rail = (name: string, body: (s: Scene, local: typeof expect) => Promise<void>, policy: Policy = {}) =>
          it(name, ({ expect: local }) => withScene(kind, dialect, policy, 7, (s) => body(s, local)));

        const untouched = async (s: Scene, local: typeof expect, tombstones = 0) => {
          local(await s.fx.present(T)).toEqual(new Set([...s.keep, ...s.orphans]));
          local((await s.store.findTombstones({ resource: T })).length).toBe(tombstones);
          local(await s.store.journal({ resource: T })).toEqual([]);
        };

        // The "Done when": every lease released → exit 4, no tombstone, no delete.
        rail('§8: an empty lease table makes reap --execute exit 4 and touch nothing', async (s, local) => {
          for (const l of await s.store.listLeases()) await s.store.releaseLease(l.leaseId);
          const exit = await reaper(s.fx, ['reap', '--execute']);
          local(exit.code).toBe(4);
          local(exit.stderr).toMatch(/registry-outage breaker: nothing reaped/);
          local(exit.stderr).toMatch(/--allow-liveness-drop/);
          await untouched(s, local);
          const deliberate = await reaper(s.fx, ['reap', '--execute', '--allow-liveness-drop']);
          local(deliberate.code).toBe(0);
          local(report(deliberate).resources[0]!.outcomes.marked).toBe(s.orphans.length + 2); // alice's files too: the registry is empty
        });

        rail(
          '§7: a cap that would be exceeded exits 4 before any tombstone',
          async (s, local) => {
            const exit = await reaper(s.fx, ['reap', '--execute']);
            local(exit.code).toBe(4);
            local(exit.stderr).toMatch(/caps exceeded; nothing was marked or deleted/);
            local(exit.stderr).toMatch(/7 to mark or sweep exceeds maxDeletesPerRun 6/);
            await untouched(s, local);
          },
          { maxDeletesPerRun: 6 },
        );

        rail(
          '§7: maxDeleteFraction exceeded exits 4 before any tombstone',
          async (s, local) => {
            const exit = await reaper(s.fx, ['reap', '--execute']);
            local(exit.code).toBe(4);
            local(exit.stderr).toMatch(/exceeds maxDeleteFraction 0.5/);
            await untouched(s, local);
          },
          { maxDeleteFraction: 0.5 },
        );

        rail('§9: a tampered plan, or one made from another manifest, exits 4', async (s, local) => {
          const plan = path.join(s.fx.dir, 'plan.ndjson');
          const dry = await reaper(s.fx, ['reap', '--plan-out', plan]);
          local(dry.code).toBe(0);
          await untouched(s, local);
          const lines = (await readFile(plan, 'utf8')).trimEnd().split('\n');
          const tampered = path.join(s.fx.dir, 'tampered.ndjson');
          await writeFile(tampered, [lines[0]!.replace('"op":"mark"', '"op":"sweep"'), ...lines.slice(1)].join('\n') + '\n');
          const edited = await reaper(s.fx, ['reap', '--execute', '--plan', tampered]);
          local(edited.code).toBe(4);
          local(edited.stderr).toMatch(/does not match its digest/);
          await untouched(s, local);
          await writeFile(manifestFile(s.fx), reapManifest(s.fx, { resources: [{ name: T, policy: { maxDeletesPerRun: 99 } }], state: s.state }));
          const foreign = await reaper(s.fx, ['reap', '--execute', '--plan', plan]);
          local(foreign.code).toBe(4);
          local(foreign.stderr).toMatch(/made from a different manifest/);
          await untouched(s, local);
        });

        rail('§13: a run that finds the lock held (a crashed run within its --lock-ttl) exits 4', async (s, local) => {
          const crashed = await reaper(s.fx, ['reap', '--execute', '--lock-ttl', '1h'], { REAPER_FAILPOINT: 'after-plan' });
          local(crashed.signal).toBe('SIGKILL');
          const exit = await reaper(s.fx, ['reap', '--execute']);
          local(exit.code).toBe(4);
          local(exit.stderr).toMatch(/another reap run holds the lock on items/);
          await untouched(s, local);
        });
      });
    });
  }
});
