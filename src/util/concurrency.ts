/** Small concurrency helpers shared by the adapters. */
import { defaultMaxListeners, setMaxListeners } from 'node:events';

/**
 * Map with at most `limit` promises in flight, results in input order. A call that fails
 * starts no further call, and the map rejects with the first failure once the calls in flight
 * have settled: nothing goes on after the caller has moved on.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async () => {
    while (next < items.length && failure === null) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
  return results;
}

/**
 * mapLimit for calls that each hand `signal` to a request. Every request in flight adds
 * an abort listener to the signal it is given, and Node warns past 10 listeners on one
 * signal (MaxListenersExceededWarning), taking a bounded fan-out for a leak. So the calls
 * share one signal derived from `signal` (one listener on it, removed at the end) that
 * allows the listeners `limit` requests in flight can hold (a few each: the transport's,
 * a retry's wait). An unbounded growth would still be warned about.
 */
export async function mapLimitAbortable<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, index: number, signal: AbortSignal | undefined) => Promise<R>,
): Promise<R[]> {
  if (!signal || limit <= 1 || items.length <= 1) return mapLimit(items, limit, (item, index) => fn(item, index, signal));
  const controller = new AbortController();
  setMaxListeners(Math.max(defaultMaxListeners, Math.min(limit, items.length) * 4), controller.signal);
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  try {
    return await mapLimit(items, limit, (item, index) => fn(item, index, controller.signal));
  } finally {
    signal.removeEventListener('abort', forward);
  }
}
