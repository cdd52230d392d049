/**
 * reaper's public library entry: re-exports only. The CLI is built on these same
 * functions; nothing here runs on import.
 */

// Manifest
export { loadManifest, parseManifest, type Env, type ParseOptions } from './manifest/load.js';
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
export { runReap, type ReapOptions, type ReapOutcomes, type ReapReport, type ResourceReap } from './run/reap.js';
export { runRestore, type RestoreItem, type RestoreOptions } from './run/restore.js';
export type { AuditDocument, FindingOutput, LeaseTelemetry } from './report/document.js';
export type { ResourceTelemetry, Summary } from './report/telemetry.js';
export type { Finding, OrphanReason, Status } from './engine/types.js';

// State store
export { openStateStore, type OpenStateStoreOptions } from './state/open.js';
export { DEFAULT_LEASE_BOUNDS } from './state/types.js';
export type {
  AcquiredLease,
  JournalEntry,
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
export { jsonLog, type DaemonLog, type LogLevel, type LogStream } from './daemon/log.js';
export type { AcquiredLeaseJson, ErrorJson, LeaseJson } from './daemon/wire.js';

// Lease clients for services
export { LeaseKeeper, type KeeperStore, type KeptLease, type LeaseKeeperEvents, type LeaseKeeperOptions, type LostReason } from './client/lease-keeper.js';
export { HttpLeaseClient, type HttpLeaseClientOptions, type LeaseHandle } from './client/http-lease-client.js';

export { reaperVersion } from './version.js';
