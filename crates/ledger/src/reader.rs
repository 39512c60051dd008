//! The reading half: read-only queries behind the `report` command.

use std::path::Path;

use rusqlite::{named_params, Connection, Row};
use serde::{Deserialize, Serialize};

use crate::{schema, LedgerRow, Outcome, Result};

/// Which rows a report covers, by `started_at_unix_ms`: `since` inclusive, `until` exclusive.
/// `None` leaves that side open; the default covers everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFilter {
    /// Earliest start time included (Unix ms, inclusive).
    pub since_unix_ms: Option<i64>,
    /// Start time from which rows are excluded (Unix ms, exclusive).
    pub until_unix_ms: Option<i64>,
}

/// Totals for one (backend, route, model, task) group.
///
/// Sums are computed by SQLite in 64-bit integers; a sum that would overflow `i64` is an error,
/// never a wrapped or rounded number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Backend name (empty for requests that never reached one).
    pub backend: String,
    /// Gateway route.
    pub route: String,
    /// The model that served the requests.
    pub model: String,
    /// Task label.
    pub task: Option<String>,
    /// Rows in the group.
    pub requests: u64,
    /// Rows with outcome `success`.
    pub success: u64,
    /// Rows with outcome `upstream_error`.
    pub upstream_error: u64,
    /// Rows with outcome `client_error`.
    pub client_error: u64,
    /// Rows with outcome `client_disconnect`.
    pub client_disconnect: u64,
    /// Sum of uncached input tokens.
    pub input_tokens: i64,
    /// Sum of cache-read input tokens.
    pub cache_read_tokens: i64,
    /// Sum of 5-minute cache-write input tokens.
    pub cache_write_tokens: i64,
    /// Sum of 1-hour cache-write input tokens.
    pub cache_write_1h_tokens: i64,
    /// Sum of output tokens.
    pub output_tokens: i64,
    /// Sum of actual cost, nano-USD.
    pub cost_nusd: i64,
    /// Sum of what the reference API would have charged, nano-USD.
    pub counterfactual_cost_nusd: i64,
    /// Rows whose token counts were estimated.
    pub estimated_rows: u64,
    /// Rows served by a self-hosted backend.
    pub self_hosted_rows: u64,
}

/// One row as [`LedgerReader::scan`] hands it over: the columns a report aggregates,
/// borrowed from SQLite's buffers for the length of the callback (no allocation per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRow<'a> {
    /// When the gateway received the request (Unix ms).
    pub started_at_unix_ms: i64,
    /// Gateway route.
    pub route: &'a str,
    /// Backend that answered (or the last one tried); empty if none was tried.
    pub backend: &'a str,
    /// What the client asked for; `None` on rows from before schema version 2.
    pub requested_model: Option<&'a str>,
    /// How the request ended.
    pub outcome: Outcome,
    /// Error class when the request did not succeed.
    pub error_kind: Option<&'a str>,
    /// Backends tried in order with their status, e.g. `a:full>b:200`.
    pub fallback_chain: &'a str,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Cache-read input tokens.
    pub cache_read_tokens: i64,
    /// 5-minute cache-write input tokens.
    pub cache_write_tokens: i64,
    /// 1-hour cache-write input tokens.
    pub cache_write_1h_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Time to first token (µs), when one was produced.
    pub ttft_us: Option<i64>,
    /// Total request time (µs).
    pub total_us: i64,
    /// Actual cost, nano-USD.
    pub cost_nusd: i64,
    /// What the reference API would have charged, nano-USD.
    pub counterfactual_cost_nusd: i64,
    /// Token counts estimated rather than reported.
    pub estimated: bool,
    /// Served by a self-hosted backend.
    pub self_hosted: bool,
    /// The task label, if the request had one.
    pub task: Option<&'a str>,
    /// The gateway's raw input estimate (schema version 4 on).
    pub input_estimate: Option<i64>,
}

/// The first and last start time of the rows in a filter, and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// Rows in the filter.
    pub rows: u64,
    /// Earliest `started_at_unix_ms`.
    pub first_unix_ms: i64,
    /// Latest `started_at_unix_ms`.
    pub last_unix_ms: i64,
}

/// Read-only access to a ledger file. Safe to use while a gateway is writing to it (WAL).
#[derive(Debug)]
pub struct LedgerReader {
    conn: Connection,
}

const FILTER_SQL: &str = "(:since IS NULL OR started_at_unix_ms >= :since)
    AND (:until IS NULL OR started_at_unix_ms < :until)";

/// A latency column; only these fixed names are ever put into SQL text.
#[derive(Clone, Copy)]
enum LatencyColumn {
    Total,
    Ttft,
    Overhead,
}

impl LatencyColumn {
    fn name(self) -> &'static str {
        match self {
            LatencyColumn::Total => "total_us",
            LatencyColumn::Ttft => "ttft_us",
            LatencyColumn::Overhead => "overhead_us",
        }
    }
}

impl LedgerReader {
    /// Opens an existing ledger read-only. Fails if the file is missing, was written by a newer
    /// build ([`crate::LedgerError::NewerSchema`]) or has not been migrated to this build's
    /// schema ([`crate::LedgerError::OlderSchema`]).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: schema::open_ro(path)?,
        })
    }

    /// Like [`LedgerReader::open`], but a ledger written by an older build (schema
    /// version 1 or later) is first migrated in place, as the gateway would on start:
    /// the migrations only add tables and columns, so an older gateway still writing
    /// to it keeps working. A file that is not a ledger (version 0) is left alone.
    pub fn open_migrating(path: &Path) -> Result<Self> {
        match schema::open_ro(path) {
            Err(crate::LedgerError::OlderSchema { found, .. }) if found >= 1 => {
                drop(schema::open_rw(path)?);
                Self::open(path)
            }
            other => Ok(Self { conn: other? }),
        }
    }

    /// Per-group totals for rows in `filter`, grouped by (backend, route, model, task) and ordered
    /// by those keys (a missing task sorts first).
    pub fn summary(&self, filter: &ReportFilter) -> Result<Vec<GroupSummary>> {
        let sql = format!(
            "SELECT backend, route, model, task,
                    COUNT(*),
                    SUM(outcome = 'success'),
                    SUM(outcome = 'upstream_error'),
                    SUM(outcome = 'client_error'),
                    SUM(outcome = 'client_disconnect'),
                    SUM(input_tokens),
                    SUM(cache_read_tokens),
                    SUM(cache_write_tokens),
                    SUM(output_tokens),
                    SUM(cache_write_1h_tokens),
                    SUM(cost_nusd),
                    SUM(counterfactual_cost_nusd),
                    SUM(estimated),
                    SUM(self_hosted)
             FROM requests
             WHERE {FILTER_SQL}
             GROUP BY backend, route, model, task
             ORDER BY backend, route, model, task"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            named_params! { ":since": filter.since_unix_ms, ":until": filter.until_unix_ms },
            |r| {
                Ok(GroupSummary {
                    backend: r.get(0)?,
                    route: r.get(1)?,
                    model: r.get(2)?,
                    task: r.get(3)?,
                    requests: r.get(4)?,
                    success: r.get(5)?,
                    upstream_error: r.get(6)?,
                    client_error: r.get(7)?,
                    client_disconnect: r.get(8)?,
                    input_tokens: r.get(9)?,
                    cache_read_tokens: r.get(10)?,
                    cache_write_tokens: r.get(11)?,
                    output_tokens: r.get(12)?,
                    cache_write_1h_tokens: r.get(13)?,
                    cost_nusd: r.get(14)?,
                    counterfactual_cost_nusd: r.get(15)?,
                    estimated_rows: r.get(16)?,
                    self_hosted_rows: r.get(17)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Total request latencies (`total_us`) of **successful** rows in `filter`, optionally for one
    /// backend, sorted ascending — ready for percentile lookup. Failed requests are left out
    /// because their timings (fast rejections, timeouts) would distort the distribution.
    pub fn latencies_us(&self, filter: &ReportFilter, backend: Option<&str>) -> Result<Vec<i64>> {
        self.latency_column(LatencyColumn::Total, filter, backend)
    }

    /// Time-to-first-token samples (`ttft_us`) of successful rows that have one, otherwise as
    /// [`LedgerReader::latencies_us`].
    pub fn ttft_us(&self, filter: &ReportFilter, backend: Option<&str>) -> Result<Vec<i64>> {
        self.latency_column(LatencyColumn::Ttft, filter, backend)
    }

    /// Gateway overhead samples (`overhead_us`) of successful rows, otherwise as
    /// [`LedgerReader::latencies_us`].
    pub fn overhead_us(&self, filter: &ReportFilter, backend: Option<&str>) -> Result<Vec<i64>> {
        self.latency_column(LatencyColumn::Overhead, filter, backend)
    }

    fn latency_column(
        &self,
        column: LatencyColumn,
        filter: &ReportFilter,
        backend: Option<&str>,
    ) -> Result<Vec<i64>> {
        let col = column.name();
        let sql = format!(
            "SELECT {col} FROM requests
             WHERE {FILTER_SQL}
               AND outcome = 'success'
               AND {col} IS NOT NULL
               AND (:backend IS NULL OR backend = :backend)
             ORDER BY {col}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            named_params! {
                ":since": filter.since_unix_ms,
                ":until": filter.until_unix_ms,
                ":backend": backend,
            },
            |r| r.get(0),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Calls `each` once per row in `filter`, in start-time order, in one streaming pass:
    /// memory stays flat however many rows there are. Returns the number of rows seen.
    pub fn scan(&self, filter: &ReportFilter, mut each: impl FnMut(&ScanRow<'_>)) -> Result<u64> {
        let sql = format!(
            "SELECT started_at_unix_ms, route, backend, requested_model, outcome, error_kind,
                    fallback_chain, input_tokens, cache_read_tokens, cache_write_tokens,
                    cache_write_1h_tokens, output_tokens, ttft_us, total_us, cost_nusd,
                    counterfactual_cost_nusd, estimated, self_hosted, task, input_estimate
             FROM requests
             WHERE {FILTER_SQL}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(
            named_params! { ":since": filter.since_unix_ms, ":until": filter.until_unix_ms },
        )?;
        let mut seen = 0u64;
        while let Some(r) = rows.next()? {
            each(&scan_row(r)?);
            seen += 1;
        }
        Ok(seen)
    }

    /// How many rows `filter` holds and their first and last start times; `None` when it
    /// holds none. Answered from the start-time index.
    pub fn time_span(&self, filter: &ReportFilter) -> Result<Option<TimeSpan>> {
        let sql = format!(
            "SELECT COUNT(*), MIN(started_at_unix_ms), MAX(started_at_unix_ms)
             FROM requests WHERE {FILTER_SQL}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let (rows, first, last): (u64, Option<i64>, Option<i64>) = stmt.query_row(
            named_params! { ":since": filter.since_unix_ms, ":until": filter.until_unix_ms },
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(match (first, last) {
            (Some(first_unix_ms), Some(last_unix_ms)) if rows > 0 => Some(TimeSpan {
                rows,
                first_unix_ms,
                last_unix_ms,
            }),
            _ => None,
        })
    }

    /// Each client key's cost and counterfactual cost (nano-USD, integer sums) over the
    /// rows that started at or after `since_unix_ms`: what a key's monthly budget has
    /// spent when the gateway starts.
    pub fn spend_by_client_key_since(&self, since_unix_ms: i64) -> Result<Vec<(String, i64, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT client_key, COALESCE(SUM(cost_nusd), 0), COALESCE(SUM(counterfactual_cost_nusd), 0)
             FROM requests WHERE client_key IS NOT NULL AND started_at_unix_ms >= ?1
             GROUP BY client_key ORDER BY client_key",
        )?;
        let rows = stmt.query_map([since_unix_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Number of rows in the ledger.
    pub fn count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?)
    }

    /// The first `limit` rows in the order they were written.
    pub fn rows(&self, limit: usize) -> Result<Vec<LedgerRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT request_id, started_at_unix_ms, finished_at_unix_ms, client_key, route,
                    backend, model, task, stream, input_tokens, cache_read_tokens,
                    cache_write_tokens, output_tokens, ttft_us, total_us, overhead_us,
                    http_status, outcome, error_kind, fallback_chain, cost_nusd,
                    counterfactual_cost_nusd, estimated, self_hosted, requested_model,
                    cache_write_1h_tokens, input_estimate, replica
             FROM requests ORDER BY id LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], row_from_sql)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn scan_row<'a>(r: &'a Row<'_>) -> rusqlite::Result<ScanRow<'a>> {
    Ok(ScanRow {
        started_at_unix_ms: r.get(0)?,
        route: r.get_ref(1)?.as_str()?,
        backend: r.get_ref(2)?.as_str()?,
        requested_model: r.get_ref(3)?.as_str_or_null()?,
        outcome: r.get(4)?,
        error_kind: r.get_ref(5)?.as_str_or_null()?,
        fallback_chain: r.get_ref(6)?.as_str()?,
        input_tokens: r.get(7)?,
        cache_read_tokens: r.get(8)?,
        cache_write_tokens: r.get(9)?,
        cache_write_1h_tokens: r.get(10)?,
        output_tokens: r.get(11)?,
        ttft_us: r.get(12)?,
        total_us: r.get(13)?,
        cost_nusd: r.get(14)?,
        counterfactual_cost_nusd: r.get(15)?,
        estimated: r.get(16)?,
        self_hosted: r.get(17)?,
        task: r.get_ref(18)?.as_str_or_null()?,
        input_estimate: r.get(19)?,
    })
}

fn row_from_sql(r: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok(LedgerRow {
        request_id: r.get(0)?,
        started_at_unix_ms: r.get(1)?,
        finished_at_unix_ms: r.get(2)?,
        client_key: r.get(3)?,
        route: r.get(4)?,
        backend: r.get(5)?,
        model: r.get(6)?,
        task: r.get(7)?,
        stream: r.get(8)?,
        input_tokens: r.get(9)?,
        cache_read_tokens: r.get(10)?,
        cache_write_tokens: r.get(11)?,
        output_tokens: r.get(12)?,
        ttft_us: r.get(13)?,
        total_us: r.get(14)?,
        overhead_us: r.get(15)?,
        http_status: r.get(16)?,
        outcome: r.get(17)?,
        error_kind: r.get(18)?,
        fallback_chain: r.get(19)?,
        cost_nusd: r.get(20)?,
        counterfactual_cost_nusd: r.get(21)?,
        estimated: r.get(22)?,
        self_hosted: r.get(23)?,
        requested_model: r.get(24)?,
        cache_write_1h_tokens: r.get(25)?,
        input_estimate: r.get(26)?,
        replica: r.get(27)?,
    })
}
