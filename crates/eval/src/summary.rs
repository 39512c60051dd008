//! The report of a run (`costfloor eval report`): per task and overall, each side's
//! accuracy with its Wilson interval, the paired difference with its interval and
//! McNemar's exact test, judged grades with a paired bootstrap interval, latency,
//! tokens and cost per sample, whether n can tell a gap of the tolerance from none,
//! the error cost in dollars, and the recommended side. Its JSON is documented in
//! `docs/eval.md`.

use std::collections::{BTreeMap, HashMap};

use costfloor_core::money::Money;
use ledger::EvalResult;
use serde::{Deserialize, Serialize};

use crate::run::{BASELINE, CANDIDATE, JUDGE, JUDGE_BASELINE, JUDGE_CANDIDATE};
use crate::stats::{self, Interval, PairedCounts};

/// The confidence of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// The power the sample-size advice is for.
pub const POWER: f64 = 0.8;
/// Bootstrap resamples for judged grades.
pub const BOOTSTRAP_RESAMPLES: u32 = 2000;

/// Money exactly (`nusd`) and for reading (`usd`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usd {
    pub usd: f64,
    pub nusd: i64,
}

impl Usd {
    pub fn of(money: Money) -> Usd {
        Usd {
            usd: money.usd_f64(),
            nusd: money.nano_usd(),
        }
    }

    pub fn money(self) -> Money {
        Money::from_nano_usd(self.nusd)
    }
}

/// What the report needs besides the answers.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// The largest accuracy gap (baseline − candidate) that may go to the candidate.
    pub max_gap: f64,
    /// The downstream cost of one wrong answer, per task (USD).
    pub error_cost_usd: BTreeMap<String, f64>,
    /// Calls per month per task, where known.
    pub calls_per_month: BTreeMap<String, f64>,
    /// The bootstrap's seed (the run's).
    pub seed: u64,
}

/// One side's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Side {
    pub backend: String,
    pub answered: u64,
    pub failed: u64,
    /// Answers a deterministic scorer graded, and how many were right.
    pub scored: u64,
    pub correct: u64,
    pub accuracy: Option<f64>,
    pub accuracy_interval: Option<Interval>,
    pub latency_mean_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub input_tokens_mean: Option<f64>,
    pub output_tokens_mean: Option<f64>,
    pub cost: Usd,
    pub cost_per_sample: Option<Usd>,
}

/// The paired comparison on samples both sides answered and a scorer graded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Paired {
    pub n: u64,
    pub both_correct: u64,
    pub candidate_only: u64,
    pub baseline_only: u64,
    pub neither: u64,
    /// Candidate accuracy − baseline accuracy.
    pub difference: f64,
    /// Newcombe's score interval for a paired difference.
    pub difference_interval: Interval,
    /// McNemar's exact two-sided p on the discordant pairs.
    pub mcnemar_p: f64,
}

/// Judged grades, paired by sample.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Judged {
    /// `pairwise` or `scale`.
    pub mode: String,
    pub n: u64,
    /// Pairwise: how often the candidate won, tied, lost.
    pub wins: u64,
    pub ties: u64,
    pub losses: u64,
    /// Scale: mean grades.
    pub candidate_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    /// Candidate − baseline, on 0 to 1 (pairwise: win rate − loss rate).
    pub mean_difference: f64,
    /// Paired bootstrap interval of `mean_difference`, seeded.
    pub difference_interval: Option<Interval>,
}

/// The gap (baseline − candidate) the decision uses, on 0 to 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    /// `accuracy` or `judge`.
    pub basis: String,
    pub point: f64,
    pub interval: Interval,
}

/// Whether n can tell a gap of the tolerance from none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Power {
    pub enough: bool,
    /// Samples for 80% power to detect a gap of `max_gap` (McNemar, at the observed
    /// share of discordant pairs, at least the gap itself).
    pub samples_needed: Option<u64>,
    pub note: String,
}

/// Dollars: the API spend the task would avoid on the candidate, and what the
/// candidate's extra errors would cost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorCost {
    pub usd_per_error: f64,
    /// The measured per-sample saving (baseline − candidate cost).
    pub savings_per_call: Usd,
    /// `max(gap, 0)` × the cost of an error.
    pub error_cost_per_call: Usd,
    pub calls_per_month: Option<f64>,
    pub savings_per_month: Option<Usd>,
    pub error_cost_per_month: Option<Usd>,
}

/// The recommended side for a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recommendation {
    /// `self_host`, `api` or `undecided`.
    pub decision: String,
    pub reason: String,
    /// For `undecided`: more samples needed for the power the report asks.
    pub more_samples: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskReport {
    pub task: String,
    pub samples: u64,
    pub candidate: Side,
    pub baseline: Side,
    pub paired: Option<Paired>,
    pub judged: Option<Judged>,
    pub gap: Option<Gap>,
    pub power: Power,
    pub error_cost: Option<ErrorCost>,
    pub recommendation: Recommendation,
    /// Judge replies that were not verdicts (or judge requests that failed), left out.
    pub judge_failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub run_id: String,
    pub status: String,
    pub dataset: String,
    pub candidate: String,
    pub baseline: String,
    pub judge: Option<String>,
    pub confidence: f64,
    pub max_gap: f64,
    pub samples_chosen: u64,
    pub tasks: Vec<TaskReport>,
    pub overall: TaskReport,
    pub judge_cost: Usd,
    pub total_cost: Usd,
}

/// The run's header fields.
pub struct RunHeader<'a> {
    pub run_id: &'a str,
    pub status: &'a str,
    pub dataset: &'a str,
    pub candidate: &'a str,
    pub baseline: &'a str,
    pub judge: Option<&'a str>,
    pub samples_chosen: u64,
}

/// Builds the report from a run's stored answers.
pub fn build(header: &RunHeader<'_>, results: &[EvalResult], inputs: &ReportInputs) -> EvalReport {
    let mut by_task: BTreeMap<&str, Vec<&EvalResult>> = BTreeMap::new();
    for result in results {
        by_task
            .entry(result.task.as_str())
            .or_default()
            .push(result);
    }
    let mut tasks = Vec::new();
    for (task, rows) in &by_task {
        tasks.push(task_report(header, task, rows, inputs, Some(task)));
    }
    let all: Vec<&EvalResult> = results.iter().collect();
    let overall = task_report(header, "overall", &all, inputs, None);
    let judge_cost: i64 = results
        .iter()
        .filter(|r| r.side.starts_with(JUDGE))
        .map(|r| r.cost_nusd)
        .sum();
    let total: i64 = results.iter().map(|r| r.cost_nusd).sum();
    EvalReport {
        run_id: header.run_id.to_string(),
        status: header.status.to_string(),
        dataset: header.dataset.to_string(),
        candidate: header.candidate.to_string(),
        baseline: header.baseline.to_string(),
        judge: header.judge.map(str::to_string),
        confidence: CONFIDENCE,
        max_gap: inputs.max_gap,
        samples_chosen: header.samples_chosen,
        tasks,
        overall,
        judge_cost: Usd::of(Money::from_nano_usd(judge_cost)),
        total_cost: Usd::of(Money::from_nano_usd(total)),
    }
}

fn side(backend: &str, rows: &[&EvalResult], side: &str) -> Side {
    let mine: Vec<&&EvalResult> = rows.iter().filter(|r| r.side == side).collect();
    let answered: Vec<&&EvalResult> = mine.iter().copied().filter(|r| r.error.is_none()).collect();
    let scored: Vec<bool> = answered.iter().filter_map(|r| r.correct).collect();
    let correct = scored.iter().filter(|&&c| c).count() as u64;
    let n = scored.len() as u64;
    let mut latencies: Vec<f64> = answered
        .iter()
        .map(|r| r.latency_us as f64 / 1000.0)
        .collect();
    let mean = |values: &[f64]| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let input: Vec<f64> = answered
        .iter()
        .map(|r| (r.input_tokens + r.cache_read_tokens + r.cache_write_tokens) as f64)
        .collect();
    let output: Vec<f64> = answered.iter().map(|r| r.output_tokens as f64).collect();
    let cost: i64 = mine.iter().map(|r| r.cost_nusd).sum();
    Side {
        backend: backend.to_string(),
        answered: answered.len() as u64,
        failed: (mine.len() - answered.len()) as u64,
        scored: n,
        correct,
        accuracy: (n > 0).then(|| correct as f64 / n as f64),
        accuracy_interval: (n > 0).then(|| stats::wilson(correct, n, CONFIDENCE)),
        latency_mean_ms: mean(&latencies),
        latency_p99_ms: stats::percentile(&mut latencies, 99.0),
        input_tokens_mean: mean(&input),
        output_tokens_mean: mean(&output),
        cost: Usd::of(Money::from_nano_usd(cost)),
        cost_per_sample: (!answered.is_empty())
            .then(|| Usd::of(Money::from_nano_usd(cost / answered.len() as i64))),
    }
}

fn task_report(
    header: &RunHeader<'_>,
    task: &str,
    rows: &[&EvalResult],
    inputs: &ReportInputs,
    task_key: Option<&str>,
) -> TaskReport {
    let candidate = side(header.candidate, rows, CANDIDATE);
    let baseline = side(header.baseline, rows, BASELINE);
    let mut by_sample: HashMap<&str, HashMap<&str, &EvalResult>> = HashMap::new();
    for row in rows {
        by_sample
            .entry(row.sample_id.as_str())
            .or_default()
            .insert(row.side.as_str(), row);
    }
    let samples = by_sample.len() as u64;
    // Paired binary outcomes.
    let mut counts = PairedCounts::default();
    let mut judged_pairwise = Vec::new();
    let mut judged_scale = Vec::new();
    for sides in by_sample.values() {
        let graded = |side: &str| {
            sides
                .get(side)
                .filter(|r| r.error.is_none())
                .and_then(|r| r.correct)
        };
        if let (Some(c), Some(b)) = (graded(CANDIDATE), graded(BASELINE)) {
            counts.record(c, b);
        }
        let grade = |side: &str| {
            sides
                .get(side)
                .filter(|r| r.error.is_none())
                .and_then(|r| r.grade)
        };
        if let Some(g) = grade(JUDGE) {
            judged_pairwise.push(g);
        }
        if let (Some(c), Some(b)) = (grade(JUDGE_CANDIDATE), grade(JUDGE_BASELINE)) {
            judged_scale.push((c, b));
        }
    }
    let paired = (counts.n() > 0).then(|| Paired {
        n: counts.n(),
        both_correct: counts.both,
        candidate_only: counts.candidate_only,
        baseline_only: counts.baseline_only,
        neither: counts.neither,
        difference: counts.difference(),
        difference_interval: stats::paired_difference_interval(&counts, CONFIDENCE),
        mcnemar_p: counts.mcnemar_p(),
    });
    let seed = inputs.seed ^ 0x006a_7564_6765;
    let judged = if !judged_pairwise.is_empty() {
        let differences: Vec<f64> = judged_pairwise
            .iter()
            .map(|&g| crate::judge::pairwise_difference(g))
            .collect();
        let mean = differences.iter().sum::<f64>() / differences.len() as f64;
        Some(Judged {
            mode: "pairwise".to_string(),
            n: differences.len() as u64,
            wins: judged_pairwise.iter().filter(|&&g| g > 0.75).count() as u64,
            ties: judged_pairwise
                .iter()
                .filter(|&&g| (0.25..=0.75).contains(&g))
                .count() as u64,
            losses: judged_pairwise.iter().filter(|&&g| g < 0.25).count() as u64,
            candidate_mean: None,
            baseline_mean: None,
            mean_difference: mean,
            difference_interval: stats::bootstrap_mean_difference(
                &differences,
                BOOTSTRAP_RESAMPLES,
                CONFIDENCE,
                seed,
            ),
        })
    } else if !judged_scale.is_empty() {
        // Grades 1..max become 0..1, so the gap is on the accuracy's scale.
        // The scale's top, as the judge's rows record it ("grade=4 of 5").
        let top = rows
            .iter()
            .filter(|r| r.side == JUDGE_CANDIDATE || r.side == JUDGE_BASELINE)
            .filter_map(|r| {
                r.detail
                    .as_deref()?
                    .rsplit_once(" of ")?
                    .1
                    .parse::<f64>()
                    .ok()
            })
            .fold(2.0f64, f64::max);
        let differences: Vec<f64> = judged_scale
            .iter()
            .map(|&(c, b)| crate::judge::scale_difference(c, b, top))
            .collect();
        let n = differences.len() as f64;
        Some(Judged {
            mode: "scale".to_string(),
            n: differences.len() as u64,
            wins: judged_scale.iter().filter(|&&(c, b)| c > b).count() as u64,
            ties: judged_scale.iter().filter(|&&(c, b)| c == b).count() as u64,
            losses: judged_scale.iter().filter(|&&(c, b)| c < b).count() as u64,
            candidate_mean: Some(judged_scale.iter().map(|p| p.0).sum::<f64>() / n),
            baseline_mean: Some(judged_scale.iter().map(|p| p.1).sum::<f64>() / n),
            mean_difference: differences.iter().sum::<f64>() / n,
            difference_interval: stats::bootstrap_mean_difference(
                &differences,
                BOOTSTRAP_RESAMPLES,
                CONFIDENCE,
                seed,
            ),
        })
    } else {
        None
    };
    let gap = if let Some(p) = &paired {
        Some(Gap {
            basis: "accuracy".to_string(),
            // 0 − x, not −x: no "−0.0" for equal sides.
            point: 0.0 - p.difference,
            interval: Interval {
                low: 0.0 - p.difference_interval.high,
                high: 0.0 - p.difference_interval.low,
            },
        })
    } else {
        judged.as_ref().and_then(|j| {
            j.difference_interval.map(|i| Gap {
                basis: "judge".to_string(),
                point: 0.0 - j.mean_difference,
                interval: Interval {
                    low: 0.0 - i.high,
                    high: 0.0 - i.low,
                },
            })
        })
    };
    let max_gap = inputs.max_gap;
    let n = paired
        .as_ref()
        .map_or_else(|| judged.as_ref().map_or(0, |j| j.n), |p| p.n);
    let discordant = if paired.is_some() {
        counts.discordant_fraction()
    } else {
        max_gap
    };
    let needed =
        stats::samples_for_power(max_gap, discordant.max(max_gap), 1.0 - CONFIDENCE, POWER);
    let enough = needed.is_some_and(|needed| n >= needed);
    let power = Power {
        enough,
        samples_needed: needed,
        note: match needed {
            Some(needed) if n < needed => format!(
                "n = {n} is too small to tell a gap of {:.0} points from none: about {needed} paired samples give 80% power ({})",
                max_gap * 100.0,
                if paired.is_some() {
                    format!("McNemar, {:.1}% discordant pairs", discordant.max(max_gap) * 100.0)
                } else {
                    "judged grades, sized as McNemar's test at a discordance of the tolerance".to_string()
                }
            ),
            Some(needed) => format!(
                "n = {n} gives at least 80% power to detect a gap of {:.0} points (about {needed} needed)",
                max_gap * 100.0
            ),
            None => "no tolerance to size the sample for".to_string(),
        },
    };
    let error_cost = task_key.and_then(|task| {
        let usd = *inputs.error_cost_usd.get(task)?;
        let point = gap.as_ref().map_or(0.0, |g| g.point.max(0.0));
        let savings = Money::from_nano_usd(
            baseline.cost_per_sample.map_or(0, |c| c.nusd)
                - candidate.cost_per_sample.map_or(0, |c| c.nusd),
        );
        let error = Money::from_usd_f64(usd * point);
        let calls = inputs.calls_per_month.get(task).copied();
        let monthly =
            |per_call: Money| calls.map(|c| Usd::of(per_call.mul_ratio(c.round() as i128, 1)));
        Some(ErrorCost {
            usd_per_error: usd,
            savings_per_call: Usd::of(savings),
            error_cost_per_call: Usd::of(error),
            calls_per_month: calls,
            savings_per_month: monthly(savings),
            error_cost_per_month: monthly(error),
        })
    });
    let recommendation = recommend(gap.as_ref(), max_gap, needed, n, error_cost.as_ref());
    let judge_failed = rows
        .iter()
        .filter(|r| r.side.starts_with(JUDGE) && r.error.is_some())
        .count() as u64;
    TaskReport {
        judge_failed,
        task: task.to_string(),
        samples,
        candidate,
        baseline,
        paired,
        judged,
        gap,
        power,
        error_cost,
        recommendation,
    }
}

/// Self-host when the gap's upper bound is within the tolerance and the expected error
/// cost is below the saving; the API when the gap's lower bound is past it (or the
/// errors cost more); undecided otherwise, with the samples that would decide it.
pub fn recommend(
    gap: Option<&Gap>,
    max_gap: f64,
    needed: Option<u64>,
    n: u64,
    error_cost: Option<&ErrorCost>,
) -> Recommendation {
    let points = |x: f64| format!("{:.1} points", x * 100.0);
    let Some(gap) = gap else {
        return Recommendation {
            decision: "undecided".to_string(),
            reason: "no sample was answered and graded on both sides".to_string(),
            more_samples: needed,
        };
    };
    // A hair of tolerance, so that 1 − 19/20 counts as the 0.05 it is.
    const EPS: f64 = 1e-9;
    if gap.interval.low > max_gap + EPS {
        return Recommendation {
            decision: "api".to_string(),
            reason: format!(
                "the candidate is worse by {} ({} to {}), more than the tolerance of {}",
                points(gap.point),
                points(gap.interval.low),
                points(gap.interval.high),
                points(max_gap)
            ),
            more_samples: None,
        };
    }
    if gap.interval.high <= max_gap + EPS {
        if let Some(cost) = error_cost {
            if cost.error_cost_per_call.nusd > cost.savings_per_call.nusd {
                return Recommendation {
                    decision: "api".to_string(),
                    reason: format!(
                        "the gap of {} is within the tolerance, but its errors cost ${:.6} a call against ${:.6} saved",
                        points(gap.point),
                        cost.error_cost_per_call.usd,
                        cost.savings_per_call.usd
                    ),
                    more_samples: None,
                };
            }
        }
        return Recommendation {
            decision: "self_host".to_string(),
            reason: format!(
                "the gap is at most {} (point {}), within the tolerance of {}{}",
                points(gap.interval.high),
                points(gap.point),
                points(max_gap),
                if error_cost.is_some() {
                    ", and the errors cost less than the saving"
                } else {
                    ""
                }
            ),
            more_samples: None,
        };
    }
    // Intervals narrow as 1/√n: the samples at which the interval's edge on the
    // tolerance's side would clear it, at today's estimate.
    let edge = |half_width: f64, margin: f64| {
        (margin > 1e-12 && n > 0).then(|| {
            let total = (n as f64 * (half_width / margin).powi(2)).ceil() as u64;
            total.saturating_sub(n).max(1)
        })
    };
    let more = if gap.point < max_gap {
        edge(gap.interval.high - gap.point, max_gap - gap.point)
    } else {
        edge(gap.point - gap.interval.low, gap.point - max_gap)
    }
    .or_else(|| needed.map(|needed| needed.saturating_sub(n).max(1)));
    let side = if gap.point < max_gap {
        "within it"
    } else {
        "past it"
    };
    Recommendation {
        decision: "undecided".to_string(),
        reason: format!(
            "the gap is {} to {}: too wide to tell from the tolerance of {}; about {} more paired samples would show it {side} if the estimate holds",
            points(gap.interval.low),
            points(gap.interval.high),
            points(max_gap),
            more.map_or("more".to_string(), |m| m.to_string())
        ),
        more_samples: more,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gap(point: f64, low: f64, high: f64) -> Gap {
        Gap {
            basis: "accuracy".into(),
            point,
            interval: Interval { low, high },
        }
    }

    #[test]
    fn the_rule_decides_on_the_interval_and_the_error_cost() {
        let max_gap = 0.05;
        assert_eq!(
            recommend(Some(&gap(0.2, 0.1, 0.3)), max_gap, Some(100), 100, None).decision,
            "api"
        );
        assert_eq!(
            recommend(Some(&gap(0.0, -0.02, 0.02)), max_gap, Some(100), 100, None).decision,
            "self_host"
        );
        // Within the tolerance, but each error costs more than the call saves.
        let costly = ErrorCost {
            usd_per_error: 1.0,
            savings_per_call: Usd::of(Money::from_nano_usd(2_000_000)),
            error_cost_per_call: Usd::of(Money::from_nano_usd(10_000_000)),
            calls_per_month: None,
            savings_per_month: None,
            error_cost_per_month: None,
        };
        let r = recommend(
            Some(&gap(0.01, -0.01, 0.03)),
            max_gap,
            Some(100),
            100,
            Some(&costly),
        );
        assert_eq!(r.decision, "api");
        assert!(r.reason.contains("errors cost"), "{}", r.reason);
        // Undecided: point 0.02, upper edge 0.08 (half-width 0.06); the edge clears 0.05
        // when the half-width is 0.03, at 100 × (0.06 / 0.03)² = 400 samples: 300 more.
        let r = recommend(Some(&gap(0.02, -0.04, 0.08)), max_gap, Some(155), 100, None);
        assert_eq!(
            (r.decision.as_str(), r.more_samples),
            ("undecided", Some(300))
        );
        // Past the tolerance: point 0.08, lower edge 0.02 (half-width 0.06): the edge
        // clears 0.05 at half-width 0.03, again 300 more.
        let r = recommend(Some(&gap(0.08, 0.02, 0.14)), max_gap, Some(155), 100, None);
        assert_eq!(r.more_samples, Some(300));
        assert!(r.reason.contains("past it"), "{}", r.reason);
        assert_eq!(
            recommend(None, max_gap, Some(155), 0, None).decision,
            "undecided"
        );
    }
}
