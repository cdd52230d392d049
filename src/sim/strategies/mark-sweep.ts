/** Mark-and-sweep over the ownership graph from the services' live roots (see tracer.ts). */
import { Present } from '../present.js';
import type { SimContext, Strategy } from '../strategy.js';
import { Tracer } from './tracer.js';

export class MarkSweepStrategy implements Strategy {
  readonly name = 'mark-sweep' as const;
  private readonly present = new Present();
  private readonly tracer: Tracer;

  constructor(private readonly ctx: SimContext) {
    const c = ctx.scenario.markSweep;
    this.tracer = new Tracer(ctx, this.present, c.everyMs, c.timeoutMs, () => {});
  }

  start(): void {
    this.tracer.start();
  }

  created(group: number): void {
    const t = this.ctx.table;
    for (let r = t.first(group); r < t.first(group) + t.size(group); r++) this.present.add(r);
    this.ctx.storeOps(t.size(group));
  }

  shared(): number {
    return 0;
  }

  received(group: number, _from: number, to: number): void {
    this.tracer.received(group, to);
  }

  dropped(): void {}
  crashed(): void {}
  restarted(): void {}

  stateSize(): number {
    return this.tracer.lastMarked;
  }
}
