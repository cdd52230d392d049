/**
 * Applying a plan (`--execute`): its items in batches of one type and one operation — lifts,
 * sweeps (sweep.ts), marks — each batch under the type's refreshed lock and checkpointed. A
 * batch once begun is finished; a stop request is honoured between batches. A type whose
 * deletes fail stops there; the others go on.
 */
import type { Backend } from '../../backends/types.js';
import { classify } from '../../engine/classify.js';
import type { PlanItem } from '../../engine/reap-plan.js';
import { lockName, overlappingLocks, type Shard } from '../../engine/shard.js';
import { InterruptedError, SafetyError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { judgeRecords } from '../classify-stream.js';
import { markLeft } from '../restore.js';
import type { RunContext } from '../context.js';
import type { FailpointName } from '../failpoints.js';
import { applySweeps, describeFailures, withNote } from './sweep.js';
import type { ReapTally } from './tally.js';

export interface ApplyOptions {
  runId: string;
  /** How long a per-type lock lasts without refresh; each batch refreshes it. */
  lockTtlMs: number;
  /** The items come from a saved plan: read and judge each again before acting. */
  fromFile: boolean;
  fail: (name: FailpointName) => void;
  /** Filled with one line per type whose deletes failed. */
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
    else await applyMarks(context, spec, backend, current as Extract<PlanItem, { op: 'mark' }>[], tally, inFlight);
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
  if (backend.unmark) {
    // The lift stands either way (the ledger, not the mark, keeps a resource from the sweep); a
    // mark that will not come off is noted on its tombstone, and `restore` selecting it retries.
    await backend.unmark(items.map((i) => ({ id: i.id, fingerprint: '' }))).catch(async () => {
      // Only a tombstone still lifted: one a stale plan's lift did not reach (swept since) keeps its state.
      for (const item of items) await context.store.setTombstoneState(item.tombstoneId, 'lifted', markLeft(item.why), 'lifted');
    });
  }
}

async function applyMarks(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: Extract<PlanItem, { op: 'mark' }>[],
  tally: ReapTally,
  options: { runId: string; fromFile: boolean; fail: (name: FailpointName) => void; signal?: AbortSignal },
) {
  let marks = items;
  if (options.fromFile) {
    // A saved plan may be stale: mark only what is still reapable with the same fingerprint.
    const current = await backend.read(items.map((i) => i.id), options.signal);
    const { answers } = await judgeRecords([...current.values()], spec, context.liveness, options.signal);
    const nowMs = await context.store.now();
    marks = items.filter((item) => {
      const record = current.get(item.id);
      if (!record || record.fingerprint !== item.fingerprint) return false;
      const f = classify(record, spec, answers, nowMs);
      return f.status === 'orphaned' || (f.status === 'expired' && spec.onExpired === 'reap');
    });
  }
  let fingerprints: Map<string, string> | null = null;
  if (backend.mark) {
    fingerprints = await backend.mark(marks.map((m) => ({ id: m.id, fingerprint: m.fingerprint, ownerValue: m.ownerValue })), options.runId, options.signal);
  }
  const rows = marks
    .filter((m) => fingerprints === null || fingerprints.has(m.id))
    .map((m) => ({
      resource: spec.name,
      resourceId: m.id,
      fingerprint: fingerprints?.get(m.id) ?? m.fingerprint,
      owner: m.owner,
      ownerValue: m.ownerValue,
      reason: m.reason,
      bytes: m.bytes,
    }));
  let inserted: number;
  try {
    inserted = await context.store.insertTombstones(options.runId, rows);
  } catch (error) {
    if (fingerprints !== null) await takeMarksOff(backend, rows, spec.name, error);
    throw error;
  }
  tally.marked(inserted);
  options.fail('after-mark');
}

/**
 * The marks put on for tombstones that were not written: nothing in the ledger would ever lift
 * them, so they come off again, best effort, before the run fails with the store's error (which
 * names the marks that would not come off). Unmarking a resource whose tombstone was written
 * after all (an answer lost) is harmless: the ledger, not the mark, decides (docs/safety.md §1).
 */
async function takeMarksOff(backend: Backend, rows: readonly { resourceId: string; fingerprint: string }[], name: string, error: unknown): Promise<void> {
  if (rows.length === 0 || !backend.unmark) return;
  await backend.unmark(rows.map((r) => ({ id: r.resourceId, fingerprint: r.fingerprint }))).catch((unmarkError: unknown) => {
    const ids = rows.slice(0, 5).map((r) => r.resourceId).join(', ') + (rows.length > 5 ? ', …' : '');
    withNote(error, `the visible mark stays on ${rows.length} resource(s) of ${name} with no tombstone (${ids}): ${(unmarkError as Error).message}`);
  });
}
