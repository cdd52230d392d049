/**
 * `reap`: tombstone-then-delete (docs/safety.md). This module runs the steps; each lives in
 * run/reap/:
 *
 * 1. Breaker: every liveness source must answer, hold at least minLiveKeys, and not have
 *    fallen sharply since the last run — else nothing happens (exit 4).
 * 2. Open each type (executing: its delete mode, its lock, and crash recovery of what a
 *    killed run left: recover.ts); a type that fails here is refused alone.
 * 3. Plan (plan.ts; the same code for dry run and execute): due tombstones are re-verified
 *    into sweep or lift items, the scan's reapable findings without a tombstone become mark
 *    items; items stream to a plan file. Caps are checked per type before anything is
 *    written to the ledger (exit 4 when exceeded).
 * 4. Apply (--execute; apply.ts, sweep.ts): lifts; sweeps, journaled write-ahead, judged a
 *    last time and deleted conditionally on the fingerprint; marks.
 *
 * Every count goes through one tally per type (tally.ts); the run's record in the store is
 * kept by recorded-run.ts, as for audit and restore.
 */
import { sameFilter, type FindingFilter } from '../engine/filters.js';
import { reapOrder } from '../engine/graph.js';
import type { PlanItem } from '../engine/reap-plan.js';
import { jobShard, lockName, shardLabel, type Shard } from '../engine/shard.js';
import { BackendError, InterruptedError, ReaperError, redact, SafetyError, UsageError } from '../errors.js';
import type { Finding } from '../engine/types.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import type { ReapReport } from '../report/reap-report.js';
import { REPORT_SCHEMA_VERSION, scanProblem, summarize, type ResourceTelemetry } from '../report/telemetry.js';
import type { StateStore } from '../state/types.js';
import { spoolFile, type Spool } from '../util/spool.js';
import { reaperVersion } from '../version.js';
import { openRunContext, type RunContext } from './context.js';
import { failpoints } from './failpoints.js';
import { openPlan, planItems, type OpenedPlan, type PlanHeader } from './plan-file.js';
import { HARD_STOP_ERROR, recordedRun } from './recorded-run.js';
import { applyPlan, refuseOverlap } from './reap/apply.js';
import { withNote } from './reap/sweep.js';
import { capViolations, judgeBreaker, resumedRun } from './reap/jobs.js';
import { writePlan } from './reap/plan.js';
import { recoverIntents } from './reap/recover.js';
import { ReapTally, totalOutcomes } from './reap/tally.js';

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
  /** Told every finding of the scan (`reap --html`: the report's aggregates); must not throw. */
  onFinding?: (finding: Finding) => void;
  /**
   * Sweep due tombstones from the ledger without scanning (`--sweep-only`): nothing new is
   * marked; each due resource is read by id and judged afresh. maxDeleteFraction is judged
   * against what the last reap run that scanned the type saw (no such run: the run refuses).
   */
  sweepOnly?: boolean;
  /** Reap only this shard's part of each type, under the shard's own lock (engine/shard.ts, docs/scale-out.md). */
  shard?: Shard | null;
  /** The job this run is a shard of (--job), recorded with the run and in the report. */
  job?: string | null;
}

/** Why a run stopped by a signal before it could finish its current step. */
const STOPPED = 'stopped before acting on the current step; the next run resumes';

export async function runReap(manifest: Manifest, options: ReapOptions): Promise<ReapReport> {
  const fail = failpoints(options.failpoint);
  // A saved plan is read and checked against the flags before anything is contacted.
  const saved = options.planIn ? await openSavedPlan(options.planIn, manifest.digest, options) : null;
  try {
    return await reapWith(manifest, options, saved, fail);
  } finally {
    await saved?.dispose();
  }
}

async function reapWith(manifest: Manifest, options: ReapOptions, saved: OpenedPlan | null, fail: ReturnType<typeof failpoints>): Promise<ReapReport> {
  const context = await openRunContext(manifest, {
    store: options.store,
    signal: options.signal,
    exclude: [options.planOut, options.planIn].filter((f): f is string => f !== undefined),
    failpoint: fail,
  });
  const { store } = context;
  const job = jobShard(options.job, options.shard);
  const locks: string[] = [];
  let runId = '';
  let spool = null as Spool | null;
  // Why applying stopped, and the report of what was done until then (see below).
  let stopped: { error: unknown; interrupted?: boolean; report?: ReapReport } | null = null;
  try {
    // The run's record lives as long as its locks: killed, it is recorded abandoned once they expire.
    const recording = { kind: 'reap' as const, manifestDigest: manifest.digest, execute: options.execute, ttlMs: lockTtl(options), signal: options.signal, onRunStarted: options.onRunStarted, job };
    const recorded = recordedRun(context, { ...recording, stopped: STOPPED }, async (run, progress) => {
      runId = run.runId;
      // The locks live as long as the run, through a scan longer than their ttl: a second run
      // cannot take a type over while this one plans it (docs/safety.md §13).
      context.keepAlive(() => Promise.all(locks.map((lock) => store.refreshLock(lock, run.runId, lockTtl(options)))));
      const resumed = options.execute ? await resumedRun(store, job, run) : null;
      if (resumed) options.onProgress?.(`resuming shard ${job?.shard ?? ''} of job ${job?.id ?? ''} after its run ${resumed.runId} (${resumed.status})`);
      const sources = await context.liveness.counts(options.signal);
      // In a job, judged once for all its shards (reap/jobs.ts).
      const breaker = await judgeBreaker(store, job, run.runId, sources, manifest.breaker);
      const tripped = breaker.reasons;
      if (tripped.length > 0 && !options.allowLivenessDrop) {
        throw new SafetyError(`registry-outage breaker: nothing reaped.\n  ${tripped.map(redact).join('\n  ')}\n  (--allow-liveness-drop overrides this for a deliberate run)`);
      }
      // Dependents before their owners (reverse topological order of `ref`), so an interrupted
      // run never leaves a dependent whose owner is already gone.
      // A saved plan fixes the types as well as the items: those it was made for, and no others.
      if (saved && options.execute) await refuseAppliedPlan(store, options.planIn!, saved.header);
      const chosen = saved ? saved.header.resources.map((r) => r.name) : options.resources;
      const specs = reapOrder(manifest.resources.filter((r) => !chosen || chosen.includes(r.name)));
      const tallies = new Map(specs.map((spec) => [spec.name, new ReapTally(spec, options.sampleSize ?? 5)]));
      // Recorded with the run's numbers. Its telemetry is a saved plan's scan, not this run's (lastScanned passes it over).
      const recordedWith = { ...(job ? { job: resumed ? { ...job, resumes: resumed.runId } : job } : {}), ...(saved && options.execute ? { appliedPlan: saved.header.runId } : {}) };
      // A run stopped or failing on the way records what it did so far: the scan's numbers once
      // there are some (none read yet: the table shows '-', not a scan of nothing) and its outcomes.
      progress.summary = () => {
        const telemetry = [...tallies.values()].map((t) => t.report.telemetry).filter((t): t is ResourceTelemetry => t !== null);
        return { ...(telemetry.length > 0 ? { summary: summarize(telemetry), resources: telemetry } : {}), outcomes: totalOutcomes(tallies.values()), ...recordedWith };
      };
      for (const spec of specs) await openType(context, spec, tallies.get(spec.name)!, run.runId, locks, options);
      const readable = () => specs.filter((spec) => tallies.get(spec.name)!.report.error === null);

      let planFile = options.planIn ?? options.planOut ?? null;
      let header: PlanHeader;
      let items: () => AsyncGenerator<PlanItem>;
      if (saved) {
        header = saved.header;
        items = saved.items;
        for (const r of header.resources) {
          const tally = tallies.get(r.name);
          if (tally && tally.report.error === null) tally.plannedBefore(r);
        }
      } else {
        // Without --plan-out, the plan is a spool (util/spool.ts): a run killed with it leaves none behind.
        spool = planFile === null ? await spoolFile('reaper-plan-', 'plan.ndjson') : null;
        const written = planFile ?? spool!.path;
        header = await writePlan(context, readable(), tallies, { file: written, runId: run.runId, manifestDigest: manifest.digest }, { ...options, selected: options.resources });
        // Written by this very run a moment ago: read back once, as it is applied.
        items = () => planItems(written);
        if (!options.planOut) planFile = null;
      }
      fail('after-plan');
      if (options.signal?.aborted) throw new InterruptedError('stopped while planning; nothing was marked or deleted');

      const live = readable();
      const baseline = options.sweepOnly ? await lastScanned(store, live) : null;
      // A shard of a job claims its plan within the job's caps from the store (reap/jobs.ts).
      const violations = await capViolations(store, live, tallies, { runId: run.runId, execute: options.execute, shard: options.shard ?? null, job, baseline });
      // Executing, a plan over the caps is refused before anything is marked. A dry run still
      // shows its plan (what --execute would refuse, and why), then exits as the refusal would.
      const overCaps = violations.length > 0 ? `${violations.join('\n  ')}\n  (narrow the run with --resource, --owner or --older-than, or raise the cap in the manifest)` : null;
      if (overCaps !== null && options.execute) throw new SafetyError(`caps exceeded; nothing was marked or deleted.\n  ${overCaps}`);

      const errors: string[] = [];
      for (const { report: r } of tallies.values()) {
        if (r.error !== null) errors.push(`${r.name}: refused, nothing of it was marked or deleted: ${r.error}`);
        else if (r.telemetry && r.telemetry.status !== 'ok') errors.push(`${r.name}: ${scanProblem(r.telemetry)}; the rest of it was judged`);
      }
      // A failure while applying (a store write refused mid-sweep): the run still reports what it
      // did and is recorded failed with it; what was in flight is settled by the next run (§11).
      if (options.execute) {
        const applying = { runId: run.runId, lockTtlMs: lockTtl(options), fromFile: Boolean(options.planIn), fail, errors, signal: options.signal, onProgress: options.onProgress, shard: options.shard ?? null };
        try {
          await applyPlan(context, new Map(live.map((s) => [s.name, s])), items, tallies, applying);
          const nowMs = await store.now();
          for (const spec of live) await (await context.backend(spec)).purgeRetained?.(nowMs, options.signal);
          // A plan applied to the end is applied once (refuseAppliedPlan): the run that made it carries the mark.
          if (errors.length === 0 && planFile !== null) await store.saveCheckpoint(header.runId, PLAN_APPLIED, 'applied', run.runId);
        } catch (error) {
          if (error instanceof SafetyError) throw error;
          // A stop requested while applying ends the run as interrupted (exit 130), still with the
          // report of what it did until then: the JSON document, the outputs and the run record
          // carry the deletes that happened before the stop.
          // Only the stop itself (or what a call it cut short threw) is an interruption: a store or
          // backend failure meanwhile stays a failure (exit 3), with its own message and notes.
          const interrupted = error instanceof InterruptedError || (options.signal?.aborted === true && !(error instanceof ReaperError));
          const cause = interrupted && !(error instanceof InterruptedError) ? new InterruptedError(STOPPED, { cause: error }) : error;
          stopped = { error: cause, interrupted };
          errors.push(`${interrupted ? 'interrupted' : 'applying stopped'}: ${redact((cause as Error)?.message ?? String(cause))}`);
        }
      }

      // What is left to clean after this run's marks and sweeps: the pending tombstones, and the
      // backlog the report, the run record and the metrics carry (the scan's count predates them).
      // Best effort once applying stopped: the store may not answer.
      try {
        const endMs = await store.now();
        for (const spec of specs) {
          const tombstones = await store.countTombstones(spec.name);
          tallies.get(spec.name)!.leftAfterRun(tombstones, spec.graceMs, endMs);
        }
      } catch (error) {
        if (stopped === null) throw error;
      }
      const resources = [...tallies.values()].map((t) => t.report);
      const report: ReapReport = {
        version: REPORT_SCHEMA_VERSION,
        kind: 'reap',
        reaper: reaperVersion(),
        runId: run.runId,
        execute: options.execute,
        ...(job ? { job } : {}),
        plan: planFile,
        ...(saved ? { planApplied: true } : {}),
        summary: summarize(resources.map((r) => r.telemetry).filter((t): t is ResourceTelemetry => t !== null)),
        resources,
        outcomes: totalOutcomes(tallies.values()),
        sources: sources.counts,
        sourceErrors: Object.fromEntries(Object.entries(context.liveness.failures()).map(([name, e]) => [name, redact(e)])),
        errors,
        ...(stopped?.interrupted ? { interrupted: true as const } : {}),
        ...(header.filters ? { filters: header.filters } : {}),
      };
      if (stopped) stopped.report = report;
      return {
        result: report,
        end: {
          // A dry run over the caps is recorded as the refusal --execute would meet.
          status: overCaps !== null ? 'refused' : stopped?.interrupted ? 'interrupted' : errors.length > 0 ? 'failed' : 'ok',
          summary: {
            summary: report.summary,
            resources: resources.map((r) => r.telemetry).filter(Boolean),
            outcomes: report.outcomes,
            ...recordedWith,
          },
          sourceCounts: tripped.length > 0 ? null : breaker.counts,
          error: errors.length > 0 || overCaps !== null ? [...errors, ...violations].join('; ') : null,
        },
        afterEnd: () => {
          fail('after-finish');
          if (stopped?.interrupted) throw Object.assign(stopped.error as InterruptedError, { report });
          if (overCaps !== null) throw Object.assign(new SafetyError(`caps exceeded: --execute would refuse this plan (dry run: nothing was marked or deleted).\n  ${overCaps}`), { report });
          if (errors.length > 0) throw Object.assign(new BackendError(`reap finished with failures:\n  ${errors.map(redact).join('\n  ')}`), { report });
        },
      };
    });
    // A store that stopped answering fails the run's record too: the cause stays the first failure, with the report.
    return await recorded.catch((error: unknown) => {
      if (stopped === null || stopped.report === undefined || (error as { report?: unknown }).report !== undefined) throw error;
      throw Object.assign(withNote(stopped.error, 'the run could not be recorded'), { report: stopped.report });
    });
  } finally {
    for (const name of locks) await store.releaseLock(name, runId).catch(() => undefined);
    await spool?.dispose();
    await context.close();
  }
}

/**
 * Open one type for this run; a failure refuses it alone (its tally says why). Executing, it
 * also learns the delete mode, takes the type's lock (added to `locks`; a lock held by another
 * run refuses the whole run) and recovers what a killed run left. A precondition the manifest
 * asks for (requireVersioning) refuses the whole run, as a cap does.
 */
async function openType(context: RunContext, spec: ResourceSpec, tally: ReapTally, runId: string, locks: string[], options: ReapOptions): Promise<void> {
  // A type whose backend cannot be opened is refused alone; the others are reaped (docs/safety.md §21).
  const backend = await tally.refusing(options.signal, () => context.backend(spec));
  if (!backend) return;
  const refusal = backend.reapRefusal?.() ?? null;
  if (refusal !== null) throw new SafetyError(`${spec.name}: ${refusal} (nothing was marked or deleted)`);
  const planned = backend.plannedDeleteMode?.();
  if (planned !== undefined) tally.report.deleteMode = planned;
  if (!options.execute) return;
  const mode = await tally.refusing(options.signal, async () => (await backend.capabilities(options.signal)).deleteMode);
  if (mode === null) return;
  tally.report.deleteMode = mode;
  const lock = lockName(spec.name, options.shard ?? null);
  if (!(await context.store.acquireLock(lock, runId, lockTtl(options)))) {
    // Whose, and until when: after a run killed with its lock held, the next one must not look stuck for good.
    const held = (await context.store.liveLocks().catch(() => [])).find((l) => l.resource === lock);
    const whose = held
      ? ` (run ${held.runId}, until ${new Date(held.expiresAt).toISOString().replace(/\.\d+Z$/, 'Z')} by the store's clock)`
      : '';
    const holder = held ? await context.store.getRun(held.runId).catch(() => null) : null;
    const how = holder?.error === HARD_STOP_ERROR ? ' (stopped at once by a second signal)' : '';
    const killed = !held
      ? ''
      : holder && holder.status !== 'running'
        ? `; run ${held.runId} ended ${holder.status}${how} without releasing it, and the lock is kept until then so that what it had in flight settles first: \`reaper runs show ${held.runId}\``
        : `; a run killed without releasing it (kill -9, an OOM kill) holds it until then: \`reaper runs show ${held.runId}\``;
    throw new SafetyError(`another reap run holds the lock on ${lock}${whose}; one run per resource type${lock === spec.name ? '' : ' and shard'} at a time${killed}`);
  }
  locks.push(lock);
  await refuseOverlap(context.store, spec.name, lock, runId, 'a type is reaped whole or by one shard layout at a time');
  await tally.refusing(options.signal, () => recoverIntents(context, spec, backend, runId, tally));
}

/**
 * Per type, what the newest reap run that scanned it saw: the denominator of
 * maxDeleteFraction for a run that does not scan (docs/safety.md §7). A type no recent run
 * scanned is missing, so its cap counts nothing scanned and any sweep exceeds it.
 */
async function lastScanned(store: StateStore, specs: readonly ResourceSpec[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const run of await store.listRuns({ kind: 'reap', limit: 50 })) {
    if (run.status !== 'ok') continue;
    // A run that applied a saved plan reports the plan's older scan, not one of its own.
    if ((run.summary as { appliedPlan?: unknown } | null)?.appliedPlan !== undefined) continue;
    const resources = (run.summary as { resources?: unknown } | null)?.resources;
    if (!Array.isArray(resources)) continue;
    for (const t of resources as { name?: unknown; scanned?: unknown }[]) {
      if (typeof t?.name === 'string' && typeof t.scanned === 'number' && t.scanned > 0 && !out.has(t.name)) out.set(t.name, t.scanned);
    }
    if (specs.every((spec) => out.has(spec.name))) break;
  }
  return out;
}

/** A saved plan, checked against the flags of this run: made with its filters, types and shard (or none given). */
async function openSavedPlan(file: string, manifestDigest: string, options: ReapOptions): Promise<OpenedPlan> {
  const plan = await openPlan(file, manifestDigest);
  try {
    checkPlanFilters(file, plan.header, options);
    checkPlanSelection(file, plan.header, options);
    checkPlanShard(file, plan.header, options);
  } catch (error) {
    await plan.dispose();
    throw error;
  }
  return plan;
}

/** The checkpoint, under the run that made a plan, naming the run that applied it to the end (a name no resource type can have). */
const PLAN_APPLIED = '(plan)';

/**
 * A plan is applied to the end once: a run that applied it without failures (a saved plan, or
 * one written and applied by the same `--execute --plan-out` run) left a checkpoint under the
 * plan's run. An interrupted or failed application leaves none, and applying the plan again
 * continues it. Refused as stale (a safety rail, exit 4).
 */
async function refuseAppliedPlan(store: StateStore, file: string, header: PlanHeader): Promise<void> {
  const by = await store.loadCheckpoint(header.runId, PLAN_APPLIED, 'applied');
  if (typeof by === 'string') throw new SafetyError(`the plan ${file} was applied to the end by run ${by}; plan again to reap what is left`);
}

/** A saved plan is applied to the types it was made for: --resource and --exclude-resource as then, or none given. */
function checkPlanSelection(file: string, header: PlanHeader, options: ReapOptions): void {
  if (options.resources === undefined) return;
  // A plan of an older reaper does not say how its types were chosen: the types it holds.
  const made = header.selected ?? header.resources.map((r) => r.name);
  const key = (names: readonly string[]) => JSON.stringify([...names].sort());
  if (key(options.resources) === key(made)) return;
  throw new UsageError(`the plan ${file} was made for ${made.join(', ') || 'no type'}, not ${options.resources.join(', ') || 'none'}; apply it without --resource and --exclude-resource (it reaps the types it was made for), or plan again`);
}

/** A saved plan is applied with the filters it was made with, or none given (docs/safety.md §9: one candidate set). */
function checkPlanFilters(file: string, header: PlanHeader, options: ReapOptions): void {
  if (options.filter === undefined || sameFilter(options.filter, header.filters)) return;
  throw new UsageError(`the plan ${file} was made with filters ${JSON.stringify(header.filters ?? {})}, not ${JSON.stringify(options.filter)}; apply it without filter flags, or plan again`);
}

/** A saved plan is applied by the shard that made it, under that shard's lock (docs/scale-out.md). */
function checkPlanShard(file: string, header: PlanHeader, options: ReapOptions): void {
  const shard = options.shard && options.shard.count > 1 ? shardLabel(options.shard) : undefined;
  if (header.shard === shard) return;
  throw new UsageError(`the plan ${file} was made ${header.shard ? `by shard ${header.shard}` : 'unsharded'}; apply it ${header.shard ? `with --shard ${header.shard}` : 'without --shard'}`);
}

const lockTtl = (options: ReapOptions) => options.lockTtlMs ?? 120_000;
