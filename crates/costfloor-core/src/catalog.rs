//! The catalog: API prices, GPU specs, open-model architectures, deployment presets
//! and model assumptions. The default is compiled in; users override it with TOML.
//!
//! Loading is two-phase: serde structs with `deny_unknown_fields`, then `validate()`
//! which checks ranges and cross references (a deployment naming an unknown GPU).
//! Parsing a string is not I/O: reading files is the caller's job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{close_matches, CatalogError};
use crate::money::{Money, UsdPerMtok};

/// The catalog compiled into the binary.
pub const DEFAULT_CATALOG_TOML: &str = include_str!("../catalog/default.toml");
const DEFAULT_CATALOG_NAME: &str = "<embedded catalog>";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Assumptions {
    pub as_of: String,
    pub source: String,
    pub hours_per_month: f64,
    pub gpu_memory_utilization: f64,
    pub runtime_overhead_gib_per_gpu: f64,
    pub memory_bandwidth_efficiency: f64,
    /// Achieved share of peak bandwidth while attention reads the KV cache; absent =
    /// `memory_bandwidth_efficiency`.
    #[serde(default)]
    pub kv_bandwidth_efficiency: Option<f64>,
    pub mfu: f64,
    /// MFU of FP8 models on FP8 tensor cores, as a share of the FP8 peak; absent =
    /// `mfu`.
    #[serde(default)]
    pub mfu_fp8: Option<f64>,
    /// MFU measured on a GPU, by GPU id, overriding `mfu` there (the achieved share of
    /// peak differs by generation).
    #[serde(default)]
    pub mfu_by_gpu: std::collections::BTreeMap<String, f64>,
    /// The same for FP8 on FP8 tensor cores, overriding `mfu_fp8`.
    #[serde(default)]
    pub mfu_fp8_by_gpu: std::collections::BTreeMap<String, f64>,
    pub tp_efficiency_nvlink: f64,
    pub tp_efficiency_pcie: f64,
    pub max_batch_per_replica: u32,
    pub int4_bytes_per_param: f64,
    #[serde(default = "mxfp4_bytes_per_param")]
    pub mxfp4_bytes_per_param: f64,
    /// Fixed time of every engine step besides the roofline (scheduling, sampling,
    /// kernel launches), fitted to the calibration set.
    #[serde(default)]
    pub step_overhead_ms: f64,
    pub slo_tpot_ms: f64,
    pub slo_ttft_ms: f64,
    pub peak_to_average: f64,
    pub min_ops_usd_per_month: Money,
    pub fte_usd_per_month: Money,
    pub amortize_months: u32,
    pub pue: f64,
    pub host_power_factor: f64,
    pub usd_per_kwh: f64,
    pub colocation_usd_per_gpu_month: Money,
    pub min_utilization: f64,
    /// The per-token self-hosting price people often quote; used for the input-only
    /// break-even and as a sensitivity line.
    pub quoted_selfhost_usd_per_mtok: UsdPerMtok,
}

/// Former names of `[assumptions]` keys, still accepted in catalog files.
const ASSUMPTION_ALIASES: [(&str, &str); 1] =
    [("seed_selfhost_usd_per_mtok", "quoted_selfhost_usd_per_mtok")];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
    Openai,
    Other,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextPrice {
    pub threshold_input_tokens: u64,
    pub input_usd_per_mtok: UsdPerMtok,
    pub output_usd_per_mtok: UsdPerMtok,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiModel {
    pub id: String,
    pub provider: Provider,
    pub input_usd_per_mtok: UsdPerMtok,
    pub output_usd_per_mtok: UsdPerMtok,
    /// 5-minute cache writes. Absent means the provider does not charge for cache
    /// writes: they are billed as plain input.
    pub cache_write_usd_per_mtok: Option<UsdPerMtok>,
    /// 1-hour cache writes. Absent means the 5-minute price applies (then input).
    pub cache_write_1h_usd_per_mtok: Option<UsdPerMtok>,
    pub cache_read_usd_per_mtok: Option<UsdPerMtok>,
    /// Fraction taken off for batch requests (0.5 = 50% off).
    #[serde(default)]
    pub batch_discount: f64,
    pub context_window: u64,
    pub long_context: Option<LongContextPrice>,
    pub note: Option<String>,
    pub as_of: String,
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interconnect {
    Nvlink,
    /// AMD Infinity Fabric (xGMI): a GPU-to-GPU fabric like NVLink, scaled with the
    /// NVLink efficiency.
    Xgmi,
    Pcie,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub id: String,
    pub name: String,
    pub memory_gib: f64,
    pub bandwidth_gb_s: f64,
    pub bf16_tflops: f64,
    pub fp8_tflops: Option<f64>,
    pub interconnect: Interconnect,
    pub rental_usd_per_gpu_hour: Money,
    pub purchase_usd: Option<Money>,
    pub power_kw: f64,
    pub note: Option<String>,
    pub as_of: String,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenModel {
    pub id: String,
    pub name: String,
    pub layers: u32,
    pub hidden_size: u32,
    pub attention_heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn_size: u32,
    pub vocab_size: u32,
    pub params_b: f64,
    pub active_params_b: f64,
    pub experts: Option<u32>,
    pub experts_per_token: Option<u32>,
    /// Intermediate size of one routed expert, when it differs from `ffn_size` (the
    /// dense layers' FFN).
    pub moe_ffn_size: Option<u32>,
    /// Experts every token goes through besides the routed ones (DeepSeek, Llama 4).
    pub shared_experts: Option<u32>,
    /// Intermediate size of one shared expert; absent = the routed expert's size.
    pub shared_expert_ffn_size: Option<u32>,
    /// Layers whose FFN is dense in an MoE model (DeepSeek's first three, Llama 4
    /// Maverick's every other layer).
    pub dense_layers: Option<u32>,
    /// MLA: the compressed KV latent per token and layer (DeepSeek `kv_lora_rank`)...
    pub kv_lora_rank: Option<u32>,
    /// ...plus the decoupled RoPE key (`qk_rope_head_dim`), both cached.
    pub qk_rope_head_dim: Option<u32>,
    /// Window (or chunk) of the local-attention layers, in tokens.
    pub sliding_window: Option<u64>,
    /// How many of `layers` attend only within `sliding_window`.
    pub local_layers: Option<u32>,
    /// Input embedding and output head share one matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The precision of the official checkpoint (for gpt-oss, its MoE experts).
    pub weights_native: Option<Precision>,
    pub max_context: u64,
    pub note: Option<String>,
    pub as_of: String,
    pub source: String,
}

impl OpenModel {
    /// The first architecture field that contradicts the others, as (field, value,
    /// what is allowed).
    fn architecture_problem(&self) -> Option<(&'static str, String, &'static str)> {
        let moe = self.experts.is_some();
        for (field, value) in [
            ("moe_ffn_size", self.moe_ffn_size),
            ("shared_experts", self.shared_experts),
            ("shared_expert_ffn_size", self.shared_expert_ffn_size),
            ("dense_layers", self.dense_layers),
        ] {
            if value.is_some() && !moe {
                return Some((
                    field,
                    format!("{value:?}"),
                    "only with `experts` (an MoE model)",
                ));
            }
        }
        if self.dense_layers.unwrap_or(0) >= self.layers && moe {
            return Some((
                "dense_layers",
                format!("{:?}", self.dense_layers),
                "fewer than `layers`",
            ));
        }
        if self.kv_lora_rank.is_some() != self.qk_rope_head_dim.is_some() {
            return Some((
                "qk_rope_head_dim",
                format!("{:?}", self.qk_rope_head_dim),
                "set together with `kv_lora_rank` (MLA)",
            ));
        }
        if self.sliding_window.is_some() != self.local_layers.is_some() {
            return Some((
                "local_layers",
                format!("{:?}", self.local_layers),
                "set together with `sliding_window`",
            ));
        }
        if self.sliding_window == Some(0) {
            return Some(("sliding_window", "0".into(), "a window of >= 1 token"));
        }
        if self.local_layers.unwrap_or(0) > self.layers {
            return Some((
                "local_layers",
                format!("{:?}", self.local_layers),
                "at most `layers`",
            ));
        }
        None
    }

    /// Layers with a routed-expert FFN.
    pub fn moe_layers(&self) -> u32 {
        if self.experts.is_some() {
            self.layers - self.dense_layers.unwrap_or(0).min(self.layers)
        } else {
            0
        }
    }

    /// Parameters of the routed experts, all layers.
    pub fn routed_expert_params(&self) -> f64 {
        let per_expert =
            3.0 * self.hidden_size as f64 * self.moe_ffn_size.unwrap_or(self.ffn_size) as f64;
        self.moe_layers() as f64 * self.experts.unwrap_or(0) as f64 * per_expert
    }

    /// Parameters of the shared experts, all layers.
    pub fn shared_expert_params(&self) -> f64 {
        let size = self
            .shared_expert_ffn_size
            .or(self.moe_ffn_size)
            .unwrap_or(self.ffn_size);
        self.moe_layers() as f64
            * self.shared_experts.unwrap_or(0) as f64
            * 3.0
            * self.hidden_size as f64
            * size as f64
    }

    /// Parameters of the input embedding and output head (one matrix when tied).
    pub fn embedding_params(&self) -> f64 {
        let matrices = if self.tie_word_embeddings { 1.0 } else { 2.0 };
        matrices * self.vocab_size as f64 * self.hidden_size as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Bf16,
    Fp8,
    Int8,
    Int4,
    /// OCP microscaling FP4: MoE expert weights in 32-element blocks sharing one 8-bit
    /// scale; everything else stays bf16 (as gpt-oss ships).
    Mxfp4,
}

impl Precision {
    pub const ALL: [&'static str; 5] = ["bf16", "fp8", "int8", "int4", "mxfp4"];
    pub const EVERY: [Precision; 5] = [
        Precision::Bf16,
        Precision::Fp8,
        Precision::Int8,
        Precision::Int4,
        Precision::Mxfp4,
    ];

    pub fn parse(text: &str) -> Option<Precision> {
        match text.to_ascii_lowercase().as_str() {
            "bf16" | "fp16" => Some(Precision::Bf16),
            "fp8" => Some(Precision::Fp8),
            "int8" => Some(Precision::Int8),
            "int4" | "awq" | "gptq" => Some(Precision::Int4),
            "mxfp4" => Some(Precision::Mxfp4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
            Precision::Mxfp4 => "mxfp4",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    Rented,
    Owned,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub id: String,
    pub model: String,
    pub gpu: String,
    pub gpus: u32,
    pub precision: Precision,
    /// The KV cache in FP8 (1 byte an element) instead of bf16.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kv_fp8: bool,
    /// The tensor-parallel size each replica runs; absent = the one with the most
    /// throughput within the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_parallel: Option<u32>,
    #[serde(default = "default_ownership")]
    pub ownership: Ownership,
    /// Per GPU per month; overrides the GPU's hourly rental when present.
    pub gpu_usd_per_month: Option<Money>,
    pub ops_usd_per_month: Option<Money>,
    /// Ops as a share of one full-time engineer (alternative to `ops_usd_per_month`).
    pub ops_fte: Option<f64>,
    #[serde(default)]
    pub setup_usd: Money,
    #[serde(default = "one")]
    pub setup_amortize_months: u32,
    /// Former ids that still name this deployment (workload files, gateway configs and
    /// scripts written before a rename keep working).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub note: Option<String>,
    pub as_of: String,
    pub source: String,
}

/// Any catalog entry, for `catalog show`.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(untagged)]
pub enum CatalogEntry<'a> {
    ApiModel(&'a ApiModel),
    Gpu(&'a Gpu),
    Model(&'a OpenModel),
    Deployment(&'a Deployment),
}

fn default_ownership() -> Ownership {
    Ownership::Rented
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    assumptions: Option<toml::Table>,
    #[serde(default)]
    api_model: Vec<ApiModel>,
    #[serde(default)]
    gpu: Vec<Gpu>,
    #[serde(default)]
    model: Vec<OpenModel>,
    #[serde(default)]
    deployment: Vec<Deployment>,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    pub assumptions: Assumptions,
    assumptions_table: toml::Table,
    pub api_models: BTreeMap<String, ApiModel>,
    pub gpus: BTreeMap<String, Gpu>,
    pub models: BTreeMap<String, OpenModel>,
    pub deployments: BTreeMap<String, Deployment>,
    /// Former deployment id → current id, from the entries' `aliases`.
    deployment_aliases: BTreeMap<String, String>,
}

impl Catalog {
    /// The embedded default catalog.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        let file = parse_file(DEFAULT_CATALOG_NAME, DEFAULT_CATALOG_TOML)?;
        let mut catalog = Catalog {
            assumptions: placeholder_assumptions(),
            assumptions_table: toml::Table::new(),
            api_models: BTreeMap::new(),
            gpus: BTreeMap::new(),
            models: BTreeMap::new(),
            deployments: BTreeMap::new(),
            deployment_aliases: BTreeMap::new(),
        };
        catalog.merge(DEFAULT_CATALOG_NAME, DEFAULT_CATALOG_TOML, file)?;
        catalog.validate(DEFAULT_CATALOG_NAME)?;
        Ok(catalog)
    }

    /// Adds or replaces entries from a user catalog (same schema) and re-validates.
    pub fn overlay(&mut self, name: &str, text: &str) -> Result<(), CatalogError> {
        let file = parse_file(name, text)?;
        self.merge(name, text, file)?;
        self.validate(name)
    }

    /// Checks a catalog file on its own terms over the embedded one, without keeping it.
    pub fn validate_file(name: &str, text: &str) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::embedded()?;
        catalog.overlay(name, text)?;
        Ok(catalog)
    }

    fn merge(&mut self, name: &str, text: &str, file: CatalogFile) -> Result<(), CatalogError> {
        if let Some(table) = file.assumptions {
            for (key, value) in table {
                let key = ASSUMPTION_ALIASES
                    .iter()
                    .find(|(old, _)| *old == key)
                    .map_or(key, |(_, new)| new.to_string());
                self.assumptions_table.insert(key, value);
            }
            let merged = toml::Value::Table(self.assumptions_table.clone());
            self.assumptions = merged.try_into().map_err(|err: toml::de::Error| {
                let message = err.message().to_string();
                let (line, column) = locate_assumption_key(text, &message);
                CatalogError::Parse {
                    file: name.to_string(),
                    line,
                    column,
                    message: format!("[assumptions]: {message}"),
                }
            })?;
        }
        for entry in file.api_model {
            self.api_models.insert(entry.id.clone(), entry);
        }
        for entry in file.gpu {
            self.gpus.insert(entry.id.clone(), entry);
        }
        for entry in file.model {
            self.models.insert(entry.id.clone(), entry);
        }
        for mut entry in file.deployment {
            // An entry under a former id replaces the entry that id now names.
            if !self.deployments.contains_key(&entry.id) {
                if let Some(current) = self.deployment_aliases.get(&entry.id) {
                    entry.id = current.clone();
                }
            }
            if let Some(replaced) = self.deployments.get(&entry.id) {
                if entry.aliases.is_empty() {
                    entry.aliases = replaced.aliases.clone();
                }
            }
            self.deployments.insert(entry.id.clone(), entry);
        }
        self.deployment_aliases = self
            .deployments
            .values()
            .flat_map(|d| d.aliases.iter().map(|alias| (alias.clone(), d.id.clone())))
            .collect();
        Ok(())
    }

    fn validate(&self, name: &str) -> Result<(), CatalogError> {
        let invalid = |entry: &str, field: &str, value: String, allowed: &str| {
            Err(CatalogError::Invalid {
                file: name.to_string(),
                entry: entry.to_string(),
                field: field.to_string(),
                value,
                allowed: allowed.to_string(),
            })
        };
        let a = &self.assumptions;
        let fractions = [
            ("gpu_memory_utilization", a.gpu_memory_utilization),
            ("memory_bandwidth_efficiency", a.memory_bandwidth_efficiency),
            ("mfu", a.mfu),
            ("mfu_fp8", a.mfu_fp8.unwrap_or(a.mfu)),
            (
                "kv_bandwidth_efficiency",
                a.kv_bandwidth_efficiency
                    .unwrap_or(a.memory_bandwidth_efficiency),
            ),
            ("tp_efficiency_nvlink", a.tp_efficiency_nvlink),
            ("tp_efficiency_pcie", a.tp_efficiency_pcie),
            ("min_utilization", a.min_utilization),
        ];
        for (field, value) in fractions {
            if !(value > 0.0 && value <= 1.0) {
                return invalid(
                    "assumptions",
                    field,
                    value.to_string(),
                    "a number in (0, 1]",
                );
            }
        }
        for (table, values) in [
            ("mfu_by_gpu", &a.mfu_by_gpu),
            ("mfu_fp8_by_gpu", &a.mfu_fp8_by_gpu),
        ] {
            for (gpu, value) in values {
                if !self.gpus.contains_key(gpu) {
                    return Err(CatalogError::UnknownId {
                        kind: "gpu",
                        id: gpu.clone(),
                        close_matches: close_matches(gpu, self.gpus.keys()),
                        context: format!("{name}: [assumptions] {table}"),
                    });
                }
                if !(*value > 0.0 && *value <= 1.0) {
                    return invalid(
                        "assumptions",
                        &format!("{table}.{gpu}"),
                        value.to_string(),
                        "a number in (0, 1]",
                    );
                }
            }
        }
        let positives = [
            ("hours_per_month", a.hours_per_month),
            ("int4_bytes_per_param", a.int4_bytes_per_param),
            ("mxfp4_bytes_per_param", a.mxfp4_bytes_per_param),
            ("slo_tpot_ms", a.slo_tpot_ms),
            ("slo_ttft_ms", a.slo_ttft_ms),
            ("pue", a.pue),
            ("host_power_factor", a.host_power_factor),
        ];
        for (field, value) in positives {
            if !(value.is_finite() && value > 0.0) {
                return invalid(
                    "assumptions",
                    field,
                    value.to_string(),
                    "a finite number > 0",
                );
            }
        }
        if !(a.peak_to_average.is_finite() && a.peak_to_average >= 1.0) {
            return invalid(
                "assumptions",
                "peak_to_average",
                a.peak_to_average.to_string(),
                "a finite number >= 1",
            );
        }
        if a.max_batch_per_replica == 0 {
            return invalid(
                "assumptions",
                "max_batch_per_replica",
                "0".into(),
                "an integer >= 1",
            );
        }
        if a.amortize_months == 0 {
            return invalid(
                "assumptions",
                "amortize_months",
                "0".into(),
                "an integer >= 1",
            );
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(a.step_overhead_ms) {
            return invalid(
                "assumptions",
                "step_overhead_ms",
                a.step_overhead_ms.to_string(),
                "a finite number >= 0",
            );
        }
        if !non_negative(a.usd_per_kwh) || !non_negative(a.runtime_overhead_gib_per_gpu) {
            return invalid(
                "assumptions",
                "usd_per_kwh/runtime_overhead_gib_per_gpu",
                format!("{}/{}", a.usd_per_kwh, a.runtime_overhead_gib_per_gpu),
                "finite numbers >= 0",
            );
        }
        for model in self.api_models.values() {
            if !(0.0..1.0).contains(&model.batch_discount) {
                return invalid(
                    &model.id,
                    "batch_discount",
                    model.batch_discount.to_string(),
                    "a fraction in [0, 1)",
                );
            }
            if model.context_window == 0 {
                return invalid(&model.id, "context_window", "0".into(), "an integer > 0");
            }
            if let (Some(one_hour), Some(five_minutes)) = (
                model.cache_write_1h_usd_per_mtok,
                model.cache_write_usd_per_mtok,
            ) {
                if one_hour < five_minutes {
                    return invalid(
                        &model.id,
                        "cache_write_1h_usd_per_mtok",
                        one_hour.usd_f64().to_string(),
                        &format!(
                            "a price >= cache_write_usd_per_mtok ({}): a 1-hour write costs at least a 5-minute one",
                            five_minutes.usd_f64()
                        ),
                    );
                }
            }
        }
        for gpu in self.gpus.values() {
            for (field, value) in [
                ("memory_gib", gpu.memory_gib),
                ("bandwidth_gb_s", gpu.bandwidth_gb_s),
                ("bf16_tflops", gpu.bf16_tflops),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return invalid(&gpu.id, field, value.to_string(), "a finite number > 0");
                }
            }
            if let Some(fp8) = gpu.fp8_tflops {
                if !(fp8.is_finite() && fp8 > 0.0) {
                    return invalid(
                        &gpu.id,
                        "fp8_tflops",
                        fp8.to_string(),
                        "a finite number > 0",
                    );
                }
            }
        }
        for model in self.models.values() {
            if model.layers == 0 || model.kv_heads == 0 || model.head_dim == 0 {
                return invalid(
                    &model.id,
                    "layers/kv_heads/head_dim",
                    format!("{}/{}/{}", model.layers, model.kv_heads, model.head_dim),
                    "integers > 0",
                );
            }
            if !(model.params_b > 0.0 && model.active_params_b > 0.0)
                || model.active_params_b > model.params_b
            {
                return invalid(
                    &model.id,
                    "active_params_b",
                    format!("{} (params_b {})", model.active_params_b, model.params_b),
                    "0 < active_params_b <= params_b",
                );
            }
            if model.experts.is_some() != model.experts_per_token.is_some() {
                return invalid(
                    &model.id,
                    "experts_per_token",
                    format!("{:?}", model.experts_per_token),
                    "set together with `experts`",
                );
            }
            if let Some(problem) = model.architecture_problem() {
                return invalid(&model.id, problem.0, problem.1, problem.2);
            }
        }
        for deployment in self.deployments.values() {
            if !self.models.contains_key(&deployment.model) {
                return Err(CatalogError::UnknownId {
                    kind: "model",
                    id: deployment.model.clone(),
                    close_matches: close_matches(&deployment.model, self.models.keys()),
                    context: format!("{name}: deployment `{}`", deployment.id),
                });
            }
            if !self.gpus.contains_key(&deployment.gpu) {
                return Err(CatalogError::UnknownId {
                    kind: "GPU",
                    id: deployment.gpu.clone(),
                    close_matches: close_matches(&deployment.gpu, self.gpus.keys()),
                    context: format!("{name}: deployment `{}`", deployment.id),
                });
            }
            if deployment.gpus == 0 {
                return invalid(&deployment.id, "gpus", "0".into(), "an integer >= 1");
            }
            if deployment.setup_amortize_months == 0 {
                return invalid(
                    &deployment.id,
                    "setup_amortize_months",
                    "0".into(),
                    "an integer >= 1",
                );
            }
            if deployment.ops_usd_per_month.is_some() && deployment.ops_fte.is_some() {
                return invalid(
                    &deployment.id,
                    "ops_fte",
                    format!("{:?}", deployment.ops_fte),
                    "either ops_usd_per_month or ops_fte, not both",
                );
            }
            for alias in &deployment.aliases {
                if self.deployments.contains_key(alias) {
                    return invalid(
                        &deployment.id,
                        "aliases",
                        format!("{alias:?}"),
                        "former ids that no deployment uses as its id",
                    );
                }
                if self.deployment_aliases.get(alias) != Some(&deployment.id) {
                    return invalid(
                        &deployment.id,
                        "aliases",
                        format!("{alias:?}"),
                        "an alias that no other deployment also claims",
                    );
                }
            }
            if let Some(fte) = deployment.ops_fte {
                if !(fte.is_finite() && fte >= 0.0) {
                    return invalid(
                        &deployment.id,
                        "ops_fte",
                        fte.to_string(),
                        "a finite number >= 0",
                    );
                }
            }
        }
        Ok(())
    }

    pub fn api_model(&self, id: &str) -> Result<&ApiModel, CatalogError> {
        lookup(&self.api_models, "API model", id)
    }

    pub fn gpu(&self, id: &str) -> Result<&Gpu, CatalogError> {
        lookup(&self.gpus, "GPU", id)
    }

    pub fn model(&self, id: &str) -> Result<&OpenModel, CatalogError> {
        lookup(&self.models, "model", id)
    }

    /// A deployment by its id or by a former id (one of its `aliases`).
    pub fn deployment(&self, id: &str) -> Result<&Deployment, CatalogError> {
        let current = self.deployment_aliases.get(id).map_or(id, String::as_str);
        match self.deployments.get(id).or(self.deployments.get(current)) {
            Some(deployment) => Ok(deployment),
            None => Err(self.unknown_deployment("deployment", id, String::new())),
        }
    }

    /// Any entry by id: API model, GPU, open model or deployment (aliases included).
    pub fn entry(&self, id: &str) -> Result<CatalogEntry<'_>, CatalogError> {
        if let Some(entry) = self.api_models.get(id) {
            return Ok(CatalogEntry::ApiModel(entry));
        }
        if let Some(entry) = self.gpus.get(id) {
            return Ok(CatalogEntry::Gpu(entry));
        }
        if let Some(entry) = self.models.get(id) {
            return Ok(CatalogEntry::Model(entry));
        }
        if let Ok(entry) = self.deployment(id) {
            return Ok(CatalogEntry::Deployment(entry));
        }
        let ids: Vec<&String> = self
            .api_models
            .keys()
            .chain(self.gpus.keys())
            .chain(self.models.keys())
            .chain(self.deployments.keys())
            .chain(self.deployment_aliases.keys())
            .collect();
        Err(CatalogError::UnknownId {
            kind: "catalog id",
            id: id.to_string(),
            close_matches: self.current_ids(close_matches(id, ids.into_iter())),
            context: String::new(),
        })
    }

    fn unknown_deployment(&self, kind: &'static str, id: &str, context: String) -> CatalogError {
        let known = self
            .deployments
            .keys()
            .chain(self.deployment_aliases.keys());
        CatalogError::UnknownId {
            kind,
            id: id.to_string(),
            close_matches: self.current_ids(close_matches(id, known)),
            context,
        }
    }

    /// Suggestions name current ids: a former id becomes the id it now stands for.
    fn current_ids(&self, ids: Vec<String>) -> Vec<String> {
        let mut current: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            let id = self.deployment_aliases.get(&id).cloned().unwrap_or(id);
            if !current.contains(&id) {
                current.push(id);
            }
        }
        current
    }

    /// Monthly ops cost of a deployment: its fixed figure, or FTE × loaded salary.
    pub fn ops_per_month(&self, deployment: &Deployment) -> Money {
        match (deployment.ops_usd_per_month, deployment.ops_fte) {
            (Some(usd), _) => usd,
            (None, Some(fte)) => {
                let milli_fte = (fte * 1000.0).round() as i128;
                self.assumptions
                    .fte_usd_per_month
                    .mul_ratio(milli_fte, 1000)
            }
            (None, None) => Money::ZERO,
        }
    }
}

fn lookup<'a, T>(
    map: &'a BTreeMap<String, T>,
    kind: &'static str,
    id: &str,
) -> Result<&'a T, CatalogError> {
    map.get(id).ok_or_else(|| CatalogError::UnknownId {
        kind,
        id: id.to_string(),
        close_matches: close_matches(id, map.keys()),
        context: String::new(),
    })
}

fn parse_file(name: &str, text: &str) -> Result<CatalogFile, CatalogError> {
    toml::from_str(text).map_err(|err| parse_error(name, text, &err))
}

/// A TOML error as `file:line:col: message`.
pub fn parse_error(name: &str, text: &str, err: &toml::de::Error) -> CatalogError {
    let (line, column) = err
        .span()
        .map(|span| line_col(text, span.start))
        .unwrap_or((1, 1));
    CatalogError::Parse {
        file: name.to_string(),
        line,
        column,
        message: err.message().to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

/// For an "unknown field `x`" error in `[assumptions]`, finds where `x` is written.
fn locate_assumption_key(text: &str, message: &str) -> (usize, usize) {
    let key = message.split('`').nth(1).unwrap_or_default();
    if key.is_empty() {
        return (1, 1);
    }
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with(key) && trimmed[key.len()..].trim_start().starts_with('=') {
            return line_col(text, offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    (1, 1)
}

/// 4 bits per element plus one 8-bit E8M0 scale per 32-element block: 4.25 bits.
fn mxfp4_bytes_per_param() -> f64 {
    (4.0 + 8.0 / 32.0) / 8.0
}

fn placeholder_assumptions() -> Assumptions {
    Assumptions {
        as_of: String::new(),
        source: String::new(),
        hours_per_month: 730.0,
        gpu_memory_utilization: 0.9,
        runtime_overhead_gib_per_gpu: 0.0,
        memory_bandwidth_efficiency: 1.0,
        kv_bandwidth_efficiency: None,
        mfu: 1.0,
        mfu_fp8: None,
        mfu_by_gpu: Default::default(),
        mfu_fp8_by_gpu: Default::default(),
        tp_efficiency_nvlink: 1.0,
        tp_efficiency_pcie: 1.0,
        max_batch_per_replica: 256,
        int4_bytes_per_param: 0.5,
        mxfp4_bytes_per_param: mxfp4_bytes_per_param(),
        step_overhead_ms: 0.0,
        slo_tpot_ms: 50.0,
        slo_ttft_ms: 2000.0,
        peak_to_average: 1.0,
        min_ops_usd_per_month: Money::ZERO,
        fte_usd_per_month: Money::ZERO,
        amortize_months: 36,
        pue: 1.0,
        host_power_factor: 1.0,
        usd_per_kwh: 0.0,
        colocation_usd_per_gpu_month: Money::ZERO,
        min_utilization: 0.6,
        quoted_selfhost_usd_per_mtok: UsdPerMtok::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_has_the_required_ids() {
        let catalog = Catalog::embedded().unwrap();
        for id in [
            "claude-haiku-4.5",
            "claude-sonnet-4.6",
            "claude-opus-4.7",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4o-mini",
        ] {
            catalog.api_model(id).unwrap();
        }
        for id in [
            "llama-3.1-8b",
            "llama-3.3-70b",
            "llama-3.1-405b",
            "mixtral-8x7b",
            "mixtral-8x22b",
            "qwen2.5-72b",
        ] {
            catalog.model(id).unwrap();
        }
        for id in [
            "a100-40gb",
            "a100-80gb",
            "h100-sxm",
            "h100-pcie",
            "h200",
            "l40s",
            "l4",
            "a10g",
        ] {
            catalog.gpu(id).unwrap();
        }
        catalog.deployment("llama-3.3-70b-4xa100").unwrap();
        for entry in catalog.api_models.values() {
            assert!(
                !entry.as_of.is_empty() && !entry.source.is_empty(),
                "{}",
                entry.id
            );
        }
        for entry in catalog.deployments.values() {
            assert!(
                !entry.as_of.is_empty() && !entry.source.is_empty(),
                "{}",
                entry.id
            );
        }
    }

    #[test]
    fn anthropic_prices_match_the_published_ones() {
        // Haiku 1/5, Sonnet 3/15, Opus 5/25 per MTok; 5-minute cache write 1.25x input,
        // 1-hour cache write 2x, read 0.1x (LiteLLM's price file; Anthropic's pricing page).
        let catalog = Catalog::embedded().unwrap();
        for (id, input, output) in [
            ("claude-haiku-4.5", 1.0, 5.0),
            ("claude-sonnet-4.6", 3.0, 15.0),
            ("claude-opus-4.7", 5.0, 25.0),
        ] {
            let model = catalog.api_model(id).unwrap();
            let micro = |usd: f64| (usd * 1e6).round() as i128;
            assert_eq!(model.input_usd_per_mtok.micro_usd(), micro(input));
            assert_eq!(model.output_usd_per_mtok.micro_usd(), micro(output));
            assert_eq!(
                model.cache_write_usd_per_mtok.unwrap().micro_usd(),
                micro(input) * 125 / 100
            );
            assert_eq!(
                model.cache_write_1h_usd_per_mtok.unwrap().micro_usd(),
                micro(input) * 2
            );
            assert_eq!(
                model.cache_read_usd_per_mtok.unwrap().micro_usd(),
                micro(input) / 10
            );
            assert_eq!(model.batch_discount, 0.5);
        }
    }

    #[test]
    fn unknown_field_reports_file_line_col() {
        let mut catalog = Catalog::embedded().unwrap();
        let text = "[[gpu]]\nid = \"x\"\nname = \"X\"\nmemory_gb = 80\n";
        let err = catalog.overlay("mine.toml", text).unwrap_err().to_string();
        assert!(err.starts_with("mine.toml:4:1:"), "{err}");
        assert!(err.contains("memory_gb"), "{err}");
    }

    #[test]
    fn unknown_assumption_reports_its_line() {
        let mut catalog = Catalog::embedded().unwrap();
        let err = catalog
            .overlay(
                "a.toml",
                "[assumptions]\nhours_per_month = 720\nhours_per_mnth = 1\n",
            )
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.toml:3:1:"), "{err}");
    }

    #[test]
    fn overlay_replaces_and_partial_assumptions_merge() {
        let mut catalog = Catalog::embedded().unwrap();
        catalog
            .overlay("o.toml", "[assumptions]\nhours_per_month = 720\n")
            .unwrap();
        assert_eq!(catalog.assumptions.hours_per_month, 720.0);
        // Fields the overlay does not name keep the embedded values.
        assert_eq!(
            catalog.assumptions.mfu,
            Catalog::embedded().unwrap().assumptions.mfu
        );
    }

    #[test]
    fn unknown_id_lists_close_matches() {
        let catalog = Catalog::embedded().unwrap();
        let err = catalog.gpu("h100").unwrap_err().to_string();
        assert!(
            err.contains("h100-sxm") && err.contains("h100-pcie"),
            "{err}"
        );
    }

    #[test]
    fn deployment_with_unknown_gpu_is_rejected() {
        let mut catalog = Catalog::embedded().unwrap();
        let text = r#"[[deployment]]
id = "d"
model = "llama-3.1-8b"
gpu = "a100-80"
gpus = 1
precision = "bf16"
as_of = "x"
source = "y"
"#;
        let err = catalog.overlay("d.toml", text).unwrap_err().to_string();
        assert!(err.contains("a100-80gb"), "{err}");
    }

    #[test]
    fn former_deployment_ids_resolve_to_the_current_entry() {
        let catalog = Catalog::embedded().unwrap();
        for (former, current) in [
            ("seed-llama-3.3-70b-4xa100", "llama-3.3-70b-4xa100"),
            (
                "seed-llama-3.3-70b-low",
                "llama-3.3-70b-4xa100-low-overhead",
            ),
            (
                "seed-llama-3.3-70b-high",
                "llama-3.3-70b-4xa100-high-overhead",
            ),
            ("seed-llama-3.1-8b-low", "llama-3.1-8b-1xa100-low-overhead"),
            (
                "seed-llama-3.1-8b-high",
                "llama-3.1-8b-1xa100-high-overhead",
            ),
            (
                "seed-mixtral-8x22b-low",
                "mixtral-8x22b-fp8-4xh100-low-overhead",
            ),
            (
                "seed-mixtral-8x22b-high",
                "mixtral-8x22b-fp8-4xh100-high-overhead",
            ),
        ] {
            assert_eq!(catalog.deployment(former).unwrap().id, current);
            assert!(matches!(
                catalog.entry(former).unwrap(),
                CatalogEntry::Deployment(d) if d.id == current
            ));
        }
        // A near miss of a former id suggests the current id, once.
        let err = catalog.deployment("seed-llama-3.3-70b-4xa10").unwrap_err();
        let CatalogError::UnknownId { close_matches, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(close_matches[0], "llama-3.3-70b-4xa100");
        assert!(
            close_matches.iter().all(|id| !id.starts_with("seed-")),
            "{err}"
        );
    }

    #[test]
    fn an_overlay_under_a_former_id_replaces_the_current_entry() {
        let mut catalog = Catalog::embedded().unwrap();
        let text = r#"[[deployment]]
id = "seed-llama-3.3-70b-4xa100"
model = "llama-3.3-70b"
gpu = "a100-80gb"
gpus = 4
precision = "bf16"
ops_usd_per_month = 1
as_of = "x"
source = "y"
"#;
        catalog.overlay("old.toml", text).unwrap();
        let entry = catalog.deployment("llama-3.3-70b-4xa100").unwrap();
        assert_eq!(entry.ops_usd_per_month, Some(Money::from_whole_usd(1)));
        assert_eq!(entry.aliases, ["seed-llama-3.3-70b-4xa100"]);
        assert!(!catalog
            .deployments
            .contains_key("seed-llama-3.3-70b-4xa100"));
    }

    #[test]
    fn an_alias_that_is_also_an_id_is_rejected() {
        let mut catalog = Catalog::embedded().unwrap();
        let text = r#"[[deployment]]
id = "mine"
aliases = ["llama-3.3-70b-fp8-2xh100"]
model = "llama-3.3-70b"
gpu = "a100-80gb"
gpus = 4
precision = "bf16"
as_of = "x"
source = "y"
"#;
        let err = catalog.overlay("a.toml", text).unwrap_err().to_string();
        assert!(err.contains("aliases"), "{err}");
    }

    #[test]
    fn the_former_name_of_the_quoted_price_is_still_accepted() {
        let mut catalog = Catalog::embedded().unwrap();
        catalog
            .overlay(
                "q.toml",
                "[assumptions]\nseed_selfhost_usd_per_mtok = 0.2\n",
            )
            .unwrap();
        assert_eq!(
            catalog.assumptions.quoted_selfhost_usd_per_mtok,
            UsdPerMtok::from_usd_f64(0.2)
        );
    }

    #[test]
    fn a_one_hour_write_price_below_the_five_minute_one_is_rejected() {
        let mut catalog = Catalog::embedded().unwrap();
        let text = r#"[[api_model]]
id = "m"
provider = "anthropic"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 5.0
cache_write_usd_per_mtok = 2.0
cache_write_1h_usd_per_mtok = 1.25
context_window = 1000
as_of = "x"
source = "y"
"#;
        let err = catalog.overlay("m.toml", text).unwrap_err().to_string();
        assert!(err.contains("cache_write_1h_usd_per_mtok"), "{err}");
    }

    #[test]
    fn an_unknown_catalog_id_lists_close_matches() {
        let catalog = Catalog::embedded().unwrap();
        let err = catalog.entry("claude-haiku").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown catalog id `claude-haiku`"),
            "{err}"
        );
        assert!(err.contains("did you mean `claude-haiku-4.5`"), "{err}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
