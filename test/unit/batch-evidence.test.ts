/** What a sweep batch records once for all its resources (the per-resource facts are on the tombstones). */
import { describe, expect, it } from 'vitest';
import { batchEvidence } from '../../src/run/reap/sweep.js';

describe('batchEvidence', () => {
  it('counts the statuses, names the one they share, and spans the marks', () => {
    expect(batchEvidence([{ status: 'orphaned', markedAt: 30 }, { status: 'orphaned', markedAt: 10 }, { status: 'orphaned', markedAt: 20 }])).toEqual({
      items: 3,
      status: 'orphaned',
      statuses: { orphaned: 3 },
      markedAt: 10,
      lastMarkedAt: 30,
    });
  });

  it('names no shared status when they differ, and counts items planned without evidence as unjudged', () => {
    const evidence = batchEvidence([{ status: 'orphaned', markedAt: 5 }, { status: 'expired', markedAt: 7 }, null]);
    expect(evidence).toEqual({ items: 3, statuses: { orphaned: 1, expired: 1, unjudged: 1 }, markedAt: 5, lastMarkedAt: 7 });
    expect(batchEvidence([null, null])).toEqual({ items: 2, statuses: { unjudged: 2 }, markedAt: null, lastMarkedAt: null });
  });
});
