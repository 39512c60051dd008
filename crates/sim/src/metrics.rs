//! vLLM-style Prometheus metrics (`GET /metrics`), or the llama.cpp server's
//! ([`render_llamacpp`]).
//!
//! Names, help texts and histogram buckets follow vLLM's V1 engine
//! (`vllm/v1/metrics/loggers.py`); every sample carries the `model_name` and `engine`
//! labels, as vLLM's do. `vllm:gpu_cache_usage_perc`, the name older vLLM versions
//! used for `vllm:kv_cache_usage_perc`, is exported too with the same value.

use std::fmt::Write as _;

/// TTFT buckets, in seconds.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// Inter-token latency buckets, in seconds.
pub const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// End-to-end request latency buckets, in seconds.
pub const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// A cumulative Prometheus histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (`+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// Counters behind the metrics, updated by the request handlers.
#[derive(Debug, Clone)]
pub struct MetricValues {
    /// Generation tokens, counted as they are sent.
    pub generation_tokens: u64,
    /// Prompt tokens of accepted requests.
    pub prompt_tokens: u64,
    /// Finished requests by vLLM finish reason (`stop`, `length`, `abort`).
    pub success_stop: u64,
    /// See `success_stop`.
    pub success_length: u64,
    /// See `success_stop`.
    pub success_abort: u64,
    /// Time to first token.
    pub ttft: Histogram,
    /// Inter-token latency.
    pub itl: Histogram,
    /// End-to-end latency.
    pub e2e: Histogram,
}

impl Default for MetricValues {
    fn default() -> Self {
        MetricValues {
            generation_tokens: 0,
            prompt_tokens: 0,
            success_stop: 0,
            success_length: 0,
            success_abort: 0,
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
        }
    }
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Requests generating.
    pub running: u64,
    /// Requests waiting for a slot (`max_running`).
    pub waiting: u64,
    /// running / max_running, or 0 without a limit.
    pub kv_cache_usage: f64,
}

/// Formats a float the way Python's `prometheus_client` does (`3.0`, `0.25`).
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the Prometheus text exposition (format 0.0.4).
pub fn render(model: &str, g: Gauges, m: &MetricValues) -> String {
    let labels = format!("model_name=\"{}\",engine=\"0\"", escape_label(model));
    let mut out = String::with_capacity(8192);
    let mut scalar = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{labels}}} {}", num(v));
    };
    scalar(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        g.running as f64,
    );
    scalar(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        g.waiting as f64,
    );
    scalar(
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        g.kv_cache_usage,
    );
    scalar(
        "vllm:gpu_cache_usage_perc",
        "gauge",
        "GPU KV-cache usage. 1 means 100 percent usage.",
        g.kv_cache_usage,
    );
    scalar(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        m.prompt_tokens as f64,
    );
    scalar(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        m.generation_tokens as f64,
    );
    let _ = writeln!(
        out,
        "# HELP vllm:request_success_total Count of successfully processed requests."
    );
    let _ = writeln!(out, "# TYPE vllm:request_success_total counter");
    for (reason, v) in [
        ("stop", m.success_stop),
        ("length", m.success_length),
        ("abort", m.success_abort),
    ] {
        let _ = writeln!(
            out,
            "vllm:request_success_total{{{labels},finished_reason=\"{reason}\"}} {}",
            num(v as f64)
        );
    }
    for (name, help, h) in [
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &m.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &m.itl,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &m.e2e,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, c) in h.bounds.iter().zip(&h.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {}",
                num(*b),
                num(*c as f64)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            num(h.count as f64)
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", num(h.count as f64));
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", num(h.sum));
    }
    out
}

/// The llama.cpp server's `/metrics` (`tools/server/server.cpp`, with `--metrics`):
/// unlabelled `llamacpp:*` series. Decode steps are counted as generated tokens, one
/// step per token, as for a single sequence.
pub fn render_llamacpp(g: Gauges, m: &MetricValues) -> String {
    let mut out = String::with_capacity(1024);
    for (name, kind, help, v) in [
        (
            "prompt_tokens_total",
            "counter",
            "Number of prompt tokens processed.",
            m.prompt_tokens as f64,
        ),
        (
            "tokens_predicted_total",
            "counter",
            "Number of generation tokens processed.",
            m.generation_tokens as f64,
        ),
        (
            "n_decode_total",
            "counter",
            "Total number of llama_decode() calls",
            m.generation_tokens as f64,
        ),
        (
            "requests_processing",
            "gauge",
            "Number of requests processing.",
            g.running as f64,
        ),
        (
            "requests_deferred",
            "gauge",
            "Number of requests deferred.",
            g.waiting as f64,
        ),
    ] {
        let _ = writeln!(out, "# HELP llamacpp:{name} {help}");
        let _ = writeln!(out, "# TYPE llamacpp:{name} {kind}");
        let _ = writeln!(out, "llamacpp:{name} {}", num(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        assert_eq!(h.counts, vec![1, 2]);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn number_format() {
        assert_eq!(num(3.0), "3.0");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(f64::INFINITY), "+Inf");
    }
}
