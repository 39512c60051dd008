//! The ledger row of one request, written exactly once ([`RowGuard`]), priced with the
//! function `plan` uses, and mirrored into the Prometheus series.
//!
//! It owns pricing a request. It must not read vendor JSON (usage arrives as
//! `wire::TokenUsage`) or write SQL (rows go through the `ledger` channel).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use costfloor_core::cost::{request_cost, TokenCounts};
use costfloor_core::money::Money;
use ledger::{LedgerHandle, LedgerRow, Outcome};
use tokio_util::task::TaskTracker;
use wire::TokenUsage;

use crate::config::BackendConfig;
use crate::metrics;
use crate::runtime::{Backend, RouteChoice};

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The ledger row of one request, written exactly once: by `commit`, or on drop when
/// the client went away first.
pub(crate) struct RowGuard {
    row: Option<LedgerRow>,
    ledger: LedgerHandle,
    /// Tracks the tasks that wait for ledger queue room; shutdown waits for them.
    tracker: TaskTracker,
    pub started: Instant,
    pub upstream_time: Duration,
    /// The backend that served the request, for its metric handles.
    pub backend: Option<Arc<Backend>>,
    /// The key's claim on its budget and token rate, settled with the row's cost.
    pub reservation: Option<crate::limits::Reservation>,
    /// The key's reservation in the shared database, settled the same way.
    pub hold: Option<crate::shared::Hold>,
}

impl RowGuard {
    pub fn new(
        ledger: LedgerHandle,
        tracker: TaskTracker,
        request_id: String,
        started: Instant,
        replica: &str,
    ) -> RowGuard {
        let mut row = empty_row(request_id);
        row.replica = Some(replica.to_owned());
        RowGuard {
            row: Some(row),
            ledger,
            tracker,
            started,
            upstream_time: Duration::ZERO,
            backend: None,
            reservation: None,
            hold: None,
        }
    }

    pub fn row(&mut self) -> &mut LedgerRow {
        // The row is only taken by commit/drop, which consume or end the guard.
        self.row.get_or_insert_with(|| empty_row(String::new()))
    }

    fn finalize(&mut self, row: &mut LedgerRow) {
        if let Some(hold) = self.hold.take() {
            hold.settle(
                Money::from_nano_usd(row.cost_nusd),
                Money::from_nano_usd(row.counterfactual_cost_nusd),
            );
        }
        if let Some(reservation) = self.reservation.take() {
            let tokens = row.input_tokens
                + row.cache_read_tokens
                + row.cache_write_tokens
                + row.cache_write_1h_tokens
                + row.output_tokens;
            reservation.settle(
                Money::from_nano_usd(row.cost_nusd),
                Money::from_nano_usd(row.counterfactual_cost_nusd),
                tokens.max(0) as u64,
            );
        }
        let total = self.started.elapsed();
        row.finished_at_unix_ms = unix_ms();
        row.total_us = total.as_micros() as i64;
        row.overhead_us = total.saturating_sub(self.upstream_time).as_micros() as i64;
        observe(row, self.backend.as_deref());
    }

    /// Writes the row, waiting for queue room (backpressure). The wait runs in its own
    /// task, so a client that disconnects meanwhile cannot lose the row.
    pub async fn commit(mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            let ledger = self.ledger.clone();
            let _ = self
                .tracker
                .spawn(async move { ledger.record(row).await })
                .await;
        }
    }

    /// Queues the row without waiting: used where nothing should hold the caller back.
    pub fn commit_detached(mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            let ledger = self.ledger.clone();
            self.tracker.spawn(async move { ledger.record(row).await });
        }
    }

    /// Moves the row out into a new guard, leaving this one empty (it then writes
    /// nothing on drop).
    pub fn take(&mut self) -> RowGuard {
        RowGuard {
            row: self.row.take(),
            ledger: self.ledger.clone(),
            tracker: self.tracker.clone(),
            started: self.started,
            upstream_time: self.upstream_time,
            backend: self.backend.take(),
            reservation: self.reservation.take(),
            hold: self.hold.take(),
        }
    }

    /// Prices `usage` as served by `backend` on `route`, and records it.
    pub fn record_usage(
        &mut self,
        backend: &BackendConfig,
        route: &RouteChoice,
        usage: &TokenUsage,
        estimated: bool,
    ) {
        let (cost, counterfactual) = price(backend, route, usage);
        let row = self.row();
        row.input_tokens = usage.input_tokens as i64;
        row.cache_read_tokens = usage.cache_read_tokens as i64;
        row.cache_write_tokens = usage.cache_write_tokens as i64;
        row.cache_write_1h_tokens = usage.cache_write_1h_tokens as i64;
        row.output_tokens = usage.output_tokens as i64;
        row.cost_nusd = cost.nano_usd();
        row.counterfactual_cost_nusd = counterfactual.nano_usd();
        row.estimated = estimated;
    }
}

fn empty_row(request_id: String) -> LedgerRow {
    LedgerRow {
        request_id,
        started_at_unix_ms: unix_ms(),
        finished_at_unix_ms: 0,
        client_key: None,
        route: String::new(),
        backend: String::new(),
        model: String::new(),
        requested_model: None,
        task: None,
        stream: false,
        input_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 0,
        ttft_us: None,
        total_us: 0,
        overhead_us: 0,
        http_status: 0,
        outcome: Outcome::Success,
        error_kind: None,
        fallback_chain: String::new(),
        cost_nusd: 0,
        counterfactual_cost_nusd: 0,
        estimated: false,
        self_hosted: false,
        input_estimate: None,
        replica: None,
    }
}

/// The name this process's rows record: `server.replica`, else `COSTFLOOR_REPLICA`,
/// else `HOSTNAME` (a Kubernetes pod's name), else `/etc/hostname`, else `local`.
pub fn replica_name(configured: Option<&str>) -> String {
    let nonempty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    configured
        .map(str::to_owned)
        .and_then(nonempty)
        .or_else(|| std::env::var("COSTFLOOR_REPLICA").ok().and_then(nonempty))
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(nonempty))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .and_then(nonempty)
        })
        .unwrap_or_else(|| "local".to_owned())
}

impl Drop for RowGuard {
    fn drop(&mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        row.outcome = Outcome::ClientDisconnect;
        row.http_status = 499;
        if row.error_kind.is_none() {
            row.error_kind = Some("client_disconnect".to_string());
        }
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            if tokio::runtime::Handle::try_current().is_ok() {
                let ledger = self.ledger.clone();
                self.tracker.spawn(async move { ledger.record(row).await });
            } else {
                self.ledger
                    .note_lost(&row, "no runtime to wait for queue room");
            }
        }
    }
}

/// The token classes as the rate card prices them.
fn token_counts(usage: &TokenUsage) -> TokenCounts {
    TokenCounts {
        input: usage.input_tokens,
        cache_read: usage.cache_read_tokens,
        cache_write: usage.cache_write_tokens,
        cache_write_1h: usage.cache_write_1h_tokens,
        output: usage.output_tokens,
    }
}

/// (cost, counterfactual): a self-hosted backend costs nothing per request and is
/// compared with the route's reference API; an API backend's cost is both.
fn price(backend: &BackendConfig, route: &RouteChoice, usage: &TokenUsage) -> (Money, Money) {
    let tokens = token_counts(usage);
    if backend.self_hosted() {
        let counterfactual = route
            .reference_api
            .as_ref()
            .map_or(Money::ZERO, |m| request_cost(m, &tokens));
        (Money::ZERO, counterfactual)
    } else if let Some(model) = &backend.price {
        let cost = request_cost(model, &tokens);
        (cost, cost)
    } else {
        (Money::ZERO, Money::ZERO)
    }
}

/// The most a request of `tokens` can cost on `route`, over every target it may fall
/// back to: what a key's budget reserves before forwarding.
pub(crate) fn cost_bound(
    config: &crate::config::Config,
    route: &RouteChoice,
    tokens: &TokenUsage,
    on: crate::limits::BudgetOn,
) -> Money {
    route
        .targets
        .iter()
        .filter_map(|&index| config.backends.get(index))
        .map(|backend| {
            let (cost, counterfactual) = price(backend, route, tokens);
            match on {
                crate::limits::BudgetOn::Actual => cost,
                crate::limits::BudgetOn::Counterfactual => counterfactual,
            }
        })
        .max()
        .unwrap_or(Money::ZERO)
}

/// What `usage` costs on `backend` itself: zero on a self-hosted one, its catalog
/// price on an API one (eval's answers, shadow copies).
pub(crate) fn backend_cost(backend: &BackendConfig, usage: &TokenUsage) -> Money {
    match (&backend.price, backend.self_hosted()) {
        (Some(model), false) => request_cost(model, &token_counts(usage)),
        _ => Money::ZERO,
    }
}

/// Prometheus series for one finished request.
fn observe(row: &LedgerRow, backend: Option<&Backend>) {
    let name = if row.backend.is_empty() {
        "none"
    } else {
        row.backend.as_str()
    };
    ::metrics::counter!(
        metrics::REQUESTS,
        "backend" => name.to_string(),
        "route" => row.route.clone(),
        "status" => status_label(row.http_status),
    )
    .increment(1);
    ::metrics::histogram!(metrics::OVERHEAD).record(row.overhead_us as f64 / 1e6);
    let Some(backend) = backend else {
        ::metrics::histogram!(metrics::LATENCY, "backend" => name.to_string())
            .record(row.total_us as f64 / 1e6);
        return;
    };
    let handles = &backend.metrics;
    let tokens = [
        row.input_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.cache_write_1h_tokens,
        row.output_tokens,
    ];
    for (counter, count) in handles.tokens.iter().zip(tokens) {
        if count > 0 {
            counter.increment(count as u64);
        }
    }
    if row.cost_nusd > 0 {
        handles.cost_nano_usd.increment(row.cost_nusd as u64);
    }
    if row.counterfactual_cost_nusd > 0 {
        handles
            .counterfactual_nano_usd
            .increment(row.counterfactual_cost_nusd as u64);
    }
    handles.latency.record(row.total_us as f64 / 1e6);
    if let Some(ttft) = row.ttft_us {
        handles.ttft.record(ttft as f64 / 1e6);
    }
}

/// Status labels without an allocation for the common ones.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        400 => "400".into(),
        404 => "404".into(),
        429 => "429".into(),
        499 => "499".into(),
        502 => "502".into(),
        503 => "503".into(),
        529 => "529".into(),
        other => other.to_string().into(),
    }
}
