/**
 * PostgreSQL schema, as numbered migrations held in TypeScript (tsc copies no .sql files).
 * Each migration runs in one transaction together with the row in `reaper_migrations`
 * that records it, under an advisory lock (see PostgresStateStore.migrate).
 *
 * Column choices:
 * - Times are `bigint` milliseconds since the epoch, taken from the server's
 *   `clock_timestamp()`; the API speaks ms exactly like the SQLite store, and nothing
 *   depends on a session time zone.
 * - Strings that come from scanned data — owner keys, resource ids, owner values,
 *   scan cursors — are `bytea` holding their UTF-8 bytes: compared byte for byte, with
 *   no collation in the way, and able to hold every byte a backend can hand us
 *   (PostgreSQL `text` cannot hold NUL). Names reaper makes itself (run ids, resource
 *   types, lease ids, phases) are `text COLLATE "C"`: byte-order comparisons, like
 *   SQLite's BINARY collation.
 * - JSON documents are `json` (kept as written; `jsonb` would reject "\u0000").
 */
import type { Migration } from '../core.js';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      `
CREATE TABLE leases (
  lease_id    text COLLATE "C" PRIMARY KEY,
  key         bytea NOT NULL,
  holder      text COLLATE "C" NOT NULL,
  token_hash  text NOT NULL,
  generation  bigint NOT NULL,
  ttl_ms      bigint NOT NULL,
  acquired_at bigint NOT NULL,
  renewed_at  bigint NOT NULL,
  expires_at  bigint NOT NULL,
  released_at bigint
);
-- Lease indexes, sized for a million leases:
-- * the primary key serves every call by id (renew, renewLeases' "= ANY", release, get,
--   token checks): one index probe per id, never a scan;
-- * (key, expires_at) serves liveKeys / keysActiveSince / listLeases by key: one probe
--   per asked key, then a short range over that key's leases, starting at expires_at >
--   now, so expired history of a busy key is skipped rather than read;
-- * (expires_at) serves the questions over all leases: countLiveKeys and listLeases
--   read only the range expires_at > now (a release moves expires_at to the release
--   time, so that range holds live leases only), and pruneLeases reads only the range
--   below its cutoff.
-- Each renewal moves expires_at, so it costs a new entry in both expiry indexes; that
-- is the price of answering liveness without a scan, and the reason there are no more.
-- (Migration 2 replaces both expiry indexes with one on key: renewals stay off the indexes.)
CREATE INDEX leases_key_expires ON leases (key, expires_at);
CREATE INDEX leases_expires ON leases (expires_at);

-- Fencing numbers outlive pruned leases: one row per key ever leased.
CREATE TABLE lease_generations (
  key        bytea PRIMARY KEY,
  generation bigint NOT NULL
);

CREATE TABLE lease_renewal_stats (
  bucket bigint PRIMARY KEY,
  ok     bigint NOT NULL DEFAULT 0,
  failed bigint NOT NULL DEFAULT 0
);

CREATE TABLE runs (
  run_id          text COLLATE "C" PRIMARY KEY,
  kind            text NOT NULL,
  status          text NOT NULL,
  started_at      bigint NOT NULL,
  finished_at     bigint,
  manifest_digest text NOT NULL,
  execute         boolean NOT NULL,
  summary         json,
  source_counts   json,
  error           text
);
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX runs_finished_counts ON runs (finished_at) WHERE source_counts IS NOT NULL;

CREATE TABLE checkpoints (
  run_id     text COLLATE "C" NOT NULL,
  resource   text COLLATE "C" NOT NULL,
  phase      text COLLATE "C" NOT NULL,
  cursor     bytea,
  updated_at bigint NOT NULL,
  PRIMARY KEY (run_id, resource, phase)
);

CREATE TABLE resource_locks (
  resource   text COLLATE "C" PRIMARY KEY,
  run_id     text COLLATE "C" NOT NULL,
  expires_at bigint NOT NULL
);

CREATE TABLE tombstones (
  tombstone_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resource       text COLLATE "C" NOT NULL,
  resource_id    bytea NOT NULL,
  fingerprint    text NOT NULL,
  owner          bytea,
  owner_value    bytea,
  reason         text NOT NULL,
  bytes          bigint,
  marked_run_id  text COLLATE "C" NOT NULL,
  marked_at      bigint NOT NULL,
  state          text NOT NULL CHECK (state IN ('marked', 'deleting', 'deleted', 'lifted', 'restored')),
  updated_at     bigint NOT NULL,
  outcome_run_id text COLLATE "C",
  note           text,
  restore_handle text
);
-- At most one active tombstone per resource. Resource ids are indexed through their
-- SHA-256: an S3 key or a file path can outgrow a btree entry (about 2.7 kB), its
-- digest cannot; queries compare the id itself as well, so the digest only narrows.
CREATE UNIQUE INDEX tombstones_active ON tombstones (resource, sha256(resource_id)) WHERE state IN ('marked', 'deleting');
CREATE INDEX tombstones_resource_id ON tombstones (resource, sha256(resource_id));
CREATE INDEX tombstones_due ON tombstones (resource, state, tombstone_id);
CREATE INDEX tombstones_marked_run ON tombstones (marked_run_id);
CREATE INDEX tombstones_outcome_run ON tombstones (outcome_run_id);

CREATE TABLE journal (
  journal_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id       text COLLATE "C" NOT NULL,
  tombstone_id bigint NOT NULL REFERENCES tombstones (tombstone_id),
  resource     text COLLATE "C" NOT NULL,
  resource_id  bytea NOT NULL,
  fingerprint  text NOT NULL,
  owner        bytea,
  reason       text NOT NULL,
  bytes        bigint,
  evidence     json,
  outcome      text NOT NULL CHECK (outcome IN ('intent', 'deleted', 'absent', 'changed', 'failed')),
  error        text,
  at           bigint NOT NULL
);
CREATE INDEX journal_run ON journal (run_id, journal_id);
CREATE INDEX journal_resource ON journal (resource, journal_id);
CREATE INDEX journal_pending ON journal (resource, journal_id) WHERE outcome = 'intent';
CREATE INDEX journal_tombstone ON journal (tombstone_id);
`,
    ],
  },
  {
    version: 2,
    // Renewals become heap-only updates. A renewal rewrites renewed_at, ttl_ms and
    // expires_at; while expires_at was indexed, every renewal of every lease put a new
    // entry into all three lease indexes and left the old ones for vacuum. With no
    // lease index over a column a renewal writes, and room left on each page
    // (fillfactor 70), PostgreSQL updates the row in place on its page (a HOT update) and
    // touches no index: a 10,000-lease heartbeat UPDATE takes about a third of the time.
    // What the expiry indexes served now reads differently:
    // * liveKeys / keysActiveSince / listLeases by key: one probe of (key) per asked key
    //   and a check of that key's leases, history included until it is pruned;
    // * countLiveKeys / listLeases over all keys / pruneLeases read the table, as
    //   leaseStats (the metrics scrape) already did. At a million leases that is a
    //   sequential read of a few hundred megabytes on a scrape or a prune, against
    //   index churn on every heartbeat of every lease.
    // fillfactor applies to pages written from now on; existing pages fill up as before.
    statements: [
      `
DROP INDEX IF EXISTS leases_key_expires;
DROP INDEX IF EXISTS leases_expires;
CREATE INDEX IF NOT EXISTS leases_key ON leases (key);
ALTER TABLE leases SET (fillfactor = 70);
`,
    ],
  },
  {
    version: 3,
    // Run heartbeats: a run killed -9 cannot record its end, so it says it is alive instead
    // (heartbeat_at, and alive_until = heartbeat + ttl), and a later run records a running run
    // past its alive_until as abandoned. Runs written before this migration have no heartbeat
    // (NULL) and count as lapsed. The index finds the running runs.
    statements: [
      `
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat_at bigint, ADD COLUMN IF NOT EXISTS alive_until bigint;
CREATE INDEX IF NOT EXISTS runs_running ON runs (status, alive_until);
`,
    ],
  },
  {
    version: 4,
    // One durable ledger write per sweep batch (docs/safety.md §10): see the SQLite store's
    // migration 4. Write-aheads of older reapers (`intent` journal rows) become one
    // pending batch per run and type, resolved by reading like any other (§11, §12). The
    // batch index on tombstones is partial: tombstones that never were in a batch stay out.
    statements: [
      `
CREATE TABLE IF NOT EXISTS reap_batches (
  batch_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id      text COLLATE "C" NOT NULL,
  resource    text COLLATE "C" NOT NULL,
  evidence    json,
  state       text NOT NULL CHECK (state IN ('pending', 'done')),
  created_at  bigint NOT NULL,
  finished_at bigint
);
CREATE INDEX IF NOT EXISTS reap_batches_pending ON reap_batches (resource, batch_id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS reap_batches_run ON reap_batches (run_id);
ALTER TABLE tombstones ADD COLUMN IF NOT EXISTS batch_id bigint;
CREATE INDEX IF NOT EXISTS tombstones_batch ON tombstones (batch_id) WHERE batch_id IS NOT NULL;
ALTER TABLE journal ADD COLUMN IF NOT EXISTS batch_id bigint;
INSERT INTO reap_batches (run_id, resource, evidence, state, created_at)
  SELECT run_id, resource, '{"upgraded":"intent journal entries of schema 3"}'::json, 'pending', MIN(at)
    FROM journal WHERE outcome = 'intent' GROUP BY run_id, resource ORDER BY MIN(journal_id);
UPDATE tombstones t SET batch_id = b.batch_id
  FROM journal j JOIN reap_batches b ON b.run_id = j.run_id AND b.resource = j.resource AND b.state = 'pending'
 WHERE j.tombstone_id = t.tombstone_id AND j.outcome = 'intent' AND t.state = 'deleting';
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
    // (Version 4 is the batch ledger's.)
    statements: [
      `
ALTER TABLE runs ADD COLUMN IF NOT EXISTS job text COLLATE "C", ADD COLUMN IF NOT EXISTS shard text COLLATE "C";
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started_at) WHERE job IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_claims (
  job      text COLLATE "C" NOT NULL,
  resource text COLLATE "C" NOT NULL,
  cap      bigint NOT NULL,
  claimed  bigint NOT NULL,
  PRIMARY KEY (job, resource)
);
CREATE TABLE IF NOT EXISTS job_claim_shards (
  job      text COLLATE "C" NOT NULL,
  resource text COLLATE "C" NOT NULL,
  shard    text COLLATE "C" NOT NULL,
  granted  bigint NOT NULL,
  PRIMARY KEY (job, resource, shard)
);
CREATE TABLE IF NOT EXISTS job_verdicts (
  job           text COLLATE "C" PRIMARY KEY,
  run_id        text COLLATE "C" NOT NULL,
  reasons       json NOT NULL,
  source_counts json NOT NULL,
  judged_at     bigint NOT NULL
);
`,
    ],
  },
  {
    version: 6,
    // SQLite's version 6 narrows its index of due tombstones to the marked ones (a state change
    // rewrote fewer index entries there); this store's layout is unchanged. Recorded so that
    // every store has one schema number.
    statements: [],
  },
  {
    version: 7,
    // A visible mark's confirmation (docs/safety.md §14): when `confirmMarks` recorded the
    // fingerprint the mark answered. A type with a visible mark sweeps only confirmed
    // tombstones. Those active at the upgrade were judged as confirmed by the reaper that
    // wrote them, and keep that standing (their mark time).
    statements: [
      `
ALTER TABLE tombstones ADD COLUMN IF NOT EXISTS mark_confirmed_at bigint;
UPDATE tombstones SET mark_confirmed_at = marked_at WHERE state IN ('marked', 'deleting') AND mark_confirmed_at IS NULL;
`,
    ],
  },
];
