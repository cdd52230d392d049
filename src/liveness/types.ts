/** A liveness source says which owner keys are live right now. */
export interface LivenessSource {
  /** Stable name, used in messages and to compare counts between runs (`leases`, `static`, `sql:main-db#0`). */
  readonly name: string;
  /** How many keys the source holds live now (the registry-outage breaker compares this between runs). */
  count(signal?: AbortSignal): Promise<number>;
  /** The live subset of `keys`. Throws when the source cannot answer; callers treat that as unknown. */
  lookup(keys: readonly string[], signal?: AbortSignal): Promise<Set<string>>;
  /** A few keys it holds live now, at most `limit` (the key-shape check compares their shape with the owners'). */
  sample?(limit: number, signal?: AbortSignal): Promise<string[]>;
}
