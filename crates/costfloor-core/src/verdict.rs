//! The verdict: a checklist of what decides API against self-hosting (volume,
//! utilisation, ops staffing, quality, context, burstiness, capacity), each with its
//! measured value and its threshold, then a recommendation with the figures that
//! drive it. One function per check; thresholds come from the catalog's assumptions.

use serde::Serialize;

use crate::breakeven::BreakEven;
use crate::catalog::{ApiModel, Assumptions, Deployment};
use crate::money::Money;
use crate::plan::{human_calls, Capacity, HybridPlan};
use crate::workload::{Eligibility, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Favours self-hosting.
    Pass,
    /// Favours the API.
    Fail,
    /// Self-hosting is possible but this needs attention.
    Warn,
    /// Not measured yet.
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub measured: String,
    pub threshold: String,
    pub status: CheckStatus,
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Api,
    SelfHost,
    Hybrid,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub recommendation: Recommendation,
    pub summary: String,
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
}

/// What the verdict weighs: the reference API against the primary self-hosted option.
pub struct VerdictInput<'a> {
    pub assumptions: &'a Assumptions,
    pub workload: &'a Workload,
    pub api: &'a ApiModel,
    pub api_monthly: Money,
    /// The self-hosted option's id (`ID` or `ID+owned`).
    pub self_hosted: &'a str,
    pub deployment: &'a Deployment,
    pub ops_monthly: Money,
    /// The open model's longest context, in tokens.
    pub max_context: u64,
    pub capacity: &'a Capacity,
    pub break_even: &'a BreakEven,
    pub hybrid: &'a HybridPlan,
    /// Measured quality (`plan --eval`), if any.
    pub quality: Option<&'a crate::quality::MeasuredQuality>,
}

pub fn verdict(input: &VerdictInput<'_>) -> Verdict {
    let mut checks = vec![
        volume_check(input),
        utilization_check(input),
        ops_check(input),
        quality_check(input),
        context_check(input),
        burstiness_check(input),
    ];
    checks.extend(capacity_check(input));
    let (recommendation, reasons) = recommend(input);
    let summary = match recommendation {
        Recommendation::Api => format!("Use the API ({})", input.api.id),
        Recommendation::SelfHost => format!("Self-host ({})", input.self_hosted),
        Recommendation::Hybrid => format!(
            "Hybrid: {} for eligible tasks, {} for the rest and peaks",
            input.self_hosted, input.api.id
        ),
    };
    Verdict {
        recommendation,
        summary,
        reasons,
        checks,
    }
}

fn pass_if(condition: bool, otherwise: CheckStatus) -> CheckStatus {
    if condition {
        CheckStatus::Pass
    } else {
        otherwise
    }
}

/// Is self-hosting, sized for the peak, cheaper than the API at this volume?
fn volume_check(input: &VerdictInput<'_>) -> Check {
    let api = &input.api.id;
    let result = input.break_even;
    let capacity = input.capacity;
    let self_at_required = capacity.monthly_cost_at_required_usd;
    let threshold = match (
        result.capacity_aware_calls_per_month,
        result.cheaper_for_good_from_calls_per_month,
    ) {
        (Some(first), Some(good)) if first == good => {
            format!("cheaper than {api} from {} calls/month", human_calls(first))
        }
        (Some(first), Some(good)) => format!(
            "first cheaper at {}, for good from {} calls/month",
            human_calls(first),
            human_calls(good)
        ),
        (Some(first), None) => format!(
            "cheaper only in bands from {} calls/month",
            human_calls(first)
        ),
        (None, _) => format!("never cheaper than {api} at this shape"),
    };
    Check {
        name: "volume vs break-even",
        measured: format!("{} calls/month", human_calls(input.workload.calls_per_month)),
        threshold,
        status: pass_if(self_at_required < input.api_monthly, CheckStatus::Fail),
        note: format!(
            "self-hosted at the replicas peak needs ({}): {self_at_required}/month vs {api} {}/month",
            capacity.required_replicas, input.api_monthly
        ),
    }
}

/// Average load over the replicas the peak needs, against `min_utilization`.
fn utilization_check(input: &VerdictInput<'_>) -> Check {
    let capacity = input.capacity;
    let min = input.assumptions.min_utilization;
    Check {
        name: "utilisation",
        measured: format!("{:.0}%", capacity.utilization * 100.0),
        threshold: format!(">= {:.0}%", min * 100.0),
        status: pass_if(capacity.utilization >= min, CheckStatus::Fail),
        note: format!(
            "average load over {} replica(s) sized for a {:.1}× peak; as given: {:.0}% of {} replica(s)",
            capacity.required_replicas,
            input.workload.peak_to_average,
            capacity.utilization_as_given * 100.0,
            capacity.replicas_as_given
        ),
    }
}

/// `$4,000.00/month (0.33 FTE at $12,000.00/month)`: the minimum ops budget, and what
/// share of one engineer it buys at the configured salary.
pub fn min_ops_label(assumptions: &Assumptions) -> String {
    let min = assumptions.min_ops_usd_per_month;
    let fte = assumptions.fte_usd_per_month;
    if fte > Money::ZERO {
        format!(
            "{min}/month ({:.2} FTE at {fte}/month)",
            min.usd_f64() / fte.usd_f64()
        )
    } else {
        format!("{min}/month")
    }
}

/// Does the deployment's cost include at least the minimum ops budget?
fn ops_check(input: &VerdictInput<'_>) -> Check {
    let min = input.assumptions.min_ops_usd_per_month;
    let label = min_ops_label(input.assumptions);
    let enough = input.ops_monthly >= min;
    Check {
        name: "ops staffing included",
        measured: format!("{}/month", input.ops_monthly),
        threshold: format!(">= {label}"),
        status: pass_if(enough, CheckStatus::Warn),
        note: if enough {
            "the ops budget meets the minimum".to_string()
        } else {
            format!("budget at least {label} of DevOps/ML engineering")
        },
    }
}

/// The open model's quality on these tasks: measured by `costfloor eval` (`plan --eval`),
/// or not measured yet.
fn quality_check(input: &VerdictInput<'_>) -> Check {
    let threshold =
        "within the accuracy your tasks allow (a 5-10% drop is often called acceptable)";
    if let Some(quality) = input.quality {
        let mut parts = Vec::new();
        let mut worst = CheckStatus::Pass;
        for task in &input.workload.tasks {
            let Some(measured) = quality.task(&task.name) else {
                parts.push(format!("{}: not measured", task.name));
                worst = worse(worst, CheckStatus::Unknown);
                continue;
            };
            let gap = measured
                .gap
                .map_or("no gap measured".to_string(), |(point, low, high)| {
                    format!(
                        "gap {:+.1} points ({:+.1} to {:+.1}, n = {})",
                        point * 100.0,
                        low * 100.0,
                        high * 100.0,
                        measured.n
                    )
                });
            parts.push(format!("{}: {gap}, {}", task.name, measured.decision));
            worst = worse(
                worst,
                match measured.decision.as_str() {
                    "self_host" => CheckStatus::Pass,
                    "api" => CheckStatus::Warn,
                    // Undecided tasks stay on the API until measured to fit.
                    _ => CheckStatus::Unknown,
                },
            );
        }
        if input.workload.tasks.is_empty() {
            parts.push("the workload names no [[task]] to match the measured tasks to".to_string());
            worst = CheckStatus::Unknown;
        }
        return Check {
            name: "quality gap",
            measured: parts.join("; "),
            threshold: format!(
                "the gap's upper bound within {:.1} points, errors cheaper than the saving",
                quality.max_gap * 100.0
            ),
            status: worst,
            note: format!(
                "measured by eval run {} ({} against {}); tasks on the API stay there and their error cost enters the hybrid optimum",
                quality.run_id, quality.candidate, quality.baseline
            ),
        };
    }
    let unknown_tasks = input
        .workload
        .tasks
        .iter()
        .filter(|t| t.self_host == Eligibility::Unknown)
        .count();
    Check {
        name: "quality gap",
        measured: "not measured yet".to_string(),
        threshold: threshold.to_string(),
        status: CheckStatus::Unknown,
        note: format!(
            "compare both models on about 500 samples of your own traffic (costfloor eval run); \
             {unknown_tasks} task(s) not yet marked self_host = \"yes\" or \"no\""
        ),
    }
}

/// The worse of two statuses for self-hosting: Unknown, then Warn, then Pass.
fn worse(a: CheckStatus, b: CheckStatus) -> CheckStatus {
    let rank = |s: CheckStatus| match s {
        CheckStatus::Pass => 0,
        CheckStatus::Warn => 1,
        CheckStatus::Unknown => 2,
        CheckStatus::Fail => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Does the p99 prompt plus the output fit the open model's context?
fn context_check(input: &VerdictInput<'_>) -> Check {
    let needed_context = input.workload.p99_prompt_tokens + input.workload.output_tokens;
    Check {
        name: "context needs",
        measured: format!("{needed_context:.0} tokens (p99 prompt + output)"),
        threshold: format!("<= {} ({})", input.max_context, input.deployment.model),
        status: pass_if(
            needed_context <= input.max_context as f64,
            CheckStatus::Fail,
        ),
        note: format!(
            "{} allows {} tokens",
            input.api.id, input.api.context_window
        ),
    }
}

/// Sized for the peak, can the deployment reach `min_utilization` on average?
fn burstiness_check(input: &VerdictInput<'_>) -> Check {
    let min = input.assumptions.min_utilization;
    let peak_to_average = input.workload.peak_to_average;
    let best_case_utilization = 1.0 / peak_to_average;
    Check {
        name: "burstiness",
        measured: format!("peak/average {peak_to_average:.2}"),
        threshold: format!(
            "<= {:.2} (utilisation at peak sizing >= {:.0}%)",
            1.0 / min,
            min * 100.0
        ),
        status: pass_if(best_case_utilization >= min, CheckStatus::Warn),
        note: format!(
            "sized for peak, utilisation cannot exceed {:.0}%; spilling peaks to the API recovers it",
            best_case_utilization * 100.0
        ),
    }
}

/// Present only when the deployment as given cannot carry the peak.
fn capacity_check(input: &VerdictInput<'_>) -> Option<Check> {
    let capacity = input.capacity;
    if capacity.fits {
        return None;
    }
    let peak_calls = input.workload.calls_per_month * input.workload.peak_to_average;
    Some(Check {
        name: "capacity as given",
        measured: format!(
            "{} calls/month at 100%",
            human_calls(capacity.max_calls_per_month)
        ),
        threshold: format!("peak load {} calls/month", human_calls(peak_calls)),
        status: CheckStatus::Fail,
        note: format!(
            "{} cannot carry the peak: it needs {} replica(s) ({} GPUs) costing {}/month",
            input.self_hosted,
            capacity.required_replicas,
            capacity.required_gpus,
            capacity.monthly_cost_at_required_usd
        ),
    })
}

/// API, self-host or hybrid, by monthly cost, with the reasons.
fn recommend(input: &VerdictInput<'_>) -> (Recommendation, Vec<String>) {
    let api = &input.api.id;
    let api_total = input.api_monthly;
    let hybrid = input.hybrid;
    let optimum = &hybrid.optimum;
    let mut reasons = Vec::new();
    // Tasks marked `self_host = "no"` must stay on the API, so all-self-hosted is only
    // an option when every task may self-host.
    let all_may_self_host = hybrid.eligible_share >= 1.0 - 1e-9;
    let recommendation = if optimum.replicas == 0 || optimum.monthly_cost_usd >= api_total {
        reasons.push(format!(
            "{api} at {api_total}/month is the cheapest way to serve {} calls/month",
            human_calls(input.workload.calls_per_month)
        ));
        Recommendation::Api
    } else if all_may_self_host && hybrid.all_self_hosted_usd <= optimum.monthly_cost_usd {
        reasons.push(format!(
            "self-hosting all traffic on {} replica(s) costs {}/month against {} hybrid and {api_total} on {api}",
            hybrid.all_self_hosted_replicas, hybrid.all_self_hosted_usd, optimum.monthly_cost_usd
        ));
        Recommendation::SelfHost
    } else {
        reasons.push(format!(
            "hybrid: {} replica(s) take {:.0}% of calls, {api} takes the rest and the peaks; {}/month against {api_total} all-API and {} all-self-hosted",
            optimum.replicas,
            optimum.self_hosted_share * 100.0,
            optimum.monthly_cost_usd,
            hybrid.all_self_hosted_usd
        ));
        if !all_may_self_host {
            reasons.push(format!(
                "{:.0}% of calls come from tasks marked self_host = \"no\" and stay on the API",
                (1.0 - hybrid.eligible_share) * 100.0
            ));
        }
        Recommendation::Hybrid
    };
    if recommendation != Recommendation::Api {
        reasons.push(
            "conditional on quality: compare both models on about 500 samples of your own traffic"
                .to_string(),
        );
        if input.ops_monthly < input.assumptions.min_ops_usd_per_month {
            reasons.push(format!(
                "raise the ops budget to at least {}",
                min_ops_label(input.assumptions)
            ));
        }
    }
    (recommendation, reasons)
}
