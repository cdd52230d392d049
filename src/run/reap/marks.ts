/**
 * Taking visible marks off the resources whose tombstones were lifted — by the plan's lifts,
 * a saved plan's sweep judged again, the last look before a delete, a delete that found the
 * resource changed, or crash recovery. The lift stands either way (the ledger, not the mark,
 * keeps a resource from the sweep: docs/safety.md §1); a mark that will not come off is noted
 * on its tombstone (`markLeft`), and `restore` selecting it tries again (§14).
 */
import type { Backend } from '../../backends/types.js';
import type { RunContext } from '../context.js';
import { markLeft } from '../restore.js';

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
