//! The runner: every chosen sample to the candidate and the baseline (and, for judged
//! tasks, to the judge), concurrently within `--concurrency` and `--rpm`, backing off on
//! 429 and 529, each answer scored and stored as it arrives, so a run stopped by a
//! signal or the cost cap resumes without paying for any answer twice.
//!
//! Requests go through `gateway::call`, the backend code `serve` uses.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use costfloor_core::money::Money;
use gateway::call::{self, Answer, CallFailure};
use gateway::runtime::{Backend, Runtime};
use ledger::{EvalResult, EvalStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use wire::pair::{ChatParts, ClientRequest};

use crate::dataset::Sample;
use crate::judge::{self, JudgeMode};
use crate::rng::SplitMix64;
use crate::EvalError;

/// The sides of a comparison, as stored.
pub const CANDIDATE: &str = "candidate";
pub const BASELINE: &str = "baseline";
/// A pairwise judge's verdict; a scale judge grades each side apart.
pub const JUDGE: &str = "judge";
pub const JUDGE_CANDIDATE: &str = "judge:candidate";
pub const JUDGE_BASELINE: &str = "judge:baseline";

/// Output tokens assumed for the spend estimate of a sample without `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// What a run was started with, stored with it so `--resume` and `eval report` use
/// exactly the same choices.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    pub dataset: String,
    pub dataset_fingerprint: String,
    pub candidate: String,
    pub baseline: String,
    pub judge: Option<String>,
    /// The ids chosen (all, or `--limit` of them with `--seed`), in dataset order.
    pub sample_ids: Vec<String>,
    pub seed: u64,
    pub limit: Option<usize>,
    pub max_tokens: u32,
    /// The eval TOML's text, if one was given, for the error costs and scorers.
    pub eval_settings: Option<String>,
}

/// How hard to push the backends.
#[derive(Clone, Debug)]
pub struct Limits {
    pub concurrency: usize,
    /// Requests per minute over all sides; `None` for no limit.
    pub rpm: Option<u32>,
    /// Stop before the measured spend plus what is in flight would pass this.
    pub max_cost: Option<Money>,
    /// Tries per request on 429, 529 and other transient failures.
    pub max_tries: u32,
}

/// A running count, for the progress display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub errors: u64,
    pub candidate_correct: u64,
    pub candidate_scored: u64,
    pub baseline_correct: u64,
    pub baseline_scored: u64,
    pub spent_nusd: i64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// Stopped by a signal; resumable.
    Interrupted,
    /// Stopped before the next request would have passed `--max-cost-usd`; resumable.
    CostCap,
}

impl Ending {
    pub fn status(&self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Interrupted | Ending::CostCap => "stopped",
        }
    }
}

/// What the run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ending: Ending,
    /// Requests sent this time (retries included).
    pub requests: u64,
    pub spent: Money,
}

/// One request to make: a sample's side.
#[derive(Clone)]
struct Job {
    sample: usize,
    side: &'static str,
}

struct Shared {
    runtime: Arc<Runtime>,
    store: Arc<EvalStore>,
    run_id: String,
    seed: u64,
    max_tokens: u32,
    limits: Limits,
    candidate: Arc<Backend>,
    baseline: Arc<Backend>,
    judge: Option<Arc<Backend>>,
    spent_nusd: AtomicI64,
    reserved_nusd: AtomicI64,
    capped: AtomicBool,
    requests: AtomicU64,
    next_slot: Mutex<Option<Instant>>,
    progress: Mutex<Progress>,
    progress_tx: watch::Sender<Progress>,
    /// Outputs of this run so far, for the judge: (sample, side) → text.
    outputs: Mutex<HashMap<(usize, &'static str), String>>,
}

/// Resolves a backend name of the gateway config, or lists the valid ones.
pub fn backend(runtime: &Runtime, flag: &str, name: &str) -> Result<Arc<Backend>, EvalError> {
    call::backend(runtime, name).cloned().ok_or_else(|| {
        let names: Vec<&str> = runtime
            .backends
            .iter()
            .map(|b| b.config.name.as_str())
            .collect();
        EvalError::Input(format!(
            "{flag}: no backend named `{name}` in the gateway config; the backends are: {}",
            names.join(", ")
        ))
    })
}

/// The sample's request to `backend`.
pub fn request_for(
    sample: &Sample,
    backend: &Backend,
    max_tokens: u32,
) -> Result<ClientRequest, EvalError> {
    ClientRequest::from_chat(&ChatParts {
        model: &backend.config.model,
        system: sample.system.as_deref(),
        messages: &sample.messages,
        max_tokens: Some(sample.max_tokens.unwrap_or(max_tokens)),
        temperature: Some(sample.temperature.unwrap_or(0.0)),
    })
    .map_err(|e| {
        EvalError::Input(format!(
            "sample `{}` (line {}): {e}",
            sample.id, sample.line
        ))
    })
}

/// Tokens a judge prompt adds around the request and the two answers (its
/// instructions), for the spend estimate made before the answers exist.
const JUDGE_PROMPT_TOKENS: u64 = 120;

/// The spend a run is expected to reach: every answer still to get, its prompt
/// estimated as the gateway estimates it and its output at its `max_tokens`; a judge's
/// prompt as the request plus two answers at their `max_tokens`. Priced at the
/// catalog's prices (an upper bound for the output).
pub fn estimate_spend(
    samples: &[Sample],
    pending: &[(usize, &'static str)],
    backends: &dyn Fn(&'static str) -> Option<Arc<Backend>>,
    max_tokens: u32,
) -> Result<Money, EvalError> {
    let mut total = Money::ZERO;
    for &(index, side) in pending {
        let Some(backend) = backends(side) else {
            continue;
        };
        let sample = &samples[index];
        let input = request_for(sample, &backend, max_tokens)?.estimated_input_tokens();
        let output = u64::from(sample.max_tokens.unwrap_or(max_tokens));
        let (input, output) = if side.starts_with(JUDGE) {
            (
                input + 2 * output + JUDGE_PROMPT_TOKENS,
                u64::from(judge::VERDICT_MAX_TOKENS),
            )
        } else {
            (input, output)
        };
        total += call::estimate_cost(&backend, input, output);
    }
    Ok(total)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The sides each sample still needs, given what is stored.
pub fn pending_jobs(
    samples: &[Sample],
    chosen: &[usize],
    stored: &HashSet<(String, String)>,
    judge: Option<&str>,
) -> Vec<(usize, &'static str)> {
    let mut jobs = Vec::new();
    for &index in chosen {
        let sample = &samples[index];
        let has = |side: &str| stored.contains(&(sample.id.clone(), side.to_string()));
        for side in [CANDIDATE, BASELINE] {
            if !has(side) {
                jobs.push((index, side));
            }
        }
        if judge.is_some() {
            if let Some(mode) = judge::mode_of(&sample.scorer_spec) {
                let sides: &[&'static str] = match mode {
                    JudgeMode::Pairwise => &[JUDGE],
                    JudgeMode::Scale => &[JUDGE_CANDIDATE, JUDGE_BASELINE],
                };
                for &side in sides {
                    if !has(side) {
                        jobs.push((index, side));
                    }
                }
            }
        }
    }
    jobs
}

/// Runs the pending answers of `run_id`. `stored` holds what is already in the store
/// (its outputs feed the judge). Returns when all are done, the token is cancelled
/// (after the requests in flight are stored), or the cost cap stops it.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    runtime: Arc<Runtime>,
    store: Arc<EvalStore>,
    run_id: &str,
    settings: &RunSettings,
    samples: Arc<Vec<Sample>>,
    chosen: &[usize],
    stored: &[EvalResult],
    limits: Limits,
    cancel: CancellationToken,
    progress_tx: watch::Sender<Progress>,
) -> Result<Outcome, EvalError> {
    let candidate = backend(&runtime, "--candidate", &settings.candidate)?;
    let baseline = backend(&runtime, "--baseline", &settings.baseline)?;
    let judge_backend = match &settings.judge {
        Some(name) => Some(backend(&runtime, "--judge", name)?),
        None => None,
    };
    let index_of: HashMap<&str, usize> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut stored_keys = HashSet::new();
    let mut outputs = HashMap::new();
    let mut progress = Progress::default();
    let mut already_spent = 0i64;
    for result in stored.iter().filter(|r| r.error.is_none()) {
        stored_keys.insert((result.sample_id.clone(), result.side.clone()));
        already_spent += result.cost_nusd;
        if let (Some(&index), Some(output)) =
            (index_of.get(result.sample_id.as_str()), &result.output)
        {
            let side = side_name(&result.side);
            if let Some(side) = side {
                outputs.insert((index, side), output.clone());
            }
        }
        count(&mut progress, result);
    }
    let jobs = pending_jobs(&samples, chosen, &stored_keys, settings.judge.as_deref());
    progress.total = progress.done + jobs.len() as u64;
    progress.spent_nusd = already_spent;
    let _ = progress_tx.send(progress.clone());
    let shared = Arc::new(Shared {
        runtime,
        store,
        run_id: run_id.to_string(),
        seed: settings.seed,
        max_tokens: settings.max_tokens,
        limits,
        candidate,
        baseline,
        judge: judge_backend,
        spent_nusd: AtomicI64::new(already_spent),
        reserved_nusd: AtomicI64::new(0),
        capped: AtomicBool::new(false),
        requests: AtomicU64::new(0),
        next_slot: Mutex::new(None),
        progress: Mutex::new(progress),
        progress_tx,
        outputs: Mutex::new(outputs),
    });
    // Answers first, judges after: a judge needs both answers.
    let (answers, judges): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .map(|(sample, side)| Job { sample, side })
        .partition(|job| !job.side.starts_with(JUDGE));
    for phase in [answers, judges] {
        run_phase(&shared, &samples, phase, &cancel).await?;
        if cancel.is_cancelled() || shared.capped.load(Ordering::Acquire) {
            break;
        }
    }
    let ending = if shared.capped.load(Ordering::Acquire) {
        Ending::CostCap
    } else if cancel.is_cancelled() {
        Ending::Interrupted
    } else {
        Ending::Complete
    };
    let _ = shared.progress_tx.send(lock(&shared.progress).clone());
    Ok(Outcome {
        ending,
        requests: shared.requests.load(Ordering::Acquire),
        spent: Money::from_nano_usd(shared.spent_nusd.load(Ordering::Acquire)),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn side_name(side: &str) -> Option<&'static str> {
    [CANDIDATE, BASELINE, JUDGE, JUDGE_CANDIDATE, JUDGE_BASELINE]
        .into_iter()
        .find(|s| *s == side)
}

fn count(progress: &mut Progress, result: &EvalResult) {
    progress.done += 1;
    if result.error.is_some() {
        progress.errors += 1;
    }
    let (correct, scored) = match result.side.as_str() {
        CANDIDATE => (
            &mut progress.candidate_correct,
            &mut progress.candidate_scored,
        ),
        BASELINE => (
            &mut progress.baseline_correct,
            &mut progress.baseline_scored,
        ),
        _ => return,
    };
    if let Some(ok) = result.correct {
        *scored += 1;
        if ok {
            *correct += 1;
        }
    }
}

async fn run_phase(
    shared: &Arc<Shared>,
    samples: &Arc<Vec<Sample>>,
    jobs: Vec<Job>,
    cancel: &CancellationToken,
) -> Result<(), EvalError> {
    let permits = Arc::new(Semaphore::new(shared.limits.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.map_err(|_| EvalError::Internal("semaphore closed".into()))?,
            () = cancel.cancelled() => break,
        };
        if cancel.is_cancelled() || shared.capped.load(Ordering::Acquire) {
            break;
        }
        let Some(request) = prepare(shared, samples, &job)? else {
            continue;
        };
        let (request, backend, estimate) = request;
        // The cost cap: what is spent, plus what is in flight, plus this one.
        if let Some(cap) = shared.limits.max_cost {
            let spent = shared.spent_nusd.load(Ordering::Acquire);
            let reserved = shared
                .reserved_nusd
                .fetch_add(estimate.nano_usd(), Ordering::AcqRel);
            if spent + reserved + estimate.nano_usd() > cap.nano_usd() {
                shared
                    .reserved_nusd
                    .fetch_sub(estimate.nano_usd(), Ordering::AcqRel);
                shared.capped.store(true, Ordering::Release);
                break;
            }
        }
        let shared = Arc::clone(shared);
        let samples = Arc::clone(samples);
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let result = execute(&shared, &samples, &job, &request, &backend, &cancel).await;
            if shared.limits.max_cost.is_some() {
                shared
                    .reserved_nusd
                    .fetch_sub(estimate.nano_usd(), Ordering::AcqRel);
            }
            drop(permit);
            result
        });
        // Reap finished tasks as we go, so errors surface early.
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| EvalError::Internal(e.to_string()))??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| EvalError::Internal(e.to_string()))??;
    }
    Ok(())
}

type Prepared = (ClientRequest, Arc<Backend>, Money);

/// The request of one job, its backend and its estimated cost; `None` for a judge
/// whose answers are missing (a side failed).
fn prepare(shared: &Shared, samples: &[Sample], job: &Job) -> Result<Option<Prepared>, EvalError> {
    let sample = &samples[job.sample];
    let backend = match job.side {
        CANDIDATE => Arc::clone(&shared.candidate),
        BASELINE => Arc::clone(&shared.baseline),
        _ => match &shared.judge {
            Some(judge) => Arc::clone(judge),
            None => return Ok(None),
        },
    };
    let max_tokens = sample.max_tokens.unwrap_or(shared.max_tokens);
    let request = if job.side.starts_with(JUDGE) {
        let outputs = lock(&shared.outputs);
        let (Some(candidate), Some(baseline)) = (
            outputs.get(&(job.sample, CANDIDATE)),
            outputs.get(&(job.sample, BASELINE)),
        ) else {
            return Ok(None);
        };
        let prompt = judge::prompt(
            &judge::Case::of_sample(sample),
            job.side,
            candidate,
            baseline,
            shared.seed,
        );
        judge::request(&backend.config.model, prompt)
            .map_err(|e| EvalError::Internal(e.to_string()))?
    } else {
        request_for(sample, &backend, shared.max_tokens)?
    };
    let input = (request.estimated_input_tokens()).max(1);
    let output = if job.side.starts_with(JUDGE) {
        u64::from(judge::VERDICT_MAX_TOKENS)
    } else {
        u64::from(max_tokens)
    };
    let estimate = call::estimate_cost(&backend, input, output);
    Ok(Some((request, backend, estimate)))
}

/// Waits for this request's slot under `--rpm`.
async fn pace(shared: &Shared) {
    let Some(rpm) = shared.limits.rpm.filter(|&r| r > 0) else {
        return;
    };
    let interval = Duration::from_secs_f64(60.0 / f64::from(rpm));
    let at = {
        let mut next = lock(&shared.next_slot);
        let now = Instant::now();
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + interval);
        at
    };
    tokio::time::sleep_until(at.into()).await;
}

/// Sends one job (with back-off on transient failures), scores and stores the answer.
async fn execute(
    shared: &Shared,
    samples: &[Sample],
    job: &Job,
    request: &ClientRequest,
    backend: &Backend,
    cancel: &CancellationToken,
) -> Result<(), EvalError> {
    let sample = &samples[job.sample];
    let mut attempts = 0u32;
    let mut cost = Money::ZERO;
    let answer: Result<Answer, CallFailure> = loop {
        pace(shared).await;
        attempts += 1;
        shared.requests.fetch_add(1, Ordering::AcqRel);
        match call::call(&shared.runtime, backend, request).await {
            Ok(answer) => break Ok(answer),
            Err(failure)
                if failure.transient
                    && attempts < shared.limits.max_tries
                    && !cancel.is_cancelled() =>
            {
                // 429 and 529 say when to come back; otherwise 0.5 s doubling, to 30 s.
                let wait = failure.retry_after.unwrap_or_else(|| {
                    Duration::from_millis(500u64.saturating_mul(1 << (attempts - 1).min(6)))
                        .min(Duration::from_secs(30))
                });
                tracing::debug!(sample = %sample.id, side = job.side, wait_ms = wait.as_millis() as u64, "backing off: {}", failure.message);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => break Err(failure),
                }
            }
            Err(failure) => break Err(failure),
        }
    };
    let mut result = EvalResult {
        run_id: shared.run_id.clone(),
        sample_id: sample.id.clone(),
        side: job.side.to_string(),
        task: sample.task.clone(),
        backend: backend.config.name.clone(),
        output: None,
        correct: None,
        grade: None,
        detail: None,
        error: None,
        latency_us: 0,
        input_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 0,
        cost_nusd: 0,
        attempts: i64::from(attempts),
        finished_at_unix_ms: unix_ms(),
    };
    match answer {
        Ok(answer) => {
            cost = answer.cost;
            result.latency_us = answer.latency.as_micros() as i64;
            result.input_tokens = answer.usage.input_tokens as i64;
            result.cache_read_tokens = answer.usage.cache_read_tokens as i64;
            result.cache_write_tokens =
                (answer.usage.cache_write_tokens + answer.usage.cache_write_1h_tokens) as i64;
            result.output_tokens = answer.usage.output_tokens as i64;
            result.cost_nusd = answer.cost.nano_usd();
            if job.side.starts_with(JUDGE) {
                let grade = judge::read_verdict(
                    &judge::Case::of_sample(sample),
                    job.side,
                    &answer.text,
                    shared.seed,
                );
                result.grade = grade.grade;
                result.detail = Some(grade.detail);
                if grade.grade.is_none() {
                    result.error = Some(format!(
                        "the judge's answer is not a verdict: {:?}",
                        clip(&answer.text)
                    ));
                }
            } else {
                result.correct = sample.scorer.score(&answer.text);
                lock(&shared.outputs).insert((job.sample, job.side), answer.text.clone());
            }
            result.output = Some(answer.text);
        }
        Err(failure) => {
            result.latency_us = failure.latency.as_micros() as i64;
            result.error = Some(failure.message);
        }
    }
    shared
        .spent_nusd
        .fetch_add(cost.nano_usd(), Ordering::AcqRel);
    let store = Arc::clone(&shared.store);
    let stored = result.clone();
    tokio::task::spawn_blocking(move || store.insert_result(&stored))
        .await
        .map_err(|e| EvalError::Internal(e.to_string()))?
        .map_err(EvalError::Ledger)?;
    let snapshot = {
        let mut progress = lock(&shared.progress);
        count(&mut progress, &result);
        progress.spent_nusd = shared.spent_nusd.load(Ordering::Acquire);
        progress.clone()
    };
    let _ = shared.progress_tx.send(snapshot);
    Ok(())
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

/// A fresh run id: the time and a random suffix.
pub fn new_run_id() -> String {
    let now = unix_ms();
    let mut rng = SplitMix64::new(now as u64 ^ u64::from(std::process::id()));
    format!("run-{}-{:06x}", now / 1000, rng.next_u64() & 0xff_ffff)
}
