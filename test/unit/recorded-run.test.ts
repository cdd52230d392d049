/**
 * How a run's end is recorded (src/run/recorded-run.ts), with a store whose writes can fail:
 * the end the work returned stands even when the first write of it fails.
 */
import { describe, expect, it } from 'vitest';
import { BackendError, InterruptedError } from '../../src/errors.js';
import { recordedRun, type RunEnd } from '../../src/run/recorded-run.js';
import type { RunContext } from '../../src/run/context.js';
import type { RunRecord } from '../../src/state/types.js';

function context(finishFailures: number): { context: RunContext; ends: RunEnd[] } {
  const ends: RunEnd[] = [];
  let failures = finishFailures;
  const store = {
    async finishRun(_runId: string, end: RunEnd) {
      if (failures-- > 0) throw new BackendError('state store sqlite:x: a deadline of 30 s passed');
      ends.push(end);
    },
  };
  const fake = {
    store,
    async startRun() {
      return { runId: 'r-1' } as RunRecord;
    },
  } as unknown as RunContext;
  return { context: fake, ends };
}

const options = { kind: 'reap' as const, manifestDigest: 'd', execute: true, stopped: 'stopped' };

describe('recordedRun', () => {
  it('writes the end the work returned again when the first write fails: an interrupted run is not recorded failed', async () => {
    const { context: c, ends } = context(1);
    const end: RunEnd = { status: 'interrupted', summary: { outcomes: { deleted: 4 } }, error: 'interrupted: stopped after finishing the current batch' };
    const error = await recordedRun(c, options, async () => ({ result: 1, end })).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendError);
    expect(ends).toEqual([end]);
  });

  it('records an end by an error with the counts reached so far, and an interruption as interrupted', async () => {
    const { context: c, ends } = context(0);
    const error = await recordedRun(c, options, async (_run, progress) => {
      progress.summary = () => ({ outcomes: { deleted: 2 } });
      throw new InterruptedError('stopped after finishing the current batch');
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InterruptedError);
    expect(ends).toEqual([{ status: 'interrupted', summary: { outcomes: { deleted: 2 } }, error: 'stopped after finishing the current batch' }]);
  });

  // Last in this file: a hard stop is for the rest of the process (this file's worker).
  it('after a hard stop, the end the work returns does not overwrite the hard stop\'s record', async () => {
    const { context: c, ends } = context(0);
    const { runHardStopHooks, hardStopping } = await import('../../src/run/hard-stop.js');
    const { HARD_STOP_ERROR } = await import('../../src/run/recorded-run.js');
    await recordedRun(c, options, async () => {
      await runHardStopHooks(1_000);
      return { result: 1, end: { status: 'failed', error: 'a handler call killed by the stop' } };
    });
    expect(hardStopping()).toBe(true);
    expect(ends).toEqual([{ status: 'interrupted', summary: undefined, error: HARD_STOP_ERROR }]);
  });
});
