/**
 * The liveness view for a run: every configured source, asked in batches (one look-up
 * per source per page of resources), combined as "live if any source says live".
 * A source that fails makes the keys it could not judge `unknown`, never `dead`, for the
 * rest of the view's life (a run): it is not asked again, so a dead registry costs one
 * failed call, not one per page.
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
  /** Sources that failed during this view's life, with their first error: not asked again, their keys unknown. */
  private readonly failed = new Map<string, string>();

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
          if (signal?.aborted) throw error;
          out.errors[source.name] = reasonOf(source, error);
          if (!this.failed.has(source.name)) this.failed.set(source.name, out.errors[source.name]!);
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
    const asked = this.sources.filter((s) => !this.failed.has(s.name));
    const results = await Promise.allSettled(asked.map((s) => s.lookup(list, signal)));
    let failed = asked.length < this.sources.length;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') {
        for (const key of result.value) if (answers.has(key)) answers.set(key, 'live');
      } else {
        if (signal?.aborted) throw result.reason;
        failed = true;
        const message = reasonOf(asked[i]!, result.reason);
        errors.push(`${asked[i]!.name}: ${message}`);
        if (!this.failed.has(asked[i]!.name)) this.failed.set(asked[i]!.name, message);
      }
    });
    if (failed) for (const [key, value] of answers) if (value === 'dead') answers.set(key, 'unknown');
    return { answers, errors };
  }

  /**
   * Sources that failed so far (counted or asked), with their first error. A failed source
   * is not asked again in this view: every key no other source holds live is `unknown`.
   */
  failures(): Record<string, string> {
    return Object.fromEntries(this.failed);
  }
}

/** A source's error without the source's name in front (its errors carry it; callers name the source themselves). */
function reasonOf(source: LivenessSource, error: unknown): string {
  const message = (error as Error | undefined)?.message ?? String(error);
  return message.startsWith(`${source.name}: `) ? message.slice(source.name.length + 2) : message;
}
