import { describe, expect, it } from 'vitest';
import { closestWord, editDistance } from '../../src/util/suggest.js';

describe('closestWord', () => {
  const keys = ['fs', 'ttl', 'grace', 'owner', 'minAge'];

  it('names the same word in another case, else the nearest within two edits', () => {
    expect(closestWord('TTL', keys)).toBe('ttl');
    expect(closestWord('tll', keys)).toBe('ttl');
    expect(closestWord('grase', keys)).toBe('grace');
    expect(closestWord('minage', keys)).toBe('minAge');
    // Nearest, not first: "ownr" is one edit from "owner", two from "ownerz" listed before it.
    expect(closestWord('ownr', ['ownerz', 'owner'])).toBe('owner');
  });

  it('does not take a short unknown word for any short key', () => {
    expect(closestWord('x', keys)).toBeUndefined();
    expect(closestWord('ab', keys)).toBeUndefined();
    expect(closestWord('schedule', keys)).toBeUndefined();
  });

  it('counts edits', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });
});
