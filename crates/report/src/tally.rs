//! One streaming pass over the ledger's rows: sums per backend, route and requested
//! model, latency histograms, calls per hour, overflow and errors. Memory grows with
//! the number of groups and hours, never with the number of rows.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use ledger::{Outcome, ScanRow};

use crate::period::MS_PER_HOUR;

/// Significant decimal digits the latency histograms keep: a percentile is within
/// 0.1% of the exact order statistic (never below it).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Sums over a set of rows. Money in nano-USD, summed as `i128` so that no sum of
/// `i64` rows can wrap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub success: u64,
    pub input_tokens: i128,
    pub cache_read_tokens: i128,
    pub cache_write_tokens: i128,
    pub cache_write_1h_tokens: i128,
    pub output_tokens: i128,
    pub cost_nusd: i128,
    pub counterfactual_nusd: i128,
    pub estimated: u64,
    pub self_hosted: u64,
    /// Self-hosted rows priced at no counterfactual (their route had no reference API).
    pub self_hosted_without_counterfactual: u64,
}

impl Totals {
    fn add(&mut self, row: &ScanRow<'_>) {
        self.requests += 1;
        self.success += u64::from(row.outcome == Outcome::Success);
        self.input_tokens += i128::from(row.input_tokens);
        self.cache_read_tokens += i128::from(row.cache_read_tokens);
        self.cache_write_tokens += i128::from(row.cache_write_tokens);
        self.cache_write_1h_tokens += i128::from(row.cache_write_1h_tokens);
        self.output_tokens += i128::from(row.output_tokens);
        self.cost_nusd += i128::from(row.cost_nusd);
        self.counterfactual_nusd += i128::from(row.counterfactual_cost_nusd);
        self.estimated += u64::from(row.estimated);
        self.self_hosted += u64::from(row.self_hosted);
        self.self_hosted_without_counterfactual +=
            u64::from(row.self_hosted && row.counterfactual_cost_nusd == 0);
    }

    /// Every token, input of each class and output.
    pub fn tokens(&self) -> i128 {
        self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
            + self.output_tokens
    }
}

/// Latency histograms of successful requests, in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    pub total_us: Histogram<u64>,
    pub ttft_us: Histogram<u64>,
}

impl Latency {
    fn new() -> Latency {
        // Auto-resizing: any latency fits. `new` only fails for more than 5 digits.
        let histogram = || {
            Histogram::new(LATENCY_SIGNIFICANT_DIGITS)
                .unwrap_or_else(|_| unreachable!("3 significant digits are allowed"))
        };
        Latency {
            total_us: histogram(),
            ttft_us: histogram(),
        }
    }

    fn add(&mut self, row: &ScanRow<'_>) {
        if row.outcome != Outcome::Success {
            return;
        }
        record(&mut self.total_us, row.total_us);
        if let Some(ttft) = row.ttft_us {
            record(&mut self.ttft_us, ttft);
        }
    }
}

/// Records `value_us` (negative as 0), growing the histogram's range as needed.
fn record(histogram: &mut Histogram<u64>, value_us: i64) {
    let value = u64::try_from(value_us).unwrap_or(0);
    if histogram.record(value).is_err() {
        // Only a value beyond what any histogram can track; count it at the top.
        histogram.saturating_record(value);
    }
}

/// Totals and latency of one group (a backend or a route).
#[derive(Debug, Clone)]
pub struct Group {
    pub totals: Totals,
    pub latency: Latency,
}

/// How a request travelled through its route's targets, from its `fallback_chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    /// A target was skipped because it was full (`name:full`): the request spilled over.
    pub spilled: bool,
    /// Requests sent upstream: every entry except the skipped ones (`full`, `context`,
    /// `open`, `held`).
    pub attempts: u32,
}

impl Path {
    pub fn of(chain: &str) -> Path {
        let mut path = Path {
            spilled: false,
            attempts: 0,
        };
        for entry in chain.split('>').filter(|e| !e.is_empty()) {
            let label = entry.rsplit_once(':').map_or("", |(_, label)| label);
            match label {
                "full" => path.spilled = true,
                "context" | "open" | "held" => {}
                _ => path.attempts += 1,
            }
        }
        path
    }

    /// More than one request was sent upstream: the first choice failed.
    pub fn fell_back(self) -> bool {
        self.attempts > 1
    }
}

/// Everything one pass over the rows gathers.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub all: Totals,
    pub by_backend: Keyed<Group>,
    pub by_route: Keyed<Group>,
    /// Keyed by the alias the client asked for.
    pub by_requested_model: Keyed<Totals>,
    /// Rows from before the ledger recorded what the client asked for.
    pub requested_model_unrecorded: Totals,
    /// Hour index (start ms ÷ 3,600,000) → requests started in it.
    pub per_hour: BTreeMap<i64, u64>,
    pub spilled: Totals,
    pub fell_back: Totals,
    /// Rows whose token counts were estimated.
    pub estimated: Totals,
    /// (outcome, error kind) → requests, for every request that did not succeed.
    pub errors: BTreeMap<(&'static str, Option<String>), u64>,
}

/// A few groups by name. A short vector searched in order beats a tree here: there are
/// a handful of backends, routes and aliases, and `==` on strings of different lengths
/// costs no byte comparison.
#[derive(Debug, Clone)]
pub struct Keyed<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            entries: Vec::new(),
        }
    }
}

impl<T> Keyed<T> {
    /// The value of `key`, made by `make` the first time.
    fn entry(&mut self, key: &str, make: impl FnOnce() -> T) -> &mut T {
        let index = match self.entries.iter().position(|(k, _)| k == key) {
            Some(index) => index,
            None => {
                self.entries.push((key.to_string(), make()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].1
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every group, ordered by name.
    pub fn sorted(&self) -> Vec<(&str, &T)> {
        let mut sorted: Vec<(&str, &T)> =
            self.entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        sorted
    }
}

fn new_group() -> Group {
    Group {
        totals: Totals::default(),
        latency: Latency::new(),
    }
}

impl Tally {
    /// Adds one row.
    pub fn add(&mut self, row: &ScanRow<'_>) {
        self.all.add(row);
        for (groups, key) in [
            (&mut self.by_backend, row.backend),
            (&mut self.by_route, row.route),
        ] {
            let group = groups.entry(key, new_group);
            group.totals.add(row);
            group.latency.add(row);
        }
        match row.requested_model {
            Some(requested) => self
                .by_requested_model
                .entry(requested, Totals::default)
                .add(row),
            None => self.requested_model_unrecorded.add(row),
        }
        *self
            .per_hour
            .entry(row.started_at_unix_ms.div_euclid(MS_PER_HOUR))
            .or_default() += 1;
        let path = Path::of(row.fallback_chain);
        if path.spilled {
            self.spilled.add(row);
        }
        if path.fell_back() {
            self.fell_back.add(row);
        }
        if row.estimated {
            self.estimated.add(row);
        }
        if row.outcome != Outcome::Success {
            let kind = row.error_kind;
            match self
                .errors
                .iter_mut()
                .find(|((outcome, k), _)| *outcome == row.outcome.as_str() && k.as_deref() == kind)
            {
                Some((_, count)) => *count += 1,
                None => {
                    self.errors
                        .insert((row.outcome.as_str(), kind.map(str::to_string)), 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_fallback_chains() {
        // The gateway writes `name:status` per attempt and `name:full|context|open|held`
        // per skipped target (crates/gateway/src/forward.rs).
        let cases = [
            ("a:200", false, 1),
            ("a:full>b:200", true, 1),
            ("a:529>b:200", false, 2),
            ("a:full>b:timeout>c:200", true, 2),
            ("a:context>a:open>b:held>c:200", false, 1),
            ("", false, 0),
        ];
        for (chain, spilled, attempts) in cases {
            assert_eq!(Path::of(chain), Path { spilled, attempts }, "{chain}");
        }
        assert!(Path::of("a:529>b:200").fell_back());
        assert!(!Path::of("a:full>b:200").fell_back());
    }
}
