//! Configuration of the simulated backend: latency, output length, auth, and the fault plan.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything that shapes how the simulator behaves.
///
/// Deserializes from TOML (see [`SimConfig::from_toml_str`]) or JSON. Every field is
/// optional; unknown fields are rejected. Durations are written in milliseconds:
///
/// ```toml
/// ttft_ms = 100                 # delay before the first token
/// token_delay_ms = 10           # delay between tokens
/// default_output_tokens = 32    # output length when max_tokens does not cut it
/// models = ["gpt-4o-mini", "claude-sonnet-4-5"]   # empty: accept any model
/// api_key = "sk-test"           # unset: accept any key (or none)
/// require_anthropic_version = true
/// max_running = 8               # unset: no concurrency limit, nothing waits
/// base_step_ms = 4.0            # capacity model: token gaps grow with the batch
/// per_sequence_step_ms = 0.25   #   step = base + per_sequence × running
/// max_body_bytes = 33554432
/// seed = 0
///
/// [[faults]]
/// kind = "rate_limit"
/// count = 2
/// retry_after_s = 3
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Time to first token: the delay before the first byte of a streamed body, and
    /// part of the latency of a non-streamed response.
    #[serde(rename = "ttft_ms", with = "millis")]
    pub ttft: Duration,
    /// Delay between two output tokens.
    #[serde(rename = "token_delay_ms", with = "millis")]
    pub token_delay: Duration,
    /// Output length, in tokens (= words), when `max_tokens` is larger or absent.
    pub default_output_tokens: u32,
    /// Models served. Empty: any model name is accepted and echoed back. Otherwise,
    /// another name gets a 404 in the format of the endpoint called.
    pub models: Vec<String>,
    /// When set, requests must carry this key as `Authorization: Bearer KEY` or
    /// `x-api-key: KEY`; others get a 401.
    pub api_key: Option<String>,
    /// Reject `/v1/messages` requests without an `anthropic-version` header, as the
    /// real API does.
    pub require_anthropic_version: bool,
    /// Requests generating at once; more wait (shown as `vllm:num_requests_waiting`).
    pub max_running: Option<u32>,
    /// The capacity model (see [`CapacityModel`]): when set, every token gap of every
    /// running stream is one decode step, `base_step_ms + per_sequence_step_ms ×
    /// running`, instead of `token_delay_ms`.
    pub base_step_ms: Option<f64>,
    /// The step time each running sequence adds (capacity model only).
    pub per_sequence_step_ms: f64,
    /// Request bodies above this size get a 413.
    pub max_body_bytes: usize,
    /// Seed of the generator behind fault probabilities and response ids.
    pub seed: u64,
    /// Faults applied to the API requests that follow start-up.
    pub faults: FaultPlan,
    /// The names `GET /metrics` uses: vLLM's (default) or the llama.cpp server's.
    pub metrics_format: MetricsFormat,
    /// Known accuracy per model and task on an eval dataset ([`crate::quality`]).
    pub quality: Option<crate::quality::QualityConfig>,
}

/// Which server's metric names `GET /metrics` exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFormat {
    /// vLLM's `vllm:*` series.
    #[default]
    Vllm,
    /// The llama.cpp server's `llamacpp:*` series (its `--metrics` endpoint).
    Llamacpp,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            ttft: Duration::from_millis(100),
            token_delay: Duration::from_millis(10),
            default_output_tokens: 32,
            models: Vec::new(),
            api_key: None,
            require_anthropic_version: true,
            max_running: None,
            base_step_ms: None,
            per_sequence_step_ms: 0.0,
            max_body_bytes: 32 * 1024 * 1024,
            seed: 0,
            faults: FaultPlan::default(),
            metrics_format: MetricsFormat::Vllm,
            quality: None,
        }
    }
}

/// A fault step or `x-sim-fault` header that cannot be used; the message names the
/// option and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML text does not parse into a [`SimConfig`].
    #[error("invalid sim config: {0}")]
    Toml(#[from] toml::de::Error),
    /// The values parse but are out of range.
    #[error("invalid sim config: {0}")]
    Invalid(String),
    /// A fault step is out of range.
    #[error("invalid sim config: {0}")]
    Fault(#[from] FaultError),
}

impl SimConfig {
    /// Parses a TOML configuration (the format of `costfloor sim --config FILE`) and
    /// checks it with [`SimConfig::validate`].
    pub fn from_toml_str(text: &str) -> Result<SimConfig, ConfigError> {
        let config: SimConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_running == Some(0) {
            return Err(ConfigError::Invalid(
                "max_running must be at least 1".into(),
            ));
        }
        let step_values = [self.base_step_ms.unwrap_or(0.0), self.per_sequence_step_ms];
        if step_values.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(ConfigError::Invalid(
                "base_step_ms and per_sequence_step_ms must be finite and at least 0".into(),
            ));
        }
        if self.base_step_ms.is_none() && self.per_sequence_step_ms != 0.0 {
            return Err(ConfigError::Invalid(
                "per_sequence_step_ms needs base_step_ms (the capacity model)".into(),
            ));
        }
        Ok(self.faults.validate()?)
    }

    /// The capacity model, when `base_step_ms` is set.
    pub fn capacity_model(&self) -> Option<CapacityModel> {
        self.base_step_ms.map(|base_step_ms| CapacityModel {
            ttft_ms: self.ttft.as_secs_f64() * 1000.0,
            base_step_ms,
            per_sequence_step_ms: self.per_sequence_step_ms,
            max_running: self.max_running,
        })
    }

    /// The model name used in `/v1/models` when no models are configured, and in the
    /// `model_name` label of the metrics.
    pub fn served_model_name(&self) -> &str {
        self.models
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_MODEL)
    }
}

/// The sim as a batching server (`base_step_ms`, `per_sequence_step_ms`,
/// `max_running`, `ttft_ms`), with its capacity known in closed form.
///
/// How it runs: a request waits for one of `max_running` = M slots (first come, first
/// served; unset: no limit) and holds it until its stream ends; `running` = B is the
/// number of slots held. Once admitted, its first token comes `ttft_ms` later (the
/// prefill, a constant), and each later token one decode step after the previous
/// one, where a step lasts `step(B) = base_step_ms + per_sequence_step_ms × B` with B
/// read when the gap starts. Each token's deadline is the previous deadline plus the
/// step, so timer rounding does not accumulate. With O output tokens, a request that
/// runs at a steady batch B is served in `S(B) = ttft_ms + (O − 1) × step(B)`.
///
/// What follows (Little's law, B = λ × S(B), in steady state):
/// - Closed loop at C ≤ M streams: B = C, throughput `C / S(C)` requests/s, TPOT
///   (time per output token after the first) `step(C)`.
/// - The most it can serve, at B = M: `X_max = M / S(M)` =
///   `M / (ttft + (O − 1) × (base + per_sequence × M))`. Past it, requests queue
///   for a slot and TTFT grows without bound.
/// - A TPOT SLO of T ms holds while step(B) ≤ T, i.e. up to
///   `B* = (T − base) / per_sequence` running. The capacity rate is
///   `λ* = min(B*, M) / S(min(B*, M))` =
///   `min(B*, M) / (ttft + (O − 1) × step(min(B*, M)))` requests/s
///   ([`CapacityModel::capacity_rate`]); below it, TTFT is `ttft_ms` plus no queueing
///   while B < M.
/// - Poisson arrivals make B fluctuate around its mean, so a p99 TPOT crosses T at a
///   somewhat lower rate than λ* when B* < M; when M binds (B* ≥ M), TPOT stays at or
///   below step(M) and the knee at X_max is sharp (TTFT explodes past it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CapacityModel {
    pub ttft_ms: f64,
    pub base_step_ms: f64,
    pub per_sequence_step_ms: f64,
    pub max_running: Option<u32>,
}

impl CapacityModel {
    /// `step(B)` in milliseconds.
    pub fn step_ms(&self, running: u64) -> f64 {
        self.base_step_ms + self.per_sequence_step_ms * running as f64
    }

    /// `S(B)`: the milliseconds a request of `output_tokens` spends in its slot.
    pub fn service_ms(&self, running: u64, output_tokens: u32) -> f64 {
        self.ttft_ms + f64::from(output_tokens.saturating_sub(1)) * self.step_ms(running)
    }

    /// `X_max = M / S(M)` requests/s; `None` without `max_running`.
    pub fn max_throughput(&self, output_tokens: u32) -> Option<f64> {
        let m = u64::from(self.max_running?);
        Some(m as f64 * 1000.0 / self.service_ms(m, output_tokens))
    }

    /// `λ* = min(B*, M) / S(min(B*, M))` requests/s for a TPOT SLO of `tpot_slo_ms`;
    /// 0 when even one sequence's step exceeds it.
    pub fn capacity_rate(&self, output_tokens: u32, tpot_slo_ms: f64) -> f64 {
        let b_star = if self.per_sequence_step_ms > 0.0 {
            (tpot_slo_ms - self.base_step_ms) / self.per_sequence_step_ms
        } else if tpot_slo_ms >= self.base_step_ms {
            f64::INFINITY
        } else {
            0.0
        };
        let batch = match self.max_running {
            Some(m) => b_star.min(f64::from(m)),
            None => b_star,
        };
        if batch.is_infinite() {
            return f64::INFINITY;
        }
        if batch.is_nan() || batch < 1.0 {
            return 0.0;
        }
        let step = self.base_step_ms + self.per_sequence_step_ms * batch;
        let service = self.ttft_ms + f64::from(output_tokens.saturating_sub(1)) * step;
        batch * 1000.0 / service
    }
}

/// The model name listed when [`SimConfig::models`] is empty.
pub const DEFAULT_MODEL: &str = "sim-model";

/// The kinds of fault the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 (`rate_limit_error` / OpenAI `rate_limit_exceeded`) with `retry-after`.
    RateLimit,
    /// 529 `overloaded_error` on `/v1/messages`; 503 with an OpenAI error body on
    /// `/v1/chat/completions`.
    Overloaded,
    /// 500 (`api_error` / OpenAI `server_error`).
    ServerError,
    /// Sends `after_tokens` tokens, then breaks the connection without the terminal
    /// event. A non-streamed request gets a 200 whose body is cut in the middle.
    ResetMidStream,
    /// Sends `after_tokens` tokens, then an error event (Anthropic: `event: error` with
    /// `overloaded_error`; OpenAI: a `data:` line holding an `error` object), and ends
    /// the stream without `message_stop` / `[DONE]`. A non-streamed request gets the
    /// same answer as `overloaded`.
    ErrorEventMidStream,
    /// Waits `delay_ms` before sending the response headers, then answers normally.
    SlowFirstByte,
    /// 200 with `content-type: application/json` and a body that is not JSON.
    Garbage,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::RateLimit,
        FaultKind::Overloaded,
        FaultKind::ServerError,
        FaultKind::ResetMidStream,
        FaultKind::ErrorEventMidStream,
        FaultKind::SlowFirstByte,
        FaultKind::Garbage,
    ];

    /// The snake_case name used in JSON, TOML, the `x-sim-fault` header and the stats.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimit => "rate_limit",
            FaultKind::Overloaded => "overloaded",
            FaultKind::ServerError => "server_error",
            FaultKind::ResetMidStream => "reset_mid_stream",
            FaultKind::ErrorEventMidStream => "error_event_mid_stream",
            FaultKind::SlowFirstByte => "slow_first_byte",
            FaultKind::Garbage => "garbage",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown fault kind {s:?}"))
    }
}

/// Default `retry_after_s` of a `rate_limit` fault.
pub const DEFAULT_RETRY_AFTER_S: u64 = 1;
/// Default `after_tokens` of the mid-stream faults.
pub const DEFAULT_AFTER_TOKENS: u32 = 1;
/// Default `delay_ms` of a `slow_first_byte` fault.
pub const DEFAULT_DELAY_MS: u64 = 1000;

/// One step of a [`FaultPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// What to inject.
    pub kind: FaultKind,
    /// Apply to the next `count` requests, then stop. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Chance, from 0 to 1, that the step applies to a request. Absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// `retry-after` seconds sent with `rate_limit` (default 1), and with `overloaded`
    /// or `server_error` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Tokens streamed before a mid-stream fault (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_tokens: Option<u32>,
    /// Delay of `slow_first_byte`, in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl FaultStep {
    /// A step of `kind` with every option at its default.
    pub fn new(kind: FaultKind) -> FaultStep {
        FaultStep {
            kind,
            count: None,
            probability: None,
            retry_after_s: None,
            after_tokens: None,
            delay_ms: None,
        }
    }

    /// `retry_after_s`, or its default for the kind (only `rate_limit` has one).
    pub fn retry_after(&self) -> Option<u64> {
        match (self.retry_after_s, self.kind) {
            (Some(s), _) => Some(s),
            (None, FaultKind::RateLimit) => Some(DEFAULT_RETRY_AFTER_S),
            (None, _) => None,
        }
    }

    /// `after_tokens`, or its default.
    pub fn after_tokens(&self) -> u32 {
        self.after_tokens.unwrap_or(DEFAULT_AFTER_TOKENS)
    }

    /// `delay_ms` as a duration, or its default.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.unwrap_or(DEFAULT_DELAY_MS))
    }

    fn validate(&self) -> Result<(), FaultError> {
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultError(format!(
                    "fault {}: probability must be between 0 and 1, got {p}",
                    self.kind
                )));
            }
        }
        Ok(())
    }

    /// Parses the value of the `x-sim-fault` header: a kind, optionally followed by
    /// `;key=value` options, e.g. `rate_limit;retry_after_s=3` or
    /// `reset_mid_stream;after_tokens=5`. `count` and `probability` do not apply.
    pub fn parse_header(value: &str) -> Result<FaultStep, FaultError> {
        let mut parts = value.split(';').map(str::trim);
        let kind: FaultKind = parts
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(FaultError)?;
        let mut step = FaultStep::new(kind);
        for part in parts.filter(|p| !p.is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| FaultError(format!("expected key=value, got {part:?}")))?;
            let (key, val) = (key.trim(), val.trim());
            let bad = |_| FaultError(format!("invalid value for {key}: {val:?}"));
            match key {
                "retry_after_s" => step.retry_after_s = Some(val.parse().map_err(bad)?),
                "after_tokens" => step.after_tokens = Some(val.parse().map_err(bad)?),
                "delay_ms" => step.delay_ms = Some(val.parse().map_err(bad)?),
                _ => return Err(FaultError(format!("unknown option {key:?}"))),
            }
        }
        Ok(step)
    }
}

/// An ordered list of [`FaultStep`]s; serialized as a bare JSON array (TOML: `[[faults]]`).
///
/// For each API request (`POST /v1/chat/completions`, `POST /v1/messages`) that passed
/// authentication and validation, the steps are tried in order: a step whose `count`
/// is used up is skipped, and a step with a `probability` is skipped unless a draw
/// succeeds. The first step that remains applies to the request and, if it has a
/// `count`, uses one of them. Requests carrying an `x-sim-fault` header get that
/// fault instead and leave the plan untouched.
///
/// ```json
/// [
///   {"kind": "rate_limit", "count": 2, "retry_after_s": 3},
///   {"kind": "reset_mid_stream", "probability": 0.1, "after_tokens": 5},
///   {"kind": "slow_first_byte", "delay_ms": 250}
/// ]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultPlan {
    /// The steps, tried in order.
    pub steps: Vec<FaultStep>,
}

impl FaultPlan {
    /// Checks every step.
    pub fn validate(&self) -> Result<(), FaultError> {
        self.steps.iter().try_for_each(FaultStep::validate)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip() {
        let c = SimConfig::from_toml_str(
            "ttft_ms = 5\ntoken_delay_ms = 0\ndefault_output_tokens = 7\n\n[[faults]]\nkind = \"rate_limit\"\ncount = 2\n",
        )
        .unwrap();
        assert_eq!(c.ttft, Duration::from_millis(5));
        assert_eq!(c.token_delay, Duration::ZERO);
        assert_eq!(c.default_output_tokens, 7);
        assert_eq!(c.faults.steps[0].kind, FaultKind::RateLimit);
        assert_eq!(c.faults.steps[0].count, Some(2));
        assert!(c.require_anthropic_version);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(SimConfig::from_toml_str("ttft = 5").is_err());
        assert!(SimConfig::from_toml_str("[[faults]]\nkind = \"nope\"").is_err());
        assert!(
            SimConfig::from_toml_str("[[faults]]\nkind = \"garbage\"\nprobability = 2.0").is_err()
        );
        assert!(SimConfig::from_toml_str("max_running = 0").is_err());
    }

    #[test]
    fn the_capacity_model_in_closed_form() {
        let c = SimConfig::from_toml_str(
            "ttft_ms = 10\nbase_step_ms = 4.0\nper_sequence_step_ms = 0.1875\nmax_running = 32",
        )
        .unwrap();
        let model = c.capacity_model().unwrap();
        // step(32) = 4 + 6 = 10 ms; S(32) = 10 + 9 × 10 = 100 ms; 32 / 0.1 s = 320/s.
        assert_eq!(model.step_ms(32), 10.0);
        assert_eq!(model.service_ms(32, 10), 100.0);
        assert_eq!(model.max_throughput(10), Some(320.0));
        // TPOT SLO 12 ms: B* = 8 / 0.1875 ≈ 42.7 > 32, so M binds.
        assert_eq!(model.capacity_rate(10, 12.0), 320.0);
        // TPOT SLO 8.5 ms: B* = 24 < 32; step 8.5, S = 10 + 76.5 = 86.5 ms, 24 / 0.0865.
        assert!((model.capacity_rate(10, 8.5) - 24.0 / 0.0865).abs() < 1e-6);
        // Below one sequence's step: nothing meets it.
        assert_eq!(model.capacity_rate(10, 4.1), 0.0);
        assert!(SimConfig::default().capacity_model().is_none());
        assert!(SimConfig::from_toml_str("per_sequence_step_ms = 1.0").is_err());
        assert!(SimConfig::from_toml_str("base_step_ms = -1.0").is_err());
    }

    #[test]
    fn plan_is_a_bare_json_array() {
        let plan: FaultPlan =
            serde_json::from_str(r#"[{"kind":"overloaded","count":1},{"kind":"garbage"}]"#)
                .unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(
            serde_json::to_string(&plan).unwrap(),
            r#"[{"kind":"overloaded","count":1},{"kind":"garbage"}]"#
        );
    }

    #[test]
    fn header_syntax() {
        let s = FaultStep::parse_header("reset_mid_stream; after_tokens=3").unwrap();
        assert_eq!(s.kind, FaultKind::ResetMidStream);
        assert_eq!(s.after_tokens(), 3);
        assert_eq!(
            FaultStep::parse_header("rate_limit").unwrap().retry_after(),
            Some(1)
        );
        assert!(FaultStep::parse_header("rate_limit;count=2").is_err());
        assert!(FaultStep::parse_header("meteor").is_err());
    }
}
