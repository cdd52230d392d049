/**
 * `reap`: tombstone-then-delete (DESIGN §1, §4; SAFETY 1–15).
 *
 * 1. Breaker: every liveness source must answer, hold at least minLiveKeys, and not have
 *    fallen sharply since the last run — else nothing happens (exit 4).
 * 2. Plan (the same code for dry run and execute): per resource type, due tombstones are
 *    re-verified into sweep or lift items, then the scan's reapable findings without a
 *    tombstone become mark items. Items stream to a plan file; caps are checked per type
 *    before anything is written to the ledger (exit 4 when exceeded).
 * 3. Apply (--execute): lifts; sweeps, each re-verified again against a fresh read and a
 *    fresh liveness judgement, journaled write-ahead, then deleted conditionally on the
 *    fingerprint; marks. A lock per type keeps two runs apart; a run killed anywhere
 *    converges on the next one (pending journal intents are resolved by reading).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Backend, DeleteItem, DeleteResult } from '../backends/types.js';
import { classify } from '../engine/classify.js';
import { matchesFilter, sameFilter, type FindingFilter } from '../engine/filters.js';
import { reapOrder } from '../engine/graph.js';
import { breakerReasons, capViolation, decideSweep, markCandidates, type PlanItem, type SweepDecision, type SweepEvidence } from '../engine/reap-plan.js';
import type { Finding, ResourceRecord } from '../engine/types.js';
import { BackendError, InterruptedError, ReaperError, redact, SafetyError, UsageError } from '../errors.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import type { PendingTombstones, ReapOutcomes, ReapReport, ResourceReap } from '../report/reap-report.js';
import { REPORT_SCHEMA_VERSION, scanProblem, summarize, TelemetryAccumulator, type ResourceTelemetry } from '../report/telemetry.js';
import type { JournalEntry, StateStore, Tombstone } from '../state/types.js';
import { IdSet } from '../util/id-set.js';
import { reaperVersion } from '../version.js';
import { classifyResource, judgeRecords } from './classify-stream.js';
import { openRunContext, type RunContext } from './context.js';
import { failpoints, type FailpointName } from './failpoints.js';
import { openPlan, PLAN_FORMAT_VERSION, PlanSpool, PlanWriter, type PlanHeader } from './plan-file.js';
import { declaredScope } from '../backends/open.js';

export interface ReapOptions {
  execute: boolean;
  store?: StateStore;
  signal?: AbortSignal;
  resources?: readonly string[];
  /** Save the plan here. */
  planOut?: string;
  /** Apply this saved plan (with execute) instead of planning afresh. */
  planIn?: string;
  /** Proceed although the registry-outage breaker tripped (a deliberate first run). */
  allowLivenessDrop?: boolean;
  /** How long a per-type lock lasts without refresh (default 2 minutes). */
  lockTtlMs?: number;
  /** Crash-test failpoint (REAPER_FAILPOINT). */
  failpoint?: string;
  /** Ids shown per list in the report (default 5). */
  sampleSize?: number;
  onProgress?: (text: string) => void;
  /**
   * Narrows what is marked, swept and lifted (--older-than, --owner); what is scanned, the
   * telemetry and the caps (a fraction of the whole type) are unchanged. Recorded in a saved
   * plan, which is applied only with the same filters.
   */
  filter?: FindingFilter;
  /** Told the run's id once it is recorded (machine logs). */
  onRunStarted?: (run: { runId: string; startedAt: number }) => void;
}

const emptyOutcomes = (): ReapOutcomes => ({ marked: 0, deleted: 0, lifted: 0, failed: 0, kept: 0, bytesReclaimed: 0 });

export async function runReap(manifest: Manifest, options: ReapOptions): Promise<ReapReport> {
  const fail = failpoints(options.failpoint);
  const context = await openRunContext(manifest, {
    store: options.store,
    signal: options.signal,
    exclude: [options.planOut, options.planIn].filter((f): f is string => f !== undefined),
    failpoint: fail,
  });
  const { store } = context;
  // The run's record lives as long as its locks: killed, it is recorded abandoned once they expire.
  const run = await context.startRun({ kind: 'reap', manifestDigest: manifest.digest, execute: options.execute }, lockTtl(options));
  options.onRunStarted?.(run);
  const locks: string[] = [];
  let spoolDir: string | null = null;
  try {
    const sources = await context.liveness.counts(options.signal);
    const tripped = breakerReasons(sources, await store.lastSourceCounts('reap'), manifest.breaker);
    if (tripped.length > 0 && !options.allowLivenessDrop) {
      throw new SafetyError(`registry-outage breaker: nothing reaped.\n  ${tripped.map(redact).join('\n  ')}\n  (--allow-liveness-drop overrides this for a deliberate run)`);
    }
    // Dependents before their owners (reverse topological order of `ref`), so an interrupted
    // run never leaves a dependent whose owner is already gone.
    const specs = reapOrder(manifest.resources.filter((r) => !options.resources || options.resources.includes(r.name)));
    const reports = new Map<string, ResourceReap>();
    for (const spec of specs) {
      const report: ResourceReap = {
        name: spec.name,
        backend: spec.location.kind,
        deleteMode: null,
        scanned: 0,
        toMark: 0,
        toSweep: 0,
        toLift: 0,
        samples: { mark: [], sweep: [], lift: [] },
        lifts: {},
        outcomes: emptyOutcomes(),
        telemetry: null,
        error: null,
        pending: null,
      };
      reports.set(spec.name, report);
      // A type whose backend cannot be opened is refused alone; the others are reaped (docs/safety.md §21).
      const backend = await refusing(report, spec, options, () => context.backend(spec));
      if (!backend) continue;
      // A precondition the manifest asks for (requireVersioning) refuses the whole run, as a cap does.
      const refusal = backend.reapRefusal?.() ?? null;
      if (refusal !== null) throw new SafetyError(`${spec.name}: ${refusal} (nothing was marked or deleted)`);
      if (options.execute) {
        const mode = await refusing(report, spec, options, async () => (await backend.capabilities(options.signal)).deleteMode);
        if (mode === null) continue;
        report.deleteMode = mode;
        if (!(await store.acquireLock(spec.name, run.runId, lockTtl(options)))) {
          throw new SafetyError(`another reap run holds the lock on ${spec.name}; one run per resource type at a time`);
        }
        locks.push(spec.name);
        if ((await refusing(report, spec, options, () => recoverIntents(context, spec, backend, run.runId, report).then(() => true))) === null) continue;
      }
    }
    const readable = specs.filter((spec) => reports.get(spec.name)!.error === null);

    let planFile = options.planIn ?? options.planOut ?? null;
    let header: PlanHeader;
    let items: () => AsyncGenerator<PlanItem>;
    if (options.planIn) {
      const plan = await openPlan(options.planIn, manifest.digest);
      header = plan.header;
      checkPlanFilters(options.planIn, header, options);
      items = plan.items;
      for (const r of header.resources) {
        const report = reports.get(r.name);
        if (report && report.error === null) Object.assign(report, { scanned: r.scanned, toMark: r.toMark, toSweep: r.toSweep, toLift: r.toLift });
      }
    } else {
      spoolDir = await mkdtemp(path.join(tmpdir(), 'reaper-plan-'));
      planFile ??= path.join(spoolDir, 'plan.ndjson');
      const writer = new PlanWriter(planFile);
      const nowMs = await store.now();
      for (const spec of readable) {
        const report = reports.get(spec.name)!;
        const spool = new PlanSpool(path.join(spoolDir, `type-${readable.indexOf(spec)}.ndjson`));
        const planned = await refusing(report, spec, options, () => planResource(context, spec, context.backend(spec), nowMs, spool, report, options).then(() => true));
        if (planned) await spool.appendTo(writer);
        else await spool.discard();
      }
      header = {
        kind: 'reaper-plan',
        version: PLAN_FORMAT_VERSION,
        runId: run.runId,
        createdAt: new Date(nowMs).toISOString(),
        manifestDigest: manifest.digest,
        resources: [...reports.values()].map((r) => ({ name: r.name, scanned: r.scanned, toMark: r.toMark, toSweep: r.toSweep, toLift: r.toLift })),
        ...(options.filter ? { filters: options.filter } : {}),
      };
      await writer.close(header);
      const reader = await openPlan(planFile, manifest.digest);
      items = reader.items;
      if (!options.planOut) planFile = null;
    }
    fail('after-plan');
    if (options.signal?.aborted) throw new InterruptedError('stopped while planning; nothing was marked or deleted');

    const violations = readable
      .filter((spec) => reports.get(spec.name)!.error === null)
      .map((spec) => {
        const r = reports.get(spec.name)!;
        return capViolation(spec, { resource: spec.name, scanned: r.scanned, toMark: r.toMark, toSweep: r.toSweep });
      })
      .filter((v): v is string => v !== null);
    if (violations.length > 0) throw new SafetyError(`caps exceeded; nothing was marked or deleted.\n  ${violations.join('\n  ')}`);

    const errors: string[] = [];
    for (const r of reports.values()) {
      if (r.error !== null) errors.push(`${r.name}: refused, nothing of it was marked or deleted: ${r.error}`);
      else if (r.telemetry && r.telemetry.status !== 'ok') errors.push(`${r.name}: ${scanProblem(r.telemetry)}; the rest of it was judged`);
    }
    const live = readable.filter((spec) => reports.get(spec.name)!.error === null);
    if (options.execute) {
      const bySpec = new Map(live.map((s) => [s.name, s]));
      await applyPlan(context, bySpec, items, reports, run.runId, { ...options, fail, errors, fromFile: Boolean(options.planIn) });
      const nowMs = await store.now();
      for (const spec of live) await (await context.backend(spec)).purgeRetained?.(nowMs, options.signal);
    }

    for (const spec of specs) reports.get(spec.name)!.pending = await pendingTombstones(store, spec);
    const resources = [...reports.values()];
    const report: ReapReport = {
      version: REPORT_SCHEMA_VERSION,
      kind: 'reap',
      reaper: reaperVersion(),
      runId: run.runId,
      execute: options.execute,
      plan: planFile,
      summary: summarize(resources.map((r) => r.telemetry).filter((t): t is ResourceTelemetry => t !== null)),
      resources,
      outcomes: totalOutcomes(resources),
      sources: sources.counts,
      sourceErrors: Object.fromEntries(Object.entries(context.liveness.failures()).map(([name, e]) => [name, redact(e)])),
      errors,
      ...(header.filters ? { filters: header.filters } : {}),
    };
    await store.finishRun(run.runId, {
      status: errors.length > 0 ? 'failed' : 'ok',
      summary: { summary: report.summary, resources: resources.map((r) => r.telemetry).filter(Boolean), outcomes: report.outcomes },
      sourceCounts: tripped.length > 0 ? null : sources.counts,
      error: errors.length > 0 ? errors.join('; ') : null,
    });
    fail('after-finish');
    if (errors.length > 0) {
      throw Object.assign(new BackendError(`reap finished with failures:\n  ${errors.map(redact).join('\n  ')}`), { report });
    }
    return report;
  } catch (caught) {
    // A stop requested while scanning or reading surfaces as the signal's abort reason (a plain
    // Error); it is an interruption (exit 130), not a backend failure.
    const error =
      options.signal?.aborted && !(caught instanceof ReaperError)
        ? new InterruptedError('stopped before acting on the current step; the next run resumes', { cause: caught })
        : caught;
    if (!(error as { report?: unknown }).report) {
      const status = error instanceof SafetyError ? 'refused' : error instanceof InterruptedError ? 'interrupted' : 'failed';
      await store.finishRun(run.runId, { status, error: redact((error as Error).message) }).catch(() => undefined);
    }
    throw error;
  } finally {
    for (const name of locks) await store.releaseLock(name, run.runId).catch(() => undefined);
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
    await context.close();
  }
}

/** What waits for a later run: the tombstones still marked, and the earliest moment one is due. */
async function pendingTombstones(store: StateStore, spec: ResourceSpec): Promise<PendingTombstones> {
  const { marked, oldestMarkedAt } = await store.countTombstones(spec.name);
  return { count: marked, earliestSweepAt: oldestMarkedAt === null || marked === 0 ? null : new Date(oldestMarkedAt + spec.graceMs).toISOString() };
}

/** A saved plan is applied with the filters it was made with, or none given (SAFETY 9: one candidate set). */
function checkPlanFilters(file: string, header: PlanHeader, options: ReapOptions): void {
  if (options.filter === undefined || sameFilter(options.filter, header.filters)) return;
  throw new UsageError(`the plan ${file} was made with filters ${JSON.stringify(header.filters ?? {})}, not ${JSON.stringify(options.filter)}; apply it without filter flags, or plan again`);
}

const lockTtl = (options: ReapOptions) => options.lockTtlMs ?? 120_000;

/**
 * Run one type's step; a failure (not a stop, not a safety refusal) refuses that type
 * alone: its report says why and it is left out of the rest of the run. Returns null then.
 */
async function refusing<T>(report: ResourceReap, spec: ResourceSpec, options: ReapOptions, step: () => Promise<T>): Promise<T | null> {
  try {
    return await step();
  } catch (error) {
    if (options.signal?.aborted || error instanceof SafetyError || error instanceof InterruptedError) throw error;
    report.error = redact((error as Error)?.message ?? String(error));
    const acc = new TelemetryAccumulator(spec.name, spec.location.kind, declaredScope(spec));
    acc.fail(report.error);
    report.telemetry = acc.result({ count: 0, oldestAgeSeconds: null });
    report.toMark = report.toSweep = report.toLift = 0;
    report.samples = { mark: [], sweep: [], lift: [] };
    report.outcomes.kept = 0;
    return null;
  }
}

function totalOutcomes(resources: readonly ResourceReap[]): ReapOutcomes {
  const total = emptyOutcomes();
  for (const r of resources) for (const k of Object.keys(total) as (keyof ReapOutcomes)[]) total[k] += r.outcomes[k];
  return total;
}

function sample(list: string[], id: string, size: number): void {
  if (list.length < size) list.push(id);
}

// ------------------------------------------------------------------ planning

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
  writer: Pick<PlanSpool, 'add'>,
  report: ResourceReap,
  options: ReapOptions,
): Promise<void> {
  const backend = await opening;
  const size = options.sampleSize ?? 5;
  const write = async (judged: readonly Verdict[]) => {
    // A tombstone outside the filters is left as it is; one whose resource is gone is judged by its owner.
    const verdicts = options.filter ? judged.filter((v) => matchesFilter(options.filter, v.finding ?? { owner: v.tombstone.owner, ageSeconds: null })) : judged;
    // Lifts first, then sweeps: each becomes one batch when applied.
    for (const { tombstone, decision } of verdicts) {
      if (decision.action === 'lift') {
        report.toLift++;
        sample(report.samples.lift, tombstone.resourceId, size);
        await writer.add({ op: 'lift', resource: spec.name, tombstoneId: tombstone.tombstoneId, id: tombstone.resourceId, why: decision.why });
      } else if (decision.action === 'keep') {
        report.outcomes.kept++;
      }
    }
    for (const { tombstone, finding, decision } of verdicts) {
      if (decision.action !== 'delete') continue;
      report.toSweep++;
      sample(report.samples.sweep, tombstone.resourceId, size);
      await writer.add({
        op: 'sweep',
        resource: spec.name,
        tombstoneId: tombstone.tombstoneId,
        id: tombstone.resourceId,
        fingerprint: tombstone.fingerprint,
        owner: tombstone.owner,
        ownerValue: tombstone.ownerValue,
        bytes: tombstone.bytes,
        evidence: evidenceOf(finding, tombstone),
      });
    }
  };

  const judged = new IdSet();
  const acc = new TelemetryAccumulator(spec.name, spec.location.kind, backend.scope);
  for await (const page of classifyResource(backend, spec, context.liveness, nowMs, { signal: options.signal })) {
    if (page.unreadable) acc.addUnreadable(page.unreadable.map((u) => ({ id: u.id, why: redact(u.why) })));
    for (const f of page.findings) acc.add(f);
    const active = page.records.length ? await context.store.activeTombstones(spec.name, page.records.map((r) => r.id)) : new Map<string, Tombstone>();
    const due = [...active.values()].filter((t) => t.state === 'marked' && t.markedAt <= nowMs - spec.graceMs);
    if (due.length > 0) {
      const records = new Map(page.records.map((r) => [r.id, r]));
      const findings = new Map(page.findings.map((f) => [f.id, f]));
      await write(await judgeTombstones(context, spec, due, records, findings));
      for (const t of due) judged.add(t.tombstoneId);
    }
    const candidates = options.filter ? page.findings.filter((f) => matchesFilter(options.filter, f)) : page.findings;
    for (const item of markCandidates(candidates, page.records, spec, new Set(active.keys()))) {
      report.toMark++;
      sample(report.samples.mark, item.id, size);
      await writer.add(item);
    }
    options.onProgress?.(`planning ${spec.name}: ${acc.scannedSoFar} scanned, ${report.toMark} to mark, ${report.toSweep} to sweep`);
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
    const unmet = due.filter((t) => !judged.has(t.tombstoneId));
    if (unmet.length > 0) await write(await verifyTombstones(context, spec, backend, unmet, options.signal));
  }
  const backlog = await context.store.countTombstones(spec.name);
  report.scanned = acc.scannedSoFar;
  report.telemetry = acc.result({
    count: backlog.marked + backlog.deleting,
    oldestAgeSeconds: backlog.oldestMarkedAt === null ? null : Math.max(0, nowMs - backlog.oldestMarkedAt) / 1000,
  });
}

interface Verdict {
  tombstone: Tombstone;
  finding: Finding | undefined;
  decision: SweepDecision;
}

/** What the journal keeps of the judgement behind a delete. */
function evidenceOf(finding: Finding | undefined, tombstone: Tombstone): SweepEvidence {
  return { status: finding?.status, reason: finding?.reason, owner: finding?.owner, ageSeconds: finding?.ageSeconds, markedAt: tombstone.markedAt };
}

/** The sweep-time judgement of due tombstones from a fresh read and its findings, plus lease activity since the mark (SAFETY 1, 2). */
async function judgeTombstones(
  context: RunContext,
  spec: ResourceSpec,
  tombstones: readonly Tombstone[],
  current: ReadonlyMap<string, ResourceRecord>,
  findings: ReadonlyMap<string, Finding>,
): Promise<Verdict[]> {
  // Asked from the batch's earliest mark: a renewal in between errs toward keeping.
  const earliest = Math.min(...tombstones.map((t) => t.markedAt));
  const owners = [...new Set(tombstones.map((t) => t.owner).filter((o): o is string => o !== null))];
  const activeSince = owners.length ? await context.store.keysActiveSince(owners, earliest) : new Set<string>();
  return tombstones.map((tombstone) => {
    const finding = findings.get(tombstone.resourceId);
    const renewed = tombstone.owner !== null && activeSince.has(tombstone.owner);
    return { tombstone, finding, decision: decideSweep(tombstone, current.get(tombstone.resourceId), finding, renewed, spec) };
  });
}

/** Read due tombstones' resources afresh, judge their owners afresh: the sweep-time judgement where no scan page holds them. */
async function verifyTombstones(context: RunContext, spec: ResourceSpec, backend: Backend, tombstones: readonly Tombstone[], signal?: AbortSignal): Promise<Verdict[]> {
  const current = await backend.read(
    tombstones.map((t) => t.resourceId),
    signal,
  );
  const records = [...current.values()];
  const { answers } = await judgeRecords(records, spec, context.liveness, signal);
  const nowMs = await context.store.now();
  const findings = new Map<string, Finding>(records.map((r) => [r.id, classify(r, spec, answers, nowMs)]));
  return judgeTombstones(context, spec, tombstones, current, findings);
}

// ------------------------------------------------------------------ applying

interface ApplyOptions extends ReapOptions {
  fail: (name: FailpointName) => void;
  errors: string[];
  fromFile: boolean;
}

async function applyPlan(
  context: RunContext,
  specs: ReadonlyMap<string, ResourceSpec>,
  items: () => AsyncGenerator<PlanItem>,
  reports: Map<string, ResourceReap>,
  runId: string,
  options: ApplyOptions,
): Promise<void> {
  let batch: PlanItem[] = [];
  let batchKey = '';
  const failedTypes = new Set<string>();
  const flush = async () => {
    if (batch.length === 0) return;
    const first = batch[0]!;
    const spec = specs.get(first.resource);
    const current = batch;
    batch = [];
    if (!spec || failedTypes.has(spec.name)) return;
    if (!(await context.store.refreshLock(spec.name, runId, lockTtl(options)))) {
      throw new SafetyError(`lost the lock on ${spec.name}; stopping before acting further`);
    }
    const report = reports.get(spec.name)!;
    const backend = await context.backend(spec);
    const before = report.outcomes.failed;
    // A batch once begun is finished: a stop request is honoured after it (below), never inside its
    // re-reads, marks or read-backs (a second signal ends the process at once).
    const inFlight: ApplyOptions = { ...options, signal: undefined };
    let failures: string[] = [];
    if (first.op === 'lift') await applyLifts(context, spec, backend, current as Extract<PlanItem, { op: 'lift' }>[], report, runId);
    else if (first.op === 'sweep') failures = await applySweeps(context, spec, backend, current as Extract<PlanItem, { op: 'sweep' }>[], report, runId, inFlight);
    else await applyMarks(context, spec, backend, current as Extract<PlanItem, { op: 'mark' }>[], report, runId, inFlight);
    await context.store.saveCheckpoint(runId, spec.name, first.op, current[current.length - 1]!.id);
    options.onProgress?.(`${spec.name}: ${report.outcomes.deleted} deleted, ${report.outcomes.marked} marked, ${report.outcomes.lifted} lifted`);
    if (report.outcomes.failed > before) {
      failedTypes.add(spec.name);
      const why = failures.length > 0 ? ` (${describeFailures(failures)})` : '';
      options.errors.push(`${spec.name}: ${report.outcomes.failed - before} delete(s) failed${why}; the batch stopped and the rest of ${spec.name} waits for the next run`);
    }
    if (options.signal?.aborted) throw new InterruptedError('stopped after finishing the current batch; the next run resumes');
  };
  for await (const item of items()) {
    const key = `${item.resource}\0${item.op}`;
    const spec = specs.get(item.resource);
    if (key !== batchKey || batch.length >= (spec?.batchSize ?? 500)) {
      await flush();
      batchKey = key;
    }
    batch.push(item);
  }
  await flush();
}

async function applyLifts(context: RunContext, spec: ResourceSpec, backend: Backend, items: Extract<PlanItem, { op: 'lift' }>[], report: ResourceReap, runId: string) {
  const byWhy = new Map<string, number[]>();
  for (const item of items) byWhy.set(item.why, [...(byWhy.get(item.why) ?? []), item.tombstoneId]);
  for (const [why, ids] of byWhy) {
    const lifted = await context.store.liftTombstones(runId, ids, why);
    report.outcomes.lifted += lifted;
    report.lifts[why] = (report.lifts[why] ?? 0) + lifted;
  }
  if (backend.unmark) {
    await backend.unmark(items.map((i) => ({ id: i.id, fingerprint: '' }))).catch(() => undefined);
  }
}

/** Apply a batch of sweeps; returns the errors of the deletes that failed (one per item). */
async function applySweeps(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: Extract<PlanItem, { op: 'sweep' }>[],
  report: ResourceReap,
  runId: string,
  options: ApplyOptions,
): Promise<string[]> {
  // Sweeps planned by this very run were judged moments ago against the scan's read; the
  // write-ahead moves only tombstones still marked, the last look re-judges the owners and
  // the delete is conditional on the fingerprint. A saved plan is read and judged again.
  const doomed = options.fromFile
    ? (await reverifySweeps(context, spec, backend, items, report, runId, options.signal)).map(({ tombstone: t, evidence }) => ({
        tombstoneId: t.tombstoneId,
        ownerValue: t.ownerValue,
        evidence,
        markedAt: t.markedAt,
      }))
    : // (without evidence, from 0: any lease activity ever counts as a renewal, which errs toward keeping)
      items.map((i) => ({ tombstoneId: i.tombstoneId, ownerValue: i.ownerValue ?? null, evidence: i.evidence ?? null, markedAt: i.evidence?.markedAt ?? 0 }));
  if (doomed.length === 0) return [];

  // Write-ahead journal: durable before any delete request leaves the process (SAFETY 10).
  const entries = await context.store.beginDeletes(
    runId,
    doomed.map((v) => ({ tombstoneId: v.tombstoneId, evidence: v.evidence })),
  );
  options.fail('after-journal');
  const proceed = await lastLook(context, entries, Math.min(...doomed.map((v) => v.markedAt)), report, runId, options.signal);
  if (proceed.length === 0) return [];
  const ownerValues = new Map(doomed.map((v) => [v.tombstoneId, v.ownerValue]));
  const deleteItems: DeleteItem[] = proceed.map((e) => ({ id: e.resourceId, fingerprint: e.fingerprint, ownerValue: ownerValues.get(e.tombstoneId) ?? null }));
  const results = await backend.delete(deleteItems);
  options.fail('after-delete');
  return recordResults(context, backend, proceed, results, report, runId, options.signal);
}

/** The distinct errors of failed deletes, in the order first met, each counted: `A ×3; B ×1` (the first three, then how many more). */
export function describeFailures(errors: readonly string[], shown = 3): string {
  const counts = new Map<string, number>();
  for (const error of errors) counts.set(error, (counts.get(error) ?? 0) + 1);
  const first = [...counts].slice(0, shown).map(([error, n]) => `${error} ×${n}`);
  const more = counts.size - first.length;
  return more > 0 ? `${first.join('; ')}; and ${more} other error(s)` : first.join('; ');
}

/**
 * Sweeps planned by this very run were judged moments ago against the scan's read; the
 * conditional delete (fingerprint) and the last look (owners) cover what can change in
 * between. Here only the ledger is checked: each tombstone still marked, still due by the
 * store clock, unchanged since it was planned.
 */
async function stillDue(context: RunContext, spec: ResourceSpec, items: readonly Extract<PlanItem, { op: 'sweep' }>[]): Promise<{ tombstone: Tombstone; evidence: SweepEvidence }[]> {
  const active = await context.store.activeTombstones(
    spec.name,
    items.map((i) => i.id),
  );
  const nowMs = await context.store.now();
  const out: { tombstone: Tombstone; evidence: SweepEvidence }[] = [];
  for (const item of items) {
    const t = active.get(item.id);
    if (!t || t.tombstoneId !== item.tombstoneId || t.state !== 'marked' || t.markedAt > nowMs - spec.graceMs || t.fingerprint !== item.fingerprint) continue;
    out.push({ tombstone: t, evidence: item.evidence ?? { markedAt: t.markedAt } });
  }
  return out;
}

/** A saved plan may be older than this moment: read and judge every sweep again (SAFETY 1–3, 9). */
async function reverifySweeps(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: readonly Extract<PlanItem, { op: 'sweep' }>[],
  report: ResourceReap,
  runId: string,
  signal?: AbortSignal,
): Promise<{ tombstone: Tombstone; evidence: SweepEvidence }[]> {
  const planned = await stillDue(context, spec, items);
  if (planned.length === 0) return [];
  const verified = await verifyTombstones(
    context,
    spec,
    backend,
    planned.map((p) => p.tombstone),
    signal,
  );
  for (const v of verified) {
    if (v.decision.action !== 'lift') continue;
    report.outcomes.lifted += await context.store.liftTombstones(runId, [v.tombstone.tombstoneId], v.decision.why);
    report.lifts[v.decision.why] = (report.lifts[v.decision.why] ?? 0) + 1;
  }
  report.outcomes.kept += verified.filter((v) => v.decision.action === 'keep').length;
  return verified.filter((v) => v.decision.action === 'delete').map((v) => ({ tombstone: v.tombstone, evidence: evidenceOf(v.finding, v.tombstone) }));
}

/**
 * The last look before a delete request leaves (SAFETY 2): owners are judged once more,
 * after the journal entry, by every liveness source and by lease activity since the mark.
 * An owner that came back (or cannot be judged now) saves its resources: their entries are
 * closed as `changed` and the tombstones lifted. What remains is the time the request takes.
 */
async function lastLook(context: RunContext, entries: readonly JournalEntry[], sinceMs: number, report: ResourceReap, runId: string, signal?: AbortSignal): Promise<JournalEntry[]> {
  // Owner keys only: refs were judged through the graph a moment ago, and an expired
  // resource's owner is live by definition.
  const keyed = (e: JournalEntry) => e.owner !== null && e.reason !== 'unreachable' && e.reason !== 'expired';
  const owners = [...new Set(entries.filter(keyed).map((e) => e.owner!))];
  if (owners.length === 0) return [...entries];
  const [judged, renewed] = await Promise.all([context.liveness.judge(owners, signal), context.store.keysActiveSince(owners, sinceMs)]);
  const saved = (e: JournalEntry) => keyed(e) && (renewed.has(e.owner!) || judged.answers.get(e.owner!) !== 'dead');
  const spared = entries.filter(saved);
  if (spared.length > 0) {
    await context.store.finishDeletes(
      runId,
      spared.map((e) => ({ journalId: e.journalId, outcome: 'changed' as const, error: 'the owner came back (or could not be judged) just before the delete' })),
    );
    report.outcomes.lifted += spared.length;
    report.lifts['owner-live'] = (report.lifts['owner-live'] ?? 0) + spared.length;
  }
  return entries.filter((e) => !saved(e));
}

/**
 * Journal the outcomes; a failed (ambiguous) delete is resolved by reading, never by an
 * unconditional retry (SAFETY 12). Returns the error of each delete that stays failed.
 */
async function recordResults(
  context: RunContext,
  backend: Backend,
  entries: readonly JournalEntry[],
  results: readonly DeleteResult[],
  report: ResourceReap,
  runId: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const failures: string[] = [];
  const failed = results.filter((r) => r.outcome === 'failed');
  const present = failed.length ? await backend.read(failed.map((r) => r.id), signal).catch(() => null) : new Map();
  const outcomes = entries.map((entry, i) => {
    const result = results[i]!;
    let outcome = result.outcome;
    let error = result.error ?? null;
    if (outcome === 'failed' && present !== null) {
      const now = present.get(entry.resourceId);
      if (!now) {
        outcome = 'deleted';
        error = `delete reported "${result.error}" but the resource is gone; recorded as deleted after reading`;
      } else if (now.fingerprint !== entry.fingerprint) {
        outcome = 'changed';
      }
    }
    if (outcome === 'deleted') {
      report.outcomes.deleted++;
      report.outcomes.bytesReclaimed += entry.bytes ?? 0;
    } else if (outcome === 'absent') report.outcomes.deleted++;
    else if (outcome === 'changed') {
      report.outcomes.lifted++;
      report.lifts.changed = (report.lifts.changed ?? 0) + 1;
    } else {
      report.outcomes.failed++;
      failures.push(error ?? 'no error given');
    }
    return { journalId: entry.journalId, outcome, error, restoreHandle: result.restoreHandle ?? null };
  });
  await context.store.finishDeletes(runId, outcomes);
  return failures;
}

async function applyMarks(
  context: RunContext,
  spec: ResourceSpec,
  backend: Backend,
  items: Extract<PlanItem, { op: 'mark' }>[],
  report: ResourceReap,
  runId: string,
  options: ApplyOptions,
) {
  let marks = items;
  if (options.fromFile) {
    // A saved plan may be stale: mark only what is still reapable with the same fingerprint.
    const current = await backend.read(items.map((i) => i.id), options.signal);
    const { answers } = await judgeRecords([...current.values()], spec, context.liveness, options.signal);
    const nowMs = await context.store.now();
    marks = items.filter((item) => {
      const record = current.get(item.id);
      if (!record || record.fingerprint !== item.fingerprint) return false;
      const f = classify(record, spec, answers, nowMs);
      return f.status === 'orphaned' || (f.status === 'expired' && spec.onExpired === 'reap');
    });
  }
  let fingerprints: Map<string, string> | null = null;
  if (backend.mark) {
    fingerprints = await backend.mark(marks.map((m) => ({ id: m.id, fingerprint: m.fingerprint, ownerValue: m.ownerValue })), runId, options.signal);
  }
  const rows = marks
    .filter((m) => fingerprints === null || fingerprints.has(m.id))
    .map((m) => ({
      resource: spec.name,
      resourceId: m.id,
      fingerprint: fingerprints?.get(m.id) ?? m.fingerprint,
      owner: m.owner,
      ownerValue: m.ownerValue,
      reason: m.reason,
      bytes: m.bytes,
    }));
  report.outcomes.marked += await context.store.insertTombstones(runId, rows);
  options.fail('after-mark');
}

/**
 * Journal entries left at `intent` by a run that died between the write-ahead and the
 * outcome: first the backend settles what the run may have left half-done (files: a copy in
 * quarantine, unlinked if it is the journaled file, else put back), then each resource is
 * read to learn what happened (SAFETY 11, 12).
 */
async function recoverIntents(context: RunContext, spec: ResourceSpec, backend: Backend, runId: string, report: ResourceReap): Promise<void> {
  const pending = await context.store.pendingIntents(spec.name);
  if (pending.length === 0) return;
  const settled = new Map<number, DeleteResult>();
  if (backend.recoverDelete) {
    for (const entry of pending) {
      const result = await backend.recoverDelete({ id: entry.resourceId, fingerprint: entry.fingerprint });
      if (result) settled.set(entry.journalId, result);
    }
  }
  const current = await backend.read(pending.map((p) => p.resourceId));
  const deleted = (entry: JournalEntry, error: string, restoreHandle: string | null = null) => {
    report.outcomes.deleted++;
    report.outcomes.bytesReclaimed += entry.bytes ?? 0;
    return { journalId: entry.journalId, outcome: 'deleted' as const, error, restoreHandle };
  };
  const changed = (entry: JournalEntry, error: string, restoreHandle: string | null = null) => {
    report.outcomes.lifted++;
    report.lifts.changed = (report.lifts.changed ?? 0) + 1;
    return { journalId: entry.journalId, outcome: 'changed' as const, error, restoreHandle };
  };
  const outcomes = pending.map((entry) => {
    const left = settled.get(entry.journalId);
    if (left?.outcome === 'deleted') return deleted(entry, 'recovered after interruption: finished the delete the run had begun', left.restoreHandle ?? null);
    if (left?.outcome === 'changed') return changed(entry, left.error ?? 'recovered after interruption: what the run had moved aside was not the journaled resource; put back', left.restoreHandle ?? null);
    const now = current.get(entry.resourceId);
    if (!now) return deleted(entry, 'recovered after interruption: the resource is gone');
    if (now.fingerprint !== entry.fingerprint) return changed(entry, 'recovered after interruption: the resource changed');
    // Not deleted: the tombstone goes back to marked and is re-verified by this run's sweep.
    return { journalId: entry.journalId, outcome: 'failed' as const, error: 'interrupted before the delete; will be re-verified' };
  });
  await context.store.finishDeletes(runId, outcomes);
}
