/**
 * Explores the ownership graph for a batch of referenced resources: reads them from
 * their own backends (one batched read per type per hop), judges their owner keys
 * (one batched look-up per hop), follows their own refs, and solves liveness by least
 * fixed point (src/engine/graph.ts). Memory is bounded by what one page of resources
 * reaches; cost per page is at most one read per referenced type per hop, up to maxDepth.
 */
import type { Backend } from '../backends/types.js';
import { ownerKeysOf } from '../engine/classify.js';
import { nodeKey, solveGraph, type GraphNode } from '../engine/graph.js';
import type { Liveness } from '../engine/types.js';
import type { LivenessView } from '../liveness/liveness.js';
import type { ResourceSpec } from '../manifest/types.js';

export type RefAnswer = (type: string, id: string) => Liveness;

export const DEFAULT_MAX_DEPTH = 16;

export class RefResolver {
  private readonly specs: ReadonlyMap<string, ResourceSpec>;

  constructor(
    resources: readonly ResourceSpec[],
    private readonly backendOf: (spec: ResourceSpec) => Promise<Backend>,
    private readonly liveness: Pick<LivenessView, 'judge'>,
    private readonly now: () => Promise<number>,
    private readonly maxDepth = DEFAULT_MAX_DEPTH,
  ) {
    this.specs = new Map(resources.map((r) => [r.name, r]));
  }

  /** Liveness of the referenced resources (TYPE → ids), and of everything they reach. */
  async resolve(refs: ReadonlyMap<string, ReadonlySet<string>>, signal?: AbortSignal): Promise<{ answer: RefAnswer; nodes: Map<string, GraphNode>; errors: string[] }> {
    const nodes = new Map<string, GraphNode>();
    const keys = new Map<string, Liveness>();
    const errors: string[] = [];
    let frontier = refs;
    for (let depth = 0; frontier.size > 0; depth++) {
      const next = new Map<string, Set<string>>();
      const pendingKeys = new Set<string>();
      for (const [type, ids] of frontier) {
        const fresh = [...ids].filter((id) => !nodes.has(nodeKey(type, id)));
        if (fresh.length === 0) continue;
        const spec = this.specs.get(type);
        if (depth >= this.maxDepth || !spec) {
          for (const id of fresh) nodes.set(nodeKey(type, id), { type, id, record: null, truncated: true });
          continue;
        }
        const found = await (await this.backendOf(spec)).read(fresh, signal);
        for (const id of fresh) nodes.set(nodeKey(type, id), { type, id, record: found.get(id) ?? null });
        const reached = ownerKeysOf([...found.values()], spec);
        for (const k of reached.keys) if (!keys.has(k)) pendingKeys.add(k);
        for (const [t, set] of reached.refs) {
          let target = next.get(t);
          if (!target) next.set(t, (target = new Set()));
          for (const id of set) if (!nodes.has(nodeKey(t, id))) target.add(id);
        }
      }
      if (pendingKeys.size > 0) {
        const judged = await this.liveness.judge(pendingKeys, signal);
        for (const [k, v] of judged.answers) keys.set(k, v);
        errors.push(...judged.errors);
      }
      frontier = next;
    }
    const values = solveGraph(nodes, this.specs, (k) => keys.get(k) ?? 'unknown', await this.now());
    return { answer: (type, id) => values.get(nodeKey(type, id)) ?? 'unknown', nodes, errors };
  }
}
