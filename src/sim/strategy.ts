/**
 * What a garbage-collection strategy sees of the simulated world, and what it must
 * answer. The world owns the ground truth (who holds which reference) and the faults;
 * a strategy owns its protocol (messages, its store, its collector) and decides
 * deletions. Every strategy runs against the same workload and fault trace.
 */
import type { MessageKind, Scenario, StrategyName } from './scenario.js';

export interface SimContext {
  readonly scenario: Scenario;
  /** Number of services; services are nodes 0..services-1. */
  readonly services: number;
  /** The node of the collector and its store (the state store, the count table, the epoch table). */
  readonly central: number;
  /** True simulated time, ms. */
  now(): number;
  /** A node's own clock reading now (offset and drift applied); the central node's clock is true time. */
  clockOf(node: number): number;
  /** Run `fn` on `node` after `delayMs` of true time: later if the node is paused then, never if it crashed meanwhile. */
  onNode(node: number, delayMs: number, fn: () => void): void;
  /** Run `fn` on `node` every `intervalMs` by the node's own clock (jittered when asked), until it crashes. */
  every(node: number, intervalMs: number, fn: () => void, jitter?: number): void;
  /** Send a protocol message; `deliver` runs on `to` if it arrives (it may be lost, duplicated or delayed). */
  send(from: number, to: number, kind: MessageKind, group: number, deliver: () => void): void;
  /** Whether the central store answers now (a registry outage says no). */
  registryUp(): boolean;
  /** Take a pending collector kill: the sweep that asks is cut short. */
  takeKill(): boolean;
  /** Delete a resource (the world checks it against the ground truth). */
  deleteResource(resource: number): void;
  /** Count operations on a store (rows or objects read or written). */
  storeOps(n: number): void;
  /** Count a strategy-specific event (reported under `extras`). */
  count(name: string, n?: number): void;
  /** The strategy's own random stream. */
  random(): number;
  readonly table: ResourceTable;
  /** Groups a service holds now (ground truth, what the service itself knows). */
  holdsOf(service: number): ReadonlySet<number>;
  /** Groups a service has sent to another service and not yet seen delivered. */
  inTransitFrom(service: number): ReadonlyMap<number, number>;
}

/** Resources and groups. A group is one creation: a single resource, a chain or a cycle of owned resources. */
export interface ResourceTable {
  readonly groups: number;
  readonly resources: number;
  /** First resource of a group (its root); members are root..root+size-1. */
  first(group: number): number;
  size(group: number): number;
  shape(group: number): 'single' | 'chain' | 'cycle';
  groupOf(resource: number): number;
  /** The resource that owns this one (its ref owner), or -1 for a group root that is not in a cycle. */
  parentOf(resource: number): number;
  createdAt(resource: number): number;
  /** Creation time as the creator's clock stamped it. */
  stampOf(resource: number): number;
  creatorOf(group: number): number;
  deleted(resource: number): boolean;
}

export interface Strategy {
  readonly name: StrategyName;
  start(): void;
  /** A group was created; its creator holds a reference to the root. */
  created(group: number, creator: number): void;
  /** `from` passes a reference to `to` (the mutator's message follows); returns what travels with it. */
  shared(group: number, from: number, to: number): number;
  /** The reference arrived at `to` with what `shared` returned. */
  received(group: number, from: number, to: number, payload: number): void;
  /** `holder` dropped its reference. */
  dropped(group: number, holder: number): void;
  crashed(service: number, loseState: boolean): void;
  restarted(service: number, loseState: boolean): void;
  /** The collector process died now (its next sweep also finds the kill through `takeKill`). */
  collectorKilled?(): void;
  /** Entries the strategy keeps beside the resources (rows, marks, limbo lists): O(1). */
  stateSize(): number;
}

export type StrategyFactory = (ctx: SimContext) => Strategy;
