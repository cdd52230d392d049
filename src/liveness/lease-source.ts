import type { LeaseStore } from '../state/types.js';
import type { LivenessSource } from './types.js';

/** Unexpired, unreleased leases in the state store, judged by the store's clock. */
export class LeaseSource implements LivenessSource {
  readonly name = 'leases';
  constructor(private readonly store: Pick<LeaseStore, 'countLiveKeys' | 'liveKeys' | 'listLeases'>) {}
  count(): Promise<number> {
    return this.store.countLiveKeys();
  }
  lookup(keys: readonly string[]): Promise<Set<string>> {
    return this.store.liveKeys(keys);
  }
  async sample(limit: number): Promise<string[]> {
    return [...new Set((await this.store.listLeases({ limit })).map((l) => l.key))];
  }
}
