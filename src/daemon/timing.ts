/** Small timing helpers for the heartbeat loops (daemon and LeaseKeeper). */

/** `intervalMs` moved by up to ±10%, so many holders started together spread their renewals. */
export function jittered(intervalMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(intervalMs * (0.9 + 0.2 * random())));
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

/**
 * The renewal interval for a ttl: at most a third of it, so two renewals can fail
 * before the lease runs out. Returns the interval, or what is wrong with the one given.
 */
export function renewalInterval(ttlMs: number, intervalMs: number | undefined): number | { error: string } {
  const max = Math.floor(ttlMs / 3);
  if (intervalMs === undefined) return Math.max(1, max);
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) return { error: 'the renewal interval must be positive' };
  if (intervalMs > max) return { error: `the renewal interval (${intervalMs} ms) must be at most a third of the ttl (${max} ms)` };
  return intervalMs;
}
