/**
 * config/examples/grafana-dashboard.json: every PromQL query in it names only metrics
 * reaper exports. The list is derived from the code, not copied: the families the
 * Prometheus renderer writes for runs that fill every one of them (the source's
 * `family('…')` declarations are checked to be all there), and what a daemon's /metrics
 * serves (its registry and the process metrics), histograms with their series suffixes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDaemonMetrics } from '../../src/daemon/metrics.js';
import { prometheusRunTexts } from './support/prometheus-runs.js';

const ROOT = path.resolve(__dirname, '../..');
const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'config/examples/grafana-dashboard.json'), 'utf8')) as Record<string, unknown>;

/** `# TYPE name kind` lines of an exposition text, as the series names a query may use. */
function seriesNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, kind] = m as unknown as [string, string, string];
    names.add(name);
    if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (kind === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

async function exportedMetrics(): Promise<Set<string>> {
  const run = seriesNames((await prometheusRunTexts()).join(''));
  // The renderer's own declarations: the fixture above must bring every one of them out.
  const declared = [...readFileSync(path.join(ROOT, 'src/report/prometheus.ts'), 'utf8').matchAll(/family\(\s*'(\w+)'/g)].map((m) => m[1]!);
  expect(declared.length).toBeGreaterThan(10);
  expect(declared.filter((name) => !run.has(name))).toEqual([]);
  const daemon = await createDaemonMetrics({ ready: () => true, leasesActive: () => 1, heartbeatLagSeconds: () => 0 });
  return new Set([...run, ...seriesNames(await daemon.text())]);
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'Inf', 'NaN']);

/** The metric names a PromQL query reads: what is left once strings, label matchers, ranges, grouping clauses, variables and function names are taken out. */
export function metricNames(query: string): string[] {
  const stripped = query
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(after) || KEYWORDS.has(m[0]) || /[0-9.]$/.test(stripped.slice(0, m.index!))) continue;
    names.push(m[0]);
  }
  return names;
}

/** Every query of the dashboard: panel targets, and the metric of each `label_values(metric, label)` variable. */
function queries(): { where: string; names: string[] }[] {
  const out: { where: string; names: string[] }[] = [];
  const panels = (dashboard.panels as Record<string, unknown>[]).flatMap((p) => [p, ...((p.panels as Record<string, unknown>[] | undefined) ?? [])]);
  for (const panel of panels) {
    for (const target of (panel.targets as { expr?: string }[] | undefined) ?? []) {
      if (target.expr) out.push({ where: `panel "${String(panel.title)}": ${target.expr}`, names: metricNames(target.expr) });
    }
  }
  for (const variable of (dashboard.templating as { list: { name: string; query?: unknown }[] }).list) {
    const text = typeof variable.query === 'string' ? variable.query : ((variable.query as { query?: string } | undefined)?.query ?? '');
    const m = /^label_values\((?:([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s*,\s*)?\w+\)$/.exec(text);
    if (m) out.push({ where: `variable $${variable.name}: ${text}`, names: m[1] ? [m[1]] : [] });
  }
  return out;
}

describe('the Grafana dashboard', () => {
  it('names only metrics reaper exports, in every query', async () => {
    const exported = await exportedMetrics();
    const unknown = queries().flatMap((q) => q.names.filter((n) => !exported.has(n)).map((n) => `${n} in ${q.where}`));
    expect(unknown).toEqual([]);
  });

  it('has a metric in every query and panel, and covers leaks, reaps, leases and daemon health', () => {
    const all = queries();
    expect(all.filter((q) => q.names.length === 0).map((q) => q.where)).toEqual([]);
    const panels = (dashboard.panels as { type: string; title: string; targets?: unknown[] }[]).filter((p) => p.type !== 'row');
    expect(panels.filter((p) => !p.targets?.length).map((p) => p.title)).toEqual([]);
    const used = new Set(all.flatMap((q) => q.names));
    for (const name of ['reaper_resources', 'reaper_orphan_bytes', 'reaper_backlog_tombstones', 'reaper_reap_total', 'reaper_daemon_renewals_total', 'reaper_lease_renewal_failure_ratio', 'reaper_daemon_ready', 'reaper_daemon_heartbeat_lag_seconds']) {
      expect(used, name).toContain(name);
    }
    const ids = panels.map((p) => (p as unknown as { id: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('reads metric names out of PromQL, and no label, function or variable', () => {
    expect(metricNames('sum by (resource) (rate(reaper_daemon_renewals_total{outcome="failed",instance=~"$instance"}[$__rate_interval]))')).toEqual(['reaper_daemon_renewals_total']);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) / clamp_min(y, 1e-9) and on (job) z offset 1h')).toEqual(['x_bucket', 'y', 'z']);
    expect(metricNames('time() - max(reaper_last_run_timestamp_seconds{kind="reap"}) > 3 * 3600')).toEqual(['reaper_last_run_timestamp_seconds']);
    expect(metricNames('rate(reaper_not_a_metric[5m])')).toEqual(['reaper_not_a_metric']);
  });
});
