import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdSet } from '../../src/util/id-set.js';

describe('IdSet', () => {
  it('answers like a Set<number> for any sequence of adds, in any order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5_000 }), { maxLength: 300 }), fc.array(fc.integer({ min: 0, max: 5_100 }), { maxLength: 100 }), (added, probes) => {
        const ids = new IdSet();
        const oracle = new Set<number>();
        for (const id of added) {
          ids.add(id);
          oracle.add(id);
        }
        expect(ids.size).toBe(oracle.size);
        for (const id of [...added, ...probes]) expect(ids.has(id)).toBe(oracle.has(id));
      }),
    );
  });

  it('refuses what is not a non-negative integer', () => {
    const ids = new IdSet();
    expect(() => ids.add(-1)).toThrow(RangeError);
    expect(() => ids.add(1.5)).toThrow(RangeError);
    expect(ids.has(-1)).toBe(false);
  });
});
