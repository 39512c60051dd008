//! The gateway's running state: backends with their HTTP clients, circuits and
//! in-flight counts, and the routing rules. A [`Runtime`] is immutable once built; a
//! reload builds a new one and swaps it in, so requests in flight finish on the old.
//!
//! It must not be mutated after it is built, except through atomics (circuits,
//! in-flight counts), so the request path never takes a lock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use wire::pair::BackendProtocol;

use crate::calibration::InputCalibration;
use crate::circuit::Circuit;
use crate::config::{BackendConfig, Config, RouteConfig};
use crate::connections::{Connections, Settings};
use crate::error::GatewayError;
use crate::metrics;

pub struct Backend {
    pub config: BackendConfig,
    /// The wire protocol of `config.kind`.
    pub protocol: BackendProtocol,
    /// The headers of every upstream request (content type, auth, version), parsed
    /// once; the credential is marked sensitive.
    pub upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `config.endpoint`, parsed once.
    pub endpoint: reqwest::Url,
    pub connections: Connections,
    pub circuit: Circuit,
    pub metrics: BackendMetrics,
    /// The input-token estimate learned from this backend's own counts.
    pub calibration: InputCalibration,
    in_flight: AtomicU32,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("config", &self.config)
            .field("circuit", &self.circuit)
            .finish()
    }
}

/// Metric handles registered once per backend, so the request path does no registry
/// lookups for them.
pub struct BackendMetrics {
    /// input, cache_read, cache_write, cache_write_1h, output.
    pub tokens: [::metrics::Counter; 5],
    pub cost_nano_usd: ::metrics::Counter,
    pub counterfactual_nano_usd: ::metrics::Counter,
    pub latency: ::metrics::Histogram,
    pub ttft: ::metrics::Histogram,
    pub in_flight: ::metrics::Gauge,
    pub attempts_ok: ::metrics::Counter,
    pub attempts_error: ::metrics::Counter,
}

impl BackendMetrics {
    fn new(name: &str) -> BackendMetrics {
        let token = |direction: &'static str| ::metrics::counter!(metrics::TOKENS, "backend" => name.to_string(), "direction" => direction);
        BackendMetrics {
            tokens: [
                token("input"),
                token("cache_read"),
                token("cache_write"),
                token("cache_write_1h"),
                token("output"),
            ],
            cost_nano_usd: ::metrics::counter!(metrics::COST_NANO_USD, "backend" => name.to_string()),
            counterfactual_nano_usd: ::metrics::counter!(metrics::COUNTERFACTUAL_NANO_USD, "backend" => name.to_string()),
            latency: ::metrics::histogram!(metrics::LATENCY, "backend" => name.to_string()),
            ttft: ::metrics::histogram!(metrics::TTFT, "backend" => name.to_string()),
            in_flight: ::metrics::gauge!(metrics::IN_FLIGHT, "backend" => name.to_string()),
            attempts_ok: ::metrics::counter!(metrics::UPSTREAM_ATTEMPTS, "backend" => name.to_string(), "result" => "ok"),
            attempts_error: ::metrics::counter!(metrics::UPSTREAM_ATTEMPTS, "backend" => name.to_string(), "result" => "error"),
        }
    }
}

impl Backend {
    fn new(config: BackendConfig, circuit: Circuit) -> Result<Backend, GatewayError> {
        let endpoint =
            reqwest::Url::parse(&config.endpoint).map_err(|e| GatewayError::Backend {
                backend: config.name.clone(),
                reason: format!("endpoint {}: {e}", config.endpoint),
            })?;
        // A local vLLM, llama.cpp server or sim: no proxy (`connections::build`).
        let loopback = endpoint
            .host_str()
            .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]");
        let connections = Connections::new(Settings {
            http: config.http,
            connect_timeout: config.timeouts.connect,
            loopback,
            tls: endpoint.scheme() == "https",
            backend: config.name.clone(),
        })
        .map_err(|e| GatewayError::Backend {
            backend: config.name.clone(),
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        let metrics = BackendMetrics::new(&config.name);
        let protocol = config.kind.protocol();
        let api_key = config.api_key.as_ref().map(|key| key.expose());
        let mut upstream_headers = Vec::new();
        for header in protocol.upstream_headers(api_key, &config.anthropic_version) {
            let invalid = |what: &str| GatewayError::Backend {
                backend: config.name.clone(),
                reason: format!("the {} header has an invalid {what}", header.name),
            };
            let name = http::HeaderName::from_static(header.name);
            let mut value =
                http::HeaderValue::from_str(&header.value).map_err(|_| invalid("value"))?;
            value.set_sensitive(header.secret);
            upstream_headers.push((name, value));
        }
        Ok(Backend {
            protocol,
            upstream_headers,
            config,
            endpoint,
            connections,
            circuit,
            metrics,
            calibration: InputCalibration::default(),
            in_flight: AtomicU32::new(0),
        })
    }

    /// Takes an in-flight slot unless the backend is at `max_in_flight` (spill-over).
    pub fn try_reserve(self: &Arc<Self>) -> Option<InFlight> {
        let limit = self.config.max_in_flight;
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (limit == 0 || current < limit).then_some(current + 1)
            })
            .is_ok();
        if !taken {
            return None;
        }
        self.metrics.in_flight.increment(1.0);
        Some(InFlight(Arc::clone(self)))
    }
}

/// An in-flight slot; released on drop (including when a client disconnects).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        ::metrics::gauge!(metrics::IN_FLIGHT, "backend" => self.0.config.name.clone())
            .decrement(1.0);
    }
}

/// The outcome of matching a request against the routing rules: a shared reference,
/// so routing a request copies nothing.
pub type RouteChoice = Arc<RouteConfig>;

#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub backends: Vec<Arc<Backend>>,
    /// The configured routes, in order.
    routes: Vec<RouteChoice>,
    /// One implicit route per backend, for requests naming its model or name.
    direct: Vec<RouteChoice>,
}

/// What a request is routed on.
pub struct RouteQuery<'a> {
    pub model: &'a str,
    pub task: Option<&'a str>,
    pub input_tokens: u64,
    pub client_key: Option<&'a crate::keys::ClientKey>,
}

impl Runtime {
    /// Builds the runtime; backends whose config did not change keep their state
    /// (circuit, in-flight count, connection pool) from `previous`.
    pub fn build(config: Config, previous: Option<&Runtime>) -> Result<Runtime, GatewayError> {
        let mut backends = Vec::with_capacity(config.backends.len());
        for backend in &config.backends {
            let reused = previous.and_then(|p| {
                p.backends
                    .iter()
                    .find(|old| {
                        old.config.name == backend.name && old.config.source == backend.source
                    })
                    .cloned()
            });
            let backend = match reused {
                Some(old) => old,
                None => Arc::new(Backend::new(
                    backend.clone(),
                    Circuit::new(config.circuit_failure_threshold, config.circuit_open),
                )?),
            };
            ::metrics::gauge!(metrics::CIRCUIT, "backend" => backend.config.name.clone())
                .set(backend.circuit.state().gauge());
            backends.push(backend);
        }
        let routes = config.routes.iter().cloned().map(Arc::new).collect();
        let direct = config
            .backends
            .iter()
            .enumerate()
            .map(|(index, backend)| {
                Arc::new(RouteConfig {
                    name: format!("direct:{}", backend.name),
                    models: vec![backend.model.clone()],
                    tasks: Vec::new(),
                    min_input_tokens: None,
                    max_input_tokens: None,
                    client_keys: Vec::new(),
                    targets: vec![index],
                    reference_api: backend.price.clone(),
                    shadow: None,
                })
            })
            .collect();
        Ok(Runtime {
            config,
            backends,
            routes,
            direct,
        })
    }

    /// First matching rule; else an implicit route to a backend named by its name or
    /// model. `None` when nothing matches.
    pub fn route(&self, query: &RouteQuery<'_>) -> Option<RouteChoice> {
        let matches = |rule: &RouteConfig| {
            let model_ok = rule.models.is_empty() || rule.models.iter().any(|m| m == query.model);
            let task_ok = rule.tasks.is_empty()
                || query
                    .task
                    .is_some_and(|t| rule.tasks.iter().any(|r| r == t));
            let min_ok = rule
                .min_input_tokens
                .is_none_or(|min| query.input_tokens >= min);
            let max_ok = rule
                .max_input_tokens
                .is_none_or(|max| query.input_tokens <= max);
            let key_ok = (rule.client_keys.is_empty()
                || query
                    .client_key
                    .is_some_and(|k| rule.client_keys.iter().any(|r| r == &k.name)))
                && query.client_key.is_none_or(|k| k.allows(&rule.name));
            model_ok && task_ok && min_ok && max_ok && key_ok
        };
        if let Some(rule) = self.routes.iter().find(|rule| matches(rule)) {
            return Some(Arc::clone(rule));
        }
        // A key limited to some routes reaches no backend by name.
        if query.client_key.is_some_and(|k| !k.routes.is_empty()) {
            return None;
        }
        let index = self
            .config
            .backends
            .iter()
            .position(|b| b.name == query.model)
            .or_else(|| {
                self.config
                    .backends
                    .iter()
                    .position(|b| b.model == query.model)
            })?;
        self.direct.get(index).cloned()
    }

    /// Every model name a client may ask for: route aliases, then backend models.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for rule in &self.config.routes {
            for model in &rule.models {
                if !names.contains(model) {
                    names.push(model.clone());
                }
            }
        }
        for backend in &self.config.backends {
            if !names.contains(&backend.model) {
                names.push(backend.model.clone());
            }
        }
        names
    }
}
