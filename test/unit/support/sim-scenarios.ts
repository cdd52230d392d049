/** Scenarios for the simulator's tests, built from the same schema a scenario file goes through. */
import { normalizeScenario, scenarioSchema, type Scenario, type ScenarioInput } from '../../../src/sim/scenario.js';

type Patch = { [K in keyof ScenarioInput]?: ScenarioInput[K] extends object ? Partial<ScenarioInput[K]> : ScenarioInput[K] };

/**
 * A small world without faults: 5 services, 1,500 creations over 20 minutes (a tenth of them
 * chains of 3), references held 1–4 minutes and passed to 0.8 other services on average, and
 * 30 minutes to drain. Leases: ttl 30s, grace 2m, a reap run every minute, minAge 30s; the
 * caps and the breaker are opened (see the tests that keep reaper's defaults).
 */
export function scenario(patch: Patch = {}): Scenario {
  const base: ScenarioInput = {
    version: 1,
    duration: '20m',
    drain: '30m',
    services: 5,
    seed: 3,
    workload: { creations: 1500, lifetime: { dist: 'uniform', min: '1m', max: '4m' }, fanout: 0.8, chains: { fraction: 0.1, length: 3 } },
    strategies: { leases: { ttl: '30s', grace: '2m', sweepEvery: '1m', minAge: '30s', maxDeleteFraction: 1, breaker: { maxDrop: 1, minLiveKeys: 1 } } },
  };
  const merged: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const old = merged[k];
    merged[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && old && typeof old === 'object' ? { ...old, ...v } : v;
  }
  return normalizeScenario(scenarioSchema.parse(merged));
}

/** One service (0) holds 300 resources for 30 minutes, then is paused at 15m; its clock runs `skew` behind. */
export function pausedHolder(options: { clock: 'store' | 'holder'; skew: string; pause: string; seed?: number }): Scenario {
  return normalizeScenario(
    scenarioSchema.parse({
      version: 1,
      duration: '10m',
      drain: '40m',
      services: 3,
      seed: options.seed ?? 5,
      workload: { creations: 300, lifetime: { dist: 'fixed', value: '30m' } },
      clocks: { offsets: { '0': `-${options.skew}` } },
      faults: [{ kind: 'pause', service: 0, at: '15m', duration: options.pause }],
      compare: ['leases'],
      strategies: {
        leases: { ttl: '30s', interval: '10s', grace: '2m', sweepEvery: '1m', minAge: '30s', clock: options.clock, maxDeleteFraction: 1, breaker: { maxDrop: 1, minLiveKeys: 1 } },
      },
    }),
  );
}
