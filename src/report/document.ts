/** The JSON document `reaper audit` prints (docs/architecture.md, Contracts), and the finding shape of NDJSON output. */
import type { JobShard } from '../engine/shard.js';
import type { FindingsDiff, GateFinding } from '../engine/baseline.js';
import type { Finding } from '../engine/types.js';
import type { LeaseStats } from '../state/types.js';
import type { ResourceTelemetry, Summary } from './telemetry.js';

export interface FindingOutput {
  resource: string;
  backend: string;
  id: string;
  status: Finding['status'];
  reason: string | null;
  owner: string | null;
  ageSeconds: number | null;
  bytes: number | null;
}

export interface LeaseTelemetry {
  active: number;
  expired: number;
  renewals: number;
  renewalFailures: number;
  renewalFailureRate: number;
  windowSeconds: number;
}

export interface AuditDocument {
  /** Shape version of this document (REPORT_SCHEMA_VERSION). */
  version: number;
  kind: 'audit';
  reaper: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  manifest: string;
  state: string;
  /** The job this run is a shard of (`--job`, `--shard`; docs/scale-out.md); absent for a run that is neither. */
  job?: JobShard;
  /** Every resource type was read whole and every liveness source answered (see `resources[].status`, `sourceErrors`). */
  complete: boolean;
  summary: Summary;
  resources: ResourceTelemetry[];
  leases: LeaseTelemetry;
  /** Live-key count per liveness source. */
  sources: Record<string, number>;
  /** Liveness sources that failed, with the error: the keys only they could vouch for were judged `unknown`. */
  sourceErrors: Record<string, string>;
  /** Non-live findings, at most `maxFindings` of them (all of them go to --findings). */
  findings: FindingOutput[];
  findingsTotal: number;
  findingsTruncated: boolean;
}

export function findingOutput(f: Finding): FindingOutput {
  return {
    resource: f.resource,
    backend: f.backend,
    id: f.id,
    status: f.status,
    reason: f.reason,
    owner: f.owner,
    ageSeconds: f.ageSeconds === null ? null : Math.round(f.ageSeconds),
    bytes: f.bytes,
  };
}

export function leaseTelemetry(stats: LeaseStats, windowMs: number): LeaseTelemetry {
  return {
    active: stats.active,
    expired: stats.expired,
    renewals: stats.renewals,
    renewalFailures: stats.renewalFailures,
    renewalFailureRate: Math.round(stats.renewalFailureRate * 10_000) / 10_000,
    windowSeconds: windowMs / 1000,
  };
}

/** A finding of a comparison: resolved ones have what the baseline file or the earlier run said of them (a bare set of keys: resource, id and status only). */
export type ComparedFinding = GateFinding & Partial<Pick<FindingOutput, 'backend' | 'reason' | 'owner' | 'ageSeconds'>>;

/** What changed against a baseline (`--baseline FILE`) or an earlier run (`--since RUN`): the reports lead with it. */
export interface FindingsComparison {
  /** What was compared with, for headings: `baseline b.json`, `run 20261122T021938Z-f02811`. */
  against: string;
  diff: FindingsDiff<ComparedFinding>;
}
