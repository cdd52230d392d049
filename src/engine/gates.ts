/**
 * Leak gates (`--fail-on EXPR`), pure: parse a gate and evaluate gates against an audit's
 * telemetry (counting only new findings when there is a baseline).
 *
 * Grammar (spaces around tokens are allowed):
 *
 *   gate     := [TYPE ":"] METRIC OP VALUE
 *   TYPE     := a resource type of the manifest (letters, digits, "-", "_", ".")
 *   OP       := ">" | ">=" | "<" | "<=" | "==" | "!="
 *   METRIC   := orphaned | expired | protected | young | unknown | live | scanned   (VALUE: a number of resources)
 *             | orphanBytes                                                      (VALUE: bytes, units B KB MB GB TB KiB MiB GiB TiB)
 *             | backlog                                                          (VALUE: tombstones awaiting sweep)
 *             | avgAgeBeyondTtl | maxAgeBeyondTtl | oldestOrphanAge             (VALUE: seconds, or 30s 10m 24h 7d)
 *             | renewalFailureRate                                               (VALUE: a ratio 0..1, or a percentage 5%)
 *
 * A gate fails when `actual OP VALUE` holds: `orphaned>0` fails as soon as one resource is
 * orphaned. Without TYPE a gate measures all resource types together: counts, bytes and
 * backlog are summed; the age metrics take the worst (largest) type; renewalFailureRate is
 * global and takes no TYPE. An age with nothing to measure (no resource past its ttl, no
 * orphan) counts as 0.
 *
 * Baselines (baseline.ts): with one, the status counts `orphaned`, `expired`, `protected`,
 * `young`, `unknown` and `orphanBytes` count only current findings the baseline does not
 * hold — known leaks stop failing the build, new ones still do. `live` and `scanned` are not
 * findings and are always the full totals; backlog, ages and renewalFailureRate are unaffected.
 */
import { formatBytes, formatSeconds } from '../util/format.js';
import { closestWord } from '../util/suggest.js';
import { GateError, NewFindingsTally, type GateFinding } from './baseline.js';
import type { ScanCounts } from './types.js';

export const GATE_OPERATORS = ['>', '>=', '<', '<=', '==', '!='] as const;
export type GateOperator = (typeof GATE_OPERATORS)[number];

const COUNT_METRICS = ['orphaned', 'expired', 'protected', 'young', 'unknown', 'live', 'scanned'] as const;
const AGE_METRICS = ['avgAgeBeyondTtl', 'maxAgeBeyondTtl', 'oldestOrphanAge'] as const;
export const GATE_METRICS = [...COUNT_METRICS, 'orphanBytes', 'backlog', ...AGE_METRICS, 'renewalFailureRate'] as const;
export type GateMetric = (typeof GATE_METRICS)[number];
type CountMetric = (typeof COUNT_METRICS)[number];
type AgeMetric = (typeof AGE_METRICS)[number];

export interface Gate {
  /** The gate as written, without spaces: `scratch-uploads:orphaned>0`. */
  text: string;
  /** The resource type it is limited to; null for all types. */
  resource: string | null;
  metric: GateMetric;
  op: GateOperator;
  /** The threshold in the metric's base unit: resources, bytes, seconds, or a ratio. */
  value: number;
}

/** The parts of an audit document gates read (AuditDocument satisfies it). */
export interface GateResourceTelemetry extends ScanCounts {
  name: string;
  /** Average (and maximum) of age − ttl over resources past their ttl; null without ttl or when none is past. */
  avgAgeBeyondTtlSeconds: number | null;
  maxAgeBeyondTtlSeconds: number | null;
  oldestOrphanAgeSeconds: number | null;
}

export interface GateDocument {
  resources: readonly GateResourceTelemetry[];
  leases: { renewalFailureRate: number; renewals?: number; renewalFailures?: number; windowSeconds?: number };
  findings: readonly GateFinding[];
  findingsTotal: number;
  findingsTruncated: boolean;
}

export interface GateResult {
  gate: Gate;
  /** True when the gate holds (the build may pass). */
  ok: boolean;
  /** The measured value in the metric's base unit. */
  actual: number;
  /** The resource type of a per-type gate. */
  resource?: string;
  /** Each type's part: its count or bytes (summed into `actual`), or its own value for ages (null: nothing to measure). */
  byResource: { resource: string; value: number | null }[];
  /** One line: `orphaned>0 failed: 4 orphaned (scratch-uploads 3, exports 1)`. */
  message: string;
  /**
   * The resource types that break a failing gate: its own type; for a gate over all types
   * with an upper bound (`>`, `>=`), each type adding to a sum, or whose own age breaks
   * it. Empty when the gate holds, or cannot be pinned on a type (renewalFailureRate, a
   * lower bound such as `scanned<10`).
   */
  breaking: string[];
}

// ------------------------------------------------------------------ parsing

const RESOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NUMBER = /^\d+(?:\.\d+)?$/;
/** Size units by lower-cased name: decimal (KB = 1000) and binary (KiB = 1024). */
const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const EXAMPLE = "write e.g. orphaned>0, orphanBytes>=1GiB or scratch:oldestOrphanAge>7d";

/** Parse one `--fail-on` expression; throws GateError saying what is wrong. */
export function parseGate(text: string): Gate {
  const input = text.trim();
  const fail = (why: string): never => {
    throw new GateError(`--fail-on "${text}": ${why}`);
  };
  if (input === '') fail(`empty gate; ${EXAMPLE}`);
  const opMatch = />=|<=|==|!=|=>|=<|>|<|=/.exec(input);
  if (!opMatch) fail(`no comparison operator (one of ${GATE_OPERATORS.join(' ')}); ${EXAMPLE}`);
  const rawOp = opMatch![0];
  if (rawOp === '=') fail('"=" is not an operator; use == for equality');
  if (rawOp === '=>' || rawOp === '=<') fail(`"${rawOp}" is not an operator; did you mean ${rawOp[1]}=?`);
  const op = rawOp as GateOperator;
  const left = input.slice(0, opMatch!.index).trim();
  const right = input.slice(opMatch!.index + op.length).trim();

  let resource: string | null = null;
  let metricText = left;
  const colon = left.indexOf(':');
  if (colon >= 0) {
    resource = left.slice(0, colon).trim();
    metricText = left.slice(colon + 1).trim();
    if (resource === '') fail('nothing before ":"; write TYPE:METRIC, e.g. scratch:orphaned>0, or drop the ":"');
    if (!RESOURCE_NAME.test(resource)) fail(`"${resource}" is not a resource type name (letters, digits, "-", "_" or ".")`);
  }
  if (metricText === '') fail(`no metric before "${op}"; metrics: ${GATE_METRICS.join(', ')}`);
  const metric = (GATE_METRICS as readonly string[]).includes(metricText) ? (metricText as GateMetric) : fail(unknownMetric(metricText));
  if (metric === 'renewalFailureRate' && resource !== null) {
    fail('renewalFailureRate is measured over all leases, not per resource type; drop the "TYPE:" prefix');
  }
  if (right === '') fail(`no value after "${op}"`);
  const value = parseValue(metric, right, fail);
  const normalised = `${resource === null ? '' : `${resource}:`}${metric}${op}${right.replace(/\s+/g, '')}`;
  return { text: normalised, resource, metric, op, value };
}

/** Parse every expression; the first bad one throws. */
export function parseGates(texts: readonly string[]): Gate[] {
  return texts.map(parseGate);
}

function unknownMetric(text: string): string {
  const close = closestWord(text, GATE_METRICS);
  const hint = close ? ` (did you mean ${close}?)` : '';
  return `unknown metric "${text}"${hint}; metrics: ${GATE_METRICS.join(', ')}`;
}

function parseValue(metric: GateMetric, text: string, fail: (why: string) => never): number {
  if (text.startsWith('-')) fail(`"${text}" is negative; ${metric} is never below 0`);
  if (isCount(metric) || metric === 'backlog') {
    if (!NUMBER.test(text)) fail(`${metric} is a number of ${metric === 'backlog' ? 'tombstones' : 'resources'}; write a plain number, not "${text}"`);
    return Number(text);
  }
  if (metric === 'orphanBytes') {
    const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
    if (!m) fail(`"${text}" is not a size; write bytes or a number and a unit: 500MB, 1.5GiB (units: B KB MB GB TB KiB MiB GiB TiB)`);
    const unit = m![2] === '' ? 1 : BYTE_UNITS[m![2]!.toLowerCase()];
    if (unit === undefined) fail(`unknown size unit "${m![2]}"; units: B KB MB GB TB KiB MiB GiB TiB`);
    return Math.round(Number(m![1]) * unit!);
  }
  if (isAge(metric)) {
    const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
    if (!m) fail(`"${text}" is not a duration; write seconds or a number and a unit: 30s, 10m, 24h, 7d`);
    const unit = m![2] === '' ? 1 : SECONDS[m![2]!];
    if (unit === undefined) fail(`unknown duration unit "${m![2]}"; units: s m h d (e.g. 30s, 10m, 24h, 7d)`);
    return Number(m![1]) * unit!;
  }
  // renewalFailureRate
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (percent) {
    const ratio = Number(percent[1]) / 100;
    if (ratio > 1) fail(`"${text}" is more than 100%`);
    return ratio;
  }
  if (!NUMBER.test(text)) fail(`"${text}" is not a ratio; write a number between 0 and 1 (0.05) or a percentage (5%)`);
  const ratio = Number(text);
  if (ratio > 1) fail(`"${text}" is more than 1; renewalFailureRate is a ratio between 0 and 1 — for a percentage write ${text}%`);
  return ratio;
}

const isCount = (metric: GateMetric): metric is CountMetric => (COUNT_METRICS as readonly string[]).includes(metric);
const isAge = (metric: GateMetric): metric is AgeMetric => (AGE_METRICS as readonly string[]).includes(metric);

/**
 * Check that every per-type gate names an audited resource type. The CLI calls this
 * with the manifest's types before scanning, so a typo exits 2 before any work.
 */
export function checkGateResources(gates: readonly Gate[], resourceNames: readonly string[]): void {
  const known = new Set(resourceNames);
  for (const gate of gates) {
    if (gate.resource !== null && !known.has(gate.resource)) {
      const list = resourceNames.length ? resourceNames.join(', ') : 'none';
      throw new GateError(`--fail-on "${gate.text}": no resource type "${gate.resource}" in this audit (types: ${list})`);
    }
  }
}

export interface GateBaseline {
  /** Finding keys of the baseline (parseBaseline / baselineKeys). */
  keys: ReadonlySet<string>;
  /**
   * Every current non-live finding: an array, or a generator over the run's --findings
   * file. Omitted: the document's own findings, refused when the document's list is truncated.
   */
  current?: Iterable<GateFinding>;
}

// ------------------------------------------------------------------ evaluation

/**
 * Evaluate gates against an audit document, optionally against a baseline (either keys
 * plus the current findings, or a NewFindingsTally fed during the audit). Throws
 * GateError for a per-type gate naming a type the document does not have.
 */
export function evaluateGates(gates: readonly Gate[], doc: GateDocument, baseline?: GateBaseline | NewFindingsTally): GateResult[] {
  checkGateResources(
    gates,
    doc.resources.map((r) => r.name),
  );
  const tally = baseline === undefined ? null : baseline instanceof NewFindingsTally ? baseline : tallyOf(baseline, doc);
  return gates.map((gate) => evaluateGate(gate, doc, tally));
}

function tallyOf(baseline: GateBaseline, doc: GateDocument): NewFindingsTally {
  if (baseline.current === undefined && doc.findingsTruncated) {
    throw new GateError(
      `a baseline comparison needs every current finding, and this audit's document lists only ${doc.findings.length} of ${doc.findingsTotal}; ` +
        'pass the findings as they stream (NewFindingsTally) or from the --findings file',
    );
  }
  const tally = new NewFindingsTally(baseline.keys);
  for (const f of baseline.current ?? doc.findings) tally.add(f);
  return tally;
}

function evaluateGate(gate: Gate, doc: GateDocument, tally: NewFindingsTally | null): GateResult {
  const types = gate.resource === null ? doc.resources : doc.resources.filter((r) => r.name === gate.resource);
  let byResource: { resource: string; value: number | null }[];
  let actual: number;
  let describe: (value: number) => string;
  const { metric } = gate;
  if (metric === 'renewalFailureRate') {
    actual = doc.leases.renewalFailureRate;
    byResource = [];
    const l = doc.leases;
    // `renewals` counts the renewals that succeeded: the failures are out of both.
    const detail = l.renewals !== undefined && l.renewalFailures !== undefined ? ` (${l.renewalFailures} of ${l.renewals + l.renewalFailures}${l.windowSeconds ? ` over ${formatSeconds(l.windowSeconds)}` : ''})` : '';
    describe = (v) => `${formatPercent(v)} of lease renewals failed${detail}`;
  } else if (isAge(metric)) {
    const field = AGE_FIELDS[metric];
    byResource = types.map((r) => ({ resource: r.name, value: r[field] }));
    actual = Math.max(0, ...byResource.map((p) => p.value ?? 0));
    const nothing = byResource.every((p) => p.value === null);
    describe = (v) => (nothing ? AGE_NONE[metric] : AGE_TEXT[metric](formatSeconds(v)));
  } else {
    const newOnly = tally !== null && metric !== 'live' && metric !== 'scanned' && metric !== 'backlog';
    byResource = types.map((r) => ({ resource: r.name, value: measure(r, metric, newOnly ? tally : null) }));
    actual = byResource.reduce((sum, p) => sum + (p.value ?? 0), 0);
    const known = newOnly ? ' not in the baseline' : '';
    if (metric === 'orphanBytes') describe = (v) => `${bytesText(v, gate)} orphaned${known}`;
    else if (metric === 'backlog') describe = (v) => `${v} tombstone${v === 1 ? '' : 's'} awaiting sweep`;
    else describe = (v) => `${v} ${metric}${known}`;
  }
  const ok = !compare(actual, gate.op, gate.value);
  let message = `${gate.text} ${ok ? 'passed' : 'failed'}: ${describe(actual)}`;
  if (gate.resource === null && byResource.length > 0) {
    const parts = byResource
      .filter((p) => p.value !== null && p.value !== 0)
      .sort((a, b) => b.value! - a.value!)
      .map((p) => `${p.resource} ${metric === 'orphanBytes' ? bytesText(p.value!, gate) : isAge(metric) ? formatSeconds(p.value!) : p.value}`);
    if (parts.length > 0) message += ` (${isAge(metric) ? 'by type: ' : ''}${parts.join(', ')})`;
  }
  return { gate, ok, actual, ...(gate.resource === null ? {} : { resource: gate.resource }), byResource, message, breaking: ok ? [] : breakingTypes(gate, byResource) };
}

function breakingTypes(gate: Gate, byResource: readonly { resource: string; value: number | null }[]): string[] {
  if (gate.resource !== null) return [gate.resource];
  if (gate.op !== '>' && gate.op !== '>=') return [];
  if (isAge(gate.metric)) return byResource.filter((p) => p.value !== null && compare(p.value, gate.op, gate.value)).map((p) => p.resource);
  return byResource.filter((p) => (p.value ?? 0) > 0).map((p) => p.resource);
}

const AGE_FIELDS = {
  avgAgeBeyondTtl: 'avgAgeBeyondTtlSeconds',
  maxAgeBeyondTtl: 'maxAgeBeyondTtlSeconds',
  oldestOrphanAge: 'oldestOrphanAgeSeconds',
} as const satisfies Record<AgeMetric, keyof GateResourceTelemetry>;

const AGE_TEXT: Record<AgeMetric, (t: string) => string> = {
  avgAgeBeyondTtl: (t) => `${t} past ttl on average`,
  maxAgeBeyondTtl: (t) => `${t} past ttl at most`,
  oldestOrphanAge: (t) => `oldest orphan ${t} old`,
};

const AGE_NONE: Record<AgeMetric, string> = {
  avgAgeBeyondTtl: 'nothing past its ttl',
  maxAgeBeyondTtl: 'nothing past its ttl',
  oldestOrphanAge: 'no orphans',
};

function measure(r: GateResourceTelemetry, metric: CountMetric | 'orphanBytes' | 'backlog', tally: NewFindingsTally | null): number {
  if (tally !== null) {
    if (metric === 'orphanBytes') return tally.orphanBytes(r.name);
    if (metric !== 'live' && metric !== 'scanned' && metric !== 'backlog') return tally.count(r.name, metric);
  }
  return r[metric];
}

function compare(actual: number, op: GateOperator, value: number): boolean {
  switch (op) {
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '==':
      return actual === value;
    case '!=':
      return actual !== value;
  }
}

/** Bytes in the unit family the gate was written in (KB vs KiB), so the message reads like the gate. */
function bytesText(bytes: number, gate: Gate): string {
  return formatBytes(bytes, /\d\s*[KMGT]B$/i.test(gate.text) ? 'decimal' : 'binary');
}

function formatPercent(ratio: number): string {
  return `${(Math.round(ratio * 10_000) / 100).toString()}%`;
}
