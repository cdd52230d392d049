/**
 * Scenarios for `reaper simulate`: a YAML file validated by a zod schema, like the
 * manifest (every issue as `file:line: key.path: message`, exit 2). Durations are the
 * manifest's (`500ms`, `30s`, `10m`); clock offsets may be negative (`-40s`).
 * `parseScenario` returns the scenario with defaults applied and durations in ms.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { ManifestError, type ManifestIssue } from '../errors.js';
import { parseDuration } from '../manifest/duration.js';
import { formatPath } from '../manifest/yaml.js';

export const MAX_SCENARIO_BYTES = 256 * 1024;

/** A bare number (`grace: 10`) gets the duration parser's "has no unit" rather than a type error. */
const asText = (v: unknown) => (typeof v === 'number' ? String(v) : v);
const duration = z.preprocess(
  asText,
  z.string().superRefine((text, ctx) => {
    const parsed = parseDuration(text);
    if (typeof parsed !== 'number') ctx.addIssue({ code: 'custom', message: parsed.error });
  }),
);
const signedDuration = z.preprocess(
  asText,
  z.string().superRefine((text, ctx) => {
    const parsed = parseDuration(text.trim().replace(/^-/, ''));
    if (typeof parsed !== 'number') ctx.addIssue({ code: 'custom', message: parsed.error });
  }),
);
const probability = z.number().min(0).max(1);
const serviceRef = z.number().int().min(0);

const lifetime = z.discriminatedUnion('dist', [
  z.strictObject({ dist: z.literal('exponential'), mean: duration }),
  z.strictObject({ dist: z.literal('fixed'), value: duration }),
  z.strictObject({ dist: z.literal('uniform'), min: duration, max: duration }),
]);

const shape = z.strictObject({ fraction: probability, length: z.number().int().min(2).max(64) });

/** When a fault happens: once `at` a time, or as a Poisson process with a mean interval `every`. */
const when = { at: duration.optional(), every: duration.optional() };

const fault = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('pause'), service: serviceRef.optional(), ...when, duration }),
  z.strictObject({ kind: z.literal('crash'), service: serviceRef.optional(), ...when, downtime: duration, loseState: z.boolean() }),
  z.strictObject({ kind: z.literal('partition'), service: serviceRef.optional(), ...when, duration }),
  z.strictObject({ kind: z.literal('registry-outage'), ...when, duration }),
  z.strictObject({ kind: z.literal('collector-kill'), ...when }),
]);

export const STRATEGY_NAMES = ['refcount', 'weighted-refcount', 'leases', 'mark-sweep', 'epochs', 'hybrid'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export const MESSAGE_KINDS = ['increment', 'decrement', 'acquire', 'renew', 'release', 'reply', 'snapshot', 'roots', 'shade', 'announce', 'retire'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

export const scenarioSchema = z.strictObject({
  version: z.literal(1),
  name: z.string().max(200).optional(),
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  /** How long services create resources. */
  duration,
  /** How long the simulation goes on afterwards, so that garbage can be reclaimed (default 1h). */
  drain: duration.optional(),
  services: z.number().int().min(1).max(1000),
  workload: z.strictObject({
    /** How many creations over `duration` (Poisson arrivals); each is one resource, or a chain or cycle of `length`. */
    creations: z.number().int().min(1).max(10_000_000),
    /** How long each holder keeps its reference. */
    lifetime,
    /** Mean number of other services the creator passes a reference to (Poisson, at most services − 1). */
    fanout: z.number().min(0).max(64).optional(),
    chains: shape.optional(),
    cycles: shape.optional(),
  }),
  network: z
    .strictObject({
      latency: duration.optional(),
      /** Extra delay drawn uniformly from [0, jitter] per message: > 0 reorders messages. */
      jitter: duration.optional(),
      loss: probability.optional(),
      duplicate: probability.optional(),
      /** The message kinds loss and duplication apply to (default: all). */
      kinds: z.array(z.enum(MESSAGE_KINDS)).min(1).optional(),
    })
    .optional(),
  clocks: z
    .strictObject({
      /** Each service's clock offset is drawn from [-skew, +skew]. */
      skew: duration.optional(),
      /** Each service's clock rate error is drawn from [-drift, +drift] (0.0001 = 100 ppm). */
      drift: z.number().min(0).max(0.5).optional(),
      /** Offsets for given services (`"1": -40s`), overriding the draw. */
      offsets: z.record(z.string().regex(/^\d+$/, 'a service number'), signedDuration).optional(),
    })
    .optional(),
  faults: z.array(fault).max(1000).optional(),
  compare: z.array(z.enum(STRATEGY_NAMES)).min(1).optional(),
  strategies: z
    .strictObject({
      leases: z
        .strictObject({
          ttl: duration.optional(),
          interval: duration.optional(),
          grace: duration.optional(),
          sweepEvery: duration.optional(),
          minAge: duration.optional(),
          /** Who stamps lease times: the state store's clock (reaper) or the holder's own (a registry the service writes). */
          clock: z.enum(['store', 'holder']).optional(),
          releaseOnDrop: z.boolean().optional(),
          maxDeletesPerRun: z.number().int().min(1).optional(),
          maxDeleteFraction: z.number().gt(0).max(1).optional(),
          breaker: z.strictObject({ maxDrop: z.number().min(0).max(1), minLiveKeys: z.number().int().min(0) }).optional(),
          leaseRetention: duration.optional(),
          /** How long the per-type lock of a run that died keeps the next runs out (reap --lock-ttl). */
          lockTtl: duration.optional(),
        })
        .optional(),
      refcount: z.strictObject({}).optional(),
      'weighted-refcount': z.strictObject({ weight: z.number().int().min(2).max(2 ** 30).optional() }).optional(),
      'mark-sweep': z.strictObject({ every: duration.optional(), timeout: duration.optional() }).optional(),
      epochs: z.strictObject({ announceEvery: duration.optional(), persistLimbo: z.boolean().optional() }).optional(),
      hybrid: z.strictObject({ traceEvery: duration.optional(), timeout: duration.optional() }).optional(),
    })
    .optional(),
});

export type ScenarioInput = z.infer<typeof scenarioSchema>;

export type Lifetime = { dist: 'exponential'; meanMs: number } | { dist: 'fixed'; valueMs: number } | { dist: 'uniform'; minMs: number; maxMs: number };

export interface FaultSpec {
  kind: 'pause' | 'crash' | 'partition' | 'registry-outage' | 'collector-kill';
  /** A single service, or every service (undefined) for service faults. */
  service?: number;
  atMs?: number;
  everyMs?: number;
  durationMs: number;
  loseState: boolean;
}

export interface LeasesConfig {
  ttlMs: number;
  intervalMs: number;
  graceMs: number;
  sweepEveryMs: number;
  minAgeMs: number;
  clock: 'store' | 'holder';
  releaseOnDrop: boolean;
  maxDeletesPerRun: number;
  maxDeleteFraction: number;
  breaker: { maxDrop: number; minLiveKeys: number };
  leaseRetentionMs: number;
  lockTtlMs: number;
}

export interface Scenario {
  name: string;
  seed: number;
  durationMs: number;
  drainMs: number;
  services: number;
  workload: {
    creations: number;
    lifetime: Lifetime;
    fanout: number;
    chains: { fraction: number; length: number } | null;
    cycles: { fraction: number; length: number } | null;
  };
  network: { latencyMs: number; jitterMs: number; loss: number; duplicate: number; kinds: readonly MessageKind[] | null };
  clocks: { skewMs: number; drift: number; offsets: Readonly<Record<number, number>> };
  faults: readonly FaultSpec[];
  compare: readonly StrategyName[];
  leases: LeasesConfig;
  weightedRefcount: { weight: number };
  markSweep: { everyMs: number; timeoutMs: number };
  epochs: { announceEveryMs: number; persistLimbo: boolean };
  hybrid: { traceEveryMs: number; timeoutMs: number };
}

const ms = (text: string): number => parseDuration(text) as number;
const signedMs = (text: string): number => (text.trim().startsWith('-') ? -ms(text.trim().slice(1)) : ms(text));

/** Apply defaults and convert durations. The input has passed the schema. */
export function normalizeScenario(input: ScenarioInput, seedOverride?: number): Scenario {
  const w = input.workload;
  const l = input.strategies?.leases ?? {};
  const ttlMs = ms(l.ttl ?? '30s');
  const lt = w.lifetime;
  return {
    name: input.name ?? 'scenario',
    seed: seedOverride ?? input.seed ?? 1,
    durationMs: ms(input.duration),
    drainMs: ms(input.drain ?? '1h'),
    services: input.services,
    workload: {
      creations: w.creations,
      lifetime: lt.dist === 'exponential' ? { dist: 'exponential', meanMs: ms(lt.mean) } : lt.dist === 'fixed' ? { dist: 'fixed', valueMs: ms(lt.value) } : { dist: 'uniform', minMs: ms(lt.min), maxMs: ms(lt.max) },
      fanout: w.fanout ?? 0,
      chains: w.chains ?? null,
      cycles: w.cycles ?? null,
    },
    network: {
      latencyMs: ms(input.network?.latency ?? '5ms'),
      jitterMs: ms(input.network?.jitter ?? '0ms'),
      loss: input.network?.loss ?? 0,
      duplicate: input.network?.duplicate ?? 0,
      kinds: input.network?.kinds ?? null,
    },
    clocks: {
      skewMs: ms(input.clocks?.skew ?? '0ms'),
      drift: input.clocks?.drift ?? 0,
      offsets: Object.fromEntries(Object.entries(input.clocks?.offsets ?? {}).map(([k, v]) => [Number(k), signedMs(v)])),
    },
    faults: (input.faults ?? []).map((f) => ({
      kind: f.kind,
      service: 'service' in f ? f.service : undefined,
      atMs: f.at === undefined ? undefined : ms(f.at),
      everyMs: f.every === undefined ? undefined : ms(f.every),
      durationMs: 'duration' in f ? ms(f.duration) : 'downtime' in f ? ms(f.downtime) : 0,
      loseState: 'loseState' in f ? f.loseState : false,
    })),
    compare: input.compare ?? STRATEGY_NAMES,
    leases: {
      ttlMs,
      intervalMs: l.interval === undefined ? Math.max(1, Math.floor(ttlMs / 3)) : ms(l.interval),
      graceMs: ms(l.grace ?? '2m'),
      sweepEveryMs: ms(l.sweepEvery ?? '1m'),
      minAgeMs: ms(l.minAge ?? '30s'),
      clock: l.clock ?? 'store',
      releaseOnDrop: l.releaseOnDrop ?? false,
      maxDeletesPerRun: l.maxDeletesPerRun ?? 10_000,
      maxDeleteFraction: l.maxDeleteFraction ?? 0.5,
      breaker: l.breaker ?? { maxDrop: 0.5, minLiveKeys: 1 },
      leaseRetentionMs: ms(l.leaseRetention ?? '1h'),
      lockTtlMs: ms(l.lockTtl ?? '2m'),
    },
    weightedRefcount: { weight: input.strategies?.['weighted-refcount']?.weight ?? 65_536 },
    markSweep: { everyMs: ms(input.strategies?.['mark-sweep']?.every ?? '1m'), timeoutMs: ms(input.strategies?.['mark-sweep']?.timeout ?? '10s') },
    epochs: { announceEveryMs: ms(input.strategies?.epochs?.announceEvery ?? '10s'), persistLimbo: input.strategies?.epochs?.persistLimbo ?? false },
    hybrid: { traceEveryMs: ms(input.strategies?.hybrid?.traceEvery ?? '10m'), timeoutMs: ms(input.strategies?.hybrid?.timeout ?? '10s') },
  };
}

/** Checks the schema cannot express; each names its key. */
function semanticIssues(input: ScenarioInput): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  (input.faults ?? []).forEach((f, i) => {
    if ((f.at === undefined) === (f.every === undefined)) out.push({ path: ['faults', i], message: 'give exactly one of at (once) or every (a mean interval)' });
    if (f.every !== undefined && ms(f.every) === 0) out.push({ path: ['faults', i, 'every'], message: 'must be more than 0' });
    if ('service' in f && f.service !== undefined && f.service >= input.services) out.push({ path: ['faults', i, 'service'], message: `there are ${input.services} services, numbered from 0` });
  });
  for (const key of Object.keys(input.clocks?.offsets ?? {})) {
    if (Number(key) >= input.services) out.push({ path: ['clocks', 'offsets', key], message: `there are ${input.services} services, numbered from 0` });
  }
  const l = input.strategies?.leases;
  if (l) {
    const ttl = ms(l.ttl ?? '30s');
    if (ttl === 0) out.push({ path: ['strategies', 'leases', 'ttl'], message: 'must be more than 0' });
    if (l.interval !== undefined && (ms(l.interval) === 0 || ms(l.interval) > ttl)) out.push({ path: ['strategies', 'leases', 'interval'], message: 'must be more than 0 and at most the ttl' });
    if (l.sweepEvery !== undefined && ms(l.sweepEvery) === 0) out.push({ path: ['strategies', 'leases', 'sweepEvery'], message: 'must be more than 0' });
  }
  for (const [name, key] of [['mark-sweep', 'every'], ['epochs', 'announceEvery'], ['hybrid', 'traceEvery']] as const) {
    const value = (input.strategies?.[name] as Record<string, string | undefined> | undefined)?.[key];
    if (value !== undefined && ms(value) === 0) out.push({ path: ['strategies', name, key], message: 'must be more than 0' });
  }
  if (ms(input.duration) === 0) out.push({ path: ['duration'], message: 'must be more than 0' });
  const lt = input.workload.lifetime;
  if (lt.dist === 'uniform' && ms(lt.min) > ms(lt.max)) out.push({ path: ['workload', 'lifetime', 'min'], message: 'is more than max' });
  return out;
}

/** Parse scenario text; throws ManifestError (exit 2) naming file, line and key for every issue. */
export function parseScenario(text: string, file: string, seedOverride?: number): Scenario {
  if (Buffer.byteLength(text) > MAX_SCENARIO_BYTES) throw new ManifestError([{ file, line: null, path: '', message: `the scenario is larger than ${MAX_SCENARIO_BYTES} bytes` }]);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, strict: true, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? null : lines.linePos(offset).line);
  if (doc.errors.length > 0) {
    throw new ManifestError(doc.errors.map((e) => ({ file, line: lineOf(e.pos[0]), path: '', message: `invalid YAML: ${e.message.split('\n')[0]}` })));
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (error) {
    throw new ManifestError([{ file, line: null, path: '', message: `invalid YAML: ${(error as Error).message.split('\n')[0]}` }]);
  }
  const issueAt = (p: readonly (string | number)[], message: string): ManifestIssue => ({ file, line: lineOf(offsetOf(doc.contents, p)), path: formatPath(p), message });
  const result = scenarioSchema.safeParse(data);
  if (!result.success) {
    throw new ManifestError(
      result.error.issues.flatMap((i) => {
        const p = i.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
        if (i.code === 'unrecognized_keys') return i.keys.map((k) => issueAt([...p, k], `unknown key "${k}"`));
        return [issueAt(p, /received undefined$/.test(i.message) ? 'is required' : i.message.replace(/^Invalid (input|option): /, ''))];
      }),
    );
  }
  const semantic = semanticIssues(result.data);
  if (semantic.length > 0) throw new ManifestError(semantic.map((s) => issueAt(s.path, s.message)));
  return normalizeScenario(result.data, seedOverride);
}

/** Offset of the node at a key path (the deepest one that exists). */
function offsetOf(root: unknown, keyPath: readonly (string | number)[]): number | undefined {
  let node = root as Node | null;
  let offset = node?.range?.[0];
  for (const segment of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}
