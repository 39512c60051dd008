//! The shadow pairs `serve` stored, scored (`costfloor eval shadow`): per task, how
//! often the primary's answer agrees with the reference backend's under the task's
//! deterministic scorer (the reference's answer taken as the expected one), with a
//! Wilson interval; for open-ended tasks, a judge backend's grades of the two answers
//! (the primary's in the candidate's place), with a paired bootstrap interval; and a
//! flag on every task whose gap has grown past the tolerance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use costfloor_core::money::Money;
use gateway::runtime::{Backend, Runtime};
use ledger::ShadowPair;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::judge::{self, Case, JudgeMode, JudgeOptions};
use crate::run::{JUDGE, JUDGE_BASELINE, JUDGE_CANDIDATE};
use crate::scorer::Scorer;
use crate::stats::{self, Interval};
use crate::summary::{Usd, BOOTSTRAP_RESAMPLES, CONFIDENCE};

/// A judge's grade of one pair: primary − reference on 0 to 1 (pairwise: +1 the
/// primary better, 0 a tie, −1 the reference better).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedPair {
    pub request_id: String,
    pub difference: Option<f64>,
    pub cost_nusd: i64,
}

/// Grades the pairs of tasks that `options_for` names a judge for, `concurrency` at a
/// time, through `backend`. Pairs without both outputs are skipped.
pub async fn judge_pairs(
    runtime: Arc<Runtime>,
    backend: Arc<Backend>,
    pairs: &[ShadowPair],
    options_for: &dyn Fn(&str) -> Option<JudgeOptions>,
    seed: u64,
    concurrency: usize,
) -> Vec<JudgedPair> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for pair in pairs {
        let Some(options) = pair.task.as_deref().and_then(options_for) else {
            continue;
        };
        let (Some(primary), Some(reference), None) = (
            &pair.primary_output,
            &pair.shadow_output,
            &pair.shadow_error,
        ) else {
            continue;
        };
        let sides: &[&'static str] = match options.mode {
            JudgeMode::Pairwise => &[JUDGE],
            JudgeMode::Scale => &[JUDGE_CANDIDATE, JUDGE_BASELINE],
        };
        let (runtime, backend, permits) = (
            Arc::clone(&runtime),
            Arc::clone(&backend),
            Arc::clone(&permits),
        );
        let (id, request, primary, reference) = (
            pair.request_id.clone(),
            pair.prompt.clone().unwrap_or_default(),
            primary.clone(),
            reference.clone(),
        );
        tasks.spawn(async move {
            let case = Case {
                id: &id,
                request,
                reference: None,
                options,
            };
            let mut grades = Vec::new();
            let mut cost = 0i64;
            for &side in sides {
                let Ok(_permit) = permits.acquire().await else {
                    break;
                };
                let text = judge::prompt(&case, side, &primary, &reference, seed);
                let Ok(request) = judge::request(&backend.config.model, text) else {
                    break;
                };
                match gateway::call::call(&runtime, &backend, &request).await {
                    Ok(answer) => {
                        cost += answer.cost.nano_usd();
                        grades.push(judge::read_verdict(&case, side, &answer.text, seed).grade);
                    }
                    Err(failure) => {
                        tracing::warn!(request_id = %id, "the judge failed: {}", failure.message);
                        grades.push(None);
                    }
                }
            }
            let top = f64::from(case.options.scale_max.max(2));
            let difference = match grades.as_slice() {
                [Some(grade)] => Some(judge::pairwise_difference(*grade)),
                [Some(primary), Some(reference)] => {
                    Some(judge::scale_difference(*primary, *reference, top))
                }
                _ => None,
            };
            JudgedPair {
                request_id: id.clone(),
                difference,
                cost_nusd: cost,
            }
        });
    }
    let mut judged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(pair) = done {
            judged.push(pair);
        }
    }
    judged
}

/// One task's agreement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowTask {
    pub task: String,
    pub pairs: u64,
    /// Pairs where the shadow failed, or an output was not stored.
    pub unusable: u64,
    /// Pairs a scorer compared.
    pub compared: u64,
    pub agreed: u64,
    pub agreement: Option<f64>,
    pub agreement_interval: Option<Interval>,
    /// 1 − agreement: the gap against the reference, with its interval.
    pub gap: Option<f64>,
    pub gap_interval: Option<Interval>,
    /// `None` when the task has no deterministic scorer (it needs the judge).
    pub scorer: Option<String>,
    /// Pairs a judge graded, the mean difference (primary − reference, 0 to 1 scale) and
    /// its paired bootstrap interval.
    pub judged: u64,
    pub judged_mean_difference: Option<f64>,
    pub judged_interval: Option<Interval>,
    pub judge_cost: Usd,
    /// The gap's point estimate is past `max_gap`.
    pub flagged: bool,
    /// Even the interval's lower bound is past `max_gap`.
    pub clearly_past: bool,
    pub shadow_cost: Usd,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowReport {
    pub max_gap: f64,
    pub confidence: f64,
    pub tasks: Vec<ShadowTask>,
    pub shadow_cost: Usd,
}

/// Scores `pairs`; `scorer_for(task)` is the task's scorer (`None`: not scored here).
pub fn score(
    pairs: &[ShadowPair],
    scorer_for: &dyn Fn(&str) -> Option<Scorer>,
    judged: &[JudgedPair],
    max_gap: f64,
) -> ShadowReport {
    let judged_by_id: HashMap<&str, &JudgedPair> =
        judged.iter().map(|j| (j.request_id.as_str(), j)).collect();
    let mut by_task: BTreeMap<String, Vec<&ShadowPair>> = BTreeMap::new();
    for pair in pairs {
        by_task
            .entry(pair.task.clone().unwrap_or_else(|| "(none)".to_string()))
            .or_default()
            .push(pair);
    }
    let mut tasks = Vec::new();
    let mut total_cost = 0i64;
    for (task, pairs) in by_task {
        let cost: i64 = pairs.iter().map(|p| p.shadow_cost_nusd).sum();
        total_cost += cost;
        let scorer = scorer_for(&task);
        let mut unusable = 0;
        let mut compared = 0;
        let mut agreed = 0;
        for pair in &pairs {
            let (Some(primary), Some(reference), None) = (
                &pair.primary_output,
                &pair.shadow_output,
                &pair.shadow_error,
            ) else {
                unusable += 1;
                continue;
            };
            if let Some(agree) = scorer.as_ref().and_then(|s| s.agree(primary, reference)) {
                compared += 1;
                if agree {
                    agreed += 1;
                }
            }
        }
        let agreement = (compared > 0).then(|| agreed as f64 / compared as f64);
        let interval = (compared > 0).then(|| stats::wilson(agreed, compared, CONFIDENCE));
        let mut gap = agreement.map(|a| 1.0 - a);
        let mut gap_interval = interval.map(|i| Interval {
            low: 1.0 - i.high,
            high: 1.0 - i.low,
        });
        let mine: Vec<&JudgedPair> = pairs
            .iter()
            .filter_map(|p| judged_by_id.get(p.request_id.as_str()).copied())
            .collect();
        let judge_cost: i64 = mine.iter().map(|j| j.cost_nusd).sum();
        let differences: Vec<f64> = mine.iter().filter_map(|j| j.difference).collect();
        let judged_mean = (!differences.is_empty())
            .then(|| differences.iter().sum::<f64>() / differences.len() as f64);
        let judged_interval = stats::bootstrap_mean_difference(
            &differences,
            BOOTSTRAP_RESAMPLES,
            CONFIDENCE,
            0x0000_7368_6164_6f77,
        );
        if compared == 0 {
            if let (Some(mean), Some(i)) = (judged_mean, judged_interval) {
                gap = Some(0.0 - mean);
                gap_interval = Some(Interval {
                    low: 0.0 - i.high,
                    high: 0.0 - i.low,
                });
            }
        }
        let note = if scorer.is_none() && differences.is_empty() {
            Some("no deterministic scorer for this task: give one in the eval TOML, or grade it with --judge".to_string())
        } else if unusable == pairs.len() as u64 {
            Some(
                "no pair has both outputs: set store_outputs = true on the route's shadow"
                    .to_string(),
            )
        } else {
            None
        };
        tasks.push(ShadowTask {
            // A hair of tolerance, so that 1 − 19/20 counts as the 0.05 it is.
            flagged: gap.is_some_and(|g| g > max_gap + 1e-9),
            clearly_past: gap_interval.is_some_and(|i| i.low > max_gap + 1e-9),
            task,
            pairs: pairs.len() as u64,
            unusable,
            compared,
            agreed,
            agreement,
            agreement_interval: interval,
            gap,
            gap_interval,
            scorer: scorer.as_ref().map(|s| s.kind().to_string()),
            judged: differences.len() as u64,
            judged_mean_difference: judged_mean,
            judged_interval,
            judge_cost: Usd::of(Money::from_nano_usd(judge_cost)),
            shadow_cost: Usd::of(Money::from_nano_usd(cost)),
            note,
        });
    }
    ShadowReport {
        max_gap,
        confidence: CONFIDENCE,
        tasks,
        shadow_cost: Usd::of(Money::from_nano_usd(total_cost)),
    }
}
