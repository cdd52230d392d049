/**
 * Named failpoints for crash tests: with REAPER_FAILPOINT=NAME (or NAME:N for the N-th
 * hit) the process kills itself with SIGKILL at that point, exactly as a crash would;
 * with NAME:N:stop it stops itself (SIGSTOP) there instead, frozen with whatever it holds
 * (its lock, no store transaction open) until a SIGCONT.
 * Points: after-plan, before-mark (a mark batch's tombstones written with the fingerprints
 * read, no visible mark sent), before-confirm (the visible marks on, the fingerprints they
 * answered not yet recorded on the tombstones), after-mark (a mark batch done), after-batch
 * (a sweep batch's write-ahead is durable, its delete not sent; after-journal is its older
 * name and still works), after-delete (the delete done, its outcome not recorded),
 * after-finish, and inside a backend's delete after-rename (files: a file renamed into
 * quarantine, not yet checked and unlinked).
 */
import type { BackendFailpoint } from '../backends/types.js';

export type FailpointName = 'after-plan' | 'before-mark' | 'before-confirm' | 'after-mark' | 'after-batch' | 'after-journal' | 'after-delete' | 'after-finish' | BackendFailpoint;

export function failpoints(spec: string | undefined): (name: FailpointName) => void {
  if (!spec) return () => {};
  const [target, nth, action] = spec.split(':');
  const wanted = nth === undefined || nth === '' ? 1 : Number(nth);
  const signal = action === 'stop' ? 'SIGSTOP' : 'SIGKILL';
  let hits = 0;
  return (name) => {
    if (name !== target) return;
    hits++;
    if (hits === wanted) process.kill(process.pid, signal);
  };
}
