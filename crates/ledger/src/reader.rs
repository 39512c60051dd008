//! The reading half: read-only queries behind the `report` command.

use serde::{Deserialize, Serialize};

use crate::sql::{args, Db, SqlRow, SqlRowExt};
use crate::{pg, schema, LedgerError, LedgerRow, Location, Outcome, Result};

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
/// Sums are computed by the database in 64-bit integers; a sum that would overflow `i64` is an error,
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
/// borrowed from the store's row buffer for the length of the callback (no allocation per row).
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

/// Read-only access to a ledger: a SQLite file (safe to read while a gateway writes
/// to it, WAL) or a PostgreSQL database. Every question is the same statement on both.
#[derive(Debug)]
pub struct LedgerReader {
    db: Db,
}

/// Rows whose start time is in the filter; `$1` is `since`, `$2` is `until`.
const FILTER_SQL: &str = "(CAST($1 AS BIGINT) IS NULL OR started_at_unix_ms >= $1)
    AND (CAST($2 AS BIGINT) IS NULL OR started_at_unix_ms < $2)";

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

/// The columns of [`LedgerRow`], in the order [`row_from_sql`] reads them.
pub(crate) const ROW_COLUMNS: &str = "request_id, started_at_unix_ms, finished_at_unix_ms,
    client_key, route, backend, model, task, stream, input_tokens, cache_read_tokens,
    cache_write_tokens, output_tokens, ttft_us, total_us, overhead_us, http_status, outcome,
    error_kind, fallback_chain, cost_nusd, counterfactual_cost_nusd, estimated, self_hosted,
    requested_model, cache_write_1h_tokens, input_estimate, replica";

/// Opens `location` for reading: a SQLite file read-only (see [`LedgerReader::open`]),
/// or a PostgreSQL database, migrated first if a gateway has not yet done so.
pub(crate) fn open_db(location: &Location, migrating: bool) -> Result<Db> {
    match location {
        Location::Sqlite(path) if migrating => match schema::open_ro(path) {
            Err(LedgerError::OlderSchema { found, .. }) if found >= 1 => {
                drop(schema::open_rw(path)?);
                Ok(Db::Sqlite(schema::open_ro(path)?))
            }
            other => Ok(Db::Sqlite(other?)),
        },
        Location::Sqlite(path) => Ok(Db::Sqlite(schema::open_ro(path)?)),
        Location::Postgres(url) => Ok(Db::Postgres(pg::PgConn::open(url)?)),
    }
}

impl LedgerReader {
    /// Opens an existing ledger for reading. A SQLite file is opened read-only; it fails
    /// if missing, written by a newer build ([`crate::LedgerError::NewerSchema`]) or not
    /// migrated to this build's schema ([`crate::LedgerError::OlderSchema`]). A
    /// PostgreSQL database must be reachable.
    pub fn open(location: impl Into<Location>) -> Result<Self> {
        Ok(Self {
            db: open_db(&location.into(), false)?,
        })
    }

    /// Like [`LedgerReader::open`], but a ledger file written by an older build (schema
    /// version 1 or later) is first migrated in place, as the gateway would on start:
    /// the migrations only add tables and columns, so an older gateway still writing
    /// to it keeps working. A file that is not a ledger (version 0) is left alone.
    pub fn open_migrating(location: impl Into<Location>) -> Result<Self> {
        Ok(Self {
            db: open_db(&location.into(), true)?,
        })
    }

    /// Per-group totals for rows in `filter`, grouped by (backend, route, model, task) and ordered
    /// by those keys (a missing task sorts first).
    pub fn summary(&self, filter: &ReportFilter) -> Result<Vec<GroupSummary>> {
        let sql = format!(
            "SELECT backend, route, model, task,
                    COUNT(*),
                    CAST(SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN outcome = 'upstream_error' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN outcome = 'client_error' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN outcome = 'client_disconnect' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(input_tokens) AS BIGINT),
                    CAST(SUM(cache_read_tokens) AS BIGINT),
                    CAST(SUM(cache_write_tokens) AS BIGINT),
                    CAST(SUM(output_tokens) AS BIGINT),
                    CAST(SUM(cache_write_1h_tokens) AS BIGINT),
                    CAST(SUM(cost_nusd) AS BIGINT),
                    CAST(SUM(counterfactual_cost_nusd) AS BIGINT),
                    CAST(SUM(estimated) AS BIGINT),
                    CAST(SUM(self_hosted) AS BIGINT)
             FROM requests
             WHERE {FILTER_SQL}
             GROUP BY backend, route, model, task
             ORDER BY backend, route, model, task NULLS FIRST"
        );
        self.db.collect(
            &sql,
            &args![filter.since_unix_ms, filter.until_unix_ms],
            |r| {
                Ok(GroupSummary {
                    backend: r.string(0)?,
                    route: r.string(1)?,
                    model: r.string(2)?,
                    task: r.opt_string(3)?,
                    requests: r.count(4)?,
                    success: r.count(5)?,
                    upstream_error: r.count(6)?,
                    client_error: r.count(7)?,
                    client_disconnect: r.count(8)?,
                    input_tokens: r.req_int(9)?,
                    cache_read_tokens: r.req_int(10)?,
                    cache_write_tokens: r.req_int(11)?,
                    output_tokens: r.req_int(12)?,
                    cache_write_1h_tokens: r.req_int(13)?,
                    cost_nusd: r.req_int(14)?,
                    counterfactual_cost_nusd: r.req_int(15)?,
                    estimated_rows: r.count(16)?,
                    self_hosted_rows: r.count(17)?,
                })
            },
        )
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
               AND (CAST($3 AS TEXT) IS NULL OR backend = $3)
             ORDER BY {col}"
        );
        self.db.collect(
            &sql,
            &args![filter.since_unix_ms, filter.until_unix_ms, backend],
            |r| r.req_int(0),
        )
    }

    /// Calls `each` once per row in `filter`, in one streaming pass: memory stays flat
    /// however many rows there are. Returns the number of rows seen.
    pub fn scan(&self, filter: &ReportFilter, mut each: impl FnMut(&ScanRow<'_>)) -> Result<u64> {
        let sql = format!(
            "SELECT started_at_unix_ms, route, backend, requested_model, outcome, error_kind,
                    fallback_chain, input_tokens, cache_read_tokens, cache_write_tokens,
                    cache_write_1h_tokens, output_tokens, ttft_us, total_us, cost_nusd,
                    counterfactual_cost_nusd, estimated, self_hosted, task, input_estimate
             FROM requests
             WHERE {FILTER_SQL}"
        );
        self.db.query(
            &sql,
            &args![filter.since_unix_ms, filter.until_unix_ms],
            &mut |r| {
                each(&scan_row(r)?);
                Ok(())
            },
        )
    }

    /// How many rows `filter` holds and their first and last start times; `None` when it
    /// holds none. Answered from the start-time index.
    pub fn time_span(&self, filter: &ReportFilter) -> Result<Option<TimeSpan>> {
        let sql = format!(
            "SELECT COUNT(*), MIN(started_at_unix_ms), MAX(started_at_unix_ms)
             FROM requests WHERE {FILTER_SQL}"
        );
        let found = self.db.first(
            &sql,
            &args![filter.since_unix_ms, filter.until_unix_ms],
            |r| Ok((r.count(0)?, r.int(1)?, r.int(2)?)),
        )?;
        Ok(match found {
            Some((rows, Some(first_unix_ms), Some(last_unix_ms))) if rows > 0 => Some(TimeSpan {
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
        self.db.collect(
            "SELECT client_key, CAST(COALESCE(SUM(cost_nusd), 0) AS BIGINT),
                    CAST(COALESCE(SUM(counterfactual_cost_nusd), 0) AS BIGINT)
             FROM requests WHERE client_key IS NOT NULL AND started_at_unix_ms >= $1
             GROUP BY client_key ORDER BY client_key",
            &args![since_unix_ms],
            |r| Ok((r.string(0)?, r.req_int(1)?, r.req_int(2)?)),
        )
    }

    /// Number of rows in the ledger.
    pub fn count(&self) -> Result<u64> {
        Ok(self
            .db
            .first("SELECT COUNT(*) FROM requests", &[], |r| r.count(0))?
            .unwrap_or(0))
    }

    /// The first `limit` rows in the order they were written.
    pub fn rows(&self, limit: usize) -> Result<Vec<LedgerRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.collect(
            &format!("SELECT {ROW_COLUMNS} FROM requests ORDER BY id LIMIT $1"),
            &args![limit],
            row_from_sql,
        )
    }
}

fn outcome(r: &dyn SqlRow, i: usize) -> Result<Outcome> {
    let text = r.req_text(i)?;
    text.parse().map_err(|_| LedgerError::Decode {
        column: i,
        detail: format!("unknown outcome {text:?}"),
    })
}

fn scan_row<'a>(r: &'a dyn SqlRow) -> Result<ScanRow<'a>> {
    Ok(ScanRow {
        started_at_unix_ms: r.req_int(0)?,
        route: r.req_text(1)?,
        backend: r.req_text(2)?,
        requested_model: r.text(3)?,
        outcome: outcome(r, 4)?,
        error_kind: r.text(5)?,
        fallback_chain: r.req_text(6)?,
        input_tokens: r.req_int(7)?,
        cache_read_tokens: r.req_int(8)?,
        cache_write_tokens: r.req_int(9)?,
        cache_write_1h_tokens: r.req_int(10)?,
        output_tokens: r.req_int(11)?,
        ttft_us: r.int(12)?,
        total_us: r.req_int(13)?,
        cost_nusd: r.req_int(14)?,
        counterfactual_cost_nusd: r.req_int(15)?,
        estimated: r.flag(16)?,
        self_hosted: r.flag(17)?,
        task: r.text(18)?,
        input_estimate: r.int(19)?,
    })
}

pub(crate) fn row_from_sql(r: &dyn SqlRow) -> Result<LedgerRow> {
    let status = r.req_int(16)?;
    Ok(LedgerRow {
        request_id: r.string(0)?,
        started_at_unix_ms: r.req_int(1)?,
        finished_at_unix_ms: r.req_int(2)?,
        client_key: r.opt_string(3)?,
        route: r.string(4)?,
        backend: r.string(5)?,
        model: r.string(6)?,
        task: r.opt_string(7)?,
        stream: r.flag(8)?,
        input_tokens: r.req_int(9)?,
        cache_read_tokens: r.req_int(10)?,
        cache_write_tokens: r.req_int(11)?,
        output_tokens: r.req_int(12)?,
        ttft_us: r.int(13)?,
        total_us: r.req_int(14)?,
        overhead_us: r.req_int(15)?,
        http_status: u16::try_from(status).map_err(|_| LedgerError::Decode {
            column: 16,
            detail: format!("HTTP status {status}"),
        })?,
        outcome: outcome(r, 17)?,
        error_kind: r.opt_string(18)?,
        fallback_chain: r.string(19)?,
        cost_nusd: r.req_int(20)?,
        counterfactual_cost_nusd: r.req_int(21)?,
        estimated: r.flag(22)?,
        self_hosted: r.flag(23)?,
        requested_model: r.opt_string(24)?,
        cache_write_1h_tokens: r.req_int(25)?,
        input_estimate: r.int(26)?,
        replica: r.opt_string(27)?,
    })
}
