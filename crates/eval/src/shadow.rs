//! The shadow pairs `serve` stored, scored (`costfloor eval shadow`): per task, how
//! often the primary's answer agrees with the reference backend's under the task's
//! deterministic scorer (the reference's answer taken as the expected one), with a
//! Wilson interval, and a flag on every task whose disagreement has grown past the
//! tolerance.

use std::collections::BTreeMap;

use ledger::ShadowPair;
use serde::Serialize;

use crate::scorer::Scorer;
use crate::stats::{self, Interval};
use crate::summary::{Usd, CONFIDENCE};
use costfloor_core::money::Money;

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
    max_gap: f64,
) -> ShadowReport {
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
        let gap = agreement.map(|a| 1.0 - a);
        let gap_interval = interval.map(|i| Interval {
            low: 1.0 - i.high,
            high: 1.0 - i.low,
        });
        let note = if scorer.is_none() {
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
            flagged: gap.is_some_and(|g| g > max_gap),
            clearly_past: gap_interval.is_some_and(|i| i.low > max_gap),
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
