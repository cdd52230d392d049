import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RANGES, PositionSample } from '../../src/engine/split-points.js';

/** The n keys 0 … n-1, zero-padded so that text order is number order. */
const keyOf = (i: number) => String(i).padStart(9, '0');

function sampled(n: number): PositionSample {
  const sample = new PositionSample();
  for (let i = 0; i < n; i++) sample.add(keyOf(i));
  return sample;
}

describe('PositionSample: split points from keys streamed in order', () => {
  it('gives M-1 ascending points of keys that went by, none the last key, and ranges of equal count within 1/2,048 of the keys', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: 2, max: 200 }), (n, ranges) => {
        const sample = sampled(n);
        const points = sample.points(ranges);
        expect(sample.count).toBe(n);
        const at = points.map(Number);
        for (const [k, p] of at.entries()) {
          expect(Number.isInteger(p) && p >= 0 && p < n - 1).toBe(true);
          if (k > 0) expect(p).toBeGreaterThan(at[k - 1]!);
        }
        if (n >= 2 * ranges) expect(points).toHaveLength(ranges - 1);
        else expect(points.length).toBeLessThanOrEqual(Math.min(ranges - 1, Math.max(0, n - 1)));
        if (points.length === ranges - 1) {
          // A key equal to a point belongs to the range it ends: sizes p0+1, p1-p0, …, n-1-p(last).
          const sizes = [...at, n - 1].map((p, k) => p - (k === 0 ? -1 : at[k - 1]!));
          const tolerance = n / 2048 + 2;
          for (const size of sizes) expect(Math.abs(size - n / ranges)).toBeLessThanOrEqual(tolerance);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('is exact while every key fits in the sample', () => {
    const points = sampled(1_000).points(4);
    expect(points).toEqual([keyOf(249), keyOf(499), keyOf(749)]);
  });

  it('keeps a bounded sample whatever the number of keys, and its points stay in place', () => {
    const sample = sampled(2_000_000);
    const points = sample.points(MAX_RANGES);
    expect(points).toHaveLength(MAX_RANGES - 1);
    const exact = (k: number) => Math.ceil((k * 2_000_000) / MAX_RANGES) - 1;
    for (const [j, p] of points.entries()) expect(Math.abs(Number(p) - exact(j + 1))).toBeLessThanOrEqual(2_000_000 / 8192 + 1);
    expect((sample as unknown as { kept: string[] }).kept.length).toBeLessThanOrEqual(8 * MAX_RANGES);
  });

  it('has no points for no keys or one key, and refuses a number of ranges out of bounds', () => {
    expect(sampled(0).points(8)).toEqual([]);
    expect(sampled(1).points(8)).toEqual([]);
    expect(() => sampled(10).points(0)).toThrow(RangeError);
    expect(() => sampled(10).points(MAX_RANGES + 1)).toThrow(RangeError);
  });
});
