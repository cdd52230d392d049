/**
 * The process groups of the handler calls in flight (the `command` kind, each call in a group
 * of its own). A process ended at once by a second signal kills them on its way out
 * (src/run/hard-stop.ts), so no handler goes on with a delete after reaper has gone
 * (docs/safety.md §19).
 */
const groups = new Set<number>();
let stopped = false;

/** Track the process group `pgid` while its call is in flight; returns the untracking. Once stopped, it is killed at once. */
export function trackProcessGroup(pgid: number): () => void {
  if (stopped) kill(pgid);
  groups.add(pgid);
  return () => {
    groups.delete(pgid);
  };
}

/** SIGKILL every tracked group, at once and synchronously (no wait: the process is about to exit), and any started later. */
export function killProcessGroups(): void {
  stopped = true;
  for (const pgid of groups) kill(pgid);
  groups.clear();
}

function kill(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}
