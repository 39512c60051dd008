//! `plan --search`: the cheapest deployments that carry the workload's peak within its
//! SLO, over every (model × GPU × tensor-parallel size × precision × KV precision) the
//! catalog allows, rented and owned.
//!
//! Each configuration is one replica of `TP` GPUs, priced and sized by the same
//! functions `plan` uses for a named deployment (`plan::evaluate_self_hosted`), so a
//! result and `plan --deployment` on the same entry agree to the cent. Ops are the
//! catalog's minimum ops budget (`min_ops_usd_per_month`), with no setup cost. Which
//! models are good enough is not the search's to judge: it searches only the models it
//! is given.

use serde::Serialize;

use crate::catalog::{Catalog, Deployment, Ownership, Precision};
use crate::cost::api_cost;
use crate::error::InputError;
use crate::money::Money;
use crate::plan::{evaluate_self_hosted, hybrid_plan, HybridPlan};
use crate::workload::Workload;

/// Tensor-parallel sizes searched.
const TP_SIZES: [u32; 5] = [1, 2, 4, 8, 16];

#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub workload: Workload,
    /// The API the hybrid optimum of each result spills to.
    pub api_id: String,
    /// Catalog model ids to search.
    pub models: Vec<String>,
    /// GPU ids to search; empty = every GPU in the catalog.
    pub gpus: Vec<String>,
    /// Most GPUs a result may need at peak.
    pub max_gpus: Option<u64>,
    /// Least context window (tokens) a model must offer.
    pub min_context: Option<u64>,
    /// Results to keep per ownership, the best configuration of each (model, GPU).
    pub top: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchOption {
    /// A deployment id that names the configuration.
    pub id: String,
    pub model: String,
    pub gpu: String,
    pub precision: Precision,
    pub kv_fp8: bool,
    pub ownership: Ownership,
    pub tensor_parallel: u32,
    /// Replicas, and GPUs, needed to carry the peak.
    pub replicas: u64,
    pub gpus: u64,
    /// Average load ÷ capacity of those replicas.
    pub utilization: f64,
    #[serde(serialize_with = "crate::cost::usd")]
    pub monthly_cost_usd: Money,
    pub effective_usd_per_mtok: f64,
    pub calls_per_month_per_replica: f64,
    pub tpot_ms: f64,
    pub ttft_ms: f64,
    pub limited_by: &'static str,
    /// The cheapest mix of this configuration and the API.
    pub hybrid: HybridPlan,
    /// The entry as a catalog `[[deployment]]`, for `plan --deployment` and `serve`.
    #[serde(skip)]
    pub deployment: Deployment,
}

/// Why configurations were left out, with how many.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rejections {
    pub does_not_fit: u64,
    pub misses_tpot_slo: u64,
    pub misses_ttft_slo: u64,
    pub over_max_gpus: u64,
    pub precision_not_applicable: u64,
    pub context_too_short: u64,
    pub heads_not_divisible: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResult {
    pub api: String,
    #[serde(serialize_with = "crate::cost::usd")]
    pub api_monthly_usd: Money,
    pub models: Vec<String>,
    pub gpus: Vec<String>,
    /// Configurations sized.
    pub considered: u64,
    /// Configurations that carry the peak within the SLO.
    pub feasible: u64,
    pub rejected: Rejections,
    pub rented: Vec<SearchOption>,
    pub owned: Vec<SearchOption>,
    /// Why nothing qualified, when nothing did.
    pub none_because: Option<String>,
}

fn configuration_id(model: &str, precision: Precision, kv_fp8: bool, tp: u32, gpu: &str) -> String {
    let kv = if kv_fp8 { "-kvfp8" } else { "" };
    format!("{model}-{}{kv}-{tp}x{gpu}", precision.as_str())
}

fn deployment(
    catalog: &Catalog,
    model: &str,
    gpu: &str,
    precision: Precision,
    kv_fp8: bool,
    tp: u32,
) -> Deployment {
    Deployment {
        id: configuration_id(model, precision, kv_fp8, tp, gpu),
        model: model.to_string(),
        gpu: gpu.to_string(),
        gpus: tp,
        precision,
        kv_fp8,
        tensor_parallel: Some(tp),
        ownership: Ownership::Rented,
        gpu_usd_per_month: None,
        ops_usd_per_month: Some(catalog.assumptions.min_ops_usd_per_month),
        ops_fte: None,
        setup_usd: Money::ZERO,
        setup_amortize_months: 1,
        aliases: Vec::new(),
        note: Some("found by `costfloor plan --search`".to_string()),
        as_of: catalog.assumptions.as_of.clone(),
        source: "costfloor plan --search: the catalog's GPU price and minimum ops budget"
            .to_string(),
    }
}

/// Searches every configuration and keeps the `top` cheapest of each ownership.
pub fn search(catalog: &Catalog, request: &SearchRequest) -> Result<SearchResult, InputError> {
    let workload = &request.workload;
    let api = catalog.api_model(&request.api_id)?;
    if request.models.is_empty() {
        return Err(InputError::invalid(
            "--search-models",
            "(none)",
            "at least one catalog model id, or `all`: the search does not judge which models are good enough",
        ));
    }
    for id in &request.models {
        catalog.model(id)?;
    }
    let gpus: Vec<String> = if request.gpus.is_empty() {
        catalog.gpus.keys().cloned().collect()
    } else {
        for id in &request.gpus {
            catalog.gpu(id)?;
        }
        request.gpus.clone()
    };
    let mut rejected = Rejections::default();
    let (mut considered, mut feasible) = (0u64, 0u64);
    let mut rented: Vec<(Money, f64, Deployment)> = Vec::new();
    let mut owned: Vec<(Money, f64, Deployment)> = Vec::new();
    let context_needed =
        workload.p99_prompt_tokens.max(workload.input_tokens) + workload.output_tokens;
    for model_id in &request.models {
        let model = catalog.model(model_id)?;
        if request
            .min_context
            .is_some_and(|least| model.max_context < least)
            || (model.max_context as f64) < context_needed
        {
            rejected.context_too_short += 1;
            continue;
        }
        for gpu_id in &gpus {
            let gpu = catalog.gpu(gpu_id)?;
            for precision in Precision::EVERY {
                if precision == Precision::Mxfp4 && model.experts.is_none() {
                    rejected.precision_not_applicable += 1;
                    continue;
                }
                for kv_fp8 in [false, true] {
                    for tp in TP_SIZES {
                        if !model.attention_heads.is_multiple_of(tp) {
                            rejected.heads_not_divisible += 1;
                            continue;
                        }
                        considered += 1;
                        let entry = deployment(catalog, model_id, gpu_id, precision, kv_fp8, tp);
                        let option = match evaluate_self_hosted(
                            catalog,
                            workload,
                            &entry,
                            Ownership::Rented,
                            entry.id.clone(),
                            None,
                        ) {
                            Ok(option) => option,
                            Err(InputError::DoesNotFit { .. }) => {
                                rejected.does_not_fit += 1;
                                continue;
                            }
                            Err(other) => return Err(other),
                        };
                        let sizing = &option.capacity.sizing;
                        if !sizing.meets_slo {
                            rejected.misses_tpot_slo += 1;
                            continue;
                        }
                        if !sizing.meets_ttft_slo {
                            rejected.misses_ttft_slo += 1;
                            continue;
                        }
                        if request
                            .max_gpus
                            .is_some_and(|most| option.capacity.required_gpus > most)
                        {
                            rejected.over_max_gpus += 1;
                            continue;
                        }
                        feasible += 1;
                        let per_replica = sizing.max_calls_per_month_per_replica;
                        rented.push((
                            option.capacity.monthly_cost_at_required_usd,
                            per_replica,
                            entry.clone(),
                        ));
                        if gpu.purchase_usd.is_some() {
                            let owned_option = evaluate_self_hosted(
                                catalog,
                                workload,
                                &entry,
                                Ownership::Owned,
                                entry.id.clone(),
                                None,
                            )?;
                            owned.push((
                                owned_option.capacity.monthly_cost_at_required_usd,
                                per_replica,
                                entry,
                            ));
                        }
                    }
                }
            }
        }
    }
    let api_total = api_cost(api, workload).total;
    let finish = |mut list: Vec<(Money, f64, Deployment)>, ownership: Ownership| {
        // Cheapest first; ties go to the most capacity per replica (headroom), then the
        // id, so the order is stable.
        list.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.id.cmp(&b.2.id))
        });
        // The best configuration of each (model, GPU): precision and TP variants of one
        // pair would otherwise fill the list.
        let mut seen = std::collections::BTreeSet::new();
        list.retain(|(_, _, entry)| seen.insert((entry.model.clone(), entry.gpu.clone())));
        list.truncate(request.top);
        list.into_iter()
            .map(|(_, _, entry)| describe(catalog, workload, api, api_total, entry, ownership))
            .collect::<Result<Vec<_>, _>>()
    };
    let rented = finish(rented, Ownership::Rented)?;
    let owned = finish(owned, Ownership::Owned)?;
    let none_because = rented
        .is_empty()
        .then(|| explain(&rejected, considered, request));
    Ok(SearchResult {
        api: api.id.clone(),
        api_monthly_usd: api_total,
        models: request.models.clone(),
        gpus,
        considered,
        feasible,
        rejected,
        rented,
        owned,
        none_because,
    })
}

fn describe(
    catalog: &Catalog,
    workload: &Workload,
    api: &crate::catalog::ApiModel,
    api_total: Money,
    mut entry: Deployment,
    ownership: Ownership,
) -> Result<SearchOption, InputError> {
    entry.ownership = ownership;
    if ownership == Ownership::Owned {
        entry.id = format!("{}+owned", entry.id);
    }
    let option =
        evaluate_self_hosted(catalog, workload, &entry, ownership, entry.id.clone(), None)?;
    let hybrid = hybrid_plan(catalog, workload, api, api_total, &option, Money::ZERO)?;
    let capacity = &option.capacity;
    Ok(SearchOption {
        id: entry.id.clone(),
        model: entry.model.clone(),
        gpu: entry.gpu.clone(),
        precision: entry.precision,
        kv_fp8: entry.kv_fp8,
        ownership,
        tensor_parallel: capacity.gpus_per_replica,
        replicas: capacity.required_replicas,
        gpus: capacity.required_gpus,
        utilization: capacity.utilization,
        monthly_cost_usd: capacity.monthly_cost_at_required_usd,
        effective_usd_per_mtok: capacity.effective_usd_per_mtok_at_required,
        calls_per_month_per_replica: capacity.sizing.max_calls_per_month_per_replica,
        tpot_ms: capacity.sizing.tpot_ms,
        ttft_ms: capacity.sizing.ttft_ms,
        limited_by: capacity.sizing.limited_by,
        hybrid,
        deployment: entry,
    })
}

fn explain(rejected: &Rejections, considered: u64, request: &SearchRequest) -> String {
    let mut reasons = Vec::new();
    for (count, what) in [
        (
            rejected.context_too_short,
            "model(s) whose context window is too short",
        ),
        (
            rejected.does_not_fit,
            "configuration(s) whose weights and one p99 sequence do not fit the GPUs' memory",
        ),
        (
            rejected.misses_tpot_slo,
            "that fit but miss the time-per-token SLO even at batch 1",
        ),
        (
            rejected.misses_ttft_slo,
            "that miss the time-to-first-token SLO",
        ),
        (
            rejected.over_max_gpus,
            "that need more than --max-gpus at peak",
        ),
    ] {
        if count > 0 {
            reasons.push(format!("{count} {what}"));
        }
    }
    format!(
        "no configuration of {} on the GPUs searched carries the peak within the SLO ({considered} sized): {}",
        request.models.join(", "),
        if reasons.is_empty() { "nothing to size".to_string() } else { reasons.join("; ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{WorkloadFile, WorkloadFlags};

    fn workload(catalog: &Catalog, calls: f64) -> Workload {
        let flags = WorkloadFlags {
            calls_per_month: Some(calls),
            input_tokens: Some(1000.0),
            output_tokens: Some(200.0),
        };
        Workload::build(WorkloadFile::default(), &flags, &catalog.assumptions).unwrap()
    }

    fn request(catalog: &Catalog, models: &[&str], gpus: &[&str]) -> SearchRequest {
        SearchRequest {
            workload: workload(catalog, 10e6),
            api_id: "claude-haiku-4.5".into(),
            models: models.iter().map(|s| s.to_string()).collect(),
            gpus: gpus.iter().map(|s| s.to_string()).collect(),
            max_gpus: None,
            min_context: None,
            top: 5,
        }
    }

    /// A hand-made catalog where the answer is plain: the same GPU at two prices, one
    /// twice the other; the cheap one must win, at the same replica count.
    #[test]
    fn finds_the_known_cheapest_option() {
        let mut catalog = Catalog::embedded().unwrap();
        catalog
            .overlay(
                "two.toml",
                r#"
[[gpu]]
id = "cheap-h100"
name = "H100 at half price"
memory_gib = 80
bandwidth_gb_s = 3350
bf16_tflops = 989
fp8_tflops = 1979
interconnect = "nvlink"
rental_usd_per_gpu_hour = 1.00
power_kw = 0.7
as_of = "2026-12-03"
source = "test"

[[gpu]]
id = "dear-h100"
name = "H100 at full price"
memory_gib = 80
bandwidth_gb_s = 3350
bf16_tflops = 989
fp8_tflops = 1979
interconnect = "nvlink"
rental_usd_per_gpu_hour = 2.00
power_kw = 0.7
as_of = "2026-12-03"
source = "test"
"#,
            )
            .unwrap();
        let result = search(
            &catalog,
            &request(&catalog, &["llama-3.1-8b"], &["dear-h100", "cheap-h100"]),
        )
        .unwrap();
        let best = &result.rented[0];
        assert_eq!(
            best.gpu,
            "cheap-h100",
            "{:?}",
            result.rented.iter().map(|o| &o.id).collect::<Vec<_>>()
        );
        // Every configuration on the dear GPU has a twin on the cheap one at half the
        // GPU cost; one result per (model, GPU), so the dear GPU comes second.
        assert_eq!(result.rented.len(), 2);
        assert_eq!(result.rented[1].gpu, "dear-h100");
        assert!(result.rented[1].monthly_cost_usd > best.monthly_cost_usd);
        // Its cost is what `plan` charges that entry: GPUs at $1 × 730 h, plus ops.
        let gpu_month = Money::from_whole_usd(730) * best.gpus as i128;
        assert_eq!(
            best.monthly_cost_usd,
            gpu_month + catalog.assumptions.min_ops_usd_per_month
        );
        // Sorted by cost.
        assert!(result
            .rented
            .windows(2)
            .all(|w| w[0].monthly_cost_usd <= w[1].monthly_cost_usd));
        assert!(result.owned.is_empty(), "neither GPU has a purchase price");
    }

    #[test]
    fn nothing_fits_says_why() {
        let catalog = Catalog::embedded().unwrap();
        let mut one_l4 = request(&catalog, &["llama-3.1-405b"], &["l4"]);
        one_l4.max_gpus = Some(1);
        let result = search(&catalog, &one_l4).unwrap();
        assert!(result.rented.is_empty());
        let reason = result.none_because.unwrap();
        assert!(
            reason.contains("llama-3.1-405b") && reason.contains("do not fit"),
            "{reason}"
        );
        assert!(result.rejected.does_not_fit > 0);
        // No model named: an error, not a guess.
        let err = search(&catalog, &request(&catalog, &[], &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--search-models"), "{err}");
    }

    #[test]
    fn max_gpus_and_min_context_constrain() {
        let catalog = Catalog::embedded().unwrap();
        let mut capped = request(&catalog, &["llama-3.3-70b"], &["h100-sxm"]);
        capped.max_gpus = Some(2);
        let result = search(&catalog, &capped).unwrap();
        assert!(result.rented.iter().all(|o| o.gpus <= 2));
        let mut long = request(&catalog, &["mixtral-8x7b", "llama-3.1-8b"], &["h100-sxm"]);
        long.min_context = Some(100_000);
        let result = search(&catalog, &long).unwrap();
        // Mixtral 8x7B offers 32K: only Llama 3.1 8B (128K) is searched.
        assert!(result.rented.iter().all(|o| o.model == "llama-3.1-8b"));
        assert_eq!(result.rejected.context_too_short, 1);
    }
}
