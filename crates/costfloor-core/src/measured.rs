//! A capacity measurement: what `costfloor bench` writes and what `plan --capacity` and
//! `size --calibrate` read. The format is documented in docs/bench.md; this module only
//! holds its types and the checks on them, with no I/O.

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The version of the measurement format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub version: u32,
    /// The server measured, as scheme, host and port: no path, query or credentials.
    pub target: String,
    /// The model name sent in each request.
    pub model: String,
    /// `openai` or `anthropic`.
    pub format: String,
    /// The catalog deployment the server runs, when the user named one (`--deployment`).
    #[serde(default)]
    pub deployment: Option<String>,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    pub shape: Shape,
    pub slo: Slo,
    /// One entry per load level, in the order they ran.
    pub levels: Vec<Level>,
    /// The highest load level that met the SLO (the sweep's answer), if any did.
    #[serde(default)]
    pub capacity: Option<Capacity>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shape {
    pub input_tokens_target: f64,
    pub output_tokens_target: f64,
    /// Mean prompt tokens the server reported (usage) over completed requests.
    pub input_tokens_mean: f64,
    pub output_tokens_mean: f64,
    /// How prompt lengths were calibrated: `tokenize` (the server's endpoint) or `usage`.
    pub input_calibration: String,
    /// How output lengths were forced: e.g. `ignore_eos+min_tokens`, `max_tokens only`.
    pub output_forcing: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Slo {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Level {
    /// `rate` (open loop, Poisson arrivals) or `concurrency` (closed loop).
    pub mode: String,
    /// Requests/s offered (open loop) or streams held (closed loop).
    pub load: f64,
    pub duration_s: f64,
    pub completed: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
    pub total_tokens_per_s: f64,
    /// Mean requests in flight over the level (Little's law: completed/s × mean e2e).
    pub mean_in_flight: f64,
    pub ttft_ms: Percentiles,
    /// Inter-token latency over all gaps between streamed tokens.
    pub itl_ms: Percentiles,
    /// Time per output token per request: (e2e − ttft) ÷ (output tokens − 1).
    pub tpot_ms: Percentiles,
    pub e2e_ms: Percentiles,
    /// Completed requests per second whose TTFT and TPOT met the SLO.
    pub goodput_rps: f64,
    pub meets_slo: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Capacity {
    /// Index into `levels`.
    pub level: usize,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
}

impl Measurement {
    /// Reads and checks a measurement; `name` is the file name for the errors.
    pub fn from_json(name: &str, text: &str) -> Result<Measurement, InputError> {
        let measurement: Measurement = serde_json::from_str(text).map_err(|err| {
            InputError::invalid(
                name,
                err,
                "a measurement written by `costfloor bench --out` (docs/bench.md)",
            )
        })?;
        if measurement.version != FORMAT_VERSION {
            return Err(InputError::invalid(
                &format!("{name}: version"),
                measurement.version,
                &format!("{FORMAT_VERSION}, the version this build reads"),
            ));
        }
        if let Some(capacity) = measurement.capacity {
            if capacity.level >= measurement.levels.len() {
                return Err(InputError::invalid(
                    &format!("{name}: capacity.level"),
                    capacity.level,
                    &format!("an index below {}", measurement.levels.len()),
                ));
            }
        }
        Ok(measurement)
    }
}
