/**
 * Reference counting with a periodic backup trace: counts free most garbage at once;
 * the trace (tracer.ts) frees what counting cannot — cycles, and resources whose
 * decrement was lost or whose holder crashed — at the cost of a trace every
 * `traceEvery`. It cannot undo counting's early frees (lost increments, duplicated
 * decrements, reordering).
 */
import type { SimContext } from '../strategy.js';
import { RefcountStrategy } from './refcount.js';
import { Tracer } from './tracer.js';

export class HybridStrategy extends RefcountStrategy {
  override readonly name = 'hybrid' as const;
  private readonly tracer: Tracer;

  constructor(ctx: SimContext) {
    super(ctx);
    const c = ctx.scenario.hybrid;
    this.tracer = new Tracer(ctx, this.present, c.traceEveryMs, c.timeoutMs, (r) => this.counts.remove(r));
  }

  override start(): void {
    this.tracer.start();
  }

  override received(group: number, _from: number, to: number): void {
    this.tracer.received(group, to);
  }

  override stateSize(): number {
    return this.counts.rows + this.tracer.lastMarked;
  }
}
