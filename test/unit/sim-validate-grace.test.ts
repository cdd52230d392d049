/** `reaper validate`'s grace warning, against a real SQLite state store with leases in it. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { warnShortGrace } from '../../src/cli/commands/validate-grace.js';
import { parseManifest } from '../../src/manifest/load.js';
import { inspectStateStore } from '../../src/state/inspect.js';
import { openStateStore } from '../../src/state/open.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sandbox(graces: Record<string, string>) {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-grace-'));
  dirs.push(dir);
  const resources = Object.entries(graces)
    .map(([name, grace]) => `  - name: ${name}\n    fs: { path: ./${name} }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n    grace: ${grace}\n`)
    .join('');
  const manifest = parseManifest(`version: 1\nstate: sqlite:state.db\nresources:\n${resources}`, { file: path.join(dir, 'reaper.yaml'), baseDir: dir });
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd: dir, signal: new AbortController().signal, version: () => 'test' } as CliIO;
  return { dir, manifest, io, stderr: () => stderr };
}

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

  it('creates no state store where there is none', async () => {
    const s = sandbox({ uploads: '1s' });
    await warnShortGrace(s.io, s.manifest, await inspectStateStore(s.manifest.state));
    expect(s.stderr()).toBe('');
    expect(existsSync(path.join(s.dir, 'state.db'))).toBe(false);
  });
});
