//! Samples each self-hosted backend's metrics endpoint (and its DCGM exporter) every
//! `server.sample_interval_seconds`, and stores the samples through the ledger for the
//! utilisation report.
//!
//! Every series is optional and older names are accepted: vLLM's
//! `vllm:kv_cache_usage_perc` falls back to `vllm:gpu_cache_usage_perc`; llama.cpp's
//! series are read with or without their `llamacpp:` prefix. It must not touch the
//! request path: it runs in its own task, on its own HTTP client and ledger connection,
//! and a failed sample is counted and logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use ledger::{BackendSample, SampleStore};
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::row::unix_ms;
use crate::state::AppState;

/// One sample line of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (0.0.4): `name{labels} value [ts]`
/// lines; comments, blank lines and lines that do not parse are skipped.
pub fn parse_prometheus(text: &str) -> Vec<Series> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Series> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].find('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close]),
                &line[close + 1..],
            )
        }
        None => {
            let split = line.find(char::is_whitespace)?;
            (&line[..split], Vec::new(), &line[split..])
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Series {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = quoted.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.push((key, value));
        rest = &quoted[end.min(quoted.len())..];
    }
    labels
}

/// The values of the first series named any of `names` (summed over label sets, as a
/// server with several engines or model names exports one per set).
fn first_of(series: &[Series], names: &[&str]) -> Option<f64> {
    names.iter().find_map(|name| {
        let mut found = series.iter().filter(|s| s.name == *name).peekable();
        found.peek()?;
        Some(found.map(|s| s.value).sum())
    })
}

/// What an engine's `/metrics` says: vLLM's names, or llama.cpp's with or without the
/// prefix. The source names the format found; `None` when neither is there.
fn engine_values(series: &[Series], sample: &mut BackendSample) -> Option<&'static str> {
    if series.iter().any(|s| s.name.starts_with("vllm:")) {
        sample.requests_running = first_of(series, &["vllm:num_requests_running"]);
        sample.requests_waiting = first_of(series, &["vllm:num_requests_waiting"]);
        sample.kv_cache_usage = first_of(
            series,
            &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        );
        sample.prompt_tokens_total = first_of(series, &["vllm:prompt_tokens_total"]);
        sample.generation_tokens_total = first_of(series, &["vllm:generation_tokens_total"]);
        return Some("vllm");
    }
    let llama = |name: &str| first_of(series, &[&format!("llamacpp:{name}"), name]);
    let prompt = llama("prompt_tokens_total");
    let predicted = llama("tokens_predicted_total");
    let decode = llama("n_decode_total");
    let processing = llama("requests_processing");
    if [prompt, predicted, decode, processing]
        .iter()
        .all(Option::is_none)
    {
        return None;
    }
    sample.prompt_tokens_total = prompt;
    sample.generation_tokens_total = predicted;
    sample.decode_steps_total = decode;
    sample.requests_running = processing;
    sample.requests_waiting = llama("requests_deferred");
    Some("llamacpp")
}

/// DCGM's per-GPU series, averaged over the GPUs (`gpu` / `UUID` labels).
fn dcgm_values(series: &[Series], sample: &mut BackendSample) -> Option<&'static str> {
    let per_gpu = |name: &str, scale: f64| -> Option<(f64, i64)> {
        let values: Vec<f64> = series
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value * scale)
            .collect();
        (!values.is_empty()).then(|| {
            (
                values.iter().sum::<f64>() / values.len() as f64,
                values.len() as i64,
            )
        })
    };
    let util = per_gpu("DCGM_FI_DEV_GPU_UTIL", 0.01);
    let engine = per_gpu("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 1.0);
    if util.is_none() && engine.is_none() {
        return None;
    }
    sample.gpu_util = util.map(|(v, _)| v);
    sample.gpu_engine_active = engine.map(|(v, _)| v);
    sample.gpus = util.or(engine).map(|(_, n)| n);
    Some("dcgm")
}

/// A sample of one backend from its endpoints' texts.
pub fn sample_from(
    backend: &str,
    at_unix_ms: i64,
    engine: Option<&str>,
    dcgm: Option<&str>,
) -> Option<BackendSample> {
    let mut sample = BackendSample {
        backend: backend.to_string(),
        sampled_at_unix_ms: at_unix_ms,
        source: String::new(),
        requests_running: None,
        requests_waiting: None,
        kv_cache_usage: None,
        prompt_tokens_total: None,
        generation_tokens_total: None,
        decode_steps_total: None,
        gpu_util: None,
        gpu_engine_active: None,
        gpus: None,
    };
    let mut sources = Vec::new();
    if let Some(text) = engine {
        sources.extend(engine_values(&parse_prometheus(text), &mut sample));
    }
    if let Some(text) = dcgm {
        sources.extend(dcgm_values(&parse_prometheus(text), &mut sample));
    }
    if sources.is_empty() {
        return None;
    }
    sample.source = sources.join("+");
    Some(sample)
}

async fn fetch(client: &reqwest::Client, backend: &str, url: &reqwest::Url) -> Option<String> {
    let result = async {
        client
            .get(url.clone())
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }
    .await;
    match result {
        Ok(text) => Some(text),
        Err(e) => {
            ::metrics::counter!(metrics::SAMPLES, "backend" => backend.to_string(), "result" => "error").increment(1);
            tracing::debug!(backend, error = %crate::error::error_chain(&e), "metrics endpoint not read");
            None
        }
    }
}

/// Samples every backend with an endpoint once and writes what it got.
async fn sample_all(state: &AppState, client: &reqwest::Client, store: &Arc<SampleStore>) {
    let runtime = state.runtime.load_full();
    let mut samples = Vec::new();
    for backend in &runtime.backends {
        let config = &backend.config;
        if config.metrics_url.is_none() && config.dcgm_url.is_none() {
            continue;
        }
        let engine = match &config.metrics_url {
            Some(url) => fetch(client, &config.name, url).await,
            None => None,
        };
        let dcgm = match &config.dcgm_url {
            Some(url) => fetch(client, &config.name, url).await,
            None => None,
        };
        let sample = sample_from(&config.name, unix_ms(), engine.as_deref(), dcgm.as_deref());
        match sample {
            Some(sample) => {
                ::metrics::counter!(metrics::SAMPLES, "backend" => config.name.clone(), "result" => "ok").increment(1);
                samples.push(sample);
            }
            None if engine.is_some() || dcgm.is_some() => {
                ::metrics::counter!(metrics::SAMPLES, "backend" => config.name.clone(), "result" => "unknown_format").increment(1);
                tracing::warn!(backend = %config.name, "metrics endpoint has none of the vLLM, llama.cpp or DCGM series");
            }
            None => {}
        }
    }
    if samples.is_empty() {
        return;
    }
    let store = Arc::clone(store);
    let written = tokio::task::spawn_blocking(move || store.insert(&samples)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            "backend samples not written: {}",
            crate::error::error_chain(&e)
        ),
        Err(e) => tracing::warn!("backend samples not written: {e}"),
    }
}

/// Runs until `shutdown`: a sample of every backend with an endpoint every `interval`.
pub(crate) async fn run(
    state: AppState,
    store: Arc<SampleStore>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2).min(interval))
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!("backend sampling is off: cannot build its HTTP client: {e}");
            return;
        }
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => sample_all(&state, &client, &store).await,
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// vLLM's names (vllm/v1/metrics/loggers.py), with labels, a histogram to ignore,
    /// and only the old KV name, as vLLM before 0.9 exported.
    const VLLM_OLD: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m",engine="0"} 3.0
vllm:num_requests_waiting{model_name="m",engine="0"} 1.0
vllm:gpu_cache_usage_perc{model_name="m",engine="0"} 0.25
vllm:prompt_tokens_total{model_name="m",engine="0"} 1200.0
vllm:generation_tokens_total{model_name="m",engine="0"} 340.0
vllm:e2e_request_latency_seconds_bucket{model_name="m",engine="0",le="+Inf"} 9.0
"#;

    #[test]
    fn vllm_names_with_the_old_kv_name() {
        let sample = sample_from("b", 7, Some(VLLM_OLD), None).unwrap();
        assert_eq!(sample.source, "vllm");
        assert_eq!(sample.requests_running, Some(3.0));
        assert_eq!(sample.requests_waiting, Some(1.0));
        assert_eq!(sample.kv_cache_usage, Some(0.25));
        assert_eq!(sample.prompt_tokens_total, Some(1200.0));
        assert_eq!(sample.generation_tokens_total, Some(340.0));
        assert_eq!(sample.decode_steps_total, None);
        // The new name wins when both are there.
        let both = format!("{VLLM_OLD}vllm:kv_cache_usage_perc{{model_name=\"m\"}} 0.5\n");
        assert_eq!(
            sample_from("b", 7, Some(&both), None)
                .unwrap()
                .kv_cache_usage,
            Some(0.5)
        );
    }

    #[test]
    fn llamacpp_names_with_and_without_the_prefix() {
        // The llama.cpp server's /metrics (tools/server/server.cpp, with --metrics).
        let prefixed = "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total 512\nllamacpp:tokens_predicted_total 128\nllamacpp:n_decode_total 130\nllamacpp:requests_processing 2\nllamacpp:requests_deferred 0\n";
        let bare = prefixed.replace("llamacpp:", "");
        for text in [prefixed.to_string(), bare] {
            let sample = sample_from("b", 7, Some(&text), None).unwrap();
            assert_eq!(sample.source, "llamacpp");
            assert_eq!(sample.prompt_tokens_total, Some(512.0));
            assert_eq!(sample.generation_tokens_total, Some(128.0));
            assert_eq!(sample.decode_steps_total, Some(130.0));
            assert_eq!(sample.requests_running, Some(2.0));
            assert_eq!(sample.requests_waiting, Some(0.0));
        }
    }

    #[test]
    fn dcgm_is_averaged_over_gpus() {
        // dcgm-exporter's default counters: utilisation in percent, engine activity 0–1.
        let dcgm = r#"DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",modelName="NVIDIA H100"} 80
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",modelName="NVIDIA H100"} 40
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a"} 0.7
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="1",UUID="GPU-b"} 0.3
"#;
        let sample = sample_from("b", 7, Some(VLLM_OLD), Some(dcgm)).unwrap();
        assert_eq!(sample.source, "vllm+dcgm");
        // (80 + 40) / 2 / 100 and (0.7 + 0.3) / 2.
        assert!((sample.gpu_util.unwrap() - 0.6).abs() < 1e-12);
        assert!((sample.gpu_engine_active.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(sample.gpus, Some(2));
        let only_dcgm = sample_from("b", 7, None, Some(dcgm)).unwrap();
        assert_eq!(only_dcgm.source, "dcgm");
        assert_eq!(only_dcgm.requests_running, None);
    }

    #[test]
    fn unknown_text_gives_no_sample() {
        assert_eq!(
            sample_from("b", 7, Some("up 1\n# x\n\ngarbage"), None),
            None
        );
        assert_eq!(sample_from("b", 7, None, None), None);
    }

    #[test]
    fn labels_with_escapes_and_commas_parse() {
        let series = parse_prometheus("m{a=\"x,y\",b=\"q\\\"z\"} 2.5 1700000000000\nn +Inf\n");
        assert_eq!(series.len(), 2);
        assert_eq!(
            series[0].labels,
            vec![
                ("a".to_string(), "x,y".to_string()),
                ("b".to_string(), "q\"z".to_string())
            ]
        );
        assert_eq!(series[0].value, 2.5);
        assert_eq!(series[1].value, f64::INFINITY);
    }
}
