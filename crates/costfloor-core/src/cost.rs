//! Monthly and per-request costs. API: tokens × catalog prices, with the cache and
//! batch rules. Self-hosted: GPUs (rented or owned) plus ops plus amortised setup;
//! there is no per-token price, only an effective one that depends on volume.
//!
//! The gateway prices each request with [`price_tokens`], the same function `plan`
//! uses for a month of traffic, so a request's cost and a plan never disagree.

use serde::Serialize;

use crate::catalog::{ApiModel, Catalog, Deployment, Ownership};
use crate::money::{Money, UsdPerMtok};
use crate::workload::Workload;

/// Token counts in Anthropic's classes: `input` excludes cached tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub cache_write_1h: u64,
    pub output: u64,
}

impl TokenCounts {
    pub fn total_input(&self) -> u64 {
        self.input + self.cache_read + self.cache_write + self.cache_write_1h
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CostPart {
    pub name: &'static str,
    #[serde(serialize_with = "usd")]
    pub amount: Money,
}

pub fn usd<S: serde::Serializer>(money: &Money, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((money.cents() as f64) / 100.0)
}

/// Exact cost of one request, or of aggregated tokens of requests priced alike.
///
/// - A cache write is priced at the cache-write price *instead of* the input price;
///   a cache read at the cache-read price. Providers without a cache-write price
///   charge plain input for it.
/// - `long_context`: when one request's total input exceeds the threshold, its input
///   and output go at the long-context prices (pass `false` for aggregates).
/// - `batch`: the batch discount applies to every token class.
pub fn price_tokens(
    model: &ApiModel,
    tokens: &TokenCounts,
    long_context: bool,
    batch: bool,
) -> Money {
    let (input_price, output_price) = match (&model.long_context, long_context) {
        (Some(long), true) if tokens.total_input() > long.threshold_input_tokens => {
            (long.input_usd_per_mtok, long.output_usd_per_mtok)
        }
        _ => (model.input_usd_per_mtok, model.output_usd_per_mtok),
    };
    let cache_write_price = model.cache_write_usd_per_mtok.unwrap_or(input_price);
    let cache_read_price = model.cache_read_usd_per_mtok.unwrap_or(input_price);
    let full = input_price.cost(tokens.input)
        + cache_read_price.cost(tokens.cache_read)
        + cache_write_price.cost(tokens.cache_write + tokens.cache_write_1h)
        + output_price.cost(tokens.output);
    if batch {
        full - discount(full, model.batch_discount)
    } else {
        full
    }
}

/// Exact cost of one request as the gateway sees it.
pub fn request_cost(model: &ApiModel, tokens: &TokenCounts) -> Money {
    price_tokens(model, tokens, true, false)
}

fn discount(amount: Money, fraction: f64) -> Money {
    let parts_per_million = (fraction * 1e6).round() as i128;
    amount.mul_ratio(parts_per_million, 1_000_000)
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiCost {
    #[serde(serialize_with = "usd")]
    pub total: Money,
    pub parts: Vec<CostPart>,
    pub tokens: TokenCounts,
    pub long_context_pricing: bool,
}

/// Token counts for `calls` calls of a shape, split by the workload's cache shares.
pub fn monthly_tokens(
    calls: f64,
    input_tokens: f64,
    output_tokens: f64,
    workload: &Workload,
) -> TokenCounts {
    let input_total = calls * input_tokens;
    let cache_read = (input_total * workload.cached_input_share).round() as u64;
    let cache_write = (input_total * workload.cache_write_share).round() as u64;
    TokenCounts {
        input: (input_total.round() as u64).saturating_sub(cache_read + cache_write),
        cache_read,
        cache_write,
        cache_write_1h: 0,
        output: (calls * output_tokens).round() as u64,
    }
}

/// Monthly API cost of `calls` calls of the given shape under the workload's cache
/// and batch shares. When the mean prompt exceeds a long-context threshold, the whole
/// volume is priced at the long-context rates.
pub fn api_cost_for(
    model: &ApiModel,
    workload: &Workload,
    calls: f64,
    input_tokens: f64,
    output_tokens: f64,
) -> ApiCost {
    let tokens = monthly_tokens(calls, input_tokens, output_tokens, workload);
    let long_context_pricing = model
        .long_context
        .as_ref()
        .is_some_and(|long| input_tokens > long.threshold_input_tokens as f64);
    let (input_price, output_price) = match (&model.long_context, long_context_pricing) {
        (Some(long), true) => (long.input_usd_per_mtok, long.output_usd_per_mtok),
        _ => (model.input_usd_per_mtok, model.output_usd_per_mtok),
    };
    let price_or = |price: Option<UsdPerMtok>| price.unwrap_or(input_price);
    let input = input_price.cost(tokens.input);
    let cache_read = price_or(model.cache_read_usd_per_mtok).cost(tokens.cache_read);
    let cache_write = price_or(model.cache_write_usd_per_mtok).cost(tokens.cache_write);
    let output = output_price.cost(tokens.output);
    let full = input + cache_read + cache_write + output;
    let batch_savings = discount(discount(full, workload.batch_share), model.batch_discount);
    let mut parts = vec![CostPart {
        name: "input",
        amount: input,
    }];
    if tokens.cache_read > 0 {
        parts.push(CostPart {
            name: "cache_read",
            amount: cache_read,
        });
    }
    if tokens.cache_write > 0 {
        parts.push(CostPart {
            name: "cache_write",
            amount: cache_write,
        });
    }
    parts.push(CostPart {
        name: "output",
        amount: output,
    });
    if batch_savings > Money::ZERO {
        parts.push(CostPart {
            name: "batch_discount",
            amount: Money::ZERO - batch_savings,
        });
    }
    ApiCost {
        total: full - batch_savings,
        parts,
        tokens,
        long_context_pricing,
    }
}

pub fn api_cost(model: &ApiModel, workload: &Workload) -> ApiCost {
    api_cost_for(
        model,
        workload,
        workload.calls_per_month,
        workload.input_tokens,
        workload.output_tokens,
    )
}

/// The fixed monthly cost of a self-hosted deployment on `gpus` GPUs.
#[derive(Clone, Debug, Serialize)]
pub struct SelfHostCost {
    #[serde(serialize_with = "usd")]
    pub total: Money,
    pub parts: Vec<CostPart>,
    #[serde(serialize_with = "usd")]
    pub per_gpu_month: Money,
    /// Ops and amortised setup: what does not scale with GPUs.
    #[serde(serialize_with = "usd")]
    pub fixed_non_gpu: Money,
    pub ownership: Ownership,
}

/// Per-GPU monthly cost: rental, or (owned) purchase amortisation + power + hosting.
pub fn per_gpu_month(
    catalog: &Catalog,
    deployment: &Deployment,
    ownership: Ownership,
) -> Result<Vec<CostPart>, String> {
    let a = &catalog.assumptions;
    let gpu = catalog.gpu(&deployment.gpu).map_err(|e| e.to_string())?;
    match ownership {
        Ownership::Rented => {
            let rental = deployment.gpu_usd_per_month.unwrap_or_else(|| {
                let milli_hours = (a.hours_per_month * 1000.0).round() as i128;
                gpu.rental_usd_per_gpu_hour.mul_ratio(milli_hours, 1000)
            });
            Ok(vec![CostPart {
                name: "gpu_rental",
                amount: rental,
            }])
        }
        Ownership::Owned => {
            let purchase = gpu.purchase_usd.ok_or_else(|| {
                format!(
                    "GPU `{}` has no purchase_usd in the catalog, so it cannot be owned",
                    gpu.id
                )
            })?;
            let amortisation = purchase.mul_ratio(1, a.amortize_months as i128);
            let kwh = gpu.power_kw * a.host_power_factor * a.pue * a.hours_per_month;
            let power = Money::from_usd_f64(kwh * a.usd_per_kwh);
            Ok(vec![
                CostPart {
                    name: "hardware_amortisation",
                    amount: amortisation,
                },
                CostPart {
                    name: "power",
                    amount: power,
                },
                CostPart {
                    name: "colocation",
                    amount: a.colocation_usd_per_gpu_month,
                },
            ])
        }
    }
}

pub fn selfhost_cost(
    catalog: &Catalog,
    deployment: &Deployment,
    gpus: u32,
    ownership: Ownership,
) -> Result<SelfHostCost, String> {
    let per_gpu_parts = per_gpu_month(catalog, deployment, ownership)?;
    let per_gpu: Money = per_gpu_parts.iter().map(|p| p.amount).sum();
    let ops = catalog.ops_per_month(deployment);
    let setup = deployment
        .setup_usd
        .mul_ratio(1, deployment.setup_amortize_months as i128);
    let mut parts: Vec<CostPart> = per_gpu_parts
        .into_iter()
        .map(|p| CostPart {
            name: p.name,
            amount: p.amount * gpus as i128,
        })
        .collect();
    parts.push(CostPart {
        name: "ops",
        amount: ops,
    });
    if setup > Money::ZERO {
        parts.push(CostPart {
            name: "setup_amortised",
            amount: setup,
        });
    }
    Ok(SelfHostCost {
        total: per_gpu * gpus as i128 + ops + setup,
        parts,
        per_gpu_month: per_gpu,
        fixed_non_gpu: ops + setup,
        ownership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::workload::{Workload, WorkloadFile, WorkloadFlags};

    fn workload(catalog: &Catalog, text: &str, flags: WorkloadFlags) -> Workload {
        Workload::build(
            WorkloadFile::parse("w", text).unwrap(),
            &flags,
            &catalog.assumptions,
        )
        .unwrap()
    }

    #[test]
    fn seed_scenario_costs() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        // Seed Scenario 1: 10B in × $1 + 2B out × $5 = $20,000.
        let s1 = workload(&catalog, "", WorkloadFlags::default());
        assert_eq!(api_cost(haiku, &s1).total, Money::from_whole_usd(20_000));
        // Seed Scenario 2: 100K calls → $100 + $100 = $200.
        let s2 = workload(
            &catalog,
            "",
            WorkloadFlags {
                calls_per_month: Some(1e5),
                ..Default::default()
            },
        );
        assert_eq!(api_cost(haiku, &s2).total, Money::from_whole_usd(200));
        // The seed deployment: 4 × $1,500 + $2,000 = $8,000.
        let seed = catalog.deployment("seed-llama-3.3-70b-4xa100").unwrap();
        let cost = selfhost_cost(&catalog, seed, 4, Ownership::Rented).unwrap();
        assert_eq!(cost.total, Money::from_whole_usd(8_000));
    }

    #[test]
    fn cache_write_replaces_input_price() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        // 1,000 uncached at $1, 2,000 cache writes at $1.25, 10,000 cache reads at $0.10,
        // 100 output at $5: 1000 + 2500 + 1000 + 500 = 5,000 micro-USD.
        let tokens = TokenCounts {
            input: 1000,
            cache_write: 2000,
            cache_write_1h: 0,
            cache_read: 10_000,
            output: 100,
        };
        assert_eq!(
            request_cost(haiku, &tokens),
            Money::from_pico_usd(5_000 * 1_000_000)
        );
    }

    #[test]
    fn long_context_surcharge_applies_per_request() {
        let catalog = Catalog::embedded().unwrap();
        let sonnet = catalog.api_model("claude-sonnet-4.6").unwrap();
        let short = TokenCounts {
            input: 200_000,
            output: 1_000,
            ..Default::default()
        };
        let long = TokenCounts {
            input: 200_001,
            output: 1_000,
            ..Default::default()
        };
        // 200,000 × $3 + 1,000 × $15 = $0.615; 200,001 × $6 + 1,000 × $22.5 = $1.222506.
        assert_eq!(
            request_cost(sonnet, &short),
            Money::from_pico_usd(615_000 * 1_000_000)
        );
        assert_eq!(
            request_cost(sonnet, &long),
            Money::from_pico_usd(1_222_506 * 1_000_000)
        );
    }

    #[test]
    fn batch_share_takes_the_discount() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        let w = workload(&catalog, "batch_share = 0.5", WorkloadFlags::default());
        // Half the $20,000 at 50% off: $15,000.
        assert_eq!(api_cost(haiku, &w).total, Money::from_whole_usd(15_000));
    }

    #[test]
    fn owned_costs_amortise_purchase_and_add_power() {
        let catalog = Catalog::embedded().unwrap();
        let seed = catalog.deployment("seed-llama-3.3-70b-4xa100").unwrap();
        let owned = selfhost_cost(&catalog, seed, 4, Ownership::Owned).unwrap();
        // Per GPU: $15,000 / 36 = $416.67; power 0.4 kW × 1.3 × 1.4 × 730 h × $0.12 =
        // $63.77; colocation $150. Four GPUs plus $2,000 ops = $4,521.76.
        assert_eq!(owned.total.to_string(), "$4,521.76");
    }
}
