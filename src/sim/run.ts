/**
 * Run a scenario through the strategies it compares, each in its own World over the
 * same workload and fault trace, and collect one result per strategy. Pure computation:
 * the same scenario and seed give the same document, byte for byte.
 */
import type { StrategyResult } from './metrics.js';
import type { Scenario, StrategyName } from './scenario.js';
import type { StrategyFactory } from './strategy.js';
import { EpochStrategy } from './strategies/epochs.js';
import { HybridStrategy } from './strategies/hybrid.js';
import { LeasesStrategy } from './strategies/leases.js';
import { MarkSweepStrategy } from './strategies/mark-sweep.js';
import { RefcountStrategy } from './strategies/refcount.js';
import { WeightedRefcountStrategy } from './strategies/weighted-refcount.js';
import { World } from './world.js';

export const STRATEGIES: Readonly<Record<StrategyName, StrategyFactory>> = {
  refcount: (ctx) => new RefcountStrategy(ctx),
  'weighted-refcount': (ctx) => new WeightedRefcountStrategy(ctx),
  leases: (ctx) => new LeasesStrategy(ctx),
  'mark-sweep': (ctx) => new MarkSweepStrategy(ctx),
  epochs: (ctx) => new EpochStrategy(ctx),
  hybrid: (ctx) => new HybridStrategy(ctx),
};

/** Run one strategy; returns the world too (tests read its fault log). */
export function runStrategy(scenario: Scenario, name: StrategyName): { result: StrategyResult; world: World } {
  const world = new World(scenario, STRATEGIES[name]);
  world.run();
  return { result: world.metrics.result(name, world.table, world.endMs), world };
}

export function runScenario(scenario: Scenario, only?: readonly StrategyName[]): StrategyResult[] {
  const names = scenario.compare.filter((n) => !only || only.includes(n));
  return names.map((name) => runStrategy(scenario, name).result);
}
