/**
 * The ownership graph (docs/architecture.md, Contracts): resources may be owned by other resources (`ref`).
 * Liveness is the least fixed point of "live if any owner is live", so a resource is
 * live exactly when a path of owner edges leads from it to a live key (mark and sweep):
 * cycles with no live root stay dead, whatever their size.
 *
 * Three values, ordered dead < unknown < live: an owner that cannot be judged makes its
 * dependents unknown (never reaped) unless another owner is live. Protected and young
 * resources count as live owners — they are not going away, so neither may what they own.
 * Pure: the caller explores the graph (batched reads) and hands the nodes in.
 */
import type { ResourceSpec } from '../manifest/types.js';
import { classify, type LivenessAnswers } from './classify.js';
import type { Finding, Liveness, ResourceRecord } from './types.js';

export const nodeKey = (type: string, id: string): string => `${type}\u0000${id}`;

/** A node of the explored graph: a resource read from its backend, or known to be missing. */
export interface GraphNode {
  type: string;
  id: string;
  /** null when the referenced resource does not exist. */
  record: ResourceRecord | null;
  /** Explored beyond the depth limit: its owners were not read. */
  truncated?: boolean;
}

/** What a finding means for the resources it owns. */
export function ownerLiveness(finding: Pick<Finding, 'status'>): Liveness {
  switch (finding.status) {
    case 'live':
    case 'expired':
    case 'protected':
    case 'young':
      return 'live';
    case 'unknown':
      return 'unknown';
    case 'orphaned':
      return 'dead';
  }
}

const rank: Record<Liveness, number> = { dead: 0, unknown: 1, live: 2 };

/**
 * Liveness of every node by least fixed point. `keyAnswer` judges owner keys; `specs`
 * gives each type's spec. Iterates until nothing changes (at most |nodes| + 1 rounds,
 * since values only rise).
 */
export function solveGraph(
  nodes: ReadonlyMap<string, GraphNode>,
  specs: ReadonlyMap<string, ResourceSpec>,
  keyAnswer: (key: string) => Liveness,
  nowMs: number,
): Map<string, Liveness> {
  const value = new Map<string, Liveness>();
  for (const [k, n] of nodes) value.set(k, n.record === null ? 'dead' : n.truncated ? 'unknown' : 'dead');
  const answers: LivenessAnswers = {
    key: keyAnswer,
    ref: (type, id) => {
      const v = value.get(nodeKey(type, id));
      return v ?? 'unknown'; // never explored: cannot tell
    },
  };
  for (let round = 0; round <= nodes.size; round++) {
    let changed = false;
    for (const [k, n] of nodes) {
      if (n.record === null || n.truncated) continue;
      const spec = specs.get(n.type);
      if (!spec) continue;
      const next = ownerLiveness(classify(n.record, spec, answers, nowMs));
      if (rank[next] > rank[value.get(k)!]) {
        value.set(k, next);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return value;
}

/** Type-level edges: dependent type → owning type (from `ref` owner rules). */
export function typeEdges(resources: readonly Pick<ResourceSpec, 'name' | 'owners'>[]): { from: string; to: string; via: string }[] {
  const edges: { from: string; to: string; via: string }[] = [];
  for (const r of resources) {
    for (const o of r.owners) {
      if (o.ref === undefined) continue;
      const e = o.extractor;
      const via = 'pattern' in e ? `${e.from} ${e.pattern}` : `${e.from} ${e.name}`;
      edges.push({ from: r.name, to: o.ref, via });
    }
  }
  return edges;
}

/**
 * Reap order: dependents before their owners (reverse topological order of the ref
 * edges), so an interrupted run never leaves a dependent whose owner is already gone.
 * Types in a cycle keep manifest order among themselves.
 */
export function reapOrder<T extends Pick<ResourceSpec, 'name' | 'owners'>>(resources: readonly T[]): T[] {
  const edges = typeEdges(resources);
  const index = new Map(resources.map((r, i) => [r.name, i]));
  // dependents(x) must come before x: count, for each type, its not-yet-placed dependents.
  const waiting = new Map<string, number>(resources.map((r) => [r.name, 0]));
  for (const e of edges) if (e.from !== e.to && index.has(e.to)) waiting.set(e.to, waiting.get(e.to)! + 1);
  const placed = new Set<string>();
  const out: T[] = [];
  while (out.length < resources.length) {
    let next = resources.find((r) => !placed.has(r.name) && waiting.get(r.name) === 0);
    // A cycle: every remaining type waits on another; take the first in manifest order.
    next ??= resources.find((r) => !placed.has(r.name))!;
    placed.add(next.name);
    out.push(next);
    for (const e of edges) if (e.from === next.name && e.from !== e.to && !placed.has(e.to)) waiting.set(e.to, waiting.get(e.to)! - 1);
  }
  return out;
}
