import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MAX_RANGES, PositionSample } from '../../src/engine/split-points.js';
import { splitPointsText, yamlQuoted } from '../../src/run/split-points.js';

/** The n keys 0 … n-1, zero-padded so that text order is number order. */
const keyOf = (i: number) => String(i).padStart(9, '0');

function sampled(n: number, ranges = 2): PositionSample {
  const sample = new PositionSample(ranges);
  for (let i = 0; i < n; i++) sample.add(keyOf(i));
  return sample;
}

describe('PositionSample: split points from keys streamed in order', () => {
  it('gives M-1 ascending points of keys that went by, none the last key, and ranges of equal count within 1/2,048 of the keys', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: 2, max: 200 }), (n, ranges) => {
        const sample = sampled(n, ranges);
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

  it('keeps a bounded sample whatever the number of keys, and its points stay in place (1,024 and the most ranges a manifest takes)', () => {
    const n = 2_000_000;
    for (const ranges of [1024, MAX_RANGES]) {
      const sample = sampled(n, ranges);
      const points = sample.points(ranges);
      expect(points).toHaveLength(ranges - 1);
      const exact = (k: number) => Math.ceil((k * n) / ranges) - 1;
      const cap = 8 * Math.max(1024, ranges);
      for (const [j, p] of points.entries()) expect(Math.abs(Number(p) - exact(j + 1))).toBeLessThanOrEqual(n / cap + 1);
      expect(sample.held).toBeLessThanOrEqual(cap);
    }
  });

  it('has no points for no keys or one key, and refuses a number of ranges out of bounds', () => {
    expect(sampled(0).points(8)).toEqual([]);
    expect(sampled(1).points(8)).toEqual([]);
    expect(() => sampled(10).points(0)).toThrow(RangeError);
    expect(() => sampled(10).points(MAX_RANGES + 1)).toThrow(RangeError);
    expect(() => new PositionSample(MAX_RANGES + 1)).toThrow(RangeError);
  });
});

describe('split-points text: lines to put in the manifest', () => {
  it('quotes every key so that YAML reads it back exactly, escaping what a terminal or a strict reader may not keep', () => {
    const keys = ['tmp/a b', 'back\\slash "quoted"', 'line\nbreak\ttab\u0000nul', '- dash', '# hash', 'a: b', '\u007fdel\u0085nel\u2028ls\ufeffbom', 'é/日本/🙂'];
    for (const key of keys) {
      const line = yamlQuoted(key);
      // eslint-disable-next-line no-control-regex -- the control characters are what must not appear
      expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/);
      expect(parse(`k: ${line}`)).toEqual({ k: key });
    }
  });

  it('says which keys were left out and why, and prints the rest as a shard block', () => {
    const text = splitPointsText({
      resource: 'odd',
      scope: 'postgres public.odd',
      ranges: 4,
      counted: 8,
      splitPoints: ['c'],
      leftOut: [
        { key: '', why: 'the manifest takes no empty split point' },
        { key: 'b${HOME}', why: 'it holds "${", which the manifest would read as an environment variable' },
      ],
    });
    expect(text).toBe(
      [
        'odd (postgres public.odd): 8 resources in 2 ranges of about 4',
        '  left out "": the manifest takes no empty split point; its range joins the next',
        '  left out "b${HOME}": it holds "${", which the manifest would read as an environment variable; its range joins the next',
        '',
        '# under resources: - name: odd',
        'shard:',
        '  splitPoints:',
        '    - "c"',
      ].join('\n'),
    );
    expect(parse(text.split('\n').slice(4).join('\n'))).toEqual({ shard: { splitPoints: ['c'] } });
  });
});
