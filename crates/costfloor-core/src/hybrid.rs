//! The hybrid optimum: how many self-hosted replicas to run when eligible tasks go to
//! them, the rest and any overflow above capacity go to the API.
//!
//! For r = 0, 1, … up to the replicas that carry the eligible peak, the monthly cost is
//! r × replica cost (+ ops and setup when r > 0) + API cost of ineligible calls + API
//! cost of eligible calls above capacity in each hour of the day (+ the measured error
//! cost of the calls the replicas serve, with `plan --eval`). The cheapest r wins.

use serde::Serialize;

use crate::cost::usd;
use crate::money::Money;

pub struct HybridInput {
    pub total_calls_per_month: f64,
    pub eligible_calls_per_month: f64,
    pub ineligible_api_cost: Money,
    pub eligible_api_cost_per_call: Money,
    /// Mean-normalised load of each hour of the day.
    pub profile: [f64; 24],
    /// Calls/month one replica carries at 100% utilisation, at the eligible shape.
    pub replica_calls_per_month: f64,
    pub replica_monthly: Money,
    pub fixed_non_replica: Money,
    /// The best batch within the SLO: the in-flight limit per replica.
    pub max_in_flight_per_replica: u32,
    /// What the self-hosted side's extra errors cost per call it serves (`plan --eval`:
    /// the measured gap × the cost of a wrong answer); zero when not measured.
    pub error_cost_per_self_hosted_call: Money,
}

#[derive(Clone, Debug, Serialize)]
pub struct HybridCandidate {
    pub replicas: u64,
    #[serde(serialize_with = "usd")]
    pub monthly_cost_usd: Money,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hybrid {
    pub replicas: u64,
    #[serde(serialize_with = "usd")]
    pub monthly_cost_usd: Money,
    #[serde(serialize_with = "usd")]
    pub self_hosted_cost_usd: Money,
    #[serde(serialize_with = "usd")]
    pub api_cost_usd: Money,
    /// Share of all calls served by the self-hosted side.
    pub self_hosted_share: f64,
    pub api_share: f64,
    /// Eligible calls sent to the API because the replicas were full.
    pub overflow_calls_per_month: f64,
    /// Spill-over threshold for the gateway: max in-flight requests per replica.
    pub spillover_max_in_flight_per_replica: u32,
    /// Average load ÷ provisioned capacity of the self-hosted replicas.
    pub utilization: f64,
    pub candidates: Vec<HybridCandidate>,
}

pub fn optimise(input: &HybridInput) -> Hybrid {
    let peak = input.profile.iter().copied().fold(0.0, f64::max);
    let max_replicas = if input.replica_calls_per_month > 0.0 {
        (input.eligible_calls_per_month * peak / input.replica_calls_per_month).ceil() as u64
    } else {
        0
    };
    let mut best: Option<Hybrid> = None;
    let mut candidates = Vec::new();
    for replicas in 0..=max_replicas {
        let capacity_per_hour_slot = replicas as f64 * input.replica_calls_per_month / 24.0;
        let overflow: f64 = input
            .profile
            .iter()
            .map(|load| {
                (input.eligible_calls_per_month * load / 24.0 - capacity_per_hour_slot).max(0.0)
            })
            .sum::<f64>()
            .round();
        let served = input.eligible_calls_per_month - overflow;
        let overflow_cost = Money::from_pico_usd(
            (input.eligible_api_cost_per_call.pico_usd() as f64 * overflow).round() as i128,
        );
        let self_hosted_cost = if replicas == 0 {
            Money::ZERO
        } else {
            input.fixed_non_replica + input.replica_monthly * replicas as i128
        };
        let api_cost = input.ineligible_api_cost + overflow_cost;
        let error_cost = input
            .error_cost_per_self_hosted_call
            .mul_ratio(served.round() as i128, 1);
        let total = self_hosted_cost + api_cost + error_cost;
        candidates.push(HybridCandidate {
            replicas,
            monthly_cost_usd: total,
        });
        if best.as_ref().is_some_and(|b| b.monthly_cost_usd <= total) {
            continue;
        }
        let capacity = replicas as f64 * input.replica_calls_per_month;
        best = Some(Hybrid {
            replicas,
            monthly_cost_usd: total,
            self_hosted_cost_usd: self_hosted_cost,
            api_cost_usd: api_cost,
            self_hosted_share: served / input.total_calls_per_month,
            api_share: 1.0 - served / input.total_calls_per_month,
            overflow_calls_per_month: overflow,
            spillover_max_in_flight_per_replica: input.max_in_flight_per_replica,
            utilization: if capacity > 0.0 {
                served / capacity
            } else {
                0.0
            },
            candidates: Vec::new(),
        });
    }
    let mut best = best.unwrap_or(Hybrid {
        replicas: 0,
        monthly_cost_usd: input.ineligible_api_cost,
        self_hosted_cost_usd: Money::ZERO,
        api_cost_usd: input.ineligible_api_cost,
        self_hosted_share: 0.0,
        api_share: 1.0,
        overflow_calls_per_month: 0.0,
        spillover_max_in_flight_per_replica: input.max_in_flight_per_replica,
        utilization: 0.0,
        candidates: Vec::new(),
    });
    best.candidates = candidates;
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::diurnal_profile;

    fn input(profile: [f64; 24]) -> HybridInput {
        HybridInput {
            total_calls_per_month: 10e6,
            eligible_calls_per_month: 10e6,
            ineligible_api_cost: Money::ZERO,
            eligible_api_cost_per_call: Money::from_pico_usd(2_000_000_000),
            profile,
            replica_calls_per_month: 8.7e6,
            replica_monthly: Money::from_whole_usd(6_000),
            fixed_non_replica: Money::from_whole_usd(2_000),
            max_in_flight_per_replica: 32,
            error_cost_per_self_hosted_call: Money::ZERO,
        }
    }

    #[test]
    fn flat_load_fills_whole_replicas_and_sends_the_rest_to_the_api() {
        let result = optimise(&input([1.0; 24]));
        // r=1: $8,000 + 1.3M × $0.002 = $10,600; r=2: $14,000; r=0: $20,000.
        assert_eq!(result.replicas, 1);
        assert_eq!(result.monthly_cost_usd, Money::from_whole_usd(10_600));
        assert!((result.self_hosted_share - 0.87).abs() < 1e-9);
        assert!((result.utilization - 1.0).abs() < 1e-9);
        assert_eq!(result.candidates.len(), 3);
    }

    #[test]
    fn the_error_cost_of_self_hosted_calls_enters_the_optimum() {
        // A measured gap of 1 point at $0.10 an error: $0.001 a self-hosted call. r=1:
        // $10,600 + 8.7M × $0.001 = $19,300, still under all-API ($20,000).
        let mut measured = input([1.0; 24]);
        measured.error_cost_per_self_hosted_call = Money::from_pico_usd(1_000_000_000);
        let result = optimise(&measured);
        assert_eq!(result.replicas, 1);
        assert_eq!(result.monthly_cost_usd, Money::from_whole_usd(19_300));
        // At $0.002 an error-call (= the API's price) self-hosting saves nothing: r=0.
        measured.error_cost_per_self_hosted_call = Money::from_pico_usd(2_000_000_000);
        assert_eq!(optimise(&measured).replicas, 0);
    }

    #[test]
    fn peaky_load_spills_the_peak() {
        let result = optimise(&input(diurnal_profile(2.0)));
        assert!(result.replicas >= 1 && result.replicas <= 2);
        assert!(result.overflow_calls_per_month > 0.0);
        assert!(result.monthly_cost_usd < Money::from_whole_usd(20_000));
        let cheapest = result
            .candidates
            .iter()
            .map(|c| c.monthly_cost_usd)
            .min()
            .unwrap();
        assert_eq!(cheapest, result.monthly_cost_usd);
    }

    #[test]
    fn nothing_eligible_means_all_api() {
        let mut hybrid_input = input([1.0; 24]);
        hybrid_input.eligible_calls_per_month = 0.0;
        hybrid_input.ineligible_api_cost = Money::from_whole_usd(20_000);
        let result = optimise(&hybrid_input);
        assert_eq!(result.replicas, 0);
        assert_eq!(result.api_share, 1.0);
    }
}
