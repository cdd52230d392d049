import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nodeKey, reapOrder, solveGraph, typeEdges, type GraphNode } from '../../src/engine/graph.js';
import type { Liveness } from '../../src/engine/types.js';
import type { OwnerRule, ResourceSpec } from '../../src/manifest/types.js';

const HOUR = 3_600_000;
const NOW = 100 * HOUR;

function spec(name: string, owners: OwnerRule[], extra: Partial<ResourceSpec> = {}): ResourceSpec {
  return {
    name,
    location: { kind: 'postgres', connection: 'db', table: name, id: 'id', createdAt: 'created_at' },
    owners,
    minAgeMs: 0,
    graceMs: 0,
    batchSize: 100,
    maxDeletesPerRun: 1000,
    maxDeleteFraction: 1,
    onExpired: 'report',
    protect: [],
    ageFrom: 'mtime',
    line: null,
    ...extra,
  };
}

/** Type "n": owned by key column k, or by the rows named in columns a and b. */
const N = spec('n', [
  { extractor: { from: 'column', name: 'k' } },
  { extractor: { from: 'column', name: 'a' }, ref: 'n' },
  { extractor: { from: 'column', name: 'b' }, ref: 'n' },
]);

function row(id: string, k: string | null, a: string | null, b: string | null): GraphNode {
  return { type: 'n', id, record: { id, createdAtMs: NOW - HOUR, bytes: 1, fingerprint: 'f', columns: { k, a, b } } };
}

function solve(rows: GraphNode[], live: Set<string>, unknown: Set<string> = new Set()): Map<string, Liveness> {
  const nodes = new Map(rows.map((r) => [nodeKey(r.type, r.id), r]));
  return solveGraph(nodes, new Map([['n', N]]), (key) => (live.has(key) ? 'live' : unknown.has(key) ? 'unknown' : 'dead'), NOW);
}

describe('solveGraph', () => {
  it('keeps a two-node cycle with a live root and frees it without one', () => {
    const rows = [row('1', null, '2', null), row('2', 'svc', '1', null)];
    expect(solve(rows, new Set(['svc'])).get(nodeKey('n', '1'))).toBe('live');
    const dead = solve(rows, new Set());
    expect(dead.get(nodeKey('n', '1'))).toBe('dead');
    expect(dead.get(nodeKey('n', '2'))).toBe('dead');
  });

  it('makes dependents of a missing resource dead, and of an unknown one unknown', () => {
    const rows = [row('1', null, '9', null), { type: 'n', id: '9', record: null }];
    expect(solve(rows, new Set()).get(nodeKey('n', '1'))).toBe('dead');
    const withUnknown = [row('1', null, '2', null), row('2', 'flaky', null, null)];
    expect(solve(withUnknown, new Set(), new Set(['flaky'])).get(nodeKey('n', '1'))).toBe('unknown');
  });

  it('treats a diamond as live when either path reaches a live key', () => {
    const rows = [row('top', null, 'l', 'r'), row('l', null, 'bottom', null), row('r', null, 'bottom', null), row('bottom', 'root', null, null)];
    const live = solve(rows, new Set(['root']));
    for (const id of ['top', 'l', 'r', 'bottom']) expect(live.get(nodeKey('n', id))).toBe('live');
  });

  it('counts protected and young owners as live owners', () => {
    const protectedSpec = spec('n', N.owners as OwnerRule[], { protect: [{ kind: 'where', sql: 'x' }] });
    const rows = [row('1', null, '2', null), { ...row('2', null, null, null) }];
    rows[0]!.record = { ...rows[0]!.record!, protectMatches: { 0: false } };
    rows[1]!.record = { ...rows[1]!.record!, protectMatches: { 0: true } };
    const nodes = new Map(rows.map((r) => [nodeKey(r.type, r.id), r]));
    const values = solveGraph(nodes, new Map([['n', protectedSpec]]), () => 'dead', NOW);
    expect(values.get(nodeKey('n', '1'))).toBe('live');
  });

  it('agrees with brute-force reachability on random graphs (cycles included)', () => {
    const arb = fc.integer({ min: 1, max: 12 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        edges: fc.array(fc.tuple(fc.option(fc.integer({ min: 0, max: n + 1 }), { nil: null }), fc.option(fc.integer({ min: 0, max: n + 1 }), { nil: null })), { minLength: n, maxLength: n }),
        keys: fc.array(fc.constantFrom('live', 'dead', 'none'), { minLength: n, maxLength: n }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ n, edges, keys }) => {
        const rows: GraphNode[] = [];
        for (let i = 0; i < n; i++) {
          const [a, b] = edges[i]!;
          rows.push(row(String(i), keys[i] === 'none' ? null : `${keys[i]}-${i}`, a === null ? null : String(a), b === null ? null : String(b)));
        }
        // referenced ids ≥ n are missing resources
        for (const id of [String(n), String(n + 1)]) rows.push({ type: 'n', id, record: null });
        const live = new Set(keys.map((k, i) => (k === 'live' ? `live-${i}` : '')).filter(Boolean));
        const solved = solve(rows, live);
        for (let i = 0; i < n; i++) {
          // oracle: is there a path from i to a node with a live key?
          const seen = new Set<number>();
          const stack = [i];
          let reaches = false;
          while (stack.length) {
            const x = stack.pop()!;
            if (seen.has(x) || x >= n) continue;
            seen.add(x);
            if (keys[x] === 'live') reaches = true;
            for (const y of edges[x]!) if (y !== null) stack.push(y);
          }
          expect(solved.get(nodeKey('n', String(i)))).toBe(reaches ? 'live' : 'dead');
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('reapOrder', () => {
  const key = (name: string): OwnerRule => ({ extractor: { from: 'column', name } });
  const ref = (type: string): OwnerRule => ({ extractor: { from: 'column', name: 'x' }, ref: type });

  it('puts dependents before their owners', () => {
    const order = reapOrder([spec('images', [key('s')]), spec('thumbs', [ref('images')]), spec('crops', [ref('thumbs')])]).map((s) => s.name);
    expect(order).toEqual(['crops', 'thumbs', 'images']);
  });

  it('terminates on cycles and keeps every type once', () => {
    const order = reapOrder([spec('a', [ref('b')]), spec('b', [ref('a')]), spec('c', [ref('a')])]).map((s) => s.name);
    expect([...order].sort()).toEqual(['a', 'b', 'c']);
    expect(order.indexOf('c')).toBeLessThan(order.indexOf('a'));
  });

  it('lists type edges with their extractor', () => {
    expect(typeEdges([spec('thumbs', [{ extractor: { from: 'keyPattern', pattern: '^t/(?<owner>.+)' }, ref: 'images' }])])).toEqual([
      { from: 'thumbs', to: 'images', via: 'keyPattern ^t/(?<owner>.+)' },
    ]);
  });
});
