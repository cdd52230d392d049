import { describe, expect, it } from 'vitest';
import { leaseTable } from '../../src/report/table.js';
import type { Lease } from '../../src/state/types.js';

const T0 = Date.UTC(2026, 11, 7, 5, 0, 0);

const lease = (leaseId: string, expiresAt: number, releasedAt: number | null = null): Lease => ({
  leaseId,
  key: `session:${leaseId}`,
  holder: 'web-1',
  generation: 1,
  ttlMs: 1_000,
  acquiredAt: expiresAt - 1_000,
  renewedAt: expiresAt - 1_000,
  expiresAt,
  releasedAt,
});

describe('leaseTable', () => {
  it('tells a held lease from one that ran out (by the store clock it is given) and one released', () => {
    const leases = [lease('held', T0 + 1), lease('ranout', T0 - 1_000), lease('atexpiry', T0), lease('released', T0 - 5_000, T0 - 6_000), lease('released-later', T0 + 9_000, T0 - 1)];
    const table = leaseTable(leases, T0, { width: 200 });
    const state = (id: string) => table.split('\n').find((line) => line.includes(` ${id} `))!.split('│')[6]!.trim();
    expect(state('held')).toBe('held');
    expect(state('ranout')).toBe('expired');
    expect(state('atexpiry')).toBe('expired');
    expect(state('released')).toBe('released');
    expect(state('released-later')).toBe('released');
  });
});
