/**
 * Weighted reference counting: a resource starts with a total weight W held by its
 * creator's reference. Passing a reference splits the sender's weight with no message
 * to the store (so no increment can be lost or overtaken); dropping one sends its
 * weight back as a decrement. Only a reference of weight 1 must ask the store for more
 * (an increment). Lost decrements and cycles still leak; a duplicated decrement still
 * frees early.
 */
import { Present } from '../present.js';
import type { SimContext, Strategy } from '../strategy.js';
import { CountTable } from './count-table.js';

export class WeightedRefcountStrategy implements Strategy {
  readonly name = 'weighted-refcount' as const;
  private readonly present = new Present();
  private readonly counts: CountTable;
  private readonly weights: Map<number, number>[] = [];
  private readonly w: number;

  constructor(private readonly ctx: SimContext) {
    this.counts = new CountTable(ctx, this.present);
    this.w = ctx.scenario.weightedRefcount.weight;
    for (let s = 0; s < ctx.services; s++) this.weights.push(new Map());
  }

  start(): void {}

  created(group: number, creator: number): void {
    this.counts.init(group, this.w, this.w);
    this.weights[creator]!.set(group, this.w);
  }

  shared(group: number, from: number): number {
    const mine = this.weights[from]!;
    let weight = mine.get(group) ?? 0;
    if (weight < 2) {
      // Out of weight: ask the store to add W to the total (an increment message), then split.
      const root = this.ctx.table.first(group);
      this.ctx.send(from, this.ctx.central, 'increment', group, () => this.counts.add(root, this.w, this.w));
      weight += this.w;
      this.ctx.count('weight requests');
    }
    const half = Math.floor(weight / 2);
    mine.set(group, weight - half);
    return half;
  }

  received(group: number, _from: number, to: number, payload: number): void {
    this.weights[to]!.set(group, payload);
  }

  dropped(group: number, holder: number): void {
    const mine = this.weights[holder]!;
    const weight = mine.get(group) ?? 0;
    mine.delete(group);
    const root = this.ctx.table.first(group);
    this.ctx.send(holder, this.ctx.central, 'decrement', group, () => this.counts.add(root, -weight, this.w));
  }

  crashed(service: number, loseState: boolean): void {
    if (loseState) this.weights[service]!.clear();
  }

  restarted(): void {}

  stateSize(): number {
    return this.counts.rows;
  }
}
