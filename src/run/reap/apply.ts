/**
 * Applying a plan (`--execute`): its items in batches of one type and one operation — lifts,
 * sweeps (sweep.ts), marks (marks.ts) — each batch under the type's refreshed lock and checkpointed. A
 * batch once begun is finished; a stop request is honoured between batches. A type whose
 * deletes fail stops there; the others go on.
 */
import type { Backend } from '../../backends/types.js';
import type { PlanItem } from '../../engine/reap-plan.js';
import { lockName, overlappingLocks, type Shard } from '../../engine/shard.js';
import { InterruptedError, SafetyError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import type { RunContext } from '../context.js';
import type { FailpointName } from '../failpoints.js';
import { applyMarks, shownIds, takeMarksOff } from './marks.js';
import { applySweeps, describeFailures } from './sweep.js';
import type { ReapTally } from './tally.js';

export interface ApplyOptions {
  runId: string;
  /** How long a per-type lock lasts without refresh; each batch refreshes it. */
  lockTtlMs: number;
  /** The items come from a saved plan: read and judge each again before acting. */
  fromFile: boolean;
  fail: (name: FailpointName) => void;
  /** Filled with one line per type whose deletes failed, and per mark batch that was refused in part. */
  errors: string[];
  signal?: AbortSignal;
  onProgress?: (text: string) => void;
  /** The shard whose lock each batch refreshes (engine/shard.ts lockName). */
  shard?: Shard | null;
}

/**
 * Refuse (a safety rail) when another run holds a live lock whose part of the type `name`
 * overlaps this run's `lock` (engine/shard.ts overlappingLocks): when the lock is taken, and
 * again before each batch.
 */
export async function refuseOverlap(store: RunContext['store'], name: string, lock: string, runId: string, then: string): Promise<void> {
  const overlapping = overlappingLocks(name, lock, await store.liveLocks(), runId);
  if (overlapping.length > 0) {
    throw new SafetyError(`another reap run holds the lock on ${overlapping.join(', ')}, whose part of ${name} overlaps this run's (${lock}); ${then}`);
  }
}

export async function applyPlan(
  context: RunContext,
  specs: ReadonlyMap<string, ResourceSpec>,
  items: () => AsyncGenerator<PlanItem>,
  tallies: ReadonlyMap<string, ReapTally>,
  options: ApplyOptions,
): Promise<void> {
  const { runId } = options;
  let batch: PlanItem[] = [];
  let batchKey = '';
  const failedTypes = new Set<string>();
  const flush = async () => {
    if (batch.length === 0) return;
    const first = batch[0]!;
    const spec = specs.get(first.resource);
    const current = batch;
    batch = [];
    if (!spec || failedTypes.has(spec.name)) return;
    // A stop requested before this batch begins (after planning, or between batches) acts on nothing more.
    if (options.signal?.aborted) throw new InterruptedError('stopped before the next batch; the next run resumes');
    const lock = lockName(spec.name, options.shard ?? null);
    if (!(await context.store.refreshLock(lock, runId, options.lockTtlMs))) {
      throw new SafetyError(`lost the lock on ${lock}; stopping before acting further`);
    }
    // A lock that lapsed (a stall longer than its ttl) and was refreshed back: a run of another
    // shard layout may have started in the gap, seeing no overlap then; whichever looks now stops.
    await refuseOverlap(context.store, spec.name, lock, runId, 'stopping before acting further');
    const tally = tallies.get(spec.name)!;
    const backend = await context.backend(spec);
    const before = tally.outcomes.failed;
    // A batch once begun is finished: a stop request is honoured after it (below), never inside its
    // re-reads, marks or read-backs (a second signal ends the process at once).
    const inFlight = { runId, fromFile: options.fromFile, fail: options.fail, signal: undefined };
    let failures: string[] = [];
    if (first.op === 'lift') await applyLifts(context, backend, current as Extract<PlanItem, { op: 'lift' }>[], tally, runId);
    else if (first.op === 'sweep') failures = await applySweeps(context, spec, backend, current as Extract<PlanItem, { op: 'sweep' }>[], tally, inFlight);
    else {
      const refused = await applyMarks(context, spec, backend, current as Extract<PlanItem, { op: 'mark' }>[], tally, inFlight);
      if (refused.length > 0) {
        options.errors.push(`${spec.name}: ${refused.length} resource(s) could not be marked (${shownIds(refused)}): the mark was refused; they were not tombstoned, and the next run tries again`);
      }
    }
    await context.store.saveCheckpoint(runId, spec.name, first.op, current[current.length - 1]!.id);
    const o = tally.outcomes;
    options.onProgress?.(`${spec.name}: ${o.deleted} deleted, ${o.marked} marked, ${o.lifted} lifted`);
    if (o.failed > before) {
      failedTypes.add(spec.name);
      const why = failures.length > 0 ? ` (${describeFailures(failures)})` : '';
      options.errors.push(`${spec.name}: ${o.failed - before} delete(s) failed${why}; the batch stopped and the rest of ${spec.name} waits for the next run`);
    }
    if (options.signal?.aborted) throw new InterruptedError('stopped after finishing the current batch; the next run resumes');
  };
  for await (const item of items()) {
    const key = `${item.resource}\0${item.op}`;
    const spec = specs.get(item.resource);
    if (key !== batchKey || batch.length >= (spec?.batchSize ?? 500)) {
      await flush();
      batchKey = key;
    }
    batch.push(item);
  }
  await flush();
}

async function applyLifts(context: RunContext, backend: Backend, items: Extract<PlanItem, { op: 'lift' }>[], tally: ReapTally, runId: string) {
  const byWhy = new Map<string, number[]>();
  for (const item of items) byWhy.set(item.why, [...(byWhy.get(item.why) ?? []), item.tombstoneId]);
  for (const [why, ids] of byWhy) tally.lifted(why, await context.store.liftTombstones(runId, ids, why));
  // A tombstone a stale plan's lift did not reach (swept since) keeps its state (takeMarksOff).
  await takeMarksOff(context, backend, items.map((i) => ({ tombstoneId: i.tombstoneId, id: i.id, fingerprint: '', why: i.why })));
}
