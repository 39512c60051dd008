//! The HTTP server: endpoints, `/readyz`, `/metrics`, `/admin/reload`, signals, and
//! graceful shutdown that drains in-flight requests and flushes the ledger.
//!
//! It must not handle a generation request itself (that is `proxy`) or name a vendor
//! field: model lists and error bodies come from `wire::pair::ClientFormat`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use costfloor_core::money::Money;
use ledger::{Ledger, LedgerOptions, WriterReport};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::pair::{ClientFormat, ANTHROPIC_VERSION_HEADER};

use crate::auth;
use crate::circuit::CircuitState;
use crate::config::{self, Config};
use crate::error::{GatewayError, HEADER_BACKEND, HEADER_REQUEST_ID, HEADER_ROUTE};
use crate::metrics;
use crate::proxy;
use crate::runtime::Runtime;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/responses", post(responses))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/admin/reload", post(admin_reload))
        .merge(crate::admin::router())
        .fallback(not_found)
        .layer(axum::middleware::map_response(tag_every_response))
        .with_state(state)
}

/// Every response carries the three `x-costfloor-*` headers; the request path sets
/// them, and this fills them in on the others (health, models, metrics, 404s).
async fn tag_every_response(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(HEADER_REQUEST_ID) {
        if let Ok(id) = http::HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()) {
            headers.insert(HEADER_REQUEST_ID, id);
        }
        headers.insert(HEADER_ROUTE, http::HeaderValue::from_static("none"));
        headers.insert(HEADER_BACKEND, http::HeaderValue::from_static("none"));
    }
    response
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy::handle(state, ClientFormat::OpenAi, headers, body).await
}

async fn messages(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(state, ClientFormat::Anthropic, headers, body).await
}

async fn responses(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(state, ClientFormat::Responses, headers, body).await
}

async fn count_tokens(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    crate::count::handle(state, headers, body).await
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let names = state.runtime.load().model_names();
    let format = ClientFormat::for_models(headers.contains_key(ANTHROPIC_VERSION_HEADER));
    json_response(StatusCode::OK, format.models_body(&names))
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The gateway's own JSON answers (readiness, admin).
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

/// Ready when the ledger is writable and every route has a backend whose circuit is
/// not open.
async fn readyz(State(state): State<AppState>) -> Response {
    let runtime = state.runtime.load();
    let mut problems = Vec::new();
    if state.is_draining() {
        problems.push("draining for shutdown".to_string());
    }
    if !state.ledger.is_healthy() {
        problems.push("the ledger is not writable".to_string());
    }
    for route in &runtime.config.routes {
        let healthy = route
            .targets
            .iter()
            .any(|&i| runtime.backends[i].circuit.state() != CircuitState::Open);
        if !healthy {
            problems.push(format!(
                "route `{}` has no backend with a closed circuit",
                route.name
            ));
        }
    }
    #[derive(Serialize)]
    struct Readiness {
        ready: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        problems: Vec<String>,
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &Readiness {
            ready: problems.is_empty(),
            problems,
        },
    )
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    ::metrics::gauge!(ledger::metric_names::QUEUE_DEPTH).set(state.ledger.queue_depth() as f64);
    for backend in &state.runtime.load().backends {
        ::metrics::gauge!(metrics::CIRCUIT, "backend" => backend.config.name.clone())
            .set(backend.circuit.state().gauge());
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Serialize)]
struct AdminAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    reloaded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl AdminAnswer {
    fn error(message: impl Into<String>) -> AdminAnswer {
        AdminAnswer {
            reloaded: None,
            summary: None,
            error: Some(message.into()),
        }
    }
}

async fn admin_reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = state.runtime.load().config.admin_key.clone();
    let Some(admin) = admin else {
        return json(
            StatusCode::NOT_FOUND,
            &AdminAnswer::error(
                "admin endpoints are off: set server.admin_key_env or server.admin_key_file",
            ),
        );
    };
    if !auth::is_admin(&admin, &headers) {
        return json(
            StatusCode::UNAUTHORIZED,
            &AdminAnswer::error("invalid admin key"),
        );
    }
    match state.reload().await {
        Ok(summary) => {
            tracing::info!("config reloaded: {summary}");
            json(
                StatusCode::OK,
                &AdminAnswer {
                    reloaded: Some(true),
                    summary: Some(summary),
                    error: None,
                },
            )
        }
        Err(reason) => {
            let reason = crate::error::error_chain(&reason);
            tracing::error!("config reload rejected, keeping the current config: {reason}");
            json(
                StatusCode::BAD_REQUEST,
                &AdminAnswer {
                    reloaded: Some(false),
                    summary: None,
                    error: Some(reason),
                },
            )
        }
    }
}

async fn not_found(uri: http::Uri) -> Response {
    let message = format!("no such endpoint: {}", uri.path());
    let body =
        ClientFormat::for_path(uri.path()).error_body(wire::ApiErrorKind::NotFound, &message);
    json_response(StatusCode::NOT_FOUND, body)
}

/// A running gateway, started by [`start`].
pub struct Gateway {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<WriterReport, GatewayError>>,
}

impl Gateway {
    /// Begins a graceful shutdown (as SIGTERM does) and waits for it to finish.
    pub async fn shutdown(self) -> Result<WriterReport, GatewayError> {
        self.shutdown.cancel();
        self.task.await.map_err(GatewayError::Panicked)?
    }

    /// Waits until the gateway stops by itself (a signal).
    pub async fn wait(self) -> Result<WriterReport, GatewayError> {
        self.task.await.map_err(GatewayError::Panicked)?
    }
}

pub struct StartOptions {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    /// Overrides `server.listen` (e.g. `127.0.0.1:0` in tests).
    pub listen: Option<SocketAddr>,
    /// Handle SIGTERM, SIGINT and SIGHUP (the CLI does; tests drive shutdown directly).
    pub handle_signals: bool,
}

/// Each client key's spend this month in the ledger, for the budgets; empty when no key
/// has a budget, or when budgets are held in PostgreSQL (`shared`). A ledger that cannot
/// be read counts as no spend, and says so.
fn key_spend_this_month(
    config: &crate::config::Config,
) -> std::collections::HashMap<String, (Money, Money)> {
    if config.ledger.is_postgres()
        || !config
            .client_keys
            .iter()
            .any(|k| k.limits.monthly_budget.is_some())
    {
        return Default::default();
    }
    let (month_start, _) = costfloor_core::calendar::month_bounds_unix_ms(crate::row::unix_ms());
    let spend = ledger::LedgerReader::open(&config.ledger)
        .and_then(|reader| reader.spend_by_client_key_since(month_start));
    match spend {
        Ok(rows) => rows
            .into_iter()
            .map(|(key, cost, counterfactual)| {
                (
                    key,
                    (
                        Money::from_nano_usd(cost),
                        Money::from_nano_usd(counterfactual),
                    ),
                )
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read this month's spend per client key from the ledger; budgets start from zero: {e}");
            Default::default()
        }
    }
}

/// Opens the ledger, binds, and serves until shutdown. The returned gateway is
/// already accepting connections.
pub async fn start(options: StartOptions) -> Result<Gateway, GatewayError> {
    let config = options.config;
    let metrics_handle = metrics::handle();
    ::metrics::counter!(ledger::metric_names::ROWS_LOST).increment(0);
    let replica: Arc<str> = crate::row::replica_name(config.replica.as_deref()).into();
    let spill_path = crate::store::spill_path(
        config.ledger_spill.as_deref(),
        options.config_path.as_deref(),
        &replica,
    );
    let (ledger, writer) = Ledger::open(
        &config.ledger,
        LedgerOptions {
            queue_capacity: config.ledger_queue_capacity,
            backlog_max: config.ledger_backlog_rows,
            spill_path: Some(spill_path),
            ..LedgerOptions::default()
        },
    )
    .map_err(|source| GatewayError::LedgerOpen {
        path: config.ledger.to_string(),
        source,
    })?;
    let listen = options.listen.unwrap_or(config.listen);
    let bind_error = |source| GatewayError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let drain = config.drain;
    let tracker = TaskTracker::new();
    let shared = match &config.ledger {
        ledger::Location::Postgres(url) => Some(
            crate::shared::Shared::open(url, &config.client_keys, tracker.clone())
                .await
                .map_err(|source| GatewayError::LedgerOpen {
                    path: config.ledger.to_string(),
                    source,
                })?,
        ),
        ledger::Location::Sqlite(_) => None,
    };
    let stored = shared
        .as_ref()
        .is_some_and(|s| !s.keys().is_empty() || s.ever_had_keys());
    if config.client_keys.is_empty() && !stored {
        tracing::warn!(
            "no client key is configured{}: the gateway is open to every client that reaches {addr}",
            if shared.is_some() { " or stored in the ledger database" } else { "" }
        );
    }
    let runtime = Runtime::build(config, None)?;
    let shadow =
        crate::shadow::ShadowHub::open(&runtime.config, tracker.clone()).map_err(|source| {
            GatewayError::LedgerOpen {
                path: runtime.config.ledger.to_string(),
                source,
            }
        })?;
    let limits = Arc::new(crate::limits::Limits::new(
        key_spend_this_month(&runtime.config),
        crate::row::unix_ms(),
    ));
    let state = AppState {
        limits,
        shared,
        runtime: Arc::new(ArcSwap::from_pointee(runtime)),
        ledger: ledger.clone(),
        tracker,
        shadow: Arc::new(shadow),
        draining: Arc::new(AtomicBool::new(false)),
        metrics: metrics_handle,
        config_path: options.config_path.map(Arc::new),
        reload_lock: Arc::new(tokio::sync::Mutex::new(())),
        replica,
    };
    let shutdown = CancellationToken::new();
    let sampler = match state.runtime.load().config.sample_interval {
        Some(interval) => {
            let path = state.runtime.load().config.ledger.clone();
            let store =
                ledger::SampleStore::open(&path).map_err(|source| GatewayError::LedgerOpen {
                    path: path.to_string(),
                    source,
                })?;
            Some(tokio::spawn(crate::sampler::run(
                state.clone(),
                Arc::new(store),
                interval,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    if let Some(shared) = &state.shared {
        shared.spawn_refresher(shutdown.clone());
    }
    if options.handle_signals {
        spawn_signal_handlers(state.clone(), shutdown.clone())?;
    }
    let app = router(state.clone());
    let serve_state = state.clone();
    let serve_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut server = Box::pin(crate::listen::serve(listener, app, serve_shutdown.clone()));
        tokio::select! {
            () = &mut server => {}
            () = serve_shutdown.cancelled() => {
                serve_state.draining.store(true, Ordering::Relaxed);
                tracing::info!("shutting down: draining in-flight requests for up to {} s", drain.as_secs());
                if tokio::time::timeout(drain, &mut server).await.is_err() {
                    tracing::warn!("drain deadline passed; closing the remaining connections");
                }
            }
        }
        if let Some(sampler) = sampler {
            let _ = sampler.await;
        }
        // Dropping the server aborts the connections still open: each request either
        // finished or was dropped, and dropped ones queued their rows. Wait for rows
        // still waiting on room.
        drop(server);
        serve_state.tracker.close();
        serve_state.tracker.wait().await;
        ledger.close().await;
        let report = writer.closed().await.map_err(GatewayError::LedgerFlush)?;
        tracing::info!(
            "ledger flushed: {} rows written, {} lost",
            report.rows_written,
            report.rows_lost
        );
        Ok(report)
    });
    Ok(Gateway {
        addr,
        state,
        shutdown,
        task,
    })
}

fn spawn_signal_handlers(state: AppState, shutdown: CancellationToken) -> Result<(), GatewayError> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| GatewayError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    let mut hangup = install(SignalKind::hangup(), "SIGHUP")?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            () = stop.cancelled() => return,
        }
        stop.cancel();
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hangup.recv() => {}
                () = shutdown.cancelled() => return,
            }
            match state.reload().await {
                Ok(summary) => tracing::info!("SIGHUP: config reloaded: {summary}"),
                Err(reason) => tracing::error!(
                    "SIGHUP: config reload rejected, keeping the current config: {}",
                    crate::error::error_chain(&reason)
                ),
            }
        }
    });
    Ok(())
}

/// Loads and validates a config file for `serve --check`.
pub fn check(path: &Path) -> Result<String, config::ConfigError> {
    Ok(config::load(path)?.routing_table())
}
