//! Subcommands: flags, file reading, and dispatch to the libraries.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use costfloor_core::catalog::{Catalog, Precision};
use costfloor_core::error::InputError;
use costfloor_core::litellm::{self, ImportOptions};
use costfloor_core::plan::{plan, PlanRequest, DEFAULT_API_IDS, DEFAULT_DEPLOYMENT_IDS};
use costfloor_core::sizing::{size, SizingInput};
use costfloor_core::workload::{Workload, WorkloadFile, WorkloadFlags};

use crate::{chart, from_usage, output};

/// An error the user caused and can fix (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputFailure(pub String);

/// A run that ended as documented but not complete: exit with this code, the output
/// already printed (`eval run`: 130 after a signal, 3 at the cost cap).
#[derive(Debug, thiserror::Error)]
#[error("exit code {0}")]
pub struct ExitWith(pub u8);

pub fn input_failure(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(InputFailure(err.to_string()))
}

#[derive(Parser, Debug)]
#[command(
    name = "costfloor",
    version,
    about = "API vs self-hosted LLM costs: the decision, the sizing, and the hybrid gateway that runs it"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The decision: costs, capacity, break-even, hybrid optimum and verdict.
    Plan(PlanArgs),
    /// The GPU calculator: memory, tensor parallelism, throughput and capacity.
    Size(SizeArgs),
    /// Prices, GPU specs, open models and deployment presets.
    Catalog(CatalogArgs),
    /// Workloads from data you already have: `from-usage` reads provider usage exports.
    Workload(from_usage::WorkloadArgs),
    /// The hybrid gateway: OpenAI- and Anthropic-compatible, with routing, fallback,
    /// spill-over and a ledger.
    Serve(ServeArgs),
    /// What the gateway's traffic cost, what it would have cost on the API, latency and
    /// traffic shape, from the ledger.
    Report(ReportArgs),
    /// A simulated backend speaking the OpenAI and Anthropic wire formats, with faults.
    Sim(SimArgs),
    /// Quality on your own samples: a candidate against a baseline, the statistics, the
    /// recommended routing policy, and the gateway's shadow pairs scored.
    Eval(crate::quality::EvalArgs),
    /// Measures a real server's capacity at a workload's shape: streaming load at
    /// rates or concurrencies, or a sweep for the highest rate that meets the SLO.
    Bench(crate::bench::BenchArgs),
    /// Client keys in a gateway config: create (stored as SHA-256), list, revoke.
    Keys(crate::keys::KeysArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Gateway config (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the config, print the resolved routing table, and exit.
    #[arg(long)]
    check: bool,
    /// Override server.listen (e.g. 127.0.0.1:0 for any free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The ledger the gateway writes (server.ledger in its config): a SQLite file or a
    /// postgres:// URL.
    #[arg(long, value_name = "FILE|URL", required_unless_present = "config")]
    db: Option<String>,
    /// The gateway config: its ledger, its catalog, and the deployment each self-hosted
    /// backend names, for the fixed costs. Without it, fixed costs are unknown.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Start of the period: YYYY-MM-DD (UTC), YYYY-MM-DDTHH:MM:SSZ, or a span back from
    /// now such as 30d or 12h (default: the first request in the ledger).
    #[arg(long, value_name = "DATE|30d")]
    since: Option<String>,
    /// End of the period, excluded; same forms as --since (default: now).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Machine-readable output (schema: docs/report.md).
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page (inline charts, no scripts).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
struct SimArgs {
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Sim config (TOML): models, api_key, faults, ...
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Time to first token.
    #[arg(long, value_name = "MS")]
    ttft_ms: Option<u64>,
    /// Delay between streamed tokens.
    #[arg(long, value_name = "MS")]
    token_delay_ms: Option<u64>,
    /// Output tokens per response (capped by max_tokens).
    #[arg(long, value_name = "N")]
    output_tokens: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct CatalogFlag {
    /// A catalog file (TOML) that adds or overrides entries of the embedded one.
    #[arg(long, value_name = "FILE", global = true)]
    catalog: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PlanArgs {
    /// Calls per month (default 10,000,000).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    calls_per_month: Option<f64>,
    /// Mean input tokens per call (default 1,000).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    input_tokens: Option<f64>,
    /// Mean output tokens per call (default 200).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    output_tokens: Option<f64>,
    /// Workload file (TOML): cache and batch shares, load profile, SLO, task mix.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
    /// API models to compare; the first is the reference (repeatable).
    #[arg(long = "api", value_name = "ID")]
    api: Vec<String>,
    /// Self-hosted deployments to compare; the first is the primary (repeatable).
    #[arg(long = "deployment", value_name = "ID")]
    deployment: Vec<String>,
    /// Do not add owned-hardware variants of rented deployments.
    #[arg(long)]
    no_owned: bool,
    /// Write a chart of monthly cost vs calls/month (SVG).
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Measured quality per task: the output of `costfloor eval report RUN_ID --json`.
    /// Each workload task it names takes its measured decision instead of `self_host`,
    /// and its error cost enters the hybrid optimum.
    #[arg(long, value_name = "FILE")]
    eval: Option<PathBuf>,
    /// Measured capacity (`costfloor bench --out` files): each replaces the modelled
    /// capacity of the deployment it names (repeatable).
    #[arg(long = "capacity", value_name = "FILE")]
    capacity: Vec<PathBuf>,
    #[command(flatten)]
    search: crate::search::SearchArgs,
    /// Machine-readable output (schema: docs/plan-json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
pub(crate) struct SizeArgs {
    /// Open model id, e.g. llama-3.3-70b.
    #[arg(long, value_name = "ID", required_unless_present = "calibrate")]
    model: Option<String>,
    /// GPU id, e.g. h100-sxm.
    #[arg(long, value_name = "ID", required_unless_present = "calibrate")]
    gpu: Option<String>,
    /// Refit the efficiency factors to measurements: `costfloor bench --out` files of a
    /// catalog deployment, or `[[observation]]` TOML files (the published set is
    /// crates/costfloor-core/calibration/published.toml). Prints the `[assumptions]`
    /// overlay for `--catalog`.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["model", "gpu"])]
    pub(crate) calibrate: Vec<PathBuf>,
    /// With --calibrate: also fit on every row but one and predict the one left out.
    #[arg(long, requires = "calibrate")]
    pub(crate) cross_validate: bool,
    /// GPUs available (default: the smallest count that fits, up to 16).
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// bf16, fp8, int8, int4 (AWQ/GPTQ) or mxfp4 (MoE experts).
    #[arg(long, value_name = "P", default_value = "bf16")]
    precision: String,
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000.0,
        allow_negative_numbers = true
    )]
    input_tokens: f64,
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200.0,
        allow_negative_numbers = true
    )]
    output_tokens: f64,
    /// p99 prompt length for the context fit (default: input tokens).
    #[arg(long, value_name = "N")]
    p99_prompt_tokens: Option<f64>,
    /// Max time per output token (default from the catalog: 50 ms).
    #[arg(long, value_name = "MS")]
    tpot_ms: Option<f64>,
    /// KV cache in fp8 (1 byte per element) instead of bf16.
    #[arg(long)]
    kv_fp8: bool,
    /// Run this tensor-parallel size (default: the one with the most throughput).
    #[arg(long, value_name = "TP")]
    tensor_parallel: Option<u32>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
struct CatalogArgs {
    #[command(subcommand)]
    action: Option<CatalogAction>,
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Subcommand, Debug)]
enum CatalogAction {
    /// Every entry, one line each (the default).
    List,
    /// One entry in full.
    Show { id: String },
    /// Check a catalog file against the schema and the embedded catalog.
    Validate { file: PathBuf },
    /// Turn LiteLLM's price file into a catalog overlay (for --catalog), and show what
    /// changed since the current catalog.
    ImportLitellm(ImportLitellmArgs),
}

#[derive(Args, Debug)]
struct ImportLitellmArgs {
    /// LiteLLM's model_prices_and_context_window.json (the litellm Python package ships it
    /// as litellm/model_prices_and_context_window_backup.json).
    file: PathBuf,
    /// Import only these litellm_provider values, e.g. `--only anthropic openai`
    /// (repeatable, or comma-separated).
    #[arg(long, value_name = "PROVIDER", num_args = 1.., value_delimiter = ',')]
    only: Vec<String>,
    /// Write the overlay to FILE (replaced whole, never half-written) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Show every price that differs from the current catalog (the embedded one, with
    /// --catalog over it). Without --out, the overlay itself is not printed.
    #[arg(long)]
    diff: bool,
    /// The `as_of` date written in every entry (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<String>,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Plan(args) => run_plan(args),
        Command::Size(args) => run_size(args),
        Command::Catalog(args) => run_catalog(args),
        Command::Workload(args) => from_usage::run(args),
        Command::Serve(args) => run_serve(args),
        Command::Report(args) => run_report(args),
        Command::Sim(args) => run_sim(args),
        Command::Eval(args) => crate::quality::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Keys(args) => crate::keys::run(args),
    }
}

pub fn read_input_file(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map_err(|err| input_failure(format!("cannot read {}: {err}", path.display())))
}

pub fn load_catalog(flag: &CatalogFlag) -> Result<Catalog> {
    let mut catalog = Catalog::embedded().context("the embedded catalog is invalid")?;
    if let Some(path) = &flag.catalog {
        let text = read_input_file(path)?;
        catalog
            .overlay(&path.display().to_string(), &text)
            .map_err(input_failure)?;
    }
    Ok(catalog)
}

fn input_error(err: InputError) -> anyhow::Error {
    input_failure(err)
}

fn run_plan(args: PlanArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    let file = match &args.workload {
        Some(path) => {
            let text = read_input_file(path)?;
            WorkloadFile::parse(&path.display().to_string(), &text).map_err(input_error)?
        }
        None => WorkloadFile::default(),
    };
    let flags = WorkloadFlags {
        calls_per_month: args.calls_per_month,
        input_tokens: args.input_tokens,
        output_tokens: args.output_tokens,
    };
    let workload = Workload::build(file, &flags, &catalog.assumptions).map_err(input_error)?;
    let quality = match &args.eval {
        Some(path) => Some(
            costfloor_core::quality::MeasuredQuality::parse(
                &path.display().to_string(),
                &read_input_file(path)?,
            )
            .map_err(input_error)?,
        ),
        None => None,
    };
    if let Some(quality) = &quality {
        let mut matched = workload.clone();
        let unmeasured = quality.apply(&mut matched);
        if workload.tasks.is_empty() {
            eprintln!(
                "--eval: the workload names no [[task]]; give a workload file whose task names match the eval run's ({})",
                quality.tasks.iter().map(|t| t.task.as_str()).collect::<Vec<_>>().join(", ")
            );
        } else if !unmeasured.is_empty() {
            eprintln!(
                "--eval: no measured result for task(s) {}; they keep their self_host setting",
                unmeasured.join(", ")
            );
        }
    }
    let ids = |given: Vec<String>, default: &[&str]| {
        if given.is_empty() {
            default.iter().map(|s| s.to_string()).collect()
        } else {
            given
        }
    };
    let api_ids = ids(args.api, &DEFAULT_API_IDS);
    if args.search.search {
        return crate::search::run(
            &catalog,
            &args.search,
            workload,
            &api_ids[0],
            quality.as_ref(),
            args.chart.as_deref(),
            args.json,
        );
    }
    let mut measured = Vec::new();
    for path in &args.capacity {
        let name = path.display().to_string();
        measured.push(
            costfloor_core::measured::Measurement::from_json(&name, &read_input_file(path)?)
                .map_err(input_error)?,
        );
    }
    let request = PlanRequest {
        workload,
        api_ids,
        deployment_ids: ids(args.deployment, &DEFAULT_DEPLOYMENT_IDS),
        compare_owned: !args.no_owned,
        quality,
        measured,
    };
    let plan = plan(&catalog, &request).map_err(input_error)?;
    if let Some(path) = &args.chart {
        chart::write_cost_chart(&plan, path)
            .with_context(|| format!("writing chart {}", path.display()))?;
    }
    if args.json {
        output::print_json(&plan)
    } else {
        output::print_plan(&plan, args.chart.as_deref())
    }
}

fn run_size(args: SizeArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog)?;
    if !args.calibrate.is_empty() {
        return crate::calibrate::run(&args.calibrate, args.cross_validate, args.json, &catalog);
    }
    let model = catalog
        .model(args.model.as_deref().unwrap_or_default())
        .map_err(input_failure)?;
    let gpu = catalog
        .gpu(args.gpu.as_deref().unwrap_or_default())
        .map_err(input_failure)?;
    let precision = Precision::parse(&args.precision).ok_or_else(|| {
        input_failure(format!(
            "--precision = {} is not allowed: expected one of {}",
            args.precision,
            Precision::ALL.join(", ")
        ))
    })?;
    let build = |gpus: u32| SizingInput {
        model,
        gpu,
        gpus,
        tensor_parallel: args.tensor_parallel,
        precision,
        kv_bytes_per_element: if args.kv_fp8 { 1.0 } else { 2.0 },
        input_tokens: args.input_tokens,
        output_tokens: args.output_tokens,
        p99_prompt_tokens: args.p99_prompt_tokens.unwrap_or(args.input_tokens),
        slo_tpot_ms: args.tpot_ms.unwrap_or(catalog.assumptions.slo_tpot_ms),
        slo_ttft_ms: catalog.assumptions.slo_ttft_ms,
        assumptions: &catalog.assumptions,
    };
    let sizing = match args.gpus {
        Some(gpus) => size(&build(gpus)).map_err(input_error)?,
        None => {
            // The smallest power-of-two GPU count that fits.
            let mut result = size(&build(1));
            for gpus in [2, 4, 8, 16] {
                if result.is_ok() {
                    break;
                }
                result = size(&build(gpus));
            }
            result.map_err(input_error)?
        }
    };
    if args.json {
        output::print_json(&sizing)
    } else {
        output::print_sizing(&sizing)
    }
}

fn run_catalog(args: CatalogArgs) -> Result<()> {
    match args.action.unwrap_or(CatalogAction::List) {
        CatalogAction::List => {
            let catalog = load_catalog(&args.catalog)?;
            output::print_catalog_list(&catalog, args.json)
        }
        CatalogAction::Show { id } => {
            let catalog = load_catalog(&args.catalog)?;
            output::print_catalog_entry(&catalog, &id, args.json)
        }
        CatalogAction::Validate { file } => {
            let text = read_input_file(&file)?;
            let name = file.display().to_string();
            let catalog = Catalog::validate_file(&name, &text).map_err(input_failure)?;
            output::print_line(&format!(
                "{name}: ok ({} API models, {} GPUs, {} models, {} deployments after merging)",
                catalog.api_models.len(),
                catalog.gpus.len(),
                catalog.models.len(),
                catalog.deployments.len()
            ))
        }
        CatalogAction::ImportLitellm(import_args) => {
            run_import_litellm(import_args, &args.catalog, args.json)
        }
    }
}

fn run_import_litellm(args: ImportLitellmArgs, flag: &CatalogFlag, json: bool) -> Result<()> {
    let as_of = match args.as_of {
        Some(date) if is_iso_date(&date) => date,
        Some(date) => {
            return Err(input_failure(format!(
                "--as-of {date} is not allowed: expected a date as YYYY-MM-DD"
            )))
        }
        None => today_utc(),
    };
    let current = load_catalog(flag)?;
    let text = read_input_file(&args.file)?;
    let name = args.file.display().to_string();
    let import = litellm::import(
        &text,
        &ImportOptions {
            file_name: &name,
            as_of: &as_of,
            only_providers: &args.only,
        },
    )
    .map_err(input_failure)?;
    let overlay = import
        .overlay_toml()
        .context("writing the imported entries as TOML")?;
    // The overlay must load the way --catalog loads it; if not, nothing is written.
    Catalog::validate_file("the imported overlay", &overlay)
        .context("the imported overlay does not load as a catalog")?;
    let diff = args.diff.then(|| litellm::diff(&current, &import));
    let report_stream = if args.out.is_none() && !args.diff {
        output::Stream::Stderr
    } else {
        output::Stream::Stdout
    };
    match &args.out {
        Some(path) => write_atomically(path, &overlay)
            .map_err(|err| input_failure(format!("cannot write {}: {err}", path.display())))?,
        None if !args.diff => output::print_text(&overlay)?,
        None => {}
    }
    let out = args.out.as_deref();
    if json {
        return output::print_import_json(&import, diff.as_ref(), out, report_stream);
    }
    output::print_import_summary(&import, out, report_stream)?;
    if let Some(diff) = &diff {
        output::print_price_diff(diff)?;
    }
    Ok(())
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`: a
/// reader sees the old file or the whole new one, never a part, and a failed write
/// leaves no file behind.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "expected a file name, not a folder",
        ));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

/// Today's date in UTC as YYYY-MM-DD.
fn today_utc() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    civil_date(i64::try_from(seconds / 86_400).unwrap_or(0))
}

/// The date of a count of days since 1970-01-01, as `YYYY-MM-DD`.
fn civil_date(days_since_epoch: i64) -> String {
    let (year, month, day) = costfloor_core::calendar::civil_from_days(days_since_epoch);
    format!("{year:04}-{month:02}-{day:02}")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COSTFLOOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: a log file or collector gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = std::env::var("COSTFLOOR_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_serve(args: ServeArgs) -> Result<()> {
    if args.check {
        let table = gateway::server::check(&args.config).map_err(input_failure)?;
        return output::print_line(&format!("{}: ok\n{table}", args.config.display()));
    }
    let config = gateway::config::load(&args.config).map_err(input_failure)?;
    init_logging();
    tokio_runtime()?.block_on(async move {
        let table = config.routing_table();
        let gateway = gateway::server::start(gateway::server::StartOptions {
            config,
            config_path: Some(args.config.clone()),
            listen: args.listen,
            handle_signals: true,
        })
        .await?;
        output::print_line(&format!("listening on http://{}", gateway.addr))?;
        tracing::info!("routing table:\n{table}");
        let report = gateway.wait().await?;
        tracing::info!(
            "stopped: {} ledger rows written, {} lost",
            report.rows_written,
            report.rows_lost
        );
        Ok(())
    })
}

pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// What `report` reads from a gateway config: its ledger, its catalog overlay, and the
/// deployment each self-hosted backend names. Secrets are not read: a report needs none.
struct GatewayFacts {
    ledger: ledger::Location,
    catalog: Option<PathBuf>,
    deployments: Vec<report::BackendDeployment>,
    setup: report::review::Setup,
}

fn gateway_facts(path: &Path) -> Result<GatewayFacts> {
    let text = fs::read_to_string(path).map_err(|err| {
        input_failure(format!(
            "--config {}: cannot read it ({err}); expected the gateway's TOML config",
            path.display()
        ))
    })?;
    let file = gateway::config::ConfigFile::parse(&path.display().to_string(), &text)
        .map_err(input_failure)?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let setup = report::review::Setup {
        self_hosted: file
            .backend
            .iter()
            .filter_map(|backend| {
                backend
                    .deployment
                    .as_ref()
                    .map(|deployment| report::review::SelfHostedBackend {
                        backend: backend.name.clone(),
                        deployment: deployment.clone(),
                        max_in_flight: backend.max_in_flight.unwrap_or(0),
                    })
            })
            .collect(),
        api_models: file
            .backend
            .iter()
            .filter_map(|backend| backend.price.clone())
            .collect(),
    };
    Ok(GatewayFacts {
        setup,
        // As the gateway resolves it (gateway::config): relative to the config's folder,
        // or costfloor.db in the working directory.
        ledger: gateway::store::ledger_location(&file.server, base_dir, &|name| {
            std::env::var(name).ok()
        })
        .map_err(|e| input_failure(format!("--config {}: {e}", path.display())))?,
        catalog: file.server.catalog.map(|catalog| base_dir.join(catalog)),
        deployments: file
            .backend
            .into_iter()
            .filter_map(|backend| {
                backend
                    .deployment
                    .map(|deployment| report::BackendDeployment {
                        backend: backend.name,
                        deployment,
                    })
            })
            .collect(),
    })
}

fn run_report(args: ReportArgs) -> Result<()> {
    let now = now_unix_ms();
    let since = args
        .since
        .as_deref()
        .map(|text| report::period::parse_time("--since", text, now))
        .transpose()
        .map_err(input_failure)?;
    let until = args
        .until
        .as_deref()
        .map(|text| report::period::parse_time("--until", text, now))
        .transpose()
        .map_err(input_failure)?;
    let facts = args.config.as_deref().map(gateway_facts).transpose()?;
    // The config's catalog first, then --catalog over it.
    let mut catalog = Catalog::embedded().context("the embedded catalog is invalid")?;
    for path in facts
        .as_ref()
        .and_then(|facts| facts.catalog.as_ref())
        .into_iter()
        .chain(args.catalog.catalog.as_ref())
    {
        let text = read_input_file(path)?;
        catalog
            .overlay(&path.display().to_string(), &text)
            .map_err(input_failure)?;
    }
    let (ledger_path, flag) = match (&args.db, &facts) {
        (Some(db), _) => (
            ledger::Location::parse(db).map_err(|e| input_failure(format!("--db: {e}")))?,
            "--db".to_string(),
        ),
        (None, Some(facts)) => (
            facts.ledger.clone(),
            format!(
                "server.ledger in {}",
                args.config.as_deref().unwrap_or(Path::new("")).display()
            ),
        ),
        (None, None) => {
            return Err(input_failure(
                "no ledger to read: pass --db FILE or --config gateway.toml",
            ))
        }
    };
    if let Some(file) = ledger_path.sqlite_path().filter(|p| !p.is_file()) {
        return Err(input_failure(format!(
            "{flag} {}: no such file; expected the SQLite ledger that `costfloor serve` writes (or a postgres:// URL)",
            file.display()
        )));
    }
    let reader = ledger::LedgerReader::open_migrating(&ledger_path)
        .map_err(|err| input_failure(format!("{flag} {ledger_path}: {err}")))?;
    let request = report::ReportRequest {
        since_unix_ms: since,
        until_unix_ms: until,
        now_unix_ms: now,
        catalog: &catalog,
        deployments: facts.as_ref().map(|facts| facts.deployments.as_slice()),
    };
    let (report, observed) = report::build_with_observed(&reader, &request).map_err(|err| {
        if err.is_input() {
            input_failure(err)
        } else {
            anyhow::Error::new(err)
        }
    })?;
    let section = report::review::build_review(
        &ledger_path,
        &report,
        &observed,
        &catalog,
        facts.as_ref().map(|facts| &facts.setup),
    )
    .map_err(|err| {
        if err.is_input() {
            input_failure(err)
        } else {
            anyhow::Error::new(err)
        }
    })?;
    if let Some(path) = &args.html {
        let page = crate::html::report_page(&report, &section)?;
        write_atomically(path, &crate::html::render(&page))
            .map_err(|err| input_failure(format!("--html {}: {err}", path.display())))?;
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct Whole<'a> {
            #[serde(flatten)]
            report: &'a report::Report,
            #[serde(flatten)]
            review: &'a report::review::ReviewSection,
        }
        output::print_json(&Whole {
            report: &report,
            review: &section,
        })
    } else {
        output::print_report(&report)?;
        if report.message.is_some() {
            // An empty period: the report has said what it looked at.
            return Ok(());
        }
        output::print_review(&section)
    }
}

fn run_sim(args: SimArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => sim::SimConfig::from_toml_str(&read_input_file(path)?)
            .map_err(|e| input_failure(format!("{}: {e}", path.display())))?,
        None => sim::SimConfig::default(),
    };
    if let Some(quality) = &mut config.quality {
        // The answers file is relative to the config's folder.
        let base = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        quality.load(base).map_err(input_failure)?;
    }
    if let Some(ms) = args.ttft_ms {
        config.ttft = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = args.token_delay_ms {
        config.token_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = args.output_tokens {
        config.default_output_tokens = n;
    }
    config.validate().map_err(input_failure)?;
    init_logging();
    tokio_runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        output::print_line(&format!("listening on http://{}", listener.local_addr()?))?;
        sim::serve(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_the_calendar() {
        // Day 0 is 1970-01-01; 2000-03-01 is day 11,017 (30 years of 365 days plus 7 leap
        // days, then 31 + 29 days into 2000); 2026-11-29 is day 20,786.
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(11_017), "2000-03-01");
        assert_eq!(civil_date(20_786), "2026-11-29");
        assert!(is_iso_date("2026-11-29"));
        assert!(!is_iso_date("2026-1-29") && !is_iso_date("29/11/2026"));
    }
}
