/**
 * Parameter sweeps: `--vary grace=1s..120s` (evenly spaced, `--steps` values) or
 * `--vary loss=0,0.05,0.1` (the values given). Each parameter names one place in the
 * scenario; the scenario is copied with each value in turn.
 */
import { UsageError } from '../errors.js';
import { parseDuration } from '../manifest/duration.js';
import type { Scenario } from './scenario.js';

type Unit = 'duration' | 'number' | 'integer';

interface Param {
  unit: Unit;
  describe: string;
  apply(s: Scenario, v: number): Scenario;
}

const leases = (s: Scenario, patch: Partial<Scenario['leases']>): Scenario => ({ ...s, leases: { ...s.leases, ...patch } });

export const VARY_PARAMS: Readonly<Record<string, Param>> = {
  grace: { unit: 'duration', describe: 'leases: grace', apply: (s, v) => leases(s, { graceMs: v }) },
  ttl: { unit: 'duration', describe: 'leases: ttl (the renewal interval stays unless given as a third of it)', apply: (s, v) => leases(s, { ttlMs: v }) },
  interval: { unit: 'duration', describe: 'leases: heartbeat (renewal) interval', apply: (s, v) => leases(s, { intervalMs: v }) },
  heartbeat: { unit: 'duration', describe: 'leases: renewal interval, with the ttl three times it (the daemon\'s default)', apply: (s, v) => leases(s, { intervalMs: v, ttlMs: 3 * v }) },
  sweep: { unit: 'duration', describe: 'leases: time between reap runs', apply: (s, v) => leases(s, { sweepEveryMs: v }) },
  minAge: { unit: 'duration', describe: 'leases: minAge', apply: (s, v) => leases(s, { minAgeMs: v }) },
  skew: { unit: 'duration', describe: 'clocks: skew (offsets drawn from ±skew)', apply: (s, v) => ({ ...s, clocks: { ...s.clocks, skewMs: v } }) },
  drift: { unit: 'number', describe: 'clocks: drift', apply: (s, v) => ({ ...s, clocks: { ...s.clocks, drift: v } }) },
  loss: { unit: 'number', describe: 'network: loss probability', apply: (s, v) => ({ ...s, network: { ...s.network, loss: v } }) },
  duplicate: { unit: 'number', describe: 'network: duplication probability', apply: (s, v) => ({ ...s, network: { ...s.network, duplicate: v } }) },
  jitter: { unit: 'duration', describe: 'network: jitter (reordering)', apply: (s, v) => ({ ...s, network: { ...s.network, jitterMs: v } }) },
  latency: { unit: 'duration', describe: 'network: latency', apply: (s, v) => ({ ...s, network: { ...s.network, latencyMs: v } }) },
  pause: { unit: 'duration', describe: 'faults: duration of every pause', apply: (s, v) => ({ ...s, faults: s.faults.map((f) => (f.kind === 'pause' ? { ...f, durationMs: v } : f)) }) },
  downtime: { unit: 'duration', describe: 'faults: downtime of every crash', apply: (s, v) => ({ ...s, faults: s.faults.map((f) => (f.kind === 'crash' ? { ...f, durationMs: v } : f)) }) },
  fanout: { unit: 'number', describe: 'workload: fan-out', apply: (s, v) => ({ ...s, workload: { ...s.workload, fanout: v } }) },
  trace: { unit: 'duration', describe: 'hybrid: time between backup traces', apply: (s, v) => ({ ...s, hybrid: { ...s.hybrid, traceEveryMs: v } }) },
  mark: { unit: 'duration', describe: 'mark-sweep: time between traces', apply: (s, v) => ({ ...s, markSweep: { ...s.markSweep, everyMs: v } }) },
  announce: { unit: 'duration', describe: 'epochs: announcement interval', apply: (s, v) => ({ ...s, epochs: { ...s.epochs, announceEveryMs: v } }) },
};

export interface Vary {
  param: string;
  unit: Unit;
  values: number[];
}

function value(text: string, unit: Unit, flag: string): number {
  if (unit === 'duration') {
    const ms = parseDuration(text);
    if (typeof ms !== 'number') throw new UsageError(`${flag}: ${ms.error}`);
    return ms;
  }
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${flag}: "${text}" is not a number ≥ 0`);
  return n;
}

/** Parse `NAME=A..B` or `NAME=V1,V2,…`. */
export function parseVary(text: string, steps: number): Vary {
  const flag = `--vary ${text}`;
  const eq = text.indexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  const param = VARY_PARAMS[name];
  if (!param) throw new UsageError(`${flag}: unknown parameter "${name}" (one of ${Object.keys(VARY_PARAMS).join(', ')})`);
  const spec = eq < 0 ? '' : text.slice(eq + 1);
  let values: number[];
  const range = /^([^.,]+)\.\.([^.,]+)$/.exec(spec);
  if (range) {
    const from = value(range[1]!, param.unit, flag);
    const to = value(range[2]!, param.unit, flag);
    if (to < from) throw new UsageError(`${flag}: the range runs backwards`);
    if (!Number.isInteger(steps) || steps < 2 || steps > 100) throw new UsageError('--steps: expected a whole number from 2 to 100');
    values = [...Array(steps).keys()].map((i) => from + ((to - from) * i) / (steps - 1));
    if (param.unit !== 'number') values = values.map(Math.round);
  } else if (spec.length > 0) {
    values = spec.split(',').map((v) => value(v, param.unit, flag));
  } else {
    throw new UsageError(`${flag}: give a range (${name}=A..B) or values (${name}=A,B,C)`);
  }
  if (name === 'loss' || name === 'duplicate' || name === 'drift') {
    if (values.some((v) => v > (name === 'drift' ? 0.5 : 1))) throw new UsageError(`${flag}: ${name} is at most ${name === 'drift' ? 0.5 : 1}`);
  }
  if ((name === 'interval' || name === 'heartbeat' || name === 'sweep' || name === 'ttl' || name === 'trace' || name === 'mark' || name === 'announce') && values.some((v) => v <= 0)) {
    throw new UsageError(`${flag}: ${name} must be more than 0`);
  }
  return { param: name, unit: param.unit, values: [...new Set(values)] };
}

export function applyVary(scenario: Scenario, vary: Vary, v: number): Scenario {
  return VARY_PARAMS[vary.param]!.apply(scenario, v);
}
