/** `reaper simulate` as terminal tables (cli-table3, like the CLI's other tables). */
import Table from 'cli-table3';
import { formatLatency, formatValue, type SimulationDocument } from '../document.js';

const plain = { style: { head: [] as string[], border: [] as string[], compact: true } };

export function simulationTable(doc: SimulationDocument): string {
  const varied = doc.vary;
  const head = [...(varied ? [varied.param] : []), 'strategy', 'premature', 'leaked', 'leaked res·s', 'latency p50', 'p99', 'msgs/res', 'ops/res', 'peak state'];
  const table = new Table({ ...plain, head, colAligns: head.map((_, i) => (i <= (varied ? 1 : 0) ? 'left' : 'right')) });
  const notes: string[] = [];
  for (const run of doc.runs) {
    const label = varied && run.value !== null ? formatValue(run.value, varied.unit) : '';
    for (const r of run.results) {
      table.push([
        ...(varied ? [label] : []),
        r.strategy,
        r.premature,
        r.leaked,
        Math.round(r.leakedResourceSeconds),
        formatLatency(r.latencyP50Seconds),
        formatLatency(r.latencyP99Seconds),
        r.messagesPerResource.toFixed(2),
        r.storeOpsPerResource.toFixed(2),
        r.peakStateSize,
      ]);
      const extras = Object.entries(r.extras).map(([k, v]) => `${k} ${v}`);
      if (extras.length) notes.push(`${label ? `${varied!.param}=${label} ` : ''}${r.strategy}: ${extras.join(', ')}`);
    }
  }
  const resources = doc.runs[0]?.results[0]?.resources ?? 0;
  return [`scenario ${doc.scenario} · seed ${doc.seed} · ${resources} resources`, table.toString(), ...notes].join('\n');
}
