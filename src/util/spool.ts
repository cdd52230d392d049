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
import { closeSync, constants, fstatSync, openSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Spool {
  /** The name to open the file by (in this process only). */
  readonly path: string;
  /** Free the file (idempotent). */
  dispose(): Promise<void>;
}

export async function spoolFile(prefix: string, name: string): Promise<Spool> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const file = path.join(dir, name);
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  const alias = `/proc/self/fd/${fd}`;
  if (process.platform === 'linux' && sameFile(alias, fd)) {
    unlinkSync(file);
    rmdirSync(dir);
    let open = true;
    return {
      path: alias,
      dispose: async () => {
        if (open) closeSync(fd);
        open = false;
      },
    };
  }
  closeSync(fd);
  return { path: file, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Whether `alias` names the file open on `fd` (a /proc that is mounted and this process's). */
function sameFile(alias: string, fd: number): boolean {
  try {
    const a = statSync(alias);
    const b = fstatSync(fd);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}
