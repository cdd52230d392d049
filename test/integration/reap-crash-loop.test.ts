/**
 * The crash loop (docs/safety.md §1, §10, §11 under repeated kill -9): a seeded, bounded loop per
 * (backend, state store) pair of `reapPairs`. Each loop changes the world a little — new
 * live, protected, young and orphaned resources, now and then a dead owner revived — and
 * runs `reaper reap --execute` through the built CLI, killed with SIGKILL at a failpoint
 * drawn by the seed, after a drawn delay, or not at all. After every loop:
 * - no survivor was lost: every resource of a live owner (counting from its revival),
 *   every protected and every young resource is still there;
 * - the journal accounts for what disappeared: each resource gone is journaled deleted or
 *   still pending (an intent the next run resolves), and each resource journaled deleted
 *   is gone; a run that was not killed leaves no intent.
 * At the end clean runs converge, and the journal equals exactly what disappeared: every
 * orphan deleted once, nothing else, no intent, nothing left in quarantine, no run still
 * `running`.
 *
 * Size: REAPER_CRASH_LOOPS (default 3 per pair) and REAPER_CRASH_SIZE (resources per loop,
 * default 8; half on S3, where moto is slow). REAPER_CRASH_SEED picks the world and the
 * kills (default fixed; printed on failure). REAPER_CRASH_REPORT=FILE appends one JSON line
 * of figures per pair (bench/crash-loop.mjs runs a longer loop and sums them).
 */
import { appendFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { StateStore } from '../../src/state/types.js';
import { reaper, start } from './support/reap-cli.js';
import {
  freshSceneState,
  manifestFile,
  openFixtureStore,
  ownerKey,
  reapManifest,
  reapPairs,
  waitStoreTime,
  type ReapFixture,
  type ReapPair,
  type Seed,
} from './support/reap-fixture.js';
import { runCleanups } from './support/services.js';

vi.setConfig({ maxConcurrency: 8 });

const T = 'items';
const HOUR = 3_600_000;
const LOOPS = Number(process.env.REAPER_CRASH_LOOPS ?? 3);
const SIZE = Number(process.env.REAPER_CRASH_SIZE ?? 8);
const SEED = Number(process.env.REAPER_CRASH_SEED ?? 20261206);

/** mulberry32: a small seeded generator, enough to replay a loop's choices. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const seedOf = (name: string) => [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16_777_619) >>> 0, SEED >>> 0);

export interface CrashLoopFigures {
  pair: string;
  seed: number;
  loops: number;
  kills: number;
  orphansDeleted: number;
  survivorsChecked: number;
  lost: number;
  seconds: number;
}

/** One pair's loop: the world it made, what must survive, and the ledger it reads. */
class CrashLoop {
  private readonly owners = new Map<string, boolean>(); // owner → live
  /** Resources that must never disappear. */
  readonly survivors = new Set<string>();
  /** Every resource created, and each one's owner (null: none). */
  readonly created = new Map<string, string | null>();
  readonly figures: CrashLoopFigures;

  constructor(
    readonly pair: ReapPair,
    readonly fx: ReapFixture,
    readonly store: StateStore,
    readonly rand: () => number,
  ) {
    this.figures = { pair: pair.name, seed: SEED, loops: 0, kills: 0, orphansDeleted: 0, survivorsChecked: 0, lost: 0, seconds: 0 };
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rand() * items.length)]!;
  }

  private async live(owner: string): Promise<void> {
    await this.store.acquireLease({ key: ownerKey(owner), holder: `${owner}-service`, ttlMs: HOUR });
    this.owners.set(owner, true);
  }

  /** New resources: a few of live owners, one protected, one young (where ages can be set), the rest orphans. */
  async grow(loop: number): Promise<void> {
    if (loop === 0) for (const owner of ['live0', 'live1']) await this.live(owner);
    for (const owner of [`dead${loop}a`, `dead${loop}b`]) this.owners.set(owner, false);
    const size = this.fx.kind === 's3' ? Math.max(4, SIZE / 2) : SIZE;
    const liveOwners = [...this.owners].filter(([, live]) => live).map(([o]) => o);
    const deadOwners = [...this.owners].filter(([, live]) => !live).map(([o]) => o);
    const seeds: { seed: Seed; survives: boolean }[] = [
      { seed: { owner: this.pick(deadOwners), protected: true }, survives: true },
      ...(this.fx.traits.backdate ? [{ seed: { owner: this.pick(deadOwners), ageMs: 1_000 }, survives: true }] : []),
    ];
    while (seeds.length < size) {
      const orphan = this.rand() < 0.7;
      seeds.push({ seed: { owner: orphan ? (this.rand() < 0.2 ? null : this.pick(deadOwners)) : this.pick(liveOwners) }, survives: !orphan });
    }
    const ids = await this.fx.create(T, seeds.map((s) => s.seed));
    ids.forEach((id, i) => {
      this.created.set(id, seeds[i]!.seed.owner);
      if (seeds[i]!.survives) this.survivors.add(id);
    });
  }

  /** Now and then a dead owner comes back: what it still has from now on survives (docs/safety.md §2). */
  async revive(): Promise<void> {
    if (this.rand() >= 0.3) return;
    const dead = [...this.owners].filter(([, live]) => !live).map(([o]) => o);
    if (dead.length === 0) return;
    const owner = this.pick(dead);
    await this.live(owner);
    const present = await this.fx.present(T);
    for (const [id, o] of this.created) if (o === owner && present.has(id)) this.survivors.add(id);
  }

  /** A run killed at a drawn failpoint (the N-th hit), after a drawn delay, or left to finish. */
  async run(): Promise<{ killed: boolean; how: string }> {
    // Weighted toward the points between a write-ahead and its outcome, where recovery has the most to do.
    const failpoints = [
      ...['after-journal', 'after-journal', 'after-journal', 'after-delete', 'after-delete', 'after-mark', 'after-plan', 'after-finish'],
      ...(this.fx.kind === 'fs' ? ['after-rename', 'after-rename'] : []),
    ];
    const draw = this.rand();
    const args = ['reap', '--execute', '--lock-ttl', '1s'];
    let how: string;
    let exit;
    if (draw < 0.6) {
      // The N-th hit: batches of 3, so a bigger world has more batches to land in.
      how = `${this.pick(failpoints)}:${1 + Math.floor(this.rand() * Math.max(2, SIZE / 8))}`;
      exit = await reaper(this.fx, args, { REAPER_FAILPOINT: how });
    } else if (draw < 0.85) {
      // A run takes about half a second and more with the world's size (the CLI starts in about 0.3 s).
      const delay = Math.floor(300 + this.rand() * (600 + 30 * SIZE));
      how = `SIGKILL after ${delay} ms`;
      const run = start(this.fx, args);
      const timer = setTimeout(() => run.child.kill('SIGKILL'), delay);
      exit = await run.exit;
      clearTimeout(timer);
    } else {
      how = 'no kill';
      exit = await reaper(this.fx, args);
    }
    const killed = exit.signal === 'SIGKILL';
    if (!killed) expect(exit.code, `${how}: ${exit.stderr}`).toBe(0);
    return { killed, how };
  }

  /** No survivor lost; the journal accounts for every resource gone, and names none that is still there. */
  async check(where: string, options: { pendingAllowed: boolean }): Promise<void> {
    const present = await this.fx.present(T);
    const lost = [...this.survivors].filter((id) => !present.has(id));
    this.figures.survivorsChecked += this.survivors.size;
    this.figures.lost += lost.length;
    expect(lost, `${where}: survivors lost`).toEqual([]);
    const journal = await this.store.journal({ resource: T, limit: 1_000_000 });
    const deleted = new Set(journal.filter((e) => e.outcome === 'deleted' || e.outcome === 'absent').map((e) => e.resourceId));
    const pending = new Set(journal.filter((e) => e.outcome === 'intent').map((e) => e.resourceId));
    const gone = [...this.created.keys()].filter((id) => !present.has(id));
    expect(gone.filter((id) => !deleted.has(id) && !pending.has(id)), `${where}: gone without a journal entry`).toEqual([]);
    expect([...deleted].filter((id) => present.has(id)), `${where}: journaled deleted, still there`).toEqual([]);
    if (!options.pendingAllowed) expect([...pending], `${where}: intents left by a run that was not killed`).toEqual([]);
  }

  /** Clean runs until nothing is pending; then the journal equals exactly what disappeared. */
  async converge(): Promise<void> {
    for (let run = 0; ; run++) {
      expect(run, 'reap did not converge in 6 clean runs').toBeLessThan(6);
      const exit = await reaper(this.fx, ['reap', '--execute']);
      expect(exit.code, exit.stderr).toBe(0);
      const pending = await this.store.countTombstones(T);
      const toMark = (JSON.parse(exit.stdout) as { resources: { toMark: number }[] }).resources[0]!.toMark;
      if (toMark === 0 && pending.marked === 0 && pending.deleting === 0) break;
      await waitStoreTime(this.store, 1_020);
    }
    await this.check('after converging', { pendingAllowed: false });
    const present = await this.fx.present(T);
    expect(present).toEqual(this.survivors);
    const journal = await this.store.journal({ resource: T, limit: 1_000_000 });
    const deletions = journal.filter((e) => e.outcome === 'deleted').map((e) => e.resourceId);
    expect(journal.filter((e) => e.outcome === 'absent')).toEqual([]); // never found already gone: no double delete
    expect(deletions.sort()).toEqual([...this.created.keys()].filter((id) => !present.has(id)).sort()); // each once
    if (this.fx.kind === 'fs') expect(await readdir(path.join(this.fx.dir, 'data', T, '.reaper-quarantine')).catch(() => [])).toEqual([]);
    expect((await this.store.listRuns({ limit: 1_000 })).filter((r) => r.status === 'running')).toEqual([]);
    this.figures.orphansDeleted = deletions.length;
  }
}

describe('reap crash loop (kill -9, seeded)', { concurrent: true }, () => {
  for (const pair of reapPairs()) {
    // Skipped only when a service is missing here; under CI the global setup fails instead.
    // (A loop takes a few seconds, more on a loaded machine: the time limit grows with the loops.)
    const timeout = 120_000 + LOOPS * 30_000;
    it.skipIf(!pair.available())(`${pair.name}: ${LOOPS} loops, no survivor lost, the journal equals what disappeared`, { timeout }, async ({ onTestFailed }) => {
      const began = Date.now();
      const cleanups: (() => Promise<void>)[] = [];
      let passed = false;
      const state = await freshSceneState(pair.store, cleanups, () => !passed);
      const fx = await pair.backend.open();
      const store = await openFixtureStore(fx, state);
      const loop = new CrashLoop(pair, fx, store, random(seedOf(pair.name)));
      const history: string[] = [];
      onTestFailed(() => console.warn(`crash loop ${pair.name}, REAPER_CRASH_SEED=${SEED}, kept ${fx.dir}; loops: ${history.join(' | ')}`));
      try {
        // (The suite's minAge, 30m, keeps the young resources young however long the loop runs.)
        await writeFile(manifestFile(fx), reapManifest(fx, { resources: [{ name: T, policy: { batchSize: 3 } }], state }));
        for (let i = 0; i < LOOPS; i++) {
          await loop.grow(i);
          await loop.revive();
          const { killed, how } = await loop.run();
          history.push(how);
          loop.figures.loops++;
          if (killed) loop.figures.kills++;
          await loop.check(`loop ${i} (${how})`, { pendingAllowed: killed });
          await waitStoreTime(store, 1_100); // the killed run's lock ttl, and the grace of what it marked
        }
        await loop.converge();
        passed = true;
      } finally {
        await store.close();
        await fx.cleanup({ keep: !passed });
        await runCleanups(cleanups);
      }
      loop.figures.seconds = (Date.now() - began) / 1000;
      if (process.env.REAPER_CRASH_REPORT) appendFileSync(process.env.REAPER_CRASH_REPORT, `${JSON.stringify(loop.figures)}\n`);
    });
  }
});
