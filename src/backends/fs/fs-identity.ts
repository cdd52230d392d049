/** File identity and scope helpers shared by the scanner and the sweeper. */
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
 * id says it is under the root's real path (SAFETY 6). The scan never follows symlinks, so
 * an id whose parent resolves elsewhere — a directory swapped for a symlink after the mark —
 * names something outside the scope. False also when the parent is gone.
 */
export async function parentInScope(root: string, id: string): Promise<boolean> {
  const parts = id.split('/');
  if (parts.length === 1) return true;
  try {
    const [realRoot, realParent] = await Promise.all([realpath(root), realpath(path.join(root, ...parts.slice(0, -1)))]);
    return realParent === path.join(realRoot, ...parts.slice(0, -1));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}
