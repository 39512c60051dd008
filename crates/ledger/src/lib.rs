//! The request ledger: one SQLite row per gateway request, written in batches by a single writer thread.
//!
//! This crate is the only place in costfloor that writes SQL. It has two halves:
//!
//! * **Writing** — [`Ledger::open`] opens (creating and migrating if needed) the SQLite file and
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
//!
//! # Units
//!
//! Money is integer **nano-USD** (`i64`, 1 USD = 1\_000\_000\_000 nUSD), never floating point.
//! Durations are integer **microseconds**; wall-clock timestamps are integer Unix **milliseconds**.
//!
//! # Storage
//!
//! The file (conventionally [`DEFAULT_FILE_NAME`]) is opened in WAL mode with
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
mod quality;
mod reader;
mod row;
mod samples;
mod schema;
mod writer;

pub use error::LedgerError;
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

    /// Registers descriptions for the ledger metrics with the installed recorder.
    ///
    /// Optional; call it once after installing a recorder (for example a Prometheus exporter).
    pub fn describe() {
        metrics::describe_counter!(ROWS_WRITTEN, "Ledger rows committed to the SQLite file.");
        metrics::describe_counter!(
            ROWS_LOST,
            "Ledger rows that could not be written (writer gone, ledger closed, or write failed after retries)."
        );
        metrics::describe_gauge!(QUEUE_DEPTH, "Ledger rows queued for the writer thread.");
    }
}
