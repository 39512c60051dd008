//! The report as data: [`Report`] and its parts, built from a [`Tally`] and the fixed
//! costs. Every money figure is given twice, exact (`*_nusd`, integer nano-USD) and in
//! USD for reading; every ratio is `null` rather than NaN when there is nothing to
//! divide by.

use costfloor_core::catalog::Ownership;
use costfloor_core::money::{group_thousands, Money, UsdPerMtok};
use serde::Serialize;

use crate::period::{format_utc, MS_PER_DAY, MS_PER_HOUR};
use crate::tally::{Group, Keyed, Totals, LATENCY_SIGNIFICANT_DIGITS};
use crate::{hours_spanned, nano, Inputs, ReportError};

/// The whole report (`report --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub period: Period,
    /// Requests in the period.
    pub requests: u64,
    /// Set when the period holds no request: what was looked at and what the ledger holds.
    pub message: Option<String>,
    pub cost: Cost,
    pub self_hosted: Vec<SelfHosted>,
    pub by_backend: Vec<GroupFigures>,
    pub by_requested_model: Vec<GroupFigures>,
    pub by_route: Vec<GroupFigures>,
    pub latency: LatencyFigures,
    pub traffic: Traffic,
    /// What the figures leave out or assume, in plain words.
    pub notes: Vec<String>,
}

/// Rows from `since` (inclusive) to `until` (exclusive), by start time.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub since: String,
    pub until: String,
    pub since_unix_ms: i64,
    pub until_unix_ms: i64,
    pub days: f64,
    /// The catalog's month (`hours_per_month`) in days, the unit of the per-month figures.
    pub month_days: f64,
}

/// Money exactly and for reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Amount {
    pub usd: f64,
    pub nusd: i64,
}

impl Amount {
    fn of(money: Money) -> Result<Amount, ReportError> {
        let nusd = i64::try_from((money.pico_usd() + money.pico_usd().signum() * 500) / 1000)
            .map_err(|_| ReportError::Overflow { what: "cost" })?;
        Ok(Amount {
            usd: money.usd_f64(),
            nusd,
        })
    }

    /// The amount as [`Money`], for display.
    pub fn money(self) -> Money {
        Money::from_nano_usd(self.nusd)
    }
}

/// The cost figures of one span of time.
#[derive(Debug, Clone, Serialize)]
pub struct CostFigures {
    /// What the API backends charged (the ledger's `cost_nusd`).
    pub api_spend: Amount,
    /// Self-hosted deployments' fixed cost; `null` when unknown (no `--config`).
    pub self_hosted_fixed: Option<Amount>,
    /// API spend plus fixed costs; `null` when the fixed costs are unknown.
    pub actual: Option<Amount>,
    /// The same traffic all on the API (the ledger's `counterfactual_cost_nusd`).
    pub counterfactual_all_api: Amount,
    /// Counterfactual minus actual (negative: the API alone would have been cheaper).
    pub savings: Option<Amount>,
}

/// Cost for the period and per month.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub fixed_costs_known: bool,
    pub period: CostFigures,
    /// The period's figures scaled to the catalog's month; fixed costs at their monthly
    /// figure. `null` for an empty period.
    pub per_month: Option<CostFigures>,
    /// Every self-hosted backend's fixed cost over the period ÷ the tokens they served;
    /// `null` when unknown or when they served none.
    pub self_hosted_effective_usd_per_mtok: Option<f64>,
    /// Tokens (input of every class and output) served by self-hosted backends.
    pub self_hosted_tokens: u64,
}

/// One self-hosted backend from the config.
#[derive(Debug, Clone, Serialize)]
pub struct SelfHosted {
    pub backend: String,
    pub deployment: String,
    pub gpus: u32,
    pub ownership: Ownership,
    pub monthly: Amount,
    pub period: Amount,
    pub requests: u64,
    pub tokens: u64,
    /// `period` ÷ `tokens` in USD per million tokens; `null` when it served none.
    pub effective_usd_per_mtok: Option<f64>,
}

/// Sums for one backend, route or requested model.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFigures {
    /// The group's name; `null` for rows that did not record it.
    pub name: Option<String>,
    pub requests: u64,
    pub share: Option<f64>,
    pub success: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub output_tokens: u64,
    pub cost: Amount,
    pub counterfactual: Amount,
    pub estimated_requests: u64,
    pub self_hosted_requests: u64,
}

/// p50, p95 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Latency of one backend or route, successful requests only.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyGroup {
    pub name: String,
    /// Successful requests measured.
    pub requests: u64,
    /// Total time as the gateway saw it; `null` with no successful request.
    pub total: Option<Percentiles>,
    /// Requests that produced a first token (streamed).
    pub ttft_requests: u64,
    pub ttft: Option<Percentiles>,
}

/// Latency per backend and per route.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    /// Each percentile is at or above the exact order statistic (nearest rank) and
    /// within 0.1% of it: 3 significant digits.
    pub significant_digits: u8,
    pub by_backend: Vec<LatencyGroup>,
    pub by_route: Vec<LatencyGroup>,
}

/// Requests started in one hour.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    pub hour: String,
    pub calls: u64,
}

/// A subset of requests, with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Overflow {
    pub requests: u64,
    pub share: Option<f64>,
    pub cost: Amount,
    pub counterfactual: Amount,
}

/// Requests that ended one way.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorKind {
    pub outcome: String,
    pub error_kind: Option<String>,
    pub requests: u64,
    pub share: Option<f64>,
}

/// The traffic's shape.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    /// Whole hours the period touches.
    pub hours: u64,
    pub average_calls_per_hour: Option<f64>,
    pub peak_calls_per_hour: u64,
    pub peak_hour: Option<String>,
    pub peak_to_average: Option<f64>,
    /// Every hour of the period, empty ones included.
    pub calls_per_hour: Vec<Hour>,
    /// Requests that skipped a full target (`name:full` in the fallback chain).
    pub spilled: Overflow,
    /// Requests sent to more than one backend (the first choice failed).
    pub fell_back: Overflow,
    /// Requests that did not succeed, by outcome and error kind.
    pub errors: Vec<ErrorKind>,
    /// Requests whose token counts were estimated.
    pub estimated: Overflow,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn count(value: i128, what: &'static str) -> Result<u64, ReportError> {
    u64::try_from(value).map_err(|_| ReportError::Overflow { what })
}

fn group_figures(
    name: Option<String>,
    totals: &Totals,
    all: u64,
) -> Result<GroupFigures, ReportError> {
    Ok(GroupFigures {
        name,
        requests: totals.requests,
        share: share(totals.requests, all),
        success: totals.success,
        errors: totals.requests - totals.success,
        input_tokens: count(totals.input_tokens, "input tokens")?,
        cache_read_tokens: count(totals.cache_read_tokens, "cache-read tokens")?,
        cache_write_tokens: count(totals.cache_write_tokens, "cache-write tokens")?,
        cache_write_1h_tokens: count(totals.cache_write_1h_tokens, "1-hour cache-write tokens")?,
        output_tokens: count(totals.output_tokens, "output tokens")?,
        cost: Amount::of(nano(totals.cost_nusd))?,
        counterfactual: Amount::of(nano(totals.counterfactual_nusd))?,
        estimated_requests: totals.estimated,
        self_hosted_requests: totals.self_hosted,
    })
}

fn percentiles(histogram: &hdrhistogram::Histogram<u64>) -> Option<Percentiles> {
    if histogram.is_empty() {
        return None;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Some(Percentiles {
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
    })
}

fn latency_group(name: &str, group: &Group) -> LatencyGroup {
    LatencyGroup {
        name: name.to_string(),
        requests: group.latency.total_us.len(),
        total: percentiles(&group.latency.total_us),
        ttft_requests: group.latency.ttft_us.len(),
        ttft: percentiles(&group.latency.ttft_us),
    }
}

fn overflow(totals: &Totals, all: u64) -> Result<Overflow, ReportError> {
    Ok(Overflow {
        requests: totals.requests,
        share: share(totals.requests, all),
        cost: Amount::of(nano(totals.cost_nusd))?,
        counterfactual: Amount::of(nano(totals.counterfactual_nusd))?,
    })
}

fn cost_figures(
    api_spend: Money,
    fixed: Option<Money>,
    counterfactual: Money,
) -> Result<CostFigures, ReportError> {
    let actual = fixed.map(|fixed| api_spend + fixed);
    Ok(CostFigures {
        api_spend: Amount::of(api_spend)?,
        self_hosted_fixed: fixed.map(Amount::of).transpose()?,
        actual: actual.map(Amount::of).transpose()?,
        counterfactual_all_api: Amount::of(counterfactual)?,
        savings: actual
            .map(|actual| Amount::of(counterfactual - actual))
            .transpose()?,
    })
}

/// Fixed cost ÷ tokens, as a per-token price (pico-USD per token = micro-USD per MTok).
fn effective(cost: Money, tokens: u64) -> Option<f64> {
    (tokens > 0).then(|| {
        UsdPerMtok::from_micro_usd(cost.mul_ratio(1, i128::from(tokens)).pico_usd()).usd_f64()
    })
}

pub(crate) fn report(inputs: Inputs<'_>) -> Result<Report, ReportError> {
    let Inputs {
        since,
        until,
        month_ms,
        tally,
        fixed,
        ledger_span,
    } = inputs;
    let all = tally.all.requests;
    let period_ms = until - since;
    let mut notes = Vec::new();

    let message = (all == 0).then(|| {
        let looked = format!(
            "No requests between {} and {}",
            format_utc(since),
            format_utc(until)
        );
        match ledger_span {
            None => format!("{looked}: the ledger is empty."),
            Some(span) => format!(
                "{looked}. The ledger holds {} requests, from {} to {}: widen --since/--until to cover them.",
                group_thousands(&span.rows.to_string()),
                format_utc(span.first_unix_ms),
                format_utc(span.last_unix_ms)
            ),
        }
    });

    // Self-hosted backends and their fixed costs.
    let mut self_hosted = Vec::new();
    let mut self_hosted_tokens: u64 = 0;
    let mut fixed_period = Money::ZERO;
    let mut fixed_monthly = Money::ZERO;
    if let Some(fixed) = fixed {
        for cost in fixed {
            let (requests, tokens) = match tally.by_backend.get(&cost.backend) {
                Some(group) => (
                    group.totals.requests,
                    count(group.totals.tokens(), "tokens")?,
                ),
                None => (0, 0),
            };
            self_hosted_tokens += tokens;
            fixed_period += cost.period;
            fixed_monthly += cost.monthly;
            self_hosted.push(SelfHosted {
                backend: cost.backend.clone(),
                deployment: cost.deployment.clone(),
                gpus: cost.gpus,
                ownership: cost.ownership,
                monthly: Amount::of(cost.monthly)?,
                period: Amount::of(cost.period)?,
                requests,
                tokens,
                effective_usd_per_mtok: effective(cost.period, tokens),
            });
        }
        let unmapped: Vec<&str> = tally
            .by_backend
            .sorted()
            .into_iter()
            .filter(|(name, group)| {
                group.totals.self_hosted > 0 && !fixed.iter().any(|f| f.backend == *name)
            })
            .map(|(name, _)| name)
            .collect();
        if !unmapped.is_empty() {
            notes.push(format!(
                "Self-hosted backend(s) {} served requests in this period but name no deployment in the config: their fixed cost is not counted.",
                unmapped.join(", ")
            ));
        }
    } else if tally.all.self_hosted > 0 || all == 0 {
        notes.push(
            "Self-hosted fixed costs are unknown without --config (which names each backend's catalog deployment): the actual cost and the savings are left out."
                .to_string(),
        );
    }

    let api_spend = nano(tally.all.cost_nusd);
    let counterfactual = nano(tally.all.counterfactual_nusd);
    let fixed_known = fixed.is_some();
    let period_costs = cost_figures(
        api_spend,
        fixed_known.then_some(fixed_period),
        counterfactual,
    )?;
    let per_month = if period_ms > 0 && all > 0 {
        let scale = |m: Money| m.mul_ratio(i128::from(month_ms), i128::from(period_ms));
        Some(cost_figures(
            scale(api_spend),
            fixed_known.then_some(fixed_monthly),
            scale(counterfactual),
        )?)
    } else {
        None
    };
    let cost = Cost {
        fixed_costs_known: fixed_known,
        period: period_costs,
        per_month,
        self_hosted_effective_usd_per_mtok: if fixed_known {
            effective(fixed_period, self_hosted_tokens)
        } else {
            None
        },
        self_hosted_tokens,
    };

    if tally.all.estimated > 0 {
        notes.push(format!(
            "{} of {} requests ({:.1}%) carry estimated token counts (the backend reported no usage): their costs and counterfactuals are estimates too.",
            group_thousands(&tally.all.estimated.to_string()),
            group_thousands(&all.to_string()),
            100.0 * tally.all.estimated as f64 / all as f64
        ));
    }
    if tally.all.self_hosted_without_counterfactual > 0 {
        notes.push(format!(
            "{} self-hosted requests have no counterfactual cost: their route names no reference_api and has no API target to price them by.",
            group_thousands(&tally.all.self_hosted_without_counterfactual.to_string())
        ));
    }

    // Traffic.
    let hours = if all > 0 {
        hours_spanned(since, until)
    } else {
        0
    };
    let first_hour = since.div_euclid(MS_PER_HOUR);
    let calls_per_hour: Vec<Hour> = (0..hours)
        .map(|offset| {
            let hour = first_hour + offset;
            Hour {
                hour: format_utc(hour * MS_PER_HOUR),
                calls: tally.per_hour.get(&hour).copied().unwrap_or(0),
            }
        })
        .collect();
    let peak = tally
        .per_hour
        .iter()
        .max_by_key(|(hour, calls)| (**calls, -**hour));
    let average = (hours > 0).then(|| all as f64 / hours as f64);
    let traffic = Traffic {
        hours: u64::try_from(hours).unwrap_or(0),
        average_calls_per_hour: average,
        peak_calls_per_hour: peak.map_or(0, |(_, calls)| *calls),
        peak_hour: peak.map(|(hour, _)| format_utc(hour * MS_PER_HOUR)),
        peak_to_average: match (peak, average) {
            (Some((_, calls)), Some(average)) if average > 0.0 => Some(*calls as f64 / average),
            _ => None,
        },
        calls_per_hour,
        spilled: overflow(&tally.spilled, all)?,
        fell_back: overflow(&tally.fell_back, all)?,
        errors: tally
            .errors
            .iter()
            .map(|((outcome, kind), requests)| ErrorKind {
                outcome: (*outcome).to_string(),
                error_kind: kind.clone(),
                requests: *requests,
                share: share(*requests, all),
            })
            .collect(),
        estimated: overflow(&tally.estimated, all)?,
    };

    let by = |groups: &Keyed<Group>| {
        groups
            .sorted()
            .into_iter()
            .map(|(name, group)| group_figures(Some(name.to_string()), &group.totals, all))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut by_requested_model = tally
        .by_requested_model
        .sorted()
        .into_iter()
        .map(|(name, totals)| group_figures(Some(name.to_string()), totals, all))
        .collect::<Result<Vec<_>, _>>()?;
    if tally.requested_model_unrecorded.requests > 0 {
        by_requested_model.push(group_figures(None, &tally.requested_model_unrecorded, all)?);
    }
    Ok(Report {
        period: Period {
            since: format_utc(since),
            until: format_utc(until),
            since_unix_ms: since,
            until_unix_ms: until,
            days: period_ms as f64 / MS_PER_DAY as f64,
            month_days: month_ms as f64 / MS_PER_DAY as f64,
        },
        requests: all,
        message,
        cost,
        self_hosted,
        by_backend: by(&tally.by_backend)?,
        by_requested_model,
        by_route: by(&tally.by_route)?,
        latency: LatencyFigures {
            significant_digits: LATENCY_SIGNIFICANT_DIGITS,
            by_backend: tally
                .by_backend
                .sorted()
                .into_iter()
                .map(|(name, group)| latency_group(name, group))
                .collect(),
            by_route: tally
                .by_route
                .sorted()
                .into_iter()
                .map(|(name, group)| latency_group(name, group))
                .collect(),
        },
        traffic,
        notes,
    })
}
