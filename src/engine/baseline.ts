/**
 * Findings compared with what was known before, pure: a baseline (an earlier audit's
 * document or `--findings` file) for the leak gates and the reports, and the difference
 * between two runs (`audit --since RUN`). A finding is known by (resource, id, status).
 *
 * The gates (gates.ts) count only findings a baseline does not hold. A baseline document whose
 * `findingsTruncated` is true is refused: it does not say which findings it knew, so every
 * finding it left out would count as new (write the baseline with a larger
 * `--max-findings`, or use the complete `--findings` NDJSON file instead).
 *
 * A baseline file also keeps what it said of each finding (reason, owner, age, bytes): a finding
 * it holds that the run no longer meets is reported resolved with them, as `--since` reports it.
 */
import { UsageError } from '../errors.js';
import { STATUSES, type Status } from './types.js';

/** A bad gate expression or an unusable baseline: a usage error (exit 2). */
export class GateError extends UsageError {}

export interface GateFinding {
  resource: string;
  id: string;
  status: Status;
  bytes: number | null;
}

/** The identity of a finding for baselines and diffs: resource type, id and status. */
export function findingKey(f: Pick<GateFinding, 'resource' | 'id' | 'status'>): string {
  return JSON.stringify([f.resource, f.status, f.id]);
}

/** What a baseline file said of a finding besides its key; shown for the findings it resolves. */
export interface BaselineDetail {
  backend?: string;
  reason: string | null;
  owner: string | null;
  ageSeconds: number | null;
  bytes: number | null;
}

/** The finding keys of a baseline file, with what the file said of each finding (`detail`). */
export class BaselineKeys extends Set<string> {
  /** Per key: backend, reason, owner, age, bytes (a tuple: a baseline may hold millions of findings). */
  private readonly details = new Map<string, readonly [string | null, string | null, string | null, number | null, number | null]>();
  /** One copy of each backend, reason and owner (values many findings share). */
  private readonly shared = new Map<string, string>();

  addFinding(f: GateFinding & Record<string, unknown>): void {
    const key = findingKey(f);
    this.add(key);
    this.details.set(key, [this.share(f.backend), this.share(f.reason), this.share(f.owner), count(f.ageSeconds), count(f.bytes)]);
  }

  detail(key: string): BaselineDetail | undefined {
    const d = this.details.get(key);
    if (d === undefined) return undefined;
    return { ...(d[0] === null ? {} : { backend: d[0] }), reason: d[1], owner: d[2], ageSeconds: d[3], bytes: d[4] };
  }

  private share(v: unknown): string | null {
    if (typeof v !== 'string') return null;
    const known = this.shared.get(v);
    if (known !== undefined) return known;
    this.shared.set(v, v);
    return v;
  }
}

const count = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);

/**
 * The finding keys of a baseline: the text of an earlier `audit --output json` document,
 * or of a `--findings` NDJSON file (which always holds every finding). A document whose
 * findings list was truncated is refused. `name` is used in messages (the file name).
 */
export function parseBaseline(text: string, name = 'the baseline'): BaselineKeys {
  const trimmed = text.trim();
  if (trimmed === '') throw new GateError(`${name} is empty; pass an earlier \`reaper audit --output json\` document or a --findings NDJSON file`);
  let whole: unknown;
  try {
    whole = JSON.parse(trimmed);
  } catch {
    whole = undefined;
  }
  if (whole !== undefined && !(isRecord(whole) && 'resource' in whole && 'id' in whole)) return baselineKeys(whole, name);
  const keys = new BaselineKeys();
  trimmed.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new GateError(`${name}:${index + 1}: neither an audit JSON document nor NDJSON findings (line ${index + 1} is not JSON)`);
    }
    if (!isFinding(value)) throw new GateError(`${name}:${index + 1}: not a finding (needs resource, id and status)`);
    keys.addFinding(value);
  });
  return keys;
}

/** The finding keys of an already parsed audit document; refuses a truncated one. */
export function baselineKeys(doc: unknown, name = 'the baseline'): BaselineKeys {
  if (!isRecord(doc) || doc.kind !== 'audit' || !Array.isArray(doc.findings)) {
    throw new GateError(`${name} is not a reaper audit document (expected kind "audit" and findings[]); write one with \`reaper audit --output json\``);
  }
  if (doc.findingsTruncated === true) {
    const total = typeof doc.findingsTotal === 'number' ? doc.findingsTotal : 'more';
    throw new GateError(
      `${name} lists ${doc.findings.length} of ${total} findings (findingsTruncated: true), so it cannot say which leaks are known; ` +
        `write it with --max-findings ${typeof total === 'number' ? total : 'N'} or more, or use the --findings NDJSON file of that run`,
    );
  }
  const keys = new BaselineKeys();
  doc.findings.forEach((f: unknown, index: number) => {
    if (!isFinding(f)) throw new GateError(`${name}: findings[${index}] is not a finding (needs resource, id and status)`);
    keys.addFinding(f);
  });
  return keys;
}

/**
 * Counts of current findings the baseline does not hold, per type and status, and the
 * bytes of new orphans. Fed one finding at a time (e.g. from the audit's onFinding), so
 * memory stays bounded however many findings a run has: besides the counts it keeps the
 * baseline keys it met and the first `sampleSize` new findings of each type, for the
 * reports (`diff()`).
 */
export class NewFindingsTally<F extends GateFinding = GateFinding> {
  private readonly counts = new Map<string, Record<Status, number>>();
  private readonly bytes = new Map<string, number>();
  private readonly met = new Set<string>();
  private readonly fresh: FindingsDiffPart<F> = emptyPart();
  private readonly persisting: FindingsDiffPart<F> = emptyPart();
  private added = 0;

  constructor(
    readonly baseline: ReadonlySet<string>,
    private readonly sampleSize = 10,
  ) {}

  /** Findings fed so far, live or not, new or known. */
  get seen(): number {
    return this.added;
  }

  add(f: F): void {
    this.added++;
    if (f.status === 'live') return;
    const key = findingKey(f);
    if (this.baseline.has(key)) {
      if (!this.met.has(key)) addTo(this.persisting, f, 0);
      this.met.add(key);
      return;
    }
    addTo(this.fresh, f, this.sampleSize);
    let row = this.counts.get(f.resource);
    if (!row) {
      row = { live: 0, orphaned: 0, expired: 0, protected: 0, young: 0, unknown: 0 };
      this.counts.set(f.resource, row);
    }
    row[f.status]++;
    if (f.status === 'orphaned') this.bytes.set(f.resource, (this.bytes.get(f.resource) ?? 0) + (f.bytes ?? 0));
  }

  count(resource: string, status: Status): number {
    return this.counts.get(resource)?.[status] ?? 0;
  }

  orphanBytes(resource: string): number {
    return this.bytes.get(resource) ?? 0;
  }

  /**
   * New, resolved and persisting findings against the baseline. Resolved ones are the
   * baseline's keys the run did not meet, with what a baseline file said of them (a bare set of
   * keys knows them by resource, id and status only), leaving out the types in `unread`, whose
   * findings this run could not see whole.
   */
  diff(unread: ReadonlySet<string> = new Set()): FindingsDiff<F | GateFinding> {
    const resolved: FindingsDiffPart<GateFinding & Partial<BaselineDetail>> = emptyPart();
    const details = this.baseline instanceof BaselineKeys ? this.baseline : null;
    for (const key of this.baseline) {
      if (this.met.has(key)) continue;
      const [resource, status, id] = JSON.parse(key) as [string, Status, string];
      if (unread.has(resource)) continue;
      const detail = details?.detail(key);
      addTo(resolved, detail ? { resource, ...(detail.backend === undefined ? {} : { backend: detail.backend }), id, status, reason: detail.reason, owner: detail.owner, ageSeconds: detail.ageSeconds, bytes: detail.bytes } : { resource, status, id, bytes: null }, this.sampleSize);
    }
    return { new: this.fresh, resolved, persisting: this.persisting };
  }
}

// ------------------------------------------------------------------ diffs

export interface FindingsDiffPart<F extends GateFinding> {
  count: number;
  byResource: Record<string, number>;
  byStatus: Partial<Record<Status, number>>;
  /** The first `sampleSize` findings of each resource type in this part, in input order. */
  samples: F[];
}

export interface FindingsDiff<F extends GateFinding> {
  /** In current, not in previous. */
  new: FindingsDiffPart<F>;
  /** In previous, not in current (cleaned up, or its status changed). */
  resolved: FindingsDiffPart<F>;
  /** In both. */
  persisting: FindingsDiffPart<F>;
}

/**
 * Compare the findings of an earlier run with the current ones (`audit --since RUN`),
 * by (resource, id, status): a resource whose status changed is resolved under its old
 * status and new under its new one. Both inputs should be complete finding lists; the
 * previous findings of types in `unread` (not read whole this time) are left out, so they
 * are not taken for resolved.
 */
export function diffFindings<F extends GateFinding>(previous: Iterable<F>, current: Iterable<F>, options: { sampleSize?: number; unread?: ReadonlySet<string> } = {}): FindingsDiff<F> {
  const size = options.sampleSize ?? 10;
  const unread = options.unread ?? new Set<string>();
  const before = new Map<string, F>();
  for (const f of previous) if (f.status !== 'live' && !unread.has(f.resource)) before.set(findingKey(f), f);
  const diff: FindingsDiff<F> = { new: emptyPart(), resolved: emptyPart(), persisting: emptyPart() };
  const seen = new Set<string>();
  for (const f of current) {
    if (f.status === 'live') continue;
    const key = findingKey(f);
    if (seen.has(key)) continue;
    seen.add(key);
    addTo(before.has(key) ? diff.persisting : diff.new, f, size);
  }
  for (const [key, f] of before) if (!seen.has(key)) addTo(diff.resolved, f, size);
  return diff;
}

const emptyPart = <F extends GateFinding>(): FindingsDiffPart<F> => ({ count: 0, byResource: {}, byStatus: {}, samples: [] });

function addTo<F extends GateFinding>(part: FindingsDiffPart<F>, f: F, size: number): void {
  part.count++;
  const ofType = (part.byResource[f.resource] ?? 0) + 1;
  part.byResource[f.resource] = ofType;
  part.byStatus[f.status] = (part.byStatus[f.status] ?? 0) + 1;
  if (ofType <= size) part.samples.push(f);
}

// ------------------------------------------------------------------ helpers

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFinding(value: unknown): value is GateFinding & Record<string, unknown> {
  return (
    isRecord(value) &&
    typeof value.resource === 'string' &&
    typeof value.id === 'string' &&
    typeof value.status === 'string' &&
    (STATUSES as readonly string[]).includes(value.status)
  );
}
