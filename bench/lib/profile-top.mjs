#!/usr/bin/env node
// Summarise a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self
// time, and reaper's own functions (dist/) by inclusive time.
//
//   node bench/lib/profile-top.mjs FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';

const [file, ...rest] = process.argv.slice(2);
const top = Number(rest[rest.indexOf('--top') + 1] || 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = new Map();
profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
const total = [...dt.values()].reduce((a, b) => a + b, 0);
const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:') : '';
  return `${f.functionName || '(anonymous)'} ${where}${where ? `:${f.lineNumber + 1}` : ''}`;
};
const self = new Map();
for (const [id, ms] of dt) {
  const key = label(byId.get(id));
  self.set(key, (self.get(key) ?? 0) + ms);
}
// Inclusive: each node's time plus its descendants', counted once per label per stack.
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = new Map();
for (const [id, ms] of dt) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = label(byId.get(cur));
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + ms);
  }
}
const pct = (ms) => `${((ms / total) * 100).toFixed(1)}%`;
console.log(`total sampled ${(total / 1000).toFixed(2)} s`);
console.log('\nself time:');
for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(ms).padStart(6)} ${ms.toFixed(0).padStart(7)} ms  ${k}`);
console.log('\nreaper (dist/) inclusive time:');
for (const [k, ms] of [...inclusive].filter(([k]) => k.includes('dist/')).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(ms).padStart(6)} ${ms.toFixed(0).padStart(7)} ms  ${k}`);
