/**
 * Epoch-based reclamation. The collector keeps a global epoch E. A reference carries the
 * epoch of its group's creation (passing it on keeps the epoch), and each service
 * announces, every `announceEvery`, the oldest epoch it still holds a reference from
 * (or the newest E it knows when it holds none); a reference in transit pins its sender
 * until it has arrived and been acknowledged, and a service that receives an older
 * reference announces at once. E advances when every service has announced E. A group is
 * retired by its creator when the creator drops it, and freed once E has passed the
 * retirement epoch by two. A service that stops announcing (crashed, paused, cut off)
 * stops every reclamation; a creator that never retires (its state was lost, its retire
 * message was lost) leaks; limbo lists kept in memory are lost when the collector dies.
 */
import { Present } from '../present.js';
import type { SimContext, Strategy } from '../strategy.js';

interface Retired {
  group: number;
  epoch: number;
}

export class EpochStrategy implements Strategy {
  readonly name = 'epochs' as const;
  private readonly present = new Present();
  private epoch = 0;
  private readonly announced: Float64Array;
  private readonly lastSeq: Int32Array;
  private readonly sentSeq: Int32Array;
  private readonly lastSent: Float64Array;
  private readonly known: Float64Array;
  private groupEpoch = new Float64Array(1024);
  private readonly pins: Map<number, number>[] = [];
  private readonly transitPins: { epoch: number; until: number }[][] = [];
  private limbo: Retired[] = [];
  private limboHead = 0;

  constructor(private readonly ctx: SimContext) {
    const n = ctx.services;
    this.announced = new Float64Array(n).fill(-1);
    this.lastSeq = new Int32Array(n);
    this.sentSeq = new Int32Array(n);
    this.lastSent = new Float64Array(n);
    this.known = new Float64Array(n);
    for (let s = 0; s < n; s++) {
      this.pins.push(new Map());
      this.transitPins.push([]);
    }
  }

  start(): void {
    for (let s = 0; s < this.ctx.services; s++) this.arm(s);
  }

  private arm(service: number): void {
    this.ctx.every(service, this.ctx.scenario.epochs.announceEveryMs, () => this.announce(service), 0.1);
  }

  created(group: number, creator: number): void {
    if (group >= this.groupEpoch.length) {
      const next = new Float64Array(this.groupEpoch.length * 2);
      next.set(this.groupEpoch);
      this.groupEpoch = next;
    }
    this.groupEpoch[group] = this.known[creator]!;
    this.pins[creator]!.set(group, this.known[creator]!);
    const t = this.ctx.table;
    for (let r = t.first(group); r < t.first(group) + t.size(group); r++) this.present.add(r);
    this.ctx.storeOps(t.size(group));
  }

  shared(group: number, from: number): number {
    const pin = this.pins[from]!.get(group) ?? this.groupEpoch[group]!;
    // Pinned until the reference has arrived and the receiver's acknowledgement is back.
    this.transitPins[from]!.push({ epoch: pin, until: this.ctx.now() + 2 * this.ctx.scenario.network.latencyMs });
    return pin;
  }

  received(group: number, _from: number, to: number, pin: number): void {
    this.pins[to]!.set(group, pin);
    if (pin < this.lastSent[to]!) this.announce(to);
  }

  dropped(group: number, holder: number): void {
    this.pins[holder]!.delete(group);
    if (holder !== this.ctx.table.creatorOf(group)) return;
    this.ctx.send(holder, this.ctx.central, 'retire', group, () => {
      this.limbo.push({ group, epoch: this.epoch });
      this.ctx.storeOps(1);
    });
  }

  private announce(service: number): void {
    const now = this.ctx.now();
    let pin = this.known[service]!;
    for (const e of this.pins[service]!.values()) if (e < pin) pin = e;
    const transit = this.transitPins[service]!;
    let keep = 0;
    for (const p of transit) {
      if (p.until <= now) continue;
      transit[keep++] = p;
      if (p.epoch < pin) pin = p.epoch;
    }
    transit.length = keep;
    const seq = ++this.sentSeq[service]!;
    this.lastSent[service] = pin;
    const ctx = this.ctx;
    ctx.send(service, ctx.central, 'announce', -1, () => {
      if (seq <= this.lastSeq[service]!) return; // an older announcement overtaken by a newer one
      this.lastSeq[service] = seq;
      this.announced[service] = pin;
      ctx.storeOps(1);
      this.advance();
      const epoch = this.epoch;
      ctx.send(ctx.central, service, 'reply', -1, () => {
        if (epoch > this.known[service]!) this.known[service] = epoch;
      });
    });
  }

  private advance(): void {
    for (let s = 0; s < this.ctx.services; s++) if (this.announced[s]! < this.epoch) return;
    this.epoch++;
    this.free();
  }

  /** The collector died: a limbo list kept in memory is gone, and what it held is never freed. */
  collectorKilled(): void {
    if (this.ctx.scenario.epochs.persistLimbo) return;
    this.ctx.count('limbo entries lost', this.limbo.length - this.limboHead);
    this.limbo = [];
    this.limboHead = 0;
  }

  private free(): void {
    const ctx = this.ctx;
    // A kill during this pass cuts it short; a persisted limbo list is freed on the next advance.
    if (ctx.takeKill()) return;
    const t = ctx.table;
    while (this.limboHead < this.limbo.length && this.limbo[this.limboHead]!.epoch + 2 <= this.epoch) {
      const { group } = this.limbo[this.limboHead++]!;
      for (let r = t.first(group); r < t.first(group) + t.size(group); r++) {
        if (!this.present.has(r)) continue;
        this.present.remove(r);
        ctx.deleteResource(r);
        ctx.storeOps(1);
      }
    }
    if (this.limboHead > 1024 && this.limboHead * 2 > this.limbo.length) {
      this.limbo = this.limbo.slice(this.limboHead);
      this.limboHead = 0;
    }
  }

  crashed(service: number, loseState: boolean): void {
    if (!loseState) return;
    this.pins[service]!.clear();
    this.transitPins[service]!.length = 0;
    this.known[service] = 0;
    this.lastSent[service] = 0;
  }

  restarted(service: number): void {
    this.arm(service);
    this.ctx.onNode(service, 0, () => this.announce(service));
  }

  stateSize(): number {
    return this.limbo.length - this.limboHead + this.ctx.services;
  }
}
