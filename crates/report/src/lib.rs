//! `costfloor report`: what the gateway's traffic cost over a period, what the same
//! traffic would have cost on the API, latency per backend and route, and the traffic's
//! shape, from the ledger.
//!
//! The ledger crate reads (one streaming [`ledger::LedgerReader::scan`]); [`tally`]
//! aggregates; [`fixed`] prices each self-hosted backend's deployment through
//! `costfloor_core::cost::selfhost_cost`, the function `plan` uses, so a report never
//! prices differently from a plan. API spend and counterfactuals are the ledger's own
//! integer nano-USD, priced per request by the gateway through the same rate card.
//! The JSON form of [`Report`] is documented in docs/report.md.

mod error;
mod figures;
pub mod fixed;
pub mod observed;
pub mod period;
pub mod review;
pub mod tally;

use costfloor_core::catalog::Catalog;
use costfloor_core::money::Money;
use ledger::{LedgerReader, ReportFilter};

pub use error::ReportError;
pub use figures::*;
pub use fixed::BackendDeployment;
pub use observed::Observed;

use crate::fixed::FixedCost;
use crate::period::MS_PER_HOUR;
use crate::tally::Tally;

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportRequest<'a> {
    /// Earliest start time included (Unix ms); `None`: from the first row.
    pub since_unix_ms: Option<i64>,
    /// Start time from which rows are left out (Unix ms); `None`: now.
    pub until_unix_ms: Option<i64>,
    /// The time of the report (Unix ms).
    pub now_unix_ms: i64,
    /// Prices and deployments.
    pub catalog: &'a Catalog,
    /// Each self-hosted backend's catalog deployment, from the gateway config; `None`
    /// when there is no config, so fixed costs are unknown.
    pub deployments: Option<&'a [BackendDeployment]>,
}

/// Builds the report: resolves the period, prices the deployments, scans the rows once.
pub fn build(reader: &LedgerReader, request: &ReportRequest<'_>) -> Result<Report, ReportError> {
    build_with_observed(reader, request).map(|(report, _)| report)
}

/// [`build`], keeping what the same pass gathered for the review and utilisation.
pub fn build_with_observed(
    reader: &LedgerReader,
    request: &ReportRequest<'_>,
) -> Result<(Report, Observed), ReportError> {
    let until = request.until_unix_ms.unwrap_or(request.now_unix_ms);
    let since = match request.since_unix_ms {
        Some(since) => Some(since),
        None => reader
            .time_span(&ReportFilter {
                since_unix_ms: None,
                until_unix_ms: Some(until),
            })?
            .map(|span| span.first_unix_ms),
    };
    if let Some(since) = since {
        if since >= until {
            return Err(ReportError::BadPeriod {
                since: period::format_utc(since),
                until: period::format_utc(until),
            });
        }
    }
    let since = since.unwrap_or(until);
    let filter = ReportFilter {
        since_unix_ms: Some(since),
        until_unix_ms: Some(until),
    };
    let period_ms = until - since;
    let fixed = match request.deployments {
        Some(deployments) => Some(fixed::fixed_costs(request.catalog, deployments, period_ms)?),
        None => None,
    };
    let mut tally = Tally::default();
    let mut observed = Observed::default();
    reader.scan(&filter, |row| {
        tally.add(row);
        observed.add(row);
    })?;
    let ledger_span = if tally.all.requests == 0 {
        reader.time_span(&ReportFilter::default())?
    } else {
        None
    };
    let month_ms = fixed::month_ms(request.catalog);
    let report = figures::report(Inputs {
        since,
        until,
        month_ms,
        tally: &tally,
        fixed: fixed.as_deref(),
        ledger_span,
    })?;
    Ok((report, observed))
}

/// What [`figures::report`] turns into a [`Report`].
struct Inputs<'a> {
    since: i64,
    until: i64,
    month_ms: i64,
    tally: &'a Tally,
    fixed: Option<&'a [FixedCost]>,
    /// The whole ledger's span, looked up only when the period holds no row.
    ledger_span: Option<ledger::TimeSpan>,
}

/// Nano-USD as [`Money`].
fn nano(nusd: i128) -> Money {
    Money::from_pico_usd(nusd * 1000)
}

/// Hours the period touches, whole hours from the one it starts in to the one it ends in.
fn hours_spanned(since: i64, until: i64) -> i64 {
    let first = since.div_euclid(MS_PER_HOUR);
    let end = (until + MS_PER_HOUR - 1).div_euclid(MS_PER_HOUR);
    (end - first).max(0)
}
