/**
 * The JSON document of `reaper simulate`, and the labels its renderers share. It holds
 * no time stamps: the same scenario and seed give the same document, byte for byte.
 */
import type { StrategyResult } from './metrics.js';
import type { Scenario, StrategyName } from './scenario.js';
import type { Vary } from './vary.js';

export interface SimulationRun {
  /** The varied parameter's value (ms for durations), or null without --vary. */
  value: number | null;
  results: StrategyResult[];
}

export interface SimulationDocument {
  version: 1;
  kind: 'simulate';
  reaper: string;
  scenario: string;
  seed: number;
  vary: Vary | null;
  runs: SimulationRun[];
}

export function simulationDocument(scenario: Scenario, reaper: string, vary: Vary | null, runs: SimulationRun[]): SimulationDocument {
  return { version: 1, kind: 'simulate', reaper, scenario: scenario.name, seed: scenario.seed, vary, runs };
}

/** The measures every renderer shows, in order. */
export const MEASURES = [
  { key: 'premature', label: 'premature deletions', short: 'premature' },
  { key: 'leaked', label: 'leaked resources', short: 'leaked' },
  { key: 'leakedResourceSeconds', label: 'leaked resource-seconds', short: 'leaked res·s' },
  { key: 'latencyP50Seconds', label: 'reclamation latency p50 (s)', short: 'p50' },
  { key: 'latencyP99Seconds', label: 'reclamation latency p99 (s)', short: 'p99' },
  { key: 'messagesPerResource', label: 'messages per resource', short: 'msgs/res' },
  { key: 'storeOpsPerResource', label: 'store operations per resource', short: 'ops/res' },
  { key: 'peakStateSize', label: 'collector state (peak entries)', short: 'peak state' },
] as const satisfies readonly { key: keyof StrategyResult; label: string; short: string }[];

export type MeasureKey = (typeof MEASURES)[number]['key'];

/** A fixed color per strategy, so every chart reads the same. */
export const STRATEGY_COLORS: Readonly<Record<StrategyName, string>> = {
  refcount: '#d62728',
  'weighted-refcount': '#ff7f0e',
  leases: '#1f77b4',
  'mark-sweep': '#2ca02c',
  epochs: '#9467bd',
  hybrid: '#8c564b',
};

export function formatValue(value: number, unit: Vary['unit']): string {
  if (unit !== 'duration') return String(value);
  if (value % 3_600_000 === 0 && value > 0) return `${value / 3_600_000}h`;
  if (value % 60_000 === 0 && value > 0) return `${value / 60_000}m`;
  if (value % 1000 === 0) return `${value / 1000}s`;
  return `${value}ms`;
}

/** Latency for people: milliseconds under a second, then seconds, minutes, hours. */
export function formatLatency(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 120) return `${seconds.toFixed(1)}s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}
