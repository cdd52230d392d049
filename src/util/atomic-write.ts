/**
 * Files replaced atomically, the one way reaper writes its output files (metrics textfile,
 * JUnit XML, findings NDJSON): a temporary file beside the target, fsync, rename over the
 * target, then fsync the directory. A reader sees the old file or the new one, never half of
 * one, and after a crash the rename is either durable or not there.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** A temporary name beside `file`, hidden and not ending like it (a collector reading `*.prom` never sees it). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Write `data` to `file` atomically. On failure the temporary file is removed and the error thrown. */
export async function atomicWrite(file: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const temp = tempPathFor(file);
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await replace(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** Make `temp`, written by a stream and closed, the file `file`: fsync it, rename it over `file`, fsync the directory. */
export async function publish(temp: string, file: string): Promise<void> {
  const handle = await open(temp, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await replace(temp, file);
}

async function replace(temp: string, file: string): Promise<void> {
  await rename(temp, file);
  await syncDirectory(path.dirname(file));
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename itself has happened.
  }
}
