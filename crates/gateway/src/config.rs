//! The gateway config: a TOML file loaded in two phases. [`ConfigFile`] is the serde
//! shape with `deny_unknown_fields`; [`ConfigFile::validate`] turns it into a
//! [`Config`] with every reference resolved (backends, catalog prices, secrets) so the
//! request path never handles a "filled in later" option.
//!
//! It must not let a secret print: keys are wrapped in [`Secret`], whose `Debug` hides them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use costfloor_core::catalog::{ApiModel, Catalog};
use serde::Deserialize;

pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub retry: RetryFile,
    #[serde(default)]
    pub circuit: CircuitFile,
    #[serde(default)]
    pub client_key: Vec<crate::keys::ClientKeyFile>,
    #[serde(default)]
    pub backend: Vec<BackendFile>,
    #[serde(default)]
    pub route: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// max_tokens sent to Anthropic backends when an OpenAI client gave none.
    pub default_max_tokens: Option<u32>,
    /// A SQLite file (relative to the config file) or a `postgres://` URL.
    pub ledger: Option<String>,
    /// Or an environment variable holding it (a URL with its password, kept out of the
    /// file).
    pub ledger_env: Option<String>,
    /// PostgreSQL only: the file rows wait in while the database cannot be reached
    /// (default `costfloor-ledger-spill-REPLICA.jsonl` beside the config file).
    pub ledger_spill: Option<PathBuf>,
    /// PostgreSQL only: rows kept in memory while the database cannot be reached,
    /// before the spill file (default 50,000).
    pub ledger_backlog_rows: Option<usize>,
    pub drain_seconds: Option<u64>,
    /// Env var holding the admin key that enables `POST /admin/reload`.
    pub admin_key_env: Option<String>,
    /// Or a file holding it (relative to the config file).
    pub admin_key_file: Option<PathBuf>,
    /// A catalog file overriding the embedded prices and deployments.
    pub catalog: Option<PathBuf>,
    pub ledger_queue_capacity: Option<usize>,
    /// Seconds between samples of the backends' metrics endpoints (default 15; 0: off).
    pub sample_interval_seconds: Option<u64>,
    /// The name every ledger row of this process records (`row::replica_name`).
    pub replica: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Upstream attempts per request, fallbacks and retries together.
    pub max_attempts: Option<u32>,
    /// Total time a request may spend waiting on `retry-after`.
    pub max_wait_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitFile {
    pub failure_threshold: Option<u32>,
    pub open_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// vLLM, TGI, SGLang, the llama.cpp server, Ollama: OpenAI chat completions.
    OpenaiCompatible,
    Anthropic,
    /// The OpenAI API itself.
    Openai,
    /// The OpenAI Responses API (`/v1/responses`), for Responses clients that keep
    /// state on OpenAI's servers (`previous_response_id`, `store`).
    OpenaiResponses,
}

impl BackendKind {
    /// The wire protocol a backend of this kind speaks.
    pub fn protocol(self) -> wire::pair::BackendProtocol {
        match self {
            BackendKind::Anthropic => wire::pair::BackendProtocol::Anthropic,
            BackendKind::Openai => wire::pair::BackendProtocol::OpenAi,
            BackendKind::OpenaiCompatible => wire::pair::BackendProtocol::OpenAiCompatible,
            BackendKind::OpenaiResponses => wire::pair::BackendProtocol::OpenAiResponses,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::OpenaiCompatible => "openai_compatible",
            BackendKind::Anthropic => "anthropic",
            BackendKind::Openai => "openai",
            BackendKind::OpenaiResponses => "openai_responses",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub connect_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: BackendKind,
    pub base_url: Option<String>,
    pub model: String,
    pub api_key_env: Option<String>,
    pub anthropic_version: Option<String>,
    pub max_context: Option<u64>,
    pub max_in_flight: Option<u32>,
    /// Catalog deployment id: marks the backend self-hosted (marginal cost 0).
    pub deployment: Option<String>,
    /// The server's Prometheus endpoint (vLLM's `/metrics`; the llama.cpp server's with
    /// `--metrics`), sampled for utilisation.
    pub metrics_url: Option<String>,
    /// A DCGM exporter's endpoint for this backend's GPUs.
    pub dcgm_url: Option<String>,
    /// Catalog API model id whose prices this backend charges.
    pub price: Option<String>,
    /// What its model takes besides text: `image`, `document` (default: all).
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default)]
    pub http: crate::connections::HttpFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub tasks: Vec<String>,
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    #[serde(default)]
    pub client_keys: Vec<String>,
    pub targets: Vec<String>,
    /// Catalog API model id for the counterfactual cost of self-hosted requests.
    pub reference_api: Option<String>,
    /// Mirror a sampled share to a reference backend (`crate::shadow`).
    pub shadow: Option<crate::shadow::ShadowFile>,
}

/// A secret read from the environment or a file. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub name: String,
    pub kind: BackendKind,
    /// The full upstream URL of the generation endpoint.
    pub endpoint: String,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub anthropic_version: String,
    pub max_context: u64,
    /// 0 = unlimited.
    pub max_in_flight: u32,
    pub deployment: Option<String>,
    pub price: Option<ApiModel>,
    pub timeouts: Timeouts,
    pub http: crate::connections::Http,
    /// Sampled for utilisation, with `dcgm_url`.
    pub metrics_url: Option<reqwest::Url>,
    pub dcgm_url: Option<reqwest::Url>,
    /// Whether its model takes images and documents (`inputs`).
    pub takes: wire::pair::Media,
    /// The file form, to tell whether a reload changed this backend.
    pub source: BackendFile,
}

impl BackendConfig {
    pub fn self_hosted(&self) -> bool {
        self.deployment.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub models: Vec<String>,
    pub tasks: Vec<String>,
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub client_keys: Vec<String>,
    /// Indexes into `Config::backends`.
    pub targets: Vec<usize>,
    pub reference_api: Option<ApiModel>,
    pub shadow: Option<crate::shadow::ShadowConfig>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub default_max_tokens: u32,
    pub ledger: ledger::Location,
    /// PostgreSQL only: the spill file; `None` for the default beside the config.
    pub ledger_spill: Option<PathBuf>,
    pub ledger_backlog_rows: usize,
    pub ledger_queue_capacity: usize,
    pub replica: Option<String>,
    /// `None`: the backends' metrics endpoints are not sampled.
    pub sample_interval: Option<Duration>,
    pub drain: Duration,
    pub admin_key: Option<Secret>,
    pub max_attempts: u32,
    pub max_retry_wait: Duration,
    pub circuit_failure_threshold: u32,
    pub circuit_open: Duration,
    pub client_keys: Vec<crate::keys::ClientKey>,
    pub backends: Vec<BackendConfig>,
    pub routes: Vec<RouteConfig>,
}

impl ConfigFile {
    pub fn parse(name: &str, text: &str) -> Result<ConfigFile, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| costfloor_core::catalog::line_col(text, s.start))
                .unwrap_or((1, 1));
            err(format!("{name}:{line}:{column}: {}", e.message()))
        })
    }

    /// Resolves references, reads secrets and checks every cross-field rule.
    /// `base_dir` anchors relative paths (secret files, catalog).
    pub fn validate(
        self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let server = self.server;
        let ledger = crate::store::ledger_location(&server, base_dir, env)?;
        let listen_text = server
            .listen
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| err(format!("server.listen = {listen_text:?} is not allowed: expected HOST:PORT, e.g. 127.0.0.1:8080")))?;
        let mut catalog = Catalog::embedded().map_err(|e| err(e.to_string()))?;
        if let Some(path) = &server.catalog {
            let path = base_dir.join(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(format!(
                    "server.catalog: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            catalog
                .overlay(&path.display().to_string(), &text)
                .map_err(|e| err(e.to_string()))?;
        }
        let read_secret = |what: &str,
                           env_name: &Option<String>,
                           file: &Option<PathBuf>|
         -> Result<Secret, ConfigError> {
            match (env_name, file) {
                (Some(var), None) => env(var)
                    .filter(|v| !v.is_empty())
                    .map(Secret)
                    .ok_or_else(|| err(format!("{what}: environment variable {var} is not set"))),
                (None, Some(path)) => {
                    let path = base_dir.join(path);
                    std::fs::read_to_string(&path)
                        .map(|s| Secret(s.trim().to_string()))
                        .map_err(|e| {
                            err(format!(
                                "{what}: cannot read secret file {}: {e}",
                                path.display()
                            ))
                        })
                }
                _ => Err(err(format!(
                    "{what}: set exactly one of secret_env or secret_file"
                ))),
            }
        };
        let route_names: HashSet<&str> = self.route.iter().map(|r| r.name.as_str()).collect();
        let client_keys = crate::keys::resolve(&self.client_key, &route_names, read_secret)?;
        let admin_key = match (&server.admin_key_env, &server.admin_key_file) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(err(
                    "server: set at most one of admin_key_env or admin_key_file",
                ))
            }
            (env_name, file) => Some(read_secret("server.admin_key", env_name, file)?),
        };

        if self.backend.is_empty() {
            return Err(err("no [[backend]] configured: add at least one"));
        }
        let mut backends = Vec::new();
        let mut index_by_name = BTreeMap::new();
        for (index, b) in self.backend.iter().enumerate() {
            let what = format!("backend `{}`", b.name);
            if index_by_name.insert(b.name.clone(), index).is_some() {
                return Err(err(format!("{what} is defined twice")));
            }
            let base_url = b.base_url.clone().unwrap_or_else(|| match b.kind {
                BackendKind::Anthropic => DEFAULT_ANTHROPIC_BASE_URL.to_string(),
                BackendKind::Openai | BackendKind::OpenaiResponses => {
                    DEFAULT_OPENAI_BASE_URL.to_string()
                }
                BackendKind::OpenaiCompatible => String::new(),
            });
            let parsed = reqwest::Url::parse(&base_url)
                .map_err(|e| err(format!("{what}: base_url = {base_url:?} is not a valid URL ({e}); expected e.g. http://127.0.0.1:8000/v1")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(err(format!("{what}: base_url = {base_url:?} is not allowed: expected an http:// or https:// URL with a host")));
            }
            let trimmed = base_url.trim_end_matches('/').to_string();
            let endpoint = b.kind.protocol().generation_url(&trimmed);
            let api_key = match &b.api_key_env {
                Some(var) => Some(read_secret(
                    &format!("{what}.api_key_env"),
                    &Some(var.clone()),
                    &None,
                )?),
                None => None,
            };
            let price = match &b.price {
                Some(id) => Some(
                    catalog
                        .api_model(id)
                        .map_err(|e| err(format!("{what}.price: {e}")))?
                        .clone(),
                ),
                None => None,
            };
            if let Some(id) = &b.deployment {
                catalog
                    .deployment(id)
                    .map_err(|e| err(format!("{what}.deployment: {e}")))?;
                if price.is_some() {
                    return Err(err(format!(
                        "{what}: set either `deployment` (self-hosted) or `price` (API), not both"
                    )));
                }
            }
            if b.kind != BackendKind::OpenaiCompatible && b.deployment.is_some() {
                return Err(err(format!(
                    "{what}: `deployment` is for openai_compatible backends only"
                )));
            }
            let max_context = match (b.max_context, &price) {
                (Some(0), _) => {
                    return Err(err(format!(
                        "{what}: max_context = 0 is not allowed: expected an integer > 0"
                    )))
                }
                (Some(n), _) => n,
                (None, Some(model)) => model.context_window,
                (None, None) => match &b.deployment {
                    Some(id) => catalog
                        .deployment(id)
                        .ok()
                        .and_then(|d| catalog.model(&d.model).ok())
                        .map_or(u64::MAX, |m| m.max_context),
                    None => u64::MAX,
                },
            };
            let ms =
                |value: Option<u64>, default: u64, field: &str| -> Result<Duration, ConfigError> {
                    match value {
                        Some(0) => Err(err(format!(
                            "{what}.timeouts.{field} = 0 is not allowed: expected milliseconds > 0"
                        ))),
                        Some(v) => Ok(Duration::from_millis(v)),
                        None => Ok(Duration::from_millis(default)),
                    }
                };
            let metrics_endpoint = |field: &str, value: &Option<String>| {
                value
                    .as_deref()
                    .map(|url| match reqwest::Url::parse(url) {
                        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(parsed),
                        _ => Err(err(format!(
                            "{what}.{field} = {url:?} is not allowed: expected an http:// or https:// URL, e.g. http://127.0.0.1:8000/metrics"
                        ))),
                    })
                    .transpose()
            };
            let takes = match &b.inputs {
                None => wire::pair::Media::ALL,
                Some(inputs) => wire::pair::Media::from_names(inputs)
                    .map_err(|bad| err(format!("{what}.inputs: {bad:?} is not allowed: expected \"text\", \"image\" or \"document\"")))?,
            };
            let metrics_url = metrics_endpoint("metrics_url", &b.metrics_url)?;
            let dcgm_url = metrics_endpoint("dcgm_url", &b.dcgm_url)?;
            if (metrics_url.is_some() || dcgm_url.is_some()) && b.deployment.is_none() {
                return Err(err(format!(
                    "{what}: metrics_url and dcgm_url are for self-hosted backends (set `deployment`)"
                )));
            }
            backends.push(BackendConfig {
                takes,
                metrics_url,
                dcgm_url,
                name: b.name.clone(),
                kind: b.kind,
                endpoint,
                base_url: trimmed,
                model: b.model.clone(),
                api_key,
                anthropic_version: b
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_string()),
                max_context,
                max_in_flight: b.max_in_flight.unwrap_or(0),
                deployment: b.deployment.clone(),
                price,
                timeouts: Timeouts {
                    connect: ms(b.timeouts.connect_ms, 2_000, "connect_ms")?,
                    first_byte: ms(b.timeouts.first_byte_ms, 60_000, "first_byte_ms")?,
                    total: ms(b.timeouts.total_ms, 600_000, "total_ms")?,
                },
                http: crate::connections::Http::from_file(&b.http, &what).map_err(err)?,
                source: b.clone(),
            });
        }

        let mut routes = Vec::new();
        let mut route_names = HashSet::new();
        for r in self.route {
            let what = format!("route `{}`", r.name);
            if !route_names.insert(r.name.clone()) {
                return Err(err(format!("{what} is defined twice")));
            }
            if r.targets.is_empty() {
                return Err(err(format!(
                    "{what}: targets is empty: list at least one backend"
                )));
            }
            let mut targets = Vec::new();
            for target in &r.targets {
                let index = *index_by_name.get(target).ok_or_else(|| {
                    let known: Vec<&String> = index_by_name.keys().collect();
                    err(format!("{what}: target `{target}` is not a configured backend; known backends: {known:?}"))
                })?;
                targets.push(index);
            }
            for key in &r.client_keys {
                if !client_keys.iter().any(|k| &k.name == key) {
                    return Err(err(format!(
                        "{what}: client_keys names `{key}`, which is not a configured client_key"
                    )));
                }
            }
            if let (Some(min), Some(max)) = (r.min_input_tokens, r.max_input_tokens) {
                if min > max {
                    return Err(err(format!(
                        "{what}: min_input_tokens {min} > max_input_tokens {max}"
                    )));
                }
            }
            let reference_api = match &r.reference_api {
                Some(id) => Some(
                    catalog
                        .api_model(id)
                        .map_err(|e| err(format!("{what}.reference_api: {e}")))?
                        .clone(),
                ),
                // Default: the prices of the first API target.
                None => targets.iter().find_map(|&i| backends[i].price.clone()),
            };
            routes.push(RouteConfig {
                name: r.name,
                models: r.models,
                tasks: r.tasks,
                min_input_tokens: r.min_input_tokens,
                max_input_tokens: r.max_input_tokens,
                shadow: match &r.shadow {
                    Some(shadow) => {
                        Some(shadow.validate(&what, &|name| index_by_name.get(name).copied())?)
                    }
                    None => None,
                },
                client_keys: r.client_keys,
                targets,
                reference_api,
            });
        }
        let max_attempts = self.retry.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            return Err(err(
                "retry.max_attempts = 0 is not allowed: expected an integer >= 1",
            ));
        }
        let failure_threshold = self.circuit.failure_threshold.unwrap_or(5);
        if failure_threshold == 0 {
            return Err(err(
                "circuit.failure_threshold = 0 is not allowed: expected an integer >= 1",
            ));
        }
        Ok(Config {
            listen,
            max_body_bytes: server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            default_max_tokens: server.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            ledger,
            ledger_spill: server.ledger_spill.map(|p| base_dir.join(p)),
            ledger_backlog_rows: server.ledger_backlog_rows.unwrap_or(50_000),
            ledger_queue_capacity: server.ledger_queue_capacity.unwrap_or(8192),
            replica: server.replica,
            sample_interval: match server.sample_interval_seconds.unwrap_or(15) {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            drain: Duration::from_secs(server.drain_seconds.unwrap_or(30)),
            admin_key,
            max_attempts,
            max_retry_wait: Duration::from_millis(self.retry.max_wait_ms.unwrap_or(5_000)),
            circuit_failure_threshold: failure_threshold,
            circuit_open: Duration::from_millis(self.circuit.open_ms.unwrap_or(10_000)),
            client_keys,
            backends,
            routes,
        })
    }
}

/// Reads and validates a config file with the process environment.
/// The loader on arbitrary text, for the `config` fuzz target and its corpus replay:
/// parse, then resolve and validate against a directory that does not exist and an
/// empty environment. Errors are answers; it must never panic.
pub fn fuzz_load(text: &str) -> Option<Config> {
    let file = ConfigFile::parse("fuzz.toml", text).ok()?;
    file.validate(Path::new("/nonexistent/costfloor-fuzz"), &|_| None)
        .ok()
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read config {}: {e}", path.display())))?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ConfigFile::parse(&path.display().to_string(), &text)?
        .validate(base_dir, &|name| std::env::var(name).ok())
}

impl Config {
    /// The resolved routing table, for `serve --check` and start-up logs.
    pub fn routing_table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "backends:");
        for b in &self.backends {
            let cost = match (&b.deployment, &b.price) {
                (Some(d), _) => format!("self-hosted ({d})"),
                (None, Some(p)) => format!("priced as {}", p.id),
                (None, None) => "unpriced".to_string(),
            };
            let in_flight = if b.max_in_flight == 0 {
                "unlimited".to_string()
            } else {
                b.max_in_flight.to_string()
            };
            let _ = writeln!(
                out,
                "  {:<16} {:<18} {} model={} max_context={} max_in_flight={} {}",
                b.name,
                b.kind.as_str(),
                b.endpoint,
                b.model,
                if b.max_context == u64::MAX {
                    "unlimited".to_string()
                } else {
                    b.max_context.to_string()
                },
                in_flight,
                cost
            );
        }
        let _ = writeln!(out, "routes (first match wins):");
        for r in &self.routes {
            let any = |v: &Vec<String>| {
                if v.is_empty() {
                    "*".to_string()
                } else {
                    v.join("|")
                }
            };
            let targets: Vec<&str> = r
                .targets
                .iter()
                .map(|&i| self.backends[i].name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  {:<16} model={} task={} input_tokens={}..{} key={} -> {}{}{}",
                r.name,
                any(&r.models),
                any(&r.tasks),
                r.min_input_tokens.map_or(String::new(), |v| v.to_string()),
                r.max_input_tokens.map_or(String::new(), |v| v.to_string()),
                any(&r.client_keys),
                targets.join(" > "),
                r.reference_api
                    .as_ref()
                    .map_or(String::new(), |m| format!(" (counterfactual: {})", m.id)),
                r.shadow.as_ref().map_or(String::new(), |s| format!(
                    " shadow={} sample={} cap={}/month",
                    self.backends[s.backend].name,
                    s.sample,
                    s.monthly_cap.fine()
                ))
            );
        }
        let _ = writeln!(
            out,
            "  (implicit) model=<backend model or name> -> that backend"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<Config, ConfigError> {
        ConfigFile::parse("g.toml", text)?.validate(Path::new("."), &|name| {
            (name == "KEY").then(|| "s3cret".to_string())
        })
    }

    const GOOD: &str = r#"
[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
model = "llama"
deployment = "llama-3.3-70b-4xa100"
max_in_flight = 8

[[backend]]
name = "haiku"
type = "anthropic"
base_url = "http://127.0.0.1:9"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
api_key_env = "KEY"

[[route]]
name = "cheap"
models = ["cheap"]
targets = ["llama", "haiku"]
"#;

    #[test]
    fn good_config_resolves() {
        let config = validate(GOOD).unwrap();
        assert_eq!(
            config.backends[0].endpoint,
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(
            config.backends[1].endpoint,
            "http://127.0.0.1:9/v1/messages"
        );
        assert_eq!(config.backends[1].max_context, 200_000);
        assert_eq!(config.backends[0].max_context, 131_072);
        assert_eq!(config.routes[0].targets, vec![0, 1]);
        assert_eq!(
            config.routes[0].reference_api.as_ref().unwrap().id,
            "claude-haiku-4.5"
        );
        let table = config.routing_table();
        assert!(
            table.contains("cheap") && table.contains("llama > haiku"),
            "{table}"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_problem() {
        for (text, expected) in [
            (
                GOOD.replace(
                    "targets = [\"llama\", \"haiku\"]",
                    "targets = [\"llama\", \"sonnet\"]",
                ),
                "target `sonnet`",
            ),
            (
                GOOD.replace("http://127.0.0.1:9/v1", "not a url"),
                "base_url = \"not a url\"",
            ),
            (
                GOOD.replace("max_in_flight = 8", "max_in_flight = 8\nmax_inflight = 3"),
                "g.toml:9:1: unknown field `max_inflight`",
            ),
            (
                GOOD.replace("api_key_env = \"KEY\"", "api_key_env = \"MISSING\""),
                "MISSING is not set",
            ),
            (
                GOOD.replace("price = \"claude-haiku-4.5\"", "price = \"claude-haiku\""),
                "claude-haiku-4.5",
            ),
            (
                GOOD.replace("type = \"anthropic\"", "type = \"anthropc\""),
                "unknown variant `anthropc`",
            ),
        ] {
            let message = validate(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }
}
