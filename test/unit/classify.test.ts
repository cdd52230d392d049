/**
 * The classifier by example: every status and reason of the model (README, "The model"), in the order of judgement
 * documented at the top of src/engine/classify.ts, and docs/safety.md §4 (unknown means alive) and §5
 * (protection overrides).
 */
import { describe, expect, it } from 'vitest';
import { classify, isReapable, matchProtect, ownerKeysOf, readOwner, readOwners } from '../../src/engine/classify.js';
import type { Finding, Status } from '../../src/engine/types.js';
import type { OwnerRule } from '../../src/manifest/types.js';
import { answers, DAY, HOUR, MINUTE, NOW, record, spec } from './support/classify-fixtures.js';

const tagOwner: OwnerRule = { extractor: { from: 'tag', name: 'owner' } };
const refOwner: OwnerRule = { extractor: { from: 'keyPattern', pattern: '^thumbs/(?<owner>[^/.]+)' }, ref: 'image-rows' };

describe('statuses', () => {
  it('live: the owner key is live', () => {
    const finding = classify(record(), spec(), answers({ alice: 'live' }), NOW);
    expect(finding).toEqual({
      resource: 'uploads',
      backend: 's3',
      id: 'tmp/alice/a.bin',
      status: 'live',
      reason: null,
      owner: 'alice',
      ageSeconds: 3600,
      bytes: 1024,
      fingerprint: '"etag-1"',
      beyondTtlSeconds: null,
    } satisfies Finding);
  });

  it('orphaned/owner-dead: the owner key is not live', () => {
    const finding = classify(record(), spec(), answers({ alice: 'dead' }), NOW);
    expect(finding).toMatchObject({ status: 'orphaned', reason: 'owner-dead', owner: 'alice' });
  });

  it('orphaned/no-owner: no owner could be read (absent, empty, null, or a pattern that does not match)', () => {
    const judge = answers({ alice: 'live' });
    expect(classify(record({ tags: {} }), spec(), judge, NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner', owner: null });
    expect(classify(record({ tags: { owner: '' } }), spec(), judge, NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner', owner: null });
    const column = spec({ owners: [{ extractor: { from: 'column', name: 'session_id' } }] });
    expect(classify(record({ columns: { session_id: null } }), column, judge, NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner' });
    const pattern = spec({ owners: [{ extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>[^/]+)/' } }] });
    expect(classify(record({ id: 'elsewhere/alice/a.bin' }), pattern, judge, NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner' });
    expect(judge.asked).toEqual([]);
  });

  it('orphaned/unreachable: the referenced owner resource is dead or missing', () => {
    const thumbs = spec({ name: 'thumbnails', owners: [refOwner] });
    const finding = classify(record({ id: 'thumbs/42.png' }), thumbs, answers({}, { 'image-rows/41': 'live' }), NOW);
    expect(finding).toMatchObject({ status: 'orphaned', reason: 'unreachable', owner: 'image-rows/42' });
  });

  it('live through a live referenced owner, named TYPE/ID', () => {
    const thumbs = spec({ name: 'thumbnails', owners: [refOwner] });
    const judge = answers({}, { 'image-rows/42': 'live' });
    expect(classify(record({ id: 'thumbs/42.png' }), thumbs, judge, NOW)).toMatchObject({ status: 'live', reason: null, owner: 'image-rows/42' });
    expect(judge.asked).toEqual(['image-rows/42']);
  });

  it('expired: a live owner, older than the ttl', () => {
    const finding = classify(record({ createdAtMs: NOW - 3 * DAY }), spec({ ttlMs: DAY }), answers({ alice: 'live' }), NOW);
    expect(finding).toMatchObject({ status: 'expired', reason: 'ttl', owner: 'alice', ageSeconds: 3 * 86_400, beyondTtlSeconds: 2 * 86_400 });
  });

  it('not expired at exactly the ttl, nor without one', () => {
    expect(classify(record({ createdAtMs: NOW - DAY }), spec({ ttlMs: DAY }), answers({ alice: 'live' }), NOW)).toMatchObject({ status: 'live', beyondTtlSeconds: 0 });
    expect(classify(record({ createdAtMs: NOW - 300 * DAY }), spec(), answers({ alice: 'live' }), NOW)).toMatchObject({ status: 'live', beyondTtlSeconds: null });
  });

  it('an orphan past its ttl is orphaned, not expired (expired means owned)', () => {
    const finding = classify(record({ createdAtMs: NOW - 3 * DAY }), spec({ ttlMs: DAY }), answers(), NOW);
    expect(finding).toMatchObject({ status: 'orphaned', reason: 'owner-dead', beyondTtlSeconds: 2 * 86_400 });
  });

  it('young: younger than minAge, whatever its owner says, and without asking', () => {
    const judge = answers();
    expect(classify(record({ createdAtMs: NOW - 9 * MINUTE }), spec(), judge, NOW)).toMatchObject({ status: 'young', reason: 'min-age', ageSeconds: 540 });
    expect(classify(record({ createdAtMs: NOW - 9 * MINUTE, tags: {} }), spec(), judge, NOW)).toMatchObject({ status: 'young', reason: 'min-age' });
    // Clock skew: a creation time ahead of the store's clock is never judged, even with minAge 0.
    expect(classify(record({ createdAtMs: NOW + 1 }), spec({ minAgeMs: 0 }), judge, NOW)).toMatchObject({ status: 'young', reason: 'future-timestamp' });
    expect(judge.asked).toEqual([]);
    expect(classify(record({ createdAtMs: NOW - 10 * MINUTE }), spec(), judge, NOW)).toMatchObject({ status: 'orphaned' });
  });

  it('a creation time in the future counts as age zero (young)', () => {
    expect(classify(record({ createdAtMs: NOW + HOUR }), spec(), answers(), NOW)).toMatchObject({ status: 'young', ageSeconds: 0 });
  });

  it('protected: a protect rule matches; it names the first matching rule', () => {
    const protect = spec({ protect: [{ kind: 'keyPattern', pattern: '^never/' }, { kind: 'tag', match: { keep: 'true' } }, { kind: 'tag', match: { keep: 'true' } }] });
    const finding = classify(record({ tags: { owner: 'alice', keep: 'true' } }), protect, answers(), NOW);
    expect(finding).toMatchObject({ status: 'protected', reason: 'protect[1]', owner: 'alice' });
  });
});

describe('order of judgement', () => {
  const keep = spec({ protect: [{ kind: 'tag', match: { keep: 'true' } }] });
  const kept = (overrides = {}) => record({ tags: { owner: 'alice', keep: 'true' }, ...overrides });

  it('protection beats everything: dead owner, no owner, young, unknown age, unreadable attributes, unknown liveness', () => {
    expect(classify(kept(), keep, answers(), NOW).status).toBe('protected');
    expect(classify(kept({ tags: { keep: 'true' } }), keep, answers(), NOW).status).toBe('protected');
    expect(classify(kept({ createdAtMs: NOW - MINUTE }), keep, answers(), NOW).status).toBe('protected');
    expect(classify(kept({ createdAtMs: null }), keep, answers(), NOW).status).toBe('protected');
    expect(classify(kept({ unreadable: 'HeadObject timed out' }), keep, answers(), NOW).status).toBe('protected');
    expect(classify(kept(), keep, answers({ alice: 'unknown' }), NOW).status).toBe('protected');
    expect(classify(kept({ createdAtMs: NOW - 9 * DAY }), spec({ ...keep, ttlMs: DAY }), answers({ alice: 'live' }), NOW).status).toBe('protected');
  });

  it('unreadable protection makes the resource unknown, before anything else is judged (§4)', () => {
    const judge = answers();
    // The tags a tag rule needs were not read: it cannot be evaluated.
    expect(classify(record({ tags: undefined }), keep, judge, NOW)).toMatchObject({ status: 'unknown', reason: 'protection-unreadable' });
    // The backend did not report the result of a `where` rule.
    const where = spec({ location: { kind: 'postgres', connection: 'db', table: 't', id: 'id', createdAt: 'c' }, owners: [{ extractor: { from: 'column', name: 'o' } }], protect: [{ kind: 'where', sql: 'keep' }] });
    expect(classify(record({ columns: { o: 'x' } }), where, judge, NOW)).toMatchObject({ status: 'unknown', reason: 'protection-unreadable' });
    expect(classify(record({ columns: { o: 'x' }, protectMatches: {} }), where, judge, NOW)).toMatchObject({ status: 'unknown', reason: 'protection-unreadable' });
    expect(classify(record({ columns: { o: 'x' }, createdAtMs: NOW }), where, judge, NOW)).toMatchObject({ status: 'unknown', reason: 'protection-unreadable' });
    expect(judge.asked).toEqual([]);
  });

  it('but a rule that matches wins over one that cannot be evaluated', () => {
    const two = spec({ protect: [{ kind: 'metadata', match: { keep: 'true' } }, { kind: 'keyPattern', pattern: '^tmp/alice/' }] });
    expect(classify(record({ metadata: undefined }), two, answers(), NOW)).toMatchObject({ status: 'protected', reason: 'protect[1]' });
  });

  it('a where rule the backend evaluated as false does not protect', () => {
    const where = spec({ location: { kind: 'mysql', connection: 'db', table: 't', id: 'id', createdAt: 'c' }, owners: [{ extractor: { from: 'column', name: 'o' } }], protect: [{ kind: 'where', sql: 'keep' }] });
    expect(classify(record({ columns: { o: 'x' }, protectMatches: { 0: false } }), where, answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'owner-dead' });
    expect(classify(record({ columns: { o: 'x' }, protectMatches: { 0: true } }), where, answers(), NOW)).toMatchObject({ status: 'protected', reason: 'protect[0]' });
  });

  it('unreadable attributes make it unknown, even when young or owned by a live key', () => {
    expect(classify(record({ unreadable: 'GetObjectTagging: AccessDenied' }), spec(), answers({ alice: 'live' }), NOW)).toMatchObject({ status: 'unknown', reason: 'attributes-unreadable' });
    expect(classify(record({ unreadable: 'x', createdAtMs: NOW }), spec(), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'attributes-unreadable' });
  });

  it('an unknown age makes it unknown, never young or orphaned', () => {
    expect(classify(record({ createdAtMs: null }), spec(), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'age-unknown', ageSeconds: null, beyondTtlSeconds: null });
    expect(classify(record({ createdAtMs: null, tags: {} }), spec({ ttlMs: HOUR }), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'age-unknown', beyondTtlSeconds: null });
  });

  it('young comes before the owners are judged, after unknown age', () => {
    const young = record({ createdAtMs: NOW - MINUTE });
    expect(classify(young, spec(), answers({ alice: 'unknown' }), NOW)).toMatchObject({ status: 'young' });
    expect(classify(young, spec({ ttlMs: 30 * 1000 }), answers({ alice: 'live' }), NOW)).toMatchObject({ status: 'young', beyondTtlSeconds: 30 });
  });
});

describe('unknown means alive (§4)', () => {
  it('an owner whose liveness is unknown makes the resource unknown, not orphaned', () => {
    expect(classify(record(), spec(), answers({ alice: 'unknown' }), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable', owner: 'alice' });
    const thumbs = spec({ owners: [refOwner] });
    expect(classify(record({ id: 'thumbs/42.png' }), thumbs, answers({}, { 'image-rows/42': 'unknown' }), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
  });

  it('an owner attribute that was not read makes it unknown, not no-owner', () => {
    expect(classify(record({ tags: undefined }), spec(), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable', owner: null });
    const meta = spec({ owners: [{ extractor: { from: 'metadata', name: 'owner' } }] });
    expect(classify(record({ metadata: undefined }), meta, answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
    const column = spec({ owners: [{ extractor: { from: 'column', name: 'session_id' } }] });
    expect(classify(record({ columns: { other: 'x' } }), column, answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
    expect(classify(record({ columns: undefined }), column, answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
  });

  it('a column named like an Object.prototype member that was not read is unreadable, not an owner', () => {
    // Only own properties count: Object.prototype.constructor must not pass for an owner value.
    const column = spec({ owners: [{ extractor: { from: 'column', name: 'constructor' } }] });
    expect(classify(record({ columns: { other: 'x' } }), column, answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
  });
});

describe('several owners', () => {
  const three: OwnerRule[] = [
    { extractor: { from: 'tag', name: 'owner' } },
    { extractor: { from: 'metadata', name: 'job' }, keyTemplate: 'job:{value}' },
    { extractor: { from: 'keyPattern', pattern: '^tmp/(?<owner>[^/]+)/' }, keyTemplate: 'user:{value}' },
  ];
  const r = record({ tags: { owner: 'alice' }, metadata: { job: '7' } });

  it('live if any owner is live, naming that owner', () => {
    expect(classify(r, spec({ owners: three }), answers({ 'user:alice': 'live' }), NOW)).toMatchObject({ status: 'live', owner: 'user:alice' });
    expect(classify(r, spec({ owners: three }), answers({ 'job:7': 'live', alice: 'unknown' }), NOW)).toMatchObject({ status: 'live', owner: 'job:7' });
  });

  it('unknown if none is live and any could not be judged', () => {
    expect(classify(r, spec({ owners: three }), answers({ 'job:7': 'unknown' }), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
    expect(classify(record({ metadata: undefined }), spec({ owners: three }), answers(), NOW)).toMatchObject({ status: 'unknown', reason: 'liveness-unavailable' });
  });

  it('orphaned/owner-dead when every owner read is dead, naming the first dead one', () => {
    expect(classify(r, spec({ owners: three }), answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'owner-dead', owner: 'alice' });
    expect(classify(record({ tags: {}, metadata: { job: '7' } }), spec({ owners: three }), answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'owner-dead', owner: 'job:7' });
  });

  it('orphaned/no-owner only when no owner at all could be read', () => {
    expect(classify(record({ id: 'x', tags: {}, metadata: {} }), spec({ owners: three }), answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'no-owner', owner: null });
  });

  it('orphaned/unreachable when a referenced owner is among the dead', () => {
    const mixed = spec({ owners: [tagOwner, { extractor: { from: 'metadata', name: 'image' }, ref: 'image-rows' }] });
    expect(classify(record({ metadata: { image: '9' } }), mixed, answers(), NOW)).toMatchObject({ status: 'orphaned', reason: 'unreachable' });
    expect(classify(record({ metadata: { image: '9' } }), mixed, answers({}, { 'image-rows/9': 'live' }), NOW)).toMatchObject({ status: 'live', owner: 'image-rows/9' });
  });

  it('expired when the live owner is past the ttl', () => {
    const old = record({ tags: { owner: 'alice' }, metadata: { job: '7' }, createdAtMs: NOW - 2 * DAY });
    expect(classify(old, spec({ owners: three, ttlMs: DAY }), answers({ 'job:7': 'live' }), NOW)).toMatchObject({ status: 'expired', reason: 'ttl', owner: 'job:7' });
  });
});

describe('reading owners', () => {
  it('applies key templates, every {value}, literally', () => {
    const rule: OwnerRule = { extractor: { from: 'column', name: 'session_id' }, keyTemplate: 'session:{value}:{value}' };
    expect(readOwner(record({ columns: { session_id: 'abc' } }), rule)).toEqual({ kind: 'key', key: 'session:abc:abc' });
    expect(readOwner(record({ columns: { session_id: '$&$1' } }), rule)).toEqual({ kind: 'key', key: 'session:$&$1:$&$1' });
    expect(readOwner(record({ columns: { session_id: 'abc' } }), { extractor: rule.extractor })).toEqual({ kind: 'key', key: 'abc' });
  });

  it('reads user metadata names case-insensitively, preferring the exact name', () => {
    const rule: OwnerRule = { extractor: { from: 'metadata', name: 'Owner' } };
    expect(readOwner(record({ metadata: { owner: 'alice' } }), rule)).toEqual({ kind: 'key', key: 'alice' });
    expect(readOwner(record({ metadata: { OWNER: 'bob' } }), rule)).toEqual({ kind: 'key', key: 'bob' });
    expect(readOwner(record({ metadata: { owner: 'alice', Owner: 'carol' } }), rule)).toEqual({ kind: 'key', key: 'carol' });
    expect(readOwner(record({ metadata: {} }), rule)).toEqual({ kind: 'none' });
    expect(readOwner(record({ metadata: undefined }), rule)).toEqual({ kind: 'unreadable', why: 'metadata not read' });
  });

  it('reads tags case-sensitively', () => {
    expect(readOwner(record({ tags: { Owner: 'alice' } }), tagOwner)).toEqual({ kind: 'none' });
    expect(readOwner(record({ tags: undefined }), tagOwner)).toEqual({ kind: 'unreadable', why: 'tags not read' });
  });

  it('reads the named group of a pattern on the id, and a ref as TYPE and ID', () => {
    expect(readOwner(record({ id: 'thumbs/42.png' }), refOwner)).toEqual({ kind: 'ref', ref: { type: 'image-rows', id: '42' } });
    expect(readOwner(record({ id: 'a/b' }), { extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } })).toEqual({ kind: 'key', key: 'a' });
    expect(readOwner(record({ columns: {} }), { extractor: { from: 'column', name: 'o' } })).toEqual({ kind: 'unreadable', why: 'column o not read' });
  });

  it('collects the keys and refs a page needs, once each', () => {
    const s = spec({ owners: [tagOwner, { extractor: { from: 'metadata', name: 'image' }, ref: 'image-rows' }] });
    const page = [record({ metadata: { image: '1' } }), record({ tags: { owner: 'bob' }, metadata: { image: '1' } }), record({ tags: {}, metadata: { image: '2' } }), record({ tags: undefined })];
    const { keys, refs } = ownerKeysOf(page, s);
    expect([...keys]).toEqual(['alice', 'bob']);
    expect([...refs].map(([type, ids]) => [type, [...ids]])).toEqual([['image-rows', ['1', '2']]]);
    expect(readOwners(page[3]!, s)).toEqual([{ kind: 'unreadable', why: 'tags not read' }, { kind: 'unreadable', why: 'metadata not read' }]);
  });

  it('matches protect rules: all entries of a tag or metadata rule, patterns on the id', () => {
    const rules = [{ kind: 'tag', match: { keep: 'true', team: 'infra' } }, { kind: 'metadata', match: { Retain: 'yes' } }, { kind: 'pathPattern', pattern: '\\.keep$' }] as const;
    expect(matchProtect(record({ tags: { keep: 'true' }, metadata: {} }), rules)).toBeNull();
    expect(matchProtect(record({ tags: { keep: 'true', team: 'infra' }, metadata: {} }), rules)).toEqual({ index: 0 });
    expect(matchProtect(record({ tags: {}, metadata: { retain: 'yes' } }), rules)).toEqual({ index: 1 });
    expect(matchProtect(record({ id: 'a/.keep', tags: {}, metadata: {} }), rules)).toEqual({ index: 2 });
    expect(matchProtect(record({ tags: {}, metadata: undefined }), rules)).toBe('unknown');
    expect(matchProtect(record(), [])).toBeNull();
  });
});

describe('finding fields', () => {
  it('carries the resource, backend, id, bytes and fingerprint through', () => {
    const fs = spec({ name: 'scratch', location: { kind: 'fs', path: '/data/scratch' }, owners: [{ extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } }] });
    const finding = classify({ id: 'job-1/x.part', createdAtMs: NOW - 1500, bytes: null, fingerprint: '1:2:3:4' }, { ...fs, minAgeMs: 0 }, answers(), NOW);
    expect(finding).toEqual({
      resource: 'scratch',
      backend: 'fs',
      id: 'job-1/x.part',
      status: 'orphaned',
      reason: 'owner-dead',
      owner: 'job-1',
      ageSeconds: 1.5,
      bytes: null,
      fingerprint: '1:2:3:4',
      beyondTtlSeconds: null,
    } satisfies Finding);
  });
});

describe('isReapable', () => {
  const cases: [Status, 'report' | 'reap', boolean][] = [
    ['orphaned', 'report', true],
    ['orphaned', 'reap', true],
    ['expired', 'reap', true],
    ['expired', 'report', false],
    ['live', 'reap', false],
    ['protected', 'reap', false],
    ['young', 'reap', false],
    ['unknown', 'reap', false],
  ];
  it.each(cases)('%s with onExpired: %s → %s', (status, onExpired, reapable) => {
    expect(isReapable({ status }, { onExpired })).toBe(reapable);
  });
});
