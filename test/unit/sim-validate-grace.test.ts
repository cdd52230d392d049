/** `reaper validate`'s grace warning, against a real SQLite state store with leases in it. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { buildDemo } from '../../src/cli/commands/demo.js';
import { warnShortGrace } from '../../src/cli/commands/validate-grace.js';
import { loadManifest, parseManifest } from '../../src/manifest/load.js';
import { inspectStateStore } from '../../src/state/inspect.js';
import { openStateStore } from '../../src/state/open.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sandbox(graces: Record<string, string>, owners = '') {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-grace-'));
  dirs.push(dir);
  const resources = Object.entries(graces)
    .map(([name, grace]) => `  - name: ${name}\n    fs: { path: ./${name} }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n    grace: ${grace}\n`)
    .join('');
  const manifest = parseManifest(`version: 1\nstate: sqlite:state.db\n${owners}resources:\n${resources}`, { file: path.join(dir, 'reaper.yaml'), baseDir: dir });
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd: dir, signal: new AbortController().signal, version: () => 'test' } as CliIO;
  return { dir, manifest, io, stderr: () => stderr };
}

/** The warning for a grace below what the rule asks before any renewal interval: skew 5s + pause 1m. */
const FLOOR = (type: string, grace: string) =>
  `reaper: warning: ${type}: grace ${grace} is below the 65s the grace rule asks before any lease renewal interval is counted (skew 5s + pause 1m; docs/strategies.md)\n`;

describe('validate: grace against the leases in the state store', () => {
  it('warns for a grace below the rule, names the type and the cadence, and says nothing of a long one', async () => {
    const s = sandbox({ uploads: '1m', scratch: '1h' });
    const store = await openStateStore(s.manifest.state);
    await store.acquireLease({ key: 'session:a', holder: 'h', ttlMs: 30_000 });
    await store.acquireLease({ key: 'session:b', holder: 'h', ttlMs: 30_000 });
    await store.close();
    await warnShortGrace(s.io, s.manifest, await inspectStateStore(s.manifest.state));
    // ttl 30s, renewed every ttl/3 at least: 5s + 60s + 3 × 11s = 98s.
    expect(s.stderr()).toBe(
      'reaper: warning: uploads: grace 1m is below the 98s the grace rule asks for leases of ttl 30s renewed about every 10s (skew 5s + pause 1m + 3 renewal intervals; docs/strategies.md)\n',
    );
  });

  it('creates no state store where there is none, and judges the grace by the rule without a renewal interval', async () => {
    const s = sandbox({ uploads: '1s', scratch: '1h' });
    await warnShortGrace(s.io, s.manifest, await inspectStateStore(s.manifest.state));
    expect(s.stderr()).toBe(FLOOR('uploads', '1s'));
    expect(existsSync(path.join(s.dir, 'state.db'))).toBe(false);
  });

  it('warns of a grace of 0s in a manifest without leases', async () => {
    const s = sandbox({ uploads: '0s', scratch: '1h' }, 'owners: [{ static: [session:platform] }]\n');
    await warnShortGrace(s.io, s.manifest, await inspectStateStore(s.manifest.state));
    expect(s.stderr()).toBe(FLOOR('uploads', '0s'));
  });

  it('warns of a grace of 0s when the state store holds no active lease to measure', async () => {
    const s = sandbox({ uploads: '0s' });
    const store = await openStateStore(s.manifest.state);
    await store.close();
    await warnShortGrace(s.io, s.manifest, await inspectStateStore(s.manifest.state));
    expect(s.stderr()).toBe(FLOOR('uploads', '0s'));
  });

  it('the demo keeps the rule: its grace covers the leases it builds', async () => {
    const s = sandbox({ unused: '1h' });
    const dir = path.join(s.dir, 'demo');
    await buildDemo(dir);
    const manifest = await loadManifest(path.join(dir, 'reaper.yaml'));
    await warnShortGrace(s.io, manifest, await inspectStateStore(manifest.state));
    expect(s.stderr()).toBe('');
  });
});
