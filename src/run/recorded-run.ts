/**
 * A run as the state store's history records it, shared by audit, reap and restore: started
 * (and kept alive by its heartbeat while the context is open), then finished with what the
 * work says, or ended by an error as `refused` (a safety rail), `interrupted` (a stop
 * request) or `failed`, with the counts the work had reached (`RunProgress`), so a run cut
 * short still shows what it did. Only the end is written once.
 */
import type { JobShard } from '../engine/shard.js';
import { InterruptedError, ReaperError, redact, SafetyError } from '../errors.js';
import type { RunKind, RunRecord, RunStatus } from '../state/types.js';
import type { RunContext } from './context.js';
import { onHardStop } from './hard-stop.js';

/** The error a run ended at once by a second signal is recorded with. */
export const HARD_STOP_ERROR = 'stopped at once by a second signal; the batch in progress was cut short and the next run resumes it';

export interface RunEnd {
  status: RunStatus;
  summary?: unknown;
  sourceCounts?: Record<string, number> | null;
  error?: string | null;
}

export interface RecordedRunOptions {
  kind: RunKind;
  manifestDigest: string;
  execute: boolean;
  /** How long the run's record lives without a heartbeat (default: the store's run ttl). */
  ttlMs?: number;
  signal?: AbortSignal;
  /** What an interruption says: an error thrown while the stop signal is aborted becomes an InterruptedError with it. */
  stopped: string;
  onRunStarted?: (run: RunRecord) => void;
  /** The job and shard the run belongs to (docs/scale-out.md), recorded with it from its start. */
  job?: JobShard | null;
}

/** What a run has done so far: set by the work once it has counts, recorded if it ends by an error. */
export interface RunProgress {
  summary: (() => unknown) | null;
}

/** The counts a run reached, or undefined (nothing recorded) when it had none or they cannot be read. */
function summarySoFar(progress: RunProgress): unknown {
  try {
    return progress.summary?.() ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * Record a run around `work`, which returns its result, how the run ended, and optionally
 * what to do once that end is recorded (`afterEnd`: a failpoint, or throwing the error that
 * carries the finished report — the end stands as recorded).
 */
export async function recordedRun<T>(context: RunContext, options: RecordedRunOptions, work: (run: RunRecord, progress: RunProgress) => Promise<{ result: T; end: RunEnd; afterEnd?: () => void }>): Promise<T> {
  const job = { job: options.job?.id ?? null, shard: options.job?.shard ?? null };
  const run = await context.startRun({ kind: options.kind, manifestDigest: options.manifestDigest, execute: options.execute, ...job }, options.ttlMs);
  options.onRunStarted?.(run);
  let ended = false;
  // Once the run's own end is being written, a hard stop waits for it instead of overwriting it.
  let ending: Promise<void> | null = null;
  const progress: RunProgress = { summary: null };
  // A hard stop kills the handler calls in flight (src/run/hard-stop.ts): the error that makes
  // the work throw then must not overwrite the hard stop's record on the way out.
  let hardStopped = false;
  const unregister = onHardStop(() => {
    hardStopped = true;
    return ending ?? context.store.finishRun(run.runId, { status: 'interrupted', summary: summarySoFar(progress), error: HARD_STOP_ERROR });
  });
  // The end the work returned, once it has: if writing it fails, it is written again as it is.
  let returned: RunEnd | null = null;
  try {
    const { result, end, afterEnd } = await work(run, progress);
    returned = end;
    // Stopped at once meanwhile: the hard stop's record stands (finishRun is a plain write, the last one wins).
    if (!hardStopped) {
      ending = context.store.finishRun(run.runId, end);
      await ending;
    }
    ended = true;
    afterEnd?.();
    return result;
  } catch (caught) {
    // A stop requested mid-way surfaces as whatever the interrupted call threw (the signal's
    // reason, an AbortError): it is an interruption (exit 130), not a backend failure.
    const error = options.signal?.aborted && !(caught instanceof ReaperError) ? new InterruptedError(options.stopped, { cause: caught }) : caught;
    if (!ended && !hardStopped) {
      const status = error instanceof SafetyError ? 'refused' : error instanceof InterruptedError ? 'interrupted' : 'failed';
      // A run whose own end could not be written keeps that end (an interrupted run is not recorded
      // as failed because the store was slow to take its record); any other error ends it as above.
      const record = returned ?? { status, summary: summarySoFar(progress), error: redact(error instanceof Error ? error.message : String(error)) };
      ending = context.store.finishRun(run.runId, record).catch(() => undefined);
      await ending;
    }
    throw error;
  } finally {
    unregister();
  }
}
