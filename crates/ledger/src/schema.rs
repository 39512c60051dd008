//! Connection setup and the numbered schema migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::sql::Db;
use crate::{LedgerError, Location, Result};

/// Conventional file name of the ledger database.
pub const DEFAULT_FILE_NAME: &str = "costfloor.db";

/// How long a connection waits on a lock held by another connection before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order. Migration `i` (0-based) takes the file from `user_version = i` to
/// `user_version = i + 1`. Entries are only ever appended; a released entry never changes.
const MIGRATIONS: &[&str] = &[
    // 1: the request table.
    "CREATE TABLE requests (
        id                        INTEGER PRIMARY KEY,
        request_id                TEXT    NOT NULL UNIQUE,
        started_at_unix_ms        INTEGER NOT NULL,
        finished_at_unix_ms       INTEGER NOT NULL,
        client_key                TEXT,
        route                     TEXT    NOT NULL,
        backend                   TEXT    NOT NULL,
        model                     TEXT    NOT NULL,
        task                      TEXT,
        stream                    INTEGER NOT NULL CHECK (stream IN (0, 1)),
        input_tokens              INTEGER NOT NULL,
        cache_read_tokens         INTEGER NOT NULL,
        cache_write_tokens        INTEGER NOT NULL,
        output_tokens             INTEGER NOT NULL,
        ttft_us                   INTEGER,
        total_us                  INTEGER NOT NULL,
        overhead_us               INTEGER NOT NULL,
        http_status               INTEGER NOT NULL CHECK (http_status BETWEEN 0 AND 65535),
        outcome                   TEXT    NOT NULL CHECK (outcome IN
                                      ('success', 'upstream_error', 'client_error', 'client_disconnect')),
        error_kind                TEXT,
        fallback_chain            TEXT    NOT NULL,
        cost_nusd                 INTEGER NOT NULL,
        counterfactual_cost_nusd  INTEGER NOT NULL,
        estimated                 INTEGER NOT NULL CHECK (estimated IN (0, 1)),
        self_hosted               INTEGER NOT NULL CHECK (self_hosted IN (0, 1))
    ) STRICT;
    CREATE INDEX requests_started_at ON requests (started_at_unix_ms);
    CREATE INDEX requests_backend_started_at ON requests (backend, started_at_unix_ms);",
    // 2: what the client asked for, and 1-hour cache writes priced apart. Rows written
    // before it keep their meaning: `requested_model` is NULL (unknown), and their
    // `cache_write_tokens` counts writes of both lifetimes, priced as 5-minute ones.
    "ALTER TABLE requests ADD COLUMN requested_model TEXT;
    ALTER TABLE requests ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;",
    // 3: samples of each self-hosted backend's metrics endpoint, for utilisation. Every
    // series is optional: a server exports some of them, under the names of its version.
    "CREATE TABLE backend_samples (
        id                        INTEGER PRIMARY KEY,
        backend                   TEXT    NOT NULL,
        sampled_at_unix_ms        INTEGER NOT NULL,
        source                    TEXT    NOT NULL,
        requests_running          REAL,
        requests_waiting          REAL,
        kv_cache_usage            REAL,
        prompt_tokens_total       REAL,
        generation_tokens_total   REAL,
        decode_steps_total        REAL,
        gpu_util                  REAL,
        gpu_engine_active         REAL,
        gpus                      INTEGER
    ) STRICT;
    CREATE INDEX backend_samples_backend_at ON backend_samples (backend, sampled_at_unix_ms);",
    // 4: the gateway's own input estimate (about four characters a token, before any
    // calibration), so a report can measure how good its estimates are against the
    // backends' exact counts. NULL on older rows.
    "ALTER TABLE requests ADD COLUMN input_estimate INTEGER;",
    // 5: quality. `eval_runs` holds one offline evaluation each (its settings as the eval
    // crate wrote them, JSON), `eval_results` one answer per (run, sample, side) with its
    // score, usage and cost, so a killed run resumes without paying for a sample twice;
    // `shadow_pairs` one mirrored request each, its cost apart from the primary's row.
    "CREATE TABLE eval_runs (
        run_id              TEXT    PRIMARY KEY,
        created_at_unix_ms  INTEGER NOT NULL,
        settings            TEXT    NOT NULL,
        status              TEXT    NOT NULL
    ) STRICT;
    CREATE TABLE eval_results (
        run_id              TEXT    NOT NULL REFERENCES eval_runs (run_id),
        sample_id           TEXT    NOT NULL,
        side                TEXT    NOT NULL,
        task                TEXT    NOT NULL,
        backend             TEXT    NOT NULL,
        output              TEXT,
        correct             INTEGER,
        grade               REAL,
        detail              TEXT,
        error               TEXT,
        latency_us          INTEGER NOT NULL,
        input_tokens        INTEGER NOT NULL,
        cache_read_tokens   INTEGER NOT NULL,
        cache_write_tokens  INTEGER NOT NULL,
        output_tokens       INTEGER NOT NULL,
        cost_nusd           INTEGER NOT NULL,
        attempts            INTEGER NOT NULL,
        finished_at_unix_ms INTEGER NOT NULL,
        PRIMARY KEY (run_id, sample_id, side)
    ) STRICT;
    CREATE TABLE shadow_pairs (
        id                       INTEGER PRIMARY KEY,
        request_id               TEXT    NOT NULL,
        started_at_unix_ms       INTEGER NOT NULL,
        route                    TEXT    NOT NULL,
        task                     TEXT,
        primary_backend          TEXT    NOT NULL,
        shadow_backend           TEXT    NOT NULL,
        prompt                   TEXT,
        primary_output           TEXT,
        shadow_output            TEXT,
        primary_input_tokens     INTEGER NOT NULL,
        primary_output_tokens    INTEGER NOT NULL,
        shadow_input_tokens      INTEGER NOT NULL,
        shadow_output_tokens     INTEGER NOT NULL,
        shadow_cost_nusd         INTEGER NOT NULL,
        shadow_latency_us        INTEGER NOT NULL,
        shadow_error             TEXT
    ) STRICT;
    CREATE INDEX shadow_pairs_started_at ON shadow_pairs (started_at_unix_ms);",
    // 6: the gateway process that wrote each row (NULL on older rows), so that rows of
    // several replicas on one store can be told apart.
    "ALTER TABLE requests ADD COLUMN replica TEXT;",
];

/// The schema version this build writes and reads (`PRAGMA user_version` after migrating).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn known_version() -> i64 {
    i64::from(SCHEMA_VERSION)
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Opens (creating if needed) the ledger for writing: WAL, `synchronous = NORMAL`, busy timeout,
/// and all pending migrations applied.
pub(crate) fn open_rw(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Refuse a newer file before touching anything in it.
    check_not_newer(user_version(&conn)?)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::NotWal(mode));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn)?;
    Ok(conn)
}

/// A write connection of its own (samples, eval results, shadow pairs: off the request
/// queue) to either store, behind a mutex; a poisoned lock is taken over.
#[derive(Debug)]
pub(crate) struct WriteDb(std::sync::Mutex<Db>);

impl WriteDb {
    /// Opens (creating and migrating if needed) the ledger.
    pub(crate) fn open(location: &Location) -> Result<WriteDb> {
        let db = match location {
            Location::Sqlite(path) => Db::Sqlite(open_rw(path)?),
            Location::Postgres(url) => Db::Postgres(crate::pg::PgConn::open(url)?),
        };
        Ok(WriteDb(std::sync::Mutex::new(db)))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Db> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Opens an existing, fully migrated ledger read-only.
pub(crate) fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let found = user_version(&conn)?;
    check_not_newer(found)?;
    if found < known_version() {
        return Err(LedgerError::OlderSchema {
            found,
            known: known_version(),
        });
    }
    Ok(conn)
}

fn check_not_newer(found: i64) -> Result<()> {
    if found > known_version() {
        return Err(LedgerError::NewerSchema {
            found,
            known: known_version(),
        });
    }
    Ok(())
}

/// Applies every migration past the file's `user_version`, all in one immediate transaction so
/// that two processes opening the same new file cannot both migrate it.
fn migrate(conn: &Connection) -> Result<()> {
    if user_version(conn)? == known_version() {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let found = user_version(&tx)?;
    check_not_newer(found)?;
    let start = usize::try_from(found).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tracing::debug!(version = i + 1, "ledger migration applied");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_in_memory() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), known_version());
        migrate(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), known_version());
    }
}
