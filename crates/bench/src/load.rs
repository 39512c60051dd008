//! Load levels: open loop (Poisson arrivals at a rate, from a seeded generator) and
//! closed loop (a fixed number of streams, each sending its next request when the
//! previous one ends). Every request runs in its own task on the shared client;
//! arrivals are scheduled against absolute times, so a late wake-up sends the
//! requests that fell due at once rather than drifting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use costfloor_core::measured::{Level, Slo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::bench::{generation_body, Forcing, Generation};

use crate::prompt::PromptMaker;
use crate::record::{Failures, Live, Outcome, Recorder};
use crate::request::stream_one;
use crate::target::Target;

/// Most requests in flight at once; an open-loop arrival beyond it is counted as
/// failed (`client in-flight limit`) instead of opening one more connection.
pub const MAX_IN_FLIGHT: u64 = 16_384;

/// How often the progress observer hears from a running level.
const TICK: Duration = Duration::from_millis(250);

/// One load level to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LevelSpec {
    /// Poisson arrivals at this many requests/s.
    Rate(f64),
    /// This many streams, each with one request in flight.
    Concurrency(u32),
}

impl LevelSpec {
    /// `rate` or `concurrency`, as the measurement records it.
    pub fn mode(self) -> &'static str {
        match self {
            LevelSpec::Rate(_) => "rate",
            LevelSpec::Concurrency(_) => "concurrency",
        }
    }

    /// The offered rate or the streams held.
    pub fn load(self) -> f64 {
        match self {
            LevelSpec::Rate(rate) => rate,
            LevelSpec::Concurrency(streams) => f64::from(streams),
        }
    }
}

/// Hears about a run as it goes: for a progress bar, or nothing.
pub trait Observer: Send + Sync {
    /// A level starts (`index` into the measurement's levels).
    fn level_started(&self, _index: usize, _spec: LevelSpec, _duration: Duration) {}
    /// The running figures, every 250 ms.
    fn tick(&self, _live: &Live) {}
    /// A level ended.
    fn level_finished(&self, _index: usize, _level: &Level, _failures: &Failures) {}
    /// Something worth a line: the calibration, a fallback taken.
    fn note(&self, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {}

/// One request shape of the length mix: its calibrated prompt and output length, and
/// the cumulative share up to and including it.
pub(crate) struct Shape {
    pub maker: PromptMaker,
    pub expected_input_tokens: u64,
    pub max_tokens: u32,
    pub up_to: f64,
}

/// Everything a level's requests share.
pub(crate) struct Runner {
    pub target: Target,
    pub url: String,
    /// The length mix, in order; one entry for a fixed shape.
    pub shapes: Vec<Shape>,
    pub forcing: Forcing,
    pub slo: Slo,
    pub seed: u64,
    pub observer: Arc<dyn Observer>,
    /// Requests sent in the whole run: each one's prompt tag.
    pub sequence: AtomicU64,
    /// The empty histogram each level's latencies start from.
    pub empty_histogram: hdrhistogram::Histogram<u64>,
}

impl Runner {
    /// The shape of request `index`: drawn by share from the seed and the index, so a
    /// rerun with the same seed sends the same sequence of shapes.
    pub(crate) fn shape(&self, index: u64) -> &Shape {
        let draw = (crate::rng::mix(self.seed ^ index.wrapping_mul(0x9e37_79b9)) >> 11) as f64
            / (1u64 << 53) as f64;
        self.shapes
            .iter()
            .find(|shape| draw < shape.up_to)
            .or(self.shapes.last())
            .unwrap_or(&self.shapes[0])
    }

    fn next_body(&self) -> (Bytes, &Shape) {
        let index = self.sequence.fetch_add(1, Ordering::Relaxed);
        let shape = self.shape(index);
        let prompt = shape.maker.prompt(index);
        let body = generation_body(
            self.target.format,
            &Generation {
                model: &self.target.model,
                prompt: &prompt,
                max_tokens: shape.max_tokens,
                forcing: self.forcing,
                stream: true,
            },
        );
        (body, shape)
    }

    async fn one(&self, recorder: &Recorder) {
        let (body, shape) = self.next_body();
        recorder.sending();
        let outcome: Outcome = stream_one(
            &self.target,
            &self.url,
            body,
            shape.expected_input_tokens,
            shape.max_tokens,
        )
        .await;
        recorder.record(outcome);
    }
}

/// Runs one level for `duration` (then waits for the requests in flight) and returns
/// it with its failure reasons.
pub(crate) async fn run_level(
    runner: &Arc<Runner>,
    index: usize,
    spec: LevelSpec,
    duration: Duration,
) -> (Level, Failures) {
    runner.observer.level_started(index, spec, duration);
    let started = Instant::now();
    let recorder = Arc::new(Recorder::new(runner.slo, started, &runner.empty_histogram));
    let stop_ticks = CancellationToken::new();
    let ticker = tokio::spawn(tick(
        Arc::clone(&recorder),
        Arc::clone(&runner.observer),
        stop_ticks.clone(),
    ));
    let tracker = TaskTracker::new();
    let end = started + duration;
    match spec {
        LevelSpec::Rate(rate) => open_loop(runner, &recorder, &tracker, rate, end, index).await,
        LevelSpec::Concurrency(streams) => {
            for _ in 0..streams {
                let runner = Arc::clone(runner);
                let recorder = Arc::clone(&recorder);
                tracker.spawn(async move {
                    while Instant::now() < end {
                        runner.one(&recorder).await;
                    }
                });
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    stop_ticks.cancel();
    let _ = ticker.await;
    runner.observer.tick(&recorder.live());
    let (level, failures) = recorder.finish(spec.mode(), spec.load());
    runner.observer.level_finished(index, &level, &failures);
    (level, failures)
}

async fn open_loop(
    runner: &Arc<Runner>,
    recorder: &Arc<Recorder>,
    tracker: &TaskTracker,
    rate: f64,
    end: Instant,
    index: usize,
) {
    if !(rate > 0.0 && rate.is_finite()) {
        return;
    }
    let mean_gap_s = 1.0 / rate;
    let mut rng = crate::rng::SplitMix64::new(
        runner.seed ^ crate::rng::mix(u64::try_from(index).unwrap_or(0)),
    );
    let gap = |rng: &mut crate::rng::SplitMix64| {
        Duration::try_from_secs_f64(rng.exponential(mean_gap_s)).unwrap_or(Duration::MAX)
    };
    let mut next = Instant::now() + gap(&mut rng);
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        while next <= now && next < end {
            if recorder.in_flight() >= MAX_IN_FLIGHT {
                recorder.refused("client in-flight limit");
            } else {
                let runner = Arc::clone(runner);
                let recorder = Arc::clone(recorder);
                tracker.spawn(async move { runner.one(&recorder).await });
            }
            next = next.checked_add(gap(&mut rng)).unwrap_or(end);
        }
    }
}

async fn tick(recorder: Arc<Recorder>, observer: Arc<dyn Observer>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => observer.tick(&recorder.live()),
        }
    }
}
