/**
 * Timing of the heartbeat loops (daemon and LeaseKeeper): the renewal interval, the
 * deadline of each store call, and the safety margin by which a holder stops counting a
 * lease held before the store's clock could let it expire (docs/safety.md §19, §20).
 *
 * For a ttl T: renewals every I ≤ T/3 (two may fail before the lease runs out); each
 * store call gives up after D < I (default I/2, at most 10 s), so a hung call never
 * delays the next renewal; a lease counts as held until S + T − M by the holder's own
 * monotonic clock, where S is the send time of its last confirmed renewal (the store
 * stamps it no earlier, so its own expiry is no earlier than S + T) and M the margin
 * (default T/10): the holder says "lost" at least M before any reaper can see the lease
 * expired, whether the store answers, refuses or hangs.
 */

/** The most a store call waits by default, whatever the interval. */
export const MAX_DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** `intervalMs` moved by up to ±10%, so many holders started together spread their renewals. */
export function jittered(intervalMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(intervalMs * (0.9 + 0.2 * random())));
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

/** The deadline of each store call: shorter than the renewal interval (default half of it, at most 10 s). */
export function callTimeout(intervalMs: number, timeoutMs: number | undefined): number | { error: string } {
  if (timeoutMs === undefined) return Math.max(1, Math.min(Math.floor(intervalMs / 2), MAX_DEFAULT_CALL_TIMEOUT_MS));
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return { error: 'the store timeout must be positive' };
  if (timeoutMs >= intervalMs) return { error: `the store timeout (${timeoutMs} ms) must be shorter than the renewal interval (${intervalMs} ms)` };
  return Math.round(timeoutMs);
}

/** The safety margin: default a tenth of the ttl; less than what the ttl leaves after one interval. */
export function safetyMargin(ttlMs: number, intervalMs: number, marginMs: number | undefined): number | { error: string } {
  if (marginMs === undefined) return Math.floor(ttlMs / 10);
  const max = ttlMs - intervalMs;
  if (!Number.isFinite(marginMs) || marginMs < 0) return { error: 'the safety margin must be zero or more' };
  if (marginMs >= max) return { error: `the safety margin (${marginMs} ms) must be less than the ttl minus the renewal interval (${max} ms)` };
  return Math.round(marginMs);
}
