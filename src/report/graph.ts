/** The type-level ownership graph as text, Graphviz DOT and Mermaid. */
import { typeEdges } from '../engine/graph.js';
import type { Manifest } from '../manifest/types.js';

function keyOwned(m: Manifest): { name: string; via: string }[] {
  const out: { name: string; via: string }[] = [];
  for (const r of m.resources) {
    for (const o of r.owners) {
      if (o.ref !== undefined) continue;
      const e = o.extractor;
      out.push({ name: r.name, via: `${'pattern' in e ? `${e.from} ${e.pattern}` : `${e.from} ${e.name}`}${o.keyTemplate ? ` as ${o.keyTemplate}` : ''}` });
    }
  }
  return out;
}

const sources = (m: Manifest) => m.owners.map((o) => (o.kind === 'sql' ? `sql:${o.connection}` : o.kind)).join(' | ');

export function graphText(m: Manifest): string {
  const lines: string[] = [];
  for (const r of m.resources) lines.push(`${r.name} (${r.location.kind})`);
  lines.push('');
  for (const k of keyOwned(m)) lines.push(`${k.name} -> [live keys: ${sources(m)}]  (${k.via})`);
  for (const e of typeEdges(m.resources)) lines.push(`${e.from} -> ${e.to}  (${e.via})`);
  return lines.join('\n');
}

const dotId = (s: string) => JSON.stringify(s);

export function graphDot(m: Manifest): string {
  const lines = ['digraph ownership {', '  rankdir=LR;', `  "__keys" [label=${dotId(`live keys\\n${sources(m)}`)}, shape=ellipse];`];
  for (const r of m.resources) lines.push(`  ${dotId(r.name)} [label=${dotId(`${r.name}\\n(${r.location.kind})`)}, shape=box];`);
  for (const k of keyOwned(m)) lines.push(`  ${dotId(k.name)} -> "__keys" [label=${dotId(k.via)}];`);
  for (const e of typeEdges(m.resources)) lines.push(`  ${dotId(e.from)} -> ${dotId(e.to)} [label=${dotId(e.via)}];`);
  lines.push('}');
  return lines.join('\n');
}

export function graphMermaid(m: Manifest): string {
  const ids = new Map(m.resources.map((r, i) => [r.name, `r${i}`]));
  const text = (s: string) => s.replace(/["<>]/g, (c) => `#${c.charCodeAt(0)};`);
  const lines = ['flowchart LR', `  keys(("live keys: ${text(sources(m))}"))`];
  for (const r of m.resources) lines.push(`  ${ids.get(r.name)}["${text(r.name)} (${r.location.kind})"]`);
  for (const k of keyOwned(m)) lines.push(`  ${ids.get(k.name)} -- "${text(k.via)}" --> keys`);
  for (const e of typeEdges(m.resources)) lines.push(`  ${ids.get(e.from)} -- "${text(e.via)}" --> ${ids.get(e.to)}`);
  return lines.join('\n');
}
