/**
 * Reference counting with increment and decrement messages. The sender of a reference
 * sends an increment before passing it on; a holder that drops one sends a decrement.
 * Messages are fire-and-forget: a lost increment or a duplicated decrement frees a
 * resource still held, a lost decrement or a crash that loses the holder's state leaks
 * it, an increment overtaken by a decrement frees early, and a cycle is never freed.
 */
import { Present } from '../present.js';
import type { SimContext, Strategy } from '../strategy.js';
import { CountTable } from './count-table.js';

export class RefcountStrategy implements Strategy {
  readonly name: 'refcount' | 'hybrid' = 'refcount';
  readonly present = new Present();
  readonly counts: CountTable;

  constructor(protected readonly ctx: SimContext) {
    this.counts = new CountTable(ctx, this.present);
  }

  start(): void {}

  created(group: number): void {
    this.counts.init(group, 1, 1);
  }

  shared(group: number, from: number): number {
    const root = this.ctx.table.first(group);
    this.ctx.send(from, this.ctx.central, 'increment', group, () => this.counts.add(root, 1, 1));
    return 0;
  }

  received(_group: number, _from: number, _to: number): void {}

  dropped(group: number, holder: number): void {
    const root = this.ctx.table.first(group);
    this.ctx.send(holder, this.ctx.central, 'decrement', group, () => this.counts.add(root, -1, 1));
  }

  crashed(): void {}
  restarted(): void {}

  stateSize(): number {
    return this.counts.rows;
  }
}
