//! Shadow traffic: a sampled share of a route's requests is mirrored, in the
//! background, to a reference backend, and each pair (the primary's answer and the
//! reference's, both usages, the shadow's cost) is stored through the ledger for
//! `costfloor eval shadow`.
//!
//! The client only ever sees the primary's answer: the copy is sent after the primary
//! answered, in a task of its own, and its failure is counted, never answered. Copies
//! are bounded (`max_in_flight` per route, dropped rather than queued) and capped
//! (`monthly_cap_usd`; sampling stops, logged once, when the month's shadow spend
//! reaches it). Its cost never enters the primary's ledger row. Pairs are written in
//! batches, one transaction for all that arrived while the last one was written.
//!
//! It must not build vendor JSON (the copy goes through `call`) or write SQL (pairs go
//! through `ledger::ShadowStore`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use costfloor_core::money::Money;
use ledger::{ShadowPair, ShadowStore};
use serde::Deserialize;
use tokio_util::task::TaskTracker;
use wire::pair::ClientRequest;

use crate::config::{Config, ConfigError};
use crate::runtime::Runtime;

/// `shadow = { backend = "haiku", sample = 0.02, monthly_cap_usd = 50 }` on a route.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowFile {
    pub backend: String,
    /// The share of the route's requests mirrored, 0 to 1.
    pub sample: f64,
    /// The month's shadow spend at which sampling stops (USD).
    pub monthly_cap_usd: f64,
    /// Copies in flight at once; more are dropped. Default 8.
    pub max_in_flight: Option<u32>,
    /// Keep both answers' text (it is users' text: off by default).
    #[serde(default)]
    pub store_outputs: bool,
    /// Pairs older than this are deleted. Default 90; at least 31 so that a month's
    /// spend is still there to count against the cap.
    pub retention_days: Option<u32>,
}

/// A route's shadow, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// Index into `Config::backends`.
    pub backend: usize,
    pub sample: f64,
    pub monthly_cap: Money,
    pub max_in_flight: u32,
    pub store_outputs: bool,
    pub retention: Duration,
}

impl ShadowFile {
    pub fn validate(
        &self,
        what: &str,
        backend_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<ShadowConfig, ConfigError> {
        let bad = |field: &str, value: String, allowed: &str| {
            ConfigError(format!(
                "{what}.shadow.{field} = {value} is not allowed: expected {allowed}"
            ))
        };
        let backend = backend_index(&self.backend).ok_or_else(|| {
            bad(
                "backend",
                format!("{:?}", self.backend),
                "a configured backend",
            )
        })?;
        if !(self.sample > 0.0 && self.sample <= 1.0) {
            return Err(bad(
                "sample",
                self.sample.to_string(),
                "a share above 0, at most 1",
            ));
        }
        if !(self.monthly_cap_usd.is_finite() && self.monthly_cap_usd >= 0.0) {
            return Err(bad(
                "monthly_cap_usd",
                self.monthly_cap_usd.to_string(),
                "USD, 0 or more",
            ));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(8);
        if max_in_flight == 0 {
            return Err(bad("max_in_flight", "0".into(), "at least 1"));
        }
        let days = self.retention_days.unwrap_or(90);
        if days < 31 {
            return Err(bad("retention_days", days.to_string(), "31 or more"));
        }
        Ok(ShadowConfig {
            backend,
            sample: self.sample,
            monthly_cap: Money::from_usd_f64(self.monthly_cap_usd),
            max_in_flight,
            store_outputs: self.store_outputs,
            retention: Duration::from_secs(u64::from(days) * 86_400),
        })
    }
}

/// Pairs and retention deletes waiting for the next commit.
#[derive(Default)]
struct Pending {
    pairs: Vec<ShadowPair>,
    /// (route, delete pairs started before this Unix ms).
    prunes: Vec<(String, i64)>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes what is pending, in one transaction per batch, unless another task is
/// already writing (it takes this task's pair with the next batch). The writer loops
/// until nothing is left, and re-checks after letting go, so no pair waits behind it.
async fn flush(pending: &Mutex<Pending>, flushing: &AtomicBool, store: &Arc<ShadowStore>) {
    loop {
        if flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        loop {
            let batch = std::mem::take(&mut *lock(pending));
            if batch.pairs.is_empty() && batch.prunes.is_empty() {
                break;
            }
            let store = Arc::clone(store);
            let count = batch.pairs.len();
            let written = tokio::task::spawn_blocking(move || {
                store.insert_many(&batch.pairs)?;
                for (route, before) in &batch.prunes {
                    store.delete_older_than(route, *before)?;
                }
                Ok::<_, ledger::LedgerError>(())
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::error!("{count} shadow pairs could not be stored");
            }
        }
        flushing.store(false, Ordering::Release);
        let empty = {
            let pending = lock(pending);
            pending.pairs.is_empty() && pending.prunes.is_empty()
        };
        if empty {
            return;
        }
    }
}

/// Metric names.
pub const SHADOW_REQUESTS: &str = "costfloor_shadow_requests_total";
pub const SHADOW_COST_NANO_USD: &str = "costfloor_shadow_cost_nano_usd_total";
pub const SHADOW_CAPPED: &str = "costfloor_shadow_capped";

/// One route's running state.
#[derive(Debug, Default)]
struct RouteState {
    in_flight: AtomicU32,
    /// The month (Unix days of its first day) `spent_nusd` counts.
    month: AtomicI64,
    spent_nusd: AtomicI64,
    capped: AtomicBool,
    stored: AtomicU64,
}

/// Every route's shadow state and the pair store, shared by all requests.
pub struct ShadowHub {
    store: Arc<ShadowStore>,
    /// Pairs waiting to be written, committed together (group commit).
    pending: Arc<Mutex<Pending>>,
    /// True while one task writes what is pending.
    flushing: Arc<AtomicBool>,
    routes: ArcSwap<HashMap<String, Arc<RouteState>>>,
    draws: AtomicU64,
    tracker: TaskTracker,
}

/// A copy [`ShadowHub::admit`] let through: it holds one of the route's in-flight slots,
/// which the copy's task gives back.
pub struct Admitted {
    state: Arc<RouteState>,
    shadow: ShadowConfig,
    route: String,
}

/// What the primary answered, for the pair.
pub struct Primary {
    pub request_id: String,
    pub started_at_unix_ms: i64,
    pub task: Option<String>,
    pub backend: String,
    /// The answer's text (`None` for a stream, whose text comes through `streamed`).
    pub text: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// A streamed answer's text and usage, sent by the relay when the stream ends
    /// normally (never, when it fails or the client goes away).
    pub streamed: Option<tokio::sync::oneshot::Receiver<Streamed>>,
}

/// What a streamed primary answered.
#[derive(Debug, Clone)]
pub struct Streamed {
    pub text: String,
    pub usage: wire::TokenUsage,
}

fn month_start_ms(now_ms: i64) -> i64 {
    costfloor_core::calendar::month_bounds_unix_ms(now_ms).0
}

impl ShadowHub {
    /// Opens the pair store and reads each shadowed route's spend this month.
    pub fn open(config: &Config, tracker: TaskTracker) -> Result<ShadowHub, ledger::LedgerError> {
        let hub = ShadowHub {
            store: Arc::new(ShadowStore::open(&config.ledger)?),
            pending: Arc::new(Mutex::new(Pending::default())),
            flushing: Arc::new(AtomicBool::new(false)),
            routes: ArcSwap::from_pointee(HashMap::new()),
            draws: AtomicU64::new(0),
            tracker,
        };
        hub.refresh(config);
        Ok(hub)
    }

    /// Adds state for routes new in `config`, keeping the running state of the others.
    pub fn refresh(&self, config: &Config) {
        let now = crate::row::unix_ms();
        let start = month_start_ms(now);
        let current = self.routes.load_full();
        let mut routes = HashMap::new();
        for route in config.routes.iter().filter(|r| r.shadow.is_some()) {
            let state = current.get(&route.name).cloned().unwrap_or_else(|| {
                let state = RouteState::default();
                let spent = self.store.spend_since(&route.name, start).unwrap_or_else(|e| {
                    tracing::warn!(route = %route.name, "cannot read this month's shadow spend: {e}");
                    0
                });
                state.month.store(start, Ordering::Release);
                state.spent_nusd.store(spent, Ordering::Release);
                Arc::new(state)
            });
            routes.insert(route.name.clone(), state);
        }
        self.routes.store(Arc::new(routes));
    }

    /// True for a sampled share `sample` of calls: a counter through SplitMix64.
    fn sampled(&self, sample: f64) -> bool {
        if sample >= 1.0 {
            return true;
        }
        let mut z = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < sample
    }

    /// Admits a copy of a request `primary_backend` answered on `route` when the route
    /// shadows, the request is sampled, the month's spend is under the cap and a slot is
    /// free; the caller then gathers what the pair needs and calls [`ShadowHub::mirror`].
    /// Unsampled requests stop at the first checks, before any other work.
    pub fn admit(
        &self,
        runtime: &Runtime,
        route: &crate::config::RouteConfig,
        primary_backend: &str,
        started_at_unix_ms: i64,
    ) -> Option<Admitted> {
        let shadow = route.shadow.as_ref()?;
        // A request that fell back to the reference backend itself has nothing to be
        // compared with.
        if runtime.backends[shadow.backend].config.name == primary_backend {
            return None;
        }
        if !self.sampled(shadow.sample) {
            return None;
        }
        let state = self.routes.load().get(&route.name).cloned()?;
        let counter = |result: &'static str| ::metrics::counter!(SHADOW_REQUESTS, "route" => route.name.clone(), "result" => result);
        // A new month starts the spend again.
        let start = month_start_ms(started_at_unix_ms);
        if state.month.swap(start, Ordering::AcqRel) != start {
            state.spent_nusd.store(0, Ordering::Release);
            state.capped.store(false, Ordering::Release);
            ::metrics::gauge!(SHADOW_CAPPED, "route" => route.name.clone()).set(0.0);
        }
        if state.spent_nusd.load(Ordering::Acquire) >= shadow.monthly_cap.nano_usd() {
            if !state.capped.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    route = %route.name,
                    "shadow sampling stopped: this month's shadow spend reached monthly_cap_usd ({})",
                    shadow.monthly_cap.fine()
                );
                ::metrics::gauge!(SHADOW_CAPPED, "route" => route.name.clone()).set(1.0);
            }
            counter("capped").increment(1);
            return None;
        }
        let taken = state
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shadow.max_in_flight).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            counter("dropped").increment(1);
            return None;
        }
        Some(Admitted {
            state,
            shadow: shadow.clone(),
            route: route.name.clone(),
        })
    }

    /// Sends the admitted copy of `request` in the background and stores the pair;
    /// returns at once.
    pub fn mirror(
        &self,
        admitted: Admitted,
        runtime: &Arc<Runtime>,
        request: &ClientRequest,
        primary: Primary,
    ) {
        let Admitted {
            state,
            shadow,
            route: route_name,
        } = admitted;
        let copy = request.without_stream();
        let prompt = shadow.store_outputs.then(|| request.transcript());
        let runtime = Arc::clone(runtime);
        let store = Arc::clone(&self.store);
        let (pending, flushing) = (Arc::clone(&self.pending), Arc::clone(&self.flushing));
        let mut primary = primary;
        let primary_wait = runtime.backends[shadow.backend].config.timeouts.total;
        self.tracker.spawn(async move {
            let backend = Arc::clone(&runtime.backends[shadow.backend]);
            let answer = crate::call::call(&runtime, &backend, &copy).await;
            state.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(streamed) = primary.streamed.take() {
                if let Ok(Ok(streamed)) = tokio::time::timeout(primary_wait, streamed).await {
                    primary.text = Some(streamed.text);
                    primary.input_tokens = streamed.usage.total_input_tokens();
                    primary.output_tokens = streamed.usage.output_tokens;
                }
            }
            let mut pair = ShadowPair {
                request_id: primary.request_id,
                started_at_unix_ms: primary.started_at_unix_ms,
                route: route_name.clone(),
                task: primary.task,
                primary_backend: primary.backend,
                shadow_backend: backend.config.name.clone(),
                prompt,
                primary_output: primary.text.filter(|_| shadow.store_outputs),
                shadow_output: None,
                primary_input_tokens: primary.input_tokens as i64,
                primary_output_tokens: primary.output_tokens as i64,
                shadow_input_tokens: 0,
                shadow_output_tokens: 0,
                shadow_cost_nusd: 0,
                shadow_latency_us: 0,
                shadow_error: None,
            };
            let result = match answer {
                Ok(answer) => {
                    pair.shadow_output = shadow.store_outputs.then_some(answer.text);
                    pair.shadow_input_tokens = answer.usage.total_input_tokens() as i64;
                    pair.shadow_output_tokens = answer.usage.output_tokens as i64;
                    pair.shadow_cost_nusd = answer.cost.nano_usd();
                    pair.shadow_latency_us = answer.latency.as_micros() as i64;
                    state
                        .spent_nusd
                        .fetch_add(pair.shadow_cost_nusd, Ordering::AcqRel);
                    ::metrics::counter!(SHADOW_COST_NANO_USD, "route" => route_name.clone())
                        .increment(pair.shadow_cost_nusd.max(0) as u64);
                    "sent"
                }
                Err(failure) => {
                    pair.shadow_latency_us = failure.latency.as_micros() as i64;
                    pair.shadow_error = Some(failure.message);
                    "error"
                }
            };
            ::metrics::counter!(SHADOW_REQUESTS, "route" => route_name.clone(), "result" => result)
                .increment(1);
            if state.stored.fetch_add(1, Ordering::AcqRel) % 500 == 0 {
                let before = pair.started_at_unix_ms - shadow.retention.as_millis() as i64;
                lock(&pending).prunes.push((route_name.clone(), before));
            }
            lock(&pending).pairs.push(pair);
            flush(&pending, &flushing, &store).await;
        });
    }
}
