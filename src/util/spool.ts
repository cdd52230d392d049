/**
 * A private scratch file (mode 0600, created here, in a directory of its own) that leaves
 * nothing behind even when the process is killed: on Linux it is unlinked as soon as it is
 * open, and used by the name `/proc/self/fd/N`, which opens, truncates and reads the unlinked
 * file for as long as this process holds descriptor N; the kernel frees it when the process
 * ends, however it ends. Where that name is not available (another system, no /proc), it is
 * an ordinary file in a `mkdtemp` directory, removed by `dispose` (and left by a SIGKILL).
 * Used for the plan a reap writes for itself and for the checked copy of a saved plan
 * (docs/safety.md §10).
 */
import { accessSync, closeSync, constants, fstatSync, openSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Spool {
  /** The name to open the file by (in this process only). */
  readonly path: string;
  /** Free the file (idempotent). */
  dispose(): Promise<void>;
}

/**
 * Why no spool can be made in the temporary directory (`TMPDIR`, else /tmp), or null: a reap
 * asks before it starts a run, so a missing or unwritable TMPDIR is a usage error, not a run
 * that fails after its scan.
 */
export function spoolProblem(): string | null {
  const dir = tmpdir();
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
    accessSync(dir, constants.W_OK | constants.X_OK);
    return null;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return `${dir} cannot hold it (${e.code ?? e.message})`;
  }
}

export async function spoolFile(prefix: string, name: string): Promise<Spool> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix)).catch((error: Error) => {
    throw new Error(`cannot make a private scratch file in the temporary directory (TMPDIR): ${error.message}`, { cause: error });
  });
  const file = path.join(dir, name);
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  const alias = `/proc/self/fd/${fd}`;
  if (process.platform === 'linux' && opensAs(alias, fd)) {
    try {
      unlinkSync(file);
      rmdirSync(dir);
    } catch {
      // Cannot unlink here: an ordinary file, removed by dispose.
      closeSync(fd);
      return { path: file, dispose: () => rm(dir, { recursive: true, force: true }) };
    }
    let open = true;
    return {
      path: alias,
      // The alias must not be used after this: descriptor N may then name another file.
      dispose: async () => {
        if (open) closeSync(fd);
        open = false;
      },
    };
  }
  closeSync(fd);
  return { path: file, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Whether `alias` opens the file open on `fd` (a /proc that is mounted, this process's, and opens for it). */
function opensAs(alias: string, fd: number): boolean {
  let probe: number | undefined;
  try {
    probe = openSync(alias, constants.O_RDWR);
    const a = fstatSync(probe);
    const b = fstatSync(fd);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  } finally {
    if (probe !== undefined) closeSync(probe);
  }
}
