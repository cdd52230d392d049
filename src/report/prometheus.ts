/**
 * Leak telemetry as Prometheus text exposition (format 0.0.4), for the node-exporter
 * textfile collector (`writeMetricsFile`) or a Pushgateway (`pushMetrics`).
 *
 * Every series is per resource type, never per resource, so cardinality stays at
 * types × statuses. Values describe one run: a textfile or a push group is replaced by
 * each run, so the `reaper_reap_*_total` series are the last run's outcomes (gauges),
 * not counters summed over runs — alert on them directly (`> 0`), not with rate().
 * A value that is unknown (null) is left out rather than written as NaN.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { STATUSES } from '../engine/types.js';
import { BackendError, redact } from '../errors.js';
import type { ReapReport } from './reap-report.js';
import type { AuditDocument } from './document.js';
import type { ResourceTelemetry } from './telemetry.js';

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
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
const RESERVED = new Set(['resource', 'backend', 'status', 'state', 'source', 'outcome', 'action', 'kind', 'version']);

/**
 * Render an audit document, a reap report, or both, as Prometheus text. With only a reap
 * report (`doc` null), the per-type telemetry comes from the reap's own scan and the
 * lease metrics are left out (the reap report carries none).
 */
export function renderPrometheus(doc: AuditDocument | null, reap?: ReapReport, options: PrometheusOptions = {}): string {
  const extra = options.labels ?? {};
  for (const name of Object.keys(extra)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__') || RESERVED.has(name)) {
      throw new TypeError(`"${name}" cannot be an extra label: label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__" and are not one of ${[...RESERVED].join(', ')}`);
    }
  }
  const telemetry: readonly ResourceTelemetry[] = doc?.resources ?? reap?.resources.map((r) => r.telemetry).filter((t): t is ResourceTelemetry => t !== null) ?? [];
  const kind = doc ? 'audit' : 'reap';
  const families: Family[] = [];
  const family = (name: string, type: Family['type'], help: string, samples: Family['samples']) => families.push({ name, type, help, samples });
  const perType = (pick: (r: ResourceTelemetry) => number | null) => telemetry.map((r) => ({ labels: { resource: r.name, backend: r.backend }, value: pick(r) }));

  family('reaper_build_info', 'gauge', 'reaper version that wrote these metrics (always 1).', [{ labels: { version: doc?.reaper ?? reap?.reaper ?? 'unknown' }, value: 1 }]);
  family(
    'reaper_resources',
    'gauge',
    'Resources scanned in the last run, by resource type and status (live, orphaned, expired, protected, young, unknown).',
    telemetry.flatMap((r) => STATUSES.map((status) => ({ labels: { resource: r.name, backend: r.backend, status }, value: r[status] }))),
  );
  family(
    'reaper_scan_errors',
    'gauge',
    'Whether the last run could not read a resource type whole (1: its scan failed or entries could not be read, so its counts are short; 0: read whole), by resource type.',
    perType((r) => (r.status === 'ok' ? 0 : 1)),
  );
  family('reaper_unreadable_resources', 'gauge', 'Entries the last run could not read (never judged orphaned), by resource type.', perType((r) => r.unreadable));
  family('reaper_orphan_bytes', 'gauge', 'Bytes held by orphaned resources, by resource type.', perType((r) => r.orphanBytes));
  family('reaper_age_beyond_ttl_seconds', 'gauge', 'Average age beyond ttl of resources past their ttl, by resource type (absent when none is past).', perType((r) => r.avgAgeBeyondTtlSeconds));
  family('reaper_age_beyond_ttl_max_seconds', 'gauge', 'Largest age beyond ttl, by resource type (absent when none is past).', perType((r) => r.maxAgeBeyondTtlSeconds));
  family('reaper_oldest_orphan_age_seconds', 'gauge', 'Age of the oldest orphaned resource, by resource type (absent without orphans).', perType((r) => r.oldestOrphanAgeSeconds));
  family('reaper_backlog_tombstones', 'gauge', 'Tombstones marked and not yet swept, by resource type.', perType((r) => r.backlog));
  family('reaper_backlog_oldest_age_seconds', 'gauge', 'Age of the oldest unswept tombstone, by resource type (absent without backlog).', perType((r) => r.backlogOldestAgeSeconds));

  if (doc) {
    family('reaper_lease_renewal_failure_ratio', 'gauge', 'Share of lease renewals that failed over the audit\'s lease statistics window (0 to 1).', [
      { labels: {}, value: doc.leases.renewalFailureRate },
    ]);
    family('reaper_leases', 'gauge', 'Leases in the state store by state (active, expired).', [
      { labels: { state: 'active' }, value: doc.leases.active },
      { labels: { state: 'expired' }, value: doc.leases.expired },
    ]);
  }
  const sources = doc?.sources ?? reap?.sources ?? {};
  family(
    'reaper_liveness_source_keys',
    'gauge',
    'Live owner keys each liveness source reported.',
    Object.entries(sources).map(([source, value]) => ({ labels: { source }, value })),
  );
  const sourceErrors = doc?.sourceErrors ?? reap?.sourceErrors ?? {};
  family(
    'reaper_liveness_source_errors',
    'gauge',
    'Whether a liveness source failed in the last run (1: the owners only it could vouch for were judged unknown; 0: it answered).',
    [...new Set([...Object.keys(sources), ...Object.keys(sourceErrors)])].map((source) => ({ labels: { source }, value: source in sourceErrors ? 1 : 0 })),
  );

  if (reap) {
    family(
      'reaper_reap_planned',
      'gauge',
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
    family('reaper_reap_execute', 'gauge', 'Whether the last reap run acted (1, --execute) or was a dry run (0).', [{ labels: {}, value: reap.execute ? 1 : 0 }]);
    if (reap.execute) {
      family(
        'reaper_reap_total',
        'gauge',
        'Outcomes of the last executed reap run, by resource type and outcome (marked, deleted, lifted, failed); per run, not cumulative.',
        reap.resources.flatMap((r) =>
          (['marked', 'deleted', 'lifted', 'failed'] as const).map((outcome) => ({ labels: { resource: r.name, backend: r.backend, outcome }, value: r.outcomes[outcome] })),
        ),
      );
      family(
        'reaper_reap_bytes_reclaimed_total',
        'gauge',
        'Bytes deleted by the last executed reap run, by resource type; per run, not cumulative.',
        reap.resources.map((r) => ({ labels: { resource: r.name, backend: r.backend }, value: r.outcomes.bytesReclaimed })),
      );
    }
  }

  const finishedMs = doc ? Date.parse(doc.finishedAt) : options.run ? new Date(options.run.finishedAt).getTime() : null;
  const duration = doc ? doc.durationSeconds : (options.run?.durationSeconds ?? null);
  family('reaper_last_run_timestamp_seconds', 'gauge', 'When the last run finished, in seconds since the epoch, by kind (audit, reap).', [
    { labels: { kind }, value: finishedMs === null || Number.isNaN(finishedMs) ? null : finishedMs / 1000 },
  ]);
  family('reaper_run_duration_seconds', 'gauge', 'How long the last run took, by kind (audit, reap).', [{ labels: { kind }, value: duration }]);

  return families.map((f) => renderFamily(f, extra)).join('');
}

function renderFamily(f: Family, extra: Labels): string {
  const samples = f.samples.filter((s): s is { labels: Labels; value: number } => s.value !== null && Number.isFinite(s.value));
  if (samples.length === 0) return '';
  const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`];
  for (const s of samples) lines.push(`${f.name}${renderLabels({ ...extra, ...s.labels })} ${formatValue(s.value)}`);
  return `${lines.join('\n')}\n`;
}

function renderLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Label values escape backslash, double quote and line feed (the exposition format's rule). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? value.toString() : String(Math.round(value * 1e6) / 1e6);
}

/**
 * Write a metrics file atomically for the node-exporter textfile collector: a temporary
 * file in the same directory (named so the collector, which reads `*.prom`, ignores it),
 * fsync, rename over the target, then fsync the directory. A reader sees the old file or
 * the new one, never half of one.
 */
export async function writeMetricsFile(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    throw new BackendError(`cannot write the metrics file ${file}: ${code ?? (error as Error).message}`, { cause: error });
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename itself has happened.
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
  const headers: Record<string, string> = { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' };
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
      const why = controller.signal.aborted ? `no answer within ${timeoutMs / 1000}s` : ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name);
      throw new BackendError(`cannot push metrics to ${shown}: ${redact(String(why))}`, { cause: error });
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

/** One `name/value` path segment; a value with "/" (or an empty one) is sent base64url-encoded, as the Pushgateway expects. */
function groupingSegment(name: string, value: string): string {
  if (!LABEL_NAME.test(name)) throw new BackendError(`--pushgateway: "${name}" is not a label name`);
  if (value === '' || value.includes('/')) return `${name}@base64/${Buffer.from(value).toString('base64url') || '='}`;
  return `${name}/${encodeURIComponent(value)}`;
}
