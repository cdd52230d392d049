/**
 * Leak telemetry as Prometheus text exposition (format 0.0.4), for the node-exporter
 * textfile collector (`writeMetricsFile`) or a Pushgateway (`pushMetrics`). The text is
 * prom-client's, as the daemon's is: a Registry of gauges per render (never the global one).
 *
 * Every series is per resource type, never per resource, so cardinality stays at
 * types × statuses. Values describe one run: a textfile or a push group is replaced by
 * each run, so the `reaper_reap_*_total` series are the last run's outcomes (gauges),
 * not counters summed over runs — alert on them directly (`> 0`), not with rate().
 * A value that is unknown (null) is left out rather than written as NaN.
 */
import { STATUSES } from '../engine/types.js';
import { BackendError, redact } from '../errors.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { ReapReport } from './reap-report.js';
import type { AuditDocument } from './document.js';
import type { ResourceTelemetry } from './telemetry.js';

type Labels = Record<string, string>;

/** One metric: every one is a gauge (a textfile or a push group is replaced by each run). */
interface Family {
  name: string;
  help: string;
  samples: { labels: Labels; value: number | null }[];
}

export interface PrometheusOptions {
  /** Labels added to every sample, e.g. `{ deployment: 'prod' }` when several manifests share one collector. */
  labels?: Readonly<Record<string, string>>;
  /**
   * When and how long the run was, for a reap report rendered without an audit document
   * (the audit document carries its own). `finishedAt` is an ISO time or epoch ms.
   */
  run?: { finishedAt: string | number; durationSeconds: number };
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RESERVED = new Set(['resource', 'backend', 'status', 'state', 'source', 'outcome', 'action', 'kind', 'version', 'job_id', 'shard', 'shards']);

/**
 * Render an audit document, a reap report, or both, as Prometheus text. With only a reap
 * report (`doc` null), the per-type telemetry comes from the reap's own scan and the
 * lease metrics are left out (the reap report carries none).
 */
export async function renderPrometheus(doc: AuditDocument | null, reap?: ReapReport, options: PrometheusOptions = {}): Promise<string> {
  const extra = options.labels ?? {};
  for (const name of Object.keys(extra)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__') || RESERVED.has(name)) {
      throw new TypeError(`"${name}" cannot be an extra label: label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__" and are not one of ${[...RESERVED].join(', ')}`);
    }
  }
  const telemetry: readonly ResourceTelemetry[] = doc?.resources ?? reap?.resources.map((r) => r.telemetry).filter((t): t is ResourceTelemetry => t !== null) ?? [];
  const kind = doc ? 'audit' : 'reap';
  const families: Family[] = [];
  const family = (name: string, help: string, samples: Family['samples']) => families.push({ name, help, samples });
  const perType = (pick: (r: ResourceTelemetry) => number | null) => telemetry.map((r) => ({ labels: { resource: r.name, backend: r.backend }, value: pick(r) }));

  family('reaper_build_info', 'reaper version that wrote these metrics (always 1).', [{ labels: { version: doc?.reaper ?? reap?.reaper ?? 'unknown' }, value: 1 }]);
  family(
    'reaper_resources',
    'Resources scanned in the last run, by resource type and status (live, orphaned, expired, protected, young, unknown).',
    telemetry.flatMap((r) => STATUSES.map((status) => ({ labels: { resource: r.name, backend: r.backend, status }, value: r[status] }))),
  );
  family(
    'reaper_scan_errors',
    'Whether the last run could not read a resource type whole (1: its scan failed or entries could not be read, so its counts are short; 0: read whole), by resource type.',
    perType((r) => (r.status === 'ok' ? 0 : 1)),
  );
  family('reaper_unreadable_resources', 'Entries the last run could not read (never judged orphaned), by resource type.', perType((r) => r.unreadable));
  family('reaper_orphan_bytes', 'Bytes held by orphaned resources, by resource type.', perType((r) => r.orphanBytes));
  family('reaper_age_beyond_ttl_seconds', 'Average age beyond ttl of resources past their ttl, by resource type (absent when none is past).', perType((r) => r.avgAgeBeyondTtlSeconds));
  family('reaper_age_beyond_ttl_max_seconds', 'Largest age beyond ttl, by resource type (absent when none is past).', perType((r) => r.maxAgeBeyondTtlSeconds));
  family('reaper_oldest_orphan_age_seconds', 'Age of the oldest orphaned resource, by resource type (absent without orphans).', perType((r) => r.oldestOrphanAgeSeconds));
  family('reaper_backlog_tombstones', 'Tombstones marked and not yet swept, by resource type.', perType((r) => r.backlog));
  family('reaper_backlog_oldest_age_seconds', 'Age of the oldest unswept tombstone, by resource type (absent without backlog).', perType((r) => r.backlogOldestAgeSeconds));

  // A shard of a job (docs/scale-out.md): its figures are its part's, and a Pushgateway keeps each
  // shard's group apart (grouping key `shard`); the store-wide lease figures come from shard 0 only.
  const job = doc?.job ?? reap?.job;
  const shard = job?.shard ? job.shard.split('/') : null;
  if (job) {
    family('reaper_shard_info', 'The job and shard of the last run (always 1): job_id from --job, shard i of shards (docs/scale-out.md).', [
      { labels: { job_id: job.id ?? '', shard: shard?.[0] ?? '', shards: shard?.[1] ?? '' }, value: 1 },
    ]);
  }
  if (doc && (shard === null || shard[0] === '0')) {
    family('reaper_lease_renewal_failure_ratio', 'Share of lease renewals that failed over the audit\'s lease statistics window (0 to 1).', [
      { labels: {}, value: doc.leases.renewalFailureRate },
    ]);
    family('reaper_leases', 'Leases in the state store by state (active, expired).', [
      { labels: { state: 'active' }, value: doc.leases.active },
      { labels: { state: 'expired' }, value: doc.leases.expired },
    ]);
  }
  const sources = doc?.sources ?? reap?.sources ?? {};
  family(
    'reaper_liveness_source_keys',
    'Live owner keys each liveness source reported.',
    Object.entries(sources).map(([source, value]) => ({ labels: { source }, value })),
  );
  const sourceErrors = doc?.sourceErrors ?? reap?.sourceErrors ?? {};
  family(
    'reaper_liveness_source_errors',
    'Whether a liveness source failed in the last run (1: the owners only it could vouch for were judged unknown; 0: it answered).',
    [...new Set([...Object.keys(sources), ...Object.keys(sourceErrors)])].map((source) => ({ labels: { source }, value: source in sourceErrors ? 1 : 0 })),
  );

  if (reap) {
    family(
      'reaper_reap_planned',
      'Items the last reap run planned, by resource type and action (mark, sweep, lift); a dry run plans without acting.',
      reap.resources.flatMap((r) =>
        (
          [
            ['mark', r.toMark],
            ['sweep', r.toSweep],
            ['lift', r.toLift],
          ] as const
        ).map(([action, value]) => ({ labels: { resource: r.name, backend: r.backend, action }, value })),
      ),
    );
    family('reaper_reap_execute', 'Whether the last reap run acted (1, --execute) or was a dry run (0).', [{ labels: {}, value: reap.execute ? 1 : 0 }]);
    if (reap.execute) {
      family(
        'reaper_reap_total',
        'Outcomes of the last executed reap run, by resource type and outcome (marked, deleted, lifted, failed); per run, not cumulative.',
        reap.resources.flatMap((r) =>
          (['marked', 'deleted', 'lifted', 'failed'] as const).map((outcome) => ({ labels: { resource: r.name, backend: r.backend, outcome }, value: r.outcomes[outcome] })),
        ),
      );
      family(
        'reaper_reap_bytes_reclaimed_total',
        'Bytes deleted by the last executed reap run, by resource type; per run, not cumulative.',
        reap.resources.map((r) => ({ labels: { resource: r.name, backend: r.backend }, value: r.outcomes.bytesReclaimed })),
      );
    }
  }

  const finishedMs = doc ? Date.parse(doc.finishedAt) : options.run ? new Date(options.run.finishedAt).getTime() : null;
  const duration = doc ? doc.durationSeconds : (options.run?.durationSeconds ?? null);
  family('reaper_last_run_timestamp_seconds', 'When the last run finished, in seconds since the epoch, by kind (audit, reap).', [
    { labels: { kind }, value: finishedMs === null || Number.isNaN(finishedMs) ? null : finishedMs / 1000 },
  ]);
  family(
    'reaper_last_run_interrupted',
    'Whether a stop request (a signal: a deadline, an eviction) ended the last run before it finished (1) or not (0), by kind (audit, reap).',
    [{ labels: { kind }, value: reap?.interrupted && !doc ? 1 : 0 }],
  );
  family('reaper_run_duration_seconds', 'How long the last run took, by kind (audit, reap).', [{ labels: { kind }, value: duration }]);

  return exposition(families, extra);
}

/**
 * The families as prom-client renders them: a family without a value is left out whole (no
 * HELP/TYPE without samples), a value rounded to microunits. prom-client separates families
 * by a blank line, which the format ignores; they are joined without it, so the text reads
 * as it always has.
 */
async function exposition(families: readonly Family[], extra: Labels): Promise<string> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  for (const f of families) {
    const samples = f.samples.filter((s): s is { labels: Labels; value: number } => s.value !== null && Number.isFinite(s.value)).map((s) => ({ labels: { ...extra, ...s.labels }, value: rounded(s.value) }));
    if (samples.length === 0) continue;
    const labelNames = [...new Set(samples.flatMap((s) => Object.keys(s.labels)))];
    const gauge = new prom.Gauge({ name: f.name, help: f.help, labelNames, registers: [registry] });
    for (const s of samples) gauge.set(s.labels, s.value);
  }
  const text = await registry.metrics();
  return text === '\n' ? '' : text.replaceAll('\n\n', '\n');
}

function rounded(value: number): number {
  return Number.isInteger(value) ? value : Math.round(value * 1e6) / 1e6;
}

/**
 * Write a metrics file for the node-exporter textfile collector, atomically (a temporary
 * file the collector, which reads `*.prom`, ignores; fsync; rename; fsync the directory).
 */
export async function writeMetricsFile(file: string, text: string): Promise<void> {
  try {
    await atomicWrite(file, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BackendError(`cannot write the metrics file ${file}: ${code ?? (error as Error).message}`, { cause: error });
  }
}

export interface PushOptions {
  /** The Pushgateway job name; the group `job/<job>` is replaced by each push. */
  job: string;
  /** More grouping labels, e.g. `{ instance: 'prod' }`. */
  grouping?: Readonly<Record<string, string>>;
  signal?: AbortSignal;
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
}

/**
 * PUT the text to a Pushgateway at `<url>/metrics/job/<job>[/<label>/<value>…]`,
 * replacing the group's previous metrics. `url` is the Pushgateway's base URL; user and
 * password in it become basic authentication. Any non-2xx answer or network failure is
 * a BackendError whose message carries no credentials.
 *
 * One PUT of the registry's text rather than prom-client's Pushgateway client, which
 * percent-encodes a grouping value holding "/" (the Pushgateway wants it base64-encoded),
 * drops the URL's query, and has no abort signal or overall deadline.
 */
export async function pushMetrics(url: string, text: string, options: PushOptions): Promise<void> {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new BackendError(`--pushgateway: "${redact(url)}" is not a URL (expected e.g. http://pushgateway:9091)`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new BackendError(`--pushgateway: ${redact(url)} is not an http(s) URL`);
  }
  if (options.job === '') throw new BackendError('--pushgateway: the job name is empty');
  const { Registry } = await import('prom-client');
  const headers: Record<string, string> = { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE };
  if (base.username || base.password) {
    const user = decodeURIComponent(base.username);
    const password = decodeURIComponent(base.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    base.username = '';
    base.password = '';
  }
  const group = [['job', options.job], ...Object.entries(options.grouping ?? {})].map(([k, v]) => groupingSegment(k!, v!)).join('/');
  const target = new URL(`${base.pathname.replace(/\/+$/, '')}/metrics/${group}`, base);
  target.search = base.search;
  const shown = redact(`${target.origin}${target.pathname}`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const forward = () => controller.abort();
  options.signal?.addEventListener('abort', forward, { once: true });
  try {
    let response: Response;
    try {
      if (options.signal?.aborted) controller.abort();
      response = await fetch(target, { method: 'PUT', headers, body: text, signal: controller.signal });
    } catch (error) {
      // Stopped by the caller (SIGINT/SIGTERM): let the abort through as itself.
      if (options.signal?.aborted) throw error;
      const why = controller.signal.aborted ? `no answer within ${timeoutMs / 1000}s` : fetchFailure(error, target);
      throw new BackendError(`cannot push metrics to ${shown}: ${redact(why)}`, { cause: error });
    }
    if (!response.ok) {
      const body = (await response.text().catch(() => '')).trim().slice(0, 300);
      throw new BackendError(`the Pushgateway at ${shown} answered ${response.status} ${response.statusText}${body ? `: ${redact(body)}` : ''}`);
    }
    await response.body?.cancel().catch(() => undefined);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', forward);
  }
}

/**
 * Why fetch failed: its TypeError ("fetch failed") says nothing, the cause under it does —
 * the first error code along the chain (ECONNREFUSED, ENOTFOUND…), else the innermost
 * message (undici's "bad port" for a port the Fetch standard blocks, which it never dials).
 */
function fetchFailure(error: unknown, target: URL): string {
  let code: string | undefined;
  let message = error instanceof Error ? error.message : String(error);
  const seen = new Set<unknown>();
  for (let e: unknown = error; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const errno = (e as NodeJS.ErrnoException).code;
    if (typeof errno === 'string' && !code) code = errno;
    if (e !== error) message = e.message;
    // Happy-eyeballs connects fail as an AggregateError: its errors carry the codes.
    if (!code && e instanceof AggregateError) code = e.errors.map((x: NodeJS.ErrnoException) => x?.code).find((c) => typeof c === 'string');
  }
  if (code) return code;
  if (message === 'bad port') return `bad port (fetch refuses to connect to port ${target.port})`;
  return message;
}

/** One `name/value` path segment; a value with "/" (or an empty one) is sent base64url-encoded, as the Pushgateway expects. */
function groupingSegment(name: string, value: string): string {
  if (!LABEL_NAME.test(name)) throw new BackendError(`--pushgateway: "${name}" is not a label name`);
  if (value === '' || value.includes('/')) return `${name}@base64/${Buffer.from(value).toString('base64url') || '='}`;
  return `${name}/${encodeURIComponent(value)}`;
}
