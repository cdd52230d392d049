/**
 * Planning a reap (the same code for a dry run and an execute): one scan per type, each page
 * classified once; its new orphans become mark items and the due tombstones it meets are
 * judged against that very read into sweep and lift items. Items stream to a plan file
 * (NDJSON with a digest, plan-file.ts); nothing is written to the ledger.
 */
import type { Backend } from '../../backends/types.js';
import { matchesFilter, type FindingFilter } from '../../engine/filters.js';
import { markCandidates } from '../../engine/reap-plan.js';
import { shardLabel, shardPart, type Shard } from '../../engine/shard.js';
import type { Finding } from '../../engine/types.js';
import { redact } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { TelemetryAccumulator } from '../../report/telemetry.js';
import type { Tombstone } from '../../state/types.js';
import { IdSet } from '../../util/id-set.js';
import { classifyResource } from '../classify-stream.js';
import type { RunContext } from '../context.js';
import { PLAN_FORMAT_VERSION, PlanWriter, type PlanHeader } from '../plan-file.js';
import { evidenceOf, judgeTombstones, verifyTombstones, type Verdict } from './judge.js';
import type { ReapTally } from './tally.js';

export interface PlanOptions {
  signal?: AbortSignal;
  /** Narrows what is marked, swept and lifted; the scan, the telemetry and the caps see the whole type. */
  filter?: FindingFilter;
  onProgress?: (text: string) => void;
  /** Told every finding of the scan (`reap --html`: the report's aggregates); must not throw. */
  onFinding?: (finding: Finding) => void;
  /** No scan: only due tombstones, paged from the ledger and read by id, become sweep and lift items (`reap --sweep-only`). */
  sweepOnly?: boolean;
  /** Plan only this shard's part of each type, and only the due tombstones inside it (docs/scale-out.md). */
  shard?: Shard | null;
  /** The types chosen by name (--resource, --exclude-resource), recorded in the plan; undefined for all. */
  selected?: readonly string[];
}

/**
 * Plan every type in `specs` into `file`. Each type's items go straight to the plan as one
 * segment, rolled back when its scan fails: a type that fails is refused (its tally says
 * why) and none of its items stay in the plan. The header, written last, carries every
 * tally's counts.
 */
export async function writePlan(
  context: RunContext,
  specs: readonly ResourceSpec[],
  tallies: ReadonlyMap<string, ReapTally>,
  target: { file: string; runId: string; manifestDigest: string },
  options: PlanOptions,
): Promise<PlanHeader> {
  const writer = new PlanWriter(target.file);
  try {
    return await planInto(writer, context, specs, tallies, target, options);
  } finally {
    await writer.abandon();
  }
}

async function planInto(
  writer: PlanWriter,
  context: RunContext,
  specs: readonly ResourceSpec[],
  tallies: ReadonlyMap<string, ReapTally>,
  target: { runId: string; manifestDigest: string },
  options: PlanOptions,
): Promise<PlanHeader> {
  const nowMs = await context.store.now();
  for (const spec of specs) {
    const tally = tallies.get(spec.name)!;
    const segment = writer.segment();
    const planned = await tally.refusing(options.signal, () => planResource(context, spec, context.backend(spec), nowMs, writer, tally, options).then(() => true));
    if (!planned) await writer.rollback(segment);
  }
  const header: PlanHeader = {
    kind: 'reaper-plan',
    version: PLAN_FORMAT_VERSION,
    runId: target.runId,
    createdAt: new Date(nowMs).toISOString(),
    manifestDigest: target.manifestDigest,
    resources: [...tallies.values()].map(({ report: r }) => ({ name: r.name, scanned: r.scanned, toMark: r.toMark, toSweep: r.toSweep, toLift: r.toLift, telemetry: r.telemetry })),
    ...(options.filter ? { filters: options.filter } : {}),
    ...(options.selected ? { selected: [...options.selected].sort() } : {}),
    ...(options.shard && options.shard.count > 1 ? { shard: shardLabel(options.shard) } : {}),
  };
  await writer.close(header);
  return header;
}

/**
 * One scan per type: every page is classified once, its new orphans become mark items, and
 * the due tombstones it meets are judged against that very read (one read per resource per
 * run, not one for the scan and another for the sweep). Due tombstones the scan did not
 * meet (the resource is gone, or out of scope now) are read back afterwards.
 */
async function planResource(
  context: RunContext,
  spec: ResourceSpec,
  opening: Promise<Backend>,
  nowMs: number,
  writer: Pick<PlanWriter, 'add'>,
  tally: ReapTally,
  options: PlanOptions,
): Promise<void> {
  const backend = await opening;
  const write = async (judged: readonly Verdict[]) => {
    // A tombstone outside the filters is left as it is; one whose resource is gone is judged by its owner.
    const verdicts = options.filter ? judged.filter((v) => matchesFilter(options.filter, v.finding ?? { owner: v.tombstone.owner, ageSeconds: null })) : judged;
    // Lifts first, then sweeps: each becomes one batch when applied.
    for (const { tombstone, decision } of verdicts) {
      if (decision.action === 'lift') {
        const item = { op: 'lift' as const, resource: spec.name, tombstoneId: tombstone.tombstoneId, id: tombstone.resourceId, why: decision.why };
        tally.planned(item);
        await writer.add(item);
      } else if (decision.action === 'keep') {
        tally.kept(1);
      }
    }
    for (const { tombstone, finding, decision } of verdicts) {
      if (decision.action !== 'delete') continue;
      const item = {
        op: 'sweep' as const,
        resource: spec.name,
        tombstoneId: tombstone.tombstoneId,
        id: tombstone.resourceId,
        fingerprint: tombstone.fingerprint,
        owner: tombstone.owner,
        ownerValue: tombstone.ownerValue,
        bytes: tombstone.bytes,
        evidence: evidenceOf(finding, tombstone),
      };
      tally.planned(item);
      await writer.add(item);
    }
  };

  const judged = new IdSet();
  const acc = new TelemetryAccumulator(spec.name, spec.location.kind, backend.scope);
  const part = shardPart(spec, options.shard ?? null);
  const pages = options.sweepOnly ? [] : classifyResource(backend, spec, context.liveness, nowMs, { signal: options.signal, part });
  for await (const page of pages) {
    if (page.unreadable) acc.addUnreadable(page.unreadable.map((u) => ({ id: u.id, why: redact(u.why) })));
    for (const f of page.findings) {
      acc.add(f);
      options.onFinding?.(f);
    }
    const active = page.records.length ? await context.store.activeTombstones(spec.name, page.records.map((r) => r.id)) : new Map<string, Tombstone>();
    const due = [...active.values()].filter((t) => t.state === 'marked' && t.markedAt <= nowMs - spec.graceMs);
    if (due.length > 0 && page.snapshotAtMs !== undefined) {
      // A snapshot (an inventory report) may be stale: the resources are read again to be judged.
      await write(await verifyTombstones(context, spec, backend, due, options.signal));
      for (const t of due) judged.add(t.tombstoneId);
    } else if (due.length > 0) {
      const records = new Map(page.records.map((r) => [r.id, r]));
      const findings = new Map(page.findings.map((f) => [f.id, f]));
      await write(await judgeTombstones(context, spec, due, records, findings, backend.mark !== undefined));
      for (const t of due) judged.add(t.tombstoneId);
    }
    const candidates = options.filter ? page.findings.filter((f) => matchesFilter(options.filter, f)) : page.findings;
    for (const item of markCandidates(candidates, page.records, spec, new Set(active.keys()))) {
      tally.planned(item);
      await writer.add(item);
    }
    options.onProgress?.(`planning ${spec.name}: ${acc.scannedSoFar} scanned, ${tally.report.toMark} to mark, ${tally.report.toSweep} to sweep`);
  }
  // The scan met every due tombstone (the usual case) when as many are due as it judged:
  // those it judged are still marked (nothing is written while planning), so the sets are
  // equal. Otherwise page through the due ones for those it did not meet. (Should a judged
  // tombstone be lifted by hand meanwhile, an unmet one waits for the next run: skipping a
  // sweep is always safe.)
  let afterId = (await context.store.countDueTombstones(spec.name, spec.graceMs)) === judged.size ? Number.MAX_SAFE_INTEGER : 0;
  for (;;) {
    const due = await context.store.dueTombstones(spec.name, spec.graceMs, afterId, spec.batchSize);
    if (due.length === 0) break;
    afterId = due[due.length - 1]!.tombstoneId;
    let unmet = due.filter((t) => !judged.has(t.tombstoneId));
    if (part.kind !== 'all' && unmet.length > 0) {
      // Sharded: only the tombstones of resources in this shard's part; each other one is its own shard's.
      const ours = await backend.inPart(unmet.map((t) => t.resourceId), part, options.signal);
      unmet = unmet.filter((t) => ours.has(t.resourceId));
    }
    if (unmet.length > 0) await write(await verifyTombstones(context, spec, backend, unmet, options.signal, options.sweepOnly));
  }
  const backlog = await context.store.countTombstones(spec.name);
  tally.scanned(
    acc.scannedSoFar,
    acc.result({
      count: backlog.marked + backlog.deleting,
      oldestAgeSeconds: backlog.oldestMarkedAt === null ? null : Math.max(0, nowMs - backlog.oldestMarkedAt) / 1000,
    }),
  );
}
