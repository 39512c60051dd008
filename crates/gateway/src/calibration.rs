//! Input-token estimates calibrated per backend, for streams whose server reports no
//! usage (llama-cpp-python's server never does on streams).
//!
//! The raw estimate is about four characters per token of the message text; the server
//! also counts its chat template and default system prompt, which can be most of a short
//! prompt (SmolLM2 counts 33 tokens for a "Count to three" estimated at 4). Each
//! non-streamed answer of a self-hosted backend reports the real count, so the backend
//! learns `tokens ≈ overhead + ratio × estimate` by least squares over those answers,
//! and a stream's estimate goes through that fit. It must not lock: the sums are an
//! `ArcSwap` snapshot updated by compare-and-swap.

use arc_swap::ArcSwap;

/// Running sums of (raw estimate, reported count) pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sums {
    n: u64,
    x: u128,
    y: u128,
    xx: u128,
    xy: u128,
}

impl Sums {
    fn add(mut self, x: u64, y: u64) -> Sums {
        let (x, y) = (u128::from(x), u128::from(y));
        self.n += 1;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
        self
    }

    /// `(overhead, ratio)`: the least-squares line when the estimates vary, else the
    /// mean ratio (one sample, or all of one length).
    fn fit(&self) -> Option<(f64, f64)> {
        if self.n == 0 || self.x == 0 {
            return None;
        }
        let n = self.n as f64;
        let (x, y, xx, xy) = (self.x as f64, self.y as f64, self.xx as f64, self.xy as f64);
        let spread = n * xx - x * x;
        if self.n >= 2 && spread > 0.0 {
            let ratio = (n * xy - x * y) / spread;
            let overhead = (y - ratio * x) / n;
            if ratio.is_finite() && ratio > 0.0 && overhead.is_finite() && overhead >= 0.0 {
                return Some((overhead, ratio));
            }
        }
        Some((0.0, y / x))
    }
}

/// What one backend has learned of its own token counts.
#[derive(Debug, Default)]
pub struct InputCalibration {
    sums: ArcSwap<Sums>,
}

impl InputCalibration {
    /// Records a request whose raw estimate was `estimate` and whose server reported
    /// `reported` input tokens.
    pub fn learn(&self, estimate: u64, reported: u64) {
        if estimate == 0 || reported == 0 {
            return;
        }
        self.sums.rcu(|sums| sums.add(estimate, reported));
    }

    /// The calibrated estimate for a raw `estimate`; the raw one until something was
    /// learned.
    pub fn estimate(&self, estimate: u64) -> u64 {
        match self.sums.load().fit() {
            Some((overhead, ratio)) => (overhead + ratio * estimate as f64).round().max(1.0) as u64,
            None => estimate,
        }
    }

    /// How many answers the calibration rests on.
    pub fn samples(&self) -> u64 {
        self.sums.load().n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncalibrated_estimates_pass_through() {
        let calibration = InputCalibration::default();
        assert_eq!(calibration.estimate(12), 12);
        calibration.learn(0, 30);
        assert_eq!(calibration.samples(), 0);
    }

    #[test]
    fn one_answer_gives_a_ratio() {
        let calibration = InputCalibration::default();
        // "Count to three": estimated 4, counted 33.
        calibration.learn(4, 33);
        assert_eq!(calibration.estimate(4), 33);
        assert_eq!(calibration.estimate(8), 66);
    }

    #[test]
    fn several_answers_give_overhead_and_ratio() {
        let calibration = InputCalibration::default();
        // A template of 30 tokens plus 1.2 tokens per estimated token, exactly.
        for x in [5_u64, 10, 20, 40] {
            calibration.learn(x, 30 + x * 6 / 5);
        }
        assert_eq!(calibration.samples(), 4);
        // 30 + 1.2 × 25.
        assert_eq!(calibration.estimate(25), 60);
        // A fit that would need a negative overhead falls back to the mean ratio.
        let odd = InputCalibration::default();
        odd.learn(10, 5);
        odd.learn(20, 30);
        // (5 + 30) / (10 + 20) × 12 = 14.
        assert_eq!(odd.estimate(12), 14);
    }
}
