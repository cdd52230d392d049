/**
 * The liveness view for a run: every configured source, asked in batches (one look-up
 * per source per page of resources), combined as "live if any source says live".
 * A source that fails makes the keys it could not judge `unknown`, never `dead`.
 */
import type { Liveness as KeyLiveness } from '../engine/types.js';
import type { LivenessSource } from './types.js';

export interface SourceCounts {
  counts: Record<string, number>;
  /** Sources that could not be counted, with the error. */
  errors: Record<string, string>;
}

/** Judges resource-owned resources; attached by the run context when a manifest uses `ref`. */
export interface RefJudge {
  resolve(refs: ReadonlyMap<string, ReadonlySet<string>>, signal?: AbortSignal): Promise<{ answer: (type: string, id: string) => KeyLiveness; errors: string[] }>;
}

export class LivenessView {
  private graph: RefJudge | null = null;

  constructor(readonly sources: readonly LivenessSource[]) {}

  attachGraph(graph: RefJudge): void {
    this.graph = graph;
  }

  /** Judge referenced resources through the ownership graph; without one, they are unknown. */
  async judgeRefs(refs: ReadonlyMap<string, ReadonlySet<string>>, signal?: AbortSignal): Promise<{ answer: (type: string, id: string) => KeyLiveness; errors: string[] }> {
    if (refs.size === 0 || !this.graph) return { answer: () => 'unknown', errors: [] };
    return this.graph.resolve(refs, signal);
  }

  /** Live-key count per source (for the registry-outage breaker and telemetry). */
  async counts(signal?: AbortSignal): Promise<SourceCounts> {
    const out: SourceCounts = { counts: {}, errors: {} };
    await Promise.all(
      this.sources.map(async (source) => {
        try {
          out.counts[source.name] = await source.count(signal);
        } catch (error) {
          out.errors[source.name] = reasonOf(source, error);
        }
      }),
    );
    return out;
  }

  /** Judge a batch of keys across all sources. */
  async judge(keys: ReadonlySet<string> | readonly string[], signal?: AbortSignal): Promise<{ answers: Map<string, KeyLiveness>; errors: string[] }> {
    const list = [...keys];
    const answers = new Map<string, KeyLiveness>(list.map((k) => [k, 'dead']));
    const errors: string[] = [];
    if (list.length === 0) return { answers, errors };
    const results = await Promise.allSettled(this.sources.map((s) => s.lookup(list, signal)));
    let failed = false;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') {
        for (const key of result.value) if (answers.has(key)) answers.set(key, 'live');
      } else {
        failed = true;
        errors.push(`${this.sources[i]!.name}: ${reasonOf(this.sources[i]!, result.reason)}`);
      }
    });
    if (failed) for (const [key, value] of answers) if (value === 'dead') answers.set(key, 'unknown');
    return { answers, errors };
  }
}

/** A source's error without the source's name in front (its errors carry it; callers name the source themselves). */
function reasonOf(source: LivenessSource, error: unknown): string {
  const message = (error as Error | undefined)?.message ?? String(error);
  return message.startsWith(`${source.name}: `) ? message.slice(source.name.length + 2) : message;
}
