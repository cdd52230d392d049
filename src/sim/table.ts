/** The ground-truth resource table: growable typed arrays, one entry per group and per resource. */
import type { ResourceTable } from './strategy.js';

const SHAPES = ['single', 'chain', 'cycle'] as const;
export type Shape = (typeof SHAPES)[number];

class Grow<T extends Float64Array | Int32Array> {
  constructor(
    public data: T,
    private readonly make: (n: number) => T,
  ) {}
  set(i: number, v: number): void {
    if (i >= this.data.length) {
      const next = this.make(Math.max(16, this.data.length * 2, i + 1));
      next.set(this.data);
      this.data = next;
    }
    this.data[i] = v;
  }
}
const f64 = (n: number) => new Grow(new Float64Array(n), (m) => new Float64Array(m));
const i32 = (n: number) => new Grow(new Int32Array(n), (m) => new Int32Array(m));

export class Table implements ResourceTable {
  groups = 0;
  resources = 0;
  private readonly gFirst = i32(1024);
  private readonly gSize = i32(1024);
  private readonly gShape = i32(1024);
  private readonly gCreator = i32(1024);
  /** Ground-truth references: holders plus references in transit. */
  readonly gRefs = i32(1024);
  /** When the last reference went (NaN while referenced). */
  readonly gGarbageAt = f64(1024);
  private readonly rGroup = i32(4096);
  private readonly rParent = i32(4096);
  private readonly rCreated = f64(4096);
  private readonly rStamp = f64(4096);
  readonly rDeletedAt = f64(4096);

  addGroup(shape: Shape, size: number, creator: number, now: number, stamp: number): number {
    const g = this.groups++;
    const root = this.resources;
    this.gFirst.set(g, root);
    this.gSize.set(g, size);
    this.gShape.set(g, SHAPES.indexOf(shape));
    this.gCreator.set(g, creator);
    this.gRefs.set(g, 1);
    this.gGarbageAt.set(g, NaN);
    for (let i = 0; i < size; i++) {
      const r = this.resources++;
      this.rGroup.set(r, g);
      // A chain: each member owned by the one before; a cycle: the root owned by the last one too.
      this.rParent.set(r, i > 0 ? r - 1 : shape === 'cycle' ? root + size - 1 : -1);
      this.rCreated.set(r, now);
      this.rStamp.set(r, stamp);
      this.rDeletedAt.set(r, NaN);
    }
    return g;
  }

  first(group: number): number {
    return this.gFirst.data[group]!;
  }
  size(group: number): number {
    return this.gSize.data[group]!;
  }
  shape(group: number): Shape {
    return SHAPES[this.gShape.data[group]!]!;
  }
  groupOf(resource: number): number {
    return this.rGroup.data[resource]!;
  }
  parentOf(resource: number): number {
    return this.rParent.data[resource]!;
  }
  createdAt(resource: number): number {
    return this.rCreated.data[resource]!;
  }
  stampOf(resource: number): number {
    return this.rStamp.data[resource]!;
  }
  creatorOf(group: number): number {
    return this.gCreator.data[group]!;
  }
  deleted(resource: number): boolean {
    return !Number.isNaN(this.rDeletedAt.data[resource]!);
  }
  refs(group: number): number {
    return this.gRefs.data[group]!;
  }
  addRef(group: number, delta: number, now: number): void {
    const next = this.gRefs.data[group]! + delta;
    this.gRefs.data[group] = next;
    if (next === 0) this.gGarbageAt.data[group] = now;
  }
  garbageAt(group: number): number {
    return this.gGarbageAt.data[group]!;
  }
  markDeleted(resource: number, now: number): void {
    this.rDeletedAt.set(resource, now);
  }
}
