/**
 * SQLite schema, as numbered migrations held in TypeScript (tsc copies no .sql files).
 * Times are integer milliseconds since the epoch from the store's clock.
 */
import type { Migration } from '../core.js';

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      `
CREATE TABLE leases (
  lease_id    TEXT PRIMARY KEY,
  key         TEXT NOT NULL,
  holder      TEXT NOT NULL,
  token_hash  TEXT NOT NULL,
  generation  INTEGER NOT NULL,
  ttl_ms      INTEGER NOT NULL,
  acquired_at INTEGER NOT NULL,
  renewed_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  released_at INTEGER
);
CREATE INDEX leases_key_expires ON leases (key, expires_at);
CREATE INDEX leases_expires ON leases (expires_at);

CREATE TABLE lease_generations (
  key        TEXT PRIMARY KEY,
  generation INTEGER NOT NULL
);

CREATE TABLE lease_renewal_stats (
  bucket INTEGER PRIMARY KEY,
  ok     INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE runs (
  run_id          TEXT PRIMARY KEY,
  kind            TEXT NOT NULL,
  status          TEXT NOT NULL,
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER,
  manifest_digest TEXT NOT NULL,
  execute         INTEGER NOT NULL,
  summary         TEXT,
  source_counts   TEXT,
  error           TEXT
);
CREATE INDEX runs_started ON runs (started_at);

CREATE TABLE checkpoints (
  run_id     TEXT NOT NULL,
  resource   TEXT NOT NULL,
  phase      TEXT NOT NULL,
  cursor     TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, resource, phase)
);

CREATE TABLE resource_locks (
  resource   TEXT PRIMARY KEY,
  run_id     TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE tombstones (
  tombstone_id   INTEGER PRIMARY KEY AUTOINCREMENT,
  resource       TEXT NOT NULL,
  resource_id    TEXT NOT NULL,
  fingerprint    TEXT NOT NULL,
  owner          TEXT,
  owner_value    TEXT,
  reason         TEXT NOT NULL,
  bytes          INTEGER,
  marked_run_id  TEXT NOT NULL,
  marked_at      INTEGER NOT NULL,
  state          TEXT NOT NULL,
  updated_at     INTEGER NOT NULL,
  outcome_run_id TEXT,
  note           TEXT,
  restore_handle TEXT
);
CREATE UNIQUE INDEX tombstones_active ON tombstones (resource, resource_id) WHERE state IN ('marked', 'deleting');
CREATE INDEX tombstones_due ON tombstones (resource, state, tombstone_id);
CREATE INDEX tombstones_run ON tombstones (marked_run_id);

CREATE TABLE journal (
  journal_id   INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id       TEXT NOT NULL,
  tombstone_id INTEGER NOT NULL REFERENCES tombstones (tombstone_id),
  resource     TEXT NOT NULL,
  resource_id  TEXT NOT NULL,
  fingerprint  TEXT NOT NULL,
  owner        TEXT,
  reason       TEXT NOT NULL,
  bytes        INTEGER,
  evidence     TEXT,
  outcome      TEXT NOT NULL,
  error        TEXT,
  at           INTEGER NOT NULL
);
CREATE INDEX journal_run ON journal (run_id);
CREATE INDEX journal_pending ON journal (resource, outcome);
`,
    ],
  },
  {
    version: 2,
    // A renewal rewrites expires_at; while it was indexed, each renewal also rewrote two
    // index entries. Key lookups (liveKeys, keysActiveSince, listLeases by key) probe
    // (key) and check that key's leases; questions over all leases read the table, as
    // leaseStats already did. Same layout as the server stores' migration 2.
    statements: [
      `
DROP INDEX IF EXISTS leases_key_expires;
DROP INDEX IF EXISTS leases_expires;
CREATE INDEX IF NOT EXISTS leases_key ON leases (key);
`,
    ],
  },
  {
    version: 3,
    // Run heartbeats: a run killed -9 cannot record its end, so it says it is alive instead
    // (heartbeat_at, and alive_until = heartbeat + ttl), and a later run records a running run
    // past its alive_until as abandoned. Runs written before this migration have no heartbeat
    // (NULL) and count as lapsed. The index finds the running runs. Same layout as the server
    // stores' migration 3.
    statements: [
      `
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;
ALTER TABLE runs ADD COLUMN alive_until INTEGER;
CREATE INDEX IF NOT EXISTS runs_running ON runs (status, alive_until);
`,
    ],
  },
  {
    version: 4,
    // One durable ledger write per sweep batch (docs/safety.md §10). The write-ahead is a
    // batch row (run, type, the evidence its resources share) written with one set-based
    // move of its tombstones to `deleting`, each naming its batch; a resource deleted
    // without remark needs no journal row (the journal derives it from its tombstone and
    // batch), every other outcome gets one, tagged with its batch. Write-aheads of older
    // reapers (`intent` journal rows, one per resource) become one pending batch per run
    // and type, resolved by reading like any other (§11, §12). Same layout as the server
    // stores' migration 4.
    statements: [
      `
CREATE TABLE IF NOT EXISTS reap_batches (
  batch_id    INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      TEXT NOT NULL,
  resource    TEXT NOT NULL,
  evidence    TEXT,
  state       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS reap_batches_pending ON reap_batches (resource, state);
CREATE INDEX IF NOT EXISTS reap_batches_run ON reap_batches (run_id);
`,
      { unless: `SELECT 1 FROM pragma_table_info('tombstones') WHERE name = 'batch_id'`, sql: 'ALTER TABLE tombstones ADD COLUMN batch_id INTEGER' },
      { unless: `SELECT 1 FROM pragma_table_info('journal') WHERE name = 'batch_id'`, sql: 'ALTER TABLE journal ADD COLUMN batch_id INTEGER' },
      `
CREATE INDEX IF NOT EXISTS tombstones_batch ON tombstones (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_tombstone ON journal (tombstone_id);
INSERT INTO reap_batches (run_id, resource, evidence, state, created_at)
  SELECT run_id, resource, '{"upgraded":"intent journal entries of schema 3"}', 'pending', MIN(at)
    FROM journal WHERE outcome = 'intent' GROUP BY run_id, resource ORDER BY MIN(journal_id);
UPDATE tombstones SET batch_id = (
  SELECT MAX(b.batch_id) FROM journal j JOIN reap_batches b ON b.run_id = j.run_id AND b.resource = j.resource AND b.state = 'pending'
   WHERE j.tombstone_id = tombstones.tombstone_id AND j.outcome = 'intent')
 WHERE state = 'deleting' AND tombstone_id IN (SELECT tombstone_id FROM journal WHERE outcome = 'intent');
DELETE FROM journal WHERE outcome = 'intent';
`,
    ],
  },
  {
    version: 5,
    // Jobs of shards (docs/scale-out.md): a run's job and shard as columns, so `runs --job`
    // and a shard's rerun find the job's runs while they are still going or after they were
    // killed; the job-wide delete claims (job_claims: what the job has claimed per type, and
    // job_claim_shards: what each shard holds of it); and the job's one breaker verdict.
    // (Version 4 is the batch ledger's.) Same layout as the server stores' migration 5.
    statements: [
      `
ALTER TABLE runs ADD COLUMN job TEXT;
ALTER TABLE runs ADD COLUMN shard TEXT;
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started_at);
CREATE TABLE IF NOT EXISTS job_claims (
  job      TEXT NOT NULL,
  resource TEXT NOT NULL,
  cap      INTEGER NOT NULL,
  claimed  INTEGER NOT NULL,
  PRIMARY KEY (job, resource)
);
CREATE TABLE IF NOT EXISTS job_claim_shards (
  job      TEXT NOT NULL,
  resource TEXT NOT NULL,
  shard    TEXT NOT NULL,
  granted  INTEGER NOT NULL,
  PRIMARY KEY (job, resource, shard)
);
CREATE TABLE IF NOT EXISTS job_verdicts (
  job           TEXT PRIMARY KEY,
  run_id        TEXT NOT NULL,
  reasons       TEXT NOT NULL,
  source_counts TEXT NOT NULL,
  judged_at     INTEGER NOT NULL
);
`,
    ],
  },
  {
    version: 6,
    // Tombstone indexes a sweep's state changes rewrite less (docs/safety.md §10): the due
    // tombstones (resource, state = 'marked', by id) are a partial index on `marked` alone, so
    // the write-ahead's move to `deleting` only drops a tombstone's entry and its outcome
    // touches none, where the index keyed on state rewrote one entry at each. The other
    // states are found through tombstones_active (marked or deleting, by resource) and
    // tombstones_batch. The server stores record this version without a change.
    statements: [
      `
DROP INDEX IF EXISTS tombstones_due;
CREATE INDEX IF NOT EXISTS tombstones_marked ON tombstones (resource, tombstone_id) WHERE state = 'marked';
`,
    ],
  },
  {
    version: 7,
    // A visible mark's confirmation (docs/safety.md §14): when `confirmMarks` recorded the
    // fingerprint the mark answered. A type with a visible mark sweeps only confirmed
    // tombstones. Those active at the upgrade were judged as confirmed by the reaper that
    // wrote them, and keep that standing (their mark time).
    statements: [
      {
        unless: `SELECT 1 FROM pragma_table_info('tombstones') WHERE name = 'mark_confirmed_at'`,
        sql: 'ALTER TABLE tombstones ADD COLUMN mark_confirmed_at INTEGER',
      },
      `UPDATE tombstones SET mark_confirmed_at = marked_at WHERE state IN ('marked', 'deleting') AND mark_confirmed_at IS NULL`,
    ],
  },
];
