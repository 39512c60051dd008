//! Break-even volumes between an API model and a self-hosted deployment.
//!
//! - As given: fixed monthly cost ÷ API cost per call (the deployment has no
//!   per-token price, so nothing is subtracted).
//! - With a variable cost: the same, less a per-token self-hosted cost per call (the
//!   self-hosting price people often quote, $0.10/MTok by default).
//! - Input only: fixed cost ÷ (API input price − that variable price), in tokens.
//! - Capacity-aware: the deployment grows in whole replicas as peak load grows, so its
//!   cost is a step function of volume; this finds where it first gets cheaper than the
//!   API and whether it stays cheaper.
//! - A claimed crossover (a rule of thumb's "~1.5M calls/month") checked against the
//!   same arithmetic, with the output tokens per call the claim would need.

use serde::Serialize;

use crate::catalog::ApiModel;
use crate::money::{Money, UsdPerMtok};
use crate::plan::{format_usd_precise, human_calls};

#[derive(Clone, Debug, Serialize)]
pub struct BreakEven {
    pub api: String,
    pub self_hosted: String,
    /// Calls/month at which the deployment as given costs the same as the API.
    pub calls_per_month: Option<f64>,
    /// The same, charging the self-hosted side a per-token variable cost.
    pub calls_per_month_with_variable: Option<f64>,
    pub variable_usd_per_mtok: f64,
    /// Input tokens/month at which input savings alone pay the fixed cost.
    pub input_only_tokens_per_month: Option<f64>,
    /// Smallest volume at which self-hosting, scaled in whole replicas for peak load,
    /// is cheaper than the API. `None` when it never is below the search limit.
    pub capacity_aware_calls_per_month: Option<f64>,
    /// Whether it stays cheaper at every volume above that.
    pub stays_cheaper: bool,
    /// Where it is cheaper for good (equal to the above when `stays_cheaper`).
    pub cheaper_for_good_from_calls_per_month: Option<f64>,
    #[serde(skip)]
    pub api_cost_per_call: Money,
}

/// Inputs for one pair. Money values are exact; volumes are calls per month.
pub struct BreakEvenInput<'a> {
    pub api: &'a str,
    pub self_hosted: &'a str,
    pub api_cost_per_call: Money,
    pub api_input_price: UsdPerMtok,
    pub fixed_monthly: Money,
    pub tokens_per_call: f64,
    pub variable_price: UsdPerMtok,
    pub steps: ReplicaSteps,
}

/// How a self-hosted deployment's cost grows with volume: whole replicas, at least one,
/// enough to carry the peak.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaSteps {
    /// Cost that does not scale with replicas (ops, setup).
    pub fixed_non_replica: Money,
    pub replica_monthly: Money,
    /// Calls/month one replica serves at 100% utilisation.
    pub replica_calls_per_month: f64,
    pub peak_to_average: f64,
}

impl ReplicaSteps {
    /// Monthly cost and replicas at `calls` calls/month.
    pub fn cost_at(&self, calls: f64) -> (Money, u64) {
        let needed = (calls * self.peak_to_average / self.replica_calls_per_month).ceil();
        let replicas = (needed as u64).max(1);
        (
            self.fixed_non_replica + self.replica_monthly * replicas as i128,
            replicas,
        )
    }
}

/// The crossover a popular rule of thumb claims: self-hosting a 70B model beats a
/// small API model from about 1.5M calls/month (at 1,000 input + 200 output tokens).
pub const RULE_OF_THUMB_CROSSOVER_CALLS: f64 = 1.5e6;

/// A claimed break-even volume against the computed one.
#[derive(Clone, Debug, Serialize)]
pub struct ClaimedCrossover {
    pub claimed_calls_per_month: f64,
    pub computed_calls_per_month: Option<f64>,
    pub computed_with_variable_calls_per_month: Option<f64>,
    /// Output tokens per call that would make the claim true (fixed cost only).
    pub output_tokens_for_claim: Option<f64>,
    /// The same, charging self-hosting the variable price per token.
    pub output_tokens_for_claim_with_variable: Option<f64>,
    pub explanation: String,
}

/// The shape and costs a claimed crossover is checked at.
pub struct ClaimInput<'a> {
    pub claimed_calls_per_month: f64,
    pub api: &'a ApiModel,
    pub fixed_monthly: Money,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub variable_price: UsdPerMtok,
}

/// Checks `claim` against `result` (the break-even of the same pair) and finds the
/// output tokens per call at which the claimed volume would be the break-even.
pub fn check_claimed_crossover(claim: &ClaimInput<'_>, result: &BreakEven) -> ClaimedCrossover {
    let claimed = claim.claimed_calls_per_month;
    let target_per_call = claim.fixed_monthly.usd_f64() / claimed;
    let input_price = claim.api.input_usd_per_mtok.usd_f64() / 1e6;
    let output_price = claim.api.output_usd_per_mtok.usd_f64() / 1e6;
    let variable = claim.variable_price.usd_f64();
    let variable_per_token = variable / 1e6;
    let input = claim.input_tokens;
    let fixed_only = (target_per_call - input * input_price) / output_price;
    let with_variable = (target_per_call - input * (input_price - variable_per_token))
        / (output_price - variable_per_token);
    let positive = |value: f64| (value.is_finite() && value > 0.0).then_some(value);
    let calls = |calls: Option<f64>| calls.map_or("never".to_string(), human_calls);
    let claimed_text = format!("{}M", claimed / 1e6);
    let explanation = format!(
        "A popular rule of thumb says self-hosting gets cheaper than the API from about {claimed_text} calls/month. \
         Arithmetic: {} fixed ÷ {} per call ({} in + {} out tokens on {}) = {} calls/month; \
         charging self-hosting the often-quoted ${variable:.2}/MTok as well gives {}. \
         A {claimed_text} crossover would need about {:.0} output tokens per call ({:.0} with that charge), not {}.",
        claim.fixed_monthly,
        format_usd_precise(result.api_cost_per_call),
        claim.input_tokens,
        claim.output_tokens,
        claim.api.id,
        calls(result.calls_per_month),
        calls(result.calls_per_month_with_variable),
        fixed_only,
        with_variable,
        claim.output_tokens,
    );
    ClaimedCrossover {
        claimed_calls_per_month: claimed,
        computed_calls_per_month: result.calls_per_month,
        computed_with_variable_calls_per_month: result.calls_per_month_with_variable,
        output_tokens_for_claim: positive(fixed_only),
        output_tokens_for_claim_with_variable: positive(with_variable),
        explanation,
    }
}

/// Upper bound for capacity-aware searches: 10¹³ calls per month.
const SEARCH_LIMIT_CALLS: f64 = 1e13;

pub fn break_even(input: &BreakEvenInput<'_>) -> BreakEven {
    let per_call = input.api_cost_per_call.pico_usd() as f64;
    let fixed = input.fixed_monthly.pico_usd() as f64;
    let calls_per_month = (per_call > 0.0).then(|| fixed / per_call);
    let variable_per_call = input.variable_price.micro_usd() as f64 * input.tokens_per_call;
    let calls_per_month_with_variable =
        (per_call > variable_per_call).then(|| fixed / (per_call - variable_per_call));
    let input_margin =
        (input.api_input_price.micro_usd() - input.variable_price.micro_usd()) as f64;
    let input_only_tokens_per_month = (input_margin > 0.0).then(|| fixed / input_margin);
    let (first, for_good) = capacity_aware(input);
    BreakEven {
        api: input.api.to_string(),
        self_hosted: input.self_hosted.to_string(),
        calls_per_month,
        calls_per_month_with_variable,
        variable_usd_per_mtok: input.variable_price.usd_f64(),
        input_only_tokens_per_month,
        capacity_aware_calls_per_month: first,
        stays_cheaper: first.is_some() && first == for_good,
        cheaper_for_good_from_calls_per_month: for_good,
        api_cost_per_call: input.api_cost_per_call,
    }
}

/// Walks the replica steps: segment k holds volumes whose peak needs exactly k
/// replicas. Returns the first cheaper volume and the volume from which self-hosting is
/// cheaper for good.
fn capacity_aware(input: &BreakEvenInput<'_>) -> (Option<f64>, Option<f64>) {
    let steps = &input.steps;
    let per_call = input.api_cost_per_call.pico_usd() as f64;
    if per_call <= 0.0 || steps.replica_calls_per_month <= 0.0 {
        return (None, None);
    }
    let segment_width = steps.replica_calls_per_month / steps.peak_to_average;
    let replica = steps.replica_monthly.pico_usd() as f64;
    let fixed = steps.fixed_non_replica.pico_usd() as f64;
    // Segment k is cheaper somewhere iff fixed + k × replica < per_call × k × width,
    // i.e. fixed < k × (per_call × width − replica): impossible unless the API's cost
    // over one segment exceeds a replica's. Then the gap grows by that much per step.
    let gain_per_step = per_call * segment_width - replica;
    if gain_per_step <= 0.0 {
        return (None, None);
    }
    let mut first = None;
    let mut for_good: Option<f64> = None;
    let mut k: u64 = 1;
    loop {
        let start = (k - 1) as f64 * segment_width;
        if start > SEARCH_LIMIT_CALLS {
            return (first, None);
        }
        let end = k as f64 * segment_width;
        let self_cost = fixed + replica * k as f64;
        // Within a segment self-hosting is flat; the API line crosses it once.
        let crossing = (self_cost / per_call).max(start);
        if crossing >= end {
            for_good = None;
        } else {
            first.get_or_insert(crossing);
            let cheaper_at_start = k > 1 && crossing <= start;
            if !cheaper_at_start || for_good.is_none() {
                for_good = Some(crossing);
            }
            // Cheaper right after this step, and each later step only widens the gap.
            if cheaper_at_start {
                break;
            }
        }
        k += 1;
    }
    (first, for_good)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario_1_input(
        replica_calls_per_month: f64,
        peak_to_average: f64,
    ) -> BreakEvenInput<'static> {
        BreakEvenInput {
            api: "claude-haiku-4.5",
            self_hosted: "llama-3.3-70b-4xa100",
            // 1,000 × $1/MTok + 200 × $5/MTok = $0.002 per call.
            api_cost_per_call: Money::from_pico_usd(2_000 * 1_000_000),
            api_input_price: UsdPerMtok::from_usd_f64(1.0),
            fixed_monthly: Money::from_whole_usd(8_000),
            tokens_per_call: 1_200.0,
            variable_price: UsdPerMtok::from_usd_f64(0.10),
            steps: ReplicaSteps {
                fixed_non_replica: Money::from_whole_usd(2_000),
                replica_monthly: Money::from_whole_usd(6_000),
                replica_calls_per_month,
                peak_to_average,
            },
        }
    }

    #[test]
    fn the_rule_of_thumb_crossover_is_corrected() {
        let result = break_even(&scenario_1_input(1e12, 1.0));
        // $8,000 ÷ $0.002 per call = 4.0M calls (the rule of thumb's "~1.5M" is wrong).
        assert!((result.calls_per_month.unwrap() - 4.0e6).abs() < 1.0);
        // With $0.10/MTok on 1,200 tokens: $8,000 ÷ $0.00188 = 4.255M.
        assert!((result.calls_per_month_with_variable.unwrap() - 4_255_319.1).abs() < 1.0);
        // Input only: $8,000 ÷ $0.90/MTok = 8.889B tokens (the article's "8.9B").
        assert!((result.input_only_tokens_per_month.unwrap() / 1e9 - 8.889).abs() < 0.001);
    }

    #[test]
    fn capacity_steps_can_make_self_hosting_dearer_again() {
        // One replica carries 8.7M calls/month; at a 2× peak a step every 4.35M.
        // Segment 1: cheaper from $8,000 / $0.002 = 4.0M to 4.35M. Segment 2 costs
        // $14,000 (API $8,700 at its start; cheaper from 7.0M), segment 3 $20,000
        // (API $17,400 at 8.7M; cheaper from 10.0M), segment 4 $26,000 (API $26,100 at
        // 13.05M: still cheaper), and each step adds $6,000 while the API adds $8,700.
        let result = break_even(&scenario_1_input(8.7e6, 2.0));
        assert!((result.capacity_aware_calls_per_month.unwrap() - 4.0e6).abs() < 1.0);
        assert!(!result.stays_cheaper);
        assert!((result.cheaper_for_good_from_calls_per_month.unwrap() - 10.0e6).abs() < 1.0);
    }

    #[test]
    fn never_cheaper_when_a_replica_costs_more_than_the_api_for_its_load() {
        // One replica serves only 1M calls (= $2,000 of API) but costs $6,000.
        let result = break_even(&scenario_1_input(1e6, 1.0));
        assert_eq!(result.capacity_aware_calls_per_month, None);
        assert!(!result.stays_cheaper);
    }

    #[test]
    fn stepped_cost_uses_whole_replicas() {
        let input = scenario_1_input(8.7e6, 2.0);
        assert_eq!(input.steps.cost_at(10.0).1, 1);
        // 10M × 2 ÷ 8.7M = 2.3 → 3 replicas: $2,000 + 3 × $6,000.
        assert_eq!(
            input.steps.cost_at(10e6),
            (Money::from_whole_usd(20_000), 3)
        );
    }
}
