/**
 * A tracing collection from live roots, shared by mark-and-sweep and the hybrid's backup
 * trace. The collector asks every service for its roots (the references it holds, and
 * those it has sent that have not arrived yet); a service that has answered reports any
 * reference it receives until the trace ends (a shade message). When every service has
 * answered, everything reachable from a root over the ownership edges is marked, and
 * every resource created before the trace began and left unmarked is deleted. A service
 * that does not answer within the timeout (crashed, paused, partitioned, or its answer
 * was lost) makes the collector give the trace up: unknown means alive.
 */
import type { Present } from '../present.js';
import type { SimContext } from '../strategy.js';

interface Trace {
  id: number;
  startedAt: number;
  answered: Set<number>;
  roots: Set<number>;
}

export class Tracer {
  private trace: Trace | null = null;
  private seq = 0;
  /** The trace each service last answered (it shades while that trace is on). */
  private readonly answeredTrace: Int32Array;
  /** Resources marked by the last completed trace, plus the roots it gathered. */
  lastMarked = 0;

  constructor(
    private readonly ctx: SimContext,
    private readonly present: Present,
    private readonly everyMs: number,
    private readonly timeoutMs: number,
    private readonly onDelete: (resource: number) => void,
  ) {
    this.answeredTrace = new Int32Array(ctx.services);
  }

  start(): void {
    this.ctx.every(this.ctx.central, this.everyMs, () => this.begin());
  }

  private begin(): void {
    const ctx = this.ctx;
    if (this.trace) return;
    if (!ctx.registryUp()) {
      ctx.count('traces skipped (registry down)');
      return;
    }
    const trace: Trace = { id: ++this.seq, startedAt: ctx.now(), answered: new Set(), roots: new Set() };
    this.trace = trace;
    for (let s = 0; s < ctx.services; s++) {
      ctx.send(ctx.central, s, 'snapshot', -1, () => {
        const roots = [...ctx.holdsOf(s), ...ctx.inTransitFrom(s).keys()];
        this.answeredTrace[s] = trace.id;
        ctx.send(s, ctx.central, 'roots', -1, () => this.answer(trace, s, roots));
      });
    }
    ctx.onNode(ctx.central, this.timeoutMs, () => {
      if (this.trace !== trace) return;
      ctx.count('traces abandoned');
      this.trace = null;
    });
  }

  /** A reference arrived at `service`: shade it if the trace in progress has already heard from it. */
  received(group: number, service: number): void {
    const trace = this.trace;
    if (!trace || this.answeredTrace[service] !== trace.id) return;
    this.ctx.send(service, this.ctx.central, 'shade', group, () => {
      if (this.trace === trace) trace.roots.add(group);
    });
  }

  private answer(trace: Trace, service: number, roots: readonly number[]): void {
    if (this.trace !== trace || trace.answered.has(service)) return;
    trace.answered.add(service);
    for (const g of roots) trace.roots.add(g);
    if (trace.answered.size === this.ctx.services) this.sweep(trace);
  }

  private sweep(trace: Trace): void {
    const ctx = this.ctx;
    const t = ctx.table;
    this.trace = null;
    ctx.count('traces completed');
    // Mark: a root marks its group's root resource, and each marked resource the member it owns.
    const marked = new Set<number>();
    for (const g of trace.roots) {
      const first = t.first(g);
      const last = first + t.size(g) - 1;
      for (let r = first; r >= 0 && !marked.has(r); r = r < last ? r + 1 : -1) marked.add(r);
    }
    this.lastMarked = marked.size + trace.roots.size;
    const scan = this.present.snapshot();
    ctx.storeOps(scan.length);
    const doomed: number[] = [];
    for (const r of scan) if (t.createdAt(r) < trace.startedAt && !marked.has(r)) doomed.push(r);
    const cut = ctx.takeKill() ? Math.floor(ctx.random() * doomed.length) : doomed.length;
    for (let i = 0; i < cut; i++) {
      this.onDelete(doomed[i]!);
      this.present.remove(doomed[i]!);
      ctx.deleteResource(doomed[i]!);
    }
    ctx.storeOps(cut);
  }
}
