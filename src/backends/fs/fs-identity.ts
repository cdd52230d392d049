/** File identity and scope helpers shared by the scanner and the sweeper. */
import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';

/** Default quarantine directory, inside the scope root (the scan skips it). */
export const DEFAULT_QUARANTINE = '.reaper-quarantine';

export function quarantineDir(root: string, quarantine?: string): string {
  return quarantine ?? path.join(root, DEFAULT_QUARANTINE);
}

export function fileFingerprint(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** An id is a relative path without empty, `.` or `..` segments. */
export function safeRelative(id: string): boolean {
  if (id === '' || id.startsWith('/') || id.includes('\0')) return false;
  return id.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/**
 * Whether the directory holding `id` is, after resolving every symlink, exactly where the
 * id says it is under the root's real path (docs/safety.md §6). The scan never follows symlinks, so
 * an id whose parent resolves elsewhere — a directory swapped for a symlink after the mark —
 * names something outside the scope. False also when the parent is gone.
 */
export async function parentInScope(root: string, id: string): Promise<boolean> {
  return sweepScopeCheck(root)(id);
}

/**
 * `parentInScope` for one sweep batch, asynchronous: the root's real path is resolved once
 * for the batch, and the parent of each id at each call — never remembered, because the
 * check guards a rename and must see the directory as it is at that moment. Throws what
 * realpath throws other than ENOENT and ENOTDIR (EACCES, ELOOP, …).
 */
export function sweepScopeCheck(root: string): (id: string) => Promise<boolean> {
  let realRoot: Promise<string | null> | undefined;
  return async (id) => {
    const cut = id.lastIndexOf('/');
    if (cut < 0) return true;
    const parent = id.slice(0, cut);
    realRoot ??= realpathOrNull(root);
    const [real, resolved] = await Promise.all([realRoot, realpathOrNull(path.join(root, parent))]);
    return real !== null && resolved !== null && resolved === path.join(real, parent);
  };
}

async function realpathOrNull(p: string): Promise<string | null> {
  try {
    return await realpath(p);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw error;
  }
}

/**
 * `parentInScope` for the reads of one batch, synchronous: one realpath(3) of the root, and
 * one of each distinct parent directory, for the life of the returned function. Its answers
 * may be up to a batch old, so it only informs a decision: a check that guards a rename must
 * see the directory as it is at that moment (sweepScopeCheck). Meant to live for one backend
 * call and then be dropped. Throws what realpath throws other than ENOENT and ENOTDIR
 * (EACCES, ELOOP, …); the same error again for every id that needs it, not a new attempt.
 */
export function readScopeCheck(root: string): (id: string) => boolean {
  let realRoot: string | Error | null | undefined; // undefined: not resolved yet; null: gone
  const parents = new Map<string, boolean | Error>();
  const check = (parent: string): boolean => {
    if (realRoot === undefined) realRoot = settle(() => realpathSync.native(root));
    if (realRoot instanceof Error) throw realRoot;
    if (realRoot === null) return false;
    const resolved = settle(() => realpathSync.native(path.join(root, parent)));
    if (resolved instanceof Error) throw resolved;
    return resolved !== null && resolved === path.join(realRoot, parent);
  };
  return (id) => {
    const cut = id.lastIndexOf('/');
    if (cut < 0) return true;
    const parent = id.slice(0, cut);
    let known = parents.get(parent);
    if (known === undefined) {
      known = settleCheck(() => check(parent));
      parents.set(parent, known);
    }
    if (known instanceof Error) throw known;
    return known;
  };
}

/** A realpath's answer: the path, null when the path is gone (ENOENT, ENOTDIR), or the error. */
function settle(resolve: () => string): string | null | Error {
  try {
    return resolve();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? null : (error as Error);
  }
}

function settleCheck(check: () => boolean): boolean | Error {
  try {
    return check();
  } catch (error) {
    return error as Error;
  }
}
