/**
 * One job, N shards, one set of rails (docs/scale-out.md): the shards of a job (`--job`) meet
 * in the state store. The registry-outage breaker is judged by the job's first shard and
 * adopted by the others; `maxDeletesPerRun` is claimed from the store for the whole job; and
 * a shard's rerun after a kill continues its predecessor's run.
 */
import { breakerReasons, capViolation } from '../../engine/reap-plan.js';
import { shardCaps, type JobShard, type Shard } from '../../engine/shard.js';
import type { SourceCounts } from '../../liveness/liveness.js';
import type { BreakerSpec, ResourceSpec } from '../../manifest/types.js';
import type { JobVerdict, RunRecord, StateStore } from '../../state/types.js';
import { SafetyError } from '../../errors.js';
import type { ReapTally } from './tally.js';

/**
 * How long a job's breaker verdict is adopted by its shards. Long enough for the shards of one
 * job to start one after another (parallelism below completions); short enough that a job id
 * used again the next day (a fixed $REAPER_JOB) is judged afresh, not on a stale verdict.
 */
export const JOB_VERDICT_MAX_AGE_MS = 6 * 3_600_000;

export interface BreakerJudgement {
  /** Why the breaker trips; empty when it does not. */
  reasons: string[];
  /** The live-key counts judged: this run's, or those the job's first shard judged. */
  counts: Record<string, number>;
  /** The verdict of the job's first shard, when this run adopted it instead of judging. */
  adopted: JobVerdict | null;
}

/**
 * The breaker (docs/safety.md §8). Outside a job, this run judges its sources against the last
 * reap's counts. In a job, the first shard to get here judges against the last reap's counts
 * and records its verdict and the counts it saw. A later shard does not judge against whatever
 * sibling finished last: a trip recorded for the job stops it too, and a healthy verdict is
 * never taken on trust — its own counts are judged against the counts the first shard saw, so
 * a registry that emptied between the two shards' starts trips the later one (the outage the
 * breaker exists for does not wait for a job to finish). Its own failed sources refuse it all
 * the same.
 */
export async function judgeBreaker(store: StateStore, job: JobShard | null, runId: string, sources: SourceCounts, spec: BreakerSpec): Promise<BreakerJudgement> {
  const judge = async () => breakerReasons(sources, await store.lastSourceCounts('reap'), spec);
  if (!job?.id) return { reasons: await judge(), counts: sources.counts, adopted: null };
  const verdict =
    (await store.jobVerdict(job.id, JOB_VERDICT_MAX_AGE_MS)) ??
    (await store.recordJobVerdict(job.id, { runId, reasons: await judge(), sourceCounts: sources.counts }, JOB_VERDICT_MAX_AGE_MS));
  if (verdict.runId === runId) return { reasons: verdict.reasons, counts: verdict.sourceCounts, adopted: null };
  const by = `job ${job.id}'s run ${verdict.runId}`;
  if (verdict.reasons.length > 0) {
    const failed = Object.entries(sources.errors).map(([name, error]) => `liveness source ${name} failed: ${error}`);
    return { reasons: [...verdict.reasons.map((reason) => `${reason} (judged for job ${job.id} by its run ${verdict.runId})`), ...failed], counts: verdict.sourceCounts, adopted: verdict };
  }
  const own = breakerReasons(sources, verdict.sourceCounts, spec).map((reason) => `${reason} (against the counts ${by} judged)`);
  return { reasons: own, counts: own.length > 0 ? verdict.sourceCounts : sources.counts, adopted: verdict };
}

/**
 * The caps (docs/safety.md §7) of this run's plan, as messages; empty when it may proceed.
 * maxDeleteFraction is checked per shard against its own scan: if every shard condemns at
 * most f × what it scanned, the job condemns at most f × what the job scanned.
 * maxDeletesPerRun: a shard of a named job claims its plan from the store, atomically, within
 * the cap for the whole job (only when executing: a dry run claims nothing, and checks its
 * plan against the whole cap); a shard of an unnamed job has no key to claim under and
 * checks against its static share ⌊maxDeletesPerRun / N⌋. A claim refused leaves the claims
 * of this run's earlier types unused: the job deletes less, never more.
 */
export async function capViolations(
  store: StateStore,
  specs: readonly ResourceSpec[],
  tallies: ReadonlyMap<string, ReapTally>,
  run: { runId: string; execute: boolean; shard: Shard | null; job: JobShard | null; baseline: ReadonlyMap<string, number> | null },
): Promise<string[]> {
  const jobId = run.job?.id ?? null;
  const shards = run.shard?.count ?? 1;
  const local = specs
    .map((spec) => {
      const r = tallies.get(spec.name)!.report;
      const scanned = run.baseline ? (run.baseline.get(spec.name) ?? 0) : r.scanned;
      const violation = capViolation(jobId !== null ? spec : shardCaps(spec, run.shard), { resource: spec.name, scanned, toMark: r.toMark, toSweep: r.toSweep });
      return violation !== null && jobId === null && shards > 1 ? `${violation} (this shard's share: maxDeletesPerRun ${spec.maxDeletesPerRun} over ${shards} shards)` : violation;
    })
    .filter((v): v is string => v !== null);
  if (local.length > 0 || jobId === null || !run.execute) return local;
  for (const spec of specs) {
    const r = tallies.get(spec.name)!.report;
    const want = r.toMark + r.toSweep;
    if (want === 0) continue;
    const claim = await store.claimJobDeletes({ job: jobId, resource: spec.name, shard: run.job?.shard ?? null, runId: run.runId, want, cap: spec.maxDeletesPerRun });
    if (claim.granted) continue;
    const earlier = claim.priorUse > 0 ? ` and its earlier runs ${claim.priorUse}` : '';
    return [
      `${spec.name}: ${want} to mark or sweep exceeds what is left of job ${jobId}'s maxDeletesPerRun ${claim.cap}: its shards hold ${claim.claimed} of it, this shard ${claim.shardGranted}${earlier}`,
    ];
  }
  return [];
}

/**
 * The earlier run of this job's shard that this run continues, if it ended without finishing
 * (abandoned, interrupted, failed); its checkpoints become this run's. A shard that already
 * ran to the end is refused: its job id is being used again, and the job's claims would be
 * charged with what the earlier execution deleted. What it did is in the
 * ledger (its marks, and its journal, which this run's recovery settles), and its claim is
 * this shard's (`claimJobDeletes` counts what it condemned).
 */
export async function resumedRun(store: StateStore, job: JobShard | null, run: RunRecord): Promise<RunRecord | null> {
  if (!job?.id) return null;
  const runs = (await store.listRuns({ kind: 'reap', job: job.id, limit: 1_000 })).filter((r) => r.runId !== run.runId && r.shard === job.shard && r.execute);
  // Any run of the shard that ended ok, not only the newest: the refusal below is itself a run.
  const finished = runs.find((r) => r.status === 'ok');
  if (finished) {
    const shard = job.shard ? `shard ${job.shard}` : 'unsharded run';
    throw new SafetyError(
      `job ${job.id}'s ${shard} already ran to the end (run ${finished.runId}, ${new Date(finished.finishedAt ?? finished.startedAt).toISOString()}); a job id names one execution of a job, whose shards share one maxDeletesPerRun: give the next execution its own id (a Kubernetes Job's name, a CI run id)`,
    );
  }
  const earlier = runs[0];
  if (!earlier || !['abandoned', 'interrupted', 'failed'].includes(earlier.status)) return null;
  await store.adoptCheckpoints(earlier.runId, run.runId);
  return earlier;
}
