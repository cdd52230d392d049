/**
 * What a process ended at once by a second SIGINT/SIGTERM/SIGHUP still does on its way out: the
 * handler calls in flight are killed with their process groups, first, so none goes on acting
 * after reaper has gone (src/util/process-groups.ts); each
 * open recorded run registers how to record itself `interrupted`; the CLI runs these, bounded
 * by a short deadline, before it exits 130 (docs/safety.md §19: the exit stays bounded).
 * A run that is not recorded here is still ended later by its lapsed heartbeat (`abandoned`).
 * The deadline is a timer: a SQLite store's write is synchronous, and one that waits on
 * another process's write lock holds the thread (and the exit) until that lock is free or its
 * busy timeout ends.
 */
import { killProcessGroups } from '../util/process-groups.js';

const hooks = new Set<() => Promise<unknown>>();
let stopping = false;

/**
 * Whether the process is being stopped at once: what a run was doing may have been cut short
 * (handler calls killed), so it records no outcome from here on — a batch in flight stays
 * pending for the next run to read back (docs/safety.md §11).
 */
export function hardStopping(): boolean {
  return stopping;
}

/** Register what to do if the process is stopped at once; returns the unregistration. */
export function onHardStop(hook: () => Promise<unknown>): () => void {
  hooks.add(hook);
  return () => {
    hooks.delete(hook);
  };
}

/** Run every registered hook at once, best effort; resolves when all settled or after `deadlineMs`, whichever is first. */
export async function runHardStopHooks(deadlineMs: number): Promise<void> {
  stopping = true;
  killProcessGroups();
  if (hooks.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, deadlineMs);
  });
  const all = Promise.allSettled([...hooks].map((hook) => Promise.resolve().then(hook)));
  try {
    await Promise.race([all, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
