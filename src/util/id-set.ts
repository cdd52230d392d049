/**
 * A set of non-negative integer ids (tombstone ids) as a growable bitset: one bit per id
 * from the smallest id added, so remembering a million ids costs ~125 KB, not the tens of
 * megabytes a Set<number> would.
 */
export class IdSet {
  private base = -1;
  private bits = new Uint8Array(0);
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(id: number): void {
    if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`IdSet holds non-negative integers, not ${id}`);
    if (this.base < 0) this.base = id - (id % 8);
    if (id < this.base) this.rebase(id);
    const offset = id - this.base;
    const byte = Math.floor(offset / 8);
    if (byte >= this.bits.length) this.grow(byte + 1);
    const mask = 1 << offset % 8;
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte]! |= mask;
      this.count++;
    }
  }

  has(id: number): boolean {
    if (this.base < 0 || id < this.base) return false;
    const offset = id - this.base;
    const byte = Math.floor(offset / 8);
    return byte < this.bits.length && (this.bits[byte]! & (1 << offset % 8)) !== 0;
  }

  private grow(bytes: number): void {
    const next = new Uint8Array(Math.max(bytes, this.bits.length * 2, 64));
    next.set(this.bits);
    this.bits = next;
  }

  /** Move the base down to the byte boundary at or below `id` (bases are multiples of 8), shifting what is stored. */
  private rebase(id: number): void {
    const base = id - (id % 8);
    const shiftBytes = (this.base - base) / 8;
    const next = new Uint8Array(this.bits.length + shiftBytes);
    next.set(this.bits, shiftBytes);
    this.bits = next;
    this.base = base;
  }
}
