//! The workload: call volume, tokens per call, caching and batching shares, load
//! shape, latency SLO and task mix. Built from a TOML file and flags; flags win.

use serde::{Deserialize, Serialize};

use crate::catalog::{line_col, Assumptions};
use crate::cost::BatchShare;
use crate::error::{CatalogError, InputError};

/// Whether a task may be served by the self-hosted model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Eligibility {
    Yes,
    No,
    /// Not measured yet: treated as eligible for cost, and flagged in the verdict.
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub name: String,
    pub share: f64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub self_host: Eligibility,
}

#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub calls_per_month: f64,
    /// Mean input tokens per call (cached and uncached together).
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// Share of input tokens read from the prompt cache.
    pub cached_input_share: f64,
    /// Share of input tokens written to the 5-minute prompt cache.
    pub cache_write_share: f64,
    /// Share of input tokens written to the 1-hour prompt cache.
    pub cache_write_1h_share: f64,
    /// Share of calls that can go through a batch API.
    pub batch_share: BatchShare,
    pub peak_to_average: f64,
    /// 24 relative loads, one per hour of the day; mean-normalised.
    pub hourly_profile: [f64; 24],
    pub p99_prompt_tokens: f64,
    pub slo_tpot_ms: f64,
    pub slo_ttft_ms: f64,
    pub tasks: Vec<Task>,
}

/// The workload file. Every field is optional; missing ones take the defaults. The
/// same struct is read by `plan --workload` and written by `workload from-usage`, so
/// the two never disagree on a field name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_month: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_to_average: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_profile: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_prompt_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task: Vec<TaskFile>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    pub share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<f64>,
    #[serde(default = "unknown")]
    pub self_host: Eligibility,
}

fn unknown() -> Eligibility {
    Eligibility::Unknown
}

impl WorkloadFile {
    pub fn parse(name: &str, text: &str) -> Result<WorkloadFile, InputError> {
        toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or((1, 1));
            InputError::Catalog(CatalogError::Parse {
                file: name.to_string(),
                line,
                column,
                message: err.message().to_string(),
            })
        })
    }
}

/// Command-line overrides; `None` keeps the file's value or the default.
#[derive(Clone, Debug, Default)]
pub struct WorkloadFlags {
    pub calls_per_month: Option<f64>,
    pub input_tokens: Option<f64>,
    pub output_tokens: Option<f64>,
}

/// The default workload, Scenario 1 of the article "Open Source LLMs as Cost Floor:
/// When Llama Wins" (see the README): 10M calls per month, 1,000 input and 200 output
/// tokens.
pub const DEFAULT_CALLS_PER_MONTH: f64 = 10_000_000.0;
pub const DEFAULT_INPUT_TOKENS: f64 = 1_000.0;
pub const DEFAULT_OUTPUT_TOKENS: f64 = 200.0;

impl Workload {
    pub fn build(
        file: WorkloadFile,
        flags: &WorkloadFlags,
        assumptions: &Assumptions,
    ) -> Result<Workload, InputError> {
        let file_tokens_from_tasks = |pick: fn(&TaskFile) -> Option<f64>| -> Option<f64> {
            if file.task.is_empty() || file.task.iter().any(|t| pick(t).is_none()) {
                return None;
            }
            Some(
                file.task
                    .iter()
                    .map(|t| t.share * pick(t).unwrap_or(0.0))
                    .sum(),
            )
        };
        let calls_per_month = positive(
            "--calls-per-month",
            flags
                .calls_per_month
                .or(file.calls_per_month)
                .unwrap_or(DEFAULT_CALLS_PER_MONTH),
        )?;
        let input_tokens = positive(
            "--input-tokens",
            flags
                .input_tokens
                .or(file.input_tokens)
                .or_else(|| file_tokens_from_tasks(|t| t.input_tokens))
                .unwrap_or(DEFAULT_INPUT_TOKENS),
        )?;
        let output_tokens = positive(
            "--output-tokens",
            flags
                .output_tokens
                .or(file.output_tokens)
                .or_else(|| file_tokens_from_tasks(|t| t.output_tokens))
                .unwrap_or(DEFAULT_OUTPUT_TOKENS),
        )?;
        let cached_input_share =
            share("cached_input_share", file.cached_input_share.unwrap_or(0.0))?;
        let cache_write_share = share("cache_write_share", file.cache_write_share.unwrap_or(0.0))?;
        let cache_write_1h_share = share(
            "cache_write_1h_share",
            file.cache_write_1h_share.unwrap_or(0.0),
        )?;
        let cache_total = cached_input_share + cache_write_share + cache_write_1h_share;
        if cache_total > 1.0 + 1e-9 {
            return Err(InputError::invalid(
                "cached_input_share + cache_write_share + cache_write_1h_share",
                cache_total,
                "a total <= 1 (they are shares of the same input tokens)",
            ));
        }
        let batch_share = BatchShare::new(share("batch_share", file.batch_share.unwrap_or(0.0))?)?;
        let (hourly_profile, peak_to_average) = match (&file.hourly_profile, file.peak_to_average) {
            (Some(_), Some(_)) => {
                return Err(InputError::invalid(
                    "peak_to_average",
                    "set together with hourly_profile",
                    "one of peak_to_average or hourly_profile",
                ))
            }
            (Some(profile), None) => {
                let profile = normalise_profile(profile)?;
                let peak = profile.iter().copied().fold(0.0, f64::max);
                (profile, peak)
            }
            (None, ratio) => {
                let ratio = ratio.unwrap_or(assumptions.peak_to_average);
                if !(ratio.is_finite() && ratio >= 1.0) {
                    return Err(InputError::invalid(
                        "peak_to_average",
                        ratio,
                        "a finite number >= 1",
                    ));
                }
                let profile = diurnal_profile(ratio);
                (profile, profile.iter().copied().fold(0.0, f64::max))
            }
        };
        let p99_prompt_tokens = positive(
            "p99_prompt_tokens",
            file.p99_prompt_tokens.unwrap_or(input_tokens),
        )?;
        if p99_prompt_tokens < input_tokens {
            return Err(InputError::invalid(
                "p99_prompt_tokens",
                p99_prompt_tokens,
                &format!("a value >= the mean input tokens ({input_tokens})"),
            ));
        }
        let slo = file.slo.unwrap_or_default();
        let slo_tpot_ms = positive(
            "slo.tpot_ms",
            slo.tpot_ms.unwrap_or(assumptions.slo_tpot_ms),
        )?;
        let slo_ttft_ms = positive(
            "slo.ttft_ms",
            slo.ttft_ms.unwrap_or(assumptions.slo_ttft_ms),
        )?;
        let tasks = if file.task.is_empty() {
            vec![Task {
                name: "all".to_string(),
                share: 1.0,
                input_tokens,
                output_tokens,
                self_host: Eligibility::Unknown,
            }]
        } else {
            let mut tasks = Vec::with_capacity(file.task.len());
            for (index, task) in file.task.iter().enumerate() {
                let field = |name: &str| format!("task[{index}] ({}).{name}", task.name);
                let share_value = task.share;
                if !(share_value.is_finite() && share_value > 0.0 && share_value <= 1.0) {
                    return Err(InputError::invalid(
                        &field("share"),
                        share_value,
                        "a fraction in (0, 1]",
                    ));
                }
                tasks.push(Task {
                    name: task.name.clone(),
                    share: share_value,
                    input_tokens: positive(
                        &field("input_tokens"),
                        task.input_tokens.unwrap_or(input_tokens),
                    )?,
                    output_tokens: positive(
                        &field("output_tokens"),
                        task.output_tokens.unwrap_or(output_tokens),
                    )?,
                    self_host: task.self_host,
                });
            }
            let total: f64 = tasks.iter().map(|t| t.share).sum();
            if (total - 1.0).abs() > 1e-6 {
                return Err(InputError::invalid(
                    "task[].share (sum)",
                    total,
                    "shares that sum to 1",
                ));
            }
            tasks
        };
        Ok(Workload {
            calls_per_month,
            input_tokens,
            output_tokens,
            cached_input_share,
            cache_write_share,
            cache_write_1h_share,
            batch_share,
            peak_to_average,
            hourly_profile,
            p99_prompt_tokens,
            slo_tpot_ms,
            slo_ttft_ms,
            tasks,
        })
    }

    /// The same workload at another volume (for sweeps and break-even searches).
    pub fn with_calls(&self, calls_per_month: f64) -> Workload {
        Workload {
            calls_per_month,
            ..self.clone()
        }
    }

    pub fn tokens_per_call(&self) -> f64 {
        self.input_tokens + self.output_tokens
    }
}

fn positive(field: &str, value: f64) -> Result<f64, InputError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(InputError::invalid(field, value, "a finite number > 0"))
    }
}

fn share(field: &str, value: f64) -> Result<f64, InputError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(InputError::invalid(field, value, "a fraction in [0, 1]"))
    }
}

fn normalise_profile(profile: &[f64]) -> Result<[f64; 24], InputError> {
    if profile.len() != 24 {
        return Err(InputError::invalid(
            "hourly_profile",
            format!("{} values", profile.len()),
            "exactly 24 values, one per hour",
        ));
    }
    let mut out = [0.0; 24];
    for (hour, value) in profile.iter().enumerate() {
        if !(value.is_finite() && *value >= 0.0) {
            return Err(InputError::invalid(
                &format!("hourly_profile[{hour}]"),
                value,
                "a finite number >= 0",
            ));
        }
        out[hour] = *value;
    }
    let mean = out.iter().sum::<f64>() / 24.0;
    if mean <= 0.0 {
        return Err(InputError::invalid(
            "hourly_profile",
            "all zeros",
            "at least one hour with load",
        ));
    }
    for value in &mut out {
        *value /= mean;
    }
    Ok(out)
}

/// A day-shaped profile with the given peak-to-average ratio: exp(κ·cos(2π(h − 14)/24)),
/// a smooth daily wave peaking at 14:00, mean-normalised, with κ bisected so that the
/// peak is `ratio` times the mean. Any ratio >= 1 is reachable.
pub fn diurnal_profile(ratio: f64) -> [f64; 24] {
    let shape = |kappa: f64| {
        let mut out = [0.0; 24];
        for (hour, slot) in out.iter_mut().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * (hour as f64 - 14.0) / 24.0;
            *slot = (kappa * phase.cos()).exp();
        }
        let mean = out.iter().sum::<f64>() / 24.0;
        out.map(|v| v / mean)
    };
    if ratio <= 1.0 {
        return [1.0; 24];
    }
    let peak_of = |kappa: f64| shape(kappa).iter().copied().fold(0.0, f64::max);
    let (mut low, mut high) = (0.0, 1.0);
    while peak_of(high) < ratio && high < 700.0 {
        high *= 2.0;
    }
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if peak_of(mid) < ratio {
            low = mid;
        } else {
            high = mid;
        }
    }
    shape((low + high) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn build(text: &str, flags: WorkloadFlags) -> Result<Workload, InputError> {
        let catalog = Catalog::embedded().unwrap();
        Workload::build(
            WorkloadFile::parse("w.toml", text)?,
            &flags,
            &catalog.assumptions,
        )
    }

    #[test]
    fn defaults_are_seed_scenario_1() {
        let w = build("", WorkloadFlags::default()).unwrap();
        assert_eq!(
            (w.calls_per_month, w.input_tokens, w.output_tokens),
            (1e7, 1000.0, 200.0)
        );
    }

    #[test]
    fn flags_override_the_file() {
        let w = build(
            "calls_per_month = 5\ninput_tokens = 7",
            WorkloadFlags {
                calls_per_month: Some(100_000.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((w.calls_per_month, w.input_tokens), (100_000.0, 7.0));
    }

    #[test]
    fn bad_values_name_the_field() {
        for (flags, field) in [
            (
                WorkloadFlags {
                    calls_per_month: Some(0.0),
                    ..Default::default()
                },
                "--calls-per-month",
            ),
            (
                WorkloadFlags {
                    input_tokens: Some(-3.0),
                    ..Default::default()
                },
                "--input-tokens",
            ),
            (
                WorkloadFlags {
                    output_tokens: Some(f64::NAN),
                    ..Default::default()
                },
                "--output-tokens",
            ),
        ] {
            let err = build("", flags).unwrap_err().to_string();
            assert!(err.starts_with(field), "{err}");
            assert!(err.contains("expected a finite number > 0"), "{err}");
        }
        let err = build("batch_share = 1.5", WorkloadFlags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_share = 1.5"), "{err}");
    }

    #[test]
    fn malformed_toml_gives_line_and_column() {
        let err = build(
            "calls_per_month = 1\ninput_tokens = = 3\n",
            WorkloadFlags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("w.toml:2:"), "{err}");
    }

    #[test]
    fn task_shares_must_sum_to_one() {
        let text = "[[task]]\nname='a'\nshare=0.5\n[[task]]\nname='b'\nshare=0.4\n";
        let err = build(text, WorkloadFlags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sum"), "{err}");
    }

    #[test]
    fn cache_shares_together_are_at_most_one() {
        let w = build(
            "cached_input_share = 0.5\ncache_write_share = 0.2\ncache_write_1h_share = 0.3",
            WorkloadFlags::default(),
        )
        .unwrap();
        assert_eq!(w.cache_write_1h_share, 0.3);
        // 0.5 + 0.2 + 0.4 = 1.1 of the same input tokens.
        let err = build(
            "cached_input_share = 0.5\ncache_write_share = 0.2\ncache_write_1h_share = 0.4",
            WorkloadFlags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cache_write_1h_share"), "{err}");
    }

    #[test]
    fn a_workload_file_written_reads_back_the_same() {
        let file = WorkloadFile {
            calls_per_month: Some(82_125.0),
            cache_write_1h_share: Some(0.025),
            hourly_profile: Some(vec![1.0; 24]),
            task: vec![TaskFile {
                name: "chat".to_string(),
                share: 1.0,
                input_tokens: Some(2000.0),
                output_tokens: None,
                self_host: Eligibility::Unknown,
            }],
            ..Default::default()
        };
        let text = toml::to_string(&file).unwrap();
        let back = WorkloadFile::parse("w.toml", &text).unwrap();
        assert_eq!(toml::to_string(&back).unwrap(), text);
        assert!(!text.contains("p99_prompt_tokens"), "{text}");
    }

    #[test]
    fn tasks_give_mean_tokens_when_top_level_is_absent() {
        let text = "[[task]]\nname='a'\nshare=0.5\ninput_tokens=100\noutput_tokens=10\n\
                    [[task]]\nname='b'\nshare=0.5\ninput_tokens=300\noutput_tokens=30\n";
        let w = build(text, WorkloadFlags::default()).unwrap();
        assert_eq!((w.input_tokens, w.output_tokens), (200.0, 20.0));
    }

    #[test]
    fn diurnal_profile_has_the_requested_peak_and_mean_one() {
        for ratio in [1.0, 1.5, 2.0, 3.0, 6.0] {
            let p = diurnal_profile(ratio);
            let mean = p.iter().sum::<f64>() / 24.0;
            let peak = p.iter().copied().fold(0.0, f64::max);
            assert!((mean - 1.0).abs() < 1e-9, "{ratio}: mean {mean}");
            assert!((peak - ratio).abs() < 1e-6, "{ratio}: peak {peak}");
        }
    }
}
