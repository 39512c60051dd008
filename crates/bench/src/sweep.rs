//! `--sweep`: the highest Poisson rate whose p99 TTFT and p99 TPOT meet the SLO.
//!
//! As GuideLLM's sweep starts from a throughput run, the sweep first holds many
//! streams (closed loop, `saturation_concurrency`) to find the most the server
//! completes per second, X. Then it tries X itself, then a low rate (X ×
//! `low_fraction`), and bisects between the highest passing and the lowest failing
//! rate for `steps` more levels or until the interval is narrower than 2% of X.
//! Every level is recorded; the capacity is the best passing one.

/// How a sweep searches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepSettings {
    /// Streams of the saturation run.
    pub saturation_concurrency: u32,
    /// Bisection levels after the first two rates.
    pub steps: u32,
    /// The low rate, as a share of the saturation throughput.
    pub low_fraction: f64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            saturation_concurrency: 256,
            steps: 5,
            low_fraction: 0.1,
        }
    }
}

/// Stop bisecting once the interval is narrower than this share of X.
const RESOLUTION: f64 = 0.02;

/// The search over rates, as a state machine: `next_rate` proposes a rate, `record` takes
/// whether it passed.
#[derive(Clone, Debug)]
pub struct Bisection {
    max_rate: f64,
    low_rate: f64,
    steps_left: u32,
    /// Highest rate that passed, lowest that failed.
    passed: Option<f64>,
    failed: Option<f64>,
    tried_max: bool,
    tried_low: bool,
}

impl Bisection {
    pub fn new(max_rate: f64, settings: SweepSettings) -> Bisection {
        Bisection {
            max_rate,
            low_rate: max_rate * settings.low_fraction,
            steps_left: settings.steps,
            passed: None,
            failed: None,
            tried_max: false,
            tried_low: false,
        }
    }

    /// The next rate to try, or `None` when the search is over.
    pub fn next_rate(&mut self) -> Option<f64> {
        if !(self.max_rate > 0.0 && self.max_rate.is_finite()) {
            return None;
        }
        if !self.tried_max {
            self.tried_max = true;
            return Some(self.max_rate);
        }
        if self.passed == Some(self.max_rate) {
            return None;
        }
        if !self.tried_low {
            self.tried_low = true;
            return Some(self.low_rate);
        }
        let (Some(low), Some(high)) = (self.passed, self.failed) else {
            return None;
        };
        if self.steps_left == 0 || high - low < RESOLUTION * self.max_rate {
            return None;
        }
        self.steps_left -= 1;
        Some((low + high) / 2.0)
    }

    /// The rate tried last passed or failed.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.passed = Some(self.passed.map_or(rate, |p| p.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a server whose knee is at `knee` requests/s.
    fn search(max_rate: f64, knee: f64) -> Vec<f64> {
        let mut bisection = Bisection::new(max_rate, SweepSettings::default());
        let mut tried = Vec::new();
        while let Some(rate) = bisection.next_rate() {
            tried.push(rate);
            bisection.record(rate, rate <= knee);
        }
        tried
    }

    #[test]
    fn a_passing_maximum_ends_the_search() {
        assert_eq!(search(100.0, 150.0), vec![100.0]);
    }

    #[test]
    fn a_failing_low_rate_ends_the_search() {
        assert_eq!(search(100.0, 5.0), vec![100.0, 10.0]);
    }

    #[test]
    fn bisection_closes_in_on_the_knee() {
        // 100 then 10, then five halvings of [10, 100]: 55, 77.5, 66.25, 71.875,
        // 69.0625; the best passing is within (100 − 10) / 2^5 ≈ 2.8 of the knee 70.
        let tried = search(100.0, 70.0);
        assert_eq!(tried, vec![100.0, 10.0, 55.0, 77.5, 66.25, 71.875, 69.0625]);
        let best = tried
            .iter()
            .copied()
            .filter(|r| *r <= 70.0)
            .fold(0.0, f64::max);
        assert!((70.0 - best) < 2.9, "{best}");
    }

    #[test]
    fn no_throughput_no_search() {
        assert_eq!(search(0.0, 10.0), Vec::<f64>::new());
    }
}
