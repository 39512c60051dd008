//! The writer's PostgreSQL half: batched inserts, and what happens while the database
//! is away.
//!
//! A batch is one `INSERT … SELECT FROM unnest(…)` (one array a column: a multi-row
//! insert with a fixed statement), `ON CONFLICT (request_id, started_at_unix_ms) DO
//! NOTHING` so that a batch sent again after a lost reply lands once (a row's id and
//! start time are its key, which a table partitioned by month can keep). When the database cannot be reached, rows
//! wait in memory up to a bound, then go to the spill file; both are written, oldest
//! first, once a reconnect succeeds (tried at most once a second, backing off to five).
//! Nothing is dropped: a row is lost only if the spill file itself cannot be written,
//! and then it is logged and counted like every other lost row.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metric_names::{BACKLOG_ROWS, ROWS_REPLAYED, ROWS_SPOOLED, SPOOL_ROWS, STORE_UP};
use crate::pg::{is_row_error, PgConn};
use crate::spill::Spill;
use crate::{LedgerError, LedgerRow, Result};

const INSERT_SQL: &str = "INSERT INTO requests (
        request_id, started_at_unix_ms, finished_at_unix_ms, client_key, route, backend, model,
        task, stream, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, ttft_us,
        total_us, overhead_us, http_status, outcome, error_kind, fallback_chain, cost_nusd,
        counterfactual_cost_nusd, estimated, self_hosted, requested_model, cache_write_1h_tokens,
        input_estimate, replica
    ) SELECT * FROM unnest(
        $1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],
        $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::text[], $19::text[],
        $20::text[], $21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[],
        $26::bigint[], $27::bigint[], $28::text[]
    ) ON CONFLICT (request_id, started_at_unix_ms) DO NOTHING";

/// The first pause after a failed connection, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Inserts `rows` (those already there are skipped): how many were sent, or the error
/// with the rows given back.
fn insert(
    conn: &PgConn,
    rows: Vec<LedgerRow>,
) -> std::result::Result<u64, (LedgerError, Vec<LedgerRow>)> {
    let sent = rows.len() as u64;
    let rows = Arc::new(rows);
    let shared = Arc::clone(&rows);
    // The job, and with it `shared`, is dropped on the connection's thread before the
    // answer comes back, so the rows are ours alone again.
    let done = conn.run(move |client| insert_all(client, &shared));
    done.map(|_| sent).map_err(|e| {
        (
            e,
            Arc::try_unwrap(rows).unwrap_or_else(|arc| (*arc).clone()),
        )
    })
}

fn insert_all(client: &mut postgres::Client, r: &[LedgerRow]) -> Result<u64> {
    {
        let text = |f: fn(&LedgerRow) -> &str| r.iter().map(f).collect::<Vec<&str>>();
        let opt_text =
            |f: fn(&LedgerRow) -> Option<&str>| r.iter().map(f).collect::<Vec<Option<&str>>>();
        let int = |f: fn(&LedgerRow) -> i64| r.iter().map(f).collect::<Vec<i64>>();
        let opt_int = |f: fn(&LedgerRow) -> Option<i64>| r.iter().map(f).collect::<Vec<_>>();
        let request_id = text(|x| &x.request_id);
        let started = int(|x| x.started_at_unix_ms);
        let finished = int(|x| x.finished_at_unix_ms);
        let client_key = opt_text(|x| x.client_key.as_deref());
        let route = text(|x| &x.route);
        let backend = text(|x| &x.backend);
        let model = text(|x| &x.model);
        let task = opt_text(|x| x.task.as_deref());
        let stream = int(|x| i64::from(x.stream));
        let input = int(|x| x.input_tokens);
        let cache_read = int(|x| x.cache_read_tokens);
        let cache_write = int(|x| x.cache_write_tokens);
        let output = int(|x| x.output_tokens);
        let ttft = opt_int(|x| x.ttft_us);
        let total = int(|x| x.total_us);
        let overhead = int(|x| x.overhead_us);
        let status = int(|x| i64::from(x.http_status));
        let outcome = text(|x| x.outcome.as_str());
        let error_kind = opt_text(|x| x.error_kind.as_deref());
        let chain = text(|x| &x.fallback_chain);
        let cost = int(|x| x.cost_nusd);
        let counterfactual = int(|x| x.counterfactual_cost_nusd);
        let estimated = int(|x| i64::from(x.estimated));
        let self_hosted = int(|x| i64::from(x.self_hosted));
        let requested = opt_text(|x| x.requested_model.as_deref());
        let cache_write_1h = int(|x| x.cache_write_1h_tokens);
        let input_estimate = opt_int(|x| x.input_estimate);
        let replica = opt_text(|x| x.replica.as_deref());
        let new = client.execute(
            INSERT_SQL,
            &[
                &request_id,
                &started,
                &finished,
                &client_key,
                &route,
                &backend,
                &model,
                &task,
                &stream,
                &input,
                &cache_read,
                &cache_write,
                &output,
                &ttft,
                &total,
                &overhead,
                &status,
                &outcome,
                &error_kind,
                &chain,
                &cost,
                &counterfactual,
                &estimated,
                &self_hosted,
                &requested,
                &cache_write_1h,
                &input_estimate,
                &replica,
            ],
        )?;
        Ok(new)
    }
}

/// What [`PgSink::write`] did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Rows now in the database (already there counted too).
    pub(crate) written: u64,
    /// Rows rejected on their own (bad data), each with the reason.
    pub(crate) rejected: Vec<(LedgerRow, String)>,
}

/// The PostgreSQL side of the writer thread.
pub(crate) struct PgSink {
    conn: PgConn,
    backlog: VecDeque<LedgerRow>,
    backlog_max: usize,
    batch_max: usize,
    spill: Spill,
    /// While the database is away: when to try it again, and the pause after that.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl PgSink {
    pub(crate) fn new(conn: PgConn, spill: Spill, backlog_max: usize, batch_max: usize) -> PgSink {
        let sink = PgSink {
            conn,
            backlog: VecDeque::new(),
            backlog_max,
            batch_max,
            spill,
            retry_at: None,
            backoff: FIRST_BACKOFF,
        };
        if sink.spill.rows() > 0 {
            tracing::warn!(rows = sink.spill.rows(), file = %sink.spill.path().display(),
                "ledger spill file holds rows from an earlier run; writing them to the database");
        }
        sink.publish();
        metrics::gauge!(STORE_UP).set(1.0);
        sink
    }

    /// Rows waiting for the database, in memory and in the spill file.
    pub(crate) fn pending(&self) -> u64 {
        self.backlog.len() as u64 + self.spill.rows()
    }

    /// When the writer should wake to try the database again, if rows are waiting.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        (self.pending() > 0).then(|| self.retry_at.unwrap_or_else(Instant::now))
    }

    /// Whether the database took the last write (or has not been needed since).
    pub(crate) fn is_up(&self) -> bool {
        self.retry_at.is_none()
    }

    fn publish(&self) {
        metrics::gauge!(BACKLOG_ROWS).set(self.backlog.len() as f64);
        metrics::gauge!(SPOOL_ROWS).set(self.spill.rows() as f64);
    }

    fn went_down(&mut self, e: &LedgerError) {
        if self.retry_at.is_none() {
            tracing::error!(error = %e,
                "ledger database unreachable; keeping rows in memory, then in the spill file, until it returns");
            metrics::gauge!(STORE_UP).set(0.0);
        } else {
            tracing::debug!(error = %e, "ledger database still unreachable");
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn came_back(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!(waiting = self.pending(), "ledger database reachable again");
            metrics::gauge!(STORE_UP).set(1.0);
        }
        self.backoff = FIRST_BACKOFF;
    }

    /// Keeps `rows` until the database returns: in memory while the backlog has room,
    /// then in the spill file. Returns rows that could not be kept (the spill file
    /// failed), with the reason.
    fn park(&mut self, rows: Vec<LedgerRow>) -> Vec<(LedgerRow, String)> {
        let room = self.backlog_max.saturating_sub(self.backlog.len());
        let mut rows = rows;
        let to_disk = if rows.len() > room {
            rows.split_off(room)
        } else {
            Vec::new()
        };
        self.backlog.extend(rows);
        let mut lost = Vec::new();
        // Once rows are on disk, memory holds the newest; move the oldest down first.
        if !to_disk.is_empty() {
            let mut spill: Vec<LedgerRow> = self.backlog.drain(..).collect();
            spill.extend(to_disk);
            lost = self.append_to_spill(spill);
        }
        self.publish();
        lost
    }

    /// Appends `rows` to the spill file; returns them, with the reason, if it fails.
    fn append_to_spill(&mut self, rows: Vec<LedgerRow>) -> Vec<(LedgerRow, String)> {
        match self.spill.append(&rows) {
            Ok(()) => {
                metrics::counter!(ROWS_SPOOLED).increment(rows.len() as u64);
                tracing::warn!(rows = rows.len(), total = self.spill.rows(),
                    file = %self.spill.path().display(), "ledger rows spilled to disk");
                Vec::new()
            }
            Err(e) => {
                let reason = format!("spill file {}: {e}", self.spill.path().display());
                rows.into_iter().map(|row| (row, reason.clone())).collect()
            }
        }
    }

    /// Inserts `rows`; a row rejected on its own is refused alone (one by one) and the
    /// rest written. Gives back the error and the rows when the database is away.
    fn insert_or_split(
        &mut self,
        rows: Vec<LedgerRow>,
        done: &mut Outcome,
    ) -> std::result::Result<(), (LedgerError, Vec<LedgerRow>)> {
        match insert(&self.conn, rows) {
            Ok(sent) => {
                self.came_back();
                done.written += sent;
                Ok(())
            }
            Err((e, rows)) if is_row_error(&e) => {
                tracing::warn!(error = %e, rows = rows.len(),
                    "ledger batch rejected a row; writing rows one by one");
                let (written, rejected) = self.one_by_one(rows);
                done.written += written;
                done.rejected.extend(rejected);
                Ok(())
            }
            Err(failed) => Err(failed),
        }
    }

    /// Writes what is waiting (memory first, then the spill file) if the database is
    /// due to be tried. Returns whether nothing is waiting any more.
    pub(crate) fn drain(&mut self, force: bool) -> (bool, Outcome) {
        let mut done = Outcome::default();
        if self.pending() == 0 {
            return (true, done);
        }
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return (false, done);
        }
        while !self.backlog.is_empty() {
            let take = self.backlog.len().min(self.batch_max);
            let chunk: Vec<LedgerRow> = self.backlog.drain(..take).collect();
            let before = done.written;
            if let Err((e, chunk)) = self.insert_or_split(chunk, &mut done) {
                for row in chunk.into_iter().rev() {
                    self.backlog.push_front(row);
                }
                self.went_down(&e);
                self.publish();
                return (false, done);
            }
            metrics::counter!(ROWS_REPLAYED).increment(done.written - before);
        }
        self.publish();
        if self.spill.rows() > 0 {
            let back = match self.spill.read_all() {
                Ok(back) => back,
                Err(e) => {
                    tracing::error!(error = %e, file = %self.spill.path().display(),
                        "ledger spill file unreadable; its rows stay in it");
                    self.retry_at = Some(Instant::now() + MAX_BACKOFF);
                    return (false, done);
                }
            };
            let total = back.rows.len() as u64;
            let mut rows = back.rows;
            while !rows.is_empty() {
                let rest = rows.split_off(rows.len().min(self.batch_max));
                let chunk = std::mem::replace(&mut rows, rest);
                if let Err((e, _)) = self.insert_or_split(chunk, &mut done) {
                    // The file stays whole; the next replay starts it again, and
                    // the rows already in are skipped by their request ids.
                    self.went_down(&e);
                    return (false, done);
                }
            }
            self.came_back();
            metrics::counter!(ROWS_REPLAYED).increment(total);
            if let Err(e) = self.spill.clear() {
                tracing::error!(error = %e, file = %self.spill.path().display(),
                    "ledger spill file could not be emptied; its rows will be offered again (and skipped)");
            } else {
                tracing::info!(rows = total, "ledger spill file written to the database");
            }
            self.publish();
        }
        (self.pending() == 0, done)
    }

    /// Writes `batch`: after what is waiting, so that rows land roughly in order.
    pub(crate) fn write(&mut self, batch: Vec<LedgerRow>) -> Outcome {
        let (clear, mut done) = self.drain(false);
        if !clear {
            let lost = self.park(batch);
            done.rejected.extend(lost);
            return done;
        }
        if let Err((e, batch)) = self.insert_or_split(batch, &mut done) {
            self.went_down(&e);
            let lost = self.park(batch);
            done.rejected.extend(lost);
        }
        done
    }

    /// Rows one at a time, so only the bad ones are refused; if the database goes away
    /// meanwhile, the rest are parked.
    fn one_by_one(&mut self, rows: Vec<LedgerRow>) -> (u64, Vec<(LedgerRow, String)>) {
        let mut written = 0;
        let mut rejected = Vec::new();
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            match insert(&self.conn, vec![row]) {
                Ok(_) => written += 1,
                Err((e, mut one)) => {
                    if is_row_error(&e) {
                        if let Some(row) = one.pop() {
                            rejected.push((row, format!("ledger write failed: {e}")));
                        }
                    } else {
                        self.went_down(&e);
                        one.extend(rows);
                        rejected.extend(self.park(one));
                        break;
                    }
                }
            }
        }
        (written, rejected)
    }

    /// At shutdown: rows still in memory go to the spill file, to be written by the
    /// next start. Returns rows that could not be kept.
    pub(crate) fn close(&mut self) -> Vec<(LedgerRow, String)> {
        let (clear, done) = self.drain(true);
        let mut lost = done.rejected;
        if !clear && !self.backlog.is_empty() {
            let rows: Vec<LedgerRow> = self.backlog.drain(..).collect();
            lost.extend(self.append_to_spill(rows));
        }
        if self.spill.rows() > 0 {
            tracing::warn!(rows = self.spill.rows(), file = %self.spill.path().display(),
                "ledger database still unreachable at shutdown; rows kept in the spill file are written at the next start");
        }
        self.publish();
        lost
    }

    /// Rows written to the database by [`PgSink::drain`] count as written by the caller;
    /// this is the count of rows the sink holds for later.
    pub(crate) fn spilled(&self) -> u64 {
        self.spill.rows()
    }
}
