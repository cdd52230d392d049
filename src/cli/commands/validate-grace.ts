/**
 * `reaper validate`'s grace check: the lease cadences the state store shows (ttls, and
 * renewal intervals estimated from the active leases) against each resource type's
 * grace, by the grace rule (src/engine/grace-rule.ts, docs/strategies.md); where no
 * cadence can be measured, the rule's floor (skew + pause), so a grace of 0s never passes. Warnings go
 * to stderr and change no exit code. The store is read only when validate's inspection
 * found its schema current, so opening it creates and migrates nothing.
 */
import { DEFAULT_GRACE_BUDGET, graceBelowFloor, graceShortfalls, leaseCadences, type LeaseCadence } from '../../engine/grace-rule.js';
import { redact } from '../../errors.js';
import { formatDuration } from '../../manifest/duration.js';
import type { Manifest } from '../../manifest/types.js';
import type { StateStoreInspection } from '../../state/inspect.js';
import type { CliIO } from '../io.js';

/** Leases read for the estimate at most (the most recently renewed are as good a sample as any). */
const SAMPLE = 10_000;

/** A span as the manifest writes it, rounded up to whole seconds (`1d`, `8h`, `95s`). */
const span = (ms: number) => (ms <= 0 ? '0s' : formatDuration(Math.ceil(ms / 1000) * 1000));

/** What to set: the required grace rounded up to a whole second, minute (from 10m) or hour (from 10h). */
function suggestion(ms: number): string {
  const unit = ms >= 36_000_000 ? 3_600_000 : ms >= 600_000 ? 60_000 : 1000;
  return formatDuration(Math.ceil(ms / unit) * unit);
}

export async function warnShortGrace(io: CliIO, manifest: Manifest, inspection: StateStoreInspection | null): Promise<void> {
  const b = DEFAULT_GRACE_BUDGET;
  const cadences = await measuredCadences(io, manifest, inspection);
  if (cadences === null) return;
  if (cadences.length === 0) {
    // No renewal interval to count (no leases source, or none active): the rule's floor still holds.
    for (const s of graceBelowFloor(manifest.resources)) {
      io.stderr.write(
        `reaper: warning: ${s.resource}: grace ${span(s.graceMs)} is below the ${suggestion(s.requiredMs)} the grace rule asks before any lease renewal interval is counted ` +
          `(skew ${span(b.maxSkewMs)} + pause ${span(b.maxPauseMs)}; docs/strategies.md)\n`,
      );
    }
    return;
  }
  for (const s of graceShortfalls(manifest.resources, cadences)) {
    io.stderr.write(
      `reaper: warning: ${s.resource}: grace ${span(s.graceMs)} is below the ${suggestion(s.requiredMs)} the grace rule asks for leases of ttl ${span(s.cadence.ttlMs)} ` +
        `renewed about every ${span(s.cadence.renewalIntervalMs)} (skew ${span(b.maxSkewMs)} + pause ${span(b.maxPauseMs)} + ${b.lostRenewals + 1} renewal intervals; docs/strategies.md)\n`,
    );
  }
}

/** The lease cadences in the state store: none without a leases source or a current store; null (after a warning) when it cannot be read. */
async function measuredCadences(io: CliIO, manifest: Manifest, inspection: StateStoreInspection | null): Promise<LeaseCadence[] | null> {
  if (!manifest.owners.some((o) => o.kind === 'leases')) return [];
  if (inspection?.state !== 'current') return [];
  const { openStateStore } = await import('../../state/open.js');
  let store;
  try {
    store = await openStateStore(manifest.state);
  } catch (error) {
    io.stderr.write(`reaper: warning: the grace check could not read the state store: ${redact((error as Error).message)}\n`);
    return null;
  }
  try {
    const [leases, now] = await Promise.all([store.listLeases({ limit: SAMPLE }), store.now()]);
    return leaseCadences(leases, now);
  } finally {
    await store.close();
  }
}
