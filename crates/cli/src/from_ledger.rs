//! `costfloor workload from-ledger`: the workload the gateway observed, from its ledger,
//! written as the workload file `plan --workload` reads (atomically). The period flags
//! (`--since 30d`, `--until 2026-11-01`) are parsed here for every command that reads
//! the ledger.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use costfloor_core::observed::{observed_workload, ObservedTask, ObservedTraffic};
use costfloor_core::usage_export::parse_rfc3339;

use crate::commands::{input_failure, load_catalog, CatalogFlag};
use crate::output;

#[derive(Args, Debug)]
pub struct FromLedgerArgs {
    /// The gateway's ledger (SQLite file, `server.ledger`).
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Start of the period: `30d`, `12h` (ago), a date (`2026-11-01`, UTC) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// End of the period (exclusive), in the same forms; default now.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Write the workload here (default: stdout, with the notes as comments).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogFlag,
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A point in time from `--since`/`--until`: `N` days or hours before `now`, a date
/// (midnight UTC) or an RFC 3339 time.
pub fn parse_when(flag: &str, value: &str, now_unix_ms: i64) -> Result<i64> {
    let invalid = || {
        input_failure(format!(
            "{flag} = {value:?} is not allowed: expected a duration before now (`30d`, `12h`), \
             a date (`2026-11-01`) or an RFC 3339 time (`2026-11-01T09:00:00Z`)"
        ))
    };
    let value = value.trim();
    for (suffix, unit_ms) in [("d", 86_400_000_i64), ("h", 3_600_000)] {
        if let Some(number) = value.strip_suffix(suffix) {
            let n: i64 = number.parse().map_err(|_| invalid())?;
            if n < 0 {
                return Err(invalid());
            }
            return Ok(now_unix_ms - n.saturating_mul(unit_ms));
        }
    }
    let text = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else {
        value.to_string()
    };
    parse_rfc3339(&text)
        .map(|seconds| seconds.saturating_mul(1000))
        .ok_or_else(invalid)
}

/// The ledger filter of `--since`/`--until`.
pub fn period(since: Option<&str>, until: Option<&str>) -> Result<ledger::ReportFilter> {
    let now = now_unix_ms();
    let since_unix_ms = since.map(|v| parse_when("--since", v, now)).transpose()?;
    let until_unix_ms = until.map(|v| parse_when("--until", v, now)).transpose()?;
    if let (Some(since), Some(until)) = (since_unix_ms, until_unix_ms) {
        if since >= until {
            return Err(input_failure(
                "--since is not before --until: expected a period that ends after it starts",
            ));
        }
    }
    Ok(ledger::ReportFilter {
        since_unix_ms,
        until_unix_ms,
    })
}

/// The observed traffic of the ledger at `db` in `filter`. The period is the one given;
/// an open side ends at the first or last request (at least one minute).
pub fn observed_traffic(
    db: &std::path::Path,
    filter: &ledger::ReportFilter,
) -> Result<ObservedTraffic> {
    if !db.exists() {
        return Err(input_failure(format!(
            "--db {}: no such file: expected the gateway's ledger (server.ledger)",
            db.display()
        )));
    }
    let totals = ledger::traffic_totals(db, filter)
        .map_err(|e| input_failure(format!("--db {}: {e}", db.display())))?;
    let start = filter.since_unix_ms.or(totals.first_unix_ms).unwrap_or(0);
    let end = filter
        .until_unix_ms
        .or(totals.last_unix_ms)
        .unwrap_or(start);
    let period_ms = (end - start).max(60_000);
    Ok(ObservedTraffic {
        period_hours: period_ms as f64 / 3_600_000.0,
        calls: totals.calls,
        estimated_calls: totals.estimated_calls,
        input_tokens: totals.input_tokens,
        cache_read_tokens: totals.cache_read_tokens,
        cache_write_tokens: totals.cache_write_tokens,
        cache_write_1h_tokens: totals.cache_write_1h_tokens,
        output_tokens: totals.output_tokens,
        p99_prompt_tokens: totals.p99_prompt_tokens,
        calls_by_hour_of_day: totals.calls_by_hour_of_day,
        busiest_hour_calls: totals.busiest_hour_calls,
        tasks: totals
            .tasks
            .into_iter()
            .map(|t| ObservedTask {
                task: t.task,
                calls: t.calls,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
            })
            .collect(),
    })
}

pub fn from_ledger(args: FromLedgerArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    let filter = period(args.since.as_deref(), args.until.as_deref())?;
    let traffic = observed_traffic(&args.db, &filter)?;
    let observed = observed_workload(&traffic, &catalog.assumptions).map_err(input_failure)?;
    let body = toml::to_string(&observed.file)?;
    let mut text = format!(
        "# The workload observed in {}, for `costfloor plan --workload`.\n",
        args.db.display()
    );
    for note in &observed.notes {
        text.push_str(&format!("# - {note}\n"));
    }
    text.push('\n');
    text.push_str(&body);
    match &args.out {
        Some(path) => {
            crate::from_usage::write_atomically(path, &text)
                .map_err(|err| input_failure(format!("cannot write {}: {err}", path.display())))?;
            output::print_text(&format!("Workload written to {}\n", path.display()))?;
            for note in &observed.notes {
                output::print_text(&format!("- {note}\n"))?;
            }
            output::print_text(&format!(
                "Next: costfloor plan --workload {}\n",
                path.display()
            ))
        }
        None => output::print_text(&text),
    }
}
