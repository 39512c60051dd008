//! What tokens cost, and what a month of self-hosting costs.
//!
//! - API: one rate card, [`price_tokens`], prices a [`TokenCounts`] class by class
//!   (tier, cache fallbacks, batch discount). The gateway prices each request with
//!   [`request_cost`] and `plan` prices a month of traffic with [`api_cost_for`]; both
//!   call [`price_tokens`], so a request's cost and a plan never disagree.
//! - Self-hosted: GPUs (rented or owned) plus ops plus amortised setup; there is no
//!   per-token price, only an effective one that depends on volume.

use serde::Serialize;

use crate::catalog::{ApiModel, Catalog, Deployment, Ownership};
use crate::error::{CostError, InputError};
use crate::money::{Money, UsdPerMtok};
use crate::workload::Workload;

/// Token counts in Anthropic's classes: `input` excludes cached tokens, and each
/// cache-write class is billed instead of input, not on top of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    pub input: u64,
    pub cache_read: u64,
    /// Writes to the 5-minute prompt cache.
    pub cache_write: u64,
    /// Writes to the 1-hour prompt cache (Anthropic's `ephemeral_1h_input_tokens`).
    pub cache_write_1h: u64,
    pub output: u64,
}

impl TokenCounts {
    /// Every input token, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input + self.cache_read + self.cache_write + self.cache_write_1h
    }
}

/// Which of a model's price tiers applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceTier {
    Standard,
    /// The model's `long_context` prices for input and output (the standard tier when
    /// the model has none).
    LongContext,
}

impl PriceTier {
    /// One request: the long-context tier when its total input exceeds the model's
    /// threshold.
    pub fn for_request(model: &ApiModel, tokens: &TokenCounts) -> PriceTier {
        PriceTier::above_threshold(model, tokens.total_input() as f64)
    }

    /// Many requests of one shape: the tier of its mean prompt (`mean_input_tokens`,
    /// cached and uncached together), applied to the whole volume.
    pub fn for_mean_prompt(model: &ApiModel, mean_input_tokens: f64) -> PriceTier {
        PriceTier::above_threshold(model, mean_input_tokens)
    }

    fn above_threshold(model: &ApiModel, input_tokens: f64) -> PriceTier {
        match &model.long_context {
            Some(long) if input_tokens > long.threshold_input_tokens as f64 => {
                PriceTier::LongContext
            }
            _ => PriceTier::Standard,
        }
    }
}

/// The share of tokens sent through the provider's batch API, where the model's
/// `batch_discount` comes off every token class. Always in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct BatchShare(f64);

impl BatchShare {
    /// Standard (interactive) pricing.
    pub const NONE: BatchShare = BatchShare(0.0);
    /// Everything batched.
    pub const ALL: BatchShare = BatchShare(1.0);

    pub fn new(share: f64) -> Result<BatchShare, InputError> {
        if share.is_finite() && (0.0..=1.0).contains(&share) {
            Ok(BatchShare(share))
        } else {
            Err(InputError::invalid(
                "batch_share",
                share,
                "a fraction in [0, 1]",
            ))
        }
    }

    pub fn fraction(self) -> f64 {
        self.0
    }
}

/// A model's price for each token class in one tier, with the fallbacks resolved:
///
/// - `cache_read`: the model's cache-read price, else input.
/// - `cache_write` (5 minutes): the model's cache-write price, else input (providers
///   that do not charge for cache writes).
/// - `cache_write_1h`: the model's 1-hour cache-write price, else its 5-minute one,
///   else input.
///
/// The long-context tier changes input and output only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rates {
    pub input: UsdPerMtok,
    pub cache_read: UsdPerMtok,
    pub cache_write: UsdPerMtok,
    pub cache_write_1h: UsdPerMtok,
    pub output: UsdPerMtok,
}

impl Rates {
    pub fn of(model: &ApiModel, tier: PriceTier) -> Rates {
        let (input, output) = match (tier, &model.long_context) {
            (PriceTier::LongContext, Some(long)) => {
                (long.input_usd_per_mtok, long.output_usd_per_mtok)
            }
            _ => (model.input_usd_per_mtok, model.output_usd_per_mtok),
        };
        let cache_write = model.cache_write_usd_per_mtok.unwrap_or(input);
        Rates {
            input,
            cache_read: model.cache_read_usd_per_mtok.unwrap_or(input),
            cache_write,
            cache_write_1h: model.cache_write_1h_usd_per_mtok.unwrap_or(cache_write),
            output,
        }
    }
}

/// What a [`TokenCounts`] costs, class by class. Exact integers throughout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCost {
    pub input: Money,
    pub cache_read: Money,
    pub cache_write: Money,
    pub cache_write_1h: Money,
    pub output: Money,
    /// Taken off for the batched share (zero or positive).
    pub batch_discount: Money,
}

impl TokenCost {
    /// Every class at full price, before the batch discount.
    pub fn full(&self) -> Money {
        self.input + self.cache_read + self.cache_write + self.cache_write_1h + self.output
    }

    pub fn total(&self) -> Money {
        self.full() - self.batch_discount
    }

    /// Named parts for a breakdown: input and output always, the other classes when
    /// they have tokens, and the batch discount (negative) when there is one.
    pub fn parts(&self, tokens: &TokenCounts) -> Vec<CostPart> {
        let mut parts = vec![CostPart::new("input", self.input)];
        if tokens.cache_read > 0 {
            parts.push(CostPart::new("cache_read", self.cache_read));
        }
        if tokens.cache_write > 0 {
            parts.push(CostPart::new("cache_write", self.cache_write));
        }
        if tokens.cache_write_1h > 0 {
            parts.push(CostPart::new("cache_write_1h", self.cache_write_1h));
        }
        parts.push(CostPart::new("output", self.output));
        if self.batch_discount > Money::ZERO {
            parts.push(CostPart::new(
                "batch_discount",
                Money::ZERO - self.batch_discount,
            ));
        }
        parts
    }
}

/// The rate card: prices `tokens` at `model`'s prices in `tier`, taking the batch
/// discount off `batch`'s share of the total.
pub fn price_tokens(
    model: &ApiModel,
    tokens: &TokenCounts,
    tier: PriceTier,
    batch: BatchShare,
) -> TokenCost {
    let rates = Rates::of(model, tier);
    let mut cost = TokenCost {
        input: rates.input.cost(tokens.input),
        cache_read: rates.cache_read.cost(tokens.cache_read),
        cache_write: rates.cache_write.cost(tokens.cache_write),
        cache_write_1h: rates.cache_write_1h.cost(tokens.cache_write_1h),
        output: rates.output.cost(tokens.output),
        batch_discount: Money::ZERO,
    };
    cost.batch_discount = discount(
        discount(cost.full(), batch.fraction()),
        model.batch_discount,
    );
    cost
}

/// Exact cost of one request as the gateway sees it: its own tier, no batch discount.
pub fn request_cost(model: &ApiModel, tokens: &TokenCounts) -> Money {
    price_tokens(
        model,
        tokens,
        PriceTier::for_request(model, tokens),
        BatchShare::NONE,
    )
    .total()
}

fn discount(amount: Money, fraction: f64) -> Money {
    let parts_per_million = (fraction * 1e6).round() as i128;
    amount.mul_ratio(parts_per_million, 1_000_000)
}

#[derive(Clone, Debug, Serialize)]
pub struct CostPart {
    pub name: &'static str,
    #[serde(serialize_with = "usd")]
    pub amount: Money,
}

impl CostPart {
    pub fn new(name: &'static str, amount: Money) -> CostPart {
        CostPart { name, amount }
    }
}

pub fn usd<S: serde::Serializer>(money: &Money, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((money.cents() as f64) / 100.0)
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiCost {
    #[serde(serialize_with = "usd")]
    pub total: Money,
    pub parts: Vec<CostPart>,
    pub tokens: TokenCounts,
    pub tier: PriceTier,
}

/// Token counts for `calls` calls of a shape, split by the workload's cache shares
/// (reads, 5-minute writes and 1-hour writes).
pub fn monthly_tokens(
    calls: f64,
    input_tokens: f64,
    output_tokens: f64,
    workload: &Workload,
) -> TokenCounts {
    let input_total = calls * input_tokens;
    let cache_read = (input_total * workload.cached_input_share).round() as u64;
    let cache_write = (input_total * workload.cache_write_share).round() as u64;
    let cache_write_1h = (input_total * workload.cache_write_1h_share).round() as u64;
    TokenCounts {
        input: (input_total.round() as u64)
            .saturating_sub(cache_read + cache_write + cache_write_1h),
        cache_read,
        cache_write,
        cache_write_1h,
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
    let tier = PriceTier::for_mean_prompt(model, input_tokens);
    let cost = price_tokens(model, &tokens, tier, workload.batch_share);
    ApiCost {
        total: cost.total(),
        parts: cost.parts(&tokens),
        tokens,
        tier,
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
) -> Result<Vec<CostPart>, CostError> {
    let a = &catalog.assumptions;
    let gpu = catalog.gpu(&deployment.gpu)?;
    match ownership {
        Ownership::Rented => {
            let rental = deployment.gpu_usd_per_month.unwrap_or_else(|| {
                let milli_hours = (a.hours_per_month * 1000.0).round() as i128;
                gpu.rental_usd_per_gpu_hour.mul_ratio(milli_hours, 1000)
            });
            Ok(vec![CostPart::new("gpu_rental", rental)])
        }
        Ownership::Owned => {
            let purchase = gpu.purchase_usd.ok_or_else(|| CostError::NoPurchasePrice {
                deployment: deployment.id.clone(),
                gpu: gpu.id.clone(),
            })?;
            let amortisation = purchase.mul_ratio(1, a.amortize_months as i128);
            let kwh = gpu.power_kw * a.host_power_factor * a.pue * a.hours_per_month;
            let power = Money::from_usd_f64(kwh * a.usd_per_kwh);
            Ok(vec![
                CostPart::new("hardware_amortisation", amortisation),
                CostPart::new("power", power),
                CostPart::new("colocation", a.colocation_usd_per_gpu_month),
            ])
        }
    }
}

pub fn selfhost_cost(
    catalog: &Catalog,
    deployment: &Deployment,
    gpus: u32,
    ownership: Ownership,
) -> Result<SelfHostCost, CostError> {
    let per_gpu_parts = per_gpu_month(catalog, deployment, ownership)?;
    let per_gpu: Money = per_gpu_parts.iter().map(|p| p.amount).sum();
    let ops = catalog.ops_per_month(deployment);
    let setup = deployment
        .setup_usd
        .mul_ratio(1, deployment.setup_amortize_months as i128);
    let mut parts: Vec<CostPart> = per_gpu_parts
        .into_iter()
        .map(|p| CostPart::new(p.name, p.amount * gpus as i128))
        .collect();
    parts.push(CostPart::new("ops", ops));
    if setup > Money::ZERO {
        parts.push(CostPart::new("setup_amortised", setup));
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
    fn scenario_costs() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        // The article's Scenario 1: 10B in × $1 + 2B out × $5 = $20,000.
        let s1 = workload(&catalog, "", WorkloadFlags::default());
        assert_eq!(api_cost(haiku, &s1).total, Money::from_whole_usd(20_000));
        // Its Scenario 2: 100K calls → $100 + $100 = $200.
        let s2 = workload(
            &catalog,
            "",
            WorkloadFlags {
                calls_per_month: Some(1e5),
                ..Default::default()
            },
        );
        assert_eq!(api_cost(haiku, &s2).total, Money::from_whole_usd(200));
        // Its deployment: 4 × $1,500 + $2,000 = $8,000.
        let deployment = catalog.deployment("llama-3.3-70b-4xa100").unwrap();
        let cost = selfhost_cost(&catalog, deployment, 4, Ownership::Rented).unwrap();
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
            cache_read: 10_000,
            output: 100,
            ..Default::default()
        };
        assert_eq!(
            request_cost(haiku, &tokens),
            Money::from_pico_usd(5_000 * 1_000_000)
        );
    }

    #[test]
    fn one_hour_cache_writes_have_their_own_price() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        // Haiku 4.5 (LiteLLM's price file; docs facts): input $1, 5-minute write
        // $1.25, 1-hour write $2.00, read $0.10, output $5 per MTok.
        // 1,000 × $1 + 2,000 × $1.25 + 3,000 × $2.00 + 10,000 × $0.10 + 100 × $5
        // = 1,000 + 2,500 + 6,000 + 1,000 + 500 = 11,000 micro-USD.
        let tokens = TokenCounts {
            input: 1000,
            cache_write: 2000,
            cache_write_1h: 3000,
            cache_read: 10_000,
            output: 100,
        };
        assert_eq!(tokens.total_input(), 16_000);
        assert_eq!(
            request_cost(haiku, &tokens),
            Money::from_pico_usd(11_000 * 1_000_000)
        );
        let cost = price_tokens(haiku, &tokens, PriceTier::Standard, BatchShare::NONE);
        assert_eq!(cost.cache_write_1h, Money::from_pico_usd(6_000 * 1_000_000));
        assert_eq!(cost.cache_write, Money::from_pico_usd(2_500 * 1_000_000));
    }

    #[test]
    fn a_workload_with_one_hour_writes_prices_them_at_the_one_hour_rate() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        let w = workload(
            &catalog,
            "cache_write_share = 0.1\ncache_write_1h_share = 0.25",
            WorkloadFlags::default(),
        );
        // Scenario 1's 10B input tokens: 1B 5-minute writes × $1.25 = $1,250, 2.5B
        // 1-hour writes × $2 = $5,000, 6.5B uncached × $1 = $6,500; 2B output × $5 =
        // $10,000. $22,750.
        let cost = api_cost(haiku, &w);
        assert_eq!(cost.tokens.cache_write_1h, 2_500_000_000);
        assert_eq!(cost.tokens.input, 6_500_000_000);
        assert_eq!(cost.total, Money::from_whole_usd(22_750));
    }

    #[test]
    fn one_hour_writes_fall_back_to_the_five_minute_price_then_input() {
        let catalog = Catalog::embedded().unwrap();
        let mut model = catalog.api_model("claude-haiku-4.5").unwrap().clone();
        model.cache_write_1h_usd_per_mtok = None;
        let tokens = TokenCounts {
            cache_write_1h: 1_000_000,
            ..Default::default()
        };
        // No 1-hour price: 1M tokens at the 5-minute $1.25.
        assert_eq!(
            request_cost(&model, &tokens),
            Money::from_pico_usd(1_250_000_000_000)
        );
        // No cache-write price at all: 1M tokens at the $1 input price.
        model.cache_write_usd_per_mtok = None;
        assert_eq!(request_cost(&model, &tokens), Money::from_whole_usd(1));
    }

    #[test]
    fn batch_pricing_takes_the_discount_off_every_class() {
        let catalog = Catalog::embedded().unwrap();
        let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
        let tokens = TokenCounts {
            input: 1_000_000,
            output: 1_000_000,
            ..Default::default()
        };
        // $1 + $5 = $6, and Haiku's 50% batch discount takes off $3.
        let cost = price_tokens(haiku, &tokens, PriceTier::Standard, BatchShare::ALL);
        assert_eq!(cost.batch_discount, Money::from_whole_usd(3));
        assert_eq!(cost.total(), Money::from_whole_usd(3));
        assert!(BatchShare::new(1.5).is_err());
    }

    #[test]
    fn a_month_of_one_call_costs_what_the_request_costs() {
        let catalog = Catalog::embedded().unwrap();
        let w = workload(&catalog, "", WorkloadFlags::default());
        for model in catalog.api_models.values() {
            let tokens = TokenCounts {
                input: 1_000,
                output: 200,
                ..Default::default()
            };
            // Both go through `price_tokens`: one call of 1,000 in + 200 out.
            assert_eq!(
                api_cost_for(model, &w, 1.0, 1_000.0, 200.0).total,
                request_cost(model, &tokens),
                "{}",
                model.id
            );
        }
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
    fn owning_a_gpu_without_a_purchase_price_is_a_typed_error() {
        let catalog = Catalog::embedded().unwrap();
        let mut deployment = catalog.deployment("llama-3.3-70b-4xa100").unwrap().clone();
        // The A10G is not sold on its own, so the catalog has no purchase_usd for it.
        deployment.gpu = "a10g".to_string();
        let err = selfhost_cost(&catalog, &deployment, 1, Ownership::Owned).unwrap_err();
        assert_eq!(
            err,
            CostError::NoPurchasePrice {
                deployment: "llama-3.3-70b-4xa100".to_string(),
                gpu: "a10g".to_string(),
            }
        );
        assert!(err.to_string().contains("purchase_usd"), "{err}");
    }

    #[test]
    fn owned_costs_amortise_purchase_and_add_power() {
        let catalog = Catalog::embedded().unwrap();
        let deployment = catalog.deployment("llama-3.3-70b-4xa100").unwrap();
        let owned = selfhost_cost(&catalog, deployment, 4, Ownership::Owned).unwrap();
        // Per GPU: $15,000 / 36 = $416.67; power 0.4 kW × 1.3 × 1.4 × 730 h × $0.12 =
        // $63.77; colocation $150. Four GPUs plus $2,000 ops = $4,521.76.
        assert_eq!(owned.total.to_string(), "$4,521.76");
    }
}
