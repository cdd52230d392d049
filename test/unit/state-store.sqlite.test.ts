/**
 * The StateStore contract (test/support/state-store-contract.ts) on SQLite: no services,
 * so it runs in the unit project.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError } from '../../src/errors.js';
import { schemaTooNew } from '../../src/state/common.js';
import { inspectStateStore } from '../../src/state/inspect.js';
import { openStateStore } from '../../src/state/open.js';
import { SQLITE_MIGRATIONS } from '../../src/state/sqlite/migrations.js';
import { versionReport } from '../../src/version.js';
import { stateStoreContract } from '../support/state-store-contract.js';

stateStoreContract(['sqlite']);

describe('a SQLite store written by an earlier reaper', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A store file laid out as the reaper before the shared core wrote it, up to `version`, with one run. */
  function oldStore(version: number): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'reaper-upgrade-'));
    dirs.push(dir);
    const file = path.join(dir, 'state.db');
    const db = new Database(file);
    db.exec('CREATE TABLE reaper_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version <= version)) {
      for (const statement of migration.statements) db.exec(typeof statement === 'string' ? statement : statement.sql);
      db.prepare('INSERT INTO reaper_migrations (version, applied_at) VALUES (?, 1)').run(migration.version);
    }
    db.prepare(`INSERT INTO runs (run_id, kind, status, started_at, manifest_digest, execute) VALUES ('r-old', 'reap', 'ok', 5, 'sha256:x', 1)`).run();
    db.close();
    return file;
  }

  const versions = (file: string): number[] => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare('SELECT version FROM reaper_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
    } finally {
      db.close();
    }
  };

  const all = SQLITE_MIGRATIONS.map((m) => m.version);
  const latest = all.at(-1)!;

  it('upgrades a store at schema 2 to the latest and keeps its runs', async () => {
    const file = oldStore(2);
    const store = await openStateStore(`sqlite:${file}`);
    try {
      expect(versions(file)).toEqual(all);
      const run = await store.getRun('r-old');
      expect(run).toMatchObject({ runId: 'r-old', status: 'ok', execute: true, heartbeatAt: null, aliveUntil: null });
    } finally {
      await store.close();
    }
  });

  it('upgrades a store at schema 3 with a sweep cut short: its intent entries become a pending batch', async () => {
    const file = oldStore(3);
    const db = new Database(file);
    const tomb = db.prepare(
      `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, reason, bytes, marked_run_id, marked_at, state, updated_at)
       VALUES ('files', ?, 'fp', 'svc:gone', 'owner-dead', 1, 'r-old', 5, ?, 5) RETURNING tombstone_id`,
    );
    const intent = db.prepare(
      `INSERT INTO journal (run_id, tombstone_id, resource, resource_id, fingerprint, owner, reason, bytes, evidence, outcome, at)
       VALUES ('r-old', ?, 'files', ?, 'fp', 'svc:gone', 'owner-dead', 1, '{"status":"orphaned"}', ?, 6)`,
    );
    for (const [id, state, outcome] of [['done', 'deleted', 'deleted'], ['a', 'deleting', 'intent'], ['b', 'deleting', 'intent']] as const) {
      const { tombstone_id } = tomb.get(id, state) as { tombstone_id: number };
      intent.run(tombstone_id, id, outcome);
    }
    db.close();
    const store = await openStateStore(`sqlite:${file}`);
    try {
      expect(versions(file)).toEqual(all);
      expect(versionReport('0.0.0')).toContain(`state-store schema ${SQLITE_MIGRATIONS.at(-1)!.version}`);
      const [batch, ...more] = await store.pendingBatches('files');
      expect(more).toEqual([]);
      expect(batch).toMatchObject({ runId: 'r-old', resource: 'files', state: 'pending' });
      expect(batch!.tombstones.map((t) => [t.resourceId, t.state])).toEqual([
        ['a', 'deleting'],
        ['b', 'deleting'],
      ]);
      expect((await store.journal({ runId: 'r-old' })).map((e) => [e.resourceId, e.outcome])).toEqual([
        ['done', 'deleted'],
        ['a', 'intent'],
        ['b', 'intent'],
      ]);
    } finally {
      await store.close();
    }
  });

  it('upgrades a store at schema 5 with tombstones pending and a batch in flight: they are found and finished as before', async () => {
    const file = oldStore(5);
    const db = new Database(file);
    const tomb = db.prepare(
      `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, reason, bytes, marked_run_id, marked_at, state, updated_at, batch_id)
       VALUES ('files', ?, 'fp', 'svc:gone', 'owner-dead', 1, 'r-old', 5, ?, 5, ?) RETURNING tombstone_id`,
    );
    const { batch_id: batchId } = db.prepare(`INSERT INTO reap_batches (run_id, resource, evidence, state, created_at) VALUES ('r-old', 'files', '{}', 'pending', 6) RETURNING batch_id`).get() as { batch_id: number };
    const ids = new Map<string, number>();
    for (const [id, state, batch] of [['gone', 'deleted', batchId], ['in-flight', 'deleting', batchId], ['due-1', 'marked', null], ['due-2', 'marked', null], ['kept', 'lifted', null]] as const) {
      ids.set(id, (tomb.get(id, state, batch) as { tombstone_id: number }).tombstone_id);
    }
    db.close();
    const store = await openStateStore(`sqlite:${file}`);
    try {
      expect(versions(file)).toEqual(all);
      expect(await store.countDueTombstones('files', 0)).toBe(2);
      expect((await store.dueTombstones('files', 0, 0, 10)).map((t) => t.resourceId)).toEqual(['due-1', 'due-2']);
      expect((await store.dueTombstones('files', 0, ids.get('due-1')!, 10)).map((t) => t.resourceId)).toEqual(['due-2']);
      expect(await store.countTombstones('files')).toEqual({ marked: 2, deleting: 1, oldestMarkedAt: 5 });
      expect([...(await store.activeTombstones('files', ['gone', 'in-flight', 'due-1', 'kept'])).keys()].sort()).toEqual(['due-1', 'in-flight']);
      const [pending, ...more] = await store.pendingBatches('files');
      expect(more).toEqual([]);
      expect(pending!.tombstones.map((t) => [t.resourceId, t.state])).toEqual([['in-flight', 'deleting']]);
      // The batch is finished as before the upgrade, and the swept tombstones leave the due ones.
      await store.finishBatch('r-new', batchId, [{ tombstoneId: ids.get('in-flight')!, outcome: 'deleted' }]);
      expect(await store.pendingBatches('files')).toEqual([]);
      const next = (await store.beginBatch('r-new', 'files', [ids.get('due-1')!, ids.get('kept')!], null))!;
      expect(next.tombstones.map((t) => t.resourceId)).toEqual(['due-1']);
      expect((await store.dueTombstones('files', 0, 0, 10)).map((t) => t.resourceId)).toEqual(['due-2']);
      expect(await store.countTombstones('files')).toEqual({ marked: 1, deleting: 1, oldestMarkedAt: 5 });
    } finally {
      await store.close();
    }
  });

  it('upgrades a store at schema 6: its active tombstones keep their standing as confirmed (at their mark time), settled ones stay unconfirmed', async () => {
    const file = oldStore(6);
    const db = new Database(file);
    const tomb = db.prepare(
      `INSERT INTO tombstones (resource, resource_id, fingerprint, owner, reason, bytes, marked_run_id, marked_at, state, updated_at)
       VALUES ('files', ?, 'fp', 'svc:gone', 'owner-dead', 1, 'r-old', ?, ?, 9)`,
    );
    for (const [id, at, state] of [['marked', 5, 'marked'], ['deleting', 6, 'deleting'], ['lifted', 7, 'lifted'], ['deleted', 8, 'deleted']] as const) tomb.run(id, at, state);
    db.close();
    const store = await openStateStore(`sqlite:${file}`);
    try {
      expect(versions(file)).toEqual(all);
      expect((await store.findTombstones({ resource: 'files' })).map((t) => [t.resourceId, t.markConfirmedAt])).toEqual([
        ['marked', 5],
        ['deleting', 6],
        ['lifted', null],
        ['deleted', null],
      ]);
    } finally {
      await store.close();
    }
  });

  it('opens a store at the latest schema as it is, and --version reports that schema', async () => {
    const file = oldStore(latest);
    const store = await openStateStore(`sqlite:${file}`);
    try {
      expect(versions(file)).toEqual(all);
      expect((await store.listRuns()).map((r) => r.runId)).toEqual(['r-old']);
      expect(versionReport('0.0.0')).toContain(`state-store schema ${SQLITE_MIGRATIONS.at(-1)!.version}`);
      expect(latest).toBe(7);
    } finally {
      await store.close();
    }
  });

  it('refuses a store whose schema is newer than this reaper, as a BackendError (exit 3)', async () => {
    const file = oldStore(latest);
    const db = new Database(file);
    db.prepare('INSERT INTO reaper_migrations (version, applied_at) VALUES (99, 1)').run();
    db.close();
    await expect(openStateStore(`sqlite:${file}`)).rejects.toThrow(BackendError);
    await expect(openStateStore(`sqlite:${file}`)).rejects.toThrow(new RegExp(`schema version 99, newer than this reaper knows \\(${latest}\\)`));
  });

  it('judges a store by every migration it has, not its newest: one missing is behind, one unknown is refused', async () => {
    const file = oldStore(latest);
    const db = new Database(file);
    db.prepare('DELETE FROM reaper_migrations WHERE version = 4').run();
    db.close();
    // Migration 4 is not on record though 5 is: behind, and opening applies it.
    expect(await inspectStateStore(`sqlite:${file}`)).toEqual({ state: 'behind', version: latest, latest });
    const store = await openStateStore(`sqlite:${file}`);
    await store.close();
    expect(await inspectStateStore(`sqlite:${file}`)).toEqual({ state: 'current', version: latest, latest });
    // A migration between the known ones that this build does not know: a store of another build.
    expect(schemaTooNew('sqlite:x', [1, 2, 3, 4, 5], [1, 2, 3, 5])?.message).toBe(
      'the state store sqlite:x has schema migration 4 this reaper does not know (it knows 1, 2, 3, 5); upgrade reaper before using this store',
    );
    expect(schemaTooNew('sqlite:x', [1, 2, 3, 5], [1, 2, 3, 4, 5])).toBeNull();
  });
});
