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

/**
 * The text of a DOT quoted string: a backslash and a quote escaped once, a line break as the
 * label escape \n. JSON.stringify is not this: it doubles the backslash of a wanted \n and
 * writes control characters as escapes Graphviz does not know.
 */
const dotText = (s: string) =>
  s
    .replace(/[\\"]/g, (c) => `\\${c}`)
    .replace(/\r\n|[\r\n]/g, '\\n')
    .replace(/\p{Cc}/gu, ' ');
const dotId = (s: string) => `"${dotText(s)}"`;
/** A label of several lines, one \n escape between them. */
const dotLines = (...lines: string[]) => `"${lines.map(dotText).join('\\n')}"`;

export function graphDot(m: Manifest): string {
  const lines = ['digraph ownership {', '  rankdir=LR;', `  "__keys" [label=${dotLines('live keys', sources(m))}, shape=ellipse];`];
  for (const r of m.resources) lines.push(`  ${dotId(r.name)} [label=${dotLines(r.name, `(${r.location.kind})`)}, shape=box];`);
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
