/**
 * The root guard of an `fs` scope (docs/safety.md §6): a filesystem root is refused unless the
 * manifest says `allowRoot: true`, and so is a path that reaches one through symlinks
 * (`./rootlink` with `rootlink -> /`). The path is resolved with realpath(3) for the check;
 * the scope keeps the path as written (resolved against the manifest's directory), as the
 * state store's and quarantine's paths are, so that the walk's exclusions still match.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

export const isFilesystemRoot = (p: string): boolean => p === path.parse(p).root;

/** Why the scope `resolved` (written as `written`) is refused, or null. A path that does not exist yet is judged as written. */
export function rootScopeProblem(written: string, resolved: string): string | null {
  const advice = 'name a directory, or allowRoot: true if that is meant';
  if (isFilesystemRoot(resolved)) return `"${written}" is a filesystem root; ${advice}`;
  let real: string;
  try {
    real = realpathSync.native(resolved);
  } catch {
    return null;
  }
  return isFilesystemRoot(real) ? `"${written}" resolves to the filesystem root ${real} (through a symlink); ${advice}` : null;
}
