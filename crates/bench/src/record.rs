//! One load level's tally: every request's outcome recorded once, under one lock, into
//! counts and `hdrhistogram` latencies (microseconds, 4 significant digits), then read
//! into the measurement's [`Level`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use costfloor_core::measured::{Level, Percentiles, Slo};
use hdrhistogram::Histogram;

/// What one completed request measured.
#[derive(Debug)]
pub(crate) struct Sample {
    pub ttft: Duration,
    pub e2e: Duration,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The gaps between streamed text deltas, in microseconds.
    pub gaps_us: Vec<u32>,
    pub finished: Instant,
}

/// A request's end.
#[derive(Debug)]
pub(crate) enum Outcome {
    Completed(Sample),
    /// Why it failed, in a few words (`HTTP 429`, `stream ended early`, …).
    Failed(String),
}

/// Failure reasons and their counts, for one level.
pub type Failures = BTreeMap<String, u64>;

/// The running figures of a level, for the progress display.
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    pub elapsed_s: f64,
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub in_flight: u64,
    pub ttft_p99_ms: f64,
    pub tpot_p99_ms: f64,
}

/// Highest latency recorded: one hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;

struct Tally {
    completed: u64,
    failed: u64,
    good: u64,
    input_tokens: u64,
    output_tokens: u64,
    e2e_sum_us: u128,
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    tpot: Histogram<u64>,
    e2e: Histogram<u64>,
    last_finished: Option<Instant>,
    failures: Failures,
}

/// The empty histogram every latency starts from: 1 µs to 1 h, 4 significant digits,
/// so a value is kept to within 1 part in 10,000 (32 µs at one second, where 3 digits
/// kept 512 µs and a token gap of 1 s could not show a change under 1 ms). About 2.5 MB
/// of counts each.
pub(crate) fn empty_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_US, 4)
}

/// The tally of one level, shared by its requests.
pub(crate) struct Recorder {
    slo: Slo,
    started: Instant,
    sent: AtomicU64,
    in_flight: AtomicU64,
    tally: Mutex<Tally>,
}

impl Recorder {
    /// A tally whose histograms are shaped like `empty`.
    pub fn new(slo: Slo, started: Instant, empty: &Histogram<u64>) -> Recorder {
        Recorder {
            slo,
            started,
            sent: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            tally: Mutex::new(Tally {
                completed: 0,
                failed: 0,
                good: 0,
                input_tokens: 0,
                output_tokens: 0,
                e2e_sum_us: 0,
                ttft: Histogram::new_from(empty),
                itl: Histogram::new_from(empty),
                tpot: Histogram::new_from(empty),
                e2e: Histogram::new_from(empty),
                last_finished: None,
                failures: Failures::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request is being sent.
    pub fn sending(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request that was never sent (the client's in-flight limit): counted as sent
    /// and failed.
    pub fn refused(&self, reason: &str) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut tally = self.lock();
        tally.failed += 1;
        *tally.failures.entry(reason.to_owned()).or_default() += 1;
    }

    /// A sent request ended.
    pub fn record(&self, outcome: Outcome) {
        let mut tally = self.lock();
        match outcome {
            Outcome::Completed(sample) => {
                let ttft_us = micros(sample.ttft);
                let e2e_us = micros(sample.e2e);
                tally.completed += 1;
                tally.input_tokens += sample.input_tokens;
                tally.output_tokens += sample.output_tokens;
                tally.e2e_sum_us += u128::from(e2e_us);
                tally.ttft.saturating_record(ttft_us.max(1));
                tally.e2e.saturating_record(e2e_us.max(1));
                for gap in &sample.gaps_us {
                    tally.itl.saturating_record(u64::from(*gap).max(1));
                }
                let tpot_us = tpot_us(ttft_us, e2e_us, sample.output_tokens);
                if let Some(tpot) = tpot_us {
                    tally.tpot.saturating_record(tpot.max(1));
                }
                let ttft_ok = ttft_us as f64 <= self.slo.ttft_ms * 1000.0;
                let tpot_ok = tpot_us.is_none_or(|tpot| tpot as f64 <= self.slo.tpot_ms * 1000.0);
                if ttft_ok && tpot_ok {
                    tally.good += 1;
                }
                tally.last_finished = Some(
                    tally
                        .last_finished
                        .map_or(sample.finished, |last| last.max(sample.finished)),
                );
            }
            Outcome::Failed(reason) => {
                tally.failed += 1;
                *tally.failures.entry(reason).or_default() += 1;
                let now = Instant::now();
                tally.last_finished = Some(tally.last_finished.map_or(now, |last| last.max(now)));
            }
        }
        drop(tally);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The figures so far.
    pub fn live(&self) -> Live {
        let tally = self.lock();
        Live {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            sent: self.sent.load(Ordering::Relaxed),
            completed: tally.completed,
            failed: tally.failed,
            in_flight: self.in_flight(),
            ttft_p99_ms: ms(tally.ttft.value_at_quantile(0.99)),
            tpot_p99_ms: ms(tally.tpot.value_at_quantile(0.99)),
        }
    }

    /// The level, once every request has ended. `duration_s` runs from the level's
    /// start to its last request's end.
    pub fn finish(&self, mode: &str, load: f64) -> (Level, Failures) {
        let tally = self.lock();
        let end = tally.last_finished.unwrap_or_else(Instant::now);
        let duration_s = end.saturating_duration_since(self.started).as_secs_f64();
        let per_s = |n: f64| {
            if duration_s > 0.0 {
                n / duration_s
            } else {
                0.0
            }
        };
        let sent = tally.completed + tally.failed;
        let ttft = percentiles(&tally.ttft);
        let tpot = percentiles(&tally.tpot);
        let level = Level {
            mode: mode.to_owned(),
            load,
            duration_s,
            completed: tally.completed,
            failed: tally.failed,
            input_tokens: tally.input_tokens,
            output_tokens: tally.output_tokens,
            requests_per_s: per_s(tally.completed as f64),
            output_tokens_per_s: per_s(tally.output_tokens as f64),
            total_tokens_per_s: per_s((tally.input_tokens + tally.output_tokens) as f64),
            mean_in_flight: per_s(tally.e2e_sum_us as f64 / 1e6),
            ttft_ms: ttft,
            itl_ms: percentiles(&tally.itl),
            tpot_ms: tpot,
            e2e_ms: percentiles(&tally.e2e),
            goodput_rps: per_s(tally.good as f64),
            meets_slo: meets_slo(self.slo, tally.completed, sent, ttft.p99, tpot.p99),
        };
        (level, tally.failures.clone())
    }
}

/// Highest share of failed requests a level may have and still meet the SLO.
pub const MAX_FAILED_SHARE: f64 = 0.01;

/// The SLO rule: some request completed, at most 1% failed, p99 TTFT ≤ the TTFT SLO
/// and p99 TPOT ≤ the TPOT SLO.
pub fn meets_slo(slo: Slo, completed: u64, sent: u64, ttft_p99_ms: f64, tpot_p99_ms: f64) -> bool {
    let failed = sent.saturating_sub(completed);
    completed > 0
        && failed as f64 <= MAX_FAILED_SHARE * sent as f64
        && ttft_p99_ms <= slo.ttft_ms
        && tpot_p99_ms <= slo.tpot_ms
}

/// Time per output token after the first: (e2e − ttft) ÷ (output tokens − 1); none for
/// a one-token answer.
fn tpot_us(ttft_us: u64, e2e_us: u64, output_tokens: u64) -> Option<u64> {
    (output_tokens >= 2).then(|| e2e_us.saturating_sub(ttft_us) / (output_tokens - 1))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(MAX_US)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO: Slo = Slo {
        ttft_ms: 100.0,
        tpot_ms: 10.0,
    };

    fn sample(started: Instant, ttft_ms: u64, e2e_ms: u64, output_tokens: u64) -> Outcome {
        Outcome::Completed(Sample {
            ttft: Duration::from_millis(ttft_ms),
            e2e: Duration::from_millis(e2e_ms),
            input_tokens: 50,
            output_tokens,
            gaps_us: vec![5_000; usize::try_from(output_tokens - 1).unwrap()],
            finished: started + Duration::from_millis(e2e_ms),
        })
    }

    #[test]
    fn a_level_adds_up() {
        let started = Instant::now();
        let recorder = Recorder::new(SLO, started, &empty_histogram().unwrap());
        for _ in 0..4 {
            recorder.sending();
        }
        // TPOT = (e2e − ttft) / (tokens − 1): (550 − 50) / 100 = 5 ms (good), and
        // (1050 − 50) / 100 = 10 ms (good: the SLO is inclusive); TTFT 200 ms is not.
        recorder.record(sample(started, 50, 550, 101));
        recorder.record(sample(started, 50, 1050, 101));
        recorder.record(sample(started, 200, 2000, 101));
        recorder.record(Outcome::Failed("HTTP 500".into()));
        let (level, failures) = recorder.finish("rate", 2.0);
        assert_eq!((level.completed, level.failed), (3, 1));
        assert_eq!(failures.get("HTTP 500"), Some(&1));
        assert_eq!(level.output_tokens, 303);
        assert_eq!(level.input_tokens, 150);
        // The last request ended 2 s after the start.
        assert!(
            (level.duration_s - 2.0).abs() < 0.01,
            "{}",
            level.duration_s
        );
        assert!((level.output_tokens_per_s - 151.5).abs() < 1.0);
        assert!((level.goodput_rps - 1.0).abs() < 0.01);
        // Little: (0.55 + 1.05 + 2.0) s of requests over 2 s.
        assert!((level.mean_in_flight - 1.8).abs() < 0.01);
        assert!((level.itl_ms.p50 - 5.0).abs() < 0.01);
        // 1 failed of 4 is above 1%.
        assert!(!level.meets_slo);
    }

    /// Token gaps of one second that differ by 0.3 ms must read as different: the added
    /// latency between tokens is judged against 1 ms (bench/streams), and at 3
    /// significant digits both read 1,000.447 ms (one 512 µs bucket).
    #[test]
    fn a_third_of_a_millisecond_shows_in_a_one_second_gap() {
        let p99 = |gap_us: u32| {
            let started = Instant::now();
            let recorder = Recorder::new(SLO, started, &empty_histogram().unwrap());
            recorder.sending();
            recorder.record(Outcome::Completed(Sample {
                ttft: Duration::from_millis(50),
                e2e: Duration::from_secs(20),
                input_tokens: 16,
                output_tokens: 20,
                gaps_us: vec![gap_us; 19],
                finished: started + Duration::from_secs(20),
            }));
            recorder.finish("rate", 1.0).0.itl_ms.p99
        };
        let (at, later) = (p99(1_000_000), p99(1_000_300));
        // Within 1 part in 10,000 of the value: 0.1 ms at one second.
        assert!((at - 1000.0).abs() <= 0.1, "{at}");
        assert!((later - 1000.3).abs() <= 0.1, "{later}");
        assert!(later > at, "{at} {later}");
    }

    #[test]
    fn the_slo_rule() {
        assert!(meets_slo(SLO, 100, 100, 100.0, 10.0));
        assert!(meets_slo(SLO, 99, 100, 1.0, 1.0));
        assert!(!meets_slo(SLO, 98, 100, 1.0, 1.0));
        assert!(!meets_slo(SLO, 100, 100, 100.1, 1.0));
        assert!(!meets_slo(SLO, 100, 100, 1.0, 10.1));
        assert!(!meets_slo(SLO, 0, 0, 0.0, 0.0));
    }
}
