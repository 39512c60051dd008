//! The deployment calculator: memory, tensor parallelism, decode and prefill
//! throughput, and capacity, from a roofline model.
//!
//! - Weights = params × bytes per parameter. KV per token = 2 × layers × kv_heads ×
//!   head_dim × bytes.
//! - One engine step serves `B` running sequences: it decodes one token for each and,
//!   with chunked prefill, also prefills `B × input ÷ output` prompt tokens, the rate
//!   that keeps the batch full in steady state. Its time is the larger of
//!   *memory time* (weights, or the MoE experts the batch touches, plus the batch's KV
//!   cache, over aggregate bandwidth × efficiency) and *compute time*
//!   (2 × active params FLOPs per token over TFLOPS × MFU).
//! - That step time is the time per output token a user sees. The best batch is the
//!   largest one that fits the KV budget, the engine's batch cap and the SLO.
//!
//! Attention FLOPs (≈2–4% at these context lengths) and scheduling gaps are left out;
//! the efficiency factors absorb them (see docs/sizing-calibration.md).

use serde::Serialize;

use crate::catalog::{Assumptions, Gpu, Interconnect, OpenModel, Precision};
use crate::error::InputError;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Tensor-parallel sizes tried, smallest first.
const TP_SIZES: [u32; 5] = [1, 2, 4, 8, 16];

#[derive(Clone, Debug)]
pub struct SizingInput<'a> {
    pub model: &'a OpenModel,
    pub gpu: &'a Gpu,
    /// GPUs available; replicas = gpus ÷ tensor-parallel size.
    pub gpus: u32,
    /// Run this tensor-parallel size rather than the best one that fits.
    pub tensor_parallel: Option<u32>,
    pub precision: Precision,
    /// KV-cache bytes per element (2 for bf16, 1 for an fp8 cache).
    pub kv_bytes_per_element: f64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub p99_prompt_tokens: f64,
    pub slo_tpot_ms: f64,
    pub slo_ttft_ms: f64,
    pub assumptions: &'a Assumptions,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sizing {
    pub model: String,
    pub gpu: String,
    pub gpus: u32,
    pub precision: Precision,
    pub weights_gib: f64,
    /// Mean KV bytes per token over a sequence of the workload's mean length.
    pub kv_bytes_per_token: u64,
    /// KV-cache memory per replica after weights and runtime overhead.
    pub kv_budget_gib: f64,
    pub kv_budget_tokens: u64,
    /// Copies of each KV byte across the replica's GPUs (1 when KV heads shard).
    pub kv_copies: f64,
    pub tensor_parallel: u32,
    /// The narrowest tensor-parallel size that fits.
    pub min_tensor_parallel: u32,
    pub replicas: u32,
    /// Sequences of the workload's shape whose KV cache fits at once, per replica.
    pub max_concurrency: u32,
    /// The batch that maximises throughput within the SLO, per replica.
    pub best_batch: u32,
    pub limited_by: &'static str,
    pub meets_slo: bool,
    /// Time per output token at the best batch.
    pub tpot_ms: f64,
    pub single_stream_tokens_per_s: f64,
    /// Aggregate output tokens/s of one replica at the best batch, prefill included.
    pub output_tokens_per_s: f64,
    /// Prompt tokens/s of one replica doing only prefill.
    pub prefill_tokens_per_s: f64,
    /// Prefill time of a p99 prompt on an idle replica.
    pub ttft_ms: f64,
    pub meets_ttft_slo: bool,
    pub requests_per_s_per_replica: f64,
    /// Calls per month of one replica at 100% utilisation.
    pub max_calls_per_month_per_replica: f64,
    /// Calls per month of all replicas on `gpus` GPUs at 100% utilisation.
    pub max_calls_per_month: f64,
    pub bandwidth_efficiency: f64,
    pub kv_bandwidth_efficiency: f64,
    /// The MFU that applied (this GPU's, or FP8's, or the default).
    pub mfu: f64,
    pub tp_efficiency: f64,
    pub step_overhead_ms: f64,
}

impl Sizing {
    /// The same sizing with the capacity one replica was measured to carry (`costfloor
    /// bench`): requests/s and output tokens/s at the SLO, and the requests in flight
    /// there, replace the modelled ones.
    pub fn with_measured(
        mut self,
        capacity: &crate::measured::Capacity,
        in_flight: f64,
        hours_per_month: f64,
    ) -> Sizing {
        let seconds_per_month = hours_per_month * 3600.0;
        self.requests_per_s_per_replica = capacity.requests_per_s;
        self.output_tokens_per_s = capacity.output_tokens_per_s;
        self.max_calls_per_month_per_replica = capacity.requests_per_s * seconds_per_month;
        self.max_calls_per_month = self.max_calls_per_month_per_replica * self.replicas as f64;
        self.best_batch = (in_flight.round() as u32).max(1);
        self.meets_slo = true;
        self.limited_by = "measured (costfloor bench)";
        self
    }
}

impl SizingInput<'_> {
    fn validate(&self) -> Result<(), InputError> {
        for (field, value) in [
            ("--input-tokens", self.input_tokens),
            ("--output-tokens", self.output_tokens),
            ("p99_prompt_tokens", self.p99_prompt_tokens),
            ("slo.tpot_ms", self.slo_tpot_ms),
            ("slo.ttft_ms", self.slo_ttft_ms),
            ("kv_bytes_per_element", self.kv_bytes_per_element),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(InputError::invalid(field, value, "a finite number > 0"));
            }
        }
        if self.gpus == 0 {
            return Err(InputError::invalid("--gpus", 0, "an integer >= 1"));
        }
        if let Some(tp) = self.tensor_parallel {
            if !TP_SIZES.contains(&tp) || tp > self.gpus || !self.gpus.is_multiple_of(tp) {
                return Err(InputError::invalid(
                    "--tensor-parallel",
                    tp,
                    &format!("1, 2, 4, 8 or 16, dividing --gpus ({})", self.gpus),
                ));
            }
            if !self.model.attention_heads.is_multiple_of(tp) {
                return Err(InputError::invalid(
                    "--tensor-parallel",
                    tp,
                    &format!(
                        "a divisor of {}'s {} attention heads",
                        self.model.id, self.model.attention_heads
                    ),
                ));
            }
        }
        let context = self.p99_prompt_tokens + self.output_tokens;
        if context > self.model.max_context as f64 {
            return Err(InputError::invalid(
                "p99_prompt_tokens + output_tokens",
                context,
                &format!(
                    "at most {}'s max context of {} tokens",
                    self.model.id, self.model.max_context
                ),
            ));
        }
        if self.precision == Precision::Mxfp4 && self.model.experts.is_none() {
            return Err(InputError::invalid(
                "--precision",
                "mxfp4",
                &format!(
                    "bf16, fp8, int8 or int4 for {}: MXFP4 quantises MoE experts, and {} is dense",
                    self.model.id, self.model.id
                ),
            ));
        }
        Ok(())
    }

    /// Bytes per quantised weight: bf16 2, fp8 and int8 1, and the 4-bit formats with
    /// their scales (and zeros) included.
    pub fn bytes_per_param(&self) -> f64 {
        match self.precision {
            Precision::Bf16 => 2.0,
            Precision::Fp8 | Precision::Int8 => 1.0,
            Precision::Int4 => self.assumptions.int4_bytes_per_param,
            Precision::Mxfp4 => self.assumptions.mxfp4_bytes_per_param,
        }
    }

    /// Weight bytes as (routed experts, everything else). The embedding and output
    /// head stay bf16 at every precision, as FP8, AWQ, GPTQ and MXFP4 checkpoints keep
    /// them; MXFP4 quantises only the routed experts and leaves attention, router and
    /// shared layers in bf16, as gpt-oss ships.
    fn weight_parts(&self) -> (f64, f64) {
        let model = self.model;
        let total = model.params_b * 1e9;
        let routed = model.routed_expert_params().min(total);
        let embedding = model.embedding_params().min(total - routed);
        let linear = total - routed - embedding;
        let bytes = self.bytes_per_param();
        match self.precision {
            Precision::Bf16 => (routed * 2.0, (total - routed) * 2.0),
            Precision::Mxfp4 => (routed * bytes, (total - routed) * 2.0),
            Precision::Fp8 | Precision::Int8 | Precision::Int4 => {
                (routed * bytes, linear * bytes + embedding * 2.0)
            }
        }
    }

    pub fn weights_bytes(&self) -> f64 {
        let (routed, rest) = self.weight_parts();
        routed + rest
    }

    /// KV-cache bytes one token adds to one layer: the MLA latent plus its RoPE key
    /// (one copy for all heads), else K and V for every KV head.
    fn kv_bytes_per_token_layer(&self) -> f64 {
        let model = self.model;
        match (model.kv_lora_rank, model.qk_rope_head_dim) {
            (Some(rank), Some(rope)) => (rank + rope) as f64 * self.kv_bytes_per_element,
            _ => 2.0 * model.kv_heads as f64 * model.head_dim as f64 * self.kv_bytes_per_element,
        }
    }

    /// KV-cache bytes per token while a sequence is shorter than any window: every
    /// layer caches every token.
    pub fn kv_bytes_per_token(&self) -> f64 {
        self.model.layers as f64 * self.kv_bytes_per_token_layer()
    }

    /// KV-cache bytes of one sequence of `tokens` tokens. Local-attention layers keep
    /// only the last `sliding_window` tokens, so past the window only the global layers
    /// grow.
    pub fn kv_bytes_for_sequence(&self, tokens: f64) -> f64 {
        let model = self.model;
        let local = model.local_layers.unwrap_or(0).min(model.layers) as f64;
        let global = model.layers as f64 - local;
        let windowed = model
            .sliding_window
            .map_or(tokens, |window| tokens.min(window as f64));
        self.kv_bytes_per_token_layer() * (global * tokens + local * windowed)
    }

    /// Mean KV-cache bytes per token of a `tokens`-token sequence.
    pub fn kv_bytes_per_token_at(&self, tokens: f64) -> f64 {
        self.kv_bytes_for_sequence(tokens) / tokens
    }

    /// Copies of each KV byte across a replica's GPUs. KV heads shard across tensor
    /// ranks, but a rank holds at least one head, so heads are replicated when TP
    /// exceeds them; vLLM replicates the MLA latent on every rank.
    pub fn kv_copies(&self, tensor_parallel: u32) -> f64 {
        if self.model.kv_lora_rank.is_some() {
            tensor_parallel as f64
        } else if self.model.kv_heads >= tensor_parallel {
            1.0
        } else {
            tensor_parallel as f64 / self.model.kv_heads as f64
        }
    }

    /// The MFU that applies: this GPU's where measured, for FP8 on FP8 tensor cores
    /// `mfu_fp8`, else `mfu`.
    pub fn mfu(&self) -> f64 {
        let a = self.assumptions;
        let id = &self.gpu.id;
        let mfu = a.mfu_by_gpu.get(id).copied().unwrap_or(a.mfu);
        match (self.precision, self.gpu.fp8_tflops) {
            (Precision::Fp8, Some(_)) => a
                .mfu_fp8_by_gpu
                .get(id)
                .copied()
                .or(a.mfu_fp8)
                .unwrap_or(mfu),
            _ => mfu,
        }
    }

    /// Achieved FLOP/s of one GPU: the FP8 peak on FP8 tensor cores, else the bf16 peak
    /// (weight-only int8/int4/MXFP4 and FP8 on older GPUs compute in bf16), × MFU.
    fn achieved_flops(&self) -> f64 {
        let peak = match (self.precision, self.gpu.fp8_tflops) {
            (Precision::Fp8, Some(fp8)) => fp8,
            _ => self.gpu.bf16_tflops,
        };
        peak * 1e12 * self.mfu()
    }

    /// Attention FLOPs of one token attending `context` earlier tokens: QKᵀ and AV, 2
    /// FLOPs per multiply-add each, over every query head; local layers attend at most
    /// their window.
    fn attention_flops_per_token(&self, context: f64) -> f64 {
        let model = self.model;
        let local = model.local_layers.unwrap_or(0).min(model.layers) as f64;
        let global = model.layers as f64 - local;
        let windowed = model
            .sliding_window
            .map_or(context, |window| context.min(window as f64));
        4.0 * model.attention_heads as f64
            * model.head_dim as f64
            * (global * context + local * windowed)
    }

    /// The share of linear scaling a replica of `tensor_parallel` GPUs keeps: the
    /// interconnect's efficiency per doubling, so TP 2 keeps e, TP 4 e², TP 8 e³ (each
    /// doubling adds all-reduce steps and halves the work between them).
    fn tp_efficiency(&self, tensor_parallel: u32) -> f64 {
        let per_doubling = match self.gpu.interconnect {
            Interconnect::Nvlink | Interconnect::Xgmi => self.assumptions.tp_efficiency_nvlink,
            Interconnect::Pcie => self.assumptions.tp_efficiency_pcie,
        };
        per_doubling.powf((tensor_parallel.max(1) as f64).log2())
    }

    fn usable_bytes_per_gpu(&self) -> f64 {
        self.gpu.memory_gib * GIB * self.assumptions.gpu_memory_utilization
            - self.assumptions.runtime_overhead_gib_per_gpu * GIB
    }

    /// Bytes of weights a decode step reads at batch `batch`. Dense models read all
    /// weights; MoE models read the shared weights plus the routed experts the batch
    /// touches, E × (1 − (1 − k/E)^B) per layer for B tokens routed independently.
    fn weight_bytes_read(&self, batch: f64) -> f64 {
        let (routed, rest) = self.weight_parts();
        match (self.model.experts, self.model.experts_per_token) {
            (Some(experts), Some(top_k)) if experts > 0 => {
                let experts = experts as f64;
                let touched = experts * (1.0 - (1.0 - top_k as f64 / experts).powf(batch));
                rest + routed * touched / experts
            }
            _ => rest + routed,
        }
    }
}

/// Roofline figures for one replica of `tensor_parallel` GPUs.
struct Replica<'a> {
    input: &'a SizingInput<'a>,
    bandwidth_bytes_per_s: f64,
    flops_per_s: f64,
    /// KV bytes one sequence of the mean shape holds at its end, all copies.
    kv_per_sequence_bytes: f64,
    /// KV bytes a decode step reads per running sequence (at its mean length), all
    /// copies.
    kv_read_per_sequence_bytes: f64,
}

impl<'a> Replica<'a> {
    fn new(input: &'a SizingInput<'a>, tensor_parallel: u32) -> Replica<'a> {
        let assumptions = input.assumptions;
        let tp_efficiency = input.tp_efficiency(tensor_parallel);
        let copies = input.kv_copies(tensor_parallel);
        let mean_sequence = input.input_tokens + input.output_tokens;
        Replica {
            input,
            bandwidth_bytes_per_s: tensor_parallel as f64
                * input.gpu.bandwidth_gb_s
                * 1e9
                * assumptions.memory_bandwidth_efficiency
                * tp_efficiency,
            flops_per_s: tensor_parallel as f64 * input.achieved_flops() * tp_efficiency,
            kv_per_sequence_bytes: input.kv_bytes_for_sequence(mean_sequence) * copies,
            // Attention reads scattered KV blocks at its own efficiency: counted as the
            // bytes a weight read would take the same time for.
            kv_read_per_sequence_bytes: input
                .kv_bytes_for_sequence(input.input_tokens + input.output_tokens / 2.0)
                * copies
                * assumptions.memory_bandwidth_efficiency
                / assumptions
                    .kv_bandwidth_efficiency
                    .unwrap_or(assumptions.memory_bandwidth_efficiency),
        }
    }
}

/// Output tokens/s of one replica of `tensor_parallel` GPUs with `batch` sequences
/// running (a measured load level, for calibration).
pub fn output_tokens_per_s_at(input: &SizingInput<'_>, tensor_parallel: u32, batch: f64) -> f64 {
    let batch = batch.max(1.0);
    batch / Replica::new(input, tensor_parallel).step(batch).0
}

impl Replica<'_> {
    /// Step time in seconds at batch `batch`, and whether memory or compute bounds it.
    fn step(&self, batch: f64) -> (f64, &'static str) {
        let input = self.input;
        let memory_bytes = input.weight_bytes_read(batch) + batch * self.kv_read_per_sequence_bytes;
        let memory_s = memory_bytes / self.bandwidth_bytes_per_s;
        // Each running sequence decodes one token at its mean context and prefills
        // input ÷ output prompt tokens, which attend half the prompt on average.
        let linear = 2.0 * input.model.active_params_b * 1e9;
        let prefill_tokens = input.input_tokens / input.output_tokens;
        let decode_flops = linear
            + input.attention_flops_per_token(input.input_tokens + input.output_tokens / 2.0);
        let prefill_flops =
            prefill_tokens * (linear + input.attention_flops_per_token(input.input_tokens / 2.0));
        let compute_s = batch * (decode_flops + prefill_flops) / self.flops_per_s;
        let overhead_s = input.assumptions.step_overhead_ms / 1000.0;
        if compute_s > memory_s {
            (compute_s + overhead_s, "compute")
        } else {
            (memory_s + overhead_s, "memory bandwidth")
        }
    }
}

/// Sizes one deployment of `input.gpus` GPUs for the workload's shape.
///
/// Every tensor-parallel size that fits (weights plus the KV cache of one p99-length
/// sequence) is evaluated; the deployment runs `gpus ÷ TP` replicas of the one that
/// gives the most output tokens/s within the SLO (ties go to the narrower TP).
/// `min_tensor_parallel` is the narrowest that fits.
pub fn size(input: &SizingInput<'_>) -> Result<Sizing, InputError> {
    input.validate()?;
    let weights = input.weights_bytes();
    let p99_sequence = input.p99_prompt_tokens + input.output_tokens;
    let p99_kv = input.kv_bytes_for_sequence(p99_sequence);
    let mut best: Option<Sizing> = None;
    let mut min_tensor_parallel = None;
    let mut last_shortfall = None;
    for tensor_parallel in TP_SIZES {
        if tensor_parallel > input.gpus {
            break;
        }
        if input
            .tensor_parallel
            .is_some_and(|forced| forced != tensor_parallel)
        {
            continue;
        }
        if !input.model.attention_heads.is_multiple_of(tensor_parallel) {
            continue;
        }
        let usable = input.usable_bytes_per_gpu() * tensor_parallel as f64;
        if usable - weights < p99_kv * input.kv_copies(tensor_parallel) {
            last_shortfall = Some(usable);
            continue;
        }
        min_tensor_parallel.get_or_insert(tensor_parallel);
        let candidate = evaluate(input, tensor_parallel);
        let better = match &best {
            None => true,
            Some(current) => match (candidate.meets_slo, current.meets_slo) {
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    candidate.output_tokens_per_s * candidate.replicas as f64
                        > current.output_tokens_per_s * current.replicas as f64 * 1.0001
                }
                (false, false) => candidate.tpot_ms < current.tpot_ms,
            },
        };
        if better {
            best = Some(candidate);
        }
    }
    if let Some(mut sizing) = best {
        sizing.min_tensor_parallel = min_tensor_parallel.unwrap_or(sizing.tensor_parallel);
        return Ok(sizing);
    }
    let usable = last_shortfall.unwrap_or(input.usable_bytes_per_gpu() * input.gpus as f64);
    let kv = p99_kv;
    let needed = weights + kv;
    Err(InputError::DoesNotFit {
        model: input.model.id.clone(),
        precision: input.precision.as_str().to_string(),
        gpu: input.gpu.id.clone(),
        gpus: input.gpus,
        weights_gib: weights / GIB,
        kv_gib: kv / GIB,
        context_tokens: p99_sequence as u64,
        usable_gib: usable / GIB,
        needed_gib: needed / GIB,
        shortfall_gib: (needed - usable) / GIB,
    })
}

/// One replica of `tensor_parallel` GPUs, which must fit.
fn evaluate(input: &SizingInput<'_>, tensor_parallel: u32) -> Sizing {
    let assumptions = input.assumptions;
    let weights = input.weights_bytes();
    let slo_s = input.slo_tpot_ms / 1000.0;
    let mean_sequence = input.input_tokens + input.output_tokens;
    let kv_per_token = input.kv_bytes_per_token_at(mean_sequence);
    let copies = input.kv_copies(tensor_parallel);
    let kv_budget = input.usable_bytes_per_gpu() * tensor_parallel as f64 - weights;
    let tp_efficiency = input.tp_efficiency(tensor_parallel);
    let replica = Replica::new(input, tensor_parallel);
    let max_concurrency = ((kv_budget / replica.kv_per_sequence_bytes).floor() as u32).max(1);
    let batch_cap = max_concurrency.min(assumptions.max_batch_per_replica);
    let (single_step, _) = replica.step(1.0);
    let meets_slo = single_step <= slo_s;
    // Step time grows with the batch: the best batch is the largest within the SLO.
    let best_batch = if meets_slo {
        let (mut low, mut high) = (1u32, batch_cap);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            if replica.step(mid as f64).0 <= slo_s {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    } else {
        1
    };
    let (step_s, bound) = replica.step(best_batch as f64);
    let limited_by = if !meets_slo {
        "latency SLO (not met even at batch 1)"
    } else if best_batch == batch_cap && replica.step((best_batch + 1) as f64).0 <= slo_s {
        if batch_cap < max_concurrency {
            "engine batch cap (max_batch_per_replica)"
        } else {
            "KV-cache memory"
        }
    } else if bound == "compute" {
        "latency SLO (compute bound)"
    } else {
        "latency SLO (memory-bandwidth bound)"
    };
    let output_tokens_per_s = best_batch as f64 / step_s;
    let requests_per_s = output_tokens_per_s / input.output_tokens;
    let seconds_per_month = assumptions.hours_per_month * 3600.0;
    let replicas = input.gpus / tensor_parallel;
    let prefill_tokens_per_s = replica.flops_per_s
        / (2.0 * input.model.active_params_b * 1e9
            + input.attention_flops_per_token(input.input_tokens / 2.0));
    let ttft_ms = input.p99_prompt_tokens / prefill_tokens_per_s * 1000.0;
    Sizing {
        model: input.model.id.clone(),
        gpu: input.gpu.id.clone(),
        gpus: input.gpus,
        precision: input.precision,
        weights_gib: weights / GIB,
        kv_bytes_per_token: kv_per_token.round() as u64,
        kv_budget_gib: kv_budget / GIB,
        kv_budget_tokens: (kv_budget / (kv_per_token * copies)).floor() as u64,
        kv_copies: copies,
        tensor_parallel,
        min_tensor_parallel: tensor_parallel,
        replicas,
        max_concurrency,
        best_batch,
        limited_by,
        meets_slo,
        tpot_ms: step_s * 1000.0,
        single_stream_tokens_per_s: 1.0 / single_step,
        output_tokens_per_s,
        prefill_tokens_per_s,
        ttft_ms,
        meets_ttft_slo: ttft_ms <= input.slo_ttft_ms,
        requests_per_s_per_replica: requests_per_s,
        max_calls_per_month_per_replica: requests_per_s * seconds_per_month,
        max_calls_per_month: requests_per_s * seconds_per_month * replicas as f64,
        bandwidth_efficiency: assumptions.memory_bandwidth_efficiency,
        kv_bandwidth_efficiency: assumptions
            .kv_bandwidth_efficiency
            .unwrap_or(assumptions.memory_bandwidth_efficiency),
        mfu: input.mfu(),
        tp_efficiency,
        step_overhead_ms: assumptions.step_overhead_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn input<'a>(
        catalog: &'a Catalog,
        model: &str,
        gpu: &str,
        gpus: u32,
        precision: Precision,
    ) -> SizingInput<'a> {
        SizingInput {
            model: catalog.model(model).unwrap(),
            gpu: catalog.gpu(gpu).unwrap(),
            gpus,
            tensor_parallel: None,
            precision,
            kv_bytes_per_element: 2.0,
            input_tokens: 1000.0,
            output_tokens: 200.0,
            p99_prompt_tokens: 1000.0,
            slo_tpot_ms: 50.0,
            slo_ttft_ms: 2000.0,
            assumptions: &catalog.assumptions,
        }
    }

    #[test]
    fn weights_and_kv_match_hand_calculations() {
        let catalog = Catalog::embedded().unwrap();
        let llama70 = input(&catalog, "llama-3.3-70b", "a100-80gb", 4, Precision::Bf16);
        // 70.55B params × 2 bytes = 141.1 GB.
        assert!((llama70.weights_bytes() / 1e9 - 141.1).abs() < 0.01);
        // 2 × 80 layers × 8 KV heads × 128 × 2 bytes = 327,680 B = 320 KiB.
        assert_eq!(llama70.kv_bytes_per_token(), 320.0 * 1024.0);
        let llama8 = input(&catalog, "llama-3.1-8b", "h100-sxm", 1, Precision::Bf16);
        // 2 × 32 × 8 × 128 × 2 = 131,072 B = 128 KiB.
        assert_eq!(llama8.kv_bytes_per_token(), 128.0 * 1024.0);
        // FP8 quantises the linear layers; the untied embedding and output head stay
        // bf16: 2 × 128,256 × 8,192 = 2.101B params, so (70.55 − 2.101) × 1 + 2.101 × 2
        // = 72.65 GB.
        let fp8 = input(&catalog, "llama-3.3-70b", "h100-sxm", 2, Precision::Fp8);
        assert!(
            (fp8.weights_bytes() / 1e9 - 72.651).abs() < 0.01,
            "{}",
            fp8.weights_bytes() / 1e9
        );
    }

    #[test]
    fn seventy_b_bf16_needs_four_a100s() {
        let catalog = Catalog::embedded().unwrap();
        let sizing = size(&input(
            &catalog,
            "llama-3.3-70b",
            "a100-80gb",
            4,
            Precision::Bf16,
        ))
        .unwrap();
        // 131.4 GiB of weights do not fit 2 × (80 × 0.9 − 2) = 140 GiB with useful KV
        // headroom at the SLO, so the minimum is TP 4.
        assert_eq!(sizing.tensor_parallel, 4);
        assert_eq!(sizing.replicas, 1);
        assert!(sizing.meets_slo);
        // Compute roof: 4 × 312 TFLOPS × the A100's MFU × TP efficiency (per doubling,
        // squared for TP 4) ÷ (2 × 70.55 GFLOP × 1,200 tokens per call) = 4 × 312e12 ×
        // 0.71 × 0.86² / 1.693e14 = 3.87 calls/s at most (attention FLOPs come on top).
        let a = &catalog.assumptions;
        let compute_roof =
            4.0 * 312e12 * a.mfu_by_gpu["a100-80gb"] * a.tp_efficiency_nvlink.powi(2)
                / (2.0 * 70.55e9 * 1200.0);
        assert!(sizing.requests_per_s_per_replica <= compute_roof * 1.0001);
        assert!(sizing.requests_per_s_per_replica > compute_roof * 0.5);
    }

    #[test]
    fn eight_b_fits_one_gpu_and_is_faster_than_seventy_b() {
        let catalog = Catalog::embedded().unwrap();
        let small = size(&input(
            &catalog,
            "llama-3.1-8b",
            "h100-sxm",
            1,
            Precision::Bf16,
        ))
        .unwrap();
        let large = size(&input(
            &catalog,
            "llama-3.3-70b",
            "h100-sxm",
            4,
            Precision::Bf16,
        ))
        .unwrap();
        assert_eq!(small.tensor_parallel, 1);
        assert!(small.output_tokens_per_s > large.output_tokens_per_s);
        // Single-stream decode of 8B on H100: 16.06 GB ÷ (3,350 GB/s × 0.75) ≈ 6.4 ms,
        // about 156 tokens/s before KV reads.
        assert!(
            small.single_stream_tokens_per_s > 100.0 && small.single_stream_tokens_per_s < 160.0
        );
    }

    #[test]
    fn moe_reads_fewer_weights_at_batch_one() {
        let catalog = Catalog::embedded().unwrap();
        let mixtral = input(&catalog, "mixtral-8x7b", "h100-sxm", 1, Precision::Bf16);
        let one = mixtral.weight_bytes_read(1.0);
        let many = mixtral.weight_bytes_read(256.0);
        // Batch 1 touches 2 of 8 experts: about 12.9B of 46.7B params.
        assert!((one / 2.0 / 1e9 - 12.9).abs() < 1.0, "{}", one / 2e9);
        assert!((many - mixtral.weights_bytes()).abs() / mixtral.weights_bytes() < 0.01);
    }

    #[test]
    fn more_gpus_run_the_widest_useful_replicas() {
        let catalog = Catalog::embedded().unwrap();
        // 70B FP8 (65.7 GiB) fits one H100 with little KV room; on 4 GPUs, TP 2 × 2
        // replicas or TP 4 carry more than four cramped TP 1 replicas.
        let sizing = size(&input(
            &catalog,
            "llama-3.3-70b",
            "h100-sxm",
            4,
            Precision::Fp8,
        ))
        .unwrap();
        assert_eq!(sizing.min_tensor_parallel, 1);
        assert!(sizing.tensor_parallel >= 2, "TP {}", sizing.tensor_parallel);
        let narrow = evaluate(
            &input(&catalog, "llama-3.3-70b", "h100-sxm", 4, Precision::Fp8),
            1,
        );
        assert!(
            sizing.output_tokens_per_s * sizing.replicas as f64
                > narrow.output_tokens_per_s * narrow.replicas as f64
        );
    }

    #[test]
    fn the_engine_batch_cap_bounds_short_sequences() {
        let catalog = Catalog::embedded().unwrap();
        // 8B on H100 at 200 in / 200 out with a loose SLO: memory would hold ~1,100
        // sequences, but engines batch at most max_batch_per_replica (256).
        let mut short = input(&catalog, "llama-3.1-8b", "h100-sxm", 1, Precision::Bf16);
        short.input_tokens = 200.0;
        short.p99_prompt_tokens = 200.0;
        short.slo_tpot_ms = 10_000.0;
        let sizing = size(&short).unwrap();
        assert!(sizing.max_concurrency > 1_000, "{}", sizing.max_concurrency);
        assert_eq!(sizing.best_batch, catalog.assumptions.max_batch_per_replica);
        assert_eq!(
            sizing.limited_by,
            "engine batch cap (max_batch_per_replica)"
        );
    }

    #[test]
    fn too_big_model_reports_the_shortfall() {
        let catalog = Catalog::embedded().unwrap();
        let err = size(&input(
            &catalog,
            "llama-3.1-405b",
            "a100-80gb",
            4,
            Precision::Bf16,
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("does not fit") && text.contains("short by"),
            "{text}"
        );
        match err {
            InputError::DoesNotFit { shortfall_gib, .. } => assert!(shortfall_gib > 400.0),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bigger_batch_within_slo_never_lowers_throughput() {
        let catalog = Catalog::embedded().unwrap();
        let mut strict = input(&catalog, "llama-3.1-8b", "a100-80gb", 1, Precision::Bf16);
        strict.slo_tpot_ms = 20.0;
        let mut loose = strict.clone();
        loose.slo_tpot_ms = 100.0;
        let strict = size(&strict).unwrap();
        let loose = size(&loose).unwrap();
        assert!(loose.best_batch >= strict.best_batch);
        // Once compute bound, throughput is flat in the batch: equal up to rounding.
        assert!(loose.output_tokens_per_s >= strict.output_tokens_per_s * (1.0 - 1e-12));
        assert!(strict.tpot_ms <= 20.0 && loose.tpot_ms <= 100.0);
    }
}
