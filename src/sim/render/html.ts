/**
 * A self-contained HTML report of `reaper simulate`: the results table and the charts
 * as inline SVG. No script, no network: it opens from a file anywhere.
 */
import { formatLatency, formatValue, MEASURES, STRATEGY_COLORS, type SimulationDocument } from '../document.js';
import { barChart, lineChart } from './svg.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Every chart of a document, by a file-friendly name. */
export function simulationCharts(doc: SimulationDocument): { name: string; svg: string }[] {
  const vary = doc.vary;
  if (vary) {
    const strategies = doc.runs[0]?.results.map((r) => r.strategy) ?? [];
    return MEASURES.map((m) => ({
      name: `${m.key}-vs-${vary.param}`,
      svg: lineChart(
        `${m.label} against ${vary.param}`,
        vary.param,
        (x) => formatValue(x, vary.unit),
        strategies.map((name) => ({
          name,
          color: STRATEGY_COLORS[name],
          points: doc.runs.map((run) => [run.value ?? 0, (run.results.find((r) => r.strategy === name)?.[m.key] as number | null) ?? null] as const),
        })),
      ),
    }));
  }
  const results = doc.runs[0]?.results ?? [];
  return MEASURES.map((m) => ({
    name: m.key,
    svg: barChart(
      m.label,
      results.map((r) => ({ name: r.strategy, color: STRATEGY_COLORS[r.strategy], value: r[m.key] })),
    ),
  }));
}

export function simulationHtml(doc: SimulationDocument): string {
  const vary = doc.vary;
  const head = [...(vary ? [vary.param] : []), 'strategy', ...MEASURES.map((m) => m.short), 'notes'];
  const rows = doc.runs.flatMap((run) =>
    run.results.map((r) => {
      const cells = [
        ...(vary && run.value !== null ? [formatValue(run.value, vary.unit)] : []),
        r.strategy,
        ...MEASURES.map((m) => (m.key === 'latencyP50Seconds' || m.key === 'latencyP99Seconds' ? formatLatency(r[m.key]) : String(r[m.key]))),
        Object.entries(r.extras)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ];
      return `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
    }),
  );
  const resources = doc.runs[0]?.results[0]?.resources ?? 0;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>reaper simulate: ${esc(doc.scenario)}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:nth-child(-n+${vary ? 2 : 1}), th { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 1.5em; }
</style>
</head>
<body>
<h1>reaper simulate: ${esc(doc.scenario)}</h1>
<p>seed ${doc.seed} · ${resources} resources · reaper ${esc(doc.reaper)}${vary ? ` · varying ${esc(vary.param)}` : ''}</p>
<p>Premature deletions are resources deleted while a service still held a reference (the safety metric). Leaked: garbage still present at the end.
Leaked resource-seconds: the time every garbage resource waited for its deletion. Latency: from the last reference's drop to the deletion.</p>
<table>
<tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${rows.join('\n')}
</table>
<div class="charts">
${simulationCharts(doc)
  .map((c) => c.svg)
  .join('\n')}
</div>
</body>
</html>
`;
}
