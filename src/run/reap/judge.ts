/**
 * The sweep-time judgement of due tombstones (docs/safety.md §1, §2): from a fresh read of
 * each resource and a fresh liveness judgement, plus lease activity since the mark. Planning
 * judges against its scan's pages; applying a saved plan judges again from a read of its own.
 */
import type { Backend } from '../../backends/types.js';
import { classify } from '../../engine/classify.js';
import { decideSweep, type SweepDecision, type SweepEvidence } from '../../engine/reap-plan.js';
import type { Finding, ResourceRecord } from '../../engine/types.js';
import type { ResourceSpec } from '../../manifest/types.js';
import type { Tombstone } from '../../state/types.js';
import { judgeRecords } from '../classify-stream.js';
import type { RunContext } from '../context.js';

export interface Verdict {
  tombstone: Tombstone;
  finding: Finding | undefined;
  decision: SweepDecision;
}

/** What the journal keeps of the judgement behind a delete. */
export function evidenceOf(finding: Finding | undefined, tombstone: Tombstone): SweepEvidence {
  return { status: finding?.status, reason: finding?.reason, owner: finding?.owner, ageSeconds: finding?.ageSeconds, markedAt: tombstone.markedAt };
}

/** Judge due tombstones from a fresh read and its findings, plus lease activity since the mark. */
export async function judgeTombstones(
  context: RunContext,
  spec: ResourceSpec,
  tombstones: readonly Tombstone[],
  current: ReadonlyMap<string, ResourceRecord>,
  findings: ReadonlyMap<string, Finding>,
  /** The type has a visible mark (`Backend.mark`): only confirmed tombstones are swept. */
  visibleMark: boolean,
): Promise<Verdict[]> {
  // Asked from the batch's earliest mark: a renewal in between errs toward keeping.
  const earliest = Math.min(...tombstones.map((t) => t.markedAt));
  const owners = [...new Set(tombstones.map((t) => t.owner).filter((o): o is string => o !== null))];
  const activeSince = owners.length ? await context.store.keysActiveSince(owners, earliest) : new Set<string>();
  const judge = { onExpired: spec.onExpired, visibleMark };
  return tombstones.map((tombstone) => {
    const finding = findings.get(tombstone.resourceId);
    const renewed = tombstone.owner !== null && activeSince.has(tombstone.owner);
    return { tombstone, finding, decision: decideSweep(tombstone, current.get(tombstone.resourceId), finding, renewed, judge) };
  });
}

/**
 * Read due tombstones' resources afresh, judge their owners afresh: the sweep-time judgement
 * where no scan page holds them. `standIn`: a backend whose deletes the server checks against
 * the exact fingerprint may answer from the ledger instead of reading (`Backend.standIns`).
 */
export async function verifyTombstones(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  tombstones: readonly Tombstone[],
  signal?: AbortSignal,
  standIn = false,
): Promise<Verdict[]> {
  const ledger = tombstones.map((t) => ({ id: t.resourceId, fingerprint: t.fingerprint, bytes: t.bytes, markedAt: t.markedAt }));
  const current =
    (standIn && backend.standIns ? await backend.standIns(ledger, spec.minAgeMs, signal) : null) ??
    (await backend.read(
      tombstones.map((t) => t.resourceId),
      signal,
    ));
  const records = [...current.values()];
  const { answers } = await judgeRecords(records, spec, context.liveness, signal);
  const nowMs = await context.store.now();
  const findings = new Map<string, Finding>(records.map((r) => [r.id, classify(r, spec, answers, nowMs)]));
  return judgeTombstones(context, spec, tombstones, current, findings, backend.mark !== undefined);
}
