//! Measured quality for `plan --eval`: the per-task results of `costfloor eval report
//! --json` (its documented schema, `docs/eval.md`), read from the text the caller
//! passes. Each measured task replaces the workload's `self_host` guess, and its error
//! cost (the gap times the cost of a wrong answer) is charged on every call the
//! self-hosted side serves.

use serde::Deserialize;

use crate::error::InputError;
use crate::money::Money;
use crate::workload::{Eligibility, Workload};

/// One task's measured result.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredTask {
    pub task: String,
    /// `self_host` → Yes; `api` and `undecided` → No: a task stays on the API until it
    /// is measured to fit, as `eval policy` routes it.
    pub eligibility: Eligibility,
    pub decision: String,
    pub reason: String,
    /// Paired samples behind the figures.
    pub n: u64,
    /// The gap (baseline − candidate) and its interval, on 0 to 1.
    pub gap: Option<(f64, f64, f64)>,
    /// `max(gap, 0)` × the cost of a wrong answer, per call; zero without an error cost.
    pub error_cost_per_call: Money,
}

/// The results of one eval run.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredQuality {
    pub run_id: String,
    pub candidate: String,
    pub baseline: String,
    pub max_gap: f64,
    pub tasks: Vec<MeasuredTask>,
}

#[derive(Deserialize)]
struct ReportJson {
    run_id: String,
    candidate: String,
    baseline: String,
    max_gap: f64,
    tasks: Vec<TaskJson>,
}

#[derive(Deserialize)]
struct TaskJson {
    task: String,
    samples: u64,
    paired: Option<PairedJson>,
    gap: Option<GapJson>,
    error_cost: Option<ErrorCostJson>,
    recommendation: RecommendationJson,
}

#[derive(Deserialize)]
struct PairedJson {
    n: u64,
}

#[derive(Deserialize)]
struct GapJson {
    point: f64,
    interval: IntervalJson,
}

#[derive(Deserialize)]
struct IntervalJson {
    low: f64,
    high: f64,
}

#[derive(Deserialize)]
struct ErrorCostJson {
    error_cost_per_call: AmountJson,
}

#[derive(Deserialize)]
struct AmountJson {
    nusd: i64,
}

#[derive(Deserialize)]
struct RecommendationJson {
    decision: String,
    reason: String,
}

impl MeasuredQuality {
    /// Parses `eval report --json` output; `name` is the file, for errors.
    pub fn parse(name: &str, text: &str) -> Result<MeasuredQuality, InputError> {
        let report: ReportJson = serde_json::from_str(text).map_err(|e| InputError::Invalid {
            field: "--eval".to_string(),
            value: name.to_string(),
            allowed: format!("the output of `costfloor eval report RUN_ID --json` ({e})"),
        })?;
        let mut tasks = Vec::with_capacity(report.tasks.len());
        for task in report.tasks {
            let eligibility = match task.recommendation.decision.as_str() {
                "self_host" => Eligibility::Yes,
                "api" => Eligibility::No,
                "undecided" => Eligibility::No,
                other => {
                    return Err(InputError::Invalid {
                        field: format!("{name}: tasks[{}].recommendation.decision", task.task),
                        value: other.to_string(),
                        allowed: "self_host, api or undecided".to_string(),
                    })
                }
            };
            tasks.push(MeasuredTask {
                n: task.paired.map_or(task.samples, |p| p.n),
                gap: task.gap.map(|g| (g.point, g.interval.low, g.interval.high)),
                error_cost_per_call: Money::from_nano_usd(
                    task.error_cost.map_or(0, |e| e.error_cost_per_call.nusd),
                ),
                eligibility,
                decision: task.recommendation.decision,
                reason: task.recommendation.reason,
                task: task.task,
            });
        }
        Ok(MeasuredQuality {
            run_id: report.run_id,
            candidate: report.candidate,
            baseline: report.baseline,
            max_gap: report.max_gap,
            tasks,
        })
    }

    pub fn task(&self, name: &str) -> Option<&MeasuredTask> {
        self.tasks.iter().find(|t| t.task == name)
    }

    /// Sets each workload task's eligibility from its measured result, matched by name.
    /// Returns the names of the workload's tasks that were not measured.
    pub fn apply(&self, workload: &mut Workload) -> Vec<String> {
        let mut unmeasured = Vec::new();
        for task in &mut workload.tasks {
            match self.task(&task.name) {
                Some(measured) => task.self_host = measured.eligibility,
                None => unmeasured.push(task.name.clone()),
            }
        }
        unmeasured
    }

    /// The error cost per call of the calls the self-hosted side may serve: each
    /// eligible task's, weighted by its share.
    pub fn eligible_error_cost_per_call(&self, workload: &Workload) -> Money {
        let mut weighted_ppm = 0i128;
        let mut share_ppm = 0i128;
        for task in workload
            .tasks
            .iter()
            .filter(|t| t.self_host != Eligibility::No)
        {
            let ppm = (task.share * 1e6).round() as i128;
            share_ppm += ppm;
            if let Some(measured) = self.task(&task.name) {
                weighted_ppm += measured.error_cost_per_call.pico_usd() * ppm;
            }
        }
        if share_ppm == 0 {
            return Money::ZERO;
        }
        Money::from_pico_usd(weighted_ppm / share_ppm)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{"run_id": "r", "candidate": "llama", "baseline": "haiku", "max_gap": 0.05,
      "tasks": [
        {"task": "classify", "samples": 150, "paired": {"n": 150}, "gap": {"point": 0.0, "interval": {"low": -0.02, "high": 0.02}},
         "error_cost": {"error_cost_per_call": {"usd": 0.0, "nusd": 0}}, "recommendation": {"decision": "self_host", "reason": "fits"}},
        {"task": "reason", "samples": 80, "paired": {"n": 80}, "gap": {"point": 0.2, "interval": {"low": 0.12, "high": 0.3}},
         "error_cost": {"error_cost_per_call": {"usd": 0.4, "nusd": 400000000}}, "recommendation": {"decision": "api", "reason": "worse"}},
        {"task": "extract", "samples": 20, "paired": {"n": 20}, "gap": {"point": 0.05, "interval": {"low": -0.05, "high": 0.2}},
         "error_cost": {"error_cost_per_call": {"usd": 0.01, "nusd": 10000000}}, "recommendation": {"decision": "undecided", "reason": "wide"}}
      ]}"#;

    #[test]
    fn measured_tasks_replace_the_guess_and_carry_their_error_cost() {
        let measured = MeasuredQuality::parse("r.json", REPORT).unwrap();
        assert_eq!(measured.tasks.len(), 3);
        assert_eq!(
            measured.task("reason").unwrap().eligibility,
            Eligibility::No
        );
        assert_eq!(
            measured.task("extract").unwrap().gap,
            Some((0.05, -0.05, 0.2))
        );
        let bad = MeasuredQuality::parse("x.json", "{}")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("--eval = x.json") && bad.contains("eval report"),
            "{bad}"
        );
    }
}
