//! The writing half: a bounded queue feeding one dedicated writer thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metric_names::{QUEUE_DEPTH, ROWS_LOST, ROWS_WRITTEN};
use crate::pg_writer::PgSink;
use crate::{schema, LedgerError, LedgerRow, Location, Result};

/// Pauses between attempts at a batch that failed; one more attempt than pauses is made.
const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(25),
    Duration::from_millis(100),
    Duration::from_millis(400),
];

const INSERT_SQL: &str = "INSERT INTO requests (
        request_id, started_at_unix_ms, finished_at_unix_ms, client_key, route, backend, model,
        task, stream, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, ttft_us,
        total_us, overhead_us, http_status, outcome, error_kind, fallback_chain, cost_nusd,
        counterfactual_cost_nusd, estimated, self_hosted, requested_model, cache_write_1h_tokens,
        input_estimate, replica
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
              ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";

/// Tuning for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOptions {
    /// Rows that may wait in the queue before [`LedgerHandle::record`] starts waiting for room
    /// (backpressure). Must be at least 1. Default 8192.
    pub queue_capacity: usize,
    /// Most rows committed in one transaction. Must be at least 1. Default 512.
    pub batch_max: usize,
    /// Longest a row waits for companions before a partly filled batch is committed. Zero
    /// commits whatever is queued as soon as the writer is free. Default 50 ms.
    pub flush_interval: Duration,
    /// PostgreSQL only: rows kept in memory while the database cannot be reached, before
    /// they go to the spill file. Default 50,000 (about 25 MB).
    pub backlog_max: usize,
    /// PostgreSQL only: the spill file, one per gateway process; rows left in it by an
    /// earlier run are written at start. Default `costfloor-ledger-spill.jsonl` in the
    /// working directory.
    pub spill_path: Option<PathBuf>,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            batch_max: 512,
            flush_interval: Duration::from_millis(50),
            backlog_max: 50_000,
            spill_path: None,
        }
    }
}

/// Where the writer puts its batches.
enum Sink {
    Sqlite(Connection),
    Postgres(Box<PgSink>),
}

/// Entry point for writing: see [`Ledger::open`].
#[derive(Debug)]
pub struct Ledger;

impl Ledger {
    /// Opens the ledger at `location` and starts the writer thread. A SQLite file is
    /// created if missing, switched to WAL and migrated. A PostgreSQL database must be
    /// reachable now; it is migrated under an advisory lock, and the spill file is
    /// opened (and locked) for the times it is not.
    ///
    /// Everything that can fail at startup fails here, synchronously: a store from a newer
    /// build ([`LedgerError::NewerSchema`]), an unwritable path, an unreachable database,
    /// bad options. This blocks on I/O briefly; call it before serving, not from a hot
    /// async path.
    ///
    /// Returns the [`LedgerHandle`] to clone into request handlers and the [`LedgerWriter`] to
    /// await at shutdown. Dropping the `LedgerWriter` does not stop the writer; it only gives up
    /// the ability to wait for it.
    pub fn open(
        location: impl Into<Location>,
        opts: LedgerOptions,
    ) -> Result<(LedgerHandle, LedgerWriter)> {
        if opts.queue_capacity == 0 {
            return Err(LedgerError::InvalidOptions(
                "queue_capacity must be at least 1",
            ));
        }
        if opts.batch_max == 0 {
            return Err(LedgerError::InvalidOptions("batch_max must be at least 1"));
        }
        let sink = match location.into() {
            Location::Sqlite(path) => Sink::Sqlite(schema::open_rw(&path)?),
            Location::Postgres(url) => {
                let conn = crate::pg::PgConn::open(&url)?;
                let spill_path = opts
                    .spill_path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("costfloor-ledger-spill.jsonl"));
                let spill = crate::spill::Spill::open(&spill_path)?;
                Sink::Postgres(Box::new(PgSink::new(
                    conn,
                    spill,
                    opts.backlog_max.max(opts.batch_max),
                    opts.batch_max,
                )))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(LedgerError::Spawn)?;

        let (tx, rx) = mpsc::channel(opts.queue_capacity);
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            writer_thread: std::sync::OnceLock::new(),
            writer_alive: AtomicBool::new(true),
            last_write_ok: AtomicBool::new(true),
            store_up: AtomicBool::new(true),
            spilled: AtomicU64::new(match &sink {
                Sink::Postgres(pg) => pg.spilled(),
                Sink::Sqlite(_) => 0,
            }),
            rows_written: AtomicU64::new(0),
            rows_lost: AtomicU64::new(0),
        });
        let (done_tx, done_rx) = oneshot::channel();
        let writer = Writer {
            sink,
            rx: Inbox {
                rx,
                shared: Arc::clone(&shared),
            },
            runtime,
            shared: Arc::clone(&shared),
            batch_max: opts.batch_max,
            flush_interval: opts.flush_interval,
            batches: 0,
        };
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(done_tx))
            .map_err(LedgerError::Spawn)?;
        let _ = shared.writer_thread.set(thread.thread().clone());

        Ok((
            LedgerHandle { tx, shared },
            LedgerWriter {
                thread,
                done: done_rx,
            },
        ))
    }
}

/// State shared by the handles and the writer thread.
#[derive(Debug)]
struct Shared {
    /// Set by `close`, which also unparks the writer so that a batch wait ends early.
    closing: AtomicBool,
    writer_thread: std::sync::OnceLock<std::thread::Thread>,
    writer_alive: AtomicBool,
    last_write_ok: AtomicBool,
    /// PostgreSQL only: whether the database took the last write.
    store_up: AtomicBool,
    /// PostgreSQL only: rows in the spill file.
    spilled: AtomicU64,
    rows_written: AtomicU64,
    rows_lost: AtomicU64,
}

impl Shared {
    fn lost(&self, row: &LedgerRow, reason: &str) {
        self.rows_lost.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ROWS_LOST).increment(1);
        tracing::error!(request_id = %row.request_id, reason, "ledger row lost");
    }
}

enum Msg {
    Row(Box<LedgerRow>),
    Close,
}

/// Cheap, cloneable sender of rows to the writer. `Send + Sync`; clone one into every handler.
///
/// The queue stays open while any handle exists and no one has called [`LedgerHandle::close`].
#[derive(Debug, Clone)]
pub struct LedgerHandle {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Row(r) => f.debug_tuple("Row").field(&r.request_id).finish(),
            Msg::Close => f.write_str("Close"),
        }
    }
}

impl LedgerHandle {
    /// Queues `row` for writing, waiting for room if the queue is full (backpressure).
    ///
    /// Never drops a row silently: if the ledger is closed or the writer is gone, the row is
    /// logged at `error` level with its request id and counted in
    /// `costfloor_ledger_rows_lost_total`. Returning means the row is queued (or accounted as
    /// lost), not yet committed; [`LedgerWriter::closed`] is the point at which queued rows are
    /// known to be on disk.
    ///
    /// If the future is dropped before it completes (say, a request task is cancelled while the
    /// queue is full), the row is neither queued nor counted. Record from a context that is not
    /// cancelled — a spawned task, or [`LedgerHandle::try_record`] in a `Drop` guard.
    pub async fn record(&self, row: LedgerRow) {
        match self.tx.send(Msg::Row(Box::new(row))).await {
            Ok(()) => self.publish_depth(),
            Err(mpsc::error::SendError(msg)) => {
                if let Msg::Row(row) = msg {
                    self.shared.lost(&row, "ledger is closed");
                }
            }
        }
    }

    /// Queues `row` without waiting, for synchronous contexts such as a `Drop` guard.
    ///
    /// Gives the row back if the queue is full or the ledger is closed; nothing is counted or
    /// logged then — the caller decides (spawn a task that calls [`LedgerHandle::record`], or
    /// report it with [`LedgerHandle::note_lost`]).
    // Giving the row back by value is the point of this API; it is moved, not copied around.
    #[allow(clippy::result_large_err)]
    pub fn try_record(&self, row: LedgerRow) -> std::result::Result<(), LedgerRow> {
        match self.tx.try_send(Msg::Row(Box::new(row))) {
            Ok(()) => {
                self.publish_depth();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(msg) | mpsc::error::TrySendError::Closed(msg)) => {
                match msg {
                    Msg::Row(row) => Err(*row),
                    // Only rows are sent through try_send.
                    Msg::Close => Ok(()),
                }
            }
        }
    }

    /// Counts `row` as lost and logs it with `reason`, exactly as [`LedgerHandle::record`] does
    /// when the ledger is closed. For callers that give up on a row returned by
    /// [`LedgerHandle::try_record`].
    pub fn note_lost(&self, row: &LedgerRow, reason: &str) {
        self.shared.lost(row, reason);
    }

    /// Closes the ledger for new rows and asks the writer to finish.
    ///
    /// Rows already queued — including rows queued by other handles before the writer reaches
    /// the close request — are still written. After the writer has processed the request, every
    /// further [`LedgerHandle::record`] from any clone counts its row as lost, and
    /// [`LedgerHandle::try_record`] gives rows back. Waits for queue room like `record`, so it is
    /// ordered after this handle's own earlier records. Calling it again, or after the writer has
    /// stopped, does nothing. Await [`LedgerWriter::closed`] to know when everything is on disk.
    ///
    /// Dropping every handle has the same effect as calling `close`.
    pub async fn close(&self) {
        // An error means the queue is already closed: nothing to do.
        let _ = self.tx.send(Msg::Close).await;
        self.shared.closing.store(true, Ordering::Release);
        if let Some(thread) = self.shared.writer_thread.get() {
            thread.unpark();
        }
    }

    /// Rows (and a pending close request, if any) waiting in the queue. Also published as the
    /// `costfloor_ledger_queue_depth` gauge.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// For a readiness probe: the ledger accepts rows, the writer thread is running, and its
    /// most recent write attempt reached the disk.
    ///
    /// A row rejected on its own (a duplicate request id) does not make the ledger unhealthy; a
    /// batch failing on storage does, until a later write succeeds.
    pub fn is_healthy(&self) -> bool {
        !self.tx.is_closed()
            && self.shared.writer_alive.load(Ordering::Acquire)
            && self.shared.last_write_ok.load(Ordering::Acquire)
    }

    /// Whether the store took the last write. Always true for a SQLite file; false while
    /// a PostgreSQL database cannot be reached (rows are then kept, in memory and in
    /// the spill file, and the ledger is still healthy).
    pub fn store_up(&self) -> bool {
        self.shared.store_up.load(Ordering::Acquire)
    }

    /// PostgreSQL only: rows in the spill file, waiting for the database.
    pub fn rows_spilled(&self) -> u64 {
        self.shared.spilled.load(Ordering::Relaxed)
    }

    /// Rows committed so far by this ledger's writer.
    pub fn rows_written(&self) -> u64 {
        self.shared.rows_written.load(Ordering::Relaxed)
    }

    /// Rows counted as lost so far (also the `costfloor_ledger_rows_lost_total` counter).
    pub fn rows_lost(&self) -> u64 {
        self.shared.rows_lost.load(Ordering::Relaxed)
    }

    fn publish_depth(&self) {
        metrics::gauge!(QUEUE_DEPTH).set(self.queue_depth() as f64);
    }
}

/// What the writer did over its life, returned when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterReport {
    /// Rows committed.
    pub rows_written: u64,
    /// Rows counted as lost, by the writer or by handles (writes after close included).
    pub rows_lost: u64,
    /// Transactions committed (each holds at most `batch_max` rows).
    pub batches: u64,
}

/// The running writer thread. Await it at shutdown, after closing the ledger.
///
/// The writer stops once the queue is closed — by [`LedgerHandle::close`] or by dropping every
/// [`LedgerHandle`] — and everything that was queued has been committed (or, after failed
/// retries, counted lost). Neither waiting method closes the queue itself: waiting while a
/// handle is still open waits until that handle closes or is dropped.
#[derive(Debug)]
pub struct LedgerWriter {
    thread: JoinHandle<WriterReport>,
    done: oneshot::Receiver<WriterReport>,
}

impl LedgerWriter {
    /// Waits, asynchronously, for the writer to drain the queue, commit, close the database and
    /// stop.
    pub async fn closed(self) -> Result<WriterReport> {
        match self.done.await {
            Ok(report) => Ok(report),
            // The thread ended without reporting: it panicked. Reap it (it has already exited
            // or is unwinding).
            Err(_) => match self.thread.join() {
                Ok(report) => Ok(report),
                Err(_) => Err(LedgerError::WriterPanicked),
            },
        }
    }

    /// Blocks the current thread until the writer stops, like [`LedgerWriter::closed`]. Do not
    /// call this from inside an async runtime's worker thread.
    pub fn join(self) -> Result<WriterReport> {
        self.thread.join().map_err(|_| LedgerError::WriterPanicked)
    }

    /// Whether the writer thread has stopped.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Marks the writer dead however the thread ends, panics included.
struct AliveGuard(Arc<Shared>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.writer_alive.store(false, Ordering::Release);
    }
}

/// The receiving end of the queue. Should the writer stop abnormally, rows still queued are
/// counted lost rather than vanishing with the channel.
struct Inbox {
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Row(row) = msg {
                self.shared.lost(&row, "ledger writer stopped");
            }
        }
    }
}

struct Writer {
    sink: Sink,
    rx: Inbox,
    runtime: Runtime,
    shared: Arc<Shared>,
    batch_max: usize,
    flush_interval: Duration,
    batches: u64,
}

enum Next {
    Row(Box<LedgerRow>),
    /// Nothing arrived before the batch deadline.
    Timeout,
    /// The queue is closed and empty.
    End,
}

impl Writer {
    fn run(mut self, done: oneshot::Sender<WriterReport>) -> WriterReport {
        let guard = AliveGuard(Arc::clone(&self.shared));
        tracing::debug!("ledger writer started");
        let mut batch: Vec<LedgerRow> = Vec::with_capacity(self.batch_max);
        loop {
            // Wait as long as it takes for the first row of a batch, or until rows kept
            // while the database was away are due to be written.
            match self.next(self.wake_at()) {
                Next::Row(row) => batch.push(*row),
                Next::Timeout => {
                    self.drain_waiting();
                    continue;
                }
                Next::End => break,
            }
            // Then let the batch fill until the deadline without waking for every row
            // (a wake per row costs a context switch, more than writing the row), unless
            // a full batch is already queued; then take what is there.
            let deadline = Instant::now() + self.flush_interval;
            // Naps of at most 5 ms notice a queue whose handles were all dropped.
            while self.rx.rx.len() + batch.len() < self.batch_max
                && !self.shared.closing.load(Ordering::Acquire)
                && !self.rx.rx.is_closed()
            {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left.min(Duration::from_millis(5)));
            }
            let mut ended = false;
            while batch.len() < self.batch_max {
                // The deadline has passed, so this never blocks.
                match self.next(Some(deadline)) {
                    Next::Row(row) => batch.push(*row),
                    Next::Timeout => break,
                    Next::End => {
                        ended = true;
                        break;
                    }
                }
            }
            self.write(&mut batch);
            metrics::gauge!(QUEUE_DEPTH).set(self.rx.rx.len() as f64);
            if ended {
                break;
            }
        }
        if let Sink::Postgres(pg) = &mut self.sink {
            for (row, reason) in pg.close() {
                self.shared.lost(&row, &reason);
            }
        }
        let Writer {
            sink,
            rx,
            shared,
            batches,
            ..
        } = self;
        drop(rx);
        let report = WriterReport {
            rows_written: shared.rows_written.load(Ordering::Relaxed),
            rows_lost: shared.rows_lost.load(Ordering::Relaxed),
            batches,
        };
        if let Sink::Sqlite(conn) = sink {
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the ledger database failed");
            }
        }
        drop(guard);
        tracing::debug!(?report, "ledger writer stopped");
        // The receiver may be gone if no one waits; that is fine.
        let _ = done.send(report);
        report
    }

    /// The next row, honouring close requests: a close request closes the queue, after which the
    /// rows still buffered are returned and then [`Next::End`].
    fn next(&mut self, deadline: Option<Instant>) -> Next {
        loop {
            let msg = match self.rx.rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let rx = &mut self.rx.rx;
                    match deadline {
                        None => self.runtime.block_on(rx.recv()),
                        Some(d) if d <= Instant::now() => return Next::Timeout,
                        Some(d) => {
                            // The timer must be created inside the runtime, hence the block.
                            let timed = async { tokio::time::timeout_at(d, rx.recv()).await };
                            match self.runtime.block_on(timed) {
                                Ok(msg) => msg,
                                Err(_elapsed) => return Next::Timeout,
                            }
                        }
                    }
                }
            };
            match msg {
                Some(Msg::Row(row)) => return Next::Row(row),
                Some(Msg::Close) => {
                    tracing::debug!("ledger close requested; draining the queue");
                    self.rx.rx.close();
                }
                None => return Next::End,
            }
        }
    }

    /// Writes `batch` (leaving it empty), to whichever store the writer has.
    fn write(&mut self, batch: &mut Vec<LedgerRow>) {
        if batch.is_empty() {
            return;
        }
        let Writer {
            sink,
            shared,
            batches,
            ..
        } = self;
        match sink {
            Sink::Postgres(pg) => {
                let done = pg.write(std::mem::take(batch));
                self.pg_done(done);
            }
            Sink::Sqlite(conn) => write_sqlite(conn, shared, batches, batch),
        }
    }

    /// When the writer must wake without a new row: rows kept while PostgreSQL was
    /// away are due to be written.
    fn wake_at(&self) -> Option<Instant> {
        match &self.sink {
            Sink::Postgres(pg) => pg.wake_at().map(Instant::from_std),
            Sink::Sqlite(_) => None,
        }
    }

    fn drain_waiting(&mut self) {
        if let Sink::Postgres(pg) = &mut self.sink {
            let (_, done) = pg.drain(false);
            self.pg_done(done);
        }
    }

    fn pg_done(&mut self, done: crate::pg_writer::Outcome) {
        if done.written > 0 {
            committed(&self.shared, &mut self.batches, done.written);
        }
        for (row, reason) in &done.rejected {
            self.shared.lost(row, reason);
        }
        // Rows kept for later are safe; the ledger stays healthy while it can keep them.
        self.shared.last_write_ok.store(true, Ordering::Release);
        if let Sink::Postgres(pg) = &self.sink {
            self.shared.store_up.store(pg.is_up(), Ordering::Release);
            self.shared.spilled.store(pg.spilled(), Ordering::Relaxed);
        }
    }
}

/// Counts one committed transaction of `rows` rows.
fn committed(shared: &Shared, batches: &mut u64, rows: u64) {
    *batches += 1;
    shared.rows_written.fetch_add(rows, Ordering::Relaxed);
    metrics::counter!(ROWS_WRITTEN).increment(rows);
}

/// Writes `batch` (leaving it empty) to the SQLite file: one transaction, retried with
/// backoff on failure. If it still fails, or a row is rejected on its own (a
/// constraint), rows are written one by one so only the offending rows are lost.
fn write_sqlite(
    conn: &mut Connection,
    shared: &Shared,
    batches: &mut u64,
    batch: &mut Vec<LedgerRow>,
) {
    let mut attempt = 0;
    loop {
        match insert_batch(conn, batch) {
            Ok(()) => {
                committed(shared, batches, batch.len() as u64);
                shared.last_write_ok.store(true, Ordering::Release);
                batch.clear();
                return;
            }
            Err(e) if is_row_error(&e) => {
                tracing::warn!(error = %e, rows = batch.len(),
                    "ledger batch rejected a row; writing rows one by one");
                break;
            }
            Err(e) => {
                shared.last_write_ok.store(false, Ordering::Release);
                match RETRY_BACKOFF.get(attempt) {
                    Some(pause) => {
                        tracing::warn!(error = %e, rows = batch.len(), attempt = attempt + 1,
                            "ledger batch write failed; retrying");
                        std::thread::sleep(*pause);
                        attempt += 1;
                    }
                    None => {
                        tracing::error!(error = %e, rows = batch.len(),
                            "ledger batch write failed after retries; trying rows one by one");
                        break;
                    }
                }
            }
        }
    }
    let mut storage_ok = true;
    for row in batch.iter() {
        match insert_batch(conn, std::slice::from_ref(row)) {
            Ok(()) => committed(shared, batches, 1),
            Err(e) => {
                storage_ok &= is_row_error(&e);
                shared.lost(row, &format!("ledger write failed: {e}"));
            }
        }
    }
    shared.last_write_ok.store(storage_ok, Ordering::Release);
    batch.clear();
}

/// Whether `e` is about one row's content (retrying cannot help, other rows are fine).
fn is_row_error(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation
    ) || matches!(e, rusqlite::Error::ToSqlConversionFailure(_))
}

fn insert_batch(conn: &mut Connection, rows: &[LedgerRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(INSERT_SQL)?;
        for r in rows {
            stmt.execute(params![
                r.request_id,
                r.started_at_unix_ms,
                r.finished_at_unix_ms,
                r.client_key,
                r.route,
                r.backend,
                r.model,
                r.task,
                r.stream,
                r.input_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.output_tokens,
                r.ttft_us,
                r.total_us,
                r.overhead_us,
                r.http_status,
                r.outcome,
                r.error_kind,
                r.fallback_chain,
                r.cost_nusd,
                r.counterfactual_cost_nusd,
                r.estimated,
                r.self_hosted,
                r.requested_model,
                r.cache_write_1h_tokens,
                r.input_estimate,
                r.replica,
            ])?;
        }
    }
    tx.commit()
}
