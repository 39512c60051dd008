//! `plan`: from a workload and catalog to options, capacity, break-even, hybrid
//! optimum and verdict. The JSON schema of [`Plan`] is documented in docs/plan-json.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::breakeven::{
    break_even, check_claimed_crossover, BreakEven, BreakEvenInput, ClaimInput, ClaimedCrossover,
    ReplicaSteps, RULE_OF_THUMB_CROSSOVER_CALLS,
};
use crate::catalog::{ApiModel, Catalog, Deployment, Ownership};
use crate::cost::{api_cost, api_cost_for, selfhost_cost, usd, CostPart};
use crate::error::InputError;
use crate::hybrid::{optimise, Hybrid, HybridInput};
use crate::money::Money;
use crate::sizing::{size, Sizing, SizingInput};
use crate::verdict::{min_ops_label, verdict, Verdict, VerdictInput};
use crate::workload::{Eligibility, Workload};

pub const DEFAULT_API_IDS: [&str; 3] = ["claude-haiku-4.5", "claude-sonnet-4.6", "claude-opus-4.7"];
pub const DEFAULT_DEPLOYMENT_IDS: [&str; 1] = ["llama-3.3-70b-4xa100"];

#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub workload: Workload,
    /// The first is the reference API for the comparison, hybrid and verdict.
    pub api_ids: Vec<String>,
    /// The first is the primary deployment.
    pub deployment_ids: Vec<String>,
    /// Add an owned-hardware variant of each rented deployment whose GPU has a price.
    pub compare_owned: bool,
    /// Measured quality per task (`plan --eval`): replaces the tasks' `self_host` guess
    /// and charges the error cost on self-hosted calls.
    pub quality: Option<crate::quality::MeasuredQuality>,
    /// Measured capacities (`plan --capacity`): each replaces the modelled capacity of
    /// the deployment it names.
    pub measured: Vec<crate::measured::Measurement>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Assumption {
    pub name: &'static str,
    pub value: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Demand {
    pub average_calls_per_s: f64,
    pub peak_calls_per_s: f64,
    pub average_input_tokens_per_s: f64,
    pub average_output_tokens_per_s: f64,
    pub peak_tokens_per_s: f64,
    pub peak_output_tokens_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// Whether the deployment as given carries the peak load within the SLO.
    pub fits: bool,
    /// Calls/month of the deployment as given at 100% utilisation.
    pub max_calls_per_month: f64,
    pub replicas_as_given: u32,
    pub gpus_per_replica: u32,
    pub required_replicas: u64,
    pub required_gpus: u64,
    /// Average load ÷ capacity of the required replicas.
    pub utilization: f64,
    /// Average load ÷ capacity of the deployment as given (above 1: overloaded).
    pub utilization_as_given: f64,
    #[serde(serialize_with = "usd")]
    pub monthly_cost_at_required_usd: Money,
    pub effective_usd_per_mtok_at_required: f64,
    pub provided_tokens_per_s: f64,
    pub provided_output_tokens_per_s: f64,
    pub sizing: Sizing,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanOption {
    pub id: String,
    pub kind: &'static str,
    #[serde(serialize_with = "usd")]
    pub monthly_cost_usd: Money,
    pub cost_breakdown: BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// Monthly cost ÷ tokens served, for the deployment as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_usd_per_mtok: Option<f64>,
    /// Effective price ÷ the self-hosting price people often quote
    /// (`quoted_selfhost_usd_per_mtok`, $0.10/MTok by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_vs_quoted_price: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub api: String,
    pub self_hosted: String,
    #[serde(serialize_with = "usd")]
    pub api_monthly_usd: Money,
    #[serde(serialize_with = "usd")]
    pub self_hosted_monthly_usd: Money,
    /// API cost − self-hosted cost (negative when the API is cheaper).
    #[serde(serialize_with = "usd")]
    pub savings_per_month_usd: Money,
    #[serde(serialize_with = "usd")]
    pub savings_per_year_usd: Money,
    pub cheaper: &'static str,
    /// Dearer ÷ cheaper.
    pub ratio: f64,
    pub headline: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HybridPlan {
    pub api: String,
    pub self_hosted: String,
    #[serde(serialize_with = "usd")]
    pub all_api_usd: Money,
    #[serde(serialize_with = "usd")]
    pub all_self_hosted_usd: Money,
    pub all_self_hosted_replicas: u64,
    pub eligible_share: f64,
    pub optimum: Hybrid,
    /// The optimiser's inputs, to rerun it at other volumes (sweeps and charts).
    #[serde(skip)]
    pub scale: Option<HybridScale>,
}

/// What the hybrid optimum depends on besides the volume.
#[derive(Clone, Debug)]
pub struct HybridScale {
    calls_per_month: f64,
    eligible_share: f64,
    ineligible_api_cost: Money,
    eligible_api_cost_per_call: Money,
    profile: [f64; 24],
    replica_calls_per_month: f64,
    replica_monthly: Money,
    fixed_non_replica: Money,
    max_in_flight_per_replica: u32,
    error_cost_per_self_hosted_call: Money,
}

impl HybridScale {
    /// The hybrid optimum's monthly cost at `calls_per_month`, the task mix and load
    /// shape unchanged.
    pub fn cost_at(&self, calls_per_month: f64) -> Money {
        let ratio_ppb = (calls_per_month / self.calls_per_month * 1e9).round() as i128;
        optimise(&HybridInput {
            total_calls_per_month: calls_per_month,
            eligible_calls_per_month: calls_per_month * self.eligible_share,
            ineligible_api_cost: self.ineligible_api_cost.mul_ratio(ratio_ppb, 1_000_000_000),
            eligible_api_cost_per_call: self.eligible_api_cost_per_call,
            profile: self.profile,
            replica_calls_per_month: self.replica_calls_per_month,
            replica_monthly: self.replica_monthly,
            fixed_non_replica: self.fixed_non_replica,
            max_in_flight_per_replica: self.max_in_flight_per_replica,
            error_cost_per_self_hosted_call: self.error_cost_per_self_hosted_call,
        })
        .monthly_cost_usd
    }
}

/// A self-hosted option's step model, kept for sweeps and charts.
#[derive(Clone, Debug)]
pub struct StepModel {
    pub id: String,
    pub steps: ReplicaSteps,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub workload: Workload,
    pub assumptions: Vec<Assumption>,
    pub demand: Demand,
    pub options: Vec<PlanOption>,
    /// The self-hosting price people often quote, USD per MTok (the catalog's
    /// `quoted_selfhost_usd_per_mtok`): the yardstick for effective prices and the
    /// variable cost in break-evens.
    pub quoted_selfhost_usd_per_mtok: f64,
    pub comparison: Comparison,
    pub break_even: Vec<BreakEven>,
    /// The crossover a popular rule of thumb claims, against the arithmetic.
    pub rule_of_thumb_crossover: ClaimedCrossover,
    pub hybrid: HybridPlan,
    pub verdict: Verdict,
    #[serde(skip)]
    pub steps: Vec<StepModel>,
    #[serde(skip)]
    pub api_cost_per_call: Vec<(String, Money)>,
}

pub(crate) struct SelfHosted<'a> {
    pub(crate) id: String,
    pub(crate) deployment: &'a Deployment,
    pub(crate) ownership: Ownership,
    pub(crate) cost: crate::cost::SelfHostCost,
    pub(crate) capacity: Capacity,
    pub(crate) step: StepModel,
    /// The measured capacity in use, if any (`plan --capacity`).
    pub(crate) measured: Option<(crate::measured::Capacity, f64)>,
}

pub fn plan(catalog: &Catalog, request: &PlanRequest) -> Result<Plan, InputError> {
    let mut measured_workload = request.workload.clone();
    let mut error_cost_per_call = Money::ZERO;
    if let Some(quality) = &request.quality {
        quality.apply(&mut measured_workload);
        error_cost_per_call = quality.eligible_error_cost_per_call(&measured_workload);
    }
    let workload = &measured_workload;
    let a = &catalog.assumptions;
    if request.api_ids.is_empty() {
        return Err(InputError::invalid(
            "--api",
            "(none)",
            "at least one API model id",
        ));
    }
    if request.deployment_ids.is_empty() {
        return Err(InputError::invalid(
            "--deployment",
            "(none)",
            "at least one deployment id",
        ));
    }
    let apis: Vec<&ApiModel> = request
        .api_ids
        .iter()
        .map(|id| catalog.api_model(id))
        .collect::<Result<_, _>>()?;
    let seconds_per_month = a.hours_per_month * 3600.0;
    let average_calls_per_s = workload.calls_per_month / seconds_per_month;
    let demand = Demand {
        average_calls_per_s,
        peak_calls_per_s: average_calls_per_s * workload.peak_to_average,
        average_input_tokens_per_s: average_calls_per_s * workload.input_tokens,
        average_output_tokens_per_s: average_calls_per_s * workload.output_tokens,
        peak_tokens_per_s: average_calls_per_s
            * workload.peak_to_average
            * workload.tokens_per_call(),
        peak_output_tokens_per_s: average_calls_per_s
            * workload.peak_to_average
            * workload.output_tokens,
    };

    let mut self_hosted = Vec::new();
    for id in &request.deployment_ids {
        let deployment = catalog.deployment(id)?;
        let mut ownerships = vec![deployment.ownership];
        if request.compare_owned
            && deployment.ownership == Ownership::Rented
            && catalog.gpu(&deployment.gpu)?.purchase_usd.is_some()
        {
            ownerships.push(Ownership::Owned);
        }
        for ownership in ownerships {
            let option_id = if ownership == deployment.ownership {
                deployment.id.clone()
            } else {
                format!("{}+owned", deployment.id)
            };
            self_hosted.push(evaluate_self_hosted(
                catalog,
                workload,
                deployment,
                ownership,
                option_id,
                measured_for(&request.measured, deployment, workload)?,
            )?);
        }
    }

    let mut options = Vec::new();
    let mut api_cost_per_call = Vec::new();
    for model in &apis {
        let cost = api_cost(model, workload);
        api_cost_per_call.push((
            model.id.clone(),
            cost.total
                .mul_ratio(1_000_000, (workload.calls_per_month * 1e6).round() as i128),
        ));
        options.push(PlanOption {
            id: model.id.clone(),
            kind: "api",
            monthly_cost_usd: cost.total,
            cost_breakdown: breakdown(&cost.parts),
            deployment: None,
            ownership: None,
            capacity: None,
            effective_usd_per_mtok: None,
            effective_vs_quoted_price: None,
        });
    }
    let tokens_mtok = workload.calls_per_month * workload.tokens_per_call() / 1e6;
    for option in &self_hosted {
        let effective = option.cost.total.usd_f64() / tokens_mtok;
        options.push(PlanOption {
            id: option.id.clone(),
            kind: "self_hosted",
            monthly_cost_usd: option.cost.total,
            cost_breakdown: breakdown(&option.cost.parts),
            deployment: Some(option.deployment.id.clone()),
            ownership: Some(option.ownership),
            capacity: Some(option.capacity.clone()),
            effective_usd_per_mtok: Some(effective),
            effective_vs_quoted_price: Some(
                effective / a.quoted_selfhost_usd_per_mtok.usd_f64().max(1e-12),
            ),
        });
    }

    let mut break_evens = Vec::new();
    for (model, (_, per_call)) in apis.iter().zip(&api_cost_per_call) {
        for option in &self_hosted {
            break_evens.push(break_even(&BreakEvenInput {
                api: &model.id,
                self_hosted: &option.id,
                api_cost_per_call: *per_call,
                api_input_price: model.input_usd_per_mtok,
                fixed_monthly: option.cost.total,
                tokens_per_call: workload.tokens_per_call(),
                variable_price: a.quoted_selfhost_usd_per_mtok,
                steps: option.step.steps,
            }));
        }
    }

    let reference = apis[0];
    let primary = &self_hosted[0];
    let api_total = options[0].monthly_cost_usd;
    let comparison = compare(reference, api_total, primary);
    let primary_break_even = &break_evens[0];
    let rule_of_thumb_crossover = check_claimed_crossover(
        &ClaimInput {
            claimed_calls_per_month: RULE_OF_THUMB_CROSSOVER_CALLS,
            api: reference,
            fixed_monthly: primary.cost.total,
            input_tokens: workload.input_tokens,
            output_tokens: workload.output_tokens,
            variable_price: a.quoted_selfhost_usd_per_mtok,
        },
        primary_break_even,
    );
    let hybrid = hybrid_plan(
        catalog,
        workload,
        reference,
        api_total,
        primary,
        error_cost_per_call,
    )?;
    let verdict = verdict(&VerdictInput {
        assumptions: a,
        workload,
        api: reference,
        api_monthly: api_total,
        self_hosted: &primary.id,
        deployment: primary.deployment,
        ops_monthly: catalog.ops_per_month(primary.deployment),
        max_context: catalog
            .model(&primary.deployment.model)
            .map_or(0, |m| m.max_context),
        capacity: &primary.capacity,
        break_even: primary_break_even,
        hybrid: &hybrid,
        quality: request.quality.as_ref(),
    });

    Ok(Plan {
        workload: workload.clone(),
        assumptions: assumption_lines(catalog),
        demand,
        options,
        quoted_selfhost_usd_per_mtok: a.quoted_selfhost_usd_per_mtok.usd_f64(),
        comparison,
        break_even: break_evens,
        rule_of_thumb_crossover,
        hybrid,
        verdict,
        steps: self_hosted.iter().map(|s| s.step.clone()).collect(),
        api_cost_per_call,
    })
}

fn breakdown(parts: &[CostPart]) -> BTreeMap<&'static str, f64> {
    parts
        .iter()
        .map(|p| (p.name, p.amount.cents() as f64 / 100.0))
        .collect()
}

fn sizing_input<'a>(
    catalog: &'a Catalog,
    workload: &Workload,
    deployment: &Deployment,
    input_tokens: f64,
    output_tokens: f64,
    p99_prompt_tokens: f64,
) -> Result<SizingInput<'a>, InputError> {
    Ok(SizingInput {
        model: catalog.model(&deployment.model)?,
        gpu: catalog.gpu(&deployment.gpu)?,
        gpus: deployment.gpus,
        tensor_parallel: deployment.tensor_parallel,
        precision: deployment.precision,
        kv_bytes_per_element: if deployment.kv_fp8 { 1.0 } else { 2.0 },
        input_tokens,
        output_tokens,
        p99_prompt_tokens: p99_prompt_tokens.max(input_tokens),
        slo_tpot_ms: workload.slo_tpot_ms,
        slo_ttft_ms: workload.slo_ttft_ms,
        assumptions: &catalog.assumptions,
    })
}

/// The measured capacity of `deployment` among `measured`, checked against the
/// workload's shape: a capacity measured at another shape would not hold for this one.
pub(crate) fn measured_for<'m>(
    measured: &'m [crate::measured::Measurement],
    deployment: &Deployment,
    workload: &Workload,
) -> Result<Option<(&'m crate::measured::Capacity, f64)>, InputError> {
    let Some(measurement) = measured.iter().find(|m| {
        m.deployment
            .as_deref()
            .is_some_and(|id| id == deployment.id || deployment.aliases.iter().any(|a| a == id))
    }) else {
        return Ok(None);
    };
    let Some(capacity) = &measurement.capacity else {
        return Err(InputError::invalid(
            &format!("--capacity ({})", deployment.id),
            "no capacity",
            "a measurement whose sweep found a load level within the SLO (`costfloor bench --sweep`)",
        ));
    };
    for (field, measured, wanted) in [
        (
            "input tokens",
            measurement.shape.input_tokens_mean,
            workload.input_tokens,
        ),
        (
            "output tokens",
            measurement.shape.output_tokens_mean,
            workload.output_tokens,
        ),
    ] {
        let ratio = measured / wanted;
        if !(0.8..=1.25).contains(&ratio) {
            return Err(InputError::invalid(
                &format!("--capacity ({}): mean {field}", deployment.id),
                format!("{measured:.0}"),
                &format!(
                    "within 20% of the workload's {wanted:.0}: rerun `costfloor bench` with this workload"
                ),
            ));
        }
    }
    let in_flight = measurement
        .levels
        .get(capacity.level)
        .map_or(1.0, |level| level.mean_in_flight);
    Ok(Some((capacity, in_flight)))
}

pub(crate) fn evaluate_self_hosted<'a>(
    catalog: &Catalog,
    workload: &Workload,
    deployment: &'a Deployment,
    ownership: Ownership,
    id: String,
    measured: Option<(&crate::measured::Capacity, f64)>,
) -> Result<SelfHosted<'a>, InputError> {
    let input = sizing_input(
        catalog,
        workload,
        deployment,
        workload.input_tokens,
        workload.output_tokens,
        workload.p99_prompt_tokens,
    )?;
    let mut sizing = size(&input)?;
    if let Some((capacity, in_flight)) = measured {
        sizing = sizing.with_measured(capacity, in_flight, catalog.assumptions.hours_per_month);
    }
    let cost = selfhost_cost(catalog, deployment, deployment.gpus, ownership)?;
    let replica_monthly = cost.per_gpu_month * sizing.tensor_parallel as i128;
    let peak_calls = workload.calls_per_month * workload.peak_to_average;
    let required_replicas =
        ((peak_calls / sizing.max_calls_per_month_per_replica).ceil() as u64).max(1);
    let required_gpus = required_replicas * sizing.tensor_parallel as u64;
    let cost_at_required = cost.fixed_non_gpu + cost.per_gpu_month * required_gpus as i128;
    let tokens_mtok = workload.calls_per_month * workload.tokens_per_call() / 1e6;
    let provided_output = sizing.output_tokens_per_s * sizing.replicas as f64;
    let capacity = Capacity {
        fits: sizing.meets_slo && sizing.max_calls_per_month >= peak_calls,
        max_calls_per_month: sizing.max_calls_per_month,
        replicas_as_given: sizing.replicas,
        gpus_per_replica: sizing.tensor_parallel,
        required_replicas,
        required_gpus,
        utilization: workload.calls_per_month
            / (required_replicas as f64 * sizing.max_calls_per_month_per_replica),
        utilization_as_given: workload.calls_per_month / sizing.max_calls_per_month,
        monthly_cost_at_required_usd: cost_at_required,
        effective_usd_per_mtok_at_required: cost_at_required.usd_f64() / tokens_mtok,
        provided_tokens_per_s: provided_output * workload.tokens_per_call()
            / workload.output_tokens,
        provided_output_tokens_per_s: provided_output,
        sizing,
    };
    let step = StepModel {
        id: id.clone(),
        steps: ReplicaSteps {
            fixed_non_replica: cost.fixed_non_gpu,
            replica_monthly,
            replica_calls_per_month: capacity.sizing.max_calls_per_month_per_replica,
            peak_to_average: workload.peak_to_average,
        },
    };
    Ok(SelfHosted {
        id,
        deployment,
        ownership,
        cost,
        capacity,
        step,
        measured: measured.map(|(c, f)| (*c, f)),
    })
}

fn compare(api: &ApiModel, api_total: Money, option: &SelfHosted<'_>) -> Comparison {
    let self_total = option.cost.total;
    let savings = api_total - self_total;
    let (cheaper, ratio) = if api_total <= self_total {
        ("api", self_total.usd_f64() / api_total.usd_f64().max(1e-12))
    } else {
        (
            "self_hosted",
            api_total.usd_f64() / self_total.usd_f64().max(1e-12),
        )
    };
    let headline = if cheaper == "api" {
        format!(
            "API is {}× cheaper: {} pays {api_total}/month against {self_total}/month for {}",
            format_ratio(ratio),
            api.id,
            option.id
        )
    } else {
        format!(
            "{} saves {}/month ({}/year) against {} at the deployment's stated cost",
            option.id,
            savings,
            savings * 12,
            api.id
        )
    };
    Comparison {
        api: api.id.clone(),
        self_hosted: option.id.clone(),
        api_monthly_usd: api_total,
        self_hosted_monthly_usd: self_total,
        savings_per_month_usd: savings,
        savings_per_year_usd: savings * 12,
        cheaper,
        ratio,
        headline,
    }
}

/// `40` for 40.0, `2.5` for 2.5.
pub fn format_ratio(ratio: f64) -> String {
    if (ratio - ratio.round()).abs() < 0.05 {
        format!("{:.0}", ratio)
    } else {
        format!("{:.1}", ratio)
    }
}

pub(crate) fn hybrid_plan(
    catalog: &Catalog,
    workload: &Workload,
    api: &ApiModel,
    api_total: Money,
    option: &SelfHosted<'_>,
    error_cost_per_call: Money,
) -> Result<HybridPlan, InputError> {
    let eligible: Vec<_> = workload
        .tasks
        .iter()
        .filter(|t| t.self_host != Eligibility::No)
        .collect();
    let eligible_share: f64 = eligible.iter().map(|t| t.share).sum();
    let eligible_calls = workload.calls_per_month * eligible_share;
    let mut ineligible_cost = Money::ZERO;
    for task in workload
        .tasks
        .iter()
        .filter(|t| t.self_host == Eligibility::No)
    {
        ineligible_cost += api_cost_for(
            api,
            workload,
            workload.calls_per_month * task.share,
            task.input_tokens,
            task.output_tokens,
        )
        .total;
    }
    let (eligible_input, eligible_output, eligible_cost_per_call) = if eligible_share > 0.0 {
        let input = eligible
            .iter()
            .map(|t| t.share * t.input_tokens)
            .sum::<f64>()
            / eligible_share;
        let output = eligible
            .iter()
            .map(|t| t.share * t.output_tokens)
            .sum::<f64>()
            / eligible_share;
        let mut cost_million_calls = Money::ZERO;
        for task in &eligible {
            cost_million_calls += api_cost_for(
                api,
                workload,
                1e6 * task.share / eligible_share,
                task.input_tokens,
                task.output_tokens,
            )
            .total;
        }
        (input, output, cost_million_calls.mul_ratio(1, 1_000_000))
    } else {
        (workload.input_tokens, workload.output_tokens, Money::ZERO)
    };
    let input = sizing_input(
        catalog,
        workload,
        option.deployment,
        eligible_input,
        eligible_output,
        workload.p99_prompt_tokens,
    )?;
    let mut sizing = size(&input)?;
    if let Some((capacity, in_flight)) = &option.measured {
        sizing = sizing.with_measured(capacity, *in_flight, catalog.assumptions.hours_per_month);
    }
    let replica_monthly = option.cost.per_gpu_month * sizing.tensor_parallel as i128;
    let optimum = optimise(&HybridInput {
        total_calls_per_month: workload.calls_per_month,
        eligible_calls_per_month: eligible_calls,
        ineligible_api_cost: ineligible_cost,
        eligible_api_cost_per_call: eligible_cost_per_call,
        profile: workload.hourly_profile,
        replica_calls_per_month: sizing.max_calls_per_month_per_replica,
        replica_monthly,
        fixed_non_replica: option.cost.fixed_non_gpu,
        max_in_flight_per_replica: sizing.best_batch,
        error_cost_per_self_hosted_call: error_cost_per_call,
    });
    let scale = (workload.calls_per_month > 0.0).then_some(HybridScale {
        calls_per_month: workload.calls_per_month,
        eligible_share,
        ineligible_api_cost: ineligible_cost,
        eligible_api_cost_per_call: eligible_cost_per_call,
        profile: workload.hourly_profile,
        replica_calls_per_month: sizing.max_calls_per_month_per_replica,
        replica_monthly,
        fixed_non_replica: option.cost.fixed_non_gpu,
        max_in_flight_per_replica: sizing.best_batch,
        error_cost_per_self_hosted_call: error_cost_per_call,
    });
    Ok(HybridPlan {
        api: api.id.clone(),
        self_hosted: option.id.clone(),
        all_api_usd: api_total,
        all_self_hosted_usd: option.capacity.monthly_cost_at_required_usd
            + error_cost_per_call.mul_ratio(workload.calls_per_month.round() as i128, 1),
        all_self_hosted_replicas: option.capacity.required_replicas,
        eligible_share,
        optimum,
        scale,
    })
}

/// A small amount with the digits it needs: `$0.002`, `$0.00188`.
pub fn format_usd_precise(money: Money) -> String {
    let text = format!("{:.8}", money.usd_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("${text}")
}

/// `4.00M`, `850K`, `12.5B`.
pub fn human_calls(calls: f64) -> String {
    if calls >= 1e9 {
        format!("{:.2}B", calls / 1e9)
    } else if calls >= 1e6 {
        format!("{:.2}M", calls / 1e6)
    } else if calls >= 1e3 {
        format!("{:.0}K", calls / 1e3)
    } else {
        format!("{calls:.0}")
    }
}

fn assumption_lines(catalog: &Catalog) -> Vec<Assumption> {
    let a = &catalog.assumptions;
    let line = |name, value: String| Assumption { name, value };
    vec![
        line("hours_per_month", format!("{}", a.hours_per_month)),
        line(
            "gpu_memory_utilization",
            format!("{}", a.gpu_memory_utilization),
        ),
        line(
            "runtime_overhead_gib_per_gpu",
            format!("{}", a.runtime_overhead_gib_per_gpu),
        ),
        line(
            "memory_bandwidth_efficiency",
            format!("{}", a.memory_bandwidth_efficiency),
        ),
        line("mfu", format!("{}", a.mfu)),
        line(
            "tp_efficiency_nvlink",
            format!("{}", a.tp_efficiency_nvlink),
        ),
        line("tp_efficiency_pcie", format!("{}", a.tp_efficiency_pcie)),
        line(
            "max_batch_per_replica",
            format!("{}", a.max_batch_per_replica),
        ),
        line("kv_cache_precision", "bf16 (2 bytes)".to_string()),
        line(
            "amortize_months (owned hardware)",
            format!("{}", a.amortize_months),
        ),
        line(
            "power",
            format!(
                "PUE {} × host factor {} × ${}/kWh",
                a.pue, a.host_power_factor, a.usd_per_kwh
            ),
        ),
        line(
            "colocation_per_gpu_month",
            a.colocation_usd_per_gpu_month.to_string(),
        ),
        line("min_ops_per_month", min_ops_label(a)),
        line("min_utilization", format!("{}", a.min_utilization)),
        line(
            "quoted self-hosting price (sensitivity)",
            format!("${}/MTok", a.quoted_selfhost_usd_per_mtok.usd_f64()),
        ),
        line("catalog as_of", a.as_of.clone()),
    ]
}

/// One series of a cost sweep: monthly USD at each volume.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub id: String,
    pub kind: &'static str,
    pub points: Vec<(f64, f64)>,
}

impl Plan {
    /// Monthly cost of every option at `volumes`: APIs linearly, self-hosted options as
    /// given (flat) and scaled in whole replicas for the peak (stepped).
    pub fn sweep(&self, volumes: &[f64]) -> Vec<Series> {
        let mut series = Vec::new();
        for (id, per_call) in &self.api_cost_per_call {
            let points = volumes
                .iter()
                .map(|&v| (v, per_call.usd_f64() * v))
                .collect();
            series.push(Series {
                id: id.clone(),
                kind: "api",
                points,
            });
        }
        for step in &self.steps {
            let points = volumes
                .iter()
                .map(|&v| (v, step.steps.cost_at(v).0.usd_f64()))
                .collect();
            series.push(Series {
                id: step.id.clone(),
                kind: "self_hosted",
                points,
            });
        }
        if let Some(scale) = &self.hybrid.scale {
            let points = volumes
                .iter()
                .map(|&v| (v, scale.cost_at(v).usd_f64()))
                .collect();
            series.push(Series {
                id: format!("hybrid {} + {}", self.hybrid.self_hosted, self.hybrid.api),
                kind: "hybrid",
                points,
            });
        }
        series
    }
}

/// `count` volumes spaced evenly on a log axis from `from` to `to`.
pub fn log_volumes(from: f64, to: f64, count: usize) -> Vec<f64> {
    let (low, high) = (from.log10(), to.log10());
    (0..count)
        .map(|i| 10f64.powf(low + (high - low) * i as f64 / (count.max(2) - 1) as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Recommendation;
    use crate::workload::{WorkloadFile, WorkloadFlags};

    fn plan_with(flags: WorkloadFlags, workload_toml: &str) -> Plan {
        let catalog = Catalog::embedded().unwrap();
        let workload = Workload::build(
            WorkloadFile::parse("w", workload_toml).unwrap(),
            &flags,
            &catalog.assumptions,
        )
        .unwrap();
        plan(
            &catalog,
            &PlanRequest {
                workload,
                api_ids: DEFAULT_API_IDS.iter().map(|s| s.to_string()).collect(),
                deployment_ids: DEFAULT_DEPLOYMENT_IDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                compare_owned: true,
                quality: None,
                measured: Vec::new(),
            },
        )
        .unwrap()
    }

    #[test]
    fn seed_scenario_1() {
        let plan = plan_with(WorkloadFlags::default(), "");
        assert_eq!(
            plan.comparison.api_monthly_usd,
            Money::from_whole_usd(20_000)
        );
        assert_eq!(
            plan.comparison.self_hosted_monthly_usd,
            Money::from_whole_usd(8_000)
        );
        assert_eq!(
            plan.comparison.savings_per_month_usd,
            Money::from_whole_usd(12_000)
        );
        assert_eq!(
            plan.comparison.savings_per_year_usd,
            Money::from_whole_usd(144_000)
        );
        // The capacity check: 10M calls at a 2× peak need more than one 4× A100 replica.
        let capacity = plan
            .options
            .iter()
            .find_map(|o| o.capacity.as_ref())
            .unwrap();
        assert!(!capacity.fits);
        assert!(capacity.required_replicas >= 2);
    }

    #[test]
    fn seed_scenario_2_api_is_40x_cheaper() {
        let plan = plan_with(
            WorkloadFlags {
                calls_per_month: Some(1e5),
                ..Default::default()
            },
            "",
        );
        assert_eq!(plan.comparison.api_monthly_usd, Money::from_whole_usd(200));
        assert!(
            plan.comparison.headline.starts_with("API is 40× cheaper"),
            "{}",
            plan.comparison.headline
        );
        assert_eq!(plan.verdict.recommendation, Recommendation::Api);
    }

    #[test]
    fn break_even_and_the_rule_of_thumb_correction() {
        let plan = plan_with(WorkloadFlags::default(), "");
        let pair = plan
            .break_even
            .iter()
            .find(|b| b.api == "claude-haiku-4.5" && b.self_hosted == "llama-3.3-70b-4xa100")
            .unwrap();
        assert!((pair.calls_per_month.unwrap() - 4.0e6).abs() < 1.0);
        assert!((pair.input_only_tokens_per_month.unwrap() / 1e9 - 8.89).abs() < 0.005);
        // Fixed only: $8,000/1.5M = $0.005333 per call = 1,000 × $1e-6 + N × $5e-6 → N ≈ 867.
        let tokens = plan
            .rule_of_thumb_crossover
            .output_tokens_for_claim
            .unwrap();
        assert!((tokens - 866.7).abs() < 0.5, "{tokens}");
    }

    #[test]
    fn owned_variant_is_compared() {
        let plan = plan_with(WorkloadFlags::default(), "");
        assert!(plan
            .options
            .iter()
            .any(|o| o.id == "llama-3.3-70b-4xa100+owned"));
    }

    #[test]
    fn ineligible_tasks_stay_on_the_api_in_the_hybrid() {
        let text = "[[task]]\nname='classify'\nshare=0.7\ninput_tokens=500\noutput_tokens=20\nself_host='yes'\n\
                    [[task]]\nname='reason'\nshare=0.3\ninput_tokens=2000\noutput_tokens=600\nself_host='no'\n";
        let plan = plan_with(WorkloadFlags::default(), text);
        assert!((plan.hybrid.eligible_share - 0.7).abs() < 1e-9);
        assert!(plan.hybrid.optimum.self_hosted_share <= 0.7 + 1e-9);
        assert!(plan.hybrid.optimum.monthly_cost_usd <= plan.hybrid.all_api_usd);
        // Some tasks may not self-host, so "self-host everything" is never the answer.
        assert_ne!(plan.verdict.recommendation, Recommendation::SelfHost);
    }

    #[test]
    fn the_hybrid_sweep_meets_the_optimum_at_the_workloads_volume() {
        let plan = plan_with(WorkloadFlags::default(), "");
        let scale = plan.hybrid.scale.as_ref().unwrap();
        // The seed's 10M calls: the same $15,695.12 the optimiser found.
        assert_eq!(
            scale.cost_at(plan.workload.calls_per_month),
            plan.hybrid.optimum.monthly_cost_usd
        );
        let series = plan.sweep(&[1e5, 1e7, 1e8]);
        let hybrid = series.iter().find(|s| s.kind == "hybrid").unwrap();
        // Never dearer than all-API or all-self-hosted at the same volume: both are
        // candidates of the optimiser (0 replicas, or enough for the peak).
        for (index, &(volume, cost)) in hybrid.points.iter().enumerate() {
            let api = series
                .iter()
                .find(|s| s.id == "claude-haiku-4.5")
                .unwrap()
                .points[index]
                .1;
            assert!(cost <= api + 1e-6, "{volume}: hybrid {cost} > API {api}");
        }
    }

    #[test]
    fn sweep_steps_up_with_volume() {
        let plan = plan_with(WorkloadFlags::default(), "");
        let series = plan.sweep(&log_volumes(1e4, 1e8, 50));
        let stepped = series
            .iter()
            .find(|s| s.id == "llama-3.3-70b-4xa100")
            .unwrap();
        assert_eq!(stepped.points[0].1, 8_000.0);
        assert!(stepped.points.last().unwrap().1 > 8_000.0 * 5.0);
        let haiku = series.iter().find(|s| s.id == "claude-haiku-4.5").unwrap();
        assert!((haiku.points[0].1 - 20.0).abs() < 1e-6);
    }
}
