//! Errors returned by the ledger.

/// Everything that can go wrong opening, writing or reading the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An error from SQLite.
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// An error from PostgreSQL (connecting, a statement, or the connection dropping).
    #[error("ledger database error: {0}")]
    Postgres(#[from] postgres::Error),

    /// PostgreSQL cannot be reached now (the connection failed or dropped); the detail
    /// names the host and port, never the password.
    #[error("ledger database unavailable: {0}")]
    Unavailable(String),

    /// A column held a value of another type than this build reads (or NULL where a
    /// value is required): the store was written by something else.
    #[error("ledger column {column}: {detail}")]
    Decode {
        /// The column's position in the statement.
        column: usize,
        /// What was found.
        detail: String,
    },

    /// The ledger location is neither a file path nor a `postgres://` URL that parses.
    #[error("ledger location {location:?}: {detail}")]
    Location {
        /// The location as given, its password hidden.
        location: String,
        /// What is wrong and what is allowed.
        detail: String,
    },

    /// The spill file (rows kept while PostgreSQL is unreachable) could not be used.
    #[error("ledger spill file {path}: {source}")]
    Spill {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A key with that name or secret already exists.
    #[error("{0}")]
    Conflict(String),

    /// The file was written by a newer costfloor whose schema this build does not know.
    #[error(
        "ledger schema version {found} is newer than this build supports ({known}); upgrade costfloor"
    )]
    NewerSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Latest schema version this build knows.
        known: i64,
    },

    /// A read-only open found a file whose schema is older than this build (or is not a ledger
    /// at all). Opening it once with [`crate::Ledger::open`] migrates it.
    #[error(
        "ledger schema version {found} is older than this build expects ({known}); open it with the gateway once to migrate it"
    )]
    OlderSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Latest schema version this build knows.
        known: i64,
    },

    /// SQLite refused to switch the file to WAL mode (for example an in-memory database).
    #[error("ledger could not enable WAL journal mode (journal_mode is {0:?})")]
    NotWal(String),

    /// A [`crate::LedgerOptions`] value is unusable.
    #[error("invalid ledger options: {0}")]
    InvalidOptions(&'static str),

    /// The writer thread or its runtime could not be started.
    #[error("could not start the ledger writer: {0}")]
    Spawn(#[source] std::io::Error),

    /// The writer thread panicked; rows still queued in it were lost.
    #[error("the ledger writer thread panicked")]
    WriterPanicked,
}
