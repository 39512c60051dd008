//! The request ledger: one row per gateway request, in a SQLite file or a PostgreSQL
//! database, written in batches by a single writer thread.
//!
//! This crate is the only place in costfloor that writes SQL. A [`Location`] names the
//! store; everything below works on both, and every reading statement is written once
//! for both (`sql`). It has these parts:
//!
//! * **Writing** — [`Ledger::open`] opens (creating and migrating if needed) the store and
//!   starts a dedicated OS thread, the [`LedgerWriter`], that owns the only write connection. Request
//!   handlers hand finished [`LedgerRow`]s to a cheap, cloneable [`LedgerHandle`], which puts them on a
//!   bounded queue. The writer commits them in batches, one transaction per batch.
//! * **Reading** — [`LedgerReader`] opens the same file read-only and answers the questions the
//!   `report` command asks: per-group sums ([`LedgerReader::summary`]), latency samples
//!   ([`LedgerReader::latencies_us`], [`LedgerReader::ttft_us`]), counts and raw rows, and a
//!   streaming [`LedgerReader::scan`] of the columns a report aggregates, with
//!   [`LedgerReader::time_span`] for its period.
//! * **Backend samples** — [`SampleStore`] writes the gateway's samples of self-hosted
//!   backends' metrics endpoints, [`read_samples`] reads them back for utilisation.
//! * **Quality** — [`EvalStore`] keeps offline evaluation runs and every answer they paid
//!   for; [`ShadowStore`] the gateway's shadow pairs, [`read_shadow_pairs`] reads them back.
//! * **Keys** — [`KeyStore`] (PostgreSQL only): client keys by digest and their monthly
//!   spend, reserved and settled atomically so that replicas share one budget.
//!
//! # Units
//!
//! Money is integer **nano-USD** (`i64`, 1 USD = 1\_000\_000\_000 nUSD), never floating point.
//! Durations are integer **microseconds**; wall-clock timestamps are integer Unix **milliseconds**.
//!
//! # Storage
//!
//! **PostgreSQL**: batches are one multi-row insert each, `ON CONFLICT (request_id,
//! started_at_unix_ms) DO NOTHING`, so several replicas share a database, a batch sent
//! twice lands once, and `requests` may be partitioned by month (docs/deploy.md).
//! Migrations run under an advisory lock (`pg`). While the database cannot be reached,
//! rows wait in memory up to [`LedgerOptions::backlog_max`], then in a spill file, and are
//! written when it returns (`pg_writer`); the metrics in [`metric_names`] show each step.
//!
//! **SQLite**: the file (conventionally [`DEFAULT_FILE_NAME`]) is opened in WAL mode with
//! `synchronous = NORMAL` and a busy timeout, so readers never block the writer. A commit in this
//! mode survives a process crash; the last few commits may be lost on power failure, which is the
//! accepted trade-off for a cost ledger. The schema is managed by numbered migrations tracked
//! with `PRAGMA user_version` (the current one is [`SCHEMA_VERSION`]); opening a file written by a newer
//! costfloor fails with [`LedgerError::NewerSchema`] rather than guessing.
//!
//! # Shutdown
//!
//! A gateway shuts down in this order:
//!
//! 1. stop accepting new connections;
//! 2. let in-flight requests finish — they still call [`LedgerHandle::record`];
//! 3. call [`LedgerHandle::close`] (or drop every handle);
//! 4. await [`LedgerWriter::closed`] (or call [`LedgerWriter::join`] from a non-async context),
//!    which returns once every queued row is committed and the connection is closed.
//!
//! Rows that cannot be written — recorded after the close, or failing even after retries — are
//! never dropped silently: each is logged at `error` level with its request id and counted in the
//! `costfloor_ledger_rows_lost_total` counter (see [`metric_names`]).

mod error;
mod key_store;
mod location;
mod pg;
mod pg_writer;
mod quality;
mod reader;
mod row;
mod samples;
mod schema;
mod spill;
mod sql;
#[cfg(feature = "testing")]
#[allow(clippy::panic)]
pub mod testing;
mod writer;

pub use error::LedgerError;
pub use key_store::{KeyChange, KeyRecord, KeyStore, MonthSpend};
pub use location::Location;
pub use pg::PG_SCHEMA_VERSION;
pub use quality::{read_shadow_pairs, EvalResult, EvalRun, EvalStore, ShadowPair, ShadowStore};
pub use reader::{GroupSummary, LedgerReader, ReportFilter, ScanRow, TimeSpan};
pub use row::{LedgerRow, Outcome, UnknownOutcome};
pub use samples::{read_samples, BackendSample, SampleStore};
pub use schema::{DEFAULT_FILE_NAME, SCHEMA_VERSION};
pub use writer::{Ledger, LedgerHandle, LedgerOptions, LedgerWriter, WriterReport};

/// Result type of this crate.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Names of the metrics this crate emits through the `metrics` facade.
pub mod metric_names {
    /// Counter: rows committed to the ledger file.
    pub const ROWS_WRITTEN: &str = "costfloor_ledger_rows_written_total";
    /// Counter: rows that were handed to the ledger but will never be written (writer gone,
    /// ledger closed, or the write failed after retries). Each one is also logged.
    pub const ROWS_LOST: &str = "costfloor_ledger_rows_lost_total";
    /// Gauge: rows waiting in the queue between request handlers and the writer.
    pub const QUEUE_DEPTH: &str = "costfloor_ledger_queue_depth";
    /// Gauge (PostgreSQL): 1 while the database takes writes, 0 while it cannot be reached.
    pub const STORE_UP: &str = "costfloor_ledger_store_up";
    /// Gauge (PostgreSQL): rows kept in memory while the database cannot be reached.
    pub const BACKLOG_ROWS: &str = "costfloor_ledger_backlog_rows";
    /// Gauge (PostgreSQL): rows in the spill file, waiting for the database.
    pub const SPOOL_ROWS: &str = "costfloor_ledger_spool_rows";
    /// Counter (PostgreSQL): rows written to the spill file.
    pub const ROWS_SPOOLED: &str = "costfloor_ledger_rows_spooled_total";
    /// Counter (PostgreSQL): rows written to the database after waiting for it (from
    /// memory or the spill file).
    pub const ROWS_REPLAYED: &str = "costfloor_ledger_rows_replayed_total";

    /// Registers descriptions for the ledger metrics with the installed recorder.
    ///
    /// Optional; call it once after installing a recorder (for example a Prometheus exporter).
    pub fn describe() {
        metrics::describe_counter!(ROWS_WRITTEN, "Ledger rows committed to the store.");
        metrics::describe_counter!(
            ROWS_LOST,
            "Ledger rows that could not be written (writer gone, ledger closed, or write failed after retries)."
        );
        metrics::describe_gauge!(QUEUE_DEPTH, "Ledger rows queued for the writer thread.");
        metrics::describe_gauge!(
            STORE_UP,
            "1 while the ledger database takes writes, 0 while it cannot be reached."
        );
        metrics::describe_gauge!(
            BACKLOG_ROWS,
            "Ledger rows kept in memory while the database cannot be reached."
        );
        metrics::describe_gauge!(
            SPOOL_ROWS,
            "Ledger rows in the spill file, waiting for the database."
        );
        metrics::describe_counter!(
            ROWS_SPOOLED,
            "Ledger rows written to the spill file while the database could not be reached."
        );
        metrics::describe_counter!(
            ROWS_REPLAYED,
            "Ledger rows written to the database after waiting for it."
        );
    }
}
