//! Ledger tests against real SQLite files in a temporary directory.

// Helpers outside #[test] functions panic on setup failure too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ledger::{
    GroupSummary, Ledger, LedgerError, LedgerOptions, LedgerReader, LedgerRow, Outcome,
    ReportFilter, SCHEMA_VERSION,
};
use rusqlite::Connection;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ledger-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join(ledger::DEFAULT_FILE_NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn row(id: &str) -> LedgerRow {
    LedgerRow {
        request_id: id.to_owned(),
        started_at_unix_ms: 1_700_000_000_000,
        finished_at_unix_ms: 1_700_000_000_250,
        client_key: Some("team-a".into()),
        route: "/v1/chat/completions".into(),
        backend: "sim-a".into(),
        model: "llama-3.1-8b".into(),
        requested_model: Some("cheap".into()),
        task: None,
        stream: true,
        input_tokens: 100,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 50,
        ttft_us: Some(40_000),
        total_us: 250_000,
        overhead_us: 300,
        http_status: 200,
        outcome: Outcome::Success,
        error_kind: None,
        fallback_chain: "sim-a:200".into(),
        cost_nusd: 1_234,
        counterfactual_cost_nusd: 5_678,
        estimated: false,
        self_hosted: true,
        input_estimate: None,
        replica: None,
    }
}

fn count(path: &Path) -> u64 {
    LedgerReader::open(path).unwrap().count().unwrap()
}

fn opts(queue_capacity: usize, batch_max: usize, flush_ms: u64) -> LedgerOptions {
    LedgerOptions {
        queue_capacity,
        batch_max,
        flush_interval: Duration::from_millis(flush_ms),
        ..LedgerOptions::default()
    }
}

#[tokio::test]
async fn rows_round_trip_exactly() {
    let dir = TempDir::new("roundtrip");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    let a = row("a");
    let b = LedgerRow {
        client_key: None,
        backend: String::new(),
        task: Some("summarize".into()),
        stream: false,
        ttft_us: None,
        http_status: 529,
        outcome: Outcome::UpstreamError,
        error_kind: Some("overloaded".into()),
        fallback_chain: "sim-a:529>sim-b:529".into(),
        cost_nusd: i64::MAX,
        counterfactual_cost_nusd: i64::MIN,
        estimated: true,
        self_hosted: false,
        ..row("b")
    };
    handle.record(a.clone()).await;
    handle.record(b.clone()).await;
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 2);
    assert_eq!(report.rows_lost, 0);
    let rows = LedgerReader::open(dir.db()).unwrap().rows(10).unwrap();
    assert_eq!(rows, vec![a, b]);
}

#[tokio::test]
async fn rows_are_committed_in_batches() {
    let dir = TempDir::new("batching");
    // A long flush interval so that the writer waits for full batches.
    let (handle, writer) = Ledger::open(dir.db(), opts(1000, 100, 2_000)).unwrap();
    for i in 0..250 {
        handle.try_record(row(&format!("r{i}"))).unwrap();
    }
    // 200 rows fill two batches; the remaining 50 wait for the flush interval or the close.
    let t0 = Instant::now();
    while handle.rows_written() < 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "full batches not written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handle.rows_written(), 200);
    drop(handle); // dropping the last handle closes the ledger too
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 250);
    assert_eq!(report.batches, 3);
    assert_eq!(count(&dir.db()), 250);
}

#[tokio::test]
async fn partial_batch_is_flushed_after_the_interval() {
    let dir = TempDir::new("interval");
    let (handle, writer) = Ledger::open(dir.db(), opts(100, 100, 30)).unwrap();
    handle.record(row("lonely")).await;
    let t0 = Instant::now();
    while handle.rows_written() < 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "row never flushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(count(&dir.db()), 1);
    handle.close().await;
    writer.closed().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_lost_under_concurrent_writers() {
    let dir = TempDir::new("concurrent");
    let (handle, writer) = Ledger::open(dir.db(), opts(256, 64, 5)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..20 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                handle.record(row(&format!("t{t}-r{i}"))).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 10_000);
    assert_eq!(report.rows_lost, 0);
    assert!(report.batches < 10_000, "rows were not batched");
    assert_eq!(count(&dir.db()), 10_000);
    let distinct: u64 = Connection::open(dir.db())
        .unwrap()
        .query_row("SELECT COUNT(DISTINCT request_id) FROM requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(distinct, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_with_a_tiny_queue() {
    let dir = TempDir::new("backpressure");
    let (handle, writer) = Ledger::open(dir.db(), opts(4, 1, 0)).unwrap();

    // Hold the write lock from another connection so the writer stalls.
    let blocker = Connection::open(dir.db()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    // The writer takes one row and blocks on the lock; four more fill the queue.
    handle.record(row("r0")).await;
    let t0 = Instant::now();
    while handle.queue_depth() > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "writer never took a row"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for i in 1..5 {
        handle.record(row(&format!("r{i}"))).await;
    }
    assert_eq!(handle.queue_depth(), 4);

    // The queue is full: try_record gives the row back and record waits.
    let back = handle.try_record(row("rejected")).unwrap_err();
    assert_eq!(back.request_id, "rejected");
    let waiter = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.record(row("r5")).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished(), "record did not wait for queue room");
    assert_eq!(handle.rows_written(), 0);

    // Release the lock: everything goes through, nothing is lost.
    blocker.execute_batch("COMMIT").unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 6);
    assert_eq!(report.rows_lost, 0);
    assert_eq!(count(&dir.db()), 6);
}

#[tokio::test]
async fn close_flushes_everything_queued() {
    let dir = TempDir::new("shutdown");
    // A flush interval far longer than the test: only the close can make the writer commit early.
    let (handle, writer) = Ledger::open(dir.db(), opts(10_000, 5_000, 60_000)).unwrap();
    let other = handle.clone();
    for i in 0..1_000 {
        handle.try_record(row(&format!("r{i}"))).unwrap();
    }
    assert!(handle.is_healthy());
    let t0 = Instant::now();
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(report.rows_written, 1_000);
    assert_eq!(count(&dir.db()), 1_000);

    // Closed: a later record from any clone is counted lost; try_record gives the row back.
    assert!(!other.is_healthy());
    other.record(row("late")).await;
    assert_eq!(other.rows_lost(), 1);
    assert_eq!(
        other.try_record(row("late2")).unwrap_err().request_id,
        "late2"
    );
    other.close().await; // idempotent
    assert_eq!(count(&dir.db()), 1_000);
}

#[test]
fn blocking_join_waits_for_the_writer() {
    let dir = TempDir::new("join");
    let (handle, writer) = Ledger::open(dir.db(), opts(100, 10, 60_000)).unwrap();
    for i in 0..25 {
        handle.try_record(row(&format!("r{i}"))).unwrap();
    }
    drop(handle);
    let report = writer.join().unwrap();
    assert_eq!(report.rows_written, 25);
    assert_eq!(count(&dir.db()), 25);
}

#[tokio::test]
async fn opening_twice_is_idempotent() {
    let dir = TempDir::new("migrate");
    for round in 0..3 {
        let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
        handle.record(row(&format!("r{round}"))).await;
        handle.close().await;
        writer.closed().await.unwrap();
    }
    let conn = Connection::open(dir.db()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    assert_eq!(count(&dir.db()), 3);
}

/// A file written by schema version 1 (before `requested_model`, 1-hour cache writes and
/// the input estimate) migrates in place; its rows keep their values, with none of them,
/// and new rows carry all three.
#[tokio::test]
async fn version_1_files_migrate_and_keep_their_rows() {
    let dir = TempDir::new("v1");
    {
        let conn = Connection::open(dir.db()).unwrap();
        // Migration 1 as released.
        conn.execute_batch(
            "CREATE TABLE requests (
                id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE,
                started_at_unix_ms INTEGER NOT NULL, finished_at_unix_ms INTEGER NOT NULL,
                client_key TEXT, route TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,
                task TEXT, stream INTEGER NOT NULL CHECK (stream IN (0, 1)),
                input_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                ttft_us INTEGER, total_us INTEGER NOT NULL, overhead_us INTEGER NOT NULL,
                http_status INTEGER NOT NULL CHECK (http_status BETWEEN 0 AND 65535),
                outcome TEXT NOT NULL CHECK (outcome IN
                    ('success', 'upstream_error', 'client_error', 'client_disconnect')),
                error_kind TEXT, fallback_chain TEXT NOT NULL, cost_nusd INTEGER NOT NULL,
                counterfactual_cost_nusd INTEGER NOT NULL,
                estimated INTEGER NOT NULL CHECK (estimated IN (0, 1)),
                self_hosted INTEGER NOT NULL CHECK (self_hosted IN (0, 1))
            ) STRICT;
            INSERT INTO requests VALUES (1, 'old', 1, 2, NULL, 'r', 'b', 'm', NULL, 0,
                10, 0, 300, 5, NULL, 9, 1, 200, 'success', NULL, 'b:200', 77, 77, 0, 0);
            PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    // A read-only open refuses the old file; the migrating one brings it up to date.
    assert!(matches!(
        LedgerReader::open(dir.db()).unwrap_err(),
        LedgerError::OlderSchema { found: 1, .. }
    ));
    assert_eq!(
        LedgerReader::open_migrating(dir.db())
            .unwrap()
            .count()
            .unwrap(),
        1
    );
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    handle
        .record(LedgerRow {
            cache_write_tokens: 40,
            cache_write_1h_tokens: 60,
            input_estimate: Some(77),
            replica: Some("gw-a".to_owned()),
            ..row("new")
        })
        .await;
    handle.close().await;
    writer.closed().await.unwrap();
    let rows = LedgerReader::open(dir.db()).unwrap().rows(10).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].request_id, "old");
    assert_eq!(rows[0].requested_model, None);
    assert_eq!(rows[0].cache_write_tokens, 300);
    assert_eq!(rows[0].cache_write_1h_tokens, 0);
    assert_eq!(rows[0].cost_nusd, 77);
    assert_eq!(rows[1].requested_model.as_deref(), Some("cheap"));
    assert_eq!(rows[1].cache_write_tokens, 40);
    assert_eq!(rows[1].cache_write_1h_tokens, 60);
    assert_eq!(rows[0].input_estimate, None);
    assert_eq!(rows[1].input_estimate, Some(77));
    // Schema version 6: the replica that wrote the row; older rows have none.
    assert_eq!(rows[0].replica, None);
    assert_eq!(rows[1].replica.as_deref(), Some("gw-a"));
}

#[test]
fn newer_schema_is_rejected() {
    let dir = TempDir::new("newer");
    {
        let conn = Connection::open(dir.db()).unwrap();
        conn.pragma_update(None, "user_version", i64::from(SCHEMA_VERSION) + 1)
            .unwrap();
    }
    let err = Ledger::open(dir.db(), LedgerOptions::default()).unwrap_err();
    assert!(
        matches!(err, LedgerError::NewerSchema { found, known }
            if found == i64::from(SCHEMA_VERSION) + 1 && known == i64::from(SCHEMA_VERSION)),
        "{err:?}"
    );
    let err = LedgerReader::open(dir.db()).unwrap_err();
    assert!(matches!(err, LedgerError::NewerSchema { .. }), "{err:?}");
    // The file was left untouched.
    let conn = Connection::open(dir.db()).unwrap();
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn reader_rejects_missing_and_unmigrated_files() {
    let dir = TempDir::new("reader");
    assert!(matches!(
        LedgerReader::open(dir.db()).unwrap_err(),
        LedgerError::Sqlite(_)
    ));
    Connection::open(dir.db())
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x)")
        .unwrap();
    assert!(matches!(
        LedgerReader::open(dir.db()).unwrap_err(),
        LedgerError::OlderSchema { found: 0, .. }
    ));
    // Not a ledger: not migrated either.
    assert!(matches!(
        LedgerReader::open_migrating(dir.db()).unwrap_err(),
        LedgerError::OlderSchema { found: 0, .. }
    ));
}

#[test]
fn invalid_options_are_rejected() {
    let dir = TempDir::new("options");
    for bad in [opts(0, 1, 0), opts(1, 0, 0)] {
        assert!(matches!(
            Ledger::open(dir.db(), bad).unwrap_err(),
            LedgerError::InvalidOptions(_)
        ));
    }
}

#[tokio::test]
async fn wal_mode_is_on() {
    let dir = TempDir::new("wal");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    handle.record(row("r")).await;
    let conn = Connection::open(dir.db()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(handle);
    writer.closed().await.unwrap();
    // WAL is persistent: it is still on after the writer closed the file.
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn duplicate_request_id_loses_only_that_row() {
    let dir = TempDir::new("duplicate");
    let (handle, writer) = Ledger::open(dir.db(), opts(100, 100, 200)).unwrap();
    for id in ["a", "b", "dup", "c", "dup", "d"] {
        handle.try_record(row(id)).unwrap();
    }
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 5);
    assert_eq!(report.rows_lost, 1);
    let ids: Vec<String> = LedgerReader::open(dir.db())
        .unwrap()
        .rows(100)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["a", "b", "dup", "c", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_retried_then_counted_lost() {
    let dir = TempDir::new("failure");
    let (handle, writer) = Ledger::open(dir.db(), opts(100, 100, 0)).unwrap();
    handle.record(row("ok")).await;
    let t0 = Instant::now();
    while handle.rows_written() < 1 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(handle.is_healthy());

    // Take the table away: every write now fails, however often it is retried.
    let other = Connection::open(dir.db()).unwrap();
    other
        .execute_batch("ALTER TABLE requests RENAME TO requests_away")
        .unwrap();
    handle.record(row("doomed-1")).await;
    handle.record(row("doomed-2")).await;
    let t0 = Instant::now();
    while handle.rows_lost() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "failure never reported"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!handle.is_healthy());

    // Put it back: the next write succeeds and the ledger is healthy again.
    other
        .execute_batch("ALTER TABLE requests_away RENAME TO requests")
        .unwrap();
    handle.record(row("recovered")).await;
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_written, 2);
    assert_eq!(report.rows_lost, 2);
    let ids: Vec<String> = LedgerReader::open(dir.db())
        .unwrap()
        .rows(10)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["ok", "recovered"]);
}

#[tokio::test]
async fn summary_sums_exact_integers() {
    let dir = TempDir::new("summary");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    // Costs near 2^53, where a float sum would round.
    let big = (1_i64 << 53) + 1;
    let mut expected_cost = 0_i64;
    let mut expected_cf = 0_i64;
    for i in 0..7_i64 {
        let r = LedgerRow {
            started_at_unix_ms: 1_000 + i,
            input_tokens: 1_000_003 + i,
            cache_read_tokens: i,
            cache_write_tokens: 2 * i,
            cache_write_1h_tokens: 3 * i,
            output_tokens: 17,
            cost_nusd: big + i,
            counterfactual_cost_nusd: 3 * big + i,
            estimated: i % 2 == 0,
            outcome: match i {
                0..=3 => Outcome::Success,
                4 => Outcome::UpstreamError,
                5 => Outcome::ClientError,
                _ => Outcome::ClientDisconnect,
            },
            ..row(&format!("a{i}"))
        };
        expected_cost += r.cost_nusd;
        expected_cf += r.counterfactual_cost_nusd;
        handle.record(r).await;
    }
    // A second group differing only by task, and one by backend.
    handle
        .record(LedgerRow {
            task: Some("code".into()),
            started_at_unix_ms: 2_000,
            ..row("t1")
        })
        .await;
    handle
        .record(LedgerRow {
            backend: "api".into(),
            self_hosted: false,
            started_at_unix_ms: 3_000,
            ..row("b1")
        })
        .await;
    handle.close().await;
    writer.closed().await.unwrap();

    let reader = LedgerReader::open(dir.db()).unwrap();
    let all = reader.summary(&ReportFilter::default()).unwrap();
    let keys: Vec<(&str, Option<&str>)> = all
        .iter()
        .map(|g| (g.backend.as_str(), g.task.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [("api", None), ("sim-a", None), ("sim-a", Some("code"))]
    );

    let g: &GroupSummary = &all[1];
    assert_eq!(g.requests, 7);
    assert_eq!(
        (
            g.success,
            g.upstream_error,
            g.client_error,
            g.client_disconnect
        ),
        (4, 1, 1, 1)
    );
    assert_eq!(g.input_tokens, 7 * 1_000_003 + 21);
    assert_eq!(g.cache_read_tokens, 21);
    assert_eq!(g.cache_write_tokens, 42);
    // 3 × (0 + 1 + … + 6).
    assert_eq!(g.cache_write_1h_tokens, 63);
    assert_eq!(g.output_tokens, 7 * 17);
    assert_eq!(g.cost_nusd, expected_cost);
    assert_eq!(g.cost_nusd, 7 * big + 21);
    assert_eq!(g.counterfactual_cost_nusd, expected_cf);
    assert_eq!(g.estimated_rows, 4);
    assert_eq!(g.self_hosted_rows, 7);
    assert_eq!(all[0].self_hosted_rows, 0);

    // since inclusive, until exclusive.
    let window = reader
        .summary(&ReportFilter {
            since_unix_ms: Some(1_002),
            until_unix_ms: Some(2_000),
        })
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].requests, 5);
    assert_eq!(window[0].cost_nusd, 5 * big + 2 + 3 + 4 + 5 + 6);

    let empty = reader
        .summary(&ReportFilter {
            since_unix_ms: Some(10_000),
            until_unix_ms: None,
        })
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn summary_overflow_is_an_error_not_a_wrong_number() {
    let dir = TempDir::new("overflow");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    handle
        .record(LedgerRow {
            cost_nusd: i64::MAX,
            ..row("a")
        })
        .await;
    handle
        .record(LedgerRow {
            cost_nusd: 1,
            ..row("b")
        })
        .await;
    drop(handle);
    writer.closed().await.unwrap();
    let reader = LedgerReader::open(dir.db()).unwrap();
    assert!(reader.summary(&ReportFilter::default()).is_err());
}

#[tokio::test]
async fn latencies_are_sorted_and_filtered() {
    let dir = TempDir::new("latency");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    let samples = [
        ("a", "sim-a", 300, Some(30), Outcome::Success),
        ("b", "sim-a", 100, None, Outcome::Success),
        ("c", "sim-b", 200, Some(20), Outcome::Success),
        ("d", "sim-a", 50, Some(5), Outcome::UpstreamError),
        ("e", "sim-a", 200, Some(10), Outcome::Success),
    ];
    for (id, backend, total, ttft, outcome) in samples {
        handle
            .record(LedgerRow {
                backend: backend.into(),
                total_us: total,
                ttft_us: ttft,
                overhead_us: total / 100,
                outcome,
                ..row(id)
            })
            .await;
    }
    drop(handle);
    writer.closed().await.unwrap();
    let reader = LedgerReader::open(dir.db()).unwrap();
    let all = ReportFilter::default();
    assert_eq!(
        reader.latencies_us(&all, None).unwrap(),
        [100, 200, 200, 300]
    );
    assert_eq!(
        reader.latencies_us(&all, Some("sim-a")).unwrap(),
        [100, 200, 300]
    );
    assert_eq!(reader.ttft_us(&all, Some("sim-a")).unwrap(), [10, 30]);
    assert_eq!(reader.overhead_us(&all, Some("sim-b")).unwrap(), [2]);
    assert!(reader.latencies_us(&all, Some("nope")).unwrap().is_empty());
}

#[tokio::test]
async fn reader_sees_rows_while_the_writer_runs() {
    let dir = TempDir::new("concurrent-read");
    let (handle, writer) = Ledger::open(dir.db(), opts(100, 10, 0)).unwrap();
    let reader = LedgerReader::open(dir.db()).unwrap();
    assert_eq!(reader.count().unwrap(), 0);
    handle.record(row("a")).await;
    let t0 = Instant::now();
    while reader.count().unwrap() < 1 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.close().await;
    writer.closed().await.unwrap();
}

#[test]
fn handle_is_cheap_to_share() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<ledger::LedgerHandle>();
    fn assert_send<T: Send + 'static>() {}
    assert_send::<ledger::LedgerWriter>();
    assert_send::<LedgerReader>();
}

#[tokio::test]
async fn scan_streams_the_rows_of_a_period_and_time_span_bounds_them() {
    let dir = TempDir::new("scan");
    let (handle, writer) = Ledger::open(dir.db(), LedgerOptions::default()).unwrap();
    // Three rows 1 s apart from 1_700_000_000_000 ms; the second has no requested model
    // and failed.
    let rows: Vec<LedgerRow> = (0..3i64)
        .map(|n| LedgerRow {
            started_at_unix_ms: 1_700_000_000_000 + n * 1_000,
            requested_model: (n != 1).then(|| "cheap".to_string()),
            outcome: if n == 1 {
                Outcome::UpstreamError
            } else {
                Outcome::Success
            },
            error_kind: (n == 1).then(|| "timeout".to_string()),
            ttft_us: (n != 1).then_some(40_000 + n),
            ..row(&format!("r{n}"))
        })
        .collect();
    for r in &rows {
        handle.record(r.clone()).await;
    }
    handle.close().await;
    writer.closed().await.unwrap();
    let reader = LedgerReader::open(dir.db()).unwrap();
    let mut seen = Vec::new();
    let all = ReportFilter::default();
    let count = reader
        .scan(&all, |r| {
            seen.push((
                r.started_at_unix_ms,
                r.requested_model.map(str::to_string),
                r.outcome,
                r.error_kind.map(str::to_string),
                r.ttft_us,
                r.cost_nusd,
                r.counterfactual_cost_nusd,
                r.self_hosted,
            ))
        })
        .unwrap();
    assert_eq!(count, 3);
    let expected: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.started_at_unix_ms,
                r.requested_model.clone(),
                r.outcome,
                r.error_kind.clone(),
                r.ttft_us,
                r.cost_nusd,
                r.counterfactual_cost_nusd,
                r.self_hosted,
            )
        })
        .collect();
    assert_eq!(seen, expected);
    // `since` is inclusive and `until` exclusive: [+1 s, +2 s) holds only the second row.
    let middle = ReportFilter {
        since_unix_ms: Some(1_700_000_001_000),
        until_unix_ms: Some(1_700_000_002_000),
    };
    assert_eq!(reader.scan(&middle, |_| {}).unwrap(), 1);
    let span = reader.time_span(&all).unwrap().unwrap();
    assert_eq!(
        (span.rows, span.first_unix_ms, span.last_unix_ms),
        (3, 1_700_000_000_000, 1_700_000_002_000)
    );
    let none = ReportFilter {
        since_unix_ms: Some(1_800_000_000_000),
        until_unix_ms: None,
    };
    assert_eq!(reader.time_span(&none).unwrap(), None);
}
