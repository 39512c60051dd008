//! What the review and `workload from-ledger` need of the rows, gathered in the report's
//! one pass ([`Observed::add`] per `LedgerReader::scan` row): the answered calls' token
//! sums, a prompt-length histogram for the p99, calls per hour of the day and per clock
//! hour, task labels, cost per day, and each backend's tokens per hour. Memory grows
//! with hours, days, tasks and backends, never with rows.

use std::collections::BTreeMap;

use costfloor_core::observed::{ObservedTask, ObservedTraffic};
use hdrhistogram::Histogram;
use ledger::{Outcome, ScanRow};

use crate::period::{MS_PER_DAY, MS_PER_HOUR};

/// One task label's sums.
#[derive(Clone, Debug, Default)]
struct TaskSums {
    calls: u64,
    input_tokens: u64,
    output_tokens: u64,
}

/// One UTC day's cost sums (every request, whatever its outcome).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaySums {
    pub requests: u64,
    pub cost_nusd: i128,
    pub counterfactual_cost_nusd: i128,
}

/// How well a backend's input estimates fit its exact counts: least-squares sums over
/// its rows with a reported count and a recorded raw estimate.
#[derive(Clone, Copy, Debug, Default)]
pub struct FitSums {
    pub n: u64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
    yy: f64,
}

impl FitSums {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
        self.yy += y * y;
    }

    /// The root-mean-square error, in tokens, of `overhead + ratio × estimate` fitted by
    /// least squares (the gateway's calibration), and the mean count; `None` under two
    /// rows or without spread in the estimates.
    pub fn rmse(&self) -> Option<(f64, f64)> {
        let n = self.n as f64;
        let spread = n * self.xx - self.x * self.x;
        if self.n < 2 || spread <= 0.0 {
            return None;
        }
        let ratio = (n * self.xy - self.x * self.y) / spread;
        let overhead = (self.y - ratio * self.x) / n;
        // SSE = Σ(y − a − b·x)² expanded over the sums.
        let sse = self.yy + n * overhead * overhead + ratio * ratio * self.xx
            - 2.0 * overhead * self.y
            - 2.0 * ratio * self.xy
            + 2.0 * overhead * ratio * self.x;
        Some(((sse.max(0.0) / n).sqrt(), self.y / n))
    }
}

/// The accumulators.
#[derive(Debug, Clone)]
pub struct Observed {
    first_unix_ms: Option<i64>,
    last_unix_ms: Option<i64>,
    calls: u64,
    estimated_calls: u64,
    input_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    cache_write_1h_tokens: u64,
    output_tokens: u64,
    /// All input tokens per answered call, 3 significant digits (`None` only if the
    /// histogram could not be made).
    prompts: Option<Histogram<u64>>,
    calls_by_hour_of_day: [u64; 24],
    calls_per_hour: BTreeMap<i64, u64>,
    /// By task label, in the order first seen (a handful: searched, not hashed).
    tasks: Vec<(Option<String>, TaskSums)>,
    /// Day index (start ms ÷ a day) → sums.
    pub days: BTreeMap<i64, DaySums>,
    /// Backend → hour index → tokens of its answered calls.
    backend_hours: Vec<(String, BTreeMap<i64, u64>)>,
    /// Self-hosted backend → (rows with estimated counts, fit of exact rows).
    pub estimates: Vec<(String, u64, FitSums)>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            first_unix_ms: None,
            last_unix_ms: None,
            calls: 0,
            estimated_calls: 0,
            input_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 0,
            // Auto-resizing, so no prompt is too long to record.
            prompts: Histogram::new(3).ok(),
            calls_by_hour_of_day: [0; 24],
            calls_per_hour: BTreeMap::new(),
            tasks: Vec::new(),
            days: BTreeMap::new(),
            backend_hours: Vec::new(),
            estimates: Vec::new(),
        }
    }
}

fn tokens(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Observed {
    /// Adds one row.
    pub fn add(&mut self, row: &ScanRow<'_>) {
        let day = self
            .days
            .entry(row.started_at_unix_ms.div_euclid(MS_PER_DAY))
            .or_default();
        day.requests += 1;
        day.cost_nusd += i128::from(row.cost_nusd);
        day.counterfactual_cost_nusd += i128::from(row.counterfactual_cost_nusd);
        if row.outcome != Outcome::Success {
            return;
        }
        let at = row.started_at_unix_ms;
        self.first_unix_ms = Some(self.first_unix_ms.map_or(at, |f| f.min(at)));
        self.last_unix_ms = Some(self.last_unix_ms.map_or(at, |l| l.max(at)));
        self.calls += 1;
        self.estimated_calls += u64::from(row.estimated);
        let input = tokens(row.input_tokens);
        let all_input = input
            + tokens(row.cache_read_tokens)
            + tokens(row.cache_write_tokens)
            + tokens(row.cache_write_1h_tokens);
        let output = tokens(row.output_tokens);
        self.input_tokens += input;
        self.cache_read_tokens += tokens(row.cache_read_tokens);
        self.cache_write_tokens += tokens(row.cache_write_tokens);
        self.cache_write_1h_tokens += tokens(row.cache_write_1h_tokens);
        self.output_tokens += output;
        if let Some(prompts) = &mut self.prompts {
            let _ = prompts.record(all_input);
        }
        let hour = at.div_euclid(MS_PER_HOUR);
        self.calls_by_hour_of_day[usize::try_from(hour.rem_euclid(24)).unwrap_or(0)] += 1;
        *self.calls_per_hour.entry(hour).or_default() += 1;
        let task = match self
            .tasks
            .iter()
            .position(|(t, _)| t.as_deref() == row.task)
        {
            Some(index) => &mut self.tasks[index].1,
            None => {
                self.tasks
                    .push((row.task.map(str::to_string), TaskSums::default()));
                let last = self.tasks.len() - 1;
                &mut self.tasks[last].1
            }
        };
        task.calls += 1;
        task.input_tokens += all_input;
        task.output_tokens += output;
        let hours = match self
            .backend_hours
            .iter()
            .position(|(b, _)| b == row.backend)
        {
            Some(index) => &mut self.backend_hours[index].1,
            None => {
                self.backend_hours
                    .push((row.backend.to_string(), BTreeMap::new()));
                let last = self.backend_hours.len() - 1;
                &mut self.backend_hours[last].1
            }
        };
        *hours.entry(hour).or_default() += all_input + output;
        if row.self_hosted {
            let entry = match self.estimates.iter().position(|(b, ..)| b == row.backend) {
                Some(index) => &mut self.estimates[index],
                None => {
                    self.estimates
                        .push((row.backend.to_string(), 0, FitSums::default()));
                    let last = self.estimates.len() - 1;
                    &mut self.estimates[last]
                }
            };
            if row.estimated {
                entry.1 += 1;
            } else if let Some(estimate) = row.input_estimate.filter(|e| *e > 0) {
                entry.2.add(estimate as f64, all_input as f64);
            }
        }
    }

    /// The traffic as the core's observed workload takes it, over `[since, until)` when
    /// both are given, else from the first to the last answered call (a minute at least).
    pub fn traffic(
        &self,
        since_unix_ms: Option<i64>,
        until_unix_ms: Option<i64>,
    ) -> ObservedTraffic {
        let period_ms = match (since_unix_ms, until_unix_ms) {
            (Some(since), Some(until)) if until > since => until - since,
            _ => {
                let start = since_unix_ms.or(self.first_unix_ms).unwrap_or(0);
                let end = until_unix_ms.or(self.last_unix_ms).unwrap_or(start);
                (end - start).max(60_000)
            }
        };
        ObservedTraffic {
            period_hours: period_ms as f64 / MS_PER_HOUR as f64,
            calls: self.calls,
            estimated_calls: self.estimated_calls,
            input_tokens: self.input_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            cache_write_1h_tokens: self.cache_write_1h_tokens,
            output_tokens: self.output_tokens,
            p99_prompt_tokens: self
                .prompts
                .as_ref()
                .filter(|_| self.calls > 0)
                .map(|p| p.value_at_quantile(0.99)),
            calls_by_hour_of_day: self.calls_by_hour_of_day,
            busiest_hour_calls: self.calls_per_hour.values().copied().max().unwrap_or(0),
            tasks: {
                let mut tasks: Vec<&(Option<String>, TaskSums)> = self.tasks.iter().collect();
                // Untagged first, then by label, as a report lists them.
                tasks.sort_by(|a, b| a.0.cmp(&b.0));
                tasks
            }
            .into_iter()
            .map(|(task, sums)| ObservedTask {
                task: task.clone(),
                calls: sums.calls,
                input_tokens: sums.input_tokens,
                output_tokens: sums.output_tokens,
            })
            .collect(),
        }
    }

    /// `(hour start, tokens)` of `backend`'s answered calls, in hour order.
    pub fn backend_hours(&self, backend: &str) -> Vec<(i64, u64)> {
        self.backend_hours
            .iter()
            .find(|(b, _)| b == backend)
            .map(|(_, hours)| hours.iter().map(|(&h, &t)| (h * MS_PER_HOUR, t)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_of_the_least_squares_line() {
        let mut exact = FitSums::default();
        // y = 30 + 1.2 x exactly: no error, mean of 36, 42, 54.
        for x in [5.0, 10.0, 20.0] {
            exact.add(x, 30.0 + 1.2 * x);
        }
        let (rmse, mean) = exact.rmse().unwrap();
        assert!(rmse < 1e-9, "{rmse}");
        assert!((mean - 44.0).abs() < 1e-9);
        // (0, 11), (1, 9), (2, 13): x̄ = 1, ȳ = 11, Σ(x−x̄)(y−ȳ) = 2, Σ(x−x̄)² = 2, so the
        // least-squares line is y = 10 + x, the residuals 1, −2, 1, and the RMSE
        // √((1 + 4 + 1) / 3) = √2.
        let mut noisy = FitSums::default();
        for (x, y) in [(0.0, 11.0), (1.0, 9.0), (2.0, 13.0)] {
            noisy.add(x, y);
        }
        let (rmse, _) = noisy.rmse().unwrap();
        assert!((rmse - 2f64.sqrt()).abs() < 1e-9, "{rmse}");
        let mut one = FitSums::default();
        one.add(5.0, 7.0);
        assert!(one.rmse().is_none());
    }
}
