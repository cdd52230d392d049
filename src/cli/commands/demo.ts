/**
 * `reaper demo [DIR]`: the newcomer's first run. Builds a sandbox of files owned by a
 * few "sessions" and "jobs" with leases in a SQLite state store — some owners alive,
 * one released, one never leased, one file too young to judge, one protected, one
 * with no owner at all — audits it, and prints the table and what to try next.
 * No services needed.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../errors.js';
import { loadManifest } from '../../manifest/load.js';
import { auditTable, findingsTable, reapTable } from '../../report/table.js';
import { runAudit } from '../../run/audit.js';
import { runReap } from '../../run/reap.js';
import { SqliteStateStore } from '../../state/sqlite/sqlite-state-store.js';
import type { OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { terminalWidth } from '../options.js';

const MARKER = '.reaper-demo';

export const DEMO_MANIFEST = `# reaper demo manifest: files owned by sessions and jobs, kept alive by leases.
version: 1
state: sqlite:.reaper/state.db
# grace 2d: the grace rule (docs/strategies.md) asks 27h for leases of ttl 1d, as the demo's are
defaults: { minAge: 10m, grace: 2d, maxDeleteFraction: 1 }
owners:
  - leases: {}
  - static: ["job:nightly"]          # a platform job that is always live
resources:
  - name: scratch-uploads
    fs: { path: ./scratch, glob: "**/*.part" }
    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }
    ttl: 6h
    protect: [{ pathPattern: "^keep-" }]
  - name: report-exports
    fs: { path: ./exports, glob: "*.csv" }
    owner: { pathPattern: "^(?<owner>[a-z]+)-", key: "job:{value}" }
    ttl: 24h
`;

const HOUR = 3_600_000;

/** Files of the sandbox: path under DIR, size, age. */
const FILES: { file: string; bytes: number; ageMs: number }[] = [
  { file: 'scratch/alice/upload-1.part', bytes: 4_096, ageMs: 2 * HOUR }, // live lease
  { file: 'scratch/alice/upload-2.part', bytes: 8_192, ageMs: 3 * HOUR },
  { file: 'scratch/bob/chunk-1.part', bytes: 65_536, ageMs: 5 * HOUR }, // lease released
  { file: 'scratch/bob/chunk-2.part', bytes: 65_536, ageMs: 5 * HOUR },
  { file: 'scratch/bob/chunk-3.part', bytes: 12_000, ageMs: 5 * HOUR },
  { file: 'scratch/carol/big.part', bytes: 1_048_576, ageMs: 30 * HOUR }, // live but past ttl
  { file: 'scratch/dave/fresh.part', bytes: 2_048, ageMs: 60_000 }, // younger than minAge
  { file: 'scratch/erin/abandoned.part', bytes: 300_000, ageMs: 48 * HOUR }, // never leased
  { file: 'scratch/keep-fixtures/golden.part', bytes: 1_000, ageMs: 90 * HOUR }, // protected
  { file: 'scratch/stray.part', bytes: 777, ageMs: 12 * HOUR }, // no owner in its path
  { file: 'scratch/alice/notes.txt', bytes: 100, ageMs: 2 * HOUR }, // outside the glob
  { file: 'exports/nightly-2026-11-21.csv', bytes: 20_000, ageMs: 10 * HOUR }, // static owner
  { file: 'exports/adhoc-1234.csv', bytes: 50_000, ageMs: 20 * HOUR }, // job gone
  { file: 'exports/weekly-47.csv', bytes: 40_000, ageMs: 30 * HOUR }, // live but past ttl
];

export async function buildDemo(dir: string): Promise<void> {
  if (existsSync(dir)) {
    const entries = await readdir(dir);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new UsageError(`${dir} exists and is not a reaper demo; name another directory: reaper demo DIR`);
    }
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, MARKER), 'Built by `reaper demo`; safe to delete.\n');
  await writeFile(path.join(dir, 'reaper.yaml'), DEMO_MANIFEST);
  const now = Date.now();
  for (const f of FILES) {
    const file = path.join(dir, f.file);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, Buffer.alloc(f.bytes, 0x61));
    const when = new Date(now - f.ageMs);
    await utimes(file, when, when);
  }
  const store = await SqliteStateStore.open(path.join(dir, '.reaper', 'state.db'));
  try {
    await store.acquireLease({ key: 'session:alice', holder: 'upload-service@web-1', ttlMs: 24 * HOUR });
    await store.acquireLease({ key: 'session:carol', holder: 'upload-service@web-2', ttlMs: 24 * HOUR });
    await store.acquireLease({ key: 'job:weekly', holder: 'report-runner', ttlMs: 24 * HOUR });
    const bob = await store.acquireLease({ key: 'session:bob', holder: 'upload-service@web-1', ttlMs: 24 * HOUR });
    await store.releaseLease(bob.leaseId);
    const adhoc = await store.acquireLease({ key: 'job:adhoc', holder: 'report-runner', ttlMs: 24 * HOUR });
    await store.releaseLease(adhoc.leaseId);
  } finally {
    await store.close();
  }
}

/**
 * How the "try next" lines call reaper. Installed (a global or project install, the container
 * image): `reaper`. Run from a clone, a bare `reaper` is not on the PATH: inside the clone
 * `npx reaper` finds the clone's own bin; outside it npx would not, and would offer the npm
 * registry's unrelated `reaper` package, so the lines name the clone's bin by its path.
 * `moduleFile` is this module's file (dist/cli/commands/demo.js in a clone).
 */
export function tryNextCommand(cwd: string, moduleFile: string): string {
  if (moduleFile.split(path.sep).includes('node_modules')) return 'reaper';
  const root = path.resolve(path.dirname(moduleFile), '..', '..', '..');
  const inside = path.relative(root, path.resolve(cwd));
  if (inside === '' || (!inside.startsWith('..') && !path.isAbsolute(inside))) return 'npx reaper';
  const bin = path.join(root, 'bin', 'reaper');
  return /^[\w./-]+$/.test(bin) ? bin : `'${bin.replace(/'/g, "'\\''")}'`;
}

export async function demoCommand(io: CliIO, args: unknown[], options: OutputFlags): Promise<number> {
  const dir = path.resolve(io.cwd, String(args[0] ?? 'reaper-demo'));
  await buildDemo(dir);
  const manifestFile = path.join(dir, 'reaper.yaml');
  const manifest = await loadManifest(manifestFile, {});
  const doc = await runAudit(manifest, { signal: io.signal });
  const plan = await runReap(manifest, { execute: false, signal: io.signal });
  if (options.output === 'json') {
    writeJson(io, { audit: doc, reapPlan: plan });
    return 0;
  }
  const rel = path.relative(io.cwd, dir) || '.';
  const width = terminalWidth(io);
  const cmd = tryNextCommand(io.cwd, fileURLToPath(import.meta.url));
  const out = [
    `Built a sandbox in ${rel}/: files of five sessions and three jobs, leases in ${rel}/.reaper/state.db.`,
    '',
    auditTable(doc, { width }),
    '',
    findingsTable(doc, 20, { width }),
    '',
    reapTable(plan, { width }),
    '',
    'Try next:',
    `  ${cmd} audit -c ${rel}/reaper.yaml --output json     # the same audit as a JSON document`,
    `  ${cmd} lease list -c ${rel}/reaper.yaml              # the leases keeping owners alive`,
    `  ${cmd} lease acquire session:bob --ttl 1h -c ${rel}/reaper.yaml   # revive bob, then audit again`,
    `  ${cmd} reap -c ${rel}/reaper.yaml --execute          # mark the orphans (tombstones); a run after the 2d grace deletes them`,
    `  ${cmd} runs -c ${rel}/reaper.yaml                    # run history`,
    // Its comment lines up with the others', whose commands name the sandbox's manifest.
    `  ${cmd} init${' '.repeat(Math.max(1, rel.length + 36))}# then a reaper.yaml of your own to start from`,
  ];
  io.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
