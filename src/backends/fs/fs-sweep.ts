/**
 * Conditional delete for files (docs/safety.md §3): a file is renamed out of the way into a
 * quarantine directory on the same device, its (dev, inode, size, mtime) checked
 * there against the fingerprint captured at mark time, and only then unlinked (or
 * kept, when the resource has `retain`). A file changed or recreated under the same
 * name survives: on a mismatch it is linked back without clobbering.
 */
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { link, mkdir, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { BackendError, SafetyError } from '../../errors.js';
import type { DeleteItem, DeleteResult } from '../types.js';
import { mapLimit } from '../../util/concurrency.js';
import { fileFingerprint, parentInScope, quarantineDir, safeRelative, sweepScopeCheck } from './fs-identity.js';

export interface SweepOptions {
  quarantine?: string;
  /** Keep quarantined files (for `retain`) instead of unlinking them. */
  keep: boolean;
  /** Called after each rename into quarantine, before the identity check there (the crash tests' `after-rename`). */
  afterRename?: () => void;
}

/**
 * Files swept at once within a batch. Each file is five metadata calls: the realpath, rename
 * and unlink go through libuv's thread pool, and one at a time the pool idles between them;
 * this many in flight keep its threads and the disk busy. The two lstats are synchronous: a
 * few microseconds each, less than a promise with BigInt stats costs to set up.
 * Distinct items never share a path or a quarantine name, so they do not interfere.
 */
const SWEEP_CONCURRENCY = 16;

export async function sweepFiles(root: string, items: readonly DeleteItem[], options: SweepOptions): Promise<DeleteResult[]> {
  const qdir = quarantineDir(root, options.quarantine);
  await makeQuarantine(qdir);
  // The root's real path once for the batch; each parent at its own rename (see sweepOne).
  const inScope = sweepScopeCheck(root);
  const results = await mapLimit(items, SWEEP_CONCURRENCY, (item) => sweepOne(root, qdir, item, options, inScope));
  await removeEmptiedDirectories(root, qdir, results.filter((r) => r.outcome === 'deleted').map((r) => r.id), inScope);
  return results;
}

/**
 * Make the quarantine directory (and its parents) unless it is there. On a full filesystem a
 * new directory needs a block that an unprivileged user cannot get, while renaming into an
 * existing one needs none: the error says so, with the real cause (a recursive mkdir of Node
 * reports a full disk as ENOENT; a plain mkdir of the first missing step tells the truth).
 */
async function makeQuarantine(qdir: string): Promise<void> {
  try {
    await mkdir(qdir, { recursive: true, mode: 0o700 });
  } catch (error) {
    const code = await mkdir(await firstMissing(qdir), { mode: 0o700 }).then(
      () => null,
      (again: NodeJS.ErrnoException) => (again.code === 'ENOENT' ? (error as NodeJS.ErrnoException).code : again.code),
    );
    if (code === null) return; // made now: the first attempt met a passing condition
    if (code === 'EEXIST') throw error; // something else is in the way (a file): as it was
    const advice =
      code === 'ENOSPC' || code === 'EDQUOT'
        ? `: the filesystem is full; create it ahead (mkdir -p -m 700 ${qdir}), which sweeps then reuse without needing new space, or free a little`
        : '';
    throw new BackendError(`cannot create the quarantine directory ${qdir}: ${code ?? (error as Error).message}${advice}`, { cause: error });
  }
}

/** The outermost directory of `dir`'s path that does not exist yet (`dir` itself when its parent does). */
async function firstMissing(dir: string): Promise<string> {
  let step = dir;
  for (let parent = path.dirname(step); parent !== step; step = parent, parent = path.dirname(step)) {
    if (await stat(parent).then(() => true, () => false)) break;
  }
  return step;
}

/**
 * Remove the directories a batch emptied: the parents of the swept files and their parents,
 * deepest first, each with rmdir(2) — which refuses a directory that is not empty, so a file a
 * writer put there meanwhile keeps it — and only while it still resolves inside the scope (its
 * parent is checked as a rename's is). Never the root or the quarantine. A directory that stays
 * keeps its parents. The cost: one realpath and one rmdir per distinct parent of the batch.
 * (A writer between its mkdir and its create may find the directory gone and must make it again.)
 */
async function removeEmptiedDirectories(root: string, qdir: string, swept: readonly string[], inScope: (id: string) => Promise<boolean>): Promise<void> {
  const dirs = new Set<string>();
  for (const id of swept) {
    const parts = id.split('/');
    for (let n = parts.length - 1; n > 0; n--) dirs.add(parts.slice(0, n).join('/'));
  }
  const depth = (dir: string) => dir.split('/').length;
  const kept = new Set<string>();
  for (const dir of [...dirs].sort((a, b) => depth(b) - depth(a))) {
    if (kept.has(dir)) continue;
    const absolute = path.join(root, ...dir.split('/'));
    const removed = absolute !== qdir && (await inScope(dir).catch(() => false)) && (await rmdir(absolute).then(() => true, () => false));
    if (!removed) for (let cut = dir.lastIndexOf('/'); cut > 0; cut = dir.lastIndexOf('/', cut - 1)) kept.add(dir.slice(0, cut));
  }
}

async function sweepOne(root: string, qdir: string, item: DeleteItem, options: SweepOptions, inScope: (id: string) => Promise<boolean>): Promise<DeleteResult> {
  if (!safeRelative(item.id)) return { id: item.id, outcome: 'failed', error: 'id is not a relative path inside the scope' };
  const source = path.join(root, ...item.id.split('/'));
  // The identity check before the rename is not redundant with the one after it: it keeps a
  // changed resource from being moved at all. Without it a file rewritten since the mark would
  // vanish from its path for a moment (and stay in quarantine if its name is taken meanwhile),
  // and an id that now names a directory would have the whole directory renamed into
  // quarantine, where linking it back is impossible. It costs one lstat.
  try {
    const before = lstatSync(source, { bigint: true });
    // A parent swapped for a symlink would make the rename act outside the scope, and the
    // identity check cannot see that: a directory moved out of the scope keeps its files'
    // inodes. So the parent is resolved here, for this rename, not once for the batch.
    if (!(await inScope(item.id))) return { id: item.id, outcome: 'changed', error: 'its directory no longer resolves inside the scope' };
    if (!before.isFile() || fileFingerprint(before) !== item.fingerprint) return { id: item.id, outcome: 'changed' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { id: item.id, outcome: 'absent' };
    return { id: item.id, outcome: 'failed', error: (error as Error).message };
  }
  const target = path.join(qdir, quarantineName(item, Date.now()));
  try {
    await rename(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { id: item.id, outcome: 'absent' };
    if (code === 'EXDEV') return { id: item.id, outcome: 'failed', error: 'the quarantine directory is on another device; put it on the same filesystem as the scope' };
    return { id: item.id, outcome: 'failed', error: (error as Error).message };
  }
  options.afterRename?.();
  return settleQuarantined(root, item, target, options.keep);
}

/**
 * The second half of a conditional delete, once the file is in quarantine at `copy`: the copy's
 * identity is checked against the fingerprint; the journaled file is unlinked (or kept, for
 * `retain`), anything else goes back to its path. A sweep calls it right after its rename; the
 * recovery of a run killed in between calls it on what that run left (recoverQuarantined).
 */
async function settleQuarantined(root: string, item: DeleteItem, copy: string, keep: boolean): Promise<DeleteResult> {
  const moved = lstatSync(copy, { bigint: true });
  if (!moved.isFile() || fileFingerprint(moved) !== item.fingerprint) return putBack(root, item.id, copy);
  if (keep) return { id: item.id, outcome: 'deleted', restoreHandle: copy };
  await unlink(copy);
  return { id: item.id, outcome: 'deleted' };
}

/**
 * Put a quarantined file that is not the fingerprinted one (replaced between the check and the
 * rename) back to its id without clobbering a newer file. A put-back cut short after its link
 * (its path holds the very same inode) is finished; a path taken by another file wins, and the
 * copy stays in quarantine, reported.
 */
async function putBack(root: string, id: string, copy: string): Promise<DeleteResult> {
  try {
    await restoreFile(root, id, copy);
    return { id, outcome: 'changed' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST' && sameInode(copy, path.join(root, ...id.split('/')))) {
      await unlink(copy);
      return { id, outcome: 'changed' };
    }
    return { id, outcome: 'changed', restoreHandle: copy, error: `a changed file was left in quarantine at ${copy}` };
  }
}

function sameInode(a: string, b: string): boolean {
  const [x, y] = [lstatSync(a, { bigint: true, throwIfNoEntry: false }), lstatSync(b, { bigint: true, throwIfNoEntry: false })];
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

/**
 * Settle what a run killed between its rename into quarantine and the unlink (or put-back) left
 * of `item`: its copies are found by name (the hash of id and fingerprint), and each is settled
 * as the sweep would have (settleQuarantined). Null when the quarantine holds no copy of it.
 */
export async function recoverQuarantined(root: string, quarantine: string | undefined, item: DeleteItem, keep: boolean): Promise<DeleteResult | null> {
  let result: DeleteResult | null = null;
  for (const copy of await findQuarantined(root, quarantine, item)) {
    const settled = await settleQuarantined(root, item, copy, keep);
    // The journaled file was there: the delete finished, whatever else a copy held.
    if (result?.outcome !== 'deleted') result = settled;
  }
  return result;
}

/** Bring a quarantined file back to its id, refusing to overwrite anything there now. */
export async function restoreFile(root: string, id: string, handle: string): Promise<void> {
  if (!safeRelative(id)) throw new SafetyError(`refusing path outside the scope: ${JSON.stringify(id)}`);
  const destination = path.join(root, ...id.split('/'));
  await mkdir(path.dirname(destination), { recursive: true });
  if (!(await parentInScope(root, id))) throw new SafetyError(`refusing to restore through a symlink out of the scope: ${JSON.stringify(id)}`);
  await link(handle, destination);
  await unlink(handle);
}

/**
 * Quarantined files are named `<ms>-<hash of id and fingerprint>`: the time lets `retain`
 * expire them, the hash lets a run that died after the rename find the copy again.
 */
export function quarantineName(item: Pick<DeleteItem, 'id' | 'fingerprint'>, nowMs: number): string {
  return `${nowMs}-${identityHash(item)}`;
}

const identityHash = (item: Pick<DeleteItem, 'id' | 'fingerprint'>) => createHash('sha256').update(item.id).update('\0').update(item.fingerprint).digest('hex').slice(0, 32);
const QUARANTINED = /^(\d+)-([0-9a-f]{32})$/;

/** The quarantined copies of a swept file (one, unless it was swept more than once). */
async function findQuarantined(root: string, quarantine: string | undefined, item: Pick<DeleteItem, 'id' | 'fingerprint'>): Promise<string[]> {
  const qdir = quarantineDir(root, quarantine);
  const hash = identityHash(item);
  const names = await readdir(qdir).catch(() => [] as string[]);
  return names.filter((n) => QUARANTINED.exec(n)?.[2] === hash).map((n) => path.join(qdir, n));
}

/**
 * Whether the quarantined copy a restore handle names is still there, and until when `retain`
 * keeps it (from the time in its name; null for a name not of that form). Reads only.
 */
export async function quarantinedCopy(handle: string, retainMs: number | undefined): Promise<{ present: boolean; untilMs: number | null }> {
  const match = QUARANTINED.exec(path.basename(handle));
  const present = await stat(handle).then(
    (s) => s.isFile(),
    () => false,
  );
  return { present, untilMs: match && retainMs !== undefined ? Number(match[1]) + retainMs : null };
}

/** Unlink quarantined files kept longer than `retainMs`; returns how many went. */
export async function purgeQuarantine(root: string, quarantine: string | undefined, retainMs: number, nowMs: number): Promise<number> {
  const qdir = quarantineDir(root, quarantine);
  let purged = 0;
  for (const name of await readdir(qdir).catch(() => [] as string[])) {
    const match = QUARANTINED.exec(name);
    if (!match || Number(match[1]) + retainMs > nowMs) continue;
    await unlink(path.join(qdir, name)).catch(() => undefined);
    purged++;
  }
  return purged;
}
