/**
 * Leases with heartbeats, grace and tombstone-then-delete — reaper's own design, decided
 * by reaper's own engine: every collector run classifies each resource with
 * `classify` (ref owners through `solveGraph`), trips on `breakerReasons` and
 * `capViolation`, marks with `markCandidates` and judges due tombstones with
 * `decideSweep`. What is simulated around the engine is what reaper's run layer, state
 * store and daemon do: a lease per holder and key (`res:<group>` on a group's root; the
 * other members are owned by `ref`), renewed in one batched message per tick, replaced
 * (never revived) once it ran out; a tombstone ledger; a write-ahead intent before each
 * delete, resolved by the next run when a run is killed mid-sweep.
 */
import { classify, isReapable, type LivenessAnswers } from '../../engine/classify.js';
import { nodeKey, solveGraph, type GraphNode } from '../../engine/graph.js';
import { breakerReasons, capViolation, decideSweep, markCandidates } from '../../engine/reap-plan.js';
import type { Finding, Liveness, ResourceRecord } from '../../engine/types.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { Present } from '../present.js';
import type { SimContext, Strategy } from '../strategy.js';

const TYPE = 'objects';
const KEY_PREFIX = 'res:';

interface LeaseRow {
  id: number;
  /** A group (its root's key) or, below zero, a service's session key. */
  key: number;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
  releasedAt: number;
  /** Deleted from the store by pruning (a holder still naming it learns it is gone). */
  pruned?: boolean;
}

interface Tomb {
  resource: number;
  fingerprint: string;
  owner: string | null;
  markedAt: number;
  /** `deleting`: the write-ahead intent is written and the outcome is not (a run died there). */
  state: 'marked' | 'deleting';
}

export class LeasesStrategy implements Strategy {
  readonly name = 'leases' as const;
  private readonly present = new Present();
  private readonly spec: ResourceSpec;
  private readonly records: (ResourceRecord | undefined)[] = [];
  private readonly nodes: (GraphNode | undefined)[] = [];
  /** Per run, each key's liveness once: `liveRun[g]` is the run that judged group g's key, `liveValue[g]` the answer. */
  private liveRun = new Int32Array(1024);
  private liveValue = new Uint8Array(1024);
  /** Lease rows in the store (pruning deletes ended ones). */
  private rowCount = 0;
  private readonly byKey = new Map<number, LeaseRow[]>();
  private leaseSeq = 0;
  /** Rows that were unexpired and unreleased when last looked at: the live-key count walks these, not all history. */
  private active = new Set<LeaseRow>();
  private runs = 0;
  /** A run that died leaves its per-type lock until it expires (reap --lock-ttl). */
  private lockedUntil = 0;
  /** What each holder believes it holds: key → its lease (by reference, standing for the lease id), null while it has none. */
  private readonly held: Map<number, LeaseRow | null>[] = [];
  private readonly tombs = new Map<number, Tomb>();
  private lastCounts: Record<string, number> | null = null;
  private readonly cfg: SimContext['scenario']['leases'];
  private readonly graph: boolean;

  constructor(private readonly ctx: SimContext) {
    this.cfg = ctx.scenario.leases;
    const c = this.cfg;
    this.spec = Object.freeze({
      name: TYPE,
      location: { kind: 'fs', path: '/simulated' },
      owners: [
        { extractor: { from: 'column', name: 'key' }, keyTemplate: `${KEY_PREFIX}{value}` },
        { extractor: { from: 'column', name: 'owner' }, ref: TYPE },
      ],
      minAgeMs: c.minAgeMs,
      graceMs: c.graceMs,
      batchSize: 500,
      maxDeletesPerRun: c.maxDeletesPerRun,
      maxDeleteFraction: c.maxDeleteFraction,
      onExpired: 'report',
      protect: [],
      ageFrom: 'mtime',
      line: null,
    } satisfies ResourceSpec);
    const w = ctx.scenario.workload;
    this.graph = (w.chains?.fraction ?? 0) > 0 || (w.cycles?.fraction ?? 0) > 0;
    for (let s = 0; s < ctx.services; s++) this.held.push(new Map());
  }

  // ------------------------------------------------------------------ holders (the daemon)

  start(): void {
    for (let s = 0; s < this.ctx.services; s++) this.startHolder(s);
    this.ctx.every(this.ctx.central, this.cfg.sweepEveryMs, () => this.reap());
  }

  private startHolder(s: number): void {
    // Every service holds its session key as well: the liveness source never looks empty while services run.
    this.hold(s, -1 - s);
    this.ctx.every(s, this.cfg.intervalMs, () => this.tick(s), 0.1);
  }

  /** The time a holder's writes carry: the store's clock (reaper), or the holder's own. */
  private stamp(s: number): number {
    return this.cfg.clock === 'store' ? this.ctx.now() : this.ctx.clockOf(s);
  }

  private hold(s: number, key: number): void {
    this.held[s]!.set(key, null);
    this.acquire(s, [key]);
  }

  private acquire(s: number, keys: readonly number[]): void {
    const ctx = this.ctx;
    const stamp = this.stamp(s);
    ctx.send(s, ctx.central, 'acquire', keys.length === 1 && keys[0]! >= 0 ? keys[0]! : -1, () => {
      const at = this.cfg.clock === 'store' ? ctx.now() : stamp;
      const granted = keys.map((key) => {
        const row: LeaseRow = { id: ++this.leaseSeq, key, acquiredAt: at, renewedAt: at, expiresAt: at + this.cfg.ttlMs, releasedAt: NaN };
        this.rowCount++;
        this.active.add(row);
        let list = this.byKey.get(key);
        if (!list) this.byKey.set(key, (list = []));
        list.push(row);
        return row;
      });
      ctx.storeOps(keys.length);
      ctx.send(ctx.central, s, 'reply', -1, () => {
        const mine = this.held[s]!;
        keys.forEach((key, i) => {
          if (mine.get(key) === null) mine.set(key, granted[i]!);
        });
      });
    });
  }

  /** One heartbeat: renew every held lease in one message; keys without a lease are acquired. */
  private tick(s: number): void {
    const ctx = this.ctx;
    const mine = this.held[s]!;
    const keys: number[] = [];
    const leases: LeaseRow[] = [];
    const missing: number[] = [];
    for (const [key, row] of mine) {
      if (row === null) missing.push(key);
      else {
        keys.push(key);
        leases.push(row);
      }
    }
    if (missing.length) this.acquire(s, missing);
    if (leases.length === 0) return;
    const stamp = this.stamp(s);
    ctx.send(s, ctx.central, 'renew', -1, () => {
      const now = ctx.now();
      const at = this.cfg.clock === 'store' ? now : stamp;
      const lost: number[] = [];
      for (let i = 0; i < leases.length; i++) {
        const row = leases[i]!;
        // A lease that ran out or was released is never revived (docs/safety.md §15); a holder-written registry just overwrites.
        if (row.pruned || !Number.isNaN(row.releasedAt) || (this.cfg.clock === 'store' && row.expiresAt <= now)) {
          lost.push(i);
          continue;
        }
        row.renewedAt = at;
        row.expiresAt = at + this.cfg.ttlMs;
      }
      ctx.storeOps(leases.length);
      ctx.send(ctx.central, s, 'reply', -1, () => {
        if (lost.length === 0) return;
        ctx.count('leases replaced', lost.length);
        const again: number[] = [];
        for (const i of lost) {
          if (mine.get(keys[i]!) !== leases[i]) continue;
          mine.set(keys[i]!, null);
          again.push(keys[i]!);
        }
        if (again.length) this.acquire(s, again);
      });
    });
  }

  created(group: number, creator: number): void {
    const t = this.ctx.table;
    for (let r = t.first(group); r < t.first(group) + t.size(group); r++) this.present.add(r);
    this.ctx.storeOps(t.size(group));
    this.hold(creator, group);
  }

  shared(): number {
    return 0;
  }

  received(group: number, _from: number, to: number): void {
    this.hold(to, group);
  }

  dropped(group: number, holder: number): void {
    const mine = this.held[holder]!;
    const row = mine.get(group);
    mine.delete(group);
    if (!this.cfg.releaseOnDrop || !row) return; // otherwise the lease runs out within a ttl
    const ctx = this.ctx;
    ctx.send(holder, ctx.central, 'release', group, () => {
      if (!row.pruned && Number.isNaN(row.releasedAt)) row.releasedAt = ctx.now();
      ctx.storeOps(1);
    });
  }

  crashed(service: number, loseState: boolean): void {
    if (loseState) this.held[service]!.clear();
  }

  restarted(service: number, loseState: boolean): void {
    if (loseState) this.startHolder(service);
    else {
      this.ctx.every(service, this.cfg.intervalMs, () => this.tick(service), 0.1);
      this.ctx.onNode(service, 0, () => this.tick(service));
    }
  }

  // ------------------------------------------------------------------ the store's answers

  private live(key: number, now: number): boolean {
    const list = this.byKey.get(key);
    if (!list) return false;
    for (const row of list) if (Number.isNaN(row.releasedAt) && row.expiresAt > now) return true;
    return false;
  }

  private liveOnce(group: number, now: number, run: number): boolean {
    if (group >= this.liveRun.length) {
      const size = Math.max(group + 1, this.liveRun.length * 2);
      const runs = new Int32Array(size);
      runs.set(this.liveRun);
      const values = new Uint8Array(size);
      values.set(this.liveValue);
      this.liveRun = runs;
      this.liveValue = values;
    }
    if (this.liveRun[group] !== run) {
      this.liveRun[group] = run;
      this.liveValue[group] = this.live(group, now) ? 1 : 0;
    }
    return this.liveValue[group] === 1;
  }

  /** keysActiveSince: a lease on the key acquired or renewed at or after `since`. */
  private activeSince(owner: string | null, since: number): boolean {
    if (owner === null || !owner.startsWith(KEY_PREFIX)) return false;
    const list = this.byKey.get(Number(owner.slice(KEY_PREFIX.length)));
    return list !== undefined && list.some((row) => row.acquiredAt >= since || row.renewedAt >= since);
  }

  private record(r: number): ResourceRecord {
    let rec = this.records[r];
    if (!rec) {
      const t = this.ctx.table;
      const g = t.groupOf(r);
      const parent = t.parentOf(r);
      rec = {
        id: String(r),
        createdAtMs: t.stampOf(r),
        bytes: null,
        fingerprint: `${r}:1`,
        columns: { key: r === t.first(g) ? String(g) : null, owner: parent >= 0 ? String(parent) : null },
      };
      this.records[r] = rec;
    }
    return rec;
  }

  private node(r: number): GraphNode {
    let node = this.nodes[r];
    if (!node) this.nodes[r] = node = { type: TYPE, id: String(r), record: this.record(r) };
    return node;
  }

  // ------------------------------------------------------------------ the collector (a reap run)

  private reap(): void {
    const ctx = this.ctx;
    if (!ctx.registryUp()) {
      ctx.count('runs failed (store down)');
      return;
    }
    const now = ctx.now();
    if (now < this.lockedUntil) {
      ctx.count('runs refused (lock)');
      return;
    }
    const liveKeys = this.countLiveKeys(now);
    ctx.storeOps(1);
    const counts = { leases: liveKeys };
    if (breakerReasons({ counts, errors: {} }, this.lastCounts, this.cfg.breaker).length > 0) {
      ctx.count('runs refused (breaker)');
      return;
    }

    const scan = this.present.snapshot();
    ctx.storeOps(scan.length);
    const records: ResourceRecord[] = new Array(scan.length);
    for (let i = 0; i < scan.length; i++) records[i] = this.record(scan[i]!);
    const run = ++this.runs;
    const keyAnswer = (key: string): Liveness => (key.startsWith(KEY_PREFIX) && this.liveOnce(Number(key.slice(KEY_PREFIX.length)), now, run) ? 'live' : 'dead');
    const refLiveness = this.graph ? this.solve(scan, keyAnswer, now) : null;
    const answers: LivenessAnswers = { key: keyAnswer, ref: (_type, id) => refLiveness?.get(nodeKey(TYPE, id)) ?? 'dead' };
    const findings: Finding[] = records.map((rec) => classify(rec, this.spec, answers, now));
    const byResource = new Map<number, number>();
    scan.forEach((r, i) => byResource.set(r, i));

    // markCandidates judges reapability itself; it is handed only the findings that can pass, so a run does not re-index every record.
    const reapable = findings.filter((f) => isReapable(f, this.spec) && !this.tombs.has(Number(f.id)));
    const marks = markCandidates(
      reapable,
      reapable.map((f) => records[byResource.get(Number(f.id))!]!),
      this.spec,
      new Set<string>(),
    );
    const deletes: Tomb[] = [];
    const lifts: Tomb[] = [];
    for (const tomb of this.tombs.values()) {
      if (tomb.state === 'marked' && tomb.markedAt > now - this.cfg.graceMs) continue;
      const i = byResource.get(tomb.resource);
      const decision = decideSweep(tomb, i === undefined ? undefined : records[i], i === undefined ? undefined : findings[i], this.activeSince(tomb.owner, tomb.markedAt), this.spec);
      if (decision.action === 'delete') deletes.push(tomb);
      else if (decision.action === 'lift') lifts.push(tomb);
    }
    ctx.storeOps(this.tombs.size);
    if (capViolation(this.spec, { resource: TYPE, scanned: scan.length, toMark: marks.length, toSweep: deletes.length }) !== null) {
      ctx.count('runs refused (cap)');
      return;
    }

    for (const m of marks) this.tombs.set(Number(m.id), { resource: Number(m.id), fingerprint: m.fingerprint, owner: m.owner, markedAt: now, state: 'marked' });
    ctx.storeOps(marks.length);
    for (const tomb of lifts) {
      this.tombs.delete(tomb.resource);
      // A resource gone already (an intent whose delete went through before the run died) is simply done.
      if (!ctx.table.deleted(tomb.resource)) ctx.count('lifts');
    }
    ctx.storeOps(lifts.length);
    // A kill lands on the first run that deletes something, as reaper's after-journal failpoint does: some
    // batches done, then the write-ahead intents of the next one written and none of its deletes sent.
    const batch = this.spec.batchSize;
    const cut = deletes.length > 0 && ctx.takeKill() ? batch * Math.floor(ctx.random() * Math.ceil(deletes.length / batch)) : -1;
    for (let i = 0; i < deletes.length; i++) {
      const tomb = deletes[i]!;
      if (i === cut) {
        for (const t of deletes.slice(cut, cut + batch)) t.state = 'deleting';
        ctx.storeOps(Math.min(batch, deletes.length - cut));
        ctx.count('runs killed mid-sweep');
        this.lockedUntil = now + this.cfg.lockTtlMs;
        return;
      }
      this.remove(tomb.resource);
      this.tombs.delete(tomb.resource);
      ctx.storeOps(3); // intent, delete, outcome
    }
    this.lastCounts = counts;
    // Pruning walks every lease on record: once per retention period is enough to bound the table.
    if (run % Math.max(1, Math.ceil(this.cfg.leaseRetentionMs / this.cfg.sweepEveryMs)) === 0) this.prune(now);
  }

  /** countLiveKeys: distinct keys with an unexpired, unreleased lease. */
  private countLiveKeys(now: number): number {
    const keys = new Set<number>();
    for (const row of this.active) {
      if (!Number.isNaN(row.releasedAt) || row.expiresAt <= now) {
        // A holder-written expiry can move forward again; a store-judged lease that ran out never comes back.
        if (this.cfg.clock === 'store' || !Number.isNaN(row.releasedAt)) this.active.delete(row);
        continue;
      }
      keys.add(row.key);
    }
    return keys.size;
  }

  private remove(resource: number): void {
    if (!this.present.has(resource)) return;
    this.present.remove(resource);
    this.records[resource] = undefined;
    this.nodes[resource] = undefined;
    this.ctx.deleteResource(resource);
  }

  /** Graph liveness for the members of chains and cycles (the other resources own nothing and are owned by nothing). */
  private solve(scan: Int32Array, keyAnswer: (key: string) => Liveness, now: number): Map<string, Liveness> {
    const t = this.ctx.table;
    const nodes = new Map<string, GraphNode>();
    for (const r of scan) {
      if (t.shape(t.groupOf(r)) === 'single') continue;
      const node = this.node(r);
      nodes.set(nodeKey(TYPE, node.id), node);
      const parent = t.parentOf(r);
      if (parent >= 0 && !this.present.has(parent)) nodes.set(nodeKey(TYPE, String(parent)), { type: TYPE, id: String(parent), record: null });
    }
    return solveGraph(nodes, new Map([[TYPE, this.spec]]), keyAnswer, now);
  }

  /** Delete leases that ended longer ago than the retention, unless a pending tombstone may still ask about them. */
  private prune(now: number): void {
    let earliestMark = Infinity;
    for (const tomb of this.tombs.values()) if (tomb.markedAt < earliestMark) earliestMark = tomb.markedAt;
    const cutoff = now - this.cfg.leaseRetentionMs;
    for (const [key, list] of this.byKey) {
      const kept = list.filter((row) => {
        const ended = Number.isNaN(row.releasedAt) ? row.expiresAt : Math.min(row.releasedAt, row.expiresAt);
        const keep = ended > cutoff || row.renewedAt >= earliestMark || row.acquiredAt >= earliestMark;
        if (!keep) {
          row.pruned = true;
          this.rowCount--;
          this.active.delete(row);
        }
        return keep;
      });
      if (kept.length === 0) this.byKey.delete(key);
      else if (kept.length !== list.length) this.byKey.set(key, kept);
    }
  }

  stateSize(): number {
    return this.rowCount + this.tombs.size;
  }
}
