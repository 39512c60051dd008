//! A per-backend circuit breaker made of atomics: the request path reads and updates
//! it without locks, so a slow backend can never block requests bound elsewhere.
//!
//! Closed → (N consecutive failures) → Open → (after `open_for`) → one probe in
//! HalfOpen → Closed on success, Open again on failure.
//!
//! It must not lock, sleep or do I/O: it only counts and decides.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The value of the `costfloor_circuit_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::Open => 1.0,
            CircuitState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
pub struct Circuit {
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// Microseconds since `epoch` when the circuit last opened.
    opened_at_us: AtomicU64,
    /// Not before this time (µs since `epoch`): set from an upstream `retry-after`.
    not_before_us: AtomicU64,
    epoch: Instant,
    threshold: u32,
    open_for: Duration,
}

impl Circuit {
    pub fn new(threshold: u32, open_for: Duration) -> Circuit {
        Circuit {
            state: AtomicU8::new(CLOSED),
            consecutive_failures: AtomicU32::new(0),
            opened_at_us: AtomicU64::new(0),
            not_before_us: AtomicU64::new(0),
            epoch: Instant::now(),
            threshold,
            open_for,
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn state(&self) -> CircuitState {
        match self.state.load(Ordering::Acquire) {
            OPEN => CircuitState::Open,
            HALF_OPEN => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    /// Whether a request may go to this backend now. In Open state, once `open_for`
    /// has passed, exactly one caller wins the move to HalfOpen and becomes the probe.
    pub fn try_acquire(&self) -> bool {
        let now = self.now_us();
        if now < self.not_before_us.load(Ordering::Relaxed) {
            return false;
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => {
                let opened = self.opened_at_us.load(Ordering::Acquire);
                now.saturating_sub(opened) >= self.open_for.as_micros() as u64
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    && {
                        self.opened_at_us.store(now, Ordering::Release);
                        true
                    }
            }
            // A probe that never reported (its client went away) must not wedge the
            // circuit: after another `open_for`, the next caller probes again.
            _ => {
                let probe_started = self.opened_at_us.load(Ordering::Acquire);
                now.saturating_sub(probe_started) >= self.open_for.as_micros() as u64
                    && self
                        .opened_at_us
                        .compare_exchange(probe_started, now, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            }
        }
    }

    pub fn on_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.state.store(CLOSED, Ordering::Release);
        }
    }

    pub fn on_failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state.load(Ordering::Acquire);
        if state == HALF_OPEN || (state == CLOSED && failures >= self.threshold) {
            self.opened_at_us.store(self.now_us(), Ordering::Release);
            self.state.store(OPEN, Ordering::Release);
        }
    }

    /// Honour an upstream `retry-after`: skip this backend until then.
    pub fn hold_off(&self, duration: Duration) {
        let until = self.now_us() + duration.as_micros() as u64;
        self.not_before_us.fetch_max(until, Ordering::AcqRel);
    }

    /// How long until `hold_off` lifts (zero when it has).
    pub fn held_for(&self) -> Duration {
        Duration::from_micros(
            self.not_before_us
                .load(Ordering::Relaxed)
                .saturating_sub(self.now_us()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let circuit = Circuit::new(3, Duration::from_millis(20));
        for _ in 0..2 {
            circuit.on_failure();
        }
        assert!(circuit.try_acquire());
        circuit.on_failure();
        assert_eq!(circuit.state(), CircuitState::Open);
        assert!(!circuit.try_acquire());
        std::thread::sleep(Duration::from_millis(25));
        assert!(
            circuit.try_acquire(),
            "the first caller after open_for is the probe"
        );
        assert!(!circuit.try_acquire(), "only one probe at a time");
        assert_eq!(circuit.state(), CircuitState::HalfOpen);
        circuit.on_failure();
        assert_eq!(circuit.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(25));
        assert!(circuit.try_acquire());
        circuit.on_success();
        assert_eq!(circuit.state(), CircuitState::Closed);
        assert!(circuit.try_acquire());
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced() {
        let circuit = Circuit::new(1, Duration::from_millis(20));
        circuit.on_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert!(circuit.try_acquire(), "probe");
        assert!(!circuit.try_acquire());
        // The probe's request vanished without on_success/on_failure.
        std::thread::sleep(Duration::from_millis(25));
        assert!(circuit.try_acquire(), "a new probe after open_for");
        assert!(!circuit.try_acquire());
        circuit.on_success();
        assert_eq!(circuit.state(), CircuitState::Closed);
    }

    #[test]
    fn hold_off_blocks_until_it_lifts() {
        let circuit = Circuit::new(3, Duration::from_secs(1));
        circuit.hold_off(Duration::from_millis(20));
        assert!(!circuit.try_acquire());
        std::thread::sleep(Duration::from_millis(25));
        assert!(circuit.try_acquire());
    }
}
