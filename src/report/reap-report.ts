/**
 * The report `reaper reap` returns and prints (its JSON document): per resource type what
 * was planned, what happened, and what waits for a later run. Built by run/reap.ts, read
 * by the renderers.
 */
import type { FindingFilter } from '../engine/filters.js';
import type { JobShard } from '../engine/shard.js';
import type { ResourceTelemetry, Summary } from './telemetry.js';

export interface ReapOutcomes {
  marked: number;
  deleted: number;
  lifted: number;
  failed: number;
  /** Tombstones left for a later run because their resource could not be judged now. */
  kept: number;
  bytesReclaimed: number;
}

export interface ResourceReap {
  name: string;
  backend: string;
  deleteMode: string | null;
  scanned: number;
  toMark: number;
  toSweep: number;
  toLift: number;
  samples: { mark: string[]; sweep: string[]; lift: string[] };
  lifts: Record<string, number>;
  outcomes: ReapOutcomes;
  telemetry: ResourceTelemetry | null;
  /** Why this type was refused (its backend could not be opened or its scan stopped): nothing of it was marked or deleted. */
  error: string | null;
  /** Tombstones in the ledger once the run is done, and when the first may be swept; null until then. */
  pending?: PendingTombstones | null;
}

export interface PendingTombstones {
  count: number;
  /** The oldest mark plus `grace`, by the store's clock (ISO 8601); null when none is pending. */
  earliestSweepAt: string | null;
}

export interface ReapReport {
  version: number;
  kind: 'reap';
  reaper: string;
  runId: string;
  execute: boolean;
  /** The job this run is a shard of (docs/scale-out.md); absent for a run that is neither. */
  job?: JobShard;
  /** The plan file saved (--plan-out) or applied (--plan); null when neither. */
  plan: string | null;
  /** True when `plan` is a saved plan this run applied; absent when it was written by this run. */
  planApplied?: boolean;
  summary: Summary;
  resources: ResourceReap[];
  outcomes: ReapOutcomes;
  sources: Record<string, number>;
  /** Liveness sources that failed (the breaker trips on them unless overridden; their keys are unknown). */
  sourceErrors: Record<string, string>;
  errors: string[];
  /** True when a stop request (a signal) ended the run before it finished applying: `outcomes` are what it did until then. */
  interrupted?: true;
  /** The run's filters, when it had any. */
  filters?: FindingFilter;
}
