//! What can go wrong building a report: bad flags, an unreadable ledger, a catalog that
//! cannot price a backend's deployment.

use costfloor_core::error::{CatalogError, CostError};

/// Everything `report` can fail on. [`ReportError::is_input`] tells the user's mistakes
/// (exit code 2) from the rest.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A `--since` or `--until` value that is not a date, a time or a span.
    #[error(
        "{flag} {value:?} is not allowed: expected a date (YYYY-MM-DD, UTC midnight), a time \
         (YYYY-MM-DDTHH:MM:SSZ) or a span back from now (e.g. 30d, 12h)"
    )]
    BadTime {
        /// The flag, e.g. `--since`.
        flag: &'static str,
        /// The text given.
        value: String,
    },

    /// `--since` is not before `--until`.
    #[error(
        "--since {since} is not before --until {until} (--until defaults to now): the period \
         would be empty; give a start before the end"
    )]
    BadPeriod {
        /// The start, as given.
        since: String,
        /// The end, as given.
        until: String,
    },

    /// A backend names a deployment the catalog does not have.
    #[error("backend `{backend}`.deployment: {source}")]
    UnknownDeployment {
        /// The gateway backend.
        backend: String,
        /// The catalog's answer, with close matches (boxed: it is large).
        source: Box<CatalogError>,
    },

    /// The catalog cannot price a deployment (e.g. owned hardware without a purchase price).
    #[error("backend `{backend}`: {source}")]
    Cost {
        /// The gateway backend.
        backend: String,
        /// Why the cost core refused.
        source: Box<CostError>,
    },

    /// A sum that does not fit in 64-bit nano-USD or tokens.
    #[error("the {what} over this period overflows a 64-bit integer")]
    Overflow {
        /// Which figure.
        what: &'static str,
    },

    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),

    /// The observed workload or its plan was refused by the cost core (e.g. a period
    /// without an answered request).
    #[error(transparent)]
    Plan(#[from] Box<costfloor_core::error::InputError>),
}

impl ReportError {
    /// Whether the user can fix this by changing a flag or a file.
    pub fn is_input(&self) -> bool {
        !matches!(self, ReportError::Ledger(_) | ReportError::Overflow { .. })
    }
}
