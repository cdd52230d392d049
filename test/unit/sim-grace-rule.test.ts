import { describe, expect, it } from 'vitest';
import { DEFAULT_GRACE_BUDGET, graceBelowFloor, graceFloorMs, graceShortfalls, leaseCadences, requiredGraceMs } from '../../src/engine/grace-rule.js';

describe('the grace rule', () => {
  it('asks for skew + the longest pause + (lost renewals + 1) jittered intervals', () => {
    const budget = { maxPauseMs: 60_000, maxSkewMs: 5_000, lostRenewals: 2, jitter: 0.1 };
    expect(requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 10_000 }, budget)).toBe(5_000 + 60_000 + 3 * 11_000);
    expect(requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 10_000 }, { ...budget, maxSkewMs: 0, maxPauseMs: 0, lostRenewals: 0, jitter: 0 })).toBe(10_000);
  });

  it('grows with every term', () => {
    const base = requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 10_000 });
    expect(requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 20_000 })).toBeGreaterThan(base);
    expect(requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 10_000 }, { ...DEFAULT_GRACE_BUDGET, maxPauseMs: 120_000 })).toBe(base + 60_000);
    expect(requiredGraceMs({ ttlMs: 30_000, renewalIntervalMs: 10_000 }, { ...DEFAULT_GRACE_BUDGET, maxSkewMs: 6_000 })).toBe(base + 1_000);
  });

  it('estimates a cadence per ttl from the time since the last renewals, between ttl/3 and the ttl', () => {
    const now = 1_000_000;
    const leases = [
      // ttl 30s, renewed 2s, 4s, 6s ago: median 4s → 8s, but never under ttl/3 = 10s
      { ttlMs: 30_000, renewedAt: now - 2_000 },
      { ttlMs: 30_000, renewedAt: now - 4_000 },
      { ttlMs: 30_000, renewedAt: now - 6_000 },
      // ttl 60s, renewed 25s and 40s ago: median 25s → 50s
      { ttlMs: 60_000, renewedAt: now - 25_000 },
      { ttlMs: 60_000, renewedAt: now - 40_000 },
      // ttl 9s, renewed 8s ago: twice is 16s, capped at the ttl
      { ttlMs: 9_000, renewedAt: now - 8_000 },
    ];
    expect(leaseCadences(leases, now)).toEqual([
      { ttlMs: 9_000, renewalIntervalMs: 9_000, leases: 1 },
      { ttlMs: 30_000, renewalIntervalMs: 10_000, leases: 3 },
      { ttlMs: 60_000, renewalIntervalMs: 50_000, leases: 2 },
    ]);
  });

  it('names the resource types whose grace is short for the most demanding cadence', () => {
    const cadences = [
      { ttlMs: 30_000, renewalIntervalMs: 10_000 },
      { ttlMs: 60_000, renewalIntervalMs: 50_000 },
    ];
    const required = requiredGraceMs(cadences[1]!);
    const out = graceShortfalls(
      [
        { name: 'uploads', graceMs: 60_000 },
        { name: 'scratch', graceMs: 3_600_000 },
        { name: 'edge', graceMs: required },
      ],
      cadences,
    );
    expect(out).toEqual([{ resource: 'uploads', graceMs: 60_000, requiredMs: required, cadence: cadences[1] }]);
    expect(graceShortfalls([{ name: 'uploads', graceMs: 1 }], [])).toEqual([]);
  });

  it('holds a type to skew + pause where no cadence is known, a grace of 0s included', () => {
    expect(graceFloorMs()).toBe(65_000);
    expect(graceFloorMs({ ...DEFAULT_GRACE_BUDGET, maxPauseMs: 0 })).toBe(5_000);
    expect(
      graceBelowFloor([
        { name: 'zero', graceMs: 0 },
        { name: 'edge', graceMs: 65_000 },
        { name: 'hour', graceMs: 3_600_000 },
      ]),
    ).toEqual([{ resource: 'zero', graceMs: 0, requiredMs: 65_000 }]);
  });
});
