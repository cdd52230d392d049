/**
 * Properties of the classifier over random records, specs and liveness answers: the
 * invariants of the model (README, "The model") and docs/safety.md §4, §5 that must hold whatever the backends report.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classify, isReapable, matchProtect, readOwners, type LivenessAnswers } from '../../src/engine/classify.js';
import { STATUSES, type Finding, type Liveness, type OwnerValue, type ResourceRecord } from '../../src/engine/types.js';
import type { OwnerRule, ProtectRule, ResourceSpec } from '../../src/manifest/types.js';
import { DAY, HOUR, NOW, spec as baseSpec } from './support/classify-fixtures.js';

const RUNS = { numRuns: 300 };

const liveness = fc.constantFrom<Liveness>('live', 'dead', 'unknown');

const extractor = fc.constantFrom<OwnerRule['extractor']>(
  { from: 'tag', name: 'owner' },
  { from: 'metadata', name: 'Owner' },
  { from: 'column', name: 'owner_id' },
  { from: 'keyPattern', pattern: '^(?<owner>[a-c])/' },
);
const ownerRule: fc.Arbitrary<OwnerRule> = fc
  .tuple(extractor, fc.option(fc.constantFrom('k:{value}', '{value}@{value}'), { nil: undefined, freq: 2 }), fc.option(fc.constantFrom('parents', 'others'), { nil: undefined, freq: 2 }))
  .map(([e, keyTemplate, ref]) => ({ extractor: e, ...(keyTemplate !== undefined && ref === undefined ? { keyTemplate } : {}), ...(ref !== undefined ? { ref } : {}) }));
const protectRule = fc.constantFrom<ProtectRule>(
  { kind: 'tag', match: { keep: 'true' } },
  { kind: 'metadata', match: { KEEP: 'true' } },
  { kind: 'keyPattern', pattern: '^keep/' },
  { kind: 'where', sql: 'keep' },
);

const specArb: fc.Arbitrary<ResourceSpec> = fc
  .record({
    owners: fc.array(ownerRule, { minLength: 1, maxLength: 3 }),
    protect: fc.array(protectRule, { maxLength: 2 }),
    ttlMs: fc.option(fc.integer({ min: 1, max: 3 * DAY }), { nil: undefined }),
    minAgeMs: fc.integer({ min: 0, max: 2 * HOUR }),
    onExpired: fc.constantFrom<'report' | 'reap'>('report', 'reap'),
  })
  .map((s) => baseSpec(s));

const attrValue = fc.constantFrom('a', 'b', 'c', '', 'true', 'false');
/** Mostly present; absent (not read) one time in `1 + weight`. */
const usually = <T, N>(arb: fc.Arbitrary<T>, nil: N, weight = 6) => fc.oneof({ arbitrary: arb, weight }, { arbitrary: fc.constant(nil), weight: 1 });
const recordArb: fc.Arbitrary<ResourceRecord> = fc.record({
  id: fc.constantFrom('a/1', 'b/2', 'c/3', 'keep/4', 'z', 'a/'),
  createdAtMs: usually(fc.oneof(fc.integer({ min: NOW - 3 * HOUR, max: NOW + HOUR }), fc.integer({ min: NOW - 5 * DAY, max: NOW })), null, 15),
  bytes: fc.option(fc.nat(), { nil: null }),
  fingerprint: fc.string({ maxLength: 4 }),
  tags: usually(fc.dictionary(fc.constantFrom('owner', 'Owner', 'keep'), attrValue), undefined),
  metadata: usually(fc.dictionary(fc.constantFrom('owner', 'OWNER', 'keep'), attrValue), undefined),
  columns: usually(fc.dictionary(fc.constantFrom('owner_id', 'other'), fc.option(attrValue, { nil: null })), undefined),
  protectMatches: usually(fc.record({ 0: fc.boolean(), 1: fc.boolean() }), undefined),
  unreadable: usually(fc.constant(undefined), 'HeadObject: timeout', 9),
});

/** Liveness answers as pure functions of the key (and of type and id for refs). */
const answersArb: fc.Arbitrary<LivenessAnswers> = fc.tuple(fc.func(liveness), fc.func(liveness)).map(([key, ref]) => ({
  key: (k: string) => key(k),
  ref: (type: string, id: string) => ref(type, id),
}));

const nowArb = fc.constant(NOW);

function answerFor(owner: OwnerValue, answers: LivenessAnswers): Liveness | null {
  if (owner.kind === 'key') return answers.key(owner.key);
  if (owner.kind === 'ref') return answers.ref(owner.ref.type, owner.ref.id);
  return null;
}

const REASONS: Record<Finding['status'], (reason: string | null) => boolean> = {
  live: (r) => r === null,
  orphaned: (r) => r === 'no-owner' || r === 'owner-dead' || r === 'unreachable',
  expired: (r) => r === 'ttl',
  protected: (r) => r !== null && /^protect\[\d+\]$/.test(r),
  young: (r) => r === 'min-age' || r === 'future-timestamp',
  unknown: (r) => r === 'liveness-unavailable' || r === 'attributes-unreadable' || r === 'age-unknown' || r === 'protection-unreadable',
};

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

describe('classify: properties', () => {
  it('(1) gives exactly one status, with a reason that belongs to it', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const finding = classify(record, spec, answers, now);
        expect(STATUSES.filter((s) => s === finding.status)).toHaveLength(1);
        expect(REASONS[finding.status](finding.reason), `${finding.status}/${finding.reason}`).toBe(true);
      }),
      RUNS,
    );
  });

  it('(2) never calls a resource with a live owner orphaned', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const anyLive = readOwners(record, spec).some((o) => answerFor(o, answers) === 'live');
        const finding = classify(record, spec, answers, now);
        if (anyLive) expect(finding.status).not.toBe('orphaned');
      }),
      RUNS,
    );
  });

  it('(3) never makes a protected resource reapable (§5)', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const match = matchProtect(record, spec.protect);
        const finding = classify(record, spec, answers, now);
        if (match !== null && match !== 'unknown') {
          expect(finding.status).toBe('protected');
          expect(isReapable(finding, { onExpired: 'reap' })).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('(4) never makes anything younger than minAge reapable', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const finding = classify(record, spec, answers, now);
        if (record.createdAtMs !== null && now - record.createdAtMs < spec.minAgeMs) expect(isReapable(finding, { onExpired: 'reap' })).toBe(false);
      }),
      RUNS,
    );
  });

  const flipped = fc.tuple(fc.func(fc.boolean()), fc.func(fc.boolean()));
  const withLive = (answers: LivenessAnswers, [flipKey, flipRef]: [(k: string) => boolean, (t: string, i: string) => boolean]): LivenessAnswers => ({
    key: (k) => (flipKey(k) ? 'live' : answers.key(k)),
    ref: (t, i) => (flipRef(t, i) ? 'live' : answers.ref(t, i)),
  });

  it('(5) monotonicity: turning unknown or dead answers to live never makes a resource reapable as garbage', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, flipped, nowArb, (record, spec, answers, flips, now) => {
        const before = classify(record, spec, answers, now);
        const after = classify(record, spec, withLive(answers, flips), now);
        // With onExpired: report only orphans are reapable: more life never makes more of them.
        if (isReapable(after, { onExpired: 'report' })) expect(isReapable(before, { onExpired: 'report' })).toBe(true);
        // With onExpired: reap a live owner past the ttl is reaped by policy, so the only new
        // reapable status life can bring is `expired`, and only past the ttl.
        if (isReapable(after, spec) && !isReapable(before, spec)) {
          expect(after.status).toBe('expired');
          expect(spec.onExpired).toBe('reap');
          expect(after.beyondTtlSeconds).toBeGreaterThan(0);
        }
        if (after.status === 'orphaned') expect(before.status).toBe('orphaned');
      }),
      RUNS,
    );
  });

  it('(6) an unknown answer for every owner never yields orphaned, unless no owner could be read at all', () => {
    const allUnknown: LivenessAnswers = { key: () => 'unknown', ref: () => 'unknown' };
    fc.assert(
      fc.property(recordArb, specArb, nowArb, (record, spec, now) => {
        const finding = classify(record, spec, allUnknown, now);
        if (finding.status === 'orphaned') {
          expect(finding.reason).toBe('no-owner');
          expect(readOwners(record, spec).every((o) => o.kind === 'none')).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('(6b) an orphan had only dead or absent owners: nothing unreadable, nothing unknown (§4)', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const finding = classify(record, spec, answers, now);
        if (finding.status !== 'orphaned') return;
        expect(record.unreadable).toBeUndefined();
        expect(matchProtect(record, spec.protect)).toBeNull();
        for (const owner of readOwners(record, spec)) {
          expect(owner.kind).not.toBe('unreadable');
          const answer = answerFor(owner, answers);
          if (answer !== null) expect(answer).toBe('dead');
        }
      }),
      RUNS,
    );
  });

  it('(7) is a pure function: same inputs, same finding, inputs untouched', () => {
    fc.assert(
      fc.property(recordArb, specArb, answersArb, nowArb, (record, spec, answers, now) => {
        const recordBefore = structuredClone(record);
        const specBefore = structuredClone(spec);
        deepFreeze(record);
        deepFreeze(spec);
        const first = classify(record, spec, answers, now);
        const second = classify(record, spec, answers, now);
        expect(second).toEqual(first);
        expect(record).toEqual(recordBefore);
        expect(spec).toEqual(specBefore);
      }),
      RUNS,
    );
  });
});
