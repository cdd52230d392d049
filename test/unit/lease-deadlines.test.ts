/** The holder's clock on its leases (src/lease/deadlines.ts): each lease lost once, at its own moment, whatever was renewed or forgotten since. */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LeaseDeadlines } from '../../src/lease/deadlines.js';

describe('LeaseDeadlines', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  /** Fake timers, and the monotonic clock (node:perf_hooks, which fake timers leave alone) moved with them. */
  function fakeClock(): (ms: number) => void {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let now = 1_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    return (ms) => {
      for (let i = 0; i < ms; i++) {
        now += 1;
        vi.advanceTimersByTime(1);
      }
    };
  }

  it('reports each lease once when its moment passes: a renewal moves it later, forget removes it', () => {
    const advance = fakeClock();
    const passed: string[] = [];
    const deadlines = new LeaseDeadlines<string>(100, (key) => passed.push(key));
    const t0 = performance.now();
    deadlines.confirm('a', t0, 1_000); // until t0 + 900
    deadlines.confirm('b', t0, 2_000); // until t0 + 1,900
    deadlines.confirm('c', t0, 1_500); // until t0 + 1,400
    deadlines.confirm('a', t0 + 500, 1_000); // renewed: until t0 + 1,400
    deadlines.forget('c');
    advance(1_000);
    expect(passed).toEqual([]);
    advance(400);
    expect(passed).toEqual(['a']);
    advance(500);
    expect(passed).toEqual(['a', 'b']);
    advance(5_000);
    deadlines.check();
    expect(passed).toEqual(['a', 'b']);
    deadlines.stop();
  });

  it('confirms tens of thousands of leases, twice over, in well under a second (a rescan per confirmation took tens of seconds)', () => {
    const deadlines = new LeaseDeadlines<string>(1_000, () => undefined);
    const started = performance.now();
    for (let round = 0; round < 2; round++) {
      const sentAt = performance.now();
      for (let i = 0; i < 20_000; i++) deadlines.confirm(`k${i}`, sentAt, 30_000);
    }
    expect(performance.now() - started).toBeLessThan(1_000);
    deadlines.stop();
  });
});
