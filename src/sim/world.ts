/**
 * The simulated world: services that create resources, pass references and drop them
 * (the mutator), the faults that befall them, the network between them and the central
 * store, and the ground truth every strategy is judged against. One World runs one
 * strategy; the workload and the fault trace come from their own seeded streams, so
 * every strategy meets the same resources, references and faults.
 */
import { EventQueue } from './event-queue.js';
import { Metrics } from './metrics.js';
import { Prng } from './prng.js';
import type { MessageKind, Scenario } from './scenario.js';
import type { SimContext, Strategy, StrategyFactory } from './strategy.js';
import { Table, type Shape } from './table.js';

const SAMPLE_EVERY_MS = 60_000;

export class World implements SimContext {
  readonly queue = new EventQueue();
  readonly table = new Table();
  readonly metrics = new Metrics();
  readonly services: number;
  readonly central: number;
  readonly endMs: number;
  private time = 0;
  private readonly work: Prng;
  private readonly net: Prng;
  private readonly own: Prng;
  private readonly offsets: Float64Array;
  private readonly rates: Float64Array;
  private readonly incarnation: Int32Array;
  private readonly down: Uint8Array;
  private readonly pausedUntil: Float64Array;
  private readonly partitionedUntil: Float64Array;
  private registryDownUntil = 0;
  private kills = 0;
  private readonly holds: Map<number, number>[] = [];
  private readonly transit: Map<number, number>[] = [];
  /** Mutator actions waiting for a crashed service to come back. */
  private readonly waiting: (() => void)[][] = [];
  private holdingSeq = 0;
  private readonly lossKinds: ReadonlySet<MessageKind> | null;
  readonly strategy: Strategy;
  /** Every fault as it happened (the live mode replays them). */
  readonly faultLog: { at: number; kind: Scenario['faults'][number]['kind']; service: number; durationMs: number; loseState: boolean }[] = [];

  constructor(
    readonly scenario: Scenario,
    factory: StrategyFactory,
  ) {
    const n = scenario.services;
    this.services = n;
    this.central = n;
    this.endMs = scenario.durationMs + scenario.drainMs;
    this.work = new Prng(scenario.seed, 'workload');
    this.net = new Prng(scenario.seed, `network`);
    this.own = new Prng(scenario.seed, 'strategy');
    const clocks = new Prng(scenario.seed, 'clocks');
    this.offsets = new Float64Array(n + 1);
    this.rates = new Float64Array(n + 1).fill(1);
    for (let s = 0; s < n; s++) {
      this.offsets[s] = scenario.clocks.offsets[s] ?? clocks.uniform(-scenario.clocks.skewMs, scenario.clocks.skewMs);
      this.rates[s] = 1 + clocks.uniform(-scenario.clocks.drift, scenario.clocks.drift);
    }
    this.incarnation = new Int32Array(n + 1);
    this.down = new Uint8Array(n + 1);
    this.pausedUntil = new Float64Array(n + 1);
    this.partitionedUntil = new Float64Array(n + 1);
    for (let s = 0; s < n; s++) {
      this.holds.push(new Map());
      this.transit.push(new Map());
      this.waiting.push([]);
    }
    this.lossKinds = scenario.network.kinds ? new Set(scenario.network.kinds) : null;
    this.strategy = factory(this);
  }

  // ------------------------------------------------------------------ SimContext

  now(): number {
    return this.time;
  }

  clockOf(node: number): number {
    return this.time * this.rates[node]! + this.offsets[node]!;
  }

  onNode(node: number, delayMs: number, fn: () => void): void {
    const incarnation = this.incarnation[node]!;
    const run = () => {
      if (this.down[node] || this.incarnation[node] !== incarnation) return;
      if (this.pausedUntil[node]! > this.time) this.queue.push(this.pausedUntil[node]!, run);
      else fn();
    };
    this.queue.push(this.time + delayMs, run);
  }

  every(node: number, intervalMs: number, fn: () => void, jitter = 0): void {
    const tick = () => {
      fn();
      this.onNode(node, this.interval(node, intervalMs, jitter), tick);
    };
    this.onNode(node, this.interval(node, intervalMs, jitter), tick);
  }

  private interval(node: number, localMs: number, jitter: number): number {
    const jittered = jitter > 0 ? localMs * (1 - jitter + 2 * jitter * this.own.next()) : localMs;
    return jittered / this.rates[node]!;
  }

  send(from: number, to: number, kind: MessageKind, group: number, deliver: () => void): void {
    const m = this.metrics;
    m.messages++;
    const c = this.central;
    const cut = (from === c && to !== c && this.partitionedUntil[to]! > this.time) || (to === c && from !== c && this.partitionedUntil[from]! > this.time);
    if (cut || (to === c && !this.registryUp())) return m.lost(kind, group);
    const faulty = this.lossKinds === null || this.lossKinds.has(kind);
    const net = this.scenario.network;
    if (faulty && this.net.chance(net.loss)) return m.lost(kind, group);
    const arrive = (at: number) =>
      this.queue.push(at, () => {
        if (to === c) {
          if (this.registryUp()) deliver();
          else m.lost(kind, group);
        } else if (this.down[to]) m.lost(kind, group);
        else if (this.pausedUntil[to]! > this.time) this.onNode(to, this.pausedUntil[to]! - this.time, deliver);
        else deliver();
      });
    const first = this.time + net.latencyMs + (net.jitterMs > 0 ? this.net.uniform(0, net.jitterMs) : 0);
    arrive(first);
    if (faulty && this.net.chance(net.duplicate)) {
      m.duplicated(kind, group);
      arrive(first + this.net.uniform(0, Math.max(net.jitterMs, net.latencyMs)));
    }
  }

  registryUp(): boolean {
    return this.registryDownUntil <= this.time;
  }

  takeKill(): boolean {
    if (this.kills === 0) return false;
    this.kills--;
    this.metrics.count('collector kills', 1);
    return true;
  }

  deleteResource(resource: number): void {
    const t = this.table;
    if (t.deleted(resource)) {
      this.metrics.count('double deletes', 1);
      return;
    }
    t.markDeleted(resource, this.time);
    const g = t.groupOf(resource);
    if (t.refs(g) > 0) this.metrics.premature(g);
    else this.metrics.reclaimed(this.time - t.garbageAt(g));
  }

  storeOps(n: number): void {
    this.metrics.ops += n;
  }

  count(name: string, n = 1): void {
    this.metrics.count(name, n);
  }

  random(): number {
    return this.own.next();
  }

  holdsOf(service: number): ReadonlySet<number> {
    return new Set(this.holds[service]!.keys());
  }

  inTransitFrom(service: number): ReadonlyMap<number, number> {
    return this.transit[service]!;
  }

  /** Whether a service is up and not paused (for the live driver and tests). */
  isRunning(service: number): boolean {
    return !this.down[service] && this.pausedUntil[service]! <= this.time;
  }

  // ------------------------------------------------------------------ mutator

  /** Run a mutator action on a service: after a pause, after a restart; never while it is stopped. */
  private mutate(service: number, at: number, fn: () => void): void {
    const run = () => {
      if (this.down[service]) this.waiting[service]!.push(fn);
      else if (this.pausedUntil[service]! > this.time) this.queue.push(this.pausedUntil[service]!, run);
      else fn();
    };
    this.queue.push(at, run);
  }

  private drawLifetime(): number {
    const l = this.scenario.workload.lifetime;
    if (l.dist === 'fixed') return l.valueMs;
    if (l.dist === 'uniform') return this.work.uniform(l.minMs, l.maxMs);
    return this.work.exponential(l.meanMs);
  }

  private scheduleCreations(): void {
    const w = this.scenario.workload;
    const mean = this.scenario.durationMs / w.creations;
    let left = w.creations;
    // One event per creation: it creates (or defers the creation on a stopped creator) and schedules the next.
    const next = () => {
      // Everything about this creation is drawn now, so a deferred creation draws nothing later.
      const creator = this.work.int(this.services);
      const roll = this.work.next();
      let shape: Shape = 'single';
      let size = 1;
      if (w.cycles && roll < w.cycles.fraction) [shape, size] = ['cycle', w.cycles.length];
      else if (w.chains && roll < (w.cycles?.fraction ?? 0) + w.chains.fraction) [shape, size] = ['chain', w.chains.length];
      const life = this.drawLifetime();
      const k = Math.min(this.services - 1, this.work.poisson(w.fanout));
      const shares: { to: number; after: number; life: number }[] = [];
      const taken = new Set<number>([creator]);
      for (let i = 0; i < k; i++) {
        let to = this.work.int(this.services);
        while (taken.has(to)) to = (to + 1) % this.services;
        taken.add(to);
        shares.push({ to, after: this.work.next() * life, life: this.drawLifetime() });
      }
      if (--left > 0) this.queue.push(this.time + this.work.exponential(mean), next);
      const create = () => this.create(creator, shape, size, life, shares);
      if (this.isRunning(creator)) create();
      else this.mutate(creator, this.time, create);
    };
    this.queue.push(this.work.exponential(mean), next);
  }

  private hold(service: number, group: number, life: number): number {
    const token = ++this.holdingSeq;
    this.holds[service]!.set(group, token);
    this.mutate(service, this.time + life, () => this.drop(service, group, token));
    return token;
  }

  private create(creator: number, shape: Shape, size: number, life: number, shares: readonly { to: number; after: number; life: number }[]): void {
    if (this.time > this.endMs) return;
    const g = this.table.addGroup(shape, size, creator, this.time, this.clockOf(creator));
    const token = this.hold(creator, g, life);
    this.strategy.created(g, creator);
    for (const s of shares) this.mutate(creator, this.time + s.after, () => this.share(g, creator, token, s.to, s.life));
  }

  private share(group: number, from: number, token: number, to: number, life: number): void {
    if (this.holds[from]!.get(group) !== token) return; // dropped, or lost in a crash
    this.table.addRef(group, 1, this.time); // the reference in the message
    const transit = this.transit[from]!;
    transit.set(group, (transit.get(group) ?? 0) + 1);
    const payload = this.strategy.shared(group, from, to);
    // The mutator's own messages are reliable (the application retries them); only the collector's protocol is faulty.
    this.mutate(to, this.time + this.scenario.network.latencyMs, () => {
      const left = (transit.get(group) ?? 1) - 1;
      if (left > 0) transit.set(group, left);
      else transit.delete(group);
      if (this.holds[to]!.has(group)) {
        this.table.addRef(group, -1, this.time);
        return;
      }
      this.hold(to, group, life);
      this.strategy.received(group, from, to, payload);
    });
  }

  private drop(service: number, group: number, token: number): void {
    const holds = this.holds[service]!;
    if (holds.get(group) !== token) return;
    holds.delete(group);
    this.strategy.dropped(group, service);
    this.table.addRef(group, -1, this.time);
  }

  // ------------------------------------------------------------------ faults

  private scheduleFaults(): void {
    const rng = new Prng(this.scenario.seed, 'faults');
    for (const f of this.scenario.faults) {
      const targets = f.kind === 'registry-outage' || f.kind === 'collector-kill' ? [-1] : f.service !== undefined ? [f.service] : [...Array(this.services).keys()];
      for (const s of targets) {
        const times: number[] = [];
        if (f.atMs !== undefined) times.push(f.atMs);
        else for (let t = rng.exponential(f.everyMs!); t < this.endMs; t += rng.exponential(f.everyMs!)) times.push(t);
        for (const t of times) this.queue.push(t, () => this.fault(f.kind, s, f.durationMs, f.loseState));
      }
    }
  }

  private fault(kind: Scenario['faults'][number]['kind'], s: number, durationMs: number, loseState: boolean): void {
    const m = this.metrics;
    if (!(kind === 'pause' || kind === 'crash') || !this.down[s]) this.faultLog.push({ at: this.time, kind, service: s, durationMs, loseState });
    switch (kind) {
      case 'pause':
        if (this.down[s]) return;
        m.count('pauses', 1);
        this.pausedUntil[s] = Math.max(this.pausedUntil[s]!, this.time + durationMs);
        return;
      case 'partition':
        m.count('partitions', 1);
        this.partitionedUntil[s] = Math.max(this.partitionedUntil[s]!, this.time + durationMs);
        return;
      case 'registry-outage':
        m.count('registry outages', 1);
        this.registryDownUntil = Math.max(this.registryDownUntil, this.time + durationMs);
        return;
      case 'collector-kill':
        this.kills++;
        this.strategy.collectorKilled?.();
        return;
      case 'crash': {
        if (this.down[s]) return;
        m.count(loseState ? 'crashes losing state' : 'crashes keeping state', 1);
        this.down[s] = 1;
        this.incarnation[s]!++;
        this.pausedUntil[s] = 0;
        if (loseState) {
          const holds = this.holds[s]!;
          const lost = [...holds.keys()];
          holds.clear();
          for (const g of lost) this.table.addRef(g, -1, this.time);
          this.transit[s]!.clear();
        }
        this.strategy.crashed(s, loseState);
        this.queue.push(this.time + durationMs, () => {
          this.down[s] = 0;
          this.incarnation[s]!++;
          this.strategy.restarted(s, loseState);
          const waiting = this.waiting[s]!.splice(0);
          for (const fn of waiting) fn();
        });
        return;
      }
    }
  }

  // ------------------------------------------------------------------ run

  run(): void {
    this.strategy.start();
    this.scheduleCreations();
    this.scheduleFaults();
    const sample = () => {
      this.metrics.sampleState(this.strategy.stateSize());
      this.queue.push(this.time + SAMPLE_EVERY_MS, sample);
    };
    this.queue.push(0, sample);
    const q = this.queue;
    while (q.size > 0 && q.peekTime() <= this.endMs) {
      this.time = q.peekTime();
      q.pop()();
    }
    this.time = this.endMs;
    this.metrics.sampleState(this.strategy.stateSize());
  }
}
