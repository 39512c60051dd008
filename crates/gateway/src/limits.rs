//! Per-key limits: requests and tokens per minute, and a monthly budget in USD.
//!
//! - **Rates** are token buckets: `rpm` requests (and `tpm` tokens) of capacity,
//!   refilled continuously at that many per minute. A request takes one request and its
//!   token bound (input estimate + the output it may generate); when it ends, the
//!   tokens it did not use go back.
//! - **The budget** counts, for the calendar month (UTC): the key's spend in the ledger
//!   when the gateway started, plus what this process has settled since, plus what is
//!   reserved by requests in flight. A request is admitted only if its largest possible
//!   cost (its token bound at the dearest price its route can reach) fits what is left;
//!   the reservation is settled with the cost its ledger row records.
//!
//! Within one process the budget is never passed by more than the in-flight requests'
//! input-estimate shortfall (see docs/gateway.md). It must not do I/O: the spend at
//! start is read by the caller and passed in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use costfloor_core::calendar::month_bounds_unix_ms;
use costfloor_core::money::Money;
use serde::Deserialize;
use wire::ApiErrorKind;

use crate::error::ClientError;

/// What a key's monthly budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetOn {
    /// What the traffic cost: API requests at their price, self-hosted ones nothing.
    #[default]
    Actual,
    /// What it would have cost on the API (the route's `reference_api` for
    /// self-hosted requests).
    Counterfactual,
}

/// One key's limits, from its `[[client_key]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub monthly_budget: Option<Money>,
    pub budget_on: BudgetOn,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.monthly_budget.is_none()
    }
}

/// A token bucket of `capacity`, refilled at `capacity` per minute.
#[derive(Debug, Clone)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, capacity: f64, now: Instant) {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        self.level = (self.level + minutes * capacity).min(capacity);
        self.at = now;
    }

    /// How long until `amount` is there.
    fn wait_for(&self, amount: f64, capacity: f64) -> Duration {
        Duration::from_secs_f64(((amount - self.level).max(0.0) / capacity * 60.0).max(0.001))
    }
}

#[derive(Debug)]
struct KeyState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// Unix ms of the first instant of the month `spent` counts.
    month_start_ms: i64,
    spent: Money,
    reserved: Money,
}

/// The limits' running state, shared by every request and kept across reloads.
#[derive(Debug, Default)]
pub struct Limits {
    keys: Mutex<HashMap<String, KeyState>>,
    /// Each key's (cost, counterfactual cost) in the ledger this month at start.
    at_start: HashMap<String, (Money, Money)>,
    at_start_month_ms: i64,
}

/// A request's claim on its key's budget and token bucket, settled when its row is
/// written; dropped unsettled, it gives both back.
#[derive(Debug)]
pub struct Reservation {
    limits: Arc<Limits>,
    key: String,
    cost: Money,
    tokens: u64,
    budget_on: BudgetOn,
    tpm: Option<u64>,
    budget: Option<Money>,
    settled: bool,
}

impl Reservation {
    /// Replaces the reservation by what the request cost and used.
    pub fn settle(mut self, cost: Money, counterfactual: Money, tokens_used: u64) {
        let spent = match self.budget_on {
            BudgetOn::Actual => cost,
            BudgetOn::Counterfactual => counterfactual,
        };
        self.limits.release(
            &self.key,
            self.cost,
            self.tokens,
            self.tpm,
            self.budget,
            spent,
            tokens_used,
        );
        self.settled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.limits.release(
                &self.key,
                self.cost,
                self.tokens,
                self.tpm,
                self.budget,
                Money::ZERO,
                0,
            );
        }
    }
}

fn limited(
    key: &str,
    limit: &'static str,
    message: String,
    retry_after: Option<Duration>,
) -> ClientError {
    ::metrics::counter!(crate::metrics::KEY_REFUSED, "key" => key.to_owned(), "limit" => limit)
        .increment(1);
    let mut error = ClientError::client(ApiErrorKind::RateLimit, message);
    error.retry_after = retry_after;
    error
}

/// The budget gauges of one key.
/// The refusal of a request whose largest cost does not fit what is left of the
/// month's budget: what is spent and in flight, and when it resets.
pub(crate) fn over_budget(
    name: &str,
    spent: Money,
    reserved: Money,
    budget: Money,
    cost_bound: Money,
    now_ms: i64,
) -> ClientError {
    let (_, next_month) = month_bounds_unix_ms(now_ms);
    let resets_in = Duration::from_millis((next_month - now_ms).max(1000) as u64);
    let (year, month, _) =
        costfloor_core::calendar::civil_from_days(next_month.div_euclid(86_400_000));
    limited(
        name,
        "budget",
        format!(
            "budget: key `{name}` has spent {} (and {} in flight) of its {} monthly budget; this request may cost up to {}. It resets at {year:04}-{month:02}-01T00:00:00Z",
            spent.fine(),
            reserved.fine(),
            budget.fine(),
            cost_bound.fine()
        ),
        Some(resets_in),
    )
}

/// Publishes a key's spend and the share of its budget in use.
pub(crate) fn observe_spend(key: &str, spent: Money, reserved: Money, budget: Option<Money>) {
    ::metrics::gauge!(crate::metrics::KEY_SPENT_NANO_USD, "key" => key.to_owned())
        .set(spent.nano_usd() as f64);
    if let Some(budget) = budget.filter(|b| *b > Money::ZERO) {
        let used = (spent + reserved).nano_usd() as f64 / budget.nano_usd() as f64;
        ::metrics::gauge!(crate::metrics::KEY_BUDGET_USED, "key" => key.to_owned()).set(used);
    }
}

fn observe_budget(key: &str, state: &KeyState, budget: Option<Money>) {
    observe_spend(key, state.spent, state.reserved, budget);
}

impl Limits {
    /// `spend` is each key's (cost, counterfactual) this month, read from the ledger.
    pub fn new(spend: HashMap<String, (Money, Money)>, now_ms: i64) -> Limits {
        Limits {
            keys: Mutex::new(HashMap::new()),
            at_start: spend,
            at_start_month_ms: month_bounds_unix_ms(now_ms).0,
        }
    }

    /// Admits a request of key `name` whose cost is at most `cost_bound` (in the unit its
    /// budget counts) and whose tokens are at most `tokens_bound`, or says which limit
    /// refuses it and when that resets.
    pub fn admit(
        self: &Arc<Self>,
        name: &str,
        limits: &KeyLimits,
        cost_bound: Money,
        tokens_bound: u64,
        now: Instant,
        now_ms: i64,
    ) -> Result<Option<Reservation>, ClientError> {
        if limits.is_empty() {
            return Ok(None);
        }
        if let Some(tpm) = limits.tpm.filter(|tpm| tokens_bound > *tpm) {
            return Err(limited(
                name,
                "tpm",
                format!(
                    "rate limit: this request may use up to {tokens_bound} tokens (its input and max_tokens), more than key `{name}`'s {tpm} tokens per minute; lower max_tokens"
                ),
                None,
            ));
        }
        let (month_start, _) = month_bounds_unix_ms(now_ms);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let state = keys.entry(name.to_owned()).or_insert_with(|| KeyState {
            requests: None,
            tokens: None,
            month_start_ms: month_start,
            spent: self.spent_at_start(name, limits.budget_on, month_start),
            reserved: Money::ZERO,
        });
        if state.month_start_ms != month_start {
            state.month_start_ms = month_start;
            state.spent = Money::ZERO;
        }
        if let Some(rpm) = limits.rpm {
            let capacity = f64::from(rpm);
            let bucket = state
                .requests
                .get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(capacity, now);
            if bucket.level < 1.0 {
                let wait = bucket.wait_for(1.0, capacity);
                return Err(limited(
                    name,
                    "rpm",
                    format!(
                        "rate limit: key `{name}` may send {rpm} requests per minute; the next is allowed in {:.1} s",
                        wait.as_secs_f64()
                    ),
                    Some(wait),
                ));
            }
        }
        if let Some(tpm) = limits.tpm {
            let capacity = tpm as f64;
            let bucket = state
                .tokens
                .get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(capacity, now);
            if bucket.level < tokens_bound as f64 {
                let wait = bucket.wait_for(tokens_bound as f64, capacity);
                return Err(limited(
                    name,
                    "tpm",
                    format!(
                        "rate limit: key `{name}` may use {tpm} tokens per minute; this request's {tokens_bound} fit in {:.1} s",
                        wait.as_secs_f64()
                    ),
                    Some(wait),
                ));
            }
        }
        if let Some(budget) = limits.monthly_budget {
            let committed = state.spent + state.reserved;
            if committed + cost_bound > budget {
                return Err(over_budget(
                    name,
                    state.spent,
                    state.reserved,
                    budget,
                    cost_bound,
                    now_ms,
                ));
            }
        }
        // Every check passed: take the request, its tokens and its cost bound.
        if let Some(bucket) = state.requests.as_mut() {
            bucket.level -= 1.0;
        }
        if let Some(bucket) = state.tokens.as_mut() {
            bucket.level -= tokens_bound as f64;
        }
        let cost = if limits.monthly_budget.is_some() {
            cost_bound
        } else {
            Money::ZERO
        };
        state.reserved += cost;
        observe_budget(name, state, limits.monthly_budget);
        Ok(Some(Reservation {
            limits: Arc::clone(self),
            key: name.to_owned(),
            cost,
            tokens: if limits.tpm.is_some() {
                tokens_bound
            } else {
                0
            },
            budget_on: limits.budget_on,
            tpm: limits.tpm,
            budget: limits.monthly_budget,
            settled: false,
        }))
    }

    fn spent_at_start(&self, name: &str, on: BudgetOn, month_start: i64) -> Money {
        if month_start != self.at_start_month_ms {
            return Money::ZERO;
        }
        self.at_start
            .get(name)
            .map_or(Money::ZERO, |(cost, counterfactual)| match on {
                BudgetOn::Actual => *cost,
                BudgetOn::Counterfactual => *counterfactual,
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        name: &str,
        reserved: Money,
        tokens: u64,
        tpm: Option<u64>,
        budget: Option<Money>,
        spent: Money,
        used: u64,
    ) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = keys.get_mut(name) else {
            return;
        };
        state.reserved = state.reserved - reserved;
        state.spent += spent;
        if let (Some(bucket), Some(tpm)) = (state.tokens.as_mut(), tpm) {
            let unused = tokens.saturating_sub(used) as f64;
            bucket.level = (bucket.level + unused).min(tpm as f64);
        }
        if budget.is_some() {
            observe_budget(name, state, budget);
        }
    }

    /// A key's spend this month as this process knows it: (spent, reserved).
    pub fn spend(&self, name: &str) -> Option<(Money, Money)> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(name).map(|s| (s.spent, s.reserved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(cents: i64) -> Money {
        Money::from_nano_usd(cents * 10_000_000)
    }

    #[test]
    fn the_budget_holds_with_requests_in_flight() {
        let limits = Arc::new(Limits::new(
            [("team".to_string(), (usd(60), usd(600)))].into(),
            1_796_299_200_000,
        ));
        let key = KeyLimits {
            monthly_budget: Some(usd(100)),
            ..KeyLimits::default()
        };
        let now = Instant::now();
        let ms = 1_796_299_200_000;
        // $0.60 spent at start; two requests of up to $0.20 fit, a third does not
        // while they are in flight.
        let a = limits
            .admit("team", &key, usd(20), 10, now, ms)
            .unwrap()
            .unwrap();
        let b = limits
            .admit("team", &key, usd(20), 10, now, ms)
            .unwrap()
            .unwrap();
        let err = limits
            .admit("team", &key, usd(20), 10, now, ms)
            .unwrap_err();
        assert_eq!(err.kind, ApiErrorKind::RateLimit);
        assert!(
            err.message.contains("budget") && err.message.contains("2027-01-01"),
            "{}",
            err.message
        );
        assert!(err.retry_after.is_some());
        // One settles for $0.05 and the other is dropped (failed): $0.65 spent.
        a.settle(usd(5), usd(50), 10);
        drop(b);
        assert_eq!(limits.spend("team"), Some((usd(65), Money::ZERO)));
        assert!(limits
            .admit("team", &key, usd(35), 10, now, ms)
            .unwrap()
            .is_some());
        // The next month starts from nothing.
        let january = 1_798_761_600_000 + 1;
        assert!(limits
            .admit("team", &key, usd(99), 10, now, january)
            .unwrap()
            .is_some());
    }

    #[test]
    fn rates_refill_per_minute_and_give_back_unused_tokens() {
        let limits = Arc::new(Limits::default());
        let key = KeyLimits {
            rpm: Some(2),
            tpm: Some(1000),
            ..KeyLimits::default()
        };
        let t0 = Instant::now();
        let r1 = limits
            .admit("k", &key, Money::ZERO, 600, t0, 0)
            .unwrap()
            .unwrap();
        // 400 tokens left: a 600-token request waits for 200 more, 12 s at 1,000/min.
        let err = limits
            .admit("k", &key, Money::ZERO, 600, t0, 0)
            .unwrap_err();
        assert!(err.message.contains("tokens per minute"), "{}", err.message);
        let wait = err.retry_after.unwrap().as_secs_f64();
        assert!((wait - 12.0).abs() < 0.01, "{wait}");
        // It used 100 of its 600: 500 come back, and the second fits.
        r1.settle(Money::ZERO, Money::ZERO, 100);
        let _r2 = limits
            .admit("k", &key, Money::ZERO, 600, t0, 0)
            .unwrap()
            .unwrap();
        // Two requests in the minute: the third waits 30 s for the next.
        let err = limits.admit("k", &key, Money::ZERO, 10, t0, 0).unwrap_err();
        assert!(
            err.message.contains("2 requests per minute"),
            "{}",
            err.message
        );
        assert!((err.retry_after.unwrap().as_secs_f64() - 30.0).abs() < 0.01);
        let later = t0 + Duration::from_secs(30);
        assert!(limits.admit("k", &key, Money::ZERO, 10, later, 0).is_ok());
        // A request larger than the whole minute's tokens can never pass.
        let err = limits
            .admit("k", &key, Money::ZERO, 5000, later, 0)
            .unwrap_err();
        assert!(err.retry_after.is_none() && err.message.contains("lower max_tokens"));
    }
}
