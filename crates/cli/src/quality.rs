//! `costfloor eval`: the offline quality benchmark (`run`, `report`, `policy`) and the
//! scoring of shadow pairs (`shadow`). Reads the files, shows progress, prints; every
//! figure comes from the `eval` crate.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use costfloor_core::money::Money;
use costfloor_core::workload::WorkloadFile;
use eval::dataset::{self, EvalSettings};
use eval::run::{self as runner, Ending, Limits, Progress, RunSettings};
use eval::scorer::{Scorer, ScorerSpec};
use eval::summary::{self, EvalReport, ReportInputs, RunHeader};
use eval::EvalError;
use ledger::{EvalRun, EvalStore, ReportFilter};
use tokio_util::sync::CancellationToken;

use crate::commands::{input_failure, now_unix_ms, read_input_file, tokio_runtime};
use crate::output;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    action: EvalAction,
}

#[derive(Subcommand, Debug)]
enum EvalAction {
    /// Run a dataset on a candidate and a baseline backend of the gateway config.
    Run(RunArgs),
    /// The statistics of a run, per task and overall, and the recommended side.
    Report(ReportArgs),
    /// The recommended policy of a run as [[route]] entries for the gateway config.
    Policy(PolicyArgs),
    /// Score the shadow pairs the gateway stored: agreement per task against the
    /// reference backend.
    Shadow(ShadowArgs),
}

#[derive(Args, Debug)]
struct StoreArgs {
    /// The gateway config: its backends, and its ledger (server.ledger) for the results.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database for the results instead of the config's server.ledger: a SQLite
    /// file or a postgres:// URL.
    #[arg(long, value_name = "FILE|URL")]
    db: Option<String>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The samples (JSONL): id, task, messages or prompt, expected, scorer.
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    dataset: Option<PathBuf>,
    /// The backend under test (a [[backend]] name).
    #[arg(long, value_name = "BACKEND", required_unless_present = "resume")]
    candidate: Option<String>,
    /// The backend it is compared with.
    #[arg(long, value_name = "BACKEND", required_unless_present = "resume")]
    baseline: Option<String>,
    /// A third backend that grades samples whose scorer is `judge`.
    #[arg(long, value_name = "BACKEND")]
    judge: Option<String>,
    /// Per-task scorers and error costs (TOML: [defaults], [task.NAME]).
    #[arg(long, value_name = "FILE")]
    eval_config: Option<PathBuf>,
    /// The scorer of samples with none of their own and none in the eval TOML:
    /// a name (exact, contains, regex, numeric, json_fields) or a JSON object.
    #[arg(long, value_name = "SPEC")]
    scorer: Option<String>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Requests per minute over all backends (default: no limit).
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,
    /// Run a reproducible random sample of N samples (with --seed).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Stop before the measured spend would pass this; the run stays resumable.
    #[arg(long, value_name = "USD")]
    max_cost_usd: Option<f64>,
    /// Output tokens per answer for samples without max_tokens.
    #[arg(long, value_name = "N", default_value_t = runner::DEFAULT_MAX_TOKENS)]
    max_tokens: u32,
    /// Skip lines that do not parse (and say how many) instead of refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    /// Continue a stopped run; answers already stored are not requested again.
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<String>,
    /// Tries per request on 429, 529 and other transient failures.
    #[arg(long, value_name = "N", default_value_t = 6)]
    max_tries: u32,
}

#[derive(Args, Debug)]
struct DecisionArgs {
    /// The largest accuracy gap (baseline − candidate) to accept on the candidate.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.05)]
    max_gap: f64,
    /// The downstream cost of one wrong answer (USD), for every task without its own in
    /// the eval TOML.
    #[arg(long, value_name = "USD")]
    error_cost_usd: Option<f64>,
    /// Per-task error costs and volumes (TOML); default: the one the run used.
    #[arg(long, value_name = "FILE")]
    eval_config: Option<PathBuf>,
    /// A workload file whose [[task]] shares give each task's calls per month.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    run_id: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    decision: DecisionArgs,
    /// Machine-readable output (schema: docs/eval.md); `plan --eval` reads it.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PolicyArgs {
    run_id: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    decision: DecisionArgs,
    /// Write the fragment to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ShadowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Start of the period: a date, or a span back from now such as 7d.
    #[arg(long, value_name = "DATE|7d", default_value = "7d")]
    since: String,
    /// Only this task.
    #[arg(long, value_name = "TASK")]
    task: Option<String>,
    /// Flag tasks whose disagreement with the reference is past this.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.05)]
    max_gap: f64,
    /// Per-task scorers (TOML: [task.NAME] scorer = ...).
    #[arg(long, value_name = "FILE")]
    eval_config: Option<PathBuf>,
    /// The scorer of tasks without one in the eval TOML.
    #[arg(long, value_name = "SPEC")]
    scorer: Option<String>,
    /// A backend of --config that grades the pairs of tasks whose scorer is `judge`.
    #[arg(long, value_name = "BACKEND")]
    judge: Option<String>,
    /// Judge requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    match args.action {
        EvalAction::Run(args) => run_eval(args),
        EvalAction::Report(args) => run_report(args),
        EvalAction::Policy(args) => run_policy(args),
        EvalAction::Shadow(args) => run_shadow(args),
    }
}

fn eval_failure(err: EvalError) -> anyhow::Error {
    if err.is_input() {
        input_failure(err)
    } else {
        anyhow::Error::new(err)
    }
}

fn parse_scorer(flag: &str, text: &str) -> Result<ScorerSpec> {
    let json = if text.trim_start().starts_with('{') {
        text.to_string()
    } else {
        format!("{:?}", text.trim())
    };
    serde_json::from_str(&json)
        .map_err(|e| input_failure(format!("{flag}: `{text}` is not a scorer: {e}")))
}

fn load_gateway(store: &StoreArgs) -> Result<Option<gateway::config::Config>> {
    match &store.config {
        Some(path) => Ok(Some(gateway::config::load(path).map_err(input_failure)?)),
        None => Ok(None),
    }
}

fn db_path(
    store: &StoreArgs,
    config: Option<&gateway::config::Config>,
) -> Result<ledger::Location> {
    match (&store.db, config) {
        (Some(db), _) => {
            ledger::Location::parse(db).map_err(|e| input_failure(format!("--db: {e}")))
        }
        (None, Some(config)) => Ok(config.ledger.clone()),
        (None, None) => Err(input_failure(
            "--db or --config: one is needed to find the results",
        )),
    }
}

fn eval_settings(path: Option<&Path>, stored: Option<&str>) -> Result<EvalSettings> {
    match (path, stored) {
        (Some(path), _) => {
            EvalSettings::parse(&path.display().to_string(), &read_input_file(path)?)
                .map_err(eval_failure)
        }
        (None, Some(text)) => {
            EvalSettings::parse("the run's eval config", text).map_err(eval_failure)
        }
        (None, None) => Ok(EvalSettings::default()),
    }
}

fn run_eval(args: RunArgs) -> Result<()> {
    if args.concurrency == 0 {
        return Err(input_failure(
            "--concurrency: 0 is not allowed; expected at least 1",
        ));
    }
    if let Some(cap) = args.max_cost_usd {
        if !(cap.is_finite() && cap > 0.0) {
            return Err(input_failure(format!(
                "--max-cost-usd: {cap} is not allowed; expected a positive number of USD"
            )));
        }
    }
    let Some(config) = load_gateway(&args.store)? else {
        return Err(input_failure(
            "--config: required; eval sends samples to the gateway config's backends",
        ));
    };
    let db = db_path(&args.store, Some(&config))?;
    let store = Arc::new(EvalStore::open(&db).with_context(|| format!("opening {}", db))?);
    // A new run's settings, or the stored ones of the run being resumed.
    let (run_id, settings, resumed) = match &args.resume {
        Some(run_id) => {
            let run = store
                .run(run_id)?
                .ok_or_else(|| input_failure(format!("--resume: no run `{run_id}` in {}", db)))?;
            let settings: RunSettings =
                serde_json::from_str(&run.settings).context("reading the run's settings")?;
            for (flag, given, stored) in [
                ("--candidate", &args.candidate, &settings.candidate),
                ("--baseline", &args.baseline, &settings.baseline),
            ] {
                if given.as_ref().is_some_and(|g| g != stored) {
                    return Err(input_failure(format!("{flag}: the run `{run_id}` was started with `{stored}`; a resumed run keeps its backends")));
                }
            }
            (run_id.clone(), settings, true)
        }
        None => {
            let dataset_path = args.dataset.clone().unwrap_or_default();
            let eval_text = match &args.eval_config {
                Some(path) => Some(read_input_file(path)?),
                None => None,
            };
            (
                runner::new_run_id(),
                RunSettings {
                    dataset: std::fs::canonicalize(&dataset_path)
                        .unwrap_or(dataset_path)
                        .display()
                        .to_string(),
                    dataset_fingerprint: String::new(),
                    candidate: args.candidate.clone().unwrap_or_default(),
                    baseline: args.baseline.clone().unwrap_or_default(),
                    judge: args.judge.clone(),
                    sample_ids: Vec::new(),
                    seed: args.seed,
                    limit: args.limit,
                    max_tokens: args.max_tokens,
                    eval_settings: eval_text,
                },
                false,
            )
        }
    };
    let eval_settings = eval_settings(None, settings.eval_settings.as_deref())?;
    let default_scorer = match &args.scorer {
        Some(text) => Some(parse_scorer("--scorer", text)?),
        None => None,
    };
    let text = read_input_file(Path::new(&settings.dataset))?;
    let parsed = dataset::parse(&text, &eval_settings, default_scorer.as_ref());
    if !parsed.invalid.is_empty() {
        let listed: Vec<String> = parsed
            .invalid
            .iter()
            .take(20)
            .map(|e| format!("  {}: {e}", settings.dataset))
            .collect();
        let more = parsed.invalid.len().saturating_sub(20);
        let listing = format!(
            "{}{}",
            listed.join("\n"),
            if more > 0 {
                format!("\n  … and {more} more")
            } else {
                String::new()
            }
        );
        if !args.skip_invalid {
            return Err(input_failure(format!(
                "--dataset: {} of {} lines are invalid; fix them, or pass --skip-invalid to leave them out:\n{listing}",
                parsed.invalid.len(),
                parsed.invalid.len() + parsed.samples.len()
            )));
        }
        eprintln!(
            "skipping {} invalid lines (--skip-invalid):\n{listing}",
            parsed.invalid.len()
        );
    }
    let samples = Arc::new(parsed.samples);
    let mut settings = settings;
    let chosen: Vec<usize> = if resumed {
        if settings.dataset_fingerprint != parsed.fingerprint {
            return Err(input_failure(format!(
                "--resume: {} changed since the run started; a resumed run needs the same dataset",
                settings.dataset
            )));
        }
        let wanted: HashSet<&str> = settings.sample_ids.iter().map(String::as_str).collect();
        samples
            .iter()
            .enumerate()
            .filter(|(_, s)| wanted.contains(s.id.as_str()))
            .map(|(i, _)| i)
            .collect()
    } else {
        let chosen = dataset::choose(
            &samples,
            settings.limit.unwrap_or(usize::MAX),
            settings.seed,
        );
        settings.dataset_fingerprint = parsed.fingerprint.clone();
        settings.sample_ids = chosen.iter().map(|&i| samples[i].id.clone()).collect();
        chosen
    };
    if chosen.is_empty() {
        return Err(input_failure(format!(
            "--dataset: {} has no valid sample",
            settings.dataset
        )));
    }
    let runtime = Arc::new(gateway::runtime::Runtime::build(config, None).map_err(input_failure)?);
    let candidate =
        runner::backend(&runtime, "--candidate", &settings.candidate).map_err(eval_failure)?;
    let baseline =
        runner::backend(&runtime, "--baseline", &settings.baseline).map_err(eval_failure)?;
    let judge = match &settings.judge {
        Some(name) => Some(runner::backend(&runtime, "--judge", name).map_err(eval_failure)?),
        None => None,
    };
    if judge.is_none() {
        if let Some(sample) = chosen
            .iter()
            .map(|&i| &samples[i])
            .find(|s| s.scorer_spec.is_judge())
        {
            return Err(input_failure(format!(
                "--judge: sample `{}` (line {}) is graded by a judge; name a judge backend",
                sample.id, sample.line
            )));
        }
    }
    let stored = store.results(&run_id)?;
    if !resumed {
        store.create_run(&EvalRun {
            run_id: run_id.clone(),
            created_at_unix_ms: now_unix_ms(),
            settings: serde_json::to_string(&settings)?,
            status: "running".to_string(),
        })?;
    } else {
        store.set_status(&run_id, "running")?;
    }
    let done: HashSet<(String, String)> = stored
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| (r.sample_id.clone(), r.side.clone()))
        .collect();
    let pending = runner::pending_jobs(&samples, &chosen, &done, settings.judge.as_deref());
    let by_side = |side: &'static str| match side {
        runner::CANDIDATE => Some(Arc::clone(&candidate)),
        runner::BASELINE => Some(Arc::clone(&baseline)),
        _ => judge.clone(),
    };
    let estimate = runner::estimate_spend(&samples, &pending, &by_side, settings.max_tokens)
        .map_err(eval_failure)?;
    eprintln!(
        "eval run {run_id}{}: {} samples, {} answers to get ({} stored), candidate `{}`, baseline `{}`{}",
        if resumed { " (resumed)" } else { "" },
        chosen.len(),
        pending.len(),
        done.len(),
        settings.candidate,
        settings.baseline,
        settings.judge.as_ref().map_or(String::new(), |j| format!(", judge `{j}`"))
    );
    eprintln!(
        "estimated spend: up to {} (catalog prices; prompts at 4 characters a token, outputs at their max_tokens){}",
        estimate.fine(),
        args.max_cost_usd.map_or(String::new(), |cap| format!("; cap ${cap}"))
    );
    let limits = Limits {
        concurrency: args.concurrency,
        rpm: args.rpm,
        max_cost: args.max_cost_usd.map(Money::from_usd_f64),
        max_tries: args.max_tries.max(1),
    };
    let started = Instant::now();
    let outcome = tokio_runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(cancel.clone()));
        let (tx, rx) = tokio::sync::watch::channel(Progress::default());
        let display = tokio::spawn(show_progress(rx));
        let outcome = runner::run(
            Arc::clone(&runtime),
            Arc::clone(&store),
            &run_id,
            &settings,
            Arc::clone(&samples),
            &chosen,
            &stored,
            limits,
            cancel,
            tx,
        )
        .await;
        signals.abort();
        let _ = display.await;
        outcome
    });
    let outcome = outcome.map_err(eval_failure)?;
    store.set_status(&run_id, outcome.ending.status())?;
    let elapsed = started.elapsed().as_secs_f64();
    let why = match outcome.ending {
        Ending::Complete => "complete".to_string(),
        Ending::Interrupted => format!("stopped by a signal; resume with --resume {run_id}"),
        Ending::CostCap => format!("stopped before passing --max-cost-usd; resume with --resume {run_id} (and a higher cap)"),
    };
    eprintln!(
        "eval run {run_id}: {why}. {} requests in {elapsed:.1} s; measured spend {} (estimated up to {})",
        outcome.requests,
        outcome.spent.fine(),
        estimate.fine()
    );
    let report = build_report(&store, &run_id, &DecisionArgs::default_for_run(), None)?;
    print_report(&report)?;
    output::print_line(&format!("run id: {run_id}"))?;
    match outcome.ending {
        Ending::Complete => Ok(()),
        Ending::Interrupted => Err(anyhow::Error::new(crate::commands::ExitWith(130))),
        Ending::CostCap => Err(anyhow::Error::new(crate::commands::ExitWith(3))),
    }
}

impl DecisionArgs {
    fn default_for_run() -> DecisionArgs {
        DecisionArgs {
            max_gap: 0.05,
            error_cost_usd: None,
            eval_config: None,
            workload: None,
        }
    }
}

async fn cancel_on_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    cancel.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: finishing the requests in flight (their answers are kept)");
    cancel.cancel();
}

fn accuracy(correct: u64, scored: u64) -> String {
    if scored == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * correct as f64 / scored as f64)
    }
}

/// An indicatif bar on a terminal; a line every 5 s otherwise.
async fn show_progress(mut rx: tokio::sync::watch::Receiver<Progress>) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} answers {msg} [{elapsed_precise}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = Instant::now();
    let describe = |p: &Progress| {
        format!(
            "errors {} · candidate {} · baseline {} · spent {}",
            p.errors,
            accuracy(p.candidate_correct, p.candidate_scored),
            accuracy(p.baseline_correct, p.baseline_scored),
            Money::from_nano_usd(p.spent_nusd).fine()
        )
    };
    loop {
        let changed = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        let progress = rx.borrow().clone();
        if let Some(bar) = &bar {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
            bar.set_message(describe(&progress));
        } else if last_line.elapsed() >= Duration::from_secs(5) || matches!(changed, Ok(Err(_))) {
            eprintln!(
                "{}/{} answers · {}",
                progress.done,
                progress.total,
                describe(&progress)
            );
            last_line = Instant::now();
        }
        if matches!(changed, Ok(Err(_))) {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
}

/// Calls per month per task: the eval TOML's, else the workload's task shares.
fn calls_per_month(
    settings: &EvalSettings,
    workload: Option<&Path>,
) -> Result<BTreeMap<String, f64>> {
    let mut calls = BTreeMap::new();
    if let Some(path) = workload {
        let file = WorkloadFile::parse(&path.display().to_string(), &read_input_file(path)?)
            .map_err(input_failure)?;
        // As `plan` reads it: without calls_per_month, the default workload's volume.
        let total = file
            .calls_per_month
            .unwrap_or(costfloor_core::workload::DEFAULT_CALLS_PER_MONTH);
        for task in &file.task {
            calls.insert(task.name.clone(), total * task.share);
        }
    }
    for (task, t) in &settings.task {
        if let Some(c) = t.calls_per_month {
            calls.insert(task.clone(), c);
        }
    }
    Ok(calls)
}

fn build_report(
    store: &EvalStore,
    run_id: &str,
    decision: &DecisionArgs,
    _config: Option<&gateway::config::Config>,
) -> Result<EvalReport> {
    if !(0.0..1.0).contains(&decision.max_gap) {
        return Err(input_failure(format!(
            "--max-gap: {} is not allowed; expected a fraction from 0 to 1, e.g. 0.05",
            decision.max_gap
        )));
    }
    let run = store.run(run_id)?.ok_or_else(|| {
        let known = store.run_ids().unwrap_or_default();
        input_failure(format!(
            "RUN_ID: no run `{run_id}` in this database; the runs are: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let settings: RunSettings =
        serde_json::from_str(&run.settings).context("reading the run's settings")?;
    let eval_settings = eval_settings(
        decision.eval_config.as_deref(),
        settings.eval_settings.as_deref(),
    )?;
    let results = store.results(run_id)?;
    let tasks: HashSet<&str> = results.iter().map(|r| r.task.as_str()).collect();
    let mut error_cost_usd = BTreeMap::new();
    for task in tasks {
        if let Some(cost) = eval_settings.error_cost_for(task, decision.error_cost_usd) {
            error_cost_usd.insert(task.to_string(), cost);
        }
    }
    let inputs = ReportInputs {
        max_gap: decision.max_gap,
        error_cost_usd,
        calls_per_month: calls_per_month(&eval_settings, decision.workload.as_deref())?,
        seed: settings.seed,
    };
    Ok(summary::build(
        &RunHeader {
            run_id,
            status: &run.status,
            dataset: &settings.dataset,
            candidate: &settings.candidate,
            baseline: &settings.baseline,
            judge: settings.judge.as_deref(),
            samples_chosen: settings.sample_ids.len() as u64,
        },
        &results,
        &inputs,
    ))
}

fn interval(i: Option<eval::stats::Interval>) -> String {
    i.map_or("-".to_string(), |i| {
        format!("{:.1}–{:.1}%", i.low * 100.0, i.high * 100.0)
    })
}

fn print_report(report: &EvalReport) -> Result<()> {
    let mut text = format!(
        "eval run {} ({}): candidate `{}` against baseline `{}`{}, {} samples, {:.0}% intervals, tolerance {:.1} points\n",
        report.run_id,
        report.status,
        report.candidate,
        report.baseline,
        report.judge.as_ref().map_or(String::new(), |j| format!(", judge `{j}`")),
        report.samples_chosen,
        report.confidence * 100.0,
        report.max_gap * 100.0
    );
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "task",
        "n",
        "candidate",
        "95% CI",
        "baseline",
        "95% CI",
        "gap (base − cand)",
        "McNemar p",
        "p99 ms cand/base",
        "$/sample cand/base",
        "decision",
    ]);
    for task in report.tasks.iter().chain(std::iter::once(&report.overall)) {
        let gap = task.gap.as_ref().map_or("-".to_string(), |g| {
            format!(
                "{:+.1} ({:+.1} to {:+.1}){}",
                g.point * 100.0,
                g.interval.low * 100.0,
                g.interval.high * 100.0,
                if g.basis == "judge" { " judge" } else { "" }
            )
        });
        let p99 = |s: &summary::Side| {
            s.latency_p99_ms
                .map_or("-".to_string(), |v| format!("{v:.0}"))
        };
        let cost = |s: &summary::Side| {
            s.cost_per_sample
                .map_or("-".to_string(), |c| format!("{:.6}", c.usd))
        };
        let decision = if task.task == "overall" {
            String::new()
        } else {
            task.recommendation.decision.clone()
        };
        table.add_row([
            task.task.clone(),
            task.paired
                .as_ref()
                .map(|p| p.n)
                .or(task.judged.as_ref().map(|j| j.n))
                .unwrap_or(0)
                .to_string(),
            task.candidate
                .accuracy
                .map_or("-".to_string(), |a| format!("{:.1}%", a * 100.0)),
            interval(task.candidate.accuracy_interval),
            task.baseline
                .accuracy
                .map_or("-".to_string(), |a| format!("{:.1}%", a * 100.0)),
            interval(task.baseline.accuracy_interval),
            gap,
            task.paired
                .as_ref()
                .map_or("-".to_string(), |p| format!("{:.3}", p.mcnemar_p)),
            format!("{}/{}", p99(&task.candidate), p99(&task.baseline)),
            format!("{}/{}", cost(&task.candidate), cost(&task.baseline)),
            decision,
        ]);
    }
    text.push_str(&table.to_string());
    text.push('\n');
    for task in &report.tasks {
        let mut lines = vec![format!(
            "{}: {} — {}",
            task.task, task.recommendation.decision, task.recommendation.reason
        )];
        if task.recommendation.decision == "undecided" && !task.power.enough {
            lines.push(format!("  {}", task.power.note));
        }
        if task.judge_failed > 0 {
            lines.push(format!(
                "  {} judge replies were not verdicts and are left out",
                task.judge_failed
            ));
        }
        if let Some(j) = &task.judged {
            lines.push(format!(
                "  judge ({}): {} won, {} tied, {} lost by the candidate; mean difference {:+.3} ({})",
                j.mode,
                j.wins,
                j.ties,
                j.losses,
                j.mean_difference,
                j.difference_interval.map_or("-".to_string(), |i| format!("{:+.3} to {:+.3}", i.low, i.high))
            ));
        }
        if let Some(e) = &task.error_cost {
            lines.push(match (&e.error_cost_per_month, &e.savings_per_month) {
                (Some(err), Some(save)) => format!(
                    "  at {} calls/month: errors cost {}/month against {}/month of API spend avoided (${:.2} an error)",
                    costfloor_core::money::group_thousands(&format!(
                        "{:.0}",
                        e.calls_per_month.unwrap_or(0.0)
                    )),
                    err.money().fine(),
                    save.money().fine(),
                    e.usd_per_error
                ),
                _ => format!(
                    "  errors cost ${:.6} a call against ${:.6} of API spend avoided (${:.2} an error; give --workload for monthly dollars)",
                    e.error_cost_per_call.usd, e.savings_per_call.usd, e.usd_per_error
                ),
            });
        }
        let failed = task.candidate.failed + task.baseline.failed;
        if failed > 0 {
            lines.push(format!(
                "  {failed} answers failed (candidate {}, baseline {}) and are left out",
                task.candidate.failed, task.baseline.failed
            ));
        }
        text.push_str(&lines.join("\n"));
        text.push('\n');
    }
    text.push_str(&format!(
        "spend: candidate {}, baseline {}, judge {}, total {}\n",
        report.overall.candidate.cost.money().fine(),
        report.overall.baseline.cost.money().fine(),
        report.judge_cost.money().fine(),
        report.total_cost.money().fine()
    ));
    output::print_text(&text)
}

fn run_report(args: ReportArgs) -> Result<()> {
    let config = load_gateway(&args.store)?;
    let db = db_path(&args.store, config.as_ref())?;
    let store = EvalStore::open(&db).with_context(|| format!("opening {}", db))?;
    let report = build_report(&store, &args.run_id, &args.decision, config.as_ref())?;
    if args.json {
        output::print_json(&report)
    } else {
        print_report(&report)
    }
}

fn run_policy(args: PolicyArgs) -> Result<()> {
    let config = load_gateway(&args.store)?;
    let db = db_path(&args.store, config.as_ref())?;
    let store = EvalStore::open(&db).with_context(|| format!("opening {}", db))?;
    let report = build_report(&store, &args.run_id, &args.decision, config.as_ref())?;
    let reference = config
        .as_ref()
        .and_then(|c| c.backends.iter().find(|b| b.name == report.baseline))
        .and_then(|b| b.price.as_ref())
        .map(|p| p.id.clone());
    let fragment = eval::policy::routes_toml(&report, reference.as_deref());
    match &args.out {
        Some(path) => crate::commands::write_atomically(path, &fragment)
            .with_context(|| format!("writing {}", path.display())),
        None => output::print_text(&fragment),
    }
}

fn run_shadow(args: ShadowArgs) -> Result<()> {
    let config = load_gateway(&args.store)?;
    let db = db_path(&args.store, config.as_ref())?;
    let since =
        report::period::parse_time("--since", &args.since, now_unix_ms()).map_err(input_failure)?;
    let settings = eval_settings(args.eval_config.as_deref(), None)?;
    let fallback = match &args.scorer {
        Some(text) => Some(parse_scorer("--scorer", text)?),
        None => None,
    };
    // Migrate first, so a ledger from an older build can be read.
    drop(EvalStore::open(&db).with_context(|| format!("opening {}", db))?);
    let pairs = ledger::read_shadow_pairs(
        &db,
        &ReportFilter {
            since_unix_ms: Some(since),
            until_unix_ms: None,
        },
        args.task.as_deref(),
    )?;
    let scorer_for = |task: &str| {
        settings
            .scorer_for(task, fallback.as_ref())
            .filter(|spec| !spec.is_judge())
            .and_then(|spec| Scorer::for_agreement(&spec).ok())
    };
    let judge_options = |task: &str| {
        settings
            .scorer_for(task, fallback.as_ref())
            .and_then(|spec| eval::judge::options(&spec))
    };
    let judged = match &args.judge {
        Some(name) => {
            let Some(config) = config else {
                return Err(input_failure(
                    "--judge: needs --config, whose backends it names",
                ));
            };
            let runtime =
                Arc::new(gateway::runtime::Runtime::build(config, None).map_err(input_failure)?);
            let backend = runner::backend(&runtime, "--judge", name).map_err(eval_failure)?;
            tokio_runtime()?.block_on(eval::shadow::judge_pairs(
                runtime,
                backend,
                &pairs,
                &judge_options,
                1,
                args.concurrency,
            ))
        }
        None => Vec::new(),
    };
    let report = eval::shadow::score(&pairs, &scorer_for, &judged, args.max_gap);
    if args.json {
        return output::print_json(&report);
    }
    let mut text = format!(
        "shadow pairs since {}: {} pairs, shadow spend {}\n",
        report::period::format_utc(since),
        pairs.len(),
        report.shadow_cost.money().fine()
    );
    for task in &report.tasks {
        text.push_str(&format!(
            "{}: {} pairs, {}, gap {}{}\n",
            task.task,
            task.pairs,
            if task.compared == 0 && task.judged > 0 {
                format!("{} judged", task.judged)
            } else {
                format!(
                    "{} compared ({}), agreement {} ({})",
                    task.compared,
                    task.scorer.as_deref().unwrap_or("no scorer"),
                    task.agreement
                        .map_or("-".to_string(), |a| format!("{:.1}%", a * 100.0)),
                    interval(task.agreement_interval)
                )
            },
            task.gap
                .map_or("-".to_string(), |g| format!("{:.1} points", g * 100.0)),
            if task.clearly_past {
                format!(
                    " — PAST THE TOLERANCE of {:.1} points, even at the interval's low end",
                    args.max_gap * 100.0
                )
            } else if task.flagged {
                format!(
                    " — past the tolerance of {:.1} points",
                    args.max_gap * 100.0
                )
            } else {
                String::new()
            }
        ));
        if let (Some(mean), Some(i)) = (task.judged_mean_difference, task.judged_interval) {
            text.push_str(&format!(
                "  judge: {} pairs graded, primary − reference {:+.3} ({:+.3} to {:+.3}), judge spend {}\n",
                task.judged,
                mean,
                i.low,
                i.high,
                task.judge_cost.money().fine()
            ));
        }
        if let Some(note) = &task.note {
            text.push_str(&format!("  {note}\n"));
        }
    }
    output::print_text(&text)
}
