/** Run filters only narrow: what cannot be read does not match a filter on it. */
import { describe, expect, it } from 'vitest';
import { activeFilter, matchesFilter, sameFilter } from '../../src/engine/filters.js';

describe('finding filters', () => {
  it('is undefined when nothing is filtered', () => {
    expect(activeFilter({})).toBeUndefined();
    expect(activeFilter({ owners: [] })).toBeUndefined();
    expect(activeFilter({ olderThanSeconds: 0, owners: ['a', 'a'] })).toEqual({ olderThanSeconds: 0, owners: ['a'] });
  });

  it('keeps resources at least as old as --older-than, and never one of unknown age', () => {
    const f = { olderThanSeconds: 3600 };
    expect(matchesFilter(f, { owner: 'a', ageSeconds: 3600 })).toBe(true);
    expect(matchesFilter(f, { owner: 'a', ageSeconds: 3599 })).toBe(false);
    expect(matchesFilter(f, { owner: 'a', ageSeconds: null })).toBe(false);
  });

  it('keeps resources of the --owner keys, and never one without an owner', () => {
    const f = { owners: ['session:1', 'job:x'] };
    expect(matchesFilter(f, { owner: 'job:x', ageSeconds: 1 })).toBe(true);
    expect(matchesFilter(f, { owner: 'session:2', ageSeconds: 1 })).toBe(false);
    expect(matchesFilter(f, { owner: null, ageSeconds: 1 })).toBe(false);
    expect(matchesFilter(undefined, { owner: null, ageSeconds: null })).toBe(true);
  });

  it('compares filters as sets', () => {
    expect(sameFilter({ owners: ['a', 'b'] }, { owners: ['b', 'a'] })).toBe(true);
    expect(sameFilter(undefined, {})).toBe(true);
    expect(sameFilter({ olderThanSeconds: 60 }, undefined)).toBe(false);
  });
});
