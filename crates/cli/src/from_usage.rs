//! `costfloor workload from-usage`: reads provider usage and cost exports and a task
//! map, derives the workload with `costfloor_core::usage_export`, and writes it
//! atomically (a temporary file renamed into place), so a failed run leaves no file
//! written half-way.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use costfloor_core::usage_export::{derive, parse_export, DeriveOptions, TaskBy, TaskMap};

use crate::commands::{
    input_failure, load_catalog, read_input_file, write_atomically, CatalogFlag,
};
use crate::output;

#[derive(Args, Debug)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    action: WorkloadAction,
}

#[derive(Subcommand, Debug)]
enum WorkloadAction {
    /// A workload from provider usage exports: Anthropic's usage and cost reports,
    /// OpenAI's completions usage and costs (JSON, as the APIs return them).
    FromUsage(FromUsageArgs),
    /// The workload the gateway observed: volume, tokens per call and p99, cache
    /// shares, load shape and task mix from its ledger.
    FromLedger(crate::from_ledger::FromLedgerArgs),
}

#[derive(Args, Debug)]
struct FromUsageArgs {
    /// Export files, each one export with one or more pages; several files are merged.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Days the exports cover (default: the time inside their buckets).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    period_days: Option<f64>,
    /// Calls per month: needed with Anthropic's usage report, which counts no requests.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "mean_input_tokens"
    )]
    calls_per_month: Option<f64>,
    /// Mean input tokens per call, cached and uncached (instead of --calls-per-month).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    mean_input_tokens: Option<f64>,
    /// One task per value of this grouping field (the export must be grouped by it).
    #[arg(long, value_enum, value_name = "FIELD")]
    task_by: Option<TaskByArg>,
    /// Task names for group values: a TOML file of `"group value" = "task name"` lines.
    #[arg(long, value_name = "FILE", requires = "task_by")]
    task_map: Option<PathBuf>,
    /// Write the workload here (default: stdout, with the summary as comments).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TaskByArg {
    Model,
    #[value(name = "api_key")]
    ApiKey,
    Workspace,
    Project,
}

impl From<TaskByArg> for TaskBy {
    fn from(arg: TaskByArg) -> TaskBy {
        match arg {
            TaskByArg::Model => TaskBy::Model,
            TaskByArg::ApiKey => TaskBy::ApiKey,
            TaskByArg::Workspace => TaskBy::Workspace,
            TaskByArg::Project => TaskBy::Project,
        }
    }
}

pub fn run(args: WorkloadArgs) -> Result<()> {
    match args.action {
        WorkloadAction::FromUsage(args) => from_usage(args),
        WorkloadAction::FromLedger(args) => crate::from_ledger::from_ledger(args),
    }
}

fn from_usage(args: FromUsageArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    let mut exports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let text = read_input_file(path)?;
        exports.push(parse_export(&path.display().to_string(), &text).map_err(input_failure)?);
    }
    let task_map = match &args.task_map {
        Some(path) => {
            let text = read_input_file(path)?;
            Some(TaskMap::parse(&path.display().to_string(), &text).map_err(input_failure)?)
        }
        None => None,
    };
    let options = DeriveOptions {
        period_days: args.period_days,
        calls_per_month: args.calls_per_month,
        mean_input_tokens: args.mean_input_tokens,
        task_by: args.task_by.map(TaskBy::from),
        task_map,
    };
    let derivation = derive(&exports, &options, &catalog).map_err(input_failure)?;
    let text = derivation.to_toml()?;
    match &args.out {
        Some(path) => {
            write_atomically(path, &text)
                .map_err(|err| input_failure(format!("cannot write {}: {err}", path.display())))?;
            output::print_usage_summary(&derivation, path)
        }
        None => output::print_text(&text),
    }
}
