//! Fitting `size`'s efficiency factors to measurements, and checking the fit by
//! leave-one-out cross-validation.
//!
//! An [`Observation`] is one measured figure with the `size` inputs that reproduce its
//! setup: a published row (`calibration/published.toml`, `[[observation]]`) or a load
//! level of a `costfloor bench` measurement ([`from_measurement`]). [`fit`] finds the
//! factors (memory-bandwidth efficiency, MFU, NVLink tensor-parallel efficiency and the
//! per-step overhead) that minimise a robust (Cauchy) loss of the log ratios predicted ÷ measured,
//! by coordinate descent with a golden-section search on each factor inside its bounds.
//! [`cross_validate`] fits on every row but one and predicts the one left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Assumptions, Catalog, Precision};
use crate::error::InputError;
use crate::measured::Measurement;
use crate::sizing::{size, SizingInput};

/// The published calibration set, embedded.
pub const PUBLISHED: &str = include_str!("../calibration/published.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Batch-1 decode tokens/s.
    Single,
    /// Max-load output tokens/s of the whole GPU group.
    Throughput,
    /// Batch-1 prompt tokens/s.
    Prefill,
    /// Output tokens/s of the whole group with `batch` sequences running (a bench
    /// load level).
    Batch,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    pub id: String,
    pub metric: Metric,
    pub measured: f64,
    pub model: String,
    pub gpu: String,
    pub gpus: u32,
    /// The tensor-parallel size measured; absent = the one `size` picks.
    pub tensor_parallel: Option<u32>,
    pub precision: Precision,
    #[serde(default)]
    pub kv_fp8: bool,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub p99_prompt_tokens: Option<f64>,
    /// Sequences running, for `metric = "batch"`.
    pub batch: Option<f64>,
    /// Predicted and shown, never fitted.
    #[serde(default)]
    pub excluded: bool,
    #[serde(default)]
    pub setup: String,
    #[serde(default)]
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservationFile {
    observation: Vec<Observation>,
}

/// Reads `[[observation]]` entries; `name` is the file name for the errors.
pub fn parse_observations(name: &str, text: &str) -> Result<Vec<Observation>, InputError> {
    let file: ObservationFile = toml::from_str(text).map_err(|err| {
        InputError::invalid(
            name,
            err.message(),
            "a TOML file of [[observation]] entries (docs/sizing-calibration.md)",
        )
    })?;
    for observation in &file.observation {
        if !(observation.measured.is_finite() && observation.measured > 0.0) {
            return Err(InputError::invalid(
                &format!("{name}: {}: measured", observation.id),
                observation.measured,
                "a finite number > 0",
            ));
        }
        if observation.metric == Metric::Batch && observation.batch.is_none() {
            return Err(InputError::invalid(
                &format!("{name}: {}: batch", observation.id),
                "missing",
                "the running sequences, required with metric = \"batch\"",
            ));
        }
    }
    Ok(file.observation)
}

/// One observation per load level of a bench measurement of a catalog deployment: the
/// output tokens/s measured with `mean_in_flight` sequences running.
pub fn from_measurement(
    name: &str,
    measurement: &Measurement,
    catalog: &Catalog,
) -> Result<Vec<Observation>, InputError> {
    let Some(id) = &measurement.deployment else {
        return Err(InputError::invalid(
            &format!("{name}: deployment"),
            "none",
            "the catalog deployment the server ran (`costfloor bench --deployment ID`)",
        ));
    };
    let deployment = catalog.deployment(id)?;
    Ok(measurement
        .levels
        .iter()
        .enumerate()
        .filter(|(_, level)| level.completed > 0 && level.mean_in_flight >= 1.0)
        .map(|(index, level)| Observation {
            id: format!("{name}#{index}"),
            metric: Metric::Batch,
            measured: level.output_tokens_per_s,
            model: deployment.model.clone(),
            gpu: deployment.gpu.clone(),
            gpus: deployment.gpus,
            tensor_parallel: None,
            precision: deployment.precision,
            kv_fp8: false,
            input_tokens: measurement.shape.input_tokens_mean,
            output_tokens: measurement.shape.output_tokens_mean,
            p99_prompt_tokens: None,
            batch: Some(level.mean_in_flight),
            excluded: false,
            setup: format!("{} {} at {}", level.mode, level.load, measurement.target),
            source: name.to_string(),
        })
        .collect())
}

/// The factors [`fit`] adjusts. MFU is fitted per GPU (the achieved share of peak
/// differs by generation); `mfu` and `mfu_fp8` stay the defaults for GPUs without a
/// measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Factors {
    pub memory_bandwidth_efficiency: f64,
    pub kv_bandwidth_efficiency: f64,
    pub mfu: f64,
    pub mfu_fp8: f64,
    pub mfu_by_gpu: BTreeMap<String, f64>,
    pub mfu_fp8_by_gpu: BTreeMap<String, f64>,
    pub tp_efficiency_nvlink: f64,
    pub step_overhead_ms: f64,
}

/// One factor the fit moves.
#[derive(Clone, Debug, PartialEq)]
enum Factor {
    Bandwidth,
    KvBandwidth,
    TpEfficiency,
    StepOverhead,
    Mfu(String),
    MfuFp8(String),
}

impl Factor {
    fn bounds(&self) -> (f64, f64) {
        match self {
            Factor::Bandwidth | Factor::KvBandwidth => (0.2, 1.0),
            Factor::TpEfficiency => (0.5, 1.0),
            Factor::StepOverhead => (0.0, 20.0),
            Factor::Mfu(_) | Factor::MfuFp8(_) => (0.1, 1.0),
        }
    }
}

impl Factors {
    pub fn of(assumptions: &Assumptions) -> Factors {
        Factors {
            memory_bandwidth_efficiency: assumptions.memory_bandwidth_efficiency,
            kv_bandwidth_efficiency: assumptions
                .kv_bandwidth_efficiency
                .unwrap_or(assumptions.memory_bandwidth_efficiency),
            mfu: assumptions.mfu,
            mfu_fp8: assumptions.mfu_fp8.unwrap_or(assumptions.mfu),
            mfu_by_gpu: assumptions.mfu_by_gpu.clone(),
            mfu_fp8_by_gpu: assumptions.mfu_fp8_by_gpu.clone(),
            tp_efficiency_nvlink: assumptions.tp_efficiency_nvlink,
            step_overhead_ms: assumptions.step_overhead_ms,
        }
    }

    pub fn apply(&self, assumptions: &Assumptions) -> Assumptions {
        let mut out = assumptions.clone();
        out.memory_bandwidth_efficiency = self.memory_bandwidth_efficiency;
        out.kv_bandwidth_efficiency = Some(self.kv_bandwidth_efficiency);
        out.mfu = self.mfu;
        out.mfu_fp8 = Some(self.mfu_fp8);
        out.mfu_by_gpu = self.mfu_by_gpu.clone();
        out.mfu_fp8_by_gpu = self.mfu_fp8_by_gpu.clone();
        out.tp_efficiency_nvlink = self.tp_efficiency_nvlink;
        out.step_overhead_ms = self.step_overhead_ms;
        out
    }

    #[cfg(test)]
    fn get(&self, factor: &Factor) -> f64 {
        match factor {
            Factor::Bandwidth => self.memory_bandwidth_efficiency,
            Factor::KvBandwidth => self.kv_bandwidth_efficiency,
            Factor::TpEfficiency => self.tp_efficiency_nvlink,
            Factor::StepOverhead => self.step_overhead_ms,
            Factor::Mfu(gpu) => self.mfu_by_gpu.get(gpu).copied().unwrap_or(self.mfu),
            Factor::MfuFp8(gpu) => self
                .mfu_fp8_by_gpu
                .get(gpu)
                .copied()
                .unwrap_or(self.mfu_fp8),
        }
    }

    fn set(&mut self, factor: &Factor, value: f64) {
        match factor {
            Factor::Bandwidth => self.memory_bandwidth_efficiency = value,
            Factor::KvBandwidth => self.kv_bandwidth_efficiency = value,
            Factor::TpEfficiency => self.tp_efficiency_nvlink = value,
            Factor::StepOverhead => self.step_overhead_ms = value,
            Factor::Mfu(gpu) => {
                self.mfu_by_gpu.insert(gpu.clone(), value);
            }
            Factor::MfuFp8(gpu) => {
                self.mfu_fp8_by_gpu.insert(gpu.clone(), value);
            }
        }
    }

    /// The `[assumptions]` overlay that sets these factors, for `--catalog`.
    pub fn overlay_toml(&self, note: &str) -> String {
        let table = |values: &BTreeMap<String, f64>| {
            let entries: Vec<String> = values
                .iter()
                .map(|(gpu, value)| format!("\"{gpu}\" = {value:.3}"))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        };
        format!(
            "# {note}\n[assumptions]\nmemory_bandwidth_efficiency = {:.3}\n\
             kv_bandwidth_efficiency = {:.3}\nmfu = {:.3}\n\
             mfu_fp8 = {:.3}\nmfu_by_gpu = {}\nmfu_fp8_by_gpu = {}\n\
             tp_efficiency_nvlink = {:.3}\nstep_overhead_ms = {:.3}\n",
            self.memory_bandwidth_efficiency,
            self.kv_bandwidth_efficiency,
            self.mfu,
            self.mfu_fp8,
            table(&self.mfu_by_gpu),
            table(&self.mfu_fp8_by_gpu),
            self.tp_efficiency_nvlink,
            self.step_overhead_ms
        )
    }
}

/// The factors the observations constrain: bandwidth and step overhead always, MFU per
/// GPU and number format measured on it, tensor-parallel efficiency when a row spans
/// more than one GPU.
fn factors_to_fit(observations: &[&Observation], catalog: &Catalog) -> Vec<Factor> {
    let mut factors = vec![Factor::Bandwidth, Factor::KvBandwidth, Factor::StepOverhead];
    if observations.iter().any(|o| o.gpus > 1) {
        factors.push(Factor::TpEfficiency);
    }
    for observation in observations {
        let fp8_cores = catalog
            .gpu(&observation.gpu)
            .is_ok_and(|gpu| gpu.fp8_tflops.is_some());
        let factor = if observation.precision == Precision::Fp8 && fp8_cores {
            Factor::MfuFp8(observation.gpu.clone())
        } else {
            Factor::Mfu(observation.gpu.clone())
        };
        if !factors.contains(&factor) {
            factors.push(factor);
        }
    }
    factors
}

/// What `size` predicts for one observation under `assumptions`.
pub fn predict(
    observation: &Observation,
    catalog: &Catalog,
    assumptions: &Assumptions,
) -> Result<f64, InputError> {
    let slo_tpot_ms = match observation.metric {
        Metric::Single | Metric::Prefill => 1.0,
        Metric::Throughput | Metric::Batch => 10_000.0,
    };
    let input = SizingInput {
        model: catalog.model(&observation.model)?,
        gpu: catalog.gpu(&observation.gpu)?,
        gpus: observation.gpus,
        tensor_parallel: observation.tensor_parallel,
        precision: observation.precision,
        kv_bytes_per_element: if observation.kv_fp8 { 1.0 } else { 2.0 },
        input_tokens: observation.input_tokens,
        output_tokens: observation.output_tokens,
        p99_prompt_tokens: observation
            .p99_prompt_tokens
            .unwrap_or(observation.input_tokens),
        slo_tpot_ms,
        slo_ttft_ms: assumptions.slo_ttft_ms,
        assumptions,
    };
    let sizing = size(&input)?;
    Ok(match observation.metric {
        Metric::Single => sizing.single_stream_tokens_per_s,
        Metric::Throughput => sizing.output_tokens_per_s * sizing.replicas as f64,
        Metric::Prefill => sizing.prefill_tokens_per_s,
        Metric::Batch => {
            let replicas = sizing.replicas.max(1) as f64;
            let per_replica = observation.batch.unwrap_or(1.0) / replicas;
            crate::sizing::output_tokens_per_s_at(&input, sizing.tensor_parallel, per_replica)
                * replicas
        }
    })
}

/// The log error at which the loss turns from quadratic to logarithmic: ln 1.25.
const LOSS_SCALE: f64 = 0.223;

/// The Cauchy loss of the log ratios over the fitted (not excluded) observations:
/// about the squared log error for rows within ±25%, growing only logarithmically
/// beyond, so that a few rows the model cannot explain (a different engine's memory
/// setting, a user report) do not pull the factors away from the rest.
fn loss(observations: &[&Observation], catalog: &Catalog, assumptions: &Assumptions) -> f64 {
    observations
        .iter()
        .map(
            |observation| match predict(observation, catalog, assumptions) {
                Ok(predicted) => {
                    let error = (predicted / observation.measured).ln() / LOSS_SCALE;
                    (1.0 + error * error).ln()
                }
                // A setup that no longer fits under these factors is as bad as it gets.
                Err(_) => 100.0,
            },
        )
        .sum()
}

/// The factors that minimise the squared log error on `observations` (excluded ones
/// are skipped), starting from `base`'s.
pub fn fit(
    observations: &[Observation],
    catalog: &Catalog,
    base: &Assumptions,
) -> Result<Factors, InputError> {
    let used: Vec<&Observation> = observations.iter().filter(|o| !o.excluded).collect();
    if used.is_empty() {
        return Err(InputError::invalid(
            "observations",
            0,
            "at least one observation that is not excluded",
        ));
    }
    for observation in &used {
        predict(observation, catalog, base)?;
    }
    // A factor that no observation constrains stays where it was.
    let free = factors_to_fit(&used, catalog);
    let mut factors = Factors::of(base);
    let mut best = loss(&used, catalog, &factors.apply(base));
    for _sweep in 0..12 {
        let before = best;
        for factor in &free {
            let (value, value_loss) = golden_section(factor.bounds(), |value| {
                let mut trial = factors.clone();
                trial.set(factor, value);
                loss(&used, catalog, &trial.apply(base))
            });
            if value_loss < best {
                factors.set(factor, value);
                best = value_loss;
            }
        }
        if before - best < 1e-9 {
            break;
        }
    }
    Ok(factors)
}

/// The minimum of `f` on `[low, high]`, assuming one valley, to 1e-4 of the range.
fn golden_section((mut low, mut high): (f64, f64), f: impl Fn(f64) -> f64) -> (f64, f64) {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (f(a), f(b));
    let tolerance = (high - low) * 1e-4;
    while high - low > tolerance {
        if fa < fb {
            high = b;
            b = a;
            fb = fa;
            a = high - ratio * (high - low);
            fa = f(a);
        } else {
            low = a;
            a = b;
            fa = fb;
            b = low + ratio * (high - low);
            fb = f(b);
        }
    }
    let x = (low + high) / 2.0;
    (x, f(x))
}

/// One observation's prediction, in sample and left out.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub measured: f64,
    /// Predicted with the factors fitted on every row, this one included.
    pub fitted: f64,
    /// Predicted with the factors fitted on every other row.
    pub left_out: Option<f64>,
    pub excluded: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub median_ratio: f64,
    pub within_25_percent: usize,
    pub share_within_25_percent: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CrossValidation {
    pub factors: Factors,
    pub rows: Vec<Row>,
    pub in_sample: Summary,
    pub leave_one_out: Summary,
}

/// A ratio is within ±25% when predicted ÷ measured lies in [0.75, 1.25].
pub fn within_25_percent(ratio: f64) -> bool {
    (0.75..=1.25).contains(&ratio)
}

fn summarise(ratios: &mut [f64]) -> Summary {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => ratios[n / 2],
        _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    };
    let within = ratios.iter().filter(|r| within_25_percent(**r)).count();
    Summary {
        rows: n,
        median_ratio: median,
        within_25_percent: within,
        share_within_25_percent: if n == 0 {
            0.0
        } else {
            within as f64 / n as f64
        },
    }
}

/// Fits on all rows, then on every row but one for each row, predicting the one left
/// out (excluded rows are predicted but never fitted or counted).
pub fn cross_validate(
    observations: &[Observation],
    catalog: &Catalog,
    base: &Assumptions,
) -> Result<CrossValidation, InputError> {
    let factors = fit(observations, catalog, base)?;
    let fitted_assumptions = factors.apply(base);
    let mut rows = Vec::with_capacity(observations.len());
    for (index, observation) in observations.iter().enumerate() {
        let fitted = predict(observation, catalog, &fitted_assumptions)?;
        let left_out = if observation.excluded {
            None
        } else {
            let rest: Vec<Observation> = observations
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, o)| o.clone())
                .collect();
            let without = fit(&rest, catalog, base)?;
            Some(predict(observation, catalog, &without.apply(base))?)
        };
        rows.push(Row {
            id: observation.id.clone(),
            measured: observation.measured,
            fitted,
            left_out,
            excluded: observation.excluded,
        });
    }
    let mut in_sample: Vec<f64> = rows
        .iter()
        .filter(|r| !r.excluded)
        .map(|r| r.fitted / r.measured)
        .collect();
    let mut left_out: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.left_out.map(|p| p / r.measured))
        .collect();
    Ok(CrossValidation {
        factors,
        in_sample: summarise(&mut in_sample),
        leave_one_out: summarise(&mut left_out),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_set_parses_and_every_row_is_predicted() {
        let catalog = Catalog::embedded().unwrap();
        let observations = parse_observations("published.toml", PUBLISHED).unwrap();
        // docs/sizing-calibration.md: 15 A, 34 B, 6 C, 5 D and 4 E rows.
        assert_eq!(observations.len(), 64);
        assert_eq!(observations.iter().filter(|o| o.excluded).count(), 2);
        for observation in &observations {
            let predicted = predict(observation, &catalog, &catalog.assumptions).unwrap();
            assert!(predicted > 0.0, "{}", observation.id);
        }
    }

    #[test]
    fn fit_recovers_the_factors_that_generated_a_synthetic_set() {
        let catalog = Catalog::embedded().unwrap();
        let mut truth = Factors::of(&catalog.assumptions);
        truth.memory_bandwidth_efficiency = 0.72;
        truth.kv_bandwidth_efficiency = 0.55;
        truth.tp_efficiency_nvlink = 0.9;
        truth.step_overhead_ms = 2.5;
        truth.mfu_by_gpu = [
            ("a100-80gb".to_string(), 0.66),
            ("h100-sxm".to_string(), 0.48),
        ]
        .into();
        truth.mfu_fp8_by_gpu = [("h100-sxm".to_string(), 0.38)].into();
        let generating = truth.apply(&catalog.assumptions);
        // The published setups, with "measured" values made by the true factors.
        let mut observations = parse_observations("published.toml", PUBLISHED).unwrap();
        for observation in &mut observations {
            observation.measured = predict(observation, &catalog, &generating).unwrap();
        }
        let fitted = fit(&observations, &catalog, &catalog.assumptions).unwrap();
        let used: Vec<&Observation> = observations.iter().collect();
        let free = factors_to_fit(&used, &catalog);
        assert_eq!(free.len(), 7, "{free:?}");
        for factor in &free {
            let (want, got) = (truth.get(factor), fitted.get(factor));
            assert!(
                (got - want).abs() <= want * 0.02 + 0.01,
                "{factor:?}: fitted {got}, generated with {want}"
            );
        }
    }

    #[test]
    fn bad_observations_name_the_row_and_field() {
        let text = "[[observation]]\nid = \"X\"\nmetric = \"batch\"\nmeasured = 10\nmodel = \"m\"\ngpu = \"g\"\ngpus = 1\nprecision = \"bf16\"\ninput_tokens = 1\noutput_tokens = 1\n";
        let err = parse_observations("mine.toml", text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine.toml: X: batch"), "{err}");
        let err = parse_observations("mine.toml", "[[observation]]\nid = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine.toml"), "{err}");
    }
}

#[cfg(test)]
mod published {
    use super::*;

    /// The figures docs/sizing-calibration.md quotes, recomputed: a fit that stops
    /// generalising fails here.
    #[test]
    fn leave_one_out_on_the_published_set() {
        let catalog = Catalog::embedded().unwrap();
        let observations = parse_observations("published.toml", PUBLISHED).unwrap();
        let v = cross_validate(&observations, &catalog, &catalog.assumptions).unwrap();
        eprintln!(
            "{:?}\nin sample {:?}\nleave one out {:?}",
            v.factors, v.in_sample, v.leave_one_out
        );
        for row in &v.rows {
            if let Some(p) = row.left_out {
                if !within_25_percent(p / row.measured) {
                    eprintln!("miss {} {:.2}", row.id, p / row.measured);
                }
            }
        }
        // The default factors are the fit, rounded: the fit from them moves little.
        assert!(
            (v.factors.memory_bandwidth_efficiency
                - catalog.assumptions.memory_bandwidth_efficiency)
                .abs()
                < 0.02,
            "{:?}",
            v.factors
        );
        // The goal: at least 75% of rows within ±25% when left out. 48 of 62 when this
        // was written (docs/sizing-calibration.md).
        assert!(
            v.leave_one_out.share_within_25_percent >= 0.75,
            "{:?}",
            v.leave_one_out
        );
        assert!((v.leave_one_out.median_ratio - 1.0).abs() < 0.05);
    }
}
