/**
 * docs/safety.md §2 at the last moment: an owner that takes a lease after the write-ahead journal
 * entry but before the delete request still saves its resource. (Guard: the last look in
 * src/run/reap/sweep.ts; without it this file is deleted.)
 */
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/manifest/load.js';
import { runReap } from '../../src/run/reap.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import type { StateStore } from '../../src/state/types.js';
import { testTempDir } from './support/temp-dir.js';

const opened: SqliteStateStore[] = [];
afterEach(async () => {
  while (opened.length) await opened.pop()!.close();
});

async function setup() {
  const dir = testTempDir('reaper-lastlook-');
  const old = new Date(Date.now() - 3_600_000);
  for (const f of ['bob/x.part', 'carol/y.part']) {
    const file = path.join(dir, 'data', f);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, 'data');
    utimesSync(file, old, old);
  }
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
`,
    { file: path.join(dir, 'reaper.yaml'), baseDir: dir },
  );
  return { dir, store, manifest };
}

/** The store, except that right after the write-ahead journal entry `onJournal` runs. */
function afterJournal(store: StateStore, onJournal: () => Promise<void>): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'beginBatch') {
        return async (...args: Parameters<StateStore['beginBatch']>) => {
          const entries = await target.beginBatch(...args);
          await onJournal();
          return entries;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('the last look before a delete', () => {
  it('spares a resource whose owner took a lease after the journal entry, and deletes the rest', async () => {
    const { dir, store, manifest } = await setup();
    const marked = await runReap(manifest, { execute: true, store });
    expect(marked.outcomes.marked).toBe(2);
    await new Promise((r) => setTimeout(r, 1_100));
    const hooked = afterJournal(store, async () => {
      await store.acquireLease({ key: 'session:bob', holder: 'bob-came-back', ttlMs: 60_000 });
    });
    const swept = await runReap(manifest, { execute: true, store: hooked });
    expect(existsSync(path.join(dir, 'data', 'bob', 'x.part'))).toBe(true);
    expect(existsSync(path.join(dir, 'data', 'carol', 'y.part'))).toBe(false);
    expect(swept.outcomes).toMatchObject({ deleted: 1, lifted: 1 });
    const journal = await store.journal({ resource: 'data' });
    expect(journal.map((j) => [j.resourceId, j.outcome])).toEqual([
      ['bob/x.part', 'changed'],
      ['carol/y.part', 'deleted'],
    ]);
    expect((await store.findTombstones({ resource: 'data', resourceId: 'bob/x.part' }))[0]?.state).toBe('lifted');
  });
});
