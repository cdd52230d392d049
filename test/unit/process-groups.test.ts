/**
 * A hard stop (a second signal) kills the process groups of the handler calls in flight, and
 * any call started after it, so no handler acts after reaper has gone (docs/safety.md §19).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { killProcessGroups, trackProcessGroup } from '../../src/util/process-groups.js';

/** A shell in a group of its own whose child `sleep` is in that group too. */
function group(): ChildProcess {
  return spawn('/bin/sh', ['-c', 'sleep 20; true'], { detached: true, stdio: 'ignore' });
}

const ended = (child: ChildProcess) => new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));

describe('killProcessGroups', () => {
  it('kills the tracked groups, not the untracked ones, and kills a group tracked after it at once', async () => {
    const tracked = group();
    const untracked = group();
    const done = group();
    try {
      trackProcessGroup(tracked.pid!);
      trackProcessGroup(done.pid!)(); // its call ended: no longer in flight
      const killed = ended(tracked);
      killProcessGroups();
      expect(await killed).toBe('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(untracked.exitCode).toBeNull();
      expect(done.exitCode).toBeNull();

      const late = group();
      const lateKilled = ended(late);
      trackProcessGroup(late.pid!);
      expect(await lateKilled).toBe('SIGKILL');
    } finally {
      for (const child of [untracked, done]) process.kill(-child.pid!, 'SIGKILL');
    }
  });
});
