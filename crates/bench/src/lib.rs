//! `costfloor bench`: measures a real server's capacity at a workload's shape.
//!
//! A run, in order ([`run`]):
//! 1. [`Target::check`]: `GET /v1/models` answers a model list (else: unreachable, not
//!    an API of the format, or the key refused), before anything reaches the
//!    generation endpoint.
//! 2. A probe: one whole request of one output token, with the length-forcing fields
//!    (`ignore_eos`, `min_tokens`); a server that refuses them gets `max_tokens` only.
//! 3. [`prompt::calibrate`]: the prompt's length fitted to the input tokens wanted.
//! 4. One streamed request of the full shape: the stream reads as text deltas.
//! 5. The levels ([`load`]): `--rate`s (open loop), `--concurrency`s (closed loop), or
//!    a [`sweep`]; each recorded ([`record`]) into the measurement's [`Level`].
//!
//! The result is a [`Measurement`] (`costfloor_core::measured`, docs/bench.md). The
//! crate builds no vendor JSON: bodies and stream events go through `wire::bench`.

pub mod error;
pub mod load;
pub mod prompt;
pub mod record;
pub mod rng;
pub mod sweep;
pub mod target;

mod request;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use costfloor_core::measured::{Capacity, Level, Measurement, Shape, Slo, FORMAT_VERSION};
use wire::bench::{generation_body, BenchFormat, Forcing, Generation};

pub use error::BenchError;
pub use load::{LevelSpec, Observer, Quiet, MAX_IN_FLIGHT};
pub use record::{Failures, Live};
pub use sweep::SweepSettings;
pub use target::{ApiKey, Target};

use crate::load::{run_level, Runner};
use crate::record::Outcome;
use crate::sweep::Bisection;

/// The load a run offers.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Open loop at each rate, in order.
    Rates(Vec<f64>),
    /// Closed loop at each concurrency, in order.
    Concurrencies(Vec<u32>),
    /// Search for the highest rate that meets the SLO.
    Sweep(SweepSettings),
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub target_url: String,
    pub model: String,
    pub format: BenchFormat,
    pub api_key: Option<ApiKey>,
    pub input_tokens: u64,
    pub output_tokens: u32,
    /// The length mix (a workload's tasks): each request draws one by share. Empty: every
    /// request has `input_tokens` and `output_tokens`.
    pub mix: Vec<LengthClass>,
    pub load: Load,
    /// Of each level (then the requests in flight finish).
    pub duration: Duration,
    pub slo: Slo,
    pub deployment: Option<String>,
    pub seed: u64,
}

/// One request shape of a length mix.
#[derive(Clone, Debug, PartialEq)]
pub struct LengthClass {
    pub name: String,
    pub share: f64,
    pub input_tokens: u64,
    pub output_tokens: u32,
}

impl BenchPlan {
    /// The mix, or the one fixed shape.
    pub fn classes(&self) -> Vec<LengthClass> {
        if self.mix.is_empty() {
            vec![LengthClass {
                name: "all".to_owned(),
                share: 1.0,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
            }]
        } else {
            self.mix.clone()
        }
    }
}

/// A finished run: the measurement, and each level's failure reasons.
#[derive(Clone, Debug)]
pub struct Run {
    pub measurement: Measurement,
    pub failures: Vec<Failures>,
}

/// Checks, probes, calibrates, runs every level and returns the measurement.
pub async fn run(plan: BenchPlan, observer: Arc<dyn Observer>) -> Result<Run, BenchError> {
    validate(&plan)?;
    let started_at = rfc3339_now();
    let target = Target::new(
        &plan.target_url,
        plan.format,
        &plan.model,
        plan.api_key.clone(),
    )?;
    let models = target.check().await?;
    let forcing = probe(&target, &models, observer.as_ref()).await?;
    let salt = run_salt();
    let classes = plan.classes();
    let total_share: f64 = classes.iter().map(|c| c.share).sum();
    let mut shapes = Vec::with_capacity(classes.len());
    let mut up_to = 0.0;
    let mut calibrations = Vec::with_capacity(classes.len());
    for class in &classes {
        let calibrated =
            prompt::calibrate(&target, class.input_tokens, forcing, plan.seed, salt).await?;
        let label = if classes.len() > 1 {
            format!(
                "{} ({:.0}%): ",
                class.name,
                class.share / total_share * 100.0
            )
        } else {
            String::new()
        };
        observer.note(&format!(
            "prompt: {label}{} words → {} input tokens (target {}, calibrated by {})",
            calibrated.maker.words(),
            calibrated.input_tokens,
            class.input_tokens,
            calibrated.method.as_str()
        ));
        up_to += class.share / total_share;
        shapes.push(load::Shape {
            maker: calibrated.maker.clone(),
            expected_input_tokens: calibrated.input_tokens,
            max_tokens: class.output_tokens,
            up_to,
        });
        calibrations.push(calibrated);
    }
    let url = target.url(target.format.generation_path());
    let runner = Arc::new(Runner {
        target,
        url,
        shapes,
        forcing,
        slo: plan.slo,
        seed: plan.seed,
        observer: Arc::clone(&observer),
        sequence: AtomicU64::new(0),
        empty_histogram: record::empty_histogram()
            .map_err(|err| BenchError::Client(format!("a latency histogram: {err}")))?,
    });
    stream_probe(&runner, observer.as_ref()).await?;

    let mut levels: Vec<Level> = Vec::new();
    let mut failures: Vec<Failures> = Vec::new();
    let mut push = |(level, failed): (Level, Failures)| {
        let passed = level.meets_slo;
        levels.push(level);
        failures.push(failed);
        passed
    };
    match &plan.load {
        Load::Rates(rates) => {
            for (index, rate) in rates.iter().enumerate() {
                push(run_level(&runner, index, LevelSpec::Rate(*rate), plan.duration).await);
            }
        }
        Load::Concurrencies(streams) => {
            for (index, streams) in streams.iter().enumerate() {
                let spec = LevelSpec::Concurrency(*streams);
                push(run_level(&runner, index, spec, plan.duration).await);
            }
        }
        Load::Sweep(settings) => {
            let saturation = LevelSpec::Concurrency(settings.saturation_concurrency);
            let (level, failed) = run_level(&runner, 0, saturation, plan.duration).await;
            let max_rate = level.requests_per_s;
            push((level, failed));
            let mut bisection = Bisection::new(max_rate, *settings);
            let mut index = 1;
            while let Some(rate) = bisection.next_rate() {
                let spec = LevelSpec::Rate(rate);
                let passed = push(run_level(&runner, index, spec, plan.duration).await);
                bisection.record(rate, passed);
                index += 1;
            }
        }
    }

    let measurement = Measurement {
        version: FORMAT_VERSION,
        target: runner.target.origin.clone(),
        model: plan.model.clone(),
        format: plan.format.as_str().to_owned(),
        deployment: plan.deployment.clone(),
        started_at,
        shape: shape(&classes, &calibrations, forcing, &levels),
        slo: plan.slo,
        capacity: capacity(&levels),
        levels,
    };
    Ok(Run {
        measurement,
        failures,
    })
}

fn validate(plan: &BenchPlan) -> Result<(), BenchError> {
    let bad = |message: String| Err(BenchError::Input(message));
    if plan.input_tokens == 0 {
        return bad("--input-tokens must be at least 1".to_owned());
    }
    if plan.output_tokens == 0 {
        return bad("--output-tokens must be at least 1".to_owned());
    }
    if plan.duration.is_zero() {
        return bad("--duration must be above 0".to_owned());
    }
    for class in &plan.mix {
        if !(class.share > 0.0 && class.share.is_finite()) {
            return bad(format!(
                "task {}: share = {} must be a positive fraction",
                class.name, class.share
            ));
        }
        if class.input_tokens == 0 || class.output_tokens == 0 {
            return bad(format!(
                "task {}: input_tokens = {} and output_tokens = {} must both be at least 1",
                class.name, class.input_tokens, class.output_tokens
            ));
        }
    }
    for (name, value) in [
        ("--slo-ttft-ms", plan.slo.ttft_ms),
        ("--slo-tpot-ms", plan.slo.tpot_ms),
    ] {
        if !(value > 0.0 && value.is_finite()) {
            return bad(format!("{name} must be a positive number, got {value}"));
        }
    }
    match &plan.load {
        Load::Rates(rates) => {
            if rates.is_empty() {
                return bad("--rate needs at least one value".to_owned());
            }
            if let Some(rate) = rates.iter().find(|r| !(**r > 0.0 && r.is_finite())) {
                return bad(format!(
                    "--rate must be positive requests per second, got {rate}"
                ));
            }
        }
        Load::Concurrencies(streams) => {
            if streams.is_empty() {
                return bad("--concurrency needs at least one value".to_owned());
            }
            if streams.contains(&0) {
                return bad("--concurrency must be at least 1".to_owned());
            }
            if let Some(big) = streams.iter().find(|s| u64::from(**s) > MAX_IN_FLIGHT) {
                return bad(format!(
                    "--concurrency {big} is above the most this client holds ({MAX_IN_FLIGHT})"
                ));
            }
        }
        Load::Sweep(settings) => {
            if settings.saturation_concurrency == 0
                || u64::from(settings.saturation_concurrency) > MAX_IN_FLIGHT
            {
                return bad(format!(
                    "the sweep's saturation concurrency must be 1 to {MAX_IN_FLIGHT}"
                ));
            }
            if !(settings.low_fraction > 0.0 && settings.low_fraction < 1.0) {
                return bad("the sweep's low fraction must be between 0 and 1".to_owned());
            }
        }
    }
    Ok(())
}

/// The probe: one whole request of one output token. Returns the forcing the server
/// accepts.
async fn probe(
    target: &Target,
    models: &[String],
    observer: &dyn Observer,
) -> Result<Forcing, BenchError> {
    let wanted = if target.format.can_force_length() {
        Forcing::IgnoreEosMinTokens
    } else {
        Forcing::MaxTokensOnly
    };
    let send = |forcing: Forcing| {
        let body = generation_body(
            target.format,
            &Generation {
                model: &target.model,
                prompt: "Say hello.",
                max_tokens: 1,
                forcing,
                stream: false,
            },
        );
        target.whole(body)
    };
    let (status, body) = send(wanted).await?;
    if status.is_success() {
        check_whole(target, &body)?;
        return Ok(wanted);
    }
    let said = wire::bench::error_message(&body)
        .map(|message| target.scrub(&message))
        .unwrap_or_else(|| target::describe(&body));
    if target::is_auth(status) {
        return Err(target.auth_error(status, &body));
    }
    if status == http::StatusCode::NOT_FOUND {
        let listed = if models.is_empty() {
            String::new()
        } else {
            format!("; it lists: {}", models.join(", "))
        };
        return Err(BenchError::Probe {
            target: target.origin.clone(),
            status: status.as_u16(),
            detail: format!(
                "{said} (is --model {:?} served there{listed}?)",
                target.model
            ),
        });
    }
    let refused_fields = matches!(status.as_u16(), 400 | 422) && wanted != Forcing::MaxTokensOnly;
    if refused_fields {
        let (retry_status, retry_body) = send(Forcing::MaxTokensOnly).await?;
        if retry_status.is_success() {
            check_whole(target, &retry_body)?;
            observer.note(&format!(
                "the server refused ignore_eos/min_tokens ({said}); output length is asked \
                 with max_tokens only"
            ));
            return Ok(Forcing::MaxTokensOnly);
        }
    }
    Err(BenchError::Probe {
        target: target.origin.clone(),
        status: status.as_u16(),
        detail: said,
    })
}

/// A 2xx whole answer must be the API's JSON, not a web page.
fn check_whole(target: &Target, body: &[u8]) -> Result<(), BenchError> {
    if wire::bench::read_whole_usage(target.format, body).is_some() {
        return Ok(());
    }
    Err(target.not_an_api(format!(
        "{} answered a generation request with {}, not a {} response",
        target.format.generation_path(),
        target::describe(body),
        target.format.as_str()
    )))
}

/// One streamed request of the full shape, before the load: the stream must read.
async fn stream_probe(runner: &Runner, observer: &dyn Observer) -> Result<(), BenchError> {
    // The first shape of the mix (the whole shape when there is one).
    let Some(shape) = runner.shapes.first() else {
        return Err(BenchError::Input("no request shape to send".to_owned()));
    };
    let output_tokens = shape.max_tokens;
    let body = generation_body(
        runner.target.format,
        &Generation {
            model: &runner.target.model,
            prompt: &shape.maker.prompt(u64::MAX),
            max_tokens: output_tokens,
            forcing: runner.forcing,
            stream: true,
        },
    );
    // A stream cut by a transient fault (a busy server, a reset, an error event) is
    // tried again, as the whole probe is; what fails every time is the answer.
    let mut outcome = Outcome::Failed(String::new());
    for attempt in 1..=target::TRANSIENT_ATTEMPTS {
        outcome = request::stream_one(
            &runner.target,
            &runner.url,
            body.clone(),
            shape.expected_input_tokens,
            output_tokens,
        )
        .await;
        let transient = match &outcome {
            Outcome::Completed(_) => false,
            Outcome::Failed(reason) => reason
                .strip_prefix("HTTP ")
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| http::StatusCode::from_u16(code).ok())
                .is_none_or(target::is_transient),
        };
        if !transient || attempt == target::TRANSIENT_ATTEMPTS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
    }
    match outcome {
        Outcome::Completed(sample) => {
            if sample.output_tokens != u64::from(output_tokens) {
                observer.note(&format!(
                    "the probe stream answered {} of the {output_tokens} output tokens asked \
                     ({}): the measured mean is recorded next to the target",
                    sample.output_tokens,
                    runner.forcing.as_str()
                ));
            }
            Ok(())
        }
        Outcome::Failed(reason) if reason.starts_with("HTTP ") => Err(BenchError::Probe {
            target: runner.target.origin.clone(),
            status: reason
                .trim_start_matches("HTTP ")
                .parse()
                .unwrap_or_default(),
            detail: "the streamed probe request failed".to_owned(),
        }),
        Outcome::Failed(reason) => Err(runner.target.not_an_api(format!(
            "a streamed request (stream: true) did not read as a {} stream: {reason}",
            runner.target.format.as_str()
        ))),
    }
}

fn shape(
    classes: &[LengthClass],
    calibrated: &[prompt::Calibrated],
    forcing: Forcing,
    levels: &[Level],
) -> Shape {
    let total_share: f64 = classes.iter().map(|c| c.share).sum();
    let target = |pick: fn(&LengthClass) -> f64| {
        classes.iter().map(|c| c.share * pick(c)).sum::<f64>() / total_share
    };
    let method = calibrated
        .first()
        .map_or("none", |c| c.method.as_str())
        .to_owned();
    let completed: u64 = levels.iter().map(|l| l.completed).sum();
    let mean = |sum: u64| {
        if completed == 0 {
            0.0
        } else {
            sum as f64 / completed as f64
        }
    };
    Shape {
        input_tokens_target: target(|c| c.input_tokens as f64),
        output_tokens_target: target(|c| f64::from(c.output_tokens)),
        input_tokens_mean: mean(levels.iter().map(|l| l.input_tokens).sum()),
        output_tokens_mean: mean(levels.iter().map(|l| l.output_tokens).sum()),
        input_calibration: method,
        output_forcing: forcing.as_str().to_owned(),
    }
}

/// The passing level that completed the most requests per second.
pub fn capacity(levels: &[Level]) -> Option<Capacity> {
    levels
        .iter()
        .enumerate()
        .filter(|(_, level)| level.meets_slo)
        .max_by(|(_, a), (_, b)| a.requests_per_s.total_cmp(&b.requests_per_s))
        .map(|(index, level)| Capacity {
            level: index,
            requests_per_s: level.requests_per_s,
            output_tokens_per_s: level.output_tokens_per_s,
        })
}

/// Mixed into every prompt tag, so that two runs share no prompt.
fn run_salt() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(0))
        .unwrap_or(0)
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let seconds = i64::try_from(seconds).unwrap_or(0);
    let (year, month, day) = costfloor_core::calendar::civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}
