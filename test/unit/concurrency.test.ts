/**
 * mapLimit: at most `limit` calls in flight, results in input order — and a call that fails
 * ends the map only once every call in flight has settled, starting none after it: nothing
 * of a failed batch (a sweep's renames and unlinks) goes on after the caller has moved on.
 */
import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../src/util/concurrency.js';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapLimit', () => {
  it('keeps at most limit calls in flight and returns results in input order', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await tick(n);
      inFlight--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });

  it('a failure starts no further call and rejects only once the calls in flight have settled', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapLimit([0, 1, 2, 3, 4, 5], 3, async (n) => {
      started.push(n);
      if (n === 0) {
        await tick(1);
        throw new Error('first fails');
      }
      await tick(20);
      finished.push(n);
      return n;
    });
    await expect(run).rejects.toThrow('first fails');
    // 0 failed while 1 and 2 were in flight: they finished before the rejection, and 3–5 never started.
    expect(started).toEqual([0, 1, 2]);
    expect(finished.sort()).toEqual([1, 2]);
    await tick(50);
    expect(started).toEqual([0, 1, 2]);
  });

  it('rejects with the first failure when several fail', async () => {
    await expect(
      mapLimit([1, 2, 3], 3, async (n) => {
        await tick(n * 5);
        throw new Error(`failed ${n}`);
      }),
    ).rejects.toThrow('failed 1');
  });
});
