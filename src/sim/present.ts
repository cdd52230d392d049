/** The resources that exist now, as a dense list with O(1) add and remove (what a collector's scan walks). */
export class Present {
  private list = new Int32Array(1024);
  private pos = new Int32Array(1024).fill(-1);
  size = 0;

  add(resource: number): void {
    if (resource >= this.pos.length) {
      const next = new Int32Array(Math.max(resource + 1, this.pos.length * 2)).fill(-1);
      next.set(this.pos);
      this.pos = next;
    }
    if (this.pos[resource] !== -1) return;
    if (this.size >= this.list.length) {
      const next = new Int32Array(this.list.length * 2);
      next.set(this.list);
      this.list = next;
    }
    this.pos[resource] = this.size;
    this.list[this.size++] = resource;
  }

  remove(resource: number): void {
    const at = resource < this.pos.length ? this.pos[resource]! : -1;
    if (at === -1) return;
    const last = this.list[--this.size]!;
    this.list[at] = last;
    this.pos[last] = at;
    this.pos[resource] = -1;
  }

  has(resource: number): boolean {
    return resource < this.pos.length && this.pos[resource] !== -1;
  }

  /** A snapshot in ascending id order (creation order): scans see resources the same way on every run. */
  snapshot(): Int32Array {
    return this.list.slice(0, this.size).sort();
  }
}
