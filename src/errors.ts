/**
 * The few error classes reaper throws on purpose. Each carries the exit code of the
 * published contract (docs/architecture.md, Contracts); the CLI maps them in one place (src/cli/main.ts).
 */

export const ExitCode = {
  ok: 0,
  gateFailed: 1,
  usage: 2,
  runtime: 3,
  safety: 4,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class ReaperError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad flags or arguments on the command line. */
export class UsageError extends ReaperError {
  readonly exitCode = ExitCode.usage;
}

export interface ManifestIssue {
  file: string;
  line: number | null;
  path: string;
  message: string;
}

/** A manifest that cannot be used: each issue names file, line and key. Nothing was contacted. */
export class ManifestError extends ReaperError {
  readonly exitCode = ExitCode.usage;
  constructor(readonly issues: readonly ManifestIssue[]) {
    super(issues.map(formatManifestIssue).join('\n'));
  }
}

export function formatManifestIssue(issue: ManifestIssue): string {
  const where = issue.line === null ? issue.file : `${issue.file}:${issue.line}`;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/** A backend, state store or liveness source failed (network, permissions, missing table…). */
export class BackendError extends ReaperError {
  readonly exitCode = ExitCode.runtime;
}

/** A safety rail refused to act: a cap, the registry-outage breaker, a held lock, a stale plan. */
export class SafetyError extends ReaperError {
  readonly exitCode = ExitCode.safety;
}

/**
 * A lease operation that lost: the lease expired or was released before the call; or,
 * for a holder (`deadline`), no renewal was confirmed in time, so by the holder's own
 * clock the store may already let it expire.
 */
/** Why a lease can no longer be renewed, as the store sees it (one definition: stores, client and HTTP API use it). */
export const LEASE_LOSS_REASONS = ['expired', 'released', 'not-found', 'not-holder'] as const;
export type LeaseLossReason = (typeof LEASE_LOSS_REASONS)[number];

/** Each reason a lease is lost, in words (the CLI's `lease` commands say it so too); `why` keeps the code. */
const LEASE_LOSS_MESSAGES: Record<LeaseLossReason | 'deadline', (leaseId: string) => string> = {
  expired: (id) => `lease ${id} has expired`,
  released: (id) => `lease ${id} was released`,
  'not-found': (id) => `no lease ${id} in the state store`,
  'not-holder': (id) => `lease ${id} is held by another holder`,
  deadline: (id) => `lease ${id} was not renewed in time (its deadline passed without a confirmed renewal)`,
};

export class LeaseLostError extends ReaperError {
  readonly exitCode = ExitCode.runtime;
  constructor(
    readonly leaseId: string,
    /** `deadline`: the holder's own clock gave up before a renewal was confirmed. */
    readonly why: LeaseLossReason | 'deadline',
  ) {
    super(LEASE_LOSS_MESSAGES[why](leaseId));
  }
}

/** The run was asked to stop (SIGINT/SIGTERM/SIGHUP) and stopped at a safe point. */
export class InterruptedError extends ReaperError {
  readonly exitCode = ExitCode.interrupted;
}

/** Strip passwords and tokens from connection URLs before they reach any output. */
export function redact(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*:)([^@\s/]*)@/gi, '$1***@')
    .replace(/(password|secret|token)=([^&\s]+)/gi, '$1=***');
}
