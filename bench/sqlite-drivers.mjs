#!/usr/bin/env node
// bench/sqlite-drivers: the embedded state store on better-sqlite3 beside node:sqlite
// (built into Node.js 22.5+), on the ledger and lease paths. Both drive the very same
// SqliteStateStore from dist/ — its SQL, transactions and pragmas — the second through
// a small adapter (below) giving node:sqlite's DatabaseSync the part of better-sqlite3's
// API the store calls. The adapter is also the list of what a switch of driver needs.
//
//   npm run build && node bench/sqlite-drivers.mjs [--reps 3] [--json out.json]
//   PATH="$(scripts/fetch-node.sh 24.22.3):$PATH" scripts/sqlite-addon.sh node && …   # another Node.js
//
// Scenarios, each in a fresh process and a fresh state file on disk (WAL, synchronous=FULL):
//   open      load the driver, open a new file, migrate
//   renew     renewLeases over 10,000 held leases in one call (the daemon's heartbeat)
//   delete    beginBatch then finishBatch, batches of 500 over 10,000 marked tombstones
//   mark      a 100,000-resource mark run: per page of 500, activeTombstones then insertTombstones
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const DRIVERS = ['better-sqlite3', 'node:sqlite'];
const SCENARIOS = ['open', 'renew', 'delete', 'mark'];
const self = fileURLToPath(import.meta.url);

/** better-sqlite3's surface as SqliteStateStore uses it, over node:sqlite's DatabaseSync. */
export class NodeSqliteDatabase {
  constructor(DatabaseSync, file) {
    this.db = new DatabaseSync(file);
    this.open = true;
  }
  pragma(text) {
    this.db.exec(`PRAGMA ${text}`);
  }
  exec(sql) {
    this.db.exec(sql);
  }
  prepare(sql) {
    const statement = this.db.prepare(sql);
    return {
      get: (...params) => statement.get(...params),
      all: (...params) => statement.all(...params),
      // node:sqlite may report changes as a bigint; the store compares with numbers.
      run: (...params) => {
        const r = statement.run(...params);
        return { changes: Number(r.changes), lastInsertRowid: r.lastInsertRowid };
      },
    };
  }
  /** db.transaction(fn) and its .immediate() variant, as better-sqlite3 offers them. */
  transaction(fn) {
    const wrap = (begin) => (...args) => {
      this.db.exec(begin);
      try {
        const result = fn(...args);
        this.db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
        throw error;
      }
    };
    const deferred = wrap('BEGIN');
    deferred.immediate = wrap('BEGIN IMMEDIATE');
    return deferred;
  }
  close() {
    this.db.close();
    this.open = false;
  }
}

/** Open a state file with one driver, configured as SqliteStateStore.open does, and migrate. */
async function openStore(driver, file) {
  const { SqliteStateStore } = await import('../dist/state/sqlite/sqlite-state-store.js');
  let db;
  if (driver === 'better-sqlite3') {
    const { default: Database } = await import('better-sqlite3');
    db = new Database(file);
  } else {
    const { DatabaseSync } = await import('node:sqlite');
    db = new NodeSqliteDatabase(DatabaseSync, file);
  }
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // The constructor is private in TypeScript only; open() would pick better-sqlite3.
  const store = new SqliteStateStore(db, file, {});
  await store.migrate();
  return { store, db };
}

const p50 = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const time = async (fn) => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};
const tombstone = (i) => ({
  resource: 'bench-files',
  resourceId: `scratch/session-${i % 997}/upload-${i}.part`,
  fingerprint: `2049:${1_000_000 + i}:4096:1764979200000`,
  owner: `session:${i % 997}`,
  ownerValue: String(i % 997),
  reason: 'owner-dead',
  bytes: 4096,
});

/** One scenario with one driver, in this process; returns its numbers. */
async function measure(driver, scenario) {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sqlite-drivers-'));
  const file = path.join(dir, 'state.db');
  try {
    const openMs = await time(async () => {
      const { store } = await openStore(driver, file);
      await store.close();
    });
    if (scenario === 'open') return { ms: openMs };
    const { store, db } = await openStore(driver, file);
    const sqlite = db.prepare('SELECT sqlite_version() AS v').get().v;
    try {
      if (scenario === 'renew') {
        const keys = Array.from({ length: 10_000 }, (_, i) => `session:bench-${i}`);
        const ids = [];
        for (let i = 0; i < keys.length; i += 500) ids.push(...(await store.acquireLeases(keys.slice(i, i + 500), { holder: 'bench', ttlMs: 600_000 })).map((l) => l.leaseId));
        const calls = [];
        for (let r = 0; r < 15; r++) {
          let renewed = 0;
          calls.push(await time(async () => (renewed = (await store.renewLeases(ids, { ttlMs: 600_000 })).filter((o) => o.lease).length)));
          if (renewed !== ids.length) throw new Error(`renewed ${renewed} of ${ids.length}`);
        }
        return { sqlite, ms: p50(calls), calls: calls.length, per: 'call of 10,000 ids' };
      }
      if (scenario === 'delete') {
        const run = await store.startRun({ kind: 'reap', manifestDigest: 'bench', execute: true });
        for (let i = 0; i < 10_000; i += 500) await store.insertTombstones(run.runId, Array.from({ length: 500 }, (_, j) => tombstone(i + j)));
        const marked = await store.findTombstones({ resource: 'bench-files', states: ['marked'], limit: 10_000 });
        const begin = [];
        const finish = [];
        for (let i = 0; i < marked.length; i += 500) {
          const batch = marked.slice(i, i + 500);
          let begun = null;
          begin.push(await time(async () => (begun = await store.beginBatch(run.runId, 'bench-files', batch.map((t) => t.tombstoneId), { liveness: 'dead', checkedAt: 1764979200000 }))));
          if (begun?.tombstones.length !== batch.length) throw new Error(`moved ${begun?.tombstones.length ?? 0} of ${batch.length}`);
          finish.push(await time(() => store.finishBatch(run.runId, begun.batchId, begun.tombstones.map((t) => ({ tombstoneId: t.tombstoneId, outcome: 'deleted' })))));
        }
        return { sqlite, ms: p50(begin), finishMs: p50(finish), calls: begin.length, per: 'batch of 500' };
      }
      if (scenario === 'mark') {
        const run = await store.startRun({ kind: 'reap', manifestDigest: 'bench', execute: true });
        const pages = [];
        let marked = 0;
        const total = await time(async () => {
          for (let i = 0; i < 100_000; i += 500) {
            const page = Array.from({ length: 500 }, (_, j) => tombstone(i + j));
            pages.push(
              await time(async () => {
                const active = await store.activeTombstones('bench-files', page.map((t) => t.resourceId));
                marked += await store.insertTombstones(run.runId, page.filter((t) => !active.has(t.resourceId)));
              }),
            );
          }
        });
        if (marked !== 100_000) throw new Error(`marked ${marked} of 100,000`);
        return { sqlite, ms: total, pageMs: p50(pages), calls: pages.length, per: 'run of 100,000 (200 pages)' };
      }
      throw new Error(`unknown scenario ${scenario}`);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  const result = await measure(args[1], args[2]);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const value = (flag, fallback) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : fallback);
  const reps = Number(value('--reps', 3));
  const jsonOut = value('--json', null);
  const [major, minor] = process.versions.node.split('.').map(Number);
  const drivers = major > 22 || (major === 22 && minor >= 5) ? DRIVERS : ['better-sqlite3'];
  if (drivers.length === 1) console.error(`Node.js ${process.version} has no node:sqlite: better-sqlite3 only`);
  const results = [];
  for (const scenario of SCENARIOS) {
    for (let rep = 0; rep < reps; rep++) {
      // Alternate the order so neither driver always runs on a warmer disk cache.
      for (const driver of rep % 2 ? [...drivers].reverse() : drivers) {
        const child = spawnSync(process.execPath, ['--no-warnings', self, '--child', driver, scenario], { encoding: 'utf8' });
        if (child.status !== 0) throw new Error(`${driver} ${scenario}: ${child.stderr}`);
        results.push({ node: process.version, driver, scenario, rep, ...JSON.parse(child.stdout) });
        console.error(`${driver} ${scenario} rep ${rep + 1}: ${JSON.stringify(results.at(-1))}`);
      }
    }
  }
  const med = (driver, scenario, field) => {
    const values = results.filter((r) => r.driver === driver && r.scenario === scenario).map((r) => r[field]);
    return values.length ? p50(values) : null;
  };
  const ms = (x) => (x === null ? '—' : x < 10 ? x.toFixed(2) : x.toFixed(1));
  const rows = [
    ['open: load driver, create, migrate', 'open', 'ms'],
    ['renewLeases, 10,000 ids per call', 'renew', 'ms'],
    ['beginBatch, batch of 500', 'delete', 'ms'],
    ['finishBatch, batch of 500', 'delete', 'finishMs'],
    ['mark run, 100,000 resources (total)', 'mark', 'ms'],
    ['mark run: one page of 500', 'mark', 'pageMs'],
  ];
  const sqliteOf = (driver) => results.find((r) => r.driver === driver && r.sqlite)?.sqlite ?? '?';
  const head = ['path (p50 ms)', ...drivers.map((d) => `${d} (SQLite ${sqliteOf(d)})`), ...(drivers.length === 2 ? ['node:sqlite / better-sqlite3'] : [])];
  const body = rows.map(([label, scenario, field]) => {
    const values = drivers.map((d) => med(d, scenario, field));
    return [label, ...values.map(ms), ...(drivers.length === 2 ? [values[0] ? `${(values[1] / values[0]).toFixed(2)}×` : '—'] : [])];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`Node.js ${process.version}, ${reps} runs each (median)\n`);
  console.log([line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n'));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
}
