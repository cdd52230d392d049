/**
 * The manifest as the rest of reaper sees it: validated, interpolated, defaults applied,
 * durations in milliseconds, relative paths resolved, and frozen. Nothing downstream
 * reads the YAML or the environment again.
 */
import type { ManifestIssue } from '../errors.js';

export type BackendKind = 's3' | 'postgres' | 'mysql' | 'fs' | 'command' | 'http';

/** The kinds whose resources a handler serves over the resource protocol (docs/resource-protocol.md). */
export type HandlerKind = 'command' | 'http';

export interface S3ConnectionSpec {
  kind: 's3';
  name: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  profile?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  maxAttempts?: number;
  concurrency?: number;
}

export interface SqlConnectionSpec {
  kind: 'postgres' | 'mysql';
  name: string;
  url: string;
  poolSize?: number;
  statementTimeoutMs?: number;
}

export type ConnectionSpec = S3ConnectionSpec | SqlConnectionSpec;

export type LivenessSourceSpec =
  | { kind: 'leases' }
  | { kind: 'sql'; connection: string; query: string }
  | { kind: 'static'; keys: readonly string[] };

export interface S3Location {
  kind: 's3';
  connection: string;
  bucket: string;
  prefix: string;
  /** How deletes are sent (see the schema); absent means `auto`. */
  deleteMode?: 'auto' | 'batch-if-match' | 'per-object-if-match';
  /** Read the newest S3 Inventory report under bucket/prefix instead of listing (docs/scale-out.md); absent to list. */
  inventory?: { bucket: string; prefix: string };
  /** Reap only while the bucket's versioning is enabled; absent otherwise. */
  requireVersioning?: boolean;
}

export interface SqlLocation {
  kind: 'postgres' | 'mysql';
  connection: string;
  /** Schema-qualified or bare table name, already validated as identifiers. */
  table: string;
  id: string;
  createdAt: string;
  where?: string;
  version?: string;
}

export interface FsLocation {
  kind: 'fs';
  /** Absolute path of the directory (resolved against the manifest's directory). */
  path: string;
  glob?: string;
  /** The scope may be a filesystem root (the manifest said so); absent otherwise. */
  allowRoot?: boolean;
}

/** How a handler is held to the protocol: what it declares and the bounds on what it may send. */
export interface HandlerPolicy {
  /** The handler checks each fingerprint before it deletes (the rule); false when it cannot. */
  conditional: boolean;
  /** The manifest opts this type into reaping with a handler that is not conditional. */
  allowUnconditional: boolean;
  /** Each call's time limit; a command still running then is killed. */
  timeoutMs: number;
  /** Longest line of handler output accepted, in bytes. */
  maxLineBytes: number;
  /** Most bytes of handler output accepted in one call. */
  maxOutputBytes: number;
}

/** A command line: run by /bin/sh -c (a string in the manifest) or exec'd as an argv (a list). */
export type CommandLine = { shell: string } | { argv: readonly string[] };

export interface CommandLocation extends HandlerPolicy {
  kind: 'command';
  list: CommandLine;
  delete: CommandLine;
  mark?: CommandLine;
  unmark?: CommandLine;
  restore?: CommandLine;
  /** The directory commands run in (the manifest's). */
  cwd: string;
  env: Readonly<Record<string, string>>;
}

export interface HttpLocation extends HandlerPolicy {
  kind: 'http';
  /** Base URL; operations are POSTed to URL/list, URL/delete, … */
  url: string;
  token?: { file: string } | { env: string };
  /** PEM file of the CA that signs the handler's certificate (added to the system's). */
  ca?: string;
  /** The handler serves mark/unmark (a visible marker) and restore. */
  mark: boolean;
  restore: boolean;
}

export type Location = S3Location | SqlLocation | FsLocation | CommandLocation | HttpLocation;

export type OwnerExtractor =
  | { from: 'metadata'; name: string }
  | { from: 'tag'; name: string }
  | { from: 'keyPattern'; pattern: string }
  | { from: 'pathPattern'; pattern: string }
  | { from: 'column'; name: string }
  | { from: 'attribute'; name: string };

export interface OwnerRule {
  extractor: OwnerExtractor;
  /** Template turning the extracted value into an owner key (`session:{value}`). */
  keyTemplate?: string;
  /** The extracted value is the id of a resource of this type. */
  ref?: string;
}

export type ProtectRule =
  | { kind: 'tag'; match: Readonly<Record<string, string>> }
  | { kind: 'metadata'; match: Readonly<Record<string, string>> }
  | { kind: 'keyPattern'; pattern: string }
  | { kind: 'pathPattern'; pattern: string }
  | { kind: 'where'; sql: string }
  | { kind: 'attribute'; match: Readonly<Record<string, string>> };

export type MarkSpec = { kind: 'tag'; tag: string } | { kind: 'column'; column: string };

export interface ResourceSpec {
  name: string;
  location: Location;
  owners: readonly OwnerRule[];
  ttlMs?: number;
  minAgeMs: number;
  graceMs: number;
  batchSize: number;
  maxDeletesPerRun: number;
  maxDeleteFraction: number;
  onExpired: 'report' | 'reap';
  protect: readonly ProtectRule[];
  ageFrom: 'mtime' | 'ctime' | 'atime';
  mark?: MarkSpec;
  archive?: { table: string };
  quarantine?: string;
  retainMs?: number;
  /** `shard.splitPoints` as text, ascending in the backend's key order (docs/scale-out.md); absent when none. */
  splitPoints?: readonly string[];
  /** 1-based line of the resource in the manifest, for messages. */
  line: number | null;
}

export interface BreakerSpec {
  maxDrop: number;
  minLiveKeys: number;
}

export interface Manifest {
  /** Absolute path of the manifest file ("<inline>" when built in code). */
  file: string;
  version: 1;
  state: string;
  connections: Readonly<Record<string, ConnectionSpec>>;
  owners: readonly LivenessSourceSpec[];
  resources: readonly ResourceSpec[];
  breaker: BreakerSpec;
  /** sha256 of the manifest's text, recorded with each run. */
  digest: string;
  /** `${VAR}`s a lazy load left unset; each is an error where its value is used (manifest/variables.ts). */
  unresolved?: readonly UnresolvedVariable[];
}

/** An unset `${VAR}`: the key path of the value holding it, and the error to report where it is used. */
export interface UnresolvedVariable {
  keyPath: readonly (string | number)[];
  issue: ManifestIssue;
}

export const BUILTIN_DEFAULTS = {
  minAgeMs: 10 * 60_000,
  graceMs: 60 * 60_000,
  batchSize: 500,
  maxDeletesPerRun: 10_000,
  maxDeleteFraction: 0.5,
  onExpired: 'report',
  breaker: { maxDrop: 0.5, minLiveKeys: 1 },
  state: 'sqlite:.reaper/state.db',
} as const;
