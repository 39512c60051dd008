//! Quality on your own samples (`costfloor eval`): the dataset, the scorers, the
//! statistics, the runner that sends each sample to a candidate and a baseline backend
//! through the gateway's own backend code, the report, the recommended routing policy,
//! and the scoring of the shadow pairs `serve` stores.
//!
//! It must not write SQL (results are stored through `ledger`) or build vendor JSON
//! (requests and answers go through `wire`).
//!
//! - [`dataset`]: the JSONL samples and the eval TOML, checked line by line.
//! - [`scorer`]: the built-in scorers.
//! - [`stats`]: Wilson, McNemar, Newcombe's paired interval, the bootstrap, power.
//! - [`run`]: the runner (concurrency, rate, back-off, cost cap, resume).
//! - [`judge`]: the judge's prompts and verdicts.
//! - [`summary`]: the report of a run.
//! - [`policy`]: the report as `[[route]]` entries.
//! - [`shadow`]: the stored shadow pairs scored.

pub mod dataset;
pub mod judge;
pub mod policy;
pub mod rng;
pub mod run;
pub mod scorer;
pub mod shadow;
pub mod stats;
pub mod summary;

/// What can go wrong in eval.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Bad input the user must fix (exit code 2).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EvalError {
    pub fn is_input(&self) -> bool {
        matches!(self, EvalError::Input(_))
    }
}
