/**
 * Crash recovery, before a type is planned: journal entries left at `intent` by a run that
 * died between the write-ahead and the outcome are resolved by reading, never by an
 * unconditional retry (docs/safety.md §11, §12).
 */
import type { Backend, DeleteResult } from '../../backends/types.js';
import type { ResourceSpec } from '../../manifest/types.js';
import type { JournalEntry } from '../../state/types.js';
import type { RunContext } from '../context.js';
import type { ReapTally } from './tally.js';

/**
 * First the backend settles what the run may have left half-done (files: a copy in
 * quarantine, unlinked if it is the journaled file, else put back), then each resource is
 * read to learn what happened.
 */
export async function recoverIntents(context: RunContext, spec: ResourceSpec, backend: Backend, runId: string, tally: ReapTally): Promise<void> {
  const pending = await context.store.pendingIntents(spec.name);
  if (pending.length === 0) return;
  const settled = new Map<number, DeleteResult>();
  if (backend.recoverDelete) {
    for (const entry of pending) {
      const result = await backend.recoverDelete({ id: entry.resourceId, fingerprint: entry.fingerprint });
      if (result) settled.set(entry.journalId, result);
    }
  }
  const current = await backend.read(pending.map((p) => p.resourceId));
  const resolved = (entry: JournalEntry, outcome: 'deleted' | 'changed', error: string, restoreHandle: string | null = null) => {
    tally.settled(outcome, entry.bytes);
    return { journalId: entry.journalId, outcome, error, restoreHandle };
  };
  const outcomes = pending.map((entry) => {
    const left = settled.get(entry.journalId);
    if (left?.outcome === 'deleted') return resolved(entry, 'deleted', 'recovered after interruption: finished the delete the run had begun', left.restoreHandle ?? null);
    if (left?.outcome === 'changed') {
      return resolved(entry, 'changed', left.error ?? 'recovered after interruption: what the run had moved aside was not the journaled resource; put back', left.restoreHandle ?? null);
    }
    const now = current.get(entry.resourceId);
    if (!now) return resolved(entry, 'deleted', 'recovered after interruption: the resource is gone');
    if (now.fingerprint !== entry.fingerprint) return resolved(entry, 'changed', 'recovered after interruption: the resource changed');
    // Not deleted: the tombstone goes back to marked and is re-verified by this run's sweep.
    return { journalId: entry.journalId, outcome: 'failed' as const, error: 'interrupted before the delete; will be re-verified' };
  });
  await context.store.finishDeletes(runId, outcomes);
}
