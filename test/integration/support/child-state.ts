/**
 * Waiting on a child process of the CLI: `until` polls a condition (a wait, not a timed
 * assertion: the limit only guards against a hang); `stopped` says whether a failpoint's
 * SIGSTOP has landed (state `T` in /proc/PID/stat).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function stopped(child: ChildProcess): boolean {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  } catch {
    return false;
  }
}
