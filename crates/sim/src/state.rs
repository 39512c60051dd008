//! Shared state of a running simulator: the fault plan, counters, metrics, and the
//! simulated prompt caches.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{FaultKind, FaultPlan, FaultStep, SimConfig};
use crate::metrics::{self, Gauges, MetricValues};
use crate::text::splitmix64;

/// Beyond this many remembered prefixes, the simulated caches start afresh.
const CACHE_CAPACITY: usize = 1 << 20;

/// Counters returned by `GET /sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// API requests received (`/v1/chat/completions`, `/v1/messages`,
    /// `/v1/messages/count_tokens`, `/v1/models`), valid or not.
    pub requests_total: u64,
    /// The same, by path.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Faults injected, by kind (every kind is listed, from 0).
    pub faults_injected: BTreeMap<String, u64>,
    /// Streamed responses started.
    pub streams_started: u64,
    /// Streams that sent their terminal event (`message_stop` / `data: [DONE]`).
    pub streams_completed: u64,
    /// Streams dropped by the client before their end.
    pub streams_cancelled: u64,
    /// Streams ended on purpose by a mid-stream fault.
    pub streams_faulted: u64,
    /// Generation requests being handled now (waiting, generating or streaming).
    pub in_flight: u64,
    /// Tokens of the requests that were answered (not those refused by a fault).
    pub tokens: TokenStats,
    /// TCP connections accepted (HTTP/1.1 or HTTP/2 alike).
    #[serde(default)]
    pub connections_accepted: u64,
}

/// Token totals, split as the Anthropic usage is: total input =
/// `input + cache_creation_input + cache_read_input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Uncached input tokens.
    pub input: u64,
    /// Input tokens written to the simulated cache (Anthropic only).
    pub cache_creation_input: u64,
    /// Input tokens read from the simulated cache (OpenAI `cached_tokens` too).
    pub cache_read_input: u64,
    /// Output tokens delivered: the streamed token deltas sent, plus the output of
    /// complete non-streamed responses.
    pub output: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests_total: u64,
    by_endpoint: BTreeMap<String, u64>,
    faults: BTreeMap<FaultKind, u64>,
    streams_started: u64,
    streams_completed: u64,
    streams_cancelled: u64,
    streams_faulted: u64,
    tokens: TokenStats,
    metrics: MetricValues,
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    plan: Mutex<FaultPlan>,
    draws: AtomicU64,
    ids: AtomicU64,
    counters: Mutex<Counters>,
    in_flight: AtomicU64,
    connections: AtomicU64,
    running: AtomicU64,
    waiting: AtomicU64,
    slots: Option<Arc<Semaphore>>,
    cache: Mutex<HashSet<u64>>,
    /// Stored Responses (`store`, the default): id → the conversation up to and
    /// including the answer, for `previous_response_id`.
    responses: Mutex<StoredResponses>,
}

/// At most [`STORED_RESPONSES`] stored responses; the oldest go first.
#[derive(Debug, Default)]
struct StoredResponses {
    by_id: std::collections::HashMap<String, Vec<crate::text::Segment>>,
    order: std::collections::VecDeque<String>,
}

/// How many Responses the simulator keeps for `previous_response_id`.
pub const STORED_RESPONSES: usize = 10_000;

/// The state of one simulator, cheap to clone and shared by its handlers.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl SimState {
    /// A fresh state; the config's fault plan becomes the current plan.
    pub fn new(config: SimConfig) -> SimState {
        let slots = config
            .max_running
            .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX))));
        SimState {
            inner: Arc::new(Inner {
                responses: Mutex::new(StoredResponses::default()),
                plan: Mutex::new(config.faults.clone()),
                draws: AtomicU64::new(0),
                ids: AtomicU64::new(0),
                counters: Mutex::new(Counters::default()),
                in_flight: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                running: AtomicU64::new(0),
                waiting: AtomicU64::new(0),
                slots,
                cache: Mutex::new(HashSet::new()),
                config,
            }),
        }
    }

    /// The configuration this state was made with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The current fault plan, with the `count`s that remain.
    pub fn faults(&self) -> FaultPlan {
        lock(&self.inner.plan).clone()
    }

    /// Replaces the fault plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.inner.plan) = plan;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        let c = lock(&self.inner.counters);
        SimStats {
            requests_total: c.requests_total,
            by_endpoint: c.by_endpoint.clone(),
            faults_injected: FaultKind::ALL
                .iter()
                .map(|k| {
                    (
                        k.as_str().to_string(),
                        c.faults.get(k).copied().unwrap_or(0),
                    )
                })
                .collect(),
            streams_started: c.streams_started,
            streams_completed: c.streams_completed,
            streams_cancelled: c.streams_cancelled,
            streams_faulted: c.streams_faulted,
            in_flight: self.inner.in_flight.load(Ordering::Relaxed),
            tokens: c.tokens.clone(),
            connections_accepted: self.inner.connections.load(Ordering::Relaxed),
        }
    }

    /// Counts a TCP connection accepted.
    pub(crate) fn accepted(&self) {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        let running = self.inner.running.load(Ordering::Relaxed);
        let kv_cache_usage = match self.inner.config.max_running {
            Some(max) if max > 0 => running as f64 / f64::from(max),
            _ => 0.0,
        };
        let gauges = Gauges {
            running,
            waiting: self.inner.waiting.load(Ordering::Relaxed),
            kv_cache_usage,
        };
        let values = lock(&self.inner.counters).metrics.clone();
        match self.inner.config.metrics_format {
            crate::config::MetricsFormat::Vllm => {
                metrics::render(self.inner.config.served_model_name(), gauges, &values)
            }
            crate::config::MetricsFormat::Llamacpp => metrics::render_llamacpp(gauges, &values),
        }
    }

    pub(crate) fn count_request(&self, endpoint: &str) {
        let mut c = lock(&self.inner.counters);
        c.requests_total += 1;
        *c.by_endpoint.entry(endpoint.to_string()).or_default() += 1;
    }

    pub(crate) fn count_fault(&self, kind: FaultKind) {
        tracing::debug!(fault = kind.as_str(), "injecting fault");
        *lock(&self.inner.counters).faults.entry(kind).or_default() += 1;
    }

    /// Records the input side of an answered request.
    pub(crate) fn count_input(&self, uncached: u64, cache_creation: u64, cache_read: u64) {
        let mut c = lock(&self.inner.counters);
        c.tokens.input += uncached;
        c.tokens.cache_creation_input += cache_creation;
        c.tokens.cache_read_input += cache_read;
        c.metrics.prompt_tokens += uncached + cache_creation + cache_read;
    }

    /// Records a complete non-streamed response.
    pub(crate) fn count_unary(&self, arrived: Instant, ttft_s: f64, output: u64, length: bool) {
        let mut c = lock(&self.inner.counters);
        c.tokens.output += output;
        c.metrics.generation_tokens += output;
        c.metrics.ttft.observe(ttft_s);
        c.metrics.e2e.observe(arrived.elapsed().as_secs_f64());
        if length {
            c.metrics.success_length += 1;
        } else {
            c.metrics.success_stop += 1;
        }
    }

    /// The next step of the plan that applies, using one of its `count`.
    pub(crate) fn next_planned_fault(&self) -> Option<FaultStep> {
        let mut plan = lock(&self.inner.plan);
        for step in plan.steps.iter_mut() {
            if step.count == Some(0) {
                continue;
            }
            if let Some(p) = step.probability {
                if self.draw() >= p {
                    continue;
                }
            }
            if let Some(n) = step.count.as_mut() {
                *n -= 1;
            }
            return Some(step.clone());
        }
        None
    }

    /// A uniform draw in [0, 1), deterministic for a given seed and request order.
    fn draw(&self) -> f64 {
        let n = self.inner.draws.fetch_add(1, Ordering::Relaxed);
        let x = splitmix64(self.inner.config.seed ^ splitmix64(n));
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Keeps a response's conversation for `previous_response_id`.
    pub(crate) fn store_response(&self, id: &str, conversation: Vec<crate::text::Segment>) {
        let mut stored = lock(&self.inner.responses);
        if stored.order.len() >= STORED_RESPONSES {
            if let Some(oldest) = stored.order.pop_front() {
                stored.by_id.remove(&oldest);
            }
        }
        stored.order.push_back(id.to_owned());
        stored.by_id.insert(id.to_owned(), conversation);
    }

    /// The conversation of a stored response.
    pub(crate) fn stored_response(&self, id: &str) -> Option<Vec<crate::text::Segment>> {
        lock(&self.inner.responses).by_id.get(id).cloned()
    }

    /// A fresh identifier: `prefix` followed by `len` base-62 characters.
    pub(crate) fn new_id(&self, prefix: &str, len: usize) -> String {
        let n = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let mut x = splitmix64(self.inner.config.seed.rotate_left(17) ^ splitmix64(n));
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        for i in 0..len {
            if i % 10 == 9 {
                x = splitmix64(x);
            }
            out.push(char::from(BASE62[usize::try_from(x % 62).unwrap_or(0)]));
            x /= 62;
        }
        out
    }

    /// Looks up prefix hashes in the simulated cache: returns the largest `i` among
    /// `0..=last` whose `hashes[i]` is stored, then stores `hashes[j]` for each `j` in
    /// `store`.
    pub(crate) fn cache_lookup(
        &self,
        hashes: &[u64],
        last: usize,
        store: &[usize],
    ) -> Option<usize> {
        let mut cache = lock(&self.inner.cache);
        let hit = (0..=last.min(hashes.len().saturating_sub(1)))
            .rev()
            .find(|&i| hashes.get(i).is_some_and(|h| cache.contains(h)));
        if cache.len() + store.len() > CACHE_CAPACITY {
            cache.clear();
        }
        cache.extend(store.iter().filter_map(|&j| hashes.get(j).copied()));
        hit
    }

    /// Waits for a generation slot (`max_running`), counting the request as waiting
    /// meanwhile, then as running until the returned guard drops.
    pub(crate) async fn run_slot(&self) -> RunSlot {
        let permit = match &self.inner.slots {
            None => None,
            Some(sem) => {
                let _waiting = GaugeGuard::new(self.clone(), Gauge::Waiting);
                Arc::clone(sem).acquire_owned().await.ok()
            }
        };
        RunSlot {
            _running: GaugeGuard::new(self.clone(), Gauge::Running),
            _permit: permit,
        }
    }

    /// The current decode step of the capacity model (`base_step_ms +
    /// per_sequence_step_ms × running`), `None` without it.
    pub(crate) fn step(&self) -> Option<std::time::Duration> {
        let model = self.inner.config.capacity_model()?;
        let running = self.inner.running.load(Ordering::Relaxed);
        Some(std::time::Duration::from_secs_f64(
            model.step_ms(running).max(0.0) / 1000.0,
        ))
    }

    /// Counts a generation request in flight until the guard drops.
    pub(crate) fn in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(self.clone(), Gauge::InFlight)
    }

    fn gauge(&self, g: Gauge) -> &AtomicU64 {
        match g {
            Gauge::InFlight => &self.inner.in_flight,
            Gauge::Running => &self.inner.running,
            Gauge::Waiting => &self.inner.waiting,
        }
    }

    fn with_counters<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut lock(&self.inner.counters))
    }
}

#[derive(Debug, Clone, Copy)]
enum Gauge {
    InFlight,
    Running,
    Waiting,
}

/// Holds a gauge up by one while alive.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    state: SimState,
    gauge: Gauge,
}

impl GaugeGuard {
    fn new(state: SimState, gauge: Gauge) -> GaugeGuard {
        state.gauge(gauge).fetch_add(1, Ordering::Relaxed);
        GaugeGuard { state, gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.state.gauge(self.gauge).fetch_sub(1, Ordering::Relaxed);
    }
}

/// A generation slot: counted as running, holding a `max_running` permit.
#[derive(Debug)]
pub(crate) struct RunSlot {
    _running: GaugeGuard,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Running,
    Completed,
    Faulted,
}

/// Travels inside a streamed body; its `Drop` tells a cancelled stream (the client
/// went away) from a completed or deliberately broken one.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    state: SimState,
    _in_flight: GaugeGuard,
    _slot: RunSlot,
    outcome: Outcome,
    arrived: Instant,
    last_token: Option<Instant>,
    length: bool,
}

impl StreamGuard {
    /// Starts a stream. `length`: whether it will end by `max_tokens`.
    pub(crate) fn new(
        state: SimState,
        in_flight: GaugeGuard,
        slot: RunSlot,
        arrived: Instant,
        length: bool,
    ) -> StreamGuard {
        state.with_counters(|c| c.streams_started += 1);
        StreamGuard {
            state,
            _in_flight: in_flight,
            _slot: slot,
            outcome: Outcome::Running,
            arrived,
            last_token: None,
            length,
        }
    }

    /// The current decode step of the capacity model, if the sim has one.
    pub(crate) fn step(&self) -> Option<std::time::Duration> {
        self.state.step()
    }

    /// A token delta is being sent.
    pub(crate) fn on_token(&mut self) {
        let now = Instant::now();
        let previous = self.last_token.replace(now);
        self.state.with_counters(|c| {
            c.tokens.output += 1;
            c.metrics.generation_tokens += 1;
            match previous {
                None => c.metrics.ttft.observe((now - self.arrived).as_secs_f64()),
                Some(p) => c.metrics.itl.observe((now - p).as_secs_f64()),
            }
        });
    }

    /// The terminal event is being sent.
    pub(crate) fn complete(&mut self) {
        if self.outcome != Outcome::Running {
            return;
        }
        self.outcome = Outcome::Completed;
        let e2e = self.arrived.elapsed().as_secs_f64();
        let length = self.length;
        self.state.with_counters(|c| {
            c.streams_completed += 1;
            c.metrics.e2e.observe(e2e);
            if length {
                c.metrics.success_length += 1;
            } else {
                c.metrics.success_stop += 1;
            }
        });
    }

    /// The stream is ending because of a mid-stream fault.
    pub(crate) fn faulted(&mut self, kind: FaultKind) {
        if self.outcome != Outcome::Running {
            return;
        }
        self.outcome = Outcome::Faulted;
        tracing::debug!(fault = kind.as_str(), "injecting fault mid-stream");
        self.state.with_counters(|c| {
            c.streams_faulted += 1;
            *c.faults.entry(kind).or_default() += 1;
        });
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.outcome == Outcome::Running {
            self.state.with_counters(|c| {
                c.streams_cancelled += 1;
                c.metrics.success_abort += 1;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultStep;

    #[test]
    fn plan_counts_down_in_order() {
        let mut first = FaultStep::new(FaultKind::RateLimit);
        first.count = Some(2);
        let st = SimState::new(SimConfig {
            faults: FaultPlan {
                steps: vec![first, FaultStep::new(FaultKind::Garbage)],
            },
            ..SimConfig::default()
        });
        let kinds: Vec<_> = (0..4)
            .map(|_| st.next_planned_fault().map(|s| s.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                Some(FaultKind::RateLimit),
                Some(FaultKind::RateLimit),
                Some(FaultKind::Garbage),
                Some(FaultKind::Garbage)
            ]
        );
        assert_eq!(st.faults().steps[0].count, Some(0));
    }

    #[test]
    fn probability_is_deterministic() {
        let mut step = FaultStep::new(FaultKind::ServerError);
        step.probability = Some(0.5);
        let make = || {
            SimState::new(SimConfig {
                seed: 7,
                faults: FaultPlan {
                    steps: vec![step.clone()],
                },
                ..SimConfig::default()
            })
        };
        let run = |st: SimState| {
            (0..200)
                .map(|_| st.next_planned_fault().is_some())
                .collect::<Vec<_>>()
        };
        let a = run(make());
        assert_eq!(a, run(make()));
        let hits = a.iter().filter(|x| **x).count();
        assert!((60..140).contains(&hits), "{hits}");
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let st = SimState::new(SimConfig::default());
        let a = st.new_id("msg_01", 22);
        let b = st.new_id("msg_01", 22);
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a[6..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn cache_reads_the_longest_stored_prefix() {
        let st = SimState::new(SimConfig::default());
        assert_eq!(st.cache_lookup(&[1, 2, 3], 2, &[0, 2]), None);
        assert_eq!(st.cache_lookup(&[1, 2, 3], 2, &[]), Some(2));
        assert_eq!(st.cache_lookup(&[1, 5, 6], 2, &[]), Some(0));
        assert_eq!(st.cache_lookup(&[1, 2, 3], 1, &[]), Some(0));
    }
}
