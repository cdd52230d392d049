/**
 * The count store of reference counting (plain or weighted): a count per resource,
 * kept beside the resources. A count that reaches zero deletes its resource at once,
 * and the references that resource held on the next member of its group go with it.
 * A cycle keeps every count above zero once its holders are gone: it is never freed.
 */
import type { SimContext } from '../strategy.js';
import type { Present } from '../present.js';

export class CountTable {
  private counts = new Float64Array(1024);
  rows = 0;

  constructor(
    private readonly ctx: SimContext,
    private readonly present: Present,
  ) {}

  /** Rows for a new group: the root holds `rootAmount` (its creator's reference); each owned member `edgeAmount` from its owner. */
  init(group: number, rootAmount: number, edgeAmount: number): void {
    const t = this.ctx.table;
    const first = t.first(group);
    const size = t.size(group);
    if (first + size > this.counts.length) {
      const next = new Float64Array(Math.max(first + size, this.counts.length * 2));
      next.set(this.counts);
      this.counts = next;
    }
    for (let r = first; r < first + size; r++) {
      this.counts[r] = t.parentOf(r) >= 0 ? edgeAmount : 0;
      this.present.add(r);
    }
    this.counts[first]! += rootAmount;
    this.rows += size;
    this.ctx.storeOps(size);
  }

  /** Apply a change that arrived at the store; a resource already gone ignores it. */
  add(resource: number, delta: number, edgeAmount: number): void {
    this.ctx.storeOps(1);
    if (!this.present.has(resource)) return;
    const next = this.counts[resource]! + delta;
    this.counts[resource] = next;
    if (next <= 0) this.free(resource, edgeAmount);
  }

  /** Delete a resource whose count reached zero, and release its reference on the member it owns. */
  private free(resource: number, edgeAmount: number): void {
    this.remove(resource);
    this.ctx.deleteResource(resource);
    const t = this.ctx.table;
    const g = t.groupOf(resource);
    const first = t.first(g);
    const last = first + t.size(g) - 1;
    const owned = resource < last ? resource + 1 : t.shape(g) === 'cycle' ? first : -1;
    if (owned >= 0) this.add(owned, -edgeAmount, edgeAmount);
  }

  /** Drop a resource's row (it is being deleted by someone else: a backup trace). */
  remove(resource: number): void {
    if (!this.present.has(resource)) return;
    this.present.remove(resource);
    this.rows--;
    this.ctx.storeOps(1);
  }
}
