import { describe, expect, it } from 'vitest';
import { RenewBatcher } from '../../src/daemon/renew-batcher.js';
import { LeaseLostError } from '../../src/errors.js';
import type { Lease, RenewOutcome } from '../../src/state/types.js';

const lease = (leaseId: string, ttlMs: number): Lease => ({
  leaseId,
  key: `key-${leaseId}`,
  holder: 'h',
  generation: 1,
  ttlMs,
  acquiredAt: 0,
  renewedAt: 1,
  expiresAt: 1 + ttlMs,
  releasedAt: null,
});

/** A store whose renewLeases calls are recorded and answered only when the test says so. */
function manualStore(lost: Record<string, RenewOutcome['lost']> = {}) {
  const calls: { ids: string[]; ttlMs: number | undefined; answer(): void; fail(error: Error): void }[] = [];
  const store = {
    renewLeases: (ids: readonly string[], options: { ttlMs?: number } = {}) =>
      new Promise<RenewOutcome[]>((resolve, reject) => {
        calls.push({
          ids: [...ids],
          ttlMs: options.ttlMs,
          answer: () => resolve(ids.map((id) => (lost[id] ? { leaseId: id, lost: lost[id] } : { leaseId: id, lease: lease(id, options.ttlMs ?? 1_000) }))),
          fail: reject,
        });
      }),
  };
  return { store, calls };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('RenewBatcher (group commit for HTTP renewals)', () => {
  it('sends a lone renewal on the next turn of the event loop and answers it', async () => {
    const { store, calls } = manualStore();
    const renewed = new RenewBatcher(store).renew('a', 5_000);
    expect(calls).toHaveLength(0);
    await turn();
    expect(calls.map((c) => [c.ids, c.ttlMs])).toEqual([[['a'], 5_000]]);
    calls[0]!.answer();
    expect(await renewed).toMatchObject({ leaseId: 'a', ttlMs: 5_000 });
  });

  it('puts renewals that arrive in one turn, or while a call is in flight, into one call each, with their own answers', async () => {
    const { store, calls } = manualStore({ c: 'released', e: 'expired' });
    const batcher = new RenewBatcher(store);
    const first = ['a', 'b', 'c'].map((id) => batcher.renew(id));
    await turn();
    const second = ['d', 'e', 'f', 'a'].map((id) => batcher.renew(id));
    await turn();
    // The second group waits for the first call, then goes as one.
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b', 'c']]);
    expect(batcher.waiting).toBe(4);
    calls[0]!.answer();
    const firstAnswers = await Promise.allSettled(first);
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b', 'c'], ['d', 'e', 'f', 'a']]);
    calls[1]!.answer();
    const secondAnswers = await Promise.allSettled(second);

    const summary = (results: PromiseSettledResult<Lease>[]) =>
      results.map((r) => (r.status === 'fulfilled' ? r.value.leaseId : r.reason instanceof LeaseLostError ? `lost:${r.reason.leaseId}:${r.reason.why}` : 'other'));
    expect(summary(firstAnswers)).toEqual(['a', 'b', 'lost:c:released']);
    expect(summary(secondAnswers)).toEqual(['d', 'lost:e:expired', 'f', 'a']);
  });

  it('never mixes ttls in one call, and splits at the batch limit', async () => {
    const { store, calls } = manualStore();
    const batcher = new RenewBatcher(store, 2);
    const all = [batcher.renew('a', 1_000), batcher.renew('b', 2_000), batcher.renew('c', 1_000), batcher.renew('d'), batcher.renew('e', 1_000)];
    for (let i = 0; i < 4; i++) {
      await turn();
      calls[i]!.answer();
      await turn();
    }
    expect(calls.map((c) => [c.ids.join(','), c.ttlMs])).toEqual([
      ['a,c', 1_000],
      ['b', 2_000],
      ['d', undefined],
      ['e', 1_000],
    ]);
    expect((await Promise.all(all)).map((l) => [l.leaseId, l.ttlMs])).toEqual([
      ['a', 1_000],
      ['b', 2_000],
      ['c', 1_000],
      ['d', 1_000],
      ['e', 1_000],
    ]);
  });

  it('fails every renewal of a failed call with its error, and still sends what waited behind it', async () => {
    const { store, calls } = manualStore();
    const batcher = new RenewBatcher(store);
    const first = [batcher.renew('a'), batcher.renew('b')];
    await turn();
    const behind = batcher.renew('c');
    calls[0]!.fail(new Error('connection refused'));
    for (const r of await Promise.allSettled(first)) expect(r).toMatchObject({ status: 'rejected', reason: { message: 'connection refused' } });
    await turn();
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b'], ['c']]);
    calls[1]!.answer();
    expect((await behind).leaseId).toBe('c');
  });
});
