/**
 * Applying one batch of sweep items: the ledger checked (still marked, still due), a saved
 * plan's items read and judged again, the batch's write-ahead record (docs/safety.md §10), the
 * last look at the owners, the conditional delete, and the batch's outcomes recorded — a failed delete
 * resolved by reading, never by an unconditional retry (§12).
 */
import type { Backend, DeleteItem, DeleteResult } from '../../backends/types.js';
import type { PlanItem, SweepEvidence } from '../../engine/reap-plan.js';
import { BackendError, InterruptedError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { CHANGED_NOTE } from '../../state/core.js';
import type { SweepBatch, Tombstone } from '../../state/types.js';
import type { RunContext } from '../context.js';
import { hardStopping } from '../hard-stop.js';
import type { FailpointName } from '../failpoints.js';
import { evidenceOf, verifyTombstones } from './judge.js';
import { takeMarksOff, type LiftedMark } from './marks.js';
import type { ReapTally } from './tally.js';

export type SweepItem = Extract<PlanItem, { op: 'sweep' }>;

export interface SweepOptions {
  runId: string;
  /** The items come from a saved plan (older than this moment): read and judge each again. */
  fromFile: boolean;
  fail: (name: FailpointName) => void;
  signal?: AbortSignal;
}

/** Apply a batch of sweeps; returns the errors of the deletes that failed (one per item). */
export async function applySweeps(context: RunContext, spec: ResourceSpec, backend: Backend, items: SweepItem[], tally: ReapTally, options: SweepOptions): Promise<string[]> {
  const { runId } = options;
  // Sweeps planned by this very run were judged moments ago against the scan's read; the
  // write-ahead moves only tombstones still marked, the last look re-judges the owners and
  // the delete is conditional on the fingerprint. A saved plan is read and judged again.
  const doomed = options.fromFile
    ? (await reverifySweeps(context, spec, backend, items, tally, runId, options.signal)).map(({ tombstone: t, evidence }) => ({
        tombstoneId: t.tombstoneId,
        ownerValue: t.ownerValue,
        evidence,
        markedAt: t.markedAt,
      }))
    : // (without evidence, from 0: any lease activity ever counts as a renewal, which errs toward keeping)
      items.map((i) => ({ tombstoneId: i.tombstoneId, ownerValue: i.ownerValue ?? null, evidence: i.evidence ?? null, markedAt: i.evidence?.markedAt ?? 0 }));
  if (doomed.length === 0) return [];

  // Write-ahead: the batch record, durable before any delete request leaves the process
  // (docs/safety.md §10); only tombstones still marked move to `deleting`.
  const batch = await context.store.beginBatch(
    runId,
    spec.name,
    doomed.map((v) => v.tombstoneId),
    batchEvidence(doomed.map((v) => v.evidence)),
  );
  options.fail('after-batch');
  options.fail('after-journal');
  if (batch === null) return [];
  const proceed = await lastLook(context, backend, batch, Math.min(...doomed.map((v) => v.markedAt)), tally, runId, options.signal);
  if (proceed.length === 0) return [];
  const ownerValues = new Map(doomed.map((v) => [v.tombstoneId, v.ownerValue]));
  const deleteItems: DeleteItem[] = proceed.map((t) => ({ id: t.resourceId, fingerprint: t.fingerprint, ownerValue: ownerValues.get(t.tombstoneId) ?? t.ownerValue }));
  const results = await backend.delete(deleteItems);
  options.fail('after-delete');
  return recordResults(context, backend, batch, proceed, results, tally, runId, options.signal);
}

/**
 * What a batch's resources share, recorded once with the batch: how many, their statuses
 * as judged, and the span of their marks (each resource's own reason, owner, fingerprint
 * and mark are on its tombstone).
 */
export function batchEvidence(items: readonly (SweepEvidence | null)[]): SweepBatchEvidence {
  const statuses: Record<string, number> = {};
  let markedAt = Number.POSITIVE_INFINITY;
  let lastMarkedAt = 0;
  for (const item of items) {
    const status = item?.status ?? 'unjudged';
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (item) {
      markedAt = Math.min(markedAt, item.markedAt);
      lastMarkedAt = Math.max(lastMarkedAt, item.markedAt);
    }
  }
  const kinds = Object.keys(statuses);
  return {
    items: items.length,
    ...(kinds.length === 1 && kinds[0] !== 'unjudged' ? { status: kinds[0] } : {}),
    statuses,
    markedAt: Number.isFinite(markedAt) ? markedAt : null,
    lastMarkedAt: Number.isFinite(markedAt) ? lastMarkedAt : null,
  };
}

export interface SweepBatchEvidence {
  items: number;
  /** The status every resource of the batch was judged to have, when they share one. */
  status?: string;
  statuses: Record<string, number>;
  markedAt: number | null;
  lastMarkedAt: number | null;
}

/** The distinct errors of failed deletes, in the order first met, each counted: `A ×3; B ×1` (the first three, then how many more). */
export function describeFailures(errors: readonly string[], shown = 3): string {
  const counts = new Map<string, number>();
  for (const error of errors) counts.set(error, (counts.get(error) ?? 0) + 1);
  const first = [...counts].slice(0, shown).map(([error, n]) => `${error} ×${n}`);
  const more = counts.size - first.length;
  return more > 0 ? `${first.join('; ')}; and ${more} other error(s)` : first.join('; ');
}

/**
 * Sweeps planned by this very run were judged moments ago against the scan's read; the
 * conditional delete (fingerprint) and the last look (owners) cover what can change in
 * between. Here only the ledger is checked: each tombstone still marked, still due by the
 * store clock, unchanged since it was planned.
 */
async function stillDue(context: RunContext, spec: ResourceSpec, items: readonly SweepItem[]): Promise<{ tombstone: Tombstone; evidence: SweepEvidence }[]> {
  const active = await context.store.activeTombstones(
    spec.name,
    items.map((i) => i.id),
  );
  const nowMs = await context.store.now();
  const out: { tombstone: Tombstone; evidence: SweepEvidence }[] = [];
  for (const item of items) {
    const t = active.get(item.id);
    if (!t || t.tombstoneId !== item.tombstoneId || t.state !== 'marked' || t.markedAt > nowMs - spec.graceMs || t.fingerprint !== item.fingerprint) continue;
    out.push({ tombstone: t, evidence: item.evidence ?? { markedAt: t.markedAt } });
  }
  return out;
}

/** A saved plan may be older than this moment: read and judge every sweep again (docs/safety.md §1–3, §9). */
async function reverifySweeps(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: readonly SweepItem[],
  tally: ReapTally,
  runId: string,
  signal?: AbortSignal,
): Promise<{ tombstone: Tombstone; evidence: SweepEvidence }[]> {
  const planned = await stillDue(context, spec, items);
  if (planned.length === 0) return [];
  const verified = await verifyTombstones(
    context,
    spec,
    backend,
    planned.map((p) => p.tombstone),
    signal,
  );
  const lifted: LiftedMark[] = [];
  for (const v of verified) {
    if (v.decision.action !== 'lift') continue;
    const n = await context.store.liftTombstones(runId, [v.tombstone.tombstoneId], v.decision.why);
    tally.lifted(v.decision.why, n);
    if (n > 0) lifted.push({ tombstoneId: v.tombstone.tombstoneId, id: v.tombstone.resourceId, fingerprint: v.tombstone.fingerprint, why: v.decision.why });
  }
  await takeMarksOff(context, backend, lifted);
  tally.kept(verified.filter((v) => v.decision.action === 'keep').length);
  return verified.filter((v) => v.decision.action === 'delete').map((v) => ({ tombstone: v.tombstone, evidence: evidenceOf(v.finding, v.tombstone) }));
}

/**
 * The last look before a delete request leaves (docs/safety.md §2): owners are judged once more,
 * after the batch's write-ahead, by every liveness source and by lease activity since the mark.
 * An owner that came back (or cannot be judged now) saves its resources: their outcomes are
 * `changed` and the tombstones lifted. What remains is the time the request takes.
 */
async function lastLook(context: RunContext, backend: Backend, batch: SweepBatch, sinceMs: number, tally: ReapTally, runId: string, signal?: AbortSignal): Promise<Tombstone[]> {
  const entries = batch.tombstones;
  // Owner keys only: refs were judged through the graph a moment ago, and an expired
  // resource's owner is live by definition.
  const keyed = (t: Tombstone) => t.owner !== null && t.reason !== 'unreachable' && t.reason !== 'expired';
  const owners = [...new Set(entries.filter(keyed).map((t) => t.owner!))];
  if (owners.length === 0) return [...entries];
  const [judged, renewed] = await Promise.all([context.liveness.judge(owners, signal), context.store.keysActiveSince(owners, sinceMs)]);
  const saved = (t: Tombstone) => keyed(t) && (renewed.has(t.owner!) || judged.answers.get(t.owner!) !== 'dead');
  const spared = entries.filter(saved);
  if (spared.length > 0) {
    const why = 'the owner came back (or could not be judged) just before the delete';
    await context.store.finishBatch(
      runId,
      batch.batchId,
      spared.map((t) => ({ tombstoneId: t.tombstoneId, outcome: 'changed' as const, error: why })),
    );
    tally.lifted('owner-live', spared.length);
    await takeMarksOff(context, backend, spared.map((t) => ({ tombstoneId: t.tombstoneId, id: t.resourceId, fingerprint: t.fingerprint, why })));
  }
  return entries.filter((t) => !saved(t));
}

/**
 * Record the batch's outcomes; a failed (ambiguous) delete is resolved by reading, never by an
 * unconditional retry (docs/safety.md §12). Returns the error of each delete that stays failed.
 */
async function recordResults(
  context: RunContext,
  backend: Backend,
  batch: SweepBatch,
  entries: readonly Tombstone[],
  results: readonly DeleteResult[],
  tally: ReapTally,
  runId: string,
  signal?: AbortSignal,
): Promise<string[]> {
  // Stopped at once meanwhile: its answers may be those of calls killed mid-way; the batch stays
  // pending, and the next run reads its resources back (recoverIntents) instead.
  if (hardStopping()) throw new InterruptedError('stopped at once by a second signal; the batch in flight is left for the next run to read back');
  const failures: string[] = [];
  const failed = results.filter((r) => r.outcome === 'failed');
  const present = failed.length ? await backend.read(failed.map((r) => r.id), signal).catch(() => null) : new Map();
  const outcomes = entries.map((entry, i) => {
    const result = results[i]!;
    let outcome = result.outcome;
    let error = result.error ?? null;
    if (outcome === 'failed' && present !== null) {
      const now = present.get(entry.resourceId);
      if (!now) {
        outcome = 'deleted';
        error = `delete reported "${result.error}" but the resource is gone; recorded as deleted after reading`;
      } else if (now.fingerprint !== entry.fingerprint) {
        outcome = 'changed';
      }
    }
    if (outcome === 'failed') failures.push(error ?? 'no error given');
    return { tombstoneId: entry.tombstoneId, outcome, error, restoreHandle: result.restoreHandle ?? null };
  });
  // Counted once recorded: outcomes the store refused are the next run's to read back and count (recoverIntents).
  await context.store.finishBatch(runId, batch.batchId, outcomes).catch((error: unknown) => {
    throw withNote(error, `${outcomes.length} delete(s) of ${batch.resource} were sent and their outcomes are not recorded: the next run reads them back and reports them`);
  });
  for (let i = 0; i < outcomes.length; i++) tally.settled(outcomes[i]!.outcome, entries[i]!.bytes);
  // A resource changed since its mark stays, its tombstone lifted: its mark comes off too.
  const changed = outcomes.flatMap((o, i) => (o.outcome === 'changed' ? [{ tombstoneId: o.tombstoneId, id: entries[i]!.resourceId, fingerprint: entries[i]!.fingerprint, why: o.error ?? CHANGED_NOTE }] : []));
  await takeMarksOff(context, backend, changed);
  return failures;
}

/** The error, its message followed by what it left behind (keeping its class, hence its exit code). */
export function withNote(error: unknown, note: string): Error {
  if (!(error instanceof Error)) return new BackendError(`${String(error)}; ${note}`);
  error.message = `${error.message}; ${note}`;
  return error;
}
