//! `costfloor bench`: the flags, the shape and SLO from a workload file, the progress
//! bar (or a line every 5 s off a terminal), the levels' table and the `--out` file.
//! The load generator itself is the `bench` crate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::bench::{BenchPlan, Failures, LevelSpec, Live, Load, Observer, SweepSettings};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use costfloor_core::measured::{Level, Measurement, Slo};
use costfloor_core::workload::{WorkloadFile, DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS};

use crate::commands::{input_failure, load_catalog, read_input_file, CatalogFlag};
use crate::output;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("load").required(true).args(["rate", "concurrency", "sweep"])))]
pub struct BenchArgs {
    /// The server: http://HOST:PORT (a trailing /v1 is fine).
    #[arg(long, value_name = "URL")]
    target: String,
    /// The model name each request carries.
    #[arg(long, value_name = "NAME")]
    model: String,
    /// The wire format the server speaks.
    #[arg(long, value_enum, default_value = "openai")]
    format: FormatFlag,
    /// Workload file (TOML): input_tokens, output_tokens and [slo]; flags win. With a
    /// [[task]] mix and no token flags, each request draws a task by share and takes
    /// its lengths.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
    /// Prompt tokens per request (default: the workload's, else 1,000).
    #[arg(long, value_name = "N")]
    input_tokens: Option<u64>,
    /// Output tokens per request (default: the workload's, else 200).
    #[arg(long, value_name = "N")]
    output_tokens: Option<u32>,
    /// Open loop: Poisson arrivals at each rate in requests/s, one level each.
    #[arg(long, value_name = "R", num_args = 1.., value_delimiter = ',')]
    rate: Vec<f64>,
    /// Closed loop: this many streams, one level each.
    #[arg(long, value_name = "C", num_args = 1.., value_delimiter = ',')]
    concurrency: Vec<u32>,
    /// Find the highest rate whose p99 TTFT and p99 TPOT meet the SLO.
    #[arg(long)]
    sweep: bool,
    /// Streams of the sweep's saturation run.
    #[arg(long, value_name = "C", default_value_t = SweepSettings::default().saturation_concurrency)]
    sweep_concurrency: u32,
    /// Bisection levels of the sweep after its first two rates.
    #[arg(long, value_name = "N", default_value_t = SweepSettings::default().steps)]
    sweep_steps: u32,
    /// Length of each level: 60s, 2m, 500ms, or seconds.
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// TTFT SLO in ms, on p99 (default: the workload's, else the catalog's).
    #[arg(long, value_name = "MS")]
    slo_ttft_ms: Option<f64>,
    /// Time-per-output-token SLO in ms, on p99 (default: the workload's, else the
    /// catalog's).
    #[arg(long, value_name = "MS")]
    slo_tpot_ms: Option<f64>,
    /// The catalog deployment the server runs, recorded for `plan --capacity`.
    #[arg(long, value_name = "ID")]
    deployment: Option<String>,
    /// The environment variable holding the server's API key.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Seed of the arrival times and the prompt text.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Write the measurement (JSON, docs/bench.md) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the measurement as JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatFlag {
    Openai,
    Anthropic,
}

/// `60s`, `2m`, `500ms`, `1.5` (seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60.0)
    } else if let Some(h) = text.strip_suffix('h') {
        (h, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: expected e.g. 60s, 2m or 500ms"))?;
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("{text:?}: the duration must be above 0"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|err| format!("{text:?}: {err}"))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let plan = plan(&args)?;
    let runtime = crate::commands::tokio_runtime()?;
    let progress = Arc::new(Progress::new());
    let observer: Arc<dyn Observer> = progress.clone();
    let result = runtime.block_on(::bench::run(plan, observer));
    progress.finish();
    let run = result.map_err(|err| {
        if err.is_input() {
            input_failure(err)
        } else {
            anyhow::Error::new(err)
        }
    })?;
    if let Some(path) = &args.out {
        write_atomically(path, &run.measurement)?;
    }
    if args.json {
        output::print_json(&run.measurement)?;
    } else {
        output::print_text(&render(&run.measurement, &run.failures))?;
        if let Some(path) = &args.out {
            output::print_line(&format!("wrote {}", path.display()))?;
        }
    }
    Ok(())
}

fn plan(args: &BenchArgs) -> Result<BenchPlan> {
    let file = match &args.workload {
        Some(path) => WorkloadFile::parse(&path.display().to_string(), &read_input_file(path)?)
            .map_err(input_failure)?,
        None => WorkloadFile::default(),
    };
    let catalog = load_catalog(&args.catalog)?;
    if let Some(id) = &args.deployment {
        catalog.deployment(id).map_err(input_failure)?;
    }
    let slo_file = file.slo.clone().unwrap_or_default();
    let slo = Slo {
        ttft_ms: args
            .slo_ttft_ms
            .or(slo_file.ttft_ms)
            .unwrap_or(catalog.assumptions.slo_ttft_ms),
        tpot_ms: args
            .slo_tpot_ms
            .or(slo_file.tpot_ms)
            .unwrap_or(catalog.assumptions.slo_tpot_ms),
    };
    let input_tokens = match args.input_tokens {
        Some(n) => n,
        None => whole_tokens(
            "input_tokens",
            file.input_tokens.unwrap_or(DEFAULT_INPUT_TOKENS),
        )?,
    };
    let output_tokens = match args.output_tokens {
        Some(n) => n,
        None => {
            let n = whole_tokens(
                "output_tokens",
                file.output_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS),
            )?;
            u32::try_from(n).map_err(|_| input_failure("output_tokens is too large"))?
        }
    };
    let load = if args.sweep {
        Load::Sweep(SweepSettings {
            saturation_concurrency: args.sweep_concurrency,
            steps: args.sweep_steps,
            ..SweepSettings::default()
        })
    } else if !args.rate.is_empty() {
        if !args.concurrency.is_empty() {
            return Err(input_failure(
                "choose one of --rate (open loop) and --concurrency (closed loop)",
            ));
        }
        Load::Rates(args.rate.clone())
    } else {
        Load::Concurrencies(args.concurrency.clone())
    };
    let api_key = match &args.api_key_env {
        None => None,
        Some(var) => {
            let value = std::env::var(var).map_err(|_| {
                input_failure(format!(
                    "--api-key-env {var}: the environment variable {var} is not set"
                ))
            })?;
            Some(::bench::ApiKey {
                env_var: var.clone(),
                value,
            })
        }
    };
    // The task mix gives the length distribution, unless the flags fix one shape.
    let mut mix = Vec::new();
    if args.input_tokens.is_none() && args.output_tokens.is_none() && file.task.len() > 1 {
        let flags = costfloor_core::workload::WorkloadFlags::default();
        let workload =
            costfloor_core::workload::Workload::build(file.clone(), &flags, &catalog.assumptions)
                .map_err(input_failure)?;
        for task in &workload.tasks {
            mix.push(::bench::LengthClass {
                name: task.name.clone(),
                share: task.share,
                input_tokens: whole_tokens(
                    &format!("task {} input_tokens", task.name),
                    task.input_tokens,
                )?,
                output_tokens: u32::try_from(whole_tokens(
                    &format!("task {} output_tokens", task.name),
                    task.output_tokens,
                )?)
                .map_err(|_| {
                    input_failure(format!("task {}: output_tokens is too large", task.name))
                })?,
            });
        }
    }
    Ok(BenchPlan {
        target_url: args.target.clone(),
        model: args.model.clone(),
        format: match args.format {
            FormatFlag::Openai => wire::bench::BenchFormat::OpenAi,
            FormatFlag::Anthropic => wire::bench::BenchFormat::Anthropic,
        },
        api_key,
        input_tokens,
        output_tokens,
        mix,
        load,
        duration: args.duration,
        slo,
        deployment: args.deployment.clone(),
        seed: args.seed,
    })
}

/// A workload's mean token count as a whole number of tokens.
fn whole_tokens(field: &str, value: f64) -> Result<u64> {
    if !(value >= 1.0 && value.is_finite()) {
        return Err(input_failure(format!(
            "workload {field} = {value}: at least 1 token is needed"
        )));
    }
    Ok(value.round() as u64)
}

fn write_atomically(path: &std::path::Path, measurement: &Measurement) -> Result<()> {
    let mut text = serde_json::to_string_pretty(measurement)?;
    text.push('\n');
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The levels as a table, then the capacity.
fn render(measurement: &Measurement, failures: &[Failures]) -> String {
    let shape = &measurement.shape;
    let mut text = format!(
        "{} · {} · {} format\nshape: input {:.0} tokens (target {:.0}, {}), output {:.1} tokens \
         (target {:.0}, {})\nSLO: p99 TTFT ≤ {} ms, p99 TPOT ≤ {} ms, ≤ 1% failed\n\n",
        measurement.target,
        measurement.model,
        measurement.format,
        shape.input_tokens_mean,
        shape.input_tokens_target,
        shape.input_calibration,
        shape.output_tokens_mean,
        shape.output_tokens_target,
        shape.output_forcing,
        measurement.slo.ttft_ms,
        measurement.slo.tpot_ms,
    );
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "#",
        "load",
        "done",
        "failed",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "TPOT p99",
        "ITL p99",
        "goodput",
        "SLO",
    ]);
    for (index, level) in measurement.levels.iter().enumerate() {
        table.add_row([
            index.to_string(),
            load_label(level),
            level.completed.to_string(),
            level.failed.to_string(),
            format!("{:.2}", level.requests_per_s),
            format!("{:.0}", level.output_tokens_per_s),
            format!("{:.0} ms", level.ttft_ms.p50),
            format!("{:.0} ms", level.ttft_ms.p99),
            format!("{:.1} ms", level.tpot_ms.p50),
            format!("{:.1} ms", level.tpot_ms.p99),
            format!("{:.1} ms", level.itl_ms.p99),
            format!("{:.2}/s", level.goodput_rps),
            if level.meets_slo { "ok" } else { "miss" }.to_owned(),
        ]);
    }
    text.push_str(&table.to_string());
    text.push('\n');
    for (index, failed) in failures.iter().enumerate() {
        if !failed.is_empty() {
            let reasons: Vec<String> = failed.iter().map(|(why, n)| format!("{n} {why}")).collect();
            text.push_str(&format!("level {index} failures: {}\n", reasons.join(", ")));
        }
    }
    match &measurement.capacity {
        Some(capacity) => text.push_str(&format!(
            "\ncapacity: {:.2} requests/s, {:.0} output tokens/s (level {}, {})\n",
            capacity.requests_per_s,
            capacity.output_tokens_per_s,
            capacity.level,
            measurement
                .levels
                .get(capacity.level)
                .map(load_label)
                .unwrap_or_default()
        )),
        None => text.push_str("\ncapacity: no level met the SLO\n"),
    }
    text
}

fn load_label(level: &Level) -> String {
    match level.mode.as_str() {
        "rate" => format!("{:.2} req/s", level.load),
        _ => format!("{:.0} streams", level.load),
    }
}

/// The progress display: an indicatif bar on a terminal, a line every 5 s otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    label: String,
    last_line: Instant,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:24} {msg} [{elapsed_precise}]")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            state: Mutex::new(ProgressState {
                label: String::new(),
                last_line: Instant::now(),
            }),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Observer for Progress {
    fn level_started(&self, index: usize, spec: LevelSpec, duration: Duration) {
        let label = match spec {
            LevelSpec::Rate(rate) => format!("level {index}: {rate:.2} req/s"),
            LevelSpec::Concurrency(streams) => format!("level {index}: {streams} streams"),
        };
        if let Some(bar) = &self.bar {
            bar.set_length(duration.as_millis().try_into().unwrap_or(u64::MAX));
            bar.set_position(0);
            bar.reset_elapsed();
        } else {
            eprintln!("{label} for {:.0} s", duration.as_secs_f64());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.label = label;
        state.last_line = Instant::now();
    }

    fn tick(&self, live: &Live) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let text = format!(
            "{} · sent {} · done {} · failed {} · in flight {} · p99 TTFT {:.0} ms · p99 TPOT {:.1} ms",
            state.label,
            live.sent,
            live.completed,
            live.failed,
            live.in_flight,
            live.ttft_p99_ms,
            live.tpot_p99_ms
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position((live.elapsed_s * 1000.0) as u64);
                bar.set_message(text);
            }
            None if state.last_line.elapsed() >= Duration::from_secs(5) => {
                eprintln!("{text}");
                state.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn level_finished(&self, index: usize, level: &Level, _failures: &Failures) {
        self.line(&format!(
            "level {index} ({}): {} done, {} failed, {:.2} req/s, p99 TTFT {:.0} ms, p99 TPOT {:.1} ms: {}",
            load_label(level),
            level.completed,
            level.failed,
            level.requests_per_s,
            level.ttft_ms.p99,
            level.tpot_ms.p99,
            if level.meets_slo { "meets the SLO" } else { "misses the SLO" }
        ));
    }

    fn note(&self, message: &str) {
        self.line(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
