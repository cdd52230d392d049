/**
 * The simulator must reproduce what is known about each strategy (docs/strategies.md).
 * Each test states the result and checks it on a seeded run: cause (the faults the run
 * recorded) and effect (premature deletions, leaks, latency).
 */
import { describe, expect, it } from 'vitest';
import { runStrategy } from '../../src/sim/run.js';
import { STRATEGY_NAMES, type Scenario } from '../../src/sim/scenario.js';
import type { World } from '../../src/sim/world.js';
import { pausedHolder, scenario } from './support/sim-scenarios.js';

/** Resources in the groups a fault touched. */
function members(world: World, groups: ReadonlySet<number> | undefined): number {
  let n = 0;
  for (const g of groups ?? []) n += world.table.size(g);
  return n;
}

const run = (s: Scenario, name: Parameters<typeof runStrategy>[1]) => runStrategy(s, name);

describe('without faults', () => {
  const s = scenario();
  for (const name of STRATEGY_NAMES) {
    it(`${name} deletes nothing early and leaks nothing`, () => {
      const { result } = run(s, name);
      expect(result.resources).toBeGreaterThan(1500);
      expect(result.premature).toBe(0);
      expect(result.leaked).toBe(0);
      expect(result.reclaimed).toBe(result.resources);
    });
  }
});

describe('cycles', () => {
  const s = scenario({ workload: { chains: undefined, cycles: { fraction: 0.2, length: 3 } } });
  for (const name of ['refcount', 'weighted-refcount'] as const) {
    it(`${name} leaks every resource of every unreachable cycle, and nothing else`, () => {
      const { result, world } = run(s, name);
      let inCycles = 0;
      for (let g = 0; g < world.table.groups; g++) if (world.table.shape(g) === 'cycle') inCycles += world.table.size(g);
      expect(inCycles).toBeGreaterThan(500);
      expect(result.leaked).toBe(inCycles);
      expect(result.premature).toBe(0);
    });
  }
  for (const name of ['mark-sweep', 'hybrid', 'leases', 'epochs'] as const) {
    it(`${name} reclaims the cycles`, () => {
      const { result } = run(s, name);
      expect(result.leaked).toBe(0);
      expect(result.premature).toBe(0);
    });
  }
});

describe('reference counting under message faults', () => {
  it('leaks every group that lost a decrement (and the backup trace of the hybrid reclaims them)', () => {
    const s = scenario({ network: { loss: 0.2, kinds: ['decrement'] } });
    for (const name of ['refcount', 'weighted-refcount'] as const) {
      const { result, world } = run(s, name);
      const hit = world.metrics.lostGroups.get('decrement');
      expect(hit?.size).toBeGreaterThan(100);
      expect(result.leaked).toBe(members(world, hit));
      expect(result.premature).toBe(0);
    }
    const hybrid = run(s, 'hybrid').result;
    expect(hybrid.leaked).toBe(0);
    expect(hybrid.premature).toBe(0);
  });

  it('deletes early on a lost increment; weighted counting sends no increment to lose', () => {
    const s = scenario({ network: { loss: 0.3, kinds: ['increment'] } });
    const { result, world } = run(s, 'refcount');
    expect(result.premature).toBeGreaterThan(0);
    const lost = world.metrics.lostGroups.get('increment')!;
    for (const g of world.metrics.prematureGroups) expect(lost.has(g)).toBe(true);
    const weighted = run(s, 'weighted-refcount');
    expect(weighted.world.metrics.lostGroups.get('increment')).toBeUndefined();
    expect(weighted.result.premature).toBe(0);
  });

  it('deletes early on a duplicated decrement, weighted or not', () => {
    const s = scenario({ network: { duplicate: 0.3, kinds: ['decrement'] } });
    for (const name of ['refcount', 'weighted-refcount'] as const) {
      const { result, world } = run(s, name);
      expect(result.premature).toBeGreaterThan(0);
      const dup = world.metrics.duplicatedGroups.get('decrement')!;
      for (const g of world.metrics.prematureGroups) expect(dup.has(g)).toBe(true);
    }
  });

  it('deletes early when reordering lets a decrement overtake its increment; weighted counting does not', () => {
    const s = scenario({ network: { jitter: '2s' } });
    expect(run(s, 'refcount').result.premature).toBeGreaterThan(0);
    expect(run(s, 'weighted-refcount').result.premature).toBe(0);
  });
});

describe('leases: grace against skew, pauses and the heartbeat interval', () => {
  // ttl 30s, renewals every 10s (jittered to at most 11s), grace 2m, a run every minute.
  const premature = (o: Parameters<typeof pausedHolder>[0]) => runStrategy(pausedHolder(o), 'leases').result.premature;

  it('never deletes early while skew + the longest pause + one heartbeat interval stay below the grace', () => {
    for (const clock of ['store', 'holder'] as const) {
      for (const [skew, pause] of [
        ['0s', '1s'],
        ['0s', '60s'],
        ['0s', '105s'],
        ['40s', '60s'],
        ['90s', '1s'],
        ['105s', '1s'],
      ]) {
        expect(premature({ clock, skew: skew!, pause: pause! }), `${clock} skew ${skew} pause ${pause}`).toBe(0);
      }
    }
  });

  it('deletes early once skew + pause exceed the grace by more than a ttl and two runs: every resource of the paused holder', () => {
    // 120s grace + 30s ttl + 2 × 60s between runs = 270s.
    for (const o of [
      { clock: 'store', skew: '0s', pause: '280s' },
      { clock: 'holder', skew: '0s', pause: '280s' },
      { clock: 'holder', skew: '90s', pause: '200s' },
    ] as const) {
      const { result, world } = runStrategy(pausedHolder(o), 'leases');
      let held = 0;
      for (let g = 0; g < world.table.groups; g++) if (world.table.creatorOf(g) === 0) held++;
      expect(held).toBeGreaterThan(80);
      expect(result.premature, JSON.stringify(o)).toBe(held);
    }
  });

  it('with times stamped by the holder, skew alone deletes early once skew + one interval pass the grace (skew + pause < grace is not enough)', () => {
    // 112s + 0s < 120s, but 112s + an interval of up to 11s > 120s: the renewals after the mark carry stamps from before it.
    for (const seed of [1, 2, 3]) expect(premature({ clock: 'holder', skew: '112s', pause: '1ms', seed })).toBeGreaterThan(0);
  });

  it("with the state store's clock (reaper's design), skew does not matter at all", () => {
    expect(premature({ clock: 'store', skew: '112s', pause: '1ms' })).toBe(0);
    expect(premature({ clock: 'store', skew: '10m', pause: '150s' })).toBe(0);
  });
});

describe('leases: reclamation latency', () => {
  // ttl 30s, heartbeat 10s (±10%), grace 2m, a run every minute.
  it('is about ttl + grace + the time between runs when holders let leases run out', () => {
    const { result } = run(scenario(), 'leases');
    // expiry comes ttl − up to one interval after the drop; the mark up to one run later; the delete a grace after the mark.
    expect(result.latencyP50Seconds!).toBeGreaterThan(30 - 11 + 120);
    expect(result.latencyP50Seconds!).toBeLessThan(30 + 120 + 60);
    expect(result.latencyP99Seconds!).toBeLessThanOrEqual(30 + 120 + 60);
  });

  it('is about grace + the time between runs when holders release on drop', () => {
    const { result } = run(scenario({ strategies: { leases: { ttl: '30s', grace: '2m', sweepEvery: '1m', minAge: '30s', maxDeleteFraction: 1, breaker: { maxDrop: 1, minLiveKeys: 1 }, releaseOnDrop: true } } }), 'leases');
    expect(result.latencyP50Seconds!).toBeGreaterThan(120);
    expect(result.latencyP99Seconds!).toBeLessThanOrEqual(120 + 60 + 1);
  });
});

describe("reaper's rails in the loop", () => {
  it('the default breaker (maxDrop 0.5) refuses the collapse of live keys at the end of the workload, and what is left leaks', () => {
    const s = scenario({ strategies: { leases: { ttl: '30s', grace: '2m', sweepEvery: '1m', minAge: '30s', maxDeleteFraction: 1 } } });
    const { result } = run(s, 'leases');
    expect(result.extras['runs refused (breaker)']).toBeGreaterThan(0);
    expect(result.leaked).toBeGreaterThan(0);
    expect(result.premature).toBe(0);
  });

  it('a reap run killed mid-sweep is finished by the next one: nothing deleted twice, early, or left behind', () => {
    const s = scenario({ faults: [{ kind: 'collector-kill', every: '3m' }] });
    const { result } = run(s, 'leases');
    expect(result.extras['runs killed mid-sweep']).toBeGreaterThan(3);
    expect(result.extras['double deletes']).toBeUndefined();
    expect(result.premature).toBe(0);
    expect(result.leaked).toBe(0);
  });

  it('epochs lose what sat in an in-memory limbo list when the collector dies, and lose nothing with a persisted one', () => {
    const faults = [{ kind: 'collector-kill' as const, every: '3m' }];
    const lost = run(scenario({ faults }), 'epochs').result;
    expect(lost.extras['limbo entries lost']).toBeGreaterThan(0);
    expect(lost.leaked).toBeGreaterThan(0);
    const kept = run(scenario({ faults, strategies: { epochs: { persistLimbo: true } } }), 'epochs').result;
    expect(kept.leaked).toBe(0);
    expect(kept.premature).toBe(0);
  });
});

describe('crashes', () => {
  it('a crash that loses the holder state leaks under reference counting and epochs, never under leases or tracing', () => {
    const s = scenario({ faults: [{ kind: 'crash', every: '10m', downtime: '30s', loseState: true }] });
    expect(run(s, 'refcount').result.leaked).toBeGreaterThan(0);
    expect(run(s, 'epochs').result.leaked).toBeGreaterThan(0);
    for (const name of ['leases', 'mark-sweep', 'hybrid'] as const) {
      const { result } = run(s, name);
      expect(result.leaked, name).toBe(0);
      expect(result.premature, name).toBe(0);
    }
  });

  it('a holder down longer than ttl + grace + two runs loses its resources under leases, but not under counting', () => {
    const s = scenario({ faults: [{ kind: 'crash', service: 1, at: '10m', downtime: '6m', loseState: false }] });
    expect(run(s, 'leases').result.premature).toBeGreaterThan(0);
    expect(run(s, 'refcount').result.premature).toBe(0);
    expect(run(s, 'mark-sweep').result.premature).toBe(0);
  });
});

describe('partitions, registry outages and drift', () => {
  it('a partition from the store is a pause to leases: harmless below ttl + grace, fatal far above it', () => {
    const cut = (duration: string) => scenario({ faults: [{ kind: 'partition', service: 2, at: '10m', duration }] });
    expect(run(cut('90s'), 'leases').result.premature).toBe(0);
    expect(run(cut('6m'), 'leases').result.premature).toBeGreaterThan(0);
    // Counting loses the messages the partition eats: decrements (leaks) and increments (early frees).
    const rc = run(cut('6m'), 'refcount');
    expect(rc.world.metrics.lostGroups.size).toBeGreaterThan(0);
    expect(rc.result.leaked + rc.result.premature).toBeGreaterThan(0);
  });

  it('a registry outage stops reap runs and loses the renewals sent meanwhile, yet deletes nothing early', () => {
    const s = scenario({ faults: [{ kind: 'registry-outage', at: '10m', duration: '3m' }] });
    const { result } = run(s, 'leases');
    expect(result.extras['runs failed (store down)']).toBe(3);
    expect(result.extras['lost renew']).toBeGreaterThan(0);
    expect(result.premature).toBe(0);
    expect(result.leaked).toBe(0);
  });

  it('with reaper\'s default breaker, the first run after an outage longer than the ttl is refused, not a mass delete', () => {
    const s = scenario({ faults: [{ kind: 'registry-outage', at: '10m', duration: '3m' }], strategies: { leases: { ttl: '30s', grace: '0s', sweepEvery: '1m', minAge: '30s', maxDeleteFraction: 1 } } });
    const { result } = run(s, 'leases');
    expect(result.extras['runs refused (breaker)']).toBeGreaterThan(0);
    expect(result.premature).toBe(0);
  });

  it('clock drift stretches heartbeats: a holder whose clock runs slow enough lets leases lapse between renewals', () => {
    // Interval 25s against a ttl of 30s: the slowest clock drawn here runs at 0.71 and renews every ~35s, past the
    // ttl, leaving ~5s windows where the key looks dead; with no grace, runs 5s apart catch some of them twice.
    const tight = { ttl: '30s', interval: '25s', grace: '0s', sweepEvery: '5s', minAge: '30s', maxDeleteFraction: 1, breaker: { maxDrop: 1, minLiveKeys: 1 } };
    expect(run(scenario({ strategies: { leases: tight } }), 'leases').result.premature).toBe(0);
    expect(run(scenario({ clocks: { drift: 0.45 }, strategies: { leases: tight } }), 'leases').result.premature).toBeGreaterThan(0);
  });
});

describe('determinism', () => {
  it('the same scenario and seed give the same results; another seed other ones', () => {
    const s = scenario({ network: { loss: 0.05, jitter: '1s' }, faults: [{ kind: 'pause', every: '5m', duration: '20s' }] });
    for (const name of STRATEGY_NAMES) expect(JSON.stringify(run(s, name).result)).toBe(JSON.stringify(run(s, name).result));
    expect(JSON.stringify(run({ ...s, seed: 4 }, 'refcount').result)).not.toBe(JSON.stringify(run(s, 'refcount').result));
  });
});
