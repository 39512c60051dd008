//! The HTTP server: endpoints, the shared state, config reload, and graceful shutdown
//! that drains in-flight requests and flushes the ledger.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger::{Ledger, LedgerHandle, LedgerOptions, WriterReport};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::circuit::CircuitState;
use crate::config::{self, Config};
use crate::metrics;
use crate::proxy::{self, Format};
use crate::runtime::Runtime;

/// State shared by every request: cheap to clone, read without locks.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub ledger: LedgerHandle,
    pub tracker: TaskTracker,
    draining: Arc<AtomicBool>,
    metrics: PrometheusHandle,
    config_path: Option<Arc<PathBuf>>,
    reload_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Re-reads the config file and swaps it in; in-flight requests keep the old one.
    /// An invalid config is rejected and the old one keeps serving.
    pub async fn reload(&self) -> Result<String, String> {
        let _serial = self.reload_lock.lock().await;
        let Some(path) = &self.config_path else {
            return Err("no config file to reload from".to_string());
        };
        let config = config::load(path).map_err(|e| e.to_string())?;
        let current = self.runtime.load_full();
        if config.listen != current.config.listen || config.ledger != current.config.ledger {
            tracing::warn!(
                "server.listen and server.ledger changes take effect only after a restart"
            );
        }
        let runtime = Runtime::build(config, Some(&current))?;
        let summary = format!(
            "{} backends, {} routes",
            runtime.backends.len(),
            runtime.config.routes.len()
        );
        self.runtime.store(Arc::new(runtime));
        Ok(summary)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/admin/reload", post(admin_reload))
        .fallback(not_found)
        .layer(axum::middleware::map_response(tag_every_response))
        .with_state(state)
}

/// Every response carries the three `x-costfloor-*` headers; the request path sets
/// them, and this fills them in on the others (health, models, metrics, 404s).
async fn tag_every_response(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(proxy::HEADER_REQUEST_ID) {
        if let Ok(id) = http::HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()) {
            headers.insert(proxy::HEADER_REQUEST_ID, id);
        }
        headers.insert(proxy::HEADER_ROUTE, http::HeaderValue::from_static("none"));
        headers.insert(
            proxy::HEADER_BACKEND,
            http::HeaderValue::from_static("none"),
        );
    }
    response
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy::handle(state, Format::OpenAi, headers, body).await
}

async fn messages(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(state, Format::Anthropic, headers, body).await
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let names = state.runtime.load().model_names();
    if headers.contains_key("anthropic-version") {
        let data: Vec<_> = names
            .iter()
            .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        axum::Json(json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        }))
        .into_response()
    } else {
        let data: Vec<_> = names
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "costfloor"}))
            .collect();
        axum::Json(json!({"object": "list", "data": data})).into_response()
    }
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
    if problems.is_empty() {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "problems": problems})),
        )
            .into_response()
    }
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

async fn admin_reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = state.runtime.load().config.admin_key.clone();
    let Some(admin) = admin else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "admin endpoints are off: set server.admin_key_env"})),
        )
            .into_response();
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    if presented != Some(admin.expose()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid admin key"})),
        )
            .into_response();
    }
    match state.reload().await {
        Ok(summary) => {
            tracing::info!("config reloaded: {summary}");
            (
                StatusCode::OK,
                axum::Json(json!({"reloaded": true, "summary": summary})),
            )
                .into_response()
        }
        Err(reason) => {
            tracing::error!("config reload rejected, keeping the current config: {reason}");
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"reloaded": false, "error": reason})),
            )
                .into_response()
        }
    }
}

async fn not_found(uri: http::Uri) -> Response {
    let message = format!("no such endpoint: {}", uri.path());
    let body = if uri.path().starts_with("/v1/messages") {
        wire::error::anthropic_body(wire::ApiErrorKind::NotFound, &message)
    } else {
        wire::error::openai_body(wire::ApiErrorKind::NotFound, &message, None, None)
    };
    (
        StatusCode::NOT_FOUND,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A running gateway, started by [`start`].
pub struct Gateway {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<WriterReport>>,
}

impl Gateway {
    /// Begins a graceful shutdown (as SIGTERM does) and waits for it to finish.
    pub async fn shutdown(self) -> Result<WriterReport> {
        self.shutdown.cancel();
        self.task.await.context("the gateway task panicked")?
    }

    /// Waits until the gateway stops by itself (a signal).
    pub async fn wait(self) -> Result<WriterReport> {
        self.task.await.context("the gateway task panicked")?
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

/// Opens the ledger, binds, and serves until shutdown. The returned gateway is
/// already accepting connections.
pub async fn start(options: StartOptions) -> Result<Gateway> {
    let config = options.config;
    let metrics_handle = metrics::handle();
    ::metrics::counter!(ledger::metric_names::ROWS_LOST).increment(0);
    let (ledger, writer) = Ledger::open(
        &config.ledger,
        LedgerOptions {
            queue_capacity: config.ledger_queue_capacity,
            ..LedgerOptions::default()
        },
    )
    .with_context(|| format!("opening the ledger {}", config.ledger.display()))?;
    let listen = options.listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let drain = config.drain;
    let runtime = Runtime::build(config, None).map_err(anyhow::Error::msg)?;
    let state = AppState {
        runtime: Arc::new(ArcSwap::from_pointee(runtime)),
        ledger: ledger.clone(),
        tracker: TaskTracker::new(),
        draining: Arc::new(AtomicBool::new(false)),
        metrics: metrics_handle,
        config_path: options.config_path.map(Arc::new),
        reload_lock: Arc::new(tokio::sync::Mutex::new(())),
    };
    let shutdown = CancellationToken::new();
    if options.handle_signals {
        spawn_signal_handlers(state.clone(), shutdown.clone())?;
    }
    let app = router(state.clone());
    let serve_state = state.clone();
    let serve_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let stop = serve_shutdown.clone();
        // Responses are small and latency matters: no Nagle delay on client sockets.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        let mut server = std::pin::pin!(std::future::IntoFuture::into_future(server));
        tokio::select! {
            result = &mut server => result.context("the HTTP server failed")?,
            () = serve_shutdown.cancelled() => {
                serve_state.draining.store(true, Ordering::Relaxed);
                tracing::info!("shutting down: draining in-flight requests for up to {} s", drain.as_secs());
                if tokio::time::timeout(drain, &mut server).await.is_err() {
                    tracing::warn!("drain deadline passed; closing the remaining connections");
                }
            }
        }
        // The server future is gone: every request either finished or was dropped,
        // and dropped ones queued their rows. Wait for rows still waiting on room.
        serve_state.tracker.close();
        serve_state.tracker.wait().await;
        ledger.close().await;
        let report = writer.closed().await.context("flushing the ledger")?;
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

fn spawn_signal_handlers(state: AppState, shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
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
                    "SIGHUP: config reload rejected, keeping the current config: {reason}"
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
