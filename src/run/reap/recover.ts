/**
 * Crash recovery, before a type is planned: sweep batches left `pending` by a run that died
 * between the batch's write-ahead and its outcome (and the `intent` entries of older
 * reapers, turned into pending batches by the store's migration 4) are resolved by reading,
 * never by an unconditional retry (docs/safety.md §11, §12).
 */
import type { Backend, DeleteResult } from '../../backends/types.js';
import type { ResourceSpec } from '../../manifest/types.js';
import type { BatchResult, SweepBatch, Tombstone } from '../../state/types.js';
import type { RunContext } from '../context.js';
import { takeMarksOff } from './marks.js';
import type { ReapTally } from './tally.js';

/**
 * For each pending batch, first the backend settles what the run may have left half-done
 * (files: a copy in quarantine, unlinked if it is the batch's file, else put back), then
 * each resource is read to learn what happened. A batch with nothing left deleting is
 * closed as it is.
 */
export async function recoverIntents(context: RunContext, spec: ResourceSpec, backend: Backend, runId: string, tally: ReapTally): Promise<void> {
  for (const batch of await context.store.pendingBatches(spec.name)) {
    const results = await resolveBatch(backend, batch, tally);
    await context.store.finishBatch(runId, batch.batchId, results);
    // A resource that changed stays, its tombstone lifted: its mark comes off too.
    const byId = new Map(batch.tombstones.map((t) => [t.tombstoneId, t]));
    const changed = results.flatMap((r) => {
      const t = byId.get(r.tombstoneId);
      return r.outcome === 'changed' && t ? [{ tombstoneId: t.tombstoneId, id: t.resourceId, fingerprint: t.fingerprint, why: r.error ?? null }] : [];
    });
    await takeMarksOff(context, backend, changed);
  }
}

async function resolveBatch(backend: Backend, batch: SweepBatch, tally: ReapTally): Promise<BatchResult[]> {
  const pending = batch.tombstones;
  if (pending.length === 0) return [];
  const settled = new Map<number, DeleteResult>();
  if (backend.recoverDelete) {
    for (const t of pending) {
      const result = await backend.recoverDelete({ id: t.resourceId, fingerprint: t.fingerprint });
      if (result) settled.set(t.tombstoneId, result);
    }
  }
  const current = await backend.read(pending.map((p) => p.resourceId));
  const resolved = (t: Tombstone, outcome: 'deleted' | 'changed', error: string, restoreHandle: string | null = null): BatchResult => {
    tally.settled(outcome, t.bytes);
    return { tombstoneId: t.tombstoneId, outcome, error, restoreHandle };
  };
  return pending.map((t) => {
    const left = settled.get(t.tombstoneId);
    if (left?.outcome === 'deleted') return resolved(t, 'deleted', 'recovered after interruption: finished the delete the run had begun', left.restoreHandle ?? null);
    if (left?.outcome === 'changed') {
      return resolved(t, 'changed', left.error ?? 'recovered after interruption: what the run had moved aside was not the recorded resource; put back', left.restoreHandle ?? null);
    }
    const now = current.get(t.resourceId);
    if (!now) return resolved(t, 'deleted', 'recovered after interruption: the resource is gone');
    if (now.fingerprint !== t.fingerprint) return resolved(t, 'changed', 'recovered after interruption: the resource changed');
    // Not deleted: the tombstone goes back to marked and is re-verified by this run's sweep.
    return { tombstoneId: t.tombstoneId, outcome: 'failed' as const, error: 'interrupted before the delete; will be re-verified' };
  });
}
