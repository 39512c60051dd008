//! The quarterly review: the plan rerun on the observed workload, set against what the
//! current setup costs, and what would change. It prices nothing itself: every figure
//! comes from `plan` on the observed workload, so a review and a plan never disagree.

use serde::Serialize;

use crate::cost::usd;
use crate::money::Money;
use crate::plan::Plan;

/// What runs today.
#[derive(Clone, Debug)]
pub struct CurrentSetup {
    /// The self-hosted deployment the gateway's backends name, if any.
    pub deployment: Option<String>,
    /// Replicas of it running today (each a copy of the preset).
    pub replicas: u64,
    /// The gateway's `max_in_flight` per replica of the self-hosted backend (0: none).
    pub max_in_flight_per_replica: u32,
    /// What the period cost, extrapolated to a month (API spend plus fixed costs).
    pub monthly_cost: Money,
}

/// What else the plan found on the observed workload: the hybrid optimum on other
/// deployments of the same model, and tasks that cost less on the API.
#[derive(Clone, Debug, Default)]
pub struct Alternatives {
    /// `(deployment, hybrid optimum per month, replicas)`.
    pub deployments: Vec<(String, Money, u64)>,
    /// `(task, hybrid optimum per month with the task on the API only)`.
    pub tasks_on_api: Vec<(String, Money)>,
}

/// One option of the review, from the plan on the observed workload.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewOption {
    pub name: String,
    #[serde(serialize_with = "usd")]
    pub monthly_cost_usd: Money,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Review {
    #[serde(serialize_with = "usd")]
    pub current_monthly_usd: Money,
    pub options: Vec<ReviewOption>,
    /// The cheapest option's name.
    pub cheapest: String,
    #[serde(serialize_with = "usd")]
    pub cheapest_monthly_usd: Money,
    /// True when no option is cheaper than today by more than 1%.
    pub still_cheapest: bool,
    /// What to change, in plain words; empty when nothing would save money.
    pub changes: Vec<String>,
    pub summary: String,
}

/// The review of `current` against `plan` (built on the observed workload) and the
/// `alternatives` found with the same plan on other deployments and task splits.
pub fn review(plan: &Plan, current: &CurrentSetup, alternatives: &Alternatives) -> Review {
    let hybrid = &plan.hybrid;
    let optimum = &hybrid.optimum;
    let mut options = vec![ReviewOption {
        name: format!("all API ({})", hybrid.api),
        monthly_cost_usd: hybrid.all_api_usd,
        detail: "every call on the API".to_string(),
    }];
    options.push(ReviewOption {
        name: format!("all self-hosted ({})", hybrid.self_hosted),
        monthly_cost_usd: hybrid.all_self_hosted_usd,
        detail: format!(
            "{} replica(s), sized for the observed peak",
            hybrid.all_self_hosted_replicas
        ),
    });
    options.push(ReviewOption {
        name: format!("hybrid ({} + {})", hybrid.self_hosted, hybrid.api),
        monthly_cost_usd: optimum.monthly_cost_usd,
        detail: format!(
            "{} replica(s), {:.0}% of calls self-hosted, spill over above {} in flight per replica",
            optimum.replicas,
            (optimum.self_hosted_share * 100.0).max(0.0),
            optimum.spillover_max_in_flight_per_replica
        ),
    });
    // A cheaper deployment for the hybrid, if any beats the current one by 1%.
    let better_deployment = alternatives
        .deployments
        .iter()
        .filter(|(id, cost, _)| {
            !hybrid.self_hosted.starts_with(id.as_str())
                && cost.mul_ratio(101, 100) < optimum.monthly_cost_usd
        })
        .min_by_key(|(_, cost, _)| *cost);
    if let Some((id, cost, replicas)) = better_deployment {
        options.push(ReviewOption {
            name: format!("hybrid ({id} + {})", hybrid.api),
            monthly_cost_usd: *cost,
            detail: format!("{replicas} replica(s) of {id}, the API for the rest"),
        });
    }
    let best = options
        .iter()
        .min_by_key(|o| o.monthly_cost_usd)
        .cloned()
        .unwrap_or_else(|| options[0].clone());
    // Today is still the cheapest unless an option saves more than 1%.
    let still_cheapest = best.monthly_cost_usd.mul_ratio(101, 100) >= current.monthly_cost;
    let mut changes = Vec::new();
    if !still_cheapest {
        // On today's deployment: the replica count the optimum wants, when it saves.
        if optimum.replicas > 0
            && optimum.replicas != current.replicas
            && optimum.monthly_cost_usd.mul_ratio(101, 100) < current.monthly_cost
        {
            let (more_or_fewer, n) = if optimum.replicas > current.replicas {
                ("more", optimum.replicas - current.replicas)
            } else {
                ("fewer", current.replicas - optimum.replicas)
            };
            changes.push(format!(
                "run {} replica(s) of {} ({n} {more_or_fewer} than today's {}), with the API taking the rest: {}/month",
                optimum.replicas, hybrid.self_hosted, current.replicas, optimum.monthly_cost_usd
            ));
        }
        if let Some((id, cost, replicas)) = better_deployment {
            changes.push(format!(
                "move the self-hosted side from {} to {id} ({replicas} replica(s)): {cost}/month",
                current.deployment.as_deref().unwrap_or(&hybrid.self_hosted)
            ));
        }
        if best.monthly_cost_usd == hybrid.all_api_usd && current.replicas > 0 {
            changes.push(format!(
                "send every call to {}: the observed volume does not pay for the GPUs",
                hybrid.api
            ));
        }
        if changes.is_empty() {
            changes.push(format!("switch to {}", best.name));
        }
    }
    for (task, cost) in &alternatives.tasks_on_api {
        if cost.mul_ratio(101, 100) < optimum.monthly_cost_usd {
            changes.push(format!(
                "move task `{task}` to the API: the hybrid then costs {cost}/month instead of {}",
                optimum.monthly_cost_usd
            ));
        }
    }
    if optimum.replicas > 0
        && current.max_in_flight_per_replica != optimum.spillover_max_in_flight_per_replica
    {
        changes.push(format!(
            "set max_in_flight to {} per replica on the self-hosted backend (today: {}), so \
             load above what the SLO allows spills over to the API",
            optimum.spillover_max_in_flight_per_replica,
            if current.max_in_flight_per_replica == 0 {
                "no limit".to_string()
            } else {
                current.max_in_flight_per_replica.to_string()
            }
        ));
    }
    let summary = if still_cheapest {
        format!(
            "Today's setup ({}/month) is still the cheapest for the observed traffic; the best \
             alternative, {}, costs {}.",
            current.monthly_cost, best.name, best.monthly_cost_usd
        )
    } else {
        format!(
            "Today's setup costs {}/month; {} would cost {} for the same traffic, saving {}/month.",
            current.monthly_cost,
            best.name,
            best.monthly_cost_usd,
            current.monthly_cost - best.monthly_cost_usd
        )
    };
    Review {
        current_monthly_usd: current.monthly_cost,
        options,
        cheapest: best.name.clone(),
        cheapest_monthly_usd: best.monthly_cost_usd,
        still_cheapest,
        changes,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::plan::{plan, PlanRequest};
    use crate::workload::{Workload, WorkloadFile, WorkloadFlags};

    /// The plan for `calls` a month of the default shape (1,000 in + 200 out, 2× peak),
    /// Haiku 4.5 against Llama 3.3 70B on 4× A100.
    fn plan_at(calls: f64) -> Plan {
        let catalog = Catalog::embedded().unwrap();
        let workload = Workload::build(
            WorkloadFile::default(),
            &WorkloadFlags {
                calls_per_month: Some(calls),
                ..WorkloadFlags::default()
            },
            &catalog.assumptions,
        )
        .unwrap();
        plan(
            &catalog,
            &PlanRequest {
                workload,
                api_ids: vec!["claude-haiku-4.5".into()],
                deployment_ids: vec!["llama-3.3-70b-4xa100".into()],
                compare_owned: false,
                quality: None,
                measured: Vec::new(),
            },
        )
        .unwrap()
    }

    fn current(replicas: u64, monthly_usd: i64) -> CurrentSetup {
        CurrentSetup {
            deployment: Some("llama-3.3-70b-4xa100".into()),
            replicas,
            max_in_flight_per_replica: 0,
            monthly_cost: Money::from_whole_usd(monthly_usd),
        }
    }

    #[test]
    fn one_more_replica_when_the_traffic_grew() {
        // At 10M calls the hybrid optimum is one replica ($15,695.12, README); at 30M it
        // takes more. Today: one replica plus the overflow on the API.
        let plan = plan_at(30e6);
        assert!(plan.hybrid.optimum.replicas > 1);
        let today = plan.hybrid.optimum.monthly_cost_usd + Money::from_whole_usd(5_000);
        let review = review(
            &plan,
            &CurrentSetup {
                monthly_cost: today,
                ..current(1, 0)
            },
            &Alternatives::default(),
        );
        assert!(!review.still_cheapest);
        assert!(
            review
                .changes
                .iter()
                .any(|c| c.contains("more than today's 1")),
            "{:?}",
            review.changes
        );
    }

    #[test]
    fn fewer_replicas_when_the_traffic_shrank() {
        // At 10M calls the optimum is one replica and the API for the peaks ($15,695.12,
        // README); today runs three ($20,000 of fixed costs).
        let plan = plan_at(10e6);
        assert_eq!(plan.hybrid.optimum.replicas, 1);
        let review = review(&plan, &current(3, 20_000), &Alternatives::default());
        assert!(!review.still_cheapest);
        assert!(
            review
                .changes
                .iter()
                .any(|c| c.contains("2 fewer than today's 3")),
            "{:?}",
            review.changes
        );
    }

    #[test]
    fn today_is_still_the_cheapest_when_it_costs_the_optimum() {
        let plan = plan_at(10e6);
        let optimum = plan.hybrid.optimum.monthly_cost_usd;
        let review = review(
            &plan,
            &CurrentSetup {
                max_in_flight_per_replica: plan.hybrid.optimum.spillover_max_in_flight_per_replica,
                monthly_cost: optimum,
                ..current(plan.hybrid.optimum.replicas, 0)
            },
            &Alternatives::default(),
        );
        assert!(review.still_cheapest, "{}", review.summary);
        assert!(review.changes.is_empty(), "{:?}", review.changes);
        assert!(review.summary.contains("still the cheapest"));
    }

    #[test]
    fn a_cheaper_deployment_and_a_task_better_on_the_api_are_named() {
        let plan = plan_at(30e6);
        let optimum = plan.hybrid.optimum.monthly_cost_usd;
        let alternatives = Alternatives {
            deployments: vec![("cheaper-preset".into(), optimum.mul_ratio(1, 2), 2)],
            tasks_on_api: vec![("summarise".into(), optimum.mul_ratio(9, 10))],
        };
        let review = review(&plan, &current(1, 100_000), &alternatives);
        assert_eq!(review.cheapest_monthly_usd, optimum.mul_ratio(1, 2));
        assert!(
            review
                .changes
                .iter()
                .any(|c| c.contains("to cheaper-preset (2 replica(s))")),
            "{:?}",
            review.changes
        );
        assert!(
            review
                .changes
                .iter()
                .any(|c| c.contains("move task `summarise` to the API")),
            "{:?}",
            review.changes
        );
    }

    #[test]
    fn a_small_volume_goes_back_to_the_api() {
        // 100K calls: the API's $200 against $8,000 of GPUs and ops.
        let plan = plan_at(1e5);
        let review = review(&plan, &current(1, 8_000), &Alternatives::default());
        assert_eq!(review.cheapest_monthly_usd, Money::from_whole_usd(200));
        assert!(
            review.changes.iter().any(|c| c.contains("send every call")),
            "{:?}",
            review.changes
        );
    }
}
