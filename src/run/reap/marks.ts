/**
 * Visible marks: a mark batch (`applyMarks`: tombstones, then the marks, then the fingerprints
 * they answered), and taking marks off the resources whose tombstones were lifted — by the plan's lifts,
 * a saved plan's sweep judged again, the last look before a delete, a delete that found the
 * resource changed, or crash recovery. The lift stands either way (the ledger, not the mark,
 * keeps a resource from the sweep: docs/safety.md §1); a mark that will not come off is noted
 * on its tombstone (`markLeft`), and `restore` selecting it tries again (§14).
 */
import type { Backend } from '../../backends/types.js';
import { classify } from '../../engine/classify.js';
import type { PlanItem } from '../../engine/reap-plan.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { printable } from '../../report/table.js';
import { judgeRecords } from '../classify-stream.js';
import type { RunContext } from '../context.js';
import type { FailpointName } from '../failpoints.js';
import { markLeft } from '../restore.js';
import { withNote } from './sweep.js';
import type { ReapTally } from './tally.js';

export interface LiftedMark {
  tombstoneId: number;
  /** The resource's id. */
  id: string;
  /** The fingerprint on its tombstone ('' where the caller has none: unmark then goes by id alone). */
  fingerprint: string;
  /** The note the lift left on the tombstone, which `markLeft` extends. */
  why: string | null;
}

/** Best effort, never throws: the backend's unmark of `items` (none without a visible mark). */
export async function takeMarksOff(context: RunContext, backend: Backend, items: readonly LiftedMark[]): Promise<void> {
  if (items.length === 0 || !backend.unmark) return;
  await backend.unmark(items.map((i) => ({ id: i.id, fingerprint: i.fingerprint }))).catch(async () => {
    // Only a tombstone still lifted: one that a later step moved on keeps its state.
    for (const item of items) await context.store.setTombstoneState(item.tombstoneId, 'lifted', markLeft(item.why), 'lifted').catch(() => undefined);
  });
}

/** The first five ids of a list, escaped for a terminal, and `…` for the rest. */
export const shownIds = (ids: readonly string[]): string => ids.slice(0, 5).map(printable).join(', ') + (ids.length > 5 ? ', …' : '');

/**
 * Apply one batch of marks (docs/safety.md §14); returns the ids whose mark was refused (the
 * run's error), whose fresh tombstones were lifted.
 */
export async function applyMarks(
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
  // Should the store fail from here on, the tombstones stay unconfirmed: the sweep lifts them,
  // as it would after a crash here, and takes off their marks (docs/safety.md §14).
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
      withNote(error, `a visible mark may stay on ${items.length} resource(s) of ${name} (${shownIds(items.map((m) => m.id))}): ${(unmarkError as Error).message}${lifted ? `; reaper restore --run ${runId} takes it off` : ''}`);
    },
  );
}
