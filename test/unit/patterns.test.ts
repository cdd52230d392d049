/**
 * Owner and protect patterns against hostile names (docs/safety.md §19: no input can stall a run).
 * Anyone who can name a file or an S3 key chooses the text a manifest's pattern is matched
 * on; a backtracking engine takes minutes on `^(?<owner>(a+)+)b` against 34 a's and a c
 * (and cannot be interrupted). These tests finish promptly and classify correctly; they
 * carry a generous timeout that a backtracking engine would exceed by orders of magnitude.
 */
import { describe, expect, it } from 'vitest';
import { classify, matchProtect, readOwner } from '../../src/engine/classify.js';
import { MAX_MATCHED_LENGTH } from '../../src/manifest/pattern.js';
import type { OwnerRule, ResourceSpec } from '../../src/manifest/types.js';
import { answers, NOW, record, spec } from './support/classify-fixtures.js';

const NESTED: OwnerRule = { extractor: { from: 'pathPattern', pattern: '^(?<owner>(a+)+)b' }, keyTemplate: 'session:{value}' };
const files = (overrides: Partial<ResourceSpec> = {}) => spec({ location: { kind: 'fs', path: '/srv/scratch' }, owners: [NESTED], ...overrides });
const file = (id: string) => record({ id, tags: undefined });
const TIMEOUT = 60_000;

describe('patterns run in linear time', () => {
  it(
    'a nested-quantifier owner pattern against a name built to make it backtrack: no owner, orphaned',
    () => {
      const evil = `${'a'.repeat(40)}c`;
      expect(readOwner(file(evil), NESTED)).toEqual({ kind: 'none' });
      expect(classify(file(evil), files(), answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner' });
      // The same pattern still reads owners where it matches.
      const owned = `${'a'.repeat(40)}b/x.part`;
      expect(classify(file(owned), files(), answers({ [`session:${'a'.repeat(40)}`]: 'live' }), NOW)).toMatchObject({ status: 'live' });
    },
    TIMEOUT,
  );

  it(
    'a protect pattern with an ambiguous alternation, and a keyPattern on an S3 key',
    () => {
      const protect = [{ kind: 'pathPattern' as const, pattern: '^(a|a)*$' }];
      expect(matchProtect(file(`${'a'.repeat(40)}!`), protect)).toBeNull();
      expect(matchProtect(file('a'.repeat(40)), protect)).toEqual({ index: 0 });
      const key: OwnerRule = { extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>(\\w+\\s?)*)$' } };
      expect(readOwner(record({ id: `tmp/${'word '.repeat(12)}!` }), key)).toEqual({ kind: 'none' });
      expect(readOwner(record({ id: 'tmp/alice' }), key)).toEqual({ kind: 'key', key: 'alice' });
    },
    TIMEOUT,
  );

  it('a name longer than the bound is not matched: its owner and protection are unknown, never orphaned', () => {
    const long = `${'a'.repeat(MAX_MATCHED_LENGTH)}b`;
    expect(readOwner(file(long), NESTED)).toEqual({ kind: 'unreadable', why: `the name is longer than ${MAX_MATCHED_LENGTH} characters; patterns are not matched on it` });
    expect(classify(file(long), files(), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
    expect(classify(file(long), files({ protect: [{ kind: 'pathPattern', pattern: '^keep/' }] }), answers(), NOW)).toMatchObject({
      status: 'unknown',
      reason: 'protection-unreadable',
    });
    expect(classify(file(`${'a'.repeat(MAX_MATCHED_LENGTH - 1)}b`), files(), answers({ [`session:${'a'.repeat(MAX_MATCHED_LENGTH - 1)}`]: 'live' }), NOW)).toMatchObject({ status: 'live' });
  });
});
