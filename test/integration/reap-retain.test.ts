/**
 * Files kept under `retain`: a run that dies between the delete and its journal outcome
 * leaves the copy findable, so `restore` still works (docs/safety.md §14); copies older than
 * `retain` are purged by the next executing run.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/manifest/load.js';
import { runReap } from '../../src/run/reap.js';
import { runRestore } from '../../src/run/restore.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import type { StateStore } from '../../src/state/types.js';
import { testTempDir } from './support/temp-dir.js';

const opened: SqliteStateStore[] = [];
afterEach(async () => {
  while (opened.length) await opened.pop()!.close();
});

async function setup(retain: string) {
  const dir = testTempDir('reaper-retain-');
  const file = path.join(dir, 'data', 'bob', 'x.part');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, 'precious');
  const old = new Date(Date.now() - 3_600_000);
  utimesSync(file, old, old);
  const store = await SqliteStateStore.open(path.join(dir, 'state.db'));
  opened.push(store);
  await store.acquireLease({ key: 'session:bystander', holder: 't', ttlMs: 3_600_000 });
  const manifest = parseManifest(
    `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 0s, grace: 1s, maxDeleteFraction: 1 }
resources:
  - name: data
    fs: { path: ./data }
    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }
    quarantine: ./q
    retain: ${retain}
`,
    { file: path.join(dir, 'reaper.yaml'), baseDir: dir },
  );
  return { dir, file, store, manifest };
}

/** The store, except that recording delete outcomes fails once: a run dying after its deletes. */
function dyingAfterDelete(store: StateStore): StateStore {
  let failed = false;
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'finishBatch' && !failed) {
        return async () => {
          failed = true;
          throw new Error('simulated crash after the delete');
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('retain', () => {
  it('keeps the copy findable after a run dies between delete and outcome, so restore brings it back', async () => {
    const { dir, file, store, manifest } = await setup('7d');
    await runReap(manifest, { execute: true, store });
    await new Promise((r) => setTimeout(r, 1_100));
    await expect(runReap(manifest, { execute: true, store: dyingAfterDelete(store) })).rejects.toThrow('simulated crash');
    expect(existsSync(file)).toBe(false);
    expect((await store.journal({ resource: 'data' })).map((j) => j.outcome)).toEqual(['intent']);

    const recovered = await runReap(manifest, { execute: true, store });
    expect(recovered.outcomes.deleted).toBe(1);
    const [tomb] = await store.findTombstones({ resource: 'data' });
    expect(tomb).toMatchObject({ state: 'deleted', restoreHandle: expect.stringContaining(path.join(dir, 'q')) });

    const restored = await runRestore(manifest, { resource: 'data', store });
    expect(restored).toEqual([{ resource: 'data', id: 'bob/x.part', action: 'restored' }]);
    expect(readFileSync(file, 'utf8')).toBe('precious');
  });

  it('purges copies older than retain on the next executing run', async () => {
    const { dir, store, manifest } = await setup('1s');
    await runReap(manifest, { execute: true, store });
    await new Promise((r) => setTimeout(r, 1_100));
    await runReap(manifest, { execute: true, store });
    // The copy is kept right after the sweep …
    expect(readdirSync(path.join(dir, 'q'))).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1_100));
    await runReap(manifest, { execute: true, store });
    // … and gone once it is older than retain.
    expect(readdirSync(path.join(dir, 'q'))).toEqual([]);
  });
});
