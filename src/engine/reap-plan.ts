/**
 * Reap planning, pure: which findings get a tombstone, whether a due tombstone may be
 * deleted or must be lifted, and the two run-level rails (caps and the registry-outage
 * breaker). The run layer gathers the data; these functions decide.
 */
import type { BreakerSpec, ResourceSpec } from '../manifest/types.js';
import { isReapable } from './classify.js';
import type { Finding, ResourceRecord } from './types.js';

/** What the journal keeps of a sweep's judgement: the finding's status, reason, owner and age, and when it was marked. */
export interface SweepEvidence {
  status?: string;
  reason?: string | null;
  owner?: string | null;
  ageSeconds?: number | null;
  markedAt: number;
}

/** One line of a reap plan: mark a new orphan, or sweep a due tombstone. */
export type PlanItem =
  | {
      op: 'mark';
      resource: string;
      id: string;
      fingerprint: string;
      owner: string | null;
      ownerValue: string | null;
      reason: string;
      bytes: number | null;
    }
  | {
      op: 'sweep';
      resource: string;
      tombstoneId: number;
      id: string;
      fingerprint: string;
      owner: string | null;
      bytes: number | null;
      /** The raw owner value read at mark time (SQL deletes re-check it). */
      ownerValue?: string | null;
      /** The judgement behind the sweep, journaled with the delete (absent in plans from older builds). */
      evidence?: SweepEvidence;
    }
  | {
      op: 'lift';
      resource: string;
      tombstoneId: number;
      id: string;
      why: string;
    };

/** The raw owner value a SQL delete re-checks: the first owner rule's column value. */
export function rawOwnerValue(record: ResourceRecord, spec: Pick<ResourceSpec, 'owners'>): string | null {
  const rule = spec.owners[0];
  if (!rule) return null;
  if (rule.extractor.from === 'column') return record.columns?.[rule.extractor.name] ?? null;
  return null;
}

/**
 * New tombstones for a page: reapable findings without an active tombstone.
 * Protected, young, unknown and live resources never get one.
 */
export function markCandidates(
  findings: readonly Finding[],
  records: readonly ResourceRecord[],
  spec: ResourceSpec,
  tombstoned: ReadonlySet<string>,
): Extract<PlanItem, { op: 'mark' }>[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const out: Extract<PlanItem, { op: 'mark' }>[] = [];
  for (const f of findings) {
    if (!isReapable(f, spec) || tombstoned.has(f.id)) continue;
    const record = byId.get(f.id);
    if (!record || record.fingerprint === '') continue;
    out.push({
      op: 'mark',
      resource: spec.name,
      id: f.id,
      fingerprint: f.fingerprint,
      owner: f.owner,
      ownerValue: rawOwnerValue(record, spec),
      reason: f.status === 'expired' ? 'expired' : (f.reason ?? 'orphaned'),
      bytes: f.bytes,
    });
  }
  return out;
}

export type SweepDecision =
  | { action: 'delete' }
  | { action: 'lift'; why: 'vanished' | 'mark-unconfirmed' | 'changed' | 'protected' | 'owner-live' | 'owner-renewed' | 'not-reapable' }
  /** Could not be judged now (unknown liveness, unreadable attributes): keep the tombstone, decide next run. */
  | { action: 'keep'; why: string };

/**
 * Re-verify a due tombstone at sweep time (docs/safety.md §1–§5): the resource still exists with
 * the fingerprint captured at mark time, is still reapable under a fresh liveness
 * judgement, and its owner showed no lease activity since the mark; where the type has a visible
 * mark, the mark was confirmed on it (§14).
 */
export function decideSweep(
  tombstone: { fingerprint: string; markConfirmedAt?: number | null },
  current: ResourceRecord | undefined,
  finding: Finding | undefined,
  ownerActiveSinceMark: boolean,
  spec: Pick<ResourceSpec, 'onExpired'> & { visibleMark?: boolean },
): SweepDecision {
  if (!current || !finding) return { action: 'lift', why: 'vanished' };
  // A type with a visible mark sweeps only what its mark was confirmed on (docs/safety.md §14):
  // a run that stopped before confirming leaves a tombstone nobody may have seen a mark for.
  if (spec.visibleMark === true && (tombstone.markConfirmedAt ?? null) === null) return { action: 'lift', why: 'mark-unconfirmed' };
  // Listed but unreadable (a file that cannot be stat'ed): nothing to compare, nothing to judge; wait.
  if (current.unreadable !== undefined && current.fingerprint === '') return { action: 'keep', why: 'attributes-unreadable' };
  if (current.fingerprint !== tombstone.fingerprint) return { action: 'lift', why: 'changed' };
  if (finding.status === 'protected') return { action: 'lift', why: 'protected' };
  if (finding.status === 'unknown') return { action: 'keep', why: finding.reason ?? 'unknown' };
  if (!isReapable(finding, spec)) {
    return { action: 'lift', why: finding.status === 'live' || finding.status === 'expired' ? 'owner-live' : 'not-reapable' };
  }
  if (ownerActiveSinceMark) return { action: 'lift', why: 'owner-renewed' };
  return { action: 'delete' };
}

export interface CapCheck {
  resource: string;
  scanned: number;
  toMark: number;
  toSweep: number;
}

/**
 * Caps (docs/safety.md §7): resources condemned in one run (new marks + sweeps) may not exceed
 * maxDeletesPerRun nor maxDeleteFraction of what was scanned. Returns the violation, or null.
 */
export function capViolation(spec: Pick<ResourceSpec, 'maxDeletesPerRun' | 'maxDeleteFraction'>, c: CapCheck): string | null {
  const condemned = c.toMark + c.toSweep;
  if (condemned > spec.maxDeletesPerRun) {
    return `${c.resource}: ${condemned} to mark or sweep exceeds maxDeletesPerRun ${spec.maxDeletesPerRun}`;
  }
  const limit = Math.floor(spec.maxDeleteFraction * c.scanned);
  if (condemned > 0 && condemned > limit) {
    return `${c.resource}: ${condemned} to mark or sweep of ${c.scanned} scanned exceeds maxDeleteFraction ${spec.maxDeleteFraction} (at most ${limit})`;
  }
  return null;
}

/**
 * Registry-outage breaker (docs/safety.md §8): a liveness source that failed, reports fewer than
 * `minLiveKeys`, or fell by more than `maxDrop` against the last run stops the reap.
 * Returns the reasons (empty when the sources look healthy).
 */
export function breakerReasons(
  current: { counts: Readonly<Record<string, number>>; errors: Readonly<Record<string, string>> },
  last: Readonly<Record<string, number>> | null,
  spec: BreakerSpec,
): string[] {
  const reasons: string[] = [];
  for (const [name, error] of Object.entries(current.errors)) reasons.push(`liveness source ${name} failed: ${error}`);
  for (const [name, count] of Object.entries(current.counts)) {
    if (count < spec.minLiveKeys) {
      reasons.push(`liveness source ${name} reports ${count} live key(s) (fewer than minLiveKeys ${spec.minLiveKeys}); an empty registry must not look like "everything is orphaned"`);
      continue;
    }
    const before = last?.[name];
    if (before !== undefined && before > 0 && count < before * (1 - spec.maxDrop)) {
      const drop = Math.round((1 - count / before) * 100);
      reasons.push(`liveness source ${name} fell from ${before} to ${count} live keys (-${drop}%, more than maxDrop ${spec.maxDrop * 100}%)`);
    }
  }
  return reasons;
}
