/**
 * The liveness view (README, "The model"): a key is live if any source says so. A source that fails
 * turns what would have been `dead` into `unknown` (docs/safety.md §4), never the other way.
 */
import { describe, expect, it } from 'vitest';
import { LivenessView, type RefJudge } from '../../src/liveness/liveness.js';
import { StaticSource } from '../../src/liveness/static-source.js';
import type { LivenessSource } from '../../src/liveness/types.js';

/** A source with a fixed set of live keys that records its calls, or one that fails. */
class FakeSource implements LivenessSource {
  readonly lookups: string[][] = [];
  constructor(
    readonly name: string,
    private readonly live: readonly string[],
    private readonly failure?: unknown,
  ) {}
  async count(): Promise<number> {
    if (this.failure !== undefined) throw this.failure;
    return this.live.length;
  }
  async lookup(keys: readonly string[]): Promise<Set<string>> {
    this.lookups.push([...keys]);
    if (this.failure !== undefined) throw this.failure;
    return new Set(keys.filter((k) => this.live.includes(k)));
  }
}

const asObject = (answers: Map<string, string>) => Object.fromEntries(answers);

describe('LivenessView.judge', () => {
  it('says live when any source says so, dead otherwise', async () => {
    const view = new LivenessView([new StaticSource(['platform']), new FakeSource('leases', ['session:1', 'session:2'])]);
    const { answers, errors } = await view.judge(['platform', 'session:2', 'session:3']);
    expect(asObject(answers)).toEqual({ platform: 'live', 'session:2': 'live', 'session:3': 'dead' });
    expect(errors).toEqual([]);
  });

  it('asks every source once per batch, with every key, and accepts a set', async () => {
    const a = new FakeSource('a', ['x']);
    const b = new FakeSource('b', ['y']);
    const { answers } = await new LivenessView([a, b]).judge(new Set(['x', 'y', 'z']));
    expect(a.lookups).toEqual([['x', 'y', 'z']]);
    expect(b.lookups).toEqual([['x', 'y', 'z']]);
    expect(asObject(answers)).toEqual({ x: 'live', y: 'live', z: 'dead' });
  });

  it('asks nothing for an empty batch', async () => {
    const a = new FakeSource('a', ['x']);
    const { answers, errors } = await new LivenessView([a]).judge([]);
    expect(answers.size).toBe(0);
    expect(errors).toEqual([]);
    expect(a.lookups).toEqual([]);
  });

  it('ignores keys a source returns that were not asked about', async () => {
    const chatty: LivenessSource = { name: 'chatty', count: async () => 2, lookup: async () => new Set(['x', 'not-asked']) };
    const { answers } = await new LivenessView([chatty]).judge(['x', 'y']);
    expect(asObject(answers)).toEqual({ x: 'live', y: 'dead' });
  });

  it('with no sources at all, every key is dead', async () => {
    const { answers } = await new LivenessView([]).judge(['x']);
    expect(asObject(answers)).toEqual({ x: 'dead' });
  });

  it('a failing source turns dead answers into unknown but keeps live ones (§4)', async () => {
    const view = new LivenessView([new FakeSource('static', ['platform']), new FakeSource('sql:main-db#1', [], new Error('connection refused'))]);
    const { answers, errors } = await view.judge(['platform', 'session:9']);
    expect(asObject(answers)).toEqual({ platform: 'live', 'session:9': 'unknown' });
    expect(errors).toEqual(['sql:main-db#1: connection refused']);
  });

  it('a key live in a working source stays live whichever source fails, and every failure is reported', async () => {
    const view = new LivenessView([new FakeSource('a', [], new Error('timeout')), new FakeSource('b', ['k']), new FakeSource('c', [], 'socket hang up')]);
    const { answers, errors } = await view.judge(['k', 'other']);
    expect(asObject(answers)).toEqual({ k: 'live', other: 'unknown' });
    expect(errors).toEqual(['a: timeout', 'c: socket hang up']);
  });

  it('when every source fails, nothing is dead', async () => {
    const view = new LivenessView([new FakeSource('leases', ['k'], new Error('database is locked'))]);
    const { answers } = await view.judge(['k', 'j']);
    expect(asObject(answers)).toEqual({ k: 'unknown', j: 'unknown' });
  });
});

describe('LivenessView.counts', () => {
  it('counts live keys per source and records errors per source', async () => {
    const view = new LivenessView([new StaticSource(['a', 'b', 'b']), new FakeSource('leases', ['x', 'y', 'z']), new FakeSource('sql:registry#2', [], new Error('permission denied'))]);
    expect(await view.counts()).toEqual({ counts: { static: 2, leases: 3 }, errors: { 'sql:registry#2': 'permission denied' } });
  });

  it('counts zero as zero, not as an error', async () => {
    expect(await new LivenessView([new FakeSource('leases', [])]).counts()).toEqual({ counts: { leases: 0 }, errors: {} });
  });
});

describe('LivenessView.judgeRefs', () => {
  const refs = new Map([['image-rows', new Set(['1', '2'])]]);

  it('without an ownership graph, referenced owners are unknown, never dead', async () => {
    const { answer, errors } = await new LivenessView([]).judgeRefs(refs);
    expect(answer('image-rows', '1')).toBe('unknown');
    expect(errors).toEqual([]);
  });

  it('delegates to the attached graph, and skips it when there is nothing to judge', async () => {
    const calls: string[][] = [];
    const graph: RefJudge = {
      resolve: async (asked) => {
        calls.push([...asked].flatMap(([type, ids]) => [...ids].map((id) => `${type}/${id}`)));
        return { answer: (type, id) => (id === '1' ? 'live' : 'dead'), errors: ['image-rows: one page timed out'] };
      },
    };
    const view = new LivenessView([]);
    view.attachGraph(graph);
    const { answer, errors } = await view.judgeRefs(refs);
    expect([answer('image-rows', '1'), answer('image-rows', '2')]).toEqual(['live', 'dead']);
    expect(errors).toEqual(['image-rows: one page timed out']);
    expect(calls).toEqual([['image-rows/1', 'image-rows/2']]);
    await view.judgeRefs(new Map());
    expect(calls).toHaveLength(1);
  });
});

describe('StaticSource', () => {
  it('holds its keys live, counted once each', async () => {
    const source = new StaticSource(['platform', 'ci', 'platform']);
    expect(source.name).toBe('static');
    expect(new StaticSource([], 'static#2').name).toBe('static#2');
    expect(await source.count()).toBe(2);
    expect([...(await source.lookup(['ci', 'alice', 'platform']))]).toEqual(['ci', 'platform']);
  });
});
