/**
 * The workload and fault trace of a scenario as the simulator's World produces it, for the
 * live mode to replay: a strategy that decides nothing and writes down what the mutator did.
 */
import type { Scenario } from '../scenario.js';
import type { Strategy } from '../strategy.js';
import type { Table } from '../table.js';
import { World } from '../world.js';

export interface TraceEvent {
  at: number;
  type: 'create' | 'receive' | 'drop' | 'crash' | 'restart';
  group: number;
  service: number;
  loseState?: boolean;
}

export interface Trace {
  events: TraceEvent[];
  faults: World['faultLog'];
  table: Table;
  endMs: number;
}

export function recordTrace(scenario: Scenario): Trace {
  const events: TraceEvent[] = [];
  let world: World | null = null;
  const at = () => world!.now();
  const recorder = (): Strategy => ({
    name: 'leases',
    start() {},
    created: (group, service) => void events.push({ at: at(), type: 'create', group, service }),
    shared: () => 0,
    received: (group, _from, service) => void events.push({ at: at(), type: 'receive', group, service }),
    dropped: (group, service) => void events.push({ at: at(), type: 'drop', group, service }),
    crashed: (service, loseState) => void events.push({ at: at(), type: 'crash', group: -1, service, loseState }),
    restarted: (service, loseState) => void events.push({ at: at(), type: 'restart', group: -1, service, loseState }),
    stateSize: () => 0,
  });
  world = new World(scenario, recorder);
  world.run();
  return { events, faults: world.faultLog, table: world.table, endMs: world.endMs };
}
