/**
 * Properties of the pure reap planner (src/engine/reap-plan.ts): the decisions that stand
 * between a finding and a delete, checked over generated inputs rather than examples.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { breakerReasons, capViolation, decideSweep, markCandidates } from '../../src/engine/reap-plan.js';
import { STATUSES, type Finding, type ResourceRecord, type Status } from '../../src/engine/types.js';
import type { ResourceSpec } from '../../src/manifest/types.js';

const RUNS = { numRuns: 1_000 };

const spec = (onExpired: 'report' | 'reap', extra: Partial<ResourceSpec> = {}): ResourceSpec => ({
  name: 'items',
  location: { kind: 'fs', path: '/srv/items' },
  owners: [{ extractor: { from: 'pathPattern', pattern: '^(?<owner>[^/]+)/' } }],
  minAgeMs: 0,
  graceMs: 0,
  batchSize: 100,
  maxDeletesPerRun: 1_000,
  maxDeleteFraction: 1,
  onExpired,
  protect: [],
  ageFrom: 'mtime',
  line: null,
  ...extra,
});

// Few distinct fingerprints, so "unchanged" and "changed" both come up often.
const fingerprint = fc.constantFrom('1:10:5:100', '1:10:5:101', '1:11:5:100', '');
const status = fc.constantFrom<Status>(...STATUSES);
const onExpired = fc.constantFrom<'report' | 'reap'>('report', 'reap');

const record = (id: string, fp: string): ResourceRecord => ({ id, createdAtMs: 0, bytes: 1, fingerprint: fp });
const finding = (id: string, s: Status, fp: string): Finding => ({
  resource: 'items',
  backend: 'fs',
  id,
  status: s,
  reason: s === 'orphaned' ? 'owner-dead' : null,
  owner: 'session:x',
  ageSeconds: 3_600,
  bytes: 1,
  fingerprint: fp,
  beyondTtlSeconds: null,
});

describe('decideSweep', () => {
  const sweepInput = fc.record({
    marked: fingerprint,
    current: fc.option(fingerprint, { nil: undefined }),
    status: fc.option(status, { nil: undefined }),
    activeSinceMark: fc.boolean(),
    onExpired,
    /** The type has a visible mark, and whether the tombstone's mark was confirmed. */
    visibleMark: fc.boolean(),
    confirmed: fc.boolean(),
  });
  const tombstoneOf = (i: { marked: string; confirmed: boolean }) => ({ fingerprint: i.marked, markConfirmedAt: i.confirmed ? 1 : null });

  it('deletes only a resource still present, unchanged, reapable now, whose owner showed no activity since the mark, and whose visible mark (if any) was confirmed', () => {
    fc.assert(
      fc.property(sweepInput, (i) => {
        const current = i.current === undefined ? undefined : record('a/f', i.current);
        const found = i.status === undefined ? undefined : finding('a/f', i.status, i.current ?? i.marked);
        const decision = decideSweep(tombstoneOf(i), current, found, i.activeSinceMark, { onExpired: i.onExpired, visibleMark: i.visibleMark });
        const reapable = i.status === 'orphaned' || (i.status === 'expired' && i.onExpired === 'reap');
        const mayDelete =
          current !== undefined && found !== undefined && i.current === i.marked && reapable && !i.activeSinceMark && (!i.visibleMark || i.confirmed);
        expect(decision.action === 'delete').toBe(mayDelete);
      }),
      RUNS,
    );
  });

  it('never deletes when the record is missing, the visible mark was never confirmed, the fingerprint changed, or the owner was active since the mark', () => {
    fc.assert(
      fc.property(sweepInput, (i) => {
        const current = i.current === undefined ? undefined : record('a/f', i.current);
        const found = i.status === undefined ? undefined : finding('a/f', i.status, i.current ?? i.marked);
        const decision = decideSweep(tombstoneOf(i), current, found, i.activeSinceMark, { onExpired: i.onExpired, visibleMark: i.visibleMark });
        if (current === undefined || found === undefined) expect(decision).toEqual({ action: 'lift', why: 'vanished' });
        else if (i.visibleMark && !i.confirmed) expect(decision).toEqual({ action: 'lift', why: 'mark-unconfirmed' });
        else if (i.current !== i.marked) expect(decision).toEqual({ action: 'lift', why: 'changed' });
        if (i.activeSinceMark) expect(decision.action).not.toBe('delete');
      }),
      RUNS,
    );
  });

  it('never deletes what is live, protected, young or unknown now; unknown keeps the tombstone for a later run', () => {
    fc.assert(
      fc.property(fc.constantFrom<Status>('live', 'protected', 'young', 'unknown'), fingerprint, onExpired, fc.boolean(), (s, fp, oe, active) => {
        const decision = decideSweep({ fingerprint: fp }, record('a/f', fp), finding('a/f', s, fp), active, { onExpired: oe });
        expect(decision.action).not.toBe('delete');
        if (s === 'unknown') expect(decision.action).toBe('keep');
        if (s === 'protected') expect(decision).toEqual({ action: 'lift', why: 'protected' });
      }),
      RUNS,
    );
  });

  it('an expired resource is deleted only under onExpired: reap', () => {
    fc.assert(
      fc.property(fingerprint, (fp) => {
        expect(decideSweep({ fingerprint: fp }, record('a/f', fp), finding('a/f', 'expired', fp), false, { onExpired: 'report' }).action).toBe('lift');
        expect(decideSweep({ fingerprint: fp }, record('a/f', fp), finding('a/f', 'expired', fp), false, { onExpired: 'reap' }).action).toBe('delete');
      }),
    );
  });
});

describe('markCandidates', () => {
  it('marks only reapable findings with a fingerprint and no active tombstone', () => {
    const page = fc.array(fc.record({ status, fp: fingerprint, tombstoned: fc.boolean(), withRecord: fc.boolean() }), { maxLength: 20 });
    fc.assert(
      fc.property(page, onExpired, (rows, oe) => {
        const findings = rows.map((r, i) => finding(`o/${i}`, r.status, r.fp));
        const records = rows.flatMap((r, i) => (r.withRecord ? [record(`o/${i}`, r.fp)] : []));
        const tombstoned = new Set(rows.flatMap((r, i) => (r.tombstoned ? [`o/${i}`] : [])));
        const marks = markCandidates(findings, records, spec(oe), tombstoned);
        const expected = rows.flatMap((r, i) =>
          (r.status === 'orphaned' || (r.status === 'expired' && oe === 'reap')) && !r.tombstoned && r.withRecord && r.fp !== '' ? [`o/${i}`] : [],
        );
        expect(marks.map((m) => m.id)).toEqual(expected);
        for (const m of marks) expect(m.fingerprint).not.toBe('');
      }),
      RUNS,
    );
  });
});

describe('capViolation', () => {
  // Small ranges, so the boundaries (condemned = a limit, one above, one below) come up often.
  const capInput = fc.record({
    maxDeletesPerRun: fc.nat({ max: 40 }),
    maxDeleteFraction: fc.oneof(fc.constantFrom(0, 0.1, 0.25, 0.5, 1), fc.double({ min: 0, max: 1, noNaN: true })),
    scanned: fc.nat({ max: 80 }),
    toMark: fc.nat({ max: 30 }),
    toSweep: fc.nat({ max: 30 }),
  });

  it('never lets condemned (marks + sweeps) exceed maxDeletesPerRun nor floor(fraction × scanned)', () => {
    fc.assert(
      fc.property(capInput, (c) => {
        const violation = capViolation(c, { resource: 'items', scanned: c.scanned, toMark: c.toMark, toSweep: c.toSweep });
        const condemned = c.toMark + c.toSweep;
        if (violation === null) {
          expect(condemned).toBeLessThanOrEqual(c.maxDeletesPerRun);
          expect(condemned).toBeLessThanOrEqual(Math.floor(c.maxDeleteFraction * c.scanned));
        }
      }),
      RUNS,
    );
  });

  it('refuses exactly when a cap would be exceeded (and names the resource)', () => {
    fc.assert(
      fc.property(capInput, (c) => {
        const violation = capViolation(c, { resource: 'items', scanned: c.scanned, toMark: c.toMark, toSweep: c.toSweep });
        const condemned = c.toMark + c.toSweep;
        const over = condemned > c.maxDeletesPerRun || condemned > Math.floor(c.maxDeleteFraction * c.scanned);
        expect(violation !== null).toBe(over);
        if (violation !== null) expect(violation).toMatch(/^items: /);
      }),
      RUNS,
    );
  });
});

describe('breakerReasons', () => {
  const names = ['leases', 'static#1', 'sql:main#2'];
  const breakerInput = fc.record({
    current: fc.dictionary(fc.constantFrom(...names), fc.nat({ max: 200 })),
    errors: fc.dictionary(fc.constantFrom(...names), fc.string({ minLength: 1, maxLength: 20 })),
    last: fc.option(fc.dictionary(fc.constantFrom(...names), fc.nat({ max: 200 })), { nil: null }),
    minLiveKeys: fc.nat({ max: 20 }),
    /** maxDrop in whole percent, so the exact drop can be compared in integers. */
    dropPercent: fc.nat({ max: 100 }),
  });
  type BreakerInput = typeof breakerInput extends fc.Arbitrary<infer R> ? R : never;
  const reasonsFor = (i: BreakerInput) =>
    breakerReasons({ counts: i.current, errors: i.errors }, i.last, { minLiveKeys: i.minLiveKeys, maxDrop: i.dropPercent / 100 });

  it('trips on any error, any count below minLiveKeys, any drop beyond maxDrop — naming each source', () => {
    fc.assert(
      fc.property(breakerInput, (i) => {
        const reasons = reasonsFor(i);
        const offenders = new Set(Object.keys(i.errors));
        for (const [name, count] of Object.entries(i.current)) {
          const before = i.last?.[name];
          if (count < i.minLiveKeys) offenders.add(name);
          // drop > maxDrop, exactly: (before - count) / before > p / 100
          else if (before !== undefined && before > 0 && 100 * (before - count) > i.dropPercent * before) offenders.add(name);
        }
        if (offenders.size > 0) expect(reasons.length).toBeGreaterThan(0);
        for (const name of offenders) expect(reasons.some((r) => r.includes(`liveness source ${name} `))).toBe(true);
      }),
      RUNS,
    );
  });

  it('stays quiet when every source answered, holds minLiveKeys, and fell by less than maxDrop', () => {
    fc.assert(
      fc.property(breakerInput, (i) => {
        const healthy =
          Object.keys(i.errors).length === 0 &&
          Object.entries(i.current).every(([name, count]) => {
            const before = i.last?.[name];
            return count >= i.minLiveKeys && (before === undefined || before === 0 || 100 * (before - count) < i.dropPercent * before);
          });
        if (healthy) expect(reasonsFor(i)).toEqual([]);
      }),
      RUNS,
    );
  });

  it('an empty registry trips it with the default minLiveKeys, whatever the last run saw', () => {
    fc.assert(
      fc.property(fc.option(fc.nat({ max: 100 }), { nil: null }), (before) => {
        const reasons = breakerReasons({ counts: { leases: 0 }, errors: {} }, before === null ? null : { leases: before }, { minLiveKeys: 1, maxDrop: 0.5 });
        expect(reasons).toHaveLength(1);
        expect(reasons[0]).toMatch(/leases reports 0 live key/);
      }),
    );
  });
});
