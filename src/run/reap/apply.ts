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
import { printable } from '../../report/table.js';
import { judgeRecords } from '../classify-stream.js';
import { markLeft } from '../restore.js';
import type { RunContext } from '../context.js';
import type { FailpointName } from '../failpoints.js';
import { takeMarksOff, type LiftedMark } from './marks.js';
import { applySweeps, describeFailures, withNote } from './sweep.js';
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
        const shown = refused.slice(0, 5).map(printable).join(', ') + (refused.length > 5 ? ', …' : '');
        options.errors.push(`${spec.name}: ${refused.length} resource(s) could not be marked (${shown}): the mark was refused; they were not tombstoned, and the next run tries again`);
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

async function applyMarks(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: Extract<PlanItem, { op: 'mark' }>[],
  tally: ReapTally,
  options: { runId: string; fromFile: boolean; fail: (name: FailpointName) => void; signal?: AbortSignal },
): Promise<string[]> {
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
  const rows = marks.map((m) => ({
    resource: spec.name,
    resourceId: m.id,
    fingerprint: m.fingerprint,
    owner: m.owner,
    ownerValue: m.ownerValue,
    reason: m.reason,
    bytes: m.bytes,
  }));
  // The tombstones first, with the fingerprints read: a run killed from here on leaves no visible
  // mark the ledger does not know of (docs/safety.md §14). A write that fails has marked nothing.
  const inserted = await context.store.insertTombstones(options.runId, rows);
  if (!backend.mark) {
    tally.marked(inserted);
    options.fail('after-mark');
    return [];
  }
  // Only the resources this batch tombstoned are marked: one that already had an active tombstone keeps it, unmarked by this run.
  const written = await context.store.activeTombstones(spec.name, marks.map((m) => m.id));
  const ours = marks.filter((m) => {
    const t = written.get(m.id);
    return t !== undefined && t.state === 'marked' && t.markedRunId === options.runId;
  });
  const tombstoneOf = (id: string) => written.get(id)!.tombstoneId;
  options.fail('before-mark');
  let answered: Map<string, string>;
  try {
    answered = ours.length === 0 ? new Map() : await backend.mark(ours.map((m) => ({ id: m.id, fingerprint: m.fingerprint, ownerValue: m.ownerValue })), options.runId, options.signal);
  } catch (error) {
    await withdrawMarks(context, backend, ours, tombstoneOf, spec.name, options.runId, error);
    throw error;
  }
  options.fail('before-confirm');
  // A resource the mark did not answer changed or went since it was read, or the mark was refused
  // (a handler's `error`, an S3 object that takes no more tags): read back to tell which. Nothing
  // may be swept on a fingerprint the mark did not confirm, so either way its fresh tombstone is
  // lifted at once; a refusal is the run's error, and whatever of the mark went on comes off.
  // The others get the fingerprint their mark answered (a mark column changes a row's version).
  // Should the store fail from here on, the tombstones keep the fingerprints read: the sweep
  // judges them as it would after a crash here (docs/safety.md §14).
  const unanswered = ours.filter((m) => !answered.has(m.id));
  let refused: typeof ours = [];
  if (unanswered.length > 0) {
    const now = await backend.read(unanswered.map((m) => m.id), options.signal).catch(() => null);
    refused = now === null ? [] : unanswered.filter((m) => now.get(m.id)?.fingerprint === m.fingerprint);
    const changed = unanswered.filter((m) => !refused.includes(m));
    if (changed.length > 0) await context.store.liftTombstones(options.runId, changed.map((m) => tombstoneOf(m.id)), CHANGED_BEFORE_MARK);
    if (refused.length > 0) {
      await context.store.liftTombstones(options.runId, refused.map((m) => tombstoneOf(m.id)), MARK_REFUSED);
      await takeMarksOff(context, backend, refused.map((m) => ({ tombstoneId: tombstoneOf(m.id), id: m.id, fingerprint: m.fingerprint, why: MARK_REFUSED })));
    }
  }
  const answeredItems = ours.filter((m) => answered.has(m.id));
  await context.store.confirmMarks(options.runId, answeredItems.map((m) => ({ tombstoneId: tombstoneOf(m.id), fingerprint: answered.get(m.id)! })));
  // A tombstone lifted meanwhile (a `restore` between the tombstone write and the mark: it found
  // no mark to take off) is not confirmed: the mark that went on after it comes off here.
  const after = await context.store.activeTombstones(spec.name, answeredItems.map((m) => m.id));
  const stillOurs = (m: (typeof ours)[number]) => after.get(m.id)?.tombstoneId === tombstoneOf(m.id) && after.get(m.id)?.state === 'marked';
  const overtaken = answeredItems.filter((m) => !stillOurs(m));
  if (overtaken.length > 0) {
    const lifted: LiftedMark[] = [];
    for (const m of overtaken) {
      const t = (await context.store.findTombstones({ resource: spec.name, resourceId: m.id, states: ['lifted'] })).find((x) => x.tombstoneId === tombstoneOf(m.id));
      if (t) lifted.push({ tombstoneId: t.tombstoneId, id: m.id, fingerprint: answered.get(m.id)!, why: t.note });
    }
    await takeMarksOff(context, backend, lifted);
  }
  tally.marked(answeredItems.length - overtaken.length);
  options.fail('after-mark');
  return refused.map((m) => m.id);
}

/** The note on a fresh tombstone whose resource the mark did not answer (changed or gone since it was read). */
const CHANGED_BEFORE_MARK = 'changed before the mark';
/** The note on a fresh tombstone whose resource the mark refused (still as it was read). */
const MARK_REFUSED = 'the mark was refused';

/**
 * A mark that failed: the batch's fresh tombstones are lifted and whatever marks went on are taken
 * off, best effort, before the run fails with the backend's error. A mark that will not come off
 * is noted on its lifted tombstone (`restore --run` takes it off, as after any lift) and named in
 * the error; a lift that fails leaves the tombstones to the sweep, which judges them as any other
 * (docs/safety.md §14).
 */
async function withdrawMarks(
  context: RunContext,
  backend: Backend,
  items: readonly { id: string; fingerprint: string }[],
  tombstoneOf: (id: string) => number,
  name: string,
  runId: string,
  error: unknown,
): Promise<void> {
  const ids = items.map((m) => tombstoneOf(m.id));
  const why = 'the mark failed';
  // Lifted as if the mark stayed on (restore --run takes it off), then noted plain once it is off:
  // a run killed between the lift and the unmark leaves tombstones that say so.
  const lifted = await context.store.liftTombstones(runId, ids, backend.unmark ? markLeft(why) : why).then(
    () => true,
    (liftError: unknown) => {
      withNote(error, `the ${items.length} tombstone(s) of ${name} written before the mark were not lifted (${(liftError as Error).message}); the sweep judges them after their grace`);
      return false;
    },
  );
  if (!backend.unmark) return;
  await backend.unmark(items.map((m) => ({ id: m.id, fingerprint: m.fingerprint }))).then(
    async () => {
      if (lifted) for (const id of ids) await context.store.setTombstoneState(id, 'lifted', why, 'lifted').catch(() => undefined);
    },
    (unmarkError: unknown) => {
      const shown = items.slice(0, 5).map((m) => m.id).join(', ') + (items.length > 5 ? ', …' : '');
      withNote(error, `a visible mark may stay on ${items.length} resource(s) of ${name} (${shown}): ${(unmarkError as Error).message}${lifted ? `; reaper restore --run ${runId} takes it off` : ''}`);
    },
  );
}
