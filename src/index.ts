/**
 * reaper's public library entry: re-exports only. The CLI is built on these same
 * functions; nothing here runs on import.
 */

// Manifest
export { loadManifest, parseManifest, type ParseOptions } from './manifest/load.js';
export type { Env } from './manifest/yaml.js';
export { parseDuration, formatDuration } from './manifest/duration.js';
export type {
  BackendKind,
  BreakerSpec,
  ConnectionSpec,
  LivenessSourceSpec,
  Location,
  Manifest,
  OwnerRule,
  ProtectRule,
  ResourceSpec,
} from './manifest/types.js';

// Runs
export { runAudit, type AuditOptions, type AuditProgress } from './run/audit.js';
export { runReap, type ReapOptions } from './run/reap.js';
export type { ReapOutcomes, ReapReport, ResourceReap } from './report/reap-report.js';
export { runRestore, type RestoreItem, type RestoreOptions } from './run/restore.js';
export type { AuditDocument, FindingOutput, LeaseTelemetry } from './report/document.js';
export type { ResourceTelemetry, Summary } from './report/telemetry.js';
export type { Finding, OrphanReason, Status } from './engine/types.js';

// The grace rule, and the strategy simulator (docs/strategies.md)
export { DEFAULT_GRACE_BUDGET, graceShortfalls, leaseCadences, requiredGraceMs, type GraceBudget, type GraceShortfall, type LeaseCadence } from './engine/grace-rule.js';
export { parseScenario, type Scenario, type StrategyName } from './sim/scenario.js';
export { runScenario } from './sim/run.js';
export type { StrategyResult } from './sim/metrics.js';

// State store
export { openStateStore, type OpenStateStoreOptions } from './state/open.js';
export { DEFAULT_LEASE_BOUNDS } from './state/types.js';
export type {
  AcquiredLease,
  JournalEntry,
  SweepBatch,
  BatchResult,
  BatchOutcome,
  Lease,
  LeaseBounds,
  LeaseStats,
  LeaseStore,
  RenewOutcome,
  RunRecord,
  StateStore,
  StoreDialect,
  Tombstone,
} from './state/types.js';

// Errors
export {
  BackendError,
  ExitCode,
  InterruptedError,
  LeaseLostError,
  ManifestError,
  ReaperError,
  SafetyError,
  UsageError,
  formatManifestIssue,
  redact,
  type ManifestIssue,
} from './errors.js';

// Lease daemon
export { startDaemon, type Daemon, type DaemonOptions, type DaemonStore, type DaemonTlsOptions } from './daemon/daemon.js';
export { jsonLog, type DaemonLog, type LogLevel, type LogStream } from './util/json-log.js';
export type { AcquiredLeaseJson, ErrorJson, LeaseJson } from './lease/wire.js';

// Lease clients for services
export { LeaseKeeper, type KeeperStore, type KeptLease, type LeaseKeeperEvents, type LeaseKeeperOptions, type LostReason } from './client/lease-keeper.js';
export { HttpLeaseClient, type HttpLeaseClientOptions, type LeaseHandle } from './client/http-lease-client.js';

export { reaperVersion } from './version.js';
