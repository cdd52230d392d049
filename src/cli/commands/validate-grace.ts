/**
 * `reaper validate`'s grace check: the lease cadences the state store shows (ttls, and
 * renewal intervals estimated from the active leases) against each resource type's
 * grace, by the grace rule (src/engine/grace-rule.ts, docs/strategies.md). Warnings go
 * to stderr and change no exit code. The store is read only when validate's inspection
 * found its schema current, so opening it creates and migrates nothing.
 */
import { DEFAULT_GRACE_BUDGET, graceShortfalls, leaseCadences } from '../../engine/grace-rule.js';
import { redact } from '../../errors.js';
import type { Manifest } from '../../manifest/types.js';
import type { StateStoreInspection } from '../../state/inspect.js';
import type { CliIO } from '../io.js';

/** Leases read for the estimate at most (the most recently renewed are as good a sample as any). */
const SAMPLE = 10_000;

const seconds = (ms: number) => `${Math.ceil(ms / 1000)}s`;

export async function warnShortGrace(io: CliIO, manifest: Manifest, inspection: StateStoreInspection | null): Promise<void> {
  if (!manifest.owners.some((o) => o.kind === 'leases')) return;
  if (inspection?.state !== 'current') return;
  const { openStateStore } = await import('../../state/open.js');
  let store;
  try {
    store = await openStateStore(manifest.state);
  } catch (error) {
    io.stderr.write(`reaper: warning: the grace check could not read the state store: ${redact((error as Error).message)}\n`);
    return;
  }
  try {
    const [leases, now] = await Promise.all([store.listLeases({ limit: SAMPLE }), store.now()]);
    const b = DEFAULT_GRACE_BUDGET;
    for (const s of graceShortfalls(manifest.resources, leaseCadences(leases, now))) {
      io.stderr.write(
        `reaper: warning: ${s.resource}: grace ${seconds(s.graceMs)} is below the ${seconds(s.requiredMs)} the grace rule asks for leases of ttl ${seconds(s.cadence.ttlMs)} ` +
          `renewed about every ${seconds(s.cadence.renewalIntervalMs)} (skew ${seconds(b.maxSkewMs)} + pause ${seconds(b.maxPauseMs)} + ${b.lostRenewals + 1} renewal intervals; docs/strategies.md)\n`,
      );
    }
  } finally {
    await store.close();
  }
}
