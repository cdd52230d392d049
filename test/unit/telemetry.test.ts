/** Leak telemetry (README, "Commands": audit): per-type aggregation of findings, and the run summary. */
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/engine/classify.js';
import type { Finding } from '../../src/engine/types.js';
import { summarize, TelemetryAccumulator, type ResourceTelemetry } from '../../src/report/telemetry.js';
import { answers, DAY, NOW, record, spec } from './support/classify-fixtures.js';

let n = 0;
function finding(status: Finding['status'], overrides: Partial<Finding> = {}): Finding {
  const reason = { live: null, orphaned: 'owner-dead', expired: 'ttl', protected: 'protect[0]', young: 'min-age', unknown: 'liveness-unavailable' }[status];
  return { resource: 'uploads', backend: 's3', id: `k${n++}`, status, reason, owner: 'alice', ageSeconds: 100, bytes: 10, fingerprint: 'f', beyondTtlSeconds: null, ...overrides };
}

const NO_BACKLOG = { count: 0, oldestAgeSeconds: null };

describe('TelemetryAccumulator', () => {
  it('starts empty', () => {
    expect(new TelemetryAccumulator('uploads', 's3', 's3://uploads/tmp/').result(NO_BACKLOG)).toEqual({
      name: 'uploads',
      backend: 's3',
      scope: 's3://uploads/tmp/',
      status: 'ok',
      error: null,
      unreadable: 0,
      scanned: 0,
      live: 0,
      orphaned: 0,
      expired: 0,
      protected: 0,
      young: 0,
      unknown: 0,
      reasons: {},
      orphanBytes: 0,
      avgAgeBeyondTtlSeconds: null,
      maxAgeBeyondTtlSeconds: null,
      oldestOrphanAgeSeconds: null,
      backlog: 0,
      backlogOldestAgeSeconds: null,
    } satisfies ResourceTelemetry);
  });

  it('counts each status and every finding as scanned', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    const statuses: Finding['status'][] = ['live', 'live', 'live', 'orphaned', 'orphaned', 'expired', 'protected', 'young', 'young', 'unknown'];
    for (const s of statuses) acc.add(finding(s));
    expect(acc.scannedSoFar).toBe(10);
    expect(acc.result(NO_BACKLOG)).toMatchObject({ scanned: 10, live: 3, orphaned: 2, expired: 1, protected: 1, young: 2, unknown: 1 });
  });

  it('counts reasons as status/reason, protect rules together, live not at all', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    acc.add(finding('live'));
    acc.add(finding('orphaned', { reason: 'owner-dead' }));
    acc.add(finding('orphaned', { reason: 'owner-dead' }));
    acc.add(finding('orphaned', { reason: 'no-owner' }));
    acc.add(finding('orphaned', { reason: 'unreachable' }));
    acc.add(finding('protected', { reason: 'protect[0]' }));
    acc.add(finding('protected', { reason: 'protect[3]' }));
    acc.add(finding('unknown', { reason: 'liveness-unavailable' }));
    acc.add(finding('unknown', { reason: 'protection-unreadable' }));
    acc.add(finding('young'));
    acc.add(finding('expired'));
    expect(acc.result(NO_BACKLOG).reasons).toEqual({
      'orphaned/owner-dead': 2,
      'orphaned/no-owner': 1,
      'orphaned/unreachable': 1,
      'protected/rule': 2,
      'unknown/liveness-unavailable': 1,
      'unknown/protection-unreadable': 1,
      'young/min-age': 1,
      'expired/ttl': 1,
    });
  });

  it('sums the bytes of orphans only, counting unknown sizes as zero', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    acc.add(finding('orphaned', { bytes: 1000 }));
    acc.add(finding('orphaned', { bytes: 24 }));
    acc.add(finding('orphaned', { bytes: null }));
    for (const s of ['live', 'expired', 'protected', 'young', 'unknown'] as const) acc.add(finding(s, { bytes: 1_000_000 }));
    expect(acc.result(NO_BACKLOG).orphanBytes).toBe(1024);
  });

  it('averages and maximises the age beyond ttl over everything past it except protected resources', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    acc.add(finding('expired', { beyondTtlSeconds: 300 }));
    acc.add(finding('orphaned', { beyondTtlSeconds: 100 }));
    acc.add(finding('unknown', { beyondTtlSeconds: 200 }));
    acc.add(finding('protected', { beyondTtlSeconds: 1_000_000 }));
    acc.add(finding('live', { beyondTtlSeconds: 0 }));
    acc.add(finding('live', { beyondTtlSeconds: null }));
    expect(acc.result(NO_BACKLOG)).toMatchObject({ avgAgeBeyondTtlSeconds: 200, maxAgeBeyondTtlSeconds: 300 });
  });

  it('has no age beyond ttl when nothing is past it, and rounds to milliseconds', () => {
    const none = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    none.add(finding('live', { beyondTtlSeconds: 0 }));
    none.add(finding('protected', { beyondTtlSeconds: 50 }));
    expect(none.result(NO_BACKLOG)).toMatchObject({ avgAgeBeyondTtlSeconds: null, maxAgeBeyondTtlSeconds: null });

    const thirds = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    for (const b of [1, 1, 2]) thirds.add(finding('expired', { beyondTtlSeconds: b }));
    thirds.add(finding('expired', { beyondTtlSeconds: 0.00049 }));
    expect(thirds.result(NO_BACKLOG)).toMatchObject({ avgAgeBeyondTtlSeconds: 1, maxAgeBeyondTtlSeconds: 2 });
    const odd = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    for (const b of [1, 1, 2]) odd.add(finding('expired', { beyondTtlSeconds: b }));
    expect(odd.result(NO_BACKLOG).avgAgeBeyondTtlSeconds).toBe(1.333);
  });

  it('reports the oldest orphan, among orphans only', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    acc.add(finding('orphaned', { ageSeconds: 7200.12345 }));
    acc.add(finding('orphaned', { ageSeconds: 60 }));
    acc.add(finding('orphaned', { ageSeconds: null }));
    acc.add(finding('expired', { ageSeconds: 999_999 }));
    acc.add(finding('unknown', { ageSeconds: 999_999 }));
    expect(acc.result(NO_BACKLOG).oldestOrphanAgeSeconds).toBe(7200.123);
    const noAge = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    noAge.add(finding('orphaned', { ageSeconds: null }));
    expect(noAge.result(NO_BACKLOG).oldestOrphanAgeSeconds).toBeNull();
  });

  it('passes the backlog through', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    expect(acc.result({ count: 12, oldestAgeSeconds: 3600.0004 })).toMatchObject({ backlog: 12, backlogOldestAgeSeconds: 3600 });
  });

  it('returns a snapshot: later findings and edits to the result do not leak', () => {
    const acc = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    acc.add(finding('orphaned'));
    const first = acc.result(NO_BACKLOG);
    first.reasons['orphaned/owner-dead'] = 99;
    acc.add(finding('orphaned'));
    expect(first.orphaned).toBe(1);
    expect(acc.result(NO_BACKLOG)).toMatchObject({ orphaned: 2, reasons: { 'orphaned/owner-dead': 2 } });
  });

  it('agrees with the classifier on a page of resources', () => {
    const s = spec({ ttlMs: DAY, protect: [{ kind: 'tag', match: { keep: 'true' } }] });
    const judge = answers({ alice: 'live', carol: 'unknown' });
    const page = [
      record({ id: 'a', tags: { owner: 'alice' } }), // live
      record({ id: 'b', tags: { owner: 'alice' }, createdAtMs: NOW - 3 * DAY }), // expired, 2 days past
      record({ id: 'c', tags: { owner: 'bob' }, bytes: 500, createdAtMs: NOW - 2 * DAY }), // orphaned, 1 day past
      record({ id: 'd', tags: {}, bytes: 250 }), // orphaned, no owner
      record({ id: 'e', tags: { owner: 'bob', keep: 'true' }, createdAtMs: NOW - 9 * DAY }), // protected
      record({ id: 'f', tags: { owner: 'bob' }, createdAtMs: NOW - 1000 }), // young
      record({ id: 'g', tags: { owner: 'carol' } }), // unknown
    ];
    const acc = new TelemetryAccumulator(s.name, s.location.kind, 'uploads/tmp/');
    for (const r of page) acc.add(classify(r, s, judge, NOW));
    expect(acc.result(NO_BACKLOG)).toMatchObject({
      scanned: 7,
      live: 1,
      expired: 1,
      orphaned: 2,
      protected: 1,
      young: 1,
      unknown: 1,
      orphanBytes: 750,
      avgAgeBeyondTtlSeconds: 1.5 * 86_400,
      maxAgeBeyondTtlSeconds: 2 * 86_400,
      oldestOrphanAgeSeconds: 2 * 86_400,
      reasons: { 'expired/ttl': 1, 'orphaned/owner-dead': 1, 'orphaned/no-owner': 1, 'protected/rule': 1, 'young/min-age': 1, 'unknown/liveness-unavailable': 1 },
    });
  });
});

describe('summarize', () => {
  it('sums counts, bytes and backlog across resource types', () => {
    const a = new TelemetryAccumulator('uploads', 's3', 'uploads/tmp/');
    for (const s of ['live', 'orphaned', 'orphaned', 'protected'] as const) a.add(finding(s, { bytes: 100 }));
    const b = new TelemetryAccumulator('rows', 'postgres', 'public.images');
    for (const s of ['live', 'live', 'orphaned', 'expired', 'young', 'unknown'] as const) b.add(finding(s, { bytes: 7 }));
    expect(summarize([a.result({ count: 3, oldestAgeSeconds: 10 }), b.result({ count: 4, oldestAgeSeconds: 99 })])).toEqual({
      errors: 0,
      unreadable: 0,
      scanned: 10,
      live: 3,
      orphaned: 3,
      expired: 1,
      protected: 1,
      young: 1,
      unknown: 1,
      orphanBytes: 207,
      backlog: 7,
    });
  });

  it('names the first unreadable entry with its control and bidi characters escaped', () => {
    const acc = new TelemetryAccumulator('b', 'fs', '/b');
    acc.addUnreadable([{ id: 'a\u202egnp.exe\u009b', why: 'cannot stat: EACCES' }]);
    expect(acc.result(NO_BACKLOG).error).toBe('"a\\u202egnp.exe\\u009b": cannot stat: EACCES');
  });

  it('says how completely each type was read: ok, partial with unreadable entries, or error', () => {
    const ok = new TelemetryAccumulator('a', 'fs', '/a');
    ok.add(finding('live'));
    const partial = new TelemetryAccumulator('b', 'fs', '/b');
    partial.add(finding('orphaned'));
    partial.addUnreadable([{ id: 'locked/', why: 'cannot open the directory: EACCES' }]);
    partial.addUnreadable([{ id: 'x.part', why: 'cannot stat: EACCES' }]);
    const failed = new TelemetryAccumulator('c', 's3', 's3://c/tmp/');
    failed.add(finding('orphaned'));
    failed.fail('ListObjectsV2 failed');
    const [r1, r2, r3] = [ok, partial, failed].map((acc) => acc.result(NO_BACKLOG));
    expect(r1).toMatchObject({ status: 'ok', error: null, unreadable: 0 });
    expect(r2).toMatchObject({ status: 'partial', error: '"locked/": cannot open the directory: EACCES (and 1 more)', unreadable: 2, orphaned: 1 });
    expect(r3).toMatchObject({ status: 'error', error: 'ListObjectsV2 failed', orphaned: 1 });
    expect(summarize([r1!, r2!, r3!])).toMatchObject({ errors: 2, unreadable: 2 });
  });

  it('is all zeros for no resource types', () => {
    expect(summarize([])).toEqual({ errors: 0, unreadable: 0, scanned: 0, live: 0, orphaned: 0, expired: 0, protected: 0, young: 0, unknown: 0, orphanBytes: 0, backlog: 0 });
  });
});
