/**
 * Deadlines for calls that may never answer: a store behind a partition neither answers
 * nor refuses, and a promise waiting on it waits forever (docs/safety.md §19).
 */

/** A call that did not settle within its deadline. `code` reads like the network's own timeout. */
export class DeadlineError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly what: string,
    readonly ms: number,
    cause?: unknown,
  ) {
    super(what ? `${what}: no answer within ${ms} ms` : `no answer within ${ms} ms`, cause === undefined ? undefined : { cause });
    this.name = 'DeadlineError';
  }
}

/**
 * `promise`, or a DeadlineError once `ms` passed without it settling. The call itself
 * goes on (nothing can stop a request already on the wire); `onLate` receives its value
 * if it succeeds after all, so whoever made it can undo it (release a lease nobody
 * knows it holds). Leaves no timer behind.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string, onLate?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new DeadlineError(what, ms));
    }, ms);
  });
  promise.then(
    (value) => {
      if (late) onLate?.(value);
    },
    () => undefined,
  );
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Wait for `promise` at most `ms`; says whether it settled in time. Leaves no timer behind. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The time left until a deadline on the monotonic clock (`performance.now()`), never below zero. */
export function remainingMs(deadline: number): number {
  return Math.max(0, deadline - performance.now());
}

/** Resolves when `signal` aborts (at once if it already has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
