/**
 * MySQL / MariaDB schema, as numbered migrations held in TypeScript. MySQL commits
 * every DDL statement on its own, so a migration cannot be one transaction: each
 * statement is written to be re-runnable (`IF NOT EXISTS`), and the version is recorded
 * after the last one, so a migration cut short is simply applied again.
 *
 * Column choices:
 * - Times are BIGINT milliseconds since the epoch from the server's UTC_TIMESTAMP(3):
 *   the API speaks ms exactly like the SQLite store, and no session time zone can shift
 *   a value (DATETIME/TIMESTAMP would depend on one).
 * - Every string that identifies something — lease ids, owner keys, holders, run ids,
 *   resource types, resource ids, phases, cursors — is VARBINARY or BLOB holding its
 *   UTF-8 bytes. Binary strings compare byte for byte and never pad: with a text
 *   collation, "Key" = "key" (`_ci`) or "key" = "key " (PAD SPACE, which even
 *   utf8mb4_bin has), and NFC/NFD spellings may compare equal;
 *   any of those would let one owner's lease keep another's resources alive or hide a
 *   tombstone. Free text (fingerprints, reasons, notes, JSON) is utf8mb4.
 * - MySQL has no partial indexes. "At most one active tombstone per resource" is a
 *   unique index over (resource, active_id_hash), a stored generated column that holds
 *   SHA-256 of the resource id while the tombstone is marked or deleting and NULL
 *   otherwise (a unique index admits any number of NULLs). Hashing also keeps 1 kB+
 *   S3 keys and long paths inside InnoDB's 3072-byte index limit; queries compare the
 *   id itself as well.
 */
import type { Migration } from '../core.js';

export const MYSQL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      // Lease indexes, sized for a million leases:
      // * the primary key serves every call by id (renew, renewLeases' IN list, release,
      //   get, token checks): one probe per id;
      // * (key, expires_at) serves liveKeys / keysActiveSince / listLeases by key: one
      //   probe per asked key and a short range from expires_at > now, skipping the
      //   expired history of busy keys;
      // * (expires_at) serves countLiveKeys and listLeases over all keys (the range above
      //   now holds only live leases: a release moves expires_at to the release time)
      //   and pruneLeases (the range below its cutoff).
      // A renewal moves expires_at and so rewrites both expiry index entries; that is
      // the price of answering liveness without scanning, and why there are no more.
      // (Migration 2 replaces both expiry indexes with one on `key`: renewals stay off the indexes.)
      `CREATE TABLE IF NOT EXISTS leases (
        lease_id     VARBINARY(64) NOT NULL,
        \`key\`      VARBINARY(2048) NOT NULL,
        holder       VARBINARY(1024) NOT NULL,
        token_hash   CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        generation   BIGINT NOT NULL,
        ttl_ms       BIGINT NOT NULL,
        acquired_at  BIGINT NOT NULL,
        renewed_at   BIGINT NOT NULL,
        expires_at   BIGINT NOT NULL,
        released_at  BIGINT NULL,
        renewal_mark BINARY(16) NULL COMMENT 'which renewLeases call last renewed this lease (read back in the same transaction)',
        PRIMARY KEY (lease_id),
        KEY leases_key_expires (\`key\`, expires_at),
        KEY leases_expires (expires_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      // Fencing numbers outlive pruned leases: one row per key ever leased.
      `CREATE TABLE IF NOT EXISTS lease_generations (
        \`key\`    VARBINARY(2048) NOT NULL,
        generation BIGINT NOT NULL,
        PRIMARY KEY (\`key\`)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS lease_renewal_stats (
        bucket BIGINT NOT NULL,
        ok     BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS runs (
        run_id          VARBINARY(64) NOT NULL,
        kind            VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        status          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        started_at      BIGINT NOT NULL,
        finished_at     BIGINT NULL,
        manifest_digest VARBINARY(255) NOT NULL,
        \`execute\`     TINYINT(1) NOT NULL,
        summary         LONGTEXT NULL,
        source_counts   LONGTEXT NULL,
        error           MEDIUMTEXT NULL,
        PRIMARY KEY (run_id),
        KEY runs_started (started_at),
        KEY runs_finished (finished_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS checkpoints (
        run_id     VARBINARY(64) NOT NULL,
        resource   VARBINARY(255) NOT NULL,
        phase      VARBINARY(255) NOT NULL,
        \`cursor\` LONGBLOB NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (run_id, resource, phase)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS resource_locks (
        resource   VARBINARY(255) NOT NULL,
        run_id     VARBINARY(64) NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (resource)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS tombstones (
        tombstone_id     BIGINT NOT NULL AUTO_INCREMENT,
        resource         VARBINARY(255) NOT NULL,
        resource_id      BLOB NOT NULL,
        resource_id_hash BINARY(32) AS (UNHEX(SHA2(resource_id, 256))) STORED,
        active_id_hash   BINARY(32) AS (IF(state IN ('marked', 'deleting'), UNHEX(SHA2(resource_id, 256)), NULL)) STORED,
        fingerprint      TEXT NOT NULL,
        owner            BLOB NULL,
        owner_value      BLOB NULL,
        reason           TEXT NOT NULL,
        bytes            BIGINT NULL,
        marked_run_id    VARBINARY(64) NOT NULL,
        marked_at        BIGINT NOT NULL,
        state            VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        updated_at       BIGINT NOT NULL,
        outcome_run_id   VARBINARY(64) NULL,
        note             MEDIUMTEXT NULL,
        restore_handle   TEXT NULL,
        PRIMARY KEY (tombstone_id),
        UNIQUE KEY tombstones_active (resource, active_id_hash),
        KEY tombstones_resource_id (resource, resource_id_hash),
        KEY tombstones_due (resource, state, tombstone_id),
        KEY tombstones_marked_run (marked_run_id),
        KEY tombstones_outcome_run (outcome_run_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS journal (
        journal_id   BIGINT NOT NULL AUTO_INCREMENT,
        run_id       VARBINARY(64) NOT NULL,
        tombstone_id BIGINT NOT NULL,
        resource     VARBINARY(255) NOT NULL,
        resource_id  BLOB NOT NULL,
        fingerprint  TEXT NOT NULL,
        owner        BLOB NULL,
        reason       TEXT NOT NULL,
        bytes        BIGINT NULL,
        evidence     LONGTEXT NULL,
        outcome      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        error        MEDIUMTEXT NULL,
        at           BIGINT NOT NULL,
        PRIMARY KEY (journal_id),
        KEY journal_run (run_id, journal_id),
        KEY journal_pending (resource, outcome, journal_id),
        KEY journal_tombstone (tombstone_id),
        CONSTRAINT journal_tombstone_fk FOREIGN KEY (tombstone_id) REFERENCES tombstones (tombstone_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    version: 2,
    statements: [
      // A renewal rewrites expires_at; while it was indexed, InnoDB delete-marked and
      // re-inserted both expiry index entries on every renewal of every lease. Key lookups
      // (liveKeys, keysActiveSince, listLeases by key) probe (key) and check that key's
      // leases; questions over all leases read the table, as leaseStats already did.
      // One ALTER, skipped when its index is already there (a migration cut short
      // after the ALTER committed is applied again).
      {
        unless: `SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'leases' AND index_name = 'leases_key'`,
        sql: 'ALTER TABLE leases ADD INDEX leases_key (`key`), DROP INDEX leases_key_expires, DROP INDEX leases_expires',
      },
    ],
  },
  {
    version: 3,
    statements: [
      // Run heartbeats: a run killed -9 cannot record its end, so it says it is alive instead
      // (heartbeat_at, and alive_until = heartbeat + ttl), and a later run records a running
      // run past its alive_until as abandoned. Runs written before this migration have no
      // heartbeat (NULL) and count as lapsed. The index finds the running runs. One ALTER,
      // skipped when its column is already there.
      {
        unless: `SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'runs' AND column_name = 'alive_until'`,
        sql: 'ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT NULL, ADD COLUMN alive_until BIGINT NULL, ADD INDEX runs_running (status, alive_until)',
      },
    ],
  },
  {
    version: 4,
    statements: [
      // One durable ledger write per sweep batch (docs/safety.md §10): see the SQLite
      // store's migration 4. DDL commits on its own here, so each step is skipped when it
      // is already done (a migration cut short is applied again), and the conversion of
      // older write-aheads (`intent` journal rows: one pending batch per run and type,
      // resolved by reading like any other, §11, §12) runs once, in the last step.
      `CREATE TABLE IF NOT EXISTS reap_batches (
        batch_id    BIGINT NOT NULL AUTO_INCREMENT,
        run_id      VARBINARY(64) NOT NULL,
        resource    VARBINARY(255) NOT NULL,
        evidence    LONGTEXT NULL,
        state       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        created_at  BIGINT NOT NULL,
        finished_at BIGINT NULL,
        PRIMARY KEY (batch_id),
        KEY reap_batches_pending (resource, state, batch_id),
        KEY reap_batches_run (run_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      {
        unless: `SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'tombstones' AND column_name = 'batch_id'`,
        sql: 'ALTER TABLE tombstones ADD COLUMN batch_id BIGINT NULL, ADD INDEX tombstones_batch (batch_id)',
      },
      {
        unless: `SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'journal' AND column_name = 'batch_id'`,
        sql: `ALTER TABLE journal ADD COLUMN batch_id BIGINT NULL`,
      },
      `INSERT INTO reap_batches (run_id, resource, evidence, state, created_at)
        SELECT j.run_id, j.resource, '{"upgraded":"intent journal entries of schema 3"}', 'pending', MIN(j.at)
          FROM journal j WHERE j.outcome = 'intent'
           AND NOT EXISTS (SELECT 1 FROM reap_batches b WHERE b.run_id = j.run_id AND b.resource = j.resource AND b.state = 'pending')
         GROUP BY j.run_id, j.resource ORDER BY MIN(j.journal_id)`,
      `UPDATE tombstones t JOIN journal j ON j.tombstone_id = t.tombstone_id AND j.outcome = 'intent'
         JOIN reap_batches b ON b.run_id = j.run_id AND b.resource = j.resource AND b.state = 'pending'
          SET t.batch_id = b.batch_id WHERE t.state = 'deleting'`,
      `DELETE FROM journal WHERE outcome = 'intent'`,
    ],
  },
  {
    version: 5,
    statements: [
      // Jobs of shards (docs/scale-out.md): a run's job and shard as columns, so `runs --job`
      // and a shard's rerun find the job's runs while they are still going or after they
      // were killed; the job-wide delete claims (job_claims: what the job has claimed per
      // type, and job_claim_shards: what each shard holds of it); and the job's one breaker
      // verdict. (Version 4 is the batch ledger's.) The ALTER is skipped when its column is
      // already there; the tables are created if missing.
      {
        unless: `SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'runs' AND column_name = 'job'`,
        sql: 'ALTER TABLE runs ADD COLUMN job VARBINARY(128) NULL, ADD COLUMN shard VARBINARY(16) NULL, ADD INDEX runs_job (job, started_at)',
      },
      `CREATE TABLE IF NOT EXISTS job_claims (
        job      VARBINARY(128) NOT NULL,
        resource VARBINARY(255) NOT NULL,
        cap      BIGINT NOT NULL,
        claimed  BIGINT NOT NULL,
        PRIMARY KEY (job, resource)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS job_claim_shards (
        job      VARBINARY(128) NOT NULL,
        resource VARBINARY(255) NOT NULL,
        shard    VARBINARY(16) NOT NULL,
        granted  BIGINT NOT NULL,
        PRIMARY KEY (job, resource, shard)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS job_verdicts (
        job           VARBINARY(128) NOT NULL,
        run_id        VARBINARY(64) NOT NULL,
        reasons       LONGTEXT NOT NULL,
        source_counts LONGTEXT NOT NULL,
        judged_at     BIGINT NOT NULL,
        PRIMARY KEY (job)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
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
      {
        unless: `SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'tombstones' AND column_name = 'mark_confirmed_at'`,
        sql: 'ALTER TABLE tombstones ADD COLUMN mark_confirmed_at BIGINT NULL',
      },
      `UPDATE tombstones SET mark_confirmed_at = marked_at WHERE state IN ('marked', 'deleting') AND mark_confirmed_at IS NULL`,
    ],
  },
];
