//! The gateway's running state: backends with their HTTP clients, circuits and
//! in-flight counts, and the routing rules. A [`Runtime`] is immutable once built; a
//! reload builds a new one and swaps it in, so requests in flight finish on the old.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use costfloor_core::catalog::ApiModel;

use crate::circuit::Circuit;
use crate::config::{BackendConfig, Config};
use crate::metrics;

#[derive(Debug)]
pub struct Backend {
    pub config: BackendConfig,
    pub client: reqwest::Client,
    pub circuit: Circuit,
    in_flight: AtomicU32,
}

impl Backend {
    fn new(config: BackendConfig, circuit: Circuit) -> Result<Backend, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("backend `{}`: cannot build HTTP client: {e}", config.name))?;
        Ok(Backend {
            config,
            client,
            circuit,
            in_flight: AtomicU32::new(0),
        })
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
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
        ::metrics::gauge!(metrics::IN_FLIGHT, "backend" => self.config.name.clone()).increment(1.0);
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

/// The outcome of matching a request against the routing rules.
#[derive(Debug, Clone)]
pub struct RouteChoice {
    pub name: String,
    pub targets: Vec<usize>,
    pub reference_api: Option<ApiModel>,
}

#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub backends: Vec<Arc<Backend>>,
}

/// What a request is routed on.
pub struct RouteQuery<'a> {
    pub model: &'a str,
    pub task: Option<&'a str>,
    pub input_tokens: u64,
    pub client_key: Option<&'a str>,
}

impl Runtime {
    /// Builds the runtime; backends whose config did not change keep their state
    /// (circuit, in-flight count, connection pool) from `previous`.
    pub fn build(config: Config, previous: Option<&Runtime>) -> Result<Runtime, String> {
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
        Ok(Runtime { config, backends })
    }

    /// First matching rule; else an implicit route to a backend named by its name or
    /// model. `None` when nothing matches.
    pub fn route(&self, query: &RouteQuery<'_>) -> Option<RouteChoice> {
        for rule in &self.config.routes {
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
            let key_ok = rule.client_keys.is_empty()
                || query
                    .client_key
                    .is_some_and(|k| rule.client_keys.iter().any(|r| r == k));
            if model_ok && task_ok && min_ok && max_ok && key_ok {
                return Some(RouteChoice {
                    name: rule.name.clone(),
                    targets: rule.targets.clone(),
                    reference_api: rule.reference_api.clone(),
                });
            }
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
        let backend = &self.config.backends[index];
        Some(RouteChoice {
            name: format!("direct:{}", backend.name),
            targets: vec![index],
            reference_api: backend.price.clone(),
        })
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
