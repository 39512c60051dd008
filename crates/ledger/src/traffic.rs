//! The traffic the ledger saw, summed in SQL: what `workload from-ledger` and the review
//! turn into an observed workload. One pass per query; rows are never loaded whole.

use std::path::Path;

use rusqlite::named_params;

use crate::{schema, ReportFilter, Result};

/// Sums over the successful requests in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Earliest and latest `started_at_unix_ms` among them.
    pub first_unix_ms: Option<i64>,
    pub last_unix_ms: Option<i64>,
    pub calls: u64,
    /// Calls whose token counts were estimated (no usage from the backend).
    pub estimated_calls: u64,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub output_tokens: u64,
    /// The 99th percentile (nearest rank) of all input tokens per call.
    pub p99_prompt_tokens: Option<u64>,
    /// Calls per hour of the day, UTC.
    pub calls_by_hour_of_day: [u64; 24],
    /// The most calls in one clock hour.
    pub busiest_hour_calls: u64,
    /// Per task label (`None`: untagged), in label order.
    pub tasks: Vec<TaskTotals>,
}

/// Sums of one task label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTotals {
    pub task: Option<String>,
    pub calls: u64,
    /// All input tokens (uncached, cache reads and writes).
    pub input_tokens: u64,
    pub output_tokens: u64,
}

const SUCCESS_IN_PERIOD: &str = "outcome = 'success'
    AND (:since IS NULL OR started_at_unix_ms >= :since)
    AND (:until IS NULL OR started_at_unix_ms < :until)";

const ALL_INPUT: &str =
    "(input_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens)";

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The totals of the successful requests in `filter`.
pub fn traffic_totals(path: &Path, filter: &ReportFilter) -> Result<TrafficTotals> {
    let conn = schema::open_ro(path)?;
    let period = named_params! { ":since": filter.since_unix_ms, ":until": filter.until_unix_ms };
    let mut totals = conn.query_row(
        &format!(
            "SELECT MIN(started_at_unix_ms), MAX(started_at_unix_ms), COUNT(*),
                    COALESCE(SUM(estimated), 0), COALESCE(SUM(input_tokens), 0),
                    COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),
                    COALESCE(SUM(cache_write_1h_tokens), 0), COALESCE(SUM(output_tokens), 0)
             FROM requests WHERE {SUCCESS_IN_PERIOD}"
        ),
        period,
        |r| {
            Ok(TrafficTotals {
                first_unix_ms: r.get(0)?,
                last_unix_ms: r.get(1)?,
                calls: count(r.get(2)?),
                estimated_calls: count(r.get(3)?),
                input_tokens: count(r.get(4)?),
                cache_read_tokens: count(r.get(5)?),
                cache_write_tokens: count(r.get(6)?),
                cache_write_1h_tokens: count(r.get(7)?),
                output_tokens: count(r.get(8)?),
                ..TrafficTotals::default()
            })
        },
    )?;
    if totals.calls == 0 {
        return Ok(totals);
    }
    // Nearest rank: the ceil(0.99 n)-th smallest.
    let rank = (totals.calls * 99).div_ceil(100).max(1) - 1;
    totals.p99_prompt_tokens = Some(count(conn.query_row(
        &format!(
            "SELECT {ALL_INPUT} FROM requests WHERE {SUCCESS_IN_PERIOD}
             ORDER BY {ALL_INPUT} LIMIT 1 OFFSET :rank"
        ),
        named_params! {
            ":since": filter.since_unix_ms,
            ":until": filter.until_unix_ms,
            ":rank": i64::try_from(rank).unwrap_or(i64::MAX),
        },
        |r| r.get(0),
    )?));
    let mut stmt = conn.prepare(&format!(
        "SELECT started_at_unix_ms / 3600000 AS hour, COUNT(*) FROM requests
         WHERE {SUCCESS_IN_PERIOD} GROUP BY hour"
    ))?;
    let hours = stmt.query_map(period, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    for hour in hours {
        let (hour, calls) = hour?;
        let calls = count(calls);
        totals.calls_by_hour_of_day[usize::try_from(hour.rem_euclid(24)).unwrap_or(0)] += calls;
        totals.busiest_hour_calls = totals.busiest_hour_calls.max(calls);
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT task, COUNT(*), SUM({ALL_INPUT}), SUM(output_tokens) FROM requests
         WHERE {SUCCESS_IN_PERIOD} GROUP BY task ORDER BY task"
    ))?;
    let tasks = stmt.query_map(period, |r| {
        Ok(TaskTotals {
            task: r.get(0)?,
            calls: count(r.get(1)?),
            input_tokens: count(r.get(2)?),
            output_tokens: count(r.get(3)?),
        })
    })?;
    totals.tasks = tasks.collect::<rusqlite::Result<_>>()?;
    Ok(totals)
}

/// One UTC day's cost sums (all requests, whatever their outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCost {
    /// Midnight UTC.
    pub day_unix_ms: i64,
    pub requests: u64,
    pub cost_nusd: i64,
    pub counterfactual_cost_nusd: i64,
}

/// Cost sums per UTC day of `filter`, in day order.
pub fn daily_costs(path: &Path, filter: &ReportFilter) -> Result<Vec<DayCost>> {
    let conn = schema::open_ro(path)?;
    let mut stmt = conn.prepare(
        "SELECT started_at_unix_ms / 86400000 AS day, COUNT(*), SUM(cost_nusd),
                SUM(counterfactual_cost_nusd)
         FROM requests
         WHERE (:since IS NULL OR started_at_unix_ms >= :since)
           AND (:until IS NULL OR started_at_unix_ms < :until)
         GROUP BY day ORDER BY day",
    )?;
    let days = stmt.query_map(
        named_params! { ":since": filter.since_unix_ms, ":until": filter.until_unix_ms },
        |r| {
            Ok(DayCost {
                day_unix_ms: r.get::<_, i64>(0)? * 86_400_000,
                requests: count(r.get(1)?),
                cost_nusd: r.get(2)?,
                counterfactual_cost_nusd: r.get(3)?,
            })
        },
    )?;
    Ok(days.collect::<rusqlite::Result<_>>()?)
}

/// Tokens (every input class and output) a backend served per clock hour of `filter`,
/// `(hour start, tokens)` in hour order: the ledger's estimate of its load.
pub fn backend_hourly_tokens(
    path: &Path,
    filter: &ReportFilter,
    backend: &str,
) -> Result<Vec<(i64, u64)>> {
    let conn = schema::open_ro(path)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT started_at_unix_ms / 3600000 AS hour, SUM({ALL_INPUT} + output_tokens)
         FROM requests
         WHERE backend = :backend AND {SUCCESS_IN_PERIOD}
         GROUP BY hour ORDER BY hour"
    ))?;
    let hours = stmt.query_map(
        named_params! {
            ":backend": backend,
            ":since": filter.since_unix_ms,
            ":until": filter.until_unix_ms,
        },
        |r| Ok((r.get::<_, i64>(0)? * 3_600_000, count(r.get(1)?))),
    )?;
    Ok(hours.collect::<rusqlite::Result<_>>()?)
}
