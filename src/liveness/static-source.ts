import type { LivenessSource } from './types.js';

/** A fixed list of keys that are always live (platform owners, shared fixtures). */
export class StaticSource implements LivenessSource {
  private readonly keys: ReadonlySet<string>;
  constructor(
    keys: readonly string[],
    readonly name = 'static',
  ) {
    this.keys = new Set(keys);
  }
  async count(): Promise<number> {
    return this.keys.size;
  }
  async lookup(keys: readonly string[]): Promise<Set<string>> {
    return new Set(keys.filter((k) => this.keys.has(k)));
  }
}
