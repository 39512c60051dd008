//! `costfloor workload from-ledger`: the workload the gateway observed, from its ledger
//! (`report::review::observed_traffic`, the extraction the review uses), written as the
//! workload file `plan --workload` reads (atomically).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use costfloor_core::observed::observed_workload;

use crate::commands::{input_failure, load_catalog, now_unix_ms, write_atomically, CatalogFlag};
use crate::output;

#[derive(Args, Debug)]
pub struct FromLedgerArgs {
    /// The gateway's ledger (`server.ledger`): a SQLite file or a postgres:// URL.
    #[arg(long, value_name = "FILE|URL")]
    db: String,
    /// Start of the period: YYYY-MM-DD (UTC), YYYY-MM-DDTHH:MM:SSZ, or a span back from
    /// now such as 30d or 12h (default: the first request in the ledger).
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

/// The ledger filter of `--since`/`--until`, in the forms `report` takes.
fn period(since: Option<&str>, until: Option<&str>) -> Result<ledger::ReportFilter> {
    let now = now_unix_ms();
    let parse = |flag: &'static str, value: Option<&str>| {
        value
            .map(|text| report::period::parse_time(flag, text, now))
            .transpose()
            .map_err(input_failure)
    };
    let since_unix_ms = parse("--since", since)?;
    let until_unix_ms = parse("--until", until)?;
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

pub fn from_ledger(args: FromLedgerArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    let filter = period(args.since.as_deref(), args.until.as_deref())?;
    let db = ledger::Location::parse(&args.db).map_err(|e| input_failure(format!("--db: {e}")))?;
    if let Some(file) = db.sqlite_path().filter(|p| !p.exists()) {
        return Err(input_failure(format!(
            "--db {}: no such file: expected the gateway's ledger (server.ledger)",
            file.display()
        )));
    }
    let reader = ledger::LedgerReader::open_migrating(&db)
        .map_err(|e| input_failure(format!("--db {db}: {e}")))?;
    let traffic = report::review::observed_traffic(&reader, &filter)
        .map_err(|e| input_failure(format!("--db {db}: {e}")))?;
    let observed = observed_workload(&traffic, &catalog.assumptions).map_err(input_failure)?;
    let body = toml::to_string(&observed.file)?;
    let mut text = format!("# The workload observed in {db}, for `costfloor plan --workload`.\n");
    for note in &observed.notes {
        text.push_str(&format!("# - {note}\n"));
    }
    text.push('\n');
    text.push_str(&body);
    match &args.out {
        Some(path) => {
            write_atomically(path, &text)
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
