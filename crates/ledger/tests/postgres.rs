//! Ledger tests against a real PostgreSQL server: the test cluster that
//! `scripts/test.sh` starts (`COSTFLOOR_TEST_POSTGRES`), and, for the outage test, a
//! cluster of the test's own that it stops under load and starts again.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ledger::testing::{postgres_database, Cluster};
use ledger::{
    BackendSample, EvalResult, EvalRun, EvalStore, Ledger, LedgerOptions, LedgerReader, LedgerRow,
    Location, Outcome, ReportFilter, SampleStore, ShadowPair, ShadowStore,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ledger-pg-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(dir: &std::path::Path) -> LedgerOptions {
    LedgerOptions {
        spill_path: Some(dir.join("spill.jsonl")),
        ..LedgerOptions::default()
    }
}

/// Rows that exercise every column: NULLs and values, every outcome, two tasks, two
/// backends, two keys, costs near 2^53 where a float sum would round.
fn rows(prefix: &str, n: i64) -> Vec<LedgerRow> {
    (0..n)
        .map(|i| LedgerRow {
            request_id: format!("{prefix}-{i}"),
            started_at_unix_ms: 1_700_000_000_000 + i * 1_000,
            finished_at_unix_ms: 1_700_000_000_250 + i * 1_000,
            client_key: (i % 3 != 0).then(|| format!("team-{}", i % 2)),
            route: "/v1/chat/completions".into(),
            backend: if i % 4 == 0 { "api" } else { "sim-a" }.into(),
            model: "llama-3.1-8b".into(),
            requested_model: (i % 5 != 0).then(|| "cheap".into()),
            task: match i % 3 {
                0 => None,
                1 => Some("classify".into()),
                _ => Some("code".into()),
            },
            stream: i % 2 == 0,
            input_tokens: 100 + i,
            cache_read_tokens: i % 7,
            cache_write_tokens: i % 11,
            cache_write_1h_tokens: i % 13,
            output_tokens: 50 + i % 17,
            ttft_us: (i % 6 != 0).then_some(40_000 + i),
            total_us: 250_000 + i * 37 % 1_000,
            overhead_us: 300 + i % 9,
            http_status: if i % 10 == 9 { 529 } else { 200 },
            outcome: match i % 10 {
                9 => Outcome::UpstreamError,
                8 => Outcome::ClientDisconnect,
                7 => Outcome::ClientError,
                _ => Outcome::Success,
            },
            error_kind: (i % 10 >= 7).then(|| "overloaded".into()),
            fallback_chain: "sim-a:200".into(),
            cost_nusd: (1_i64 << 53) + i,
            counterfactual_cost_nusd: 5_678 + i,
            estimated: i % 4 == 1,
            self_hosted: i % 4 != 0,
            input_estimate: (i % 2 == 1).then_some(99 + i),
            replica: Some("r1".into()),
        })
        .collect()
}

async fn write(location: &Location, dir: &std::path::Path, rows: Vec<LedgerRow>) {
    let (handle, writer) = Ledger::open(location, options(dir)).unwrap();
    for row in rows {
        handle.record(row).await;
    }
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_lost, 0);
}

/// Every question a report asks, answered from a store.
fn answers(reader: &LedgerReader) -> String {
    let all = ReportFilter::default();
    let window = ReportFilter {
        since_unix_ms: Some(1_700_000_050_000),
        until_unix_ms: Some(1_700_000_150_000),
    };
    let mut scanned = Vec::new();
    reader
        .scan(&window, |r| {
            scanned.push(format!(
                "{} {} {:?} {:?} {} {} {:?} {} {} {:?} {:?}",
                r.started_at_unix_ms,
                r.backend,
                r.requested_model,
                r.outcome,
                r.cost_nusd,
                r.cache_write_1h_tokens,
                r.ttft_us,
                r.estimated,
                r.self_hosted,
                r.task,
                r.input_estimate
            ));
        })
        .unwrap();
    scanned.sort();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}\n{:?}",
        reader.summary(&all).unwrap(),
        reader.summary(&window).unwrap(),
        reader.latencies_us(&all, None).unwrap(),
        reader.ttft_us(&window, Some("sim-a")).unwrap(),
        reader.overhead_us(&all, Some("api")).unwrap(),
        reader.time_span(&window).unwrap(),
        reader.spend_by_client_key_since(1_700_000_100_000).unwrap(),
        reader.count().unwrap(),
        reader.rows(1_000).unwrap(),
        scanned.join("\n"),
        reader
            .time_span(&ReportFilter {
                since_unix_ms: Some(i64::MAX - 1),
                until_unix_ms: None
            })
            .unwrap(),
    )
}

#[tokio::test]
async fn postgres_answers_every_question_as_sqlite_does() {
    let dir = temp_dir("same");
    let sqlite = Location::from(dir.join("ledger.db"));
    let postgres = Location::parse(&postgres_database()).unwrap();
    write(&sqlite, &dir, rows("q", 300)).await;
    write(&postgres, &dir, rows("q", 300)).await;
    let from_sqlite = answers(&LedgerReader::open(&sqlite).unwrap());
    let from_postgres = answers(&LedgerReader::open(&postgres).unwrap());
    assert!(from_sqlite.contains("classify") && from_sqlite.lines().count() > 100);
    assert_eq!(from_sqlite, from_postgres);
    // The exact sum, past 2^53: 300 × 2^53 + (0 + … + 299).
    let total: i64 = LedgerReader::open(&postgres)
        .unwrap()
        .summary(&ReportFilter::default())
        .unwrap()
        .iter()
        .map(|g| g.cost_nusd)
        .sum();
    assert_eq!(total, 300 * (1_i64 << 53) + 299 * 300 / 2);
}

#[tokio::test]
async fn a_sum_past_i64_is_an_error_on_postgres_too() {
    let dir = temp_dir("overflow");
    let postgres = Location::parse(&postgres_database()).unwrap();
    let mut two = rows("o", 2);
    two[0].cost_nusd = i64::MAX;
    two[1].cost_nusd = 1;
    two[1].backend = two[0].backend.clone();
    two[1].task = two[0].task.clone();
    write(&postgres, &dir, two).await;
    assert!(LedgerReader::open(&postgres)
        .unwrap()
        .summary(&ReportFilter::default())
        .is_err());
}

#[tokio::test]
async fn replicas_starting_at_once_migrate_once_and_their_rows_land_once_each() {
    let url = postgres_database();
    let dir = temp_dir("replicas");
    // Eight processes' worth of writers open a new database at the same moment.
    let mut tasks = Vec::new();
    for replica in 0..8 {
        let location = Location::parse(&url).unwrap();
        let dir = dir.join(format!("r{replica}"));
        std::fs::create_dir_all(&dir).unwrap();
        tasks.push(tokio::spawn(async move {
            let rows: Vec<LedgerRow> = rows(&format!("r{replica}"), 500)
                .into_iter()
                .map(|r| LedgerRow {
                    replica: Some(format!("replica-{replica}")),
                    ..r
                })
                .collect();
            write(&location, &dir, rows).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let reader = LedgerReader::open(Location::parse(&url).unwrap()).unwrap();
    assert_eq!(reader.count().unwrap(), 8 * 500);
    let rows = reader.rows(10_000).unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4_000, "every row once");
    let replicas: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|r| r.replica.clone()).collect();
    assert_eq!(replicas.len(), 8);
}

#[tokio::test]
async fn the_other_stores_work_on_postgres() {
    let location = Location::parse(&postgres_database()).unwrap();
    let evals = EvalStore::open(&location).unwrap();
    evals
        .create_run(&EvalRun {
            run_id: "r1".into(),
            created_at_unix_ms: 1,
            settings: "{}".into(),
            status: "running".into(),
        })
        .unwrap();
    let answer = EvalResult {
        run_id: "r1".into(),
        sample_id: "a".into(),
        side: "candidate".into(),
        task: "t".into(),
        backend: "b".into(),
        output: Some("yes".into()),
        correct: Some(true),
        grade: Some(0.5),
        detail: None,
        error: None,
        latency_us: 10,
        input_tokens: 5,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 1,
        cost_nusd: 7,
        attempts: 1,
        finished_at_unix_ms: 1,
    };
    assert!(evals.insert_result(&answer).unwrap());
    assert!(!evals
        .insert_result(&EvalResult {
            cost_nusd: 100,
            ..answer.clone()
        })
        .unwrap());
    assert_eq!(evals.results("r1").unwrap(), vec![answer]);
    evals.set_status("r1", "complete").unwrap();
    assert_eq!(evals.run("r1").unwrap().unwrap().status, "complete");
    assert_eq!(evals.run_ids().unwrap(), vec!["r1".to_string()]);

    let shadows = ShadowStore::open(&location).unwrap();
    let pair = ShadowPair {
        request_id: "q".into(),
        started_at_unix_ms: 1_000,
        route: "simple".into(),
        task: Some("classify".into()),
        primary_backend: "llama".into(),
        shadow_backend: "haiku".into(),
        prompt: Some("[user] hi".into()),
        primary_output: None,
        shadow_output: Some("hello".into()),
        primary_input_tokens: 3,
        primary_output_tokens: 2,
        shadow_input_tokens: 3,
        shadow_output_tokens: 2,
        shadow_cost_nusd: 42,
        shadow_latency_us: 9,
        shadow_error: None,
    };
    shadows.insert_many(std::slice::from_ref(&pair)).unwrap();
    assert_eq!(shadows.spend_since("simple", 0).unwrap(), 42);
    assert_eq!(
        ledger::read_shadow_pairs(&location, &ReportFilter::default(), Some("classify")).unwrap(),
        vec![pair]
    );
    assert_eq!(shadows.delete_older_than("simple", 2_000).unwrap(), 1);

    let samples = SampleStore::open(&location).unwrap();
    let sample = BackendSample {
        backend: "llama".into(),
        sampled_at_unix_ms: 5,
        source: "vllm".into(),
        requests_running: Some(2.0),
        requests_waiting: None,
        kv_cache_usage: Some(0.25),
        prompt_tokens_total: Some(1e6),
        generation_tokens_total: None,
        decode_steps_total: None,
        gpu_util: None,
        gpu_engine_active: None,
        gpus: Some(4),
    };
    samples.insert(std::slice::from_ref(&sample)).unwrap();
    assert_eq!(
        ledger::read_samples(&location, &ReportFilter::default()).unwrap(),
        vec![sample]
    );
}

#[tokio::test]
async fn a_database_stopped_under_load_loses_nothing_and_rows_are_replayed() {
    let cluster = Cluster::start();
    let url = cluster.database("outage");
    let location = Location::parse(&url).unwrap();
    let dir = temp_dir("outage");
    let spill = dir.join("spill.jsonl");
    let opts = LedgerOptions {
        // A small memory bound, so that the outage reaches the spill file.
        backlog_max: 1_000,
        batch_max: 128,
        flush_interval: Duration::from_millis(5),
        spill_path: Some(spill.clone()),
        ..LedgerOptions::default()
    };
    let (handle, writer) = Ledger::open(&location, opts.clone()).unwrap();
    let all = rows("load", 6_000);
    let mut sent = 0;
    let mut send = |n: usize, handle: &ledger::LedgerHandle| {
        let batch: Vec<LedgerRow> = all[sent..sent + n].to_vec();
        sent += n;
        let handle = handle.clone();
        async move {
            for row in batch {
                handle.record(row).await;
                tokio::task::yield_now().await;
            }
        }
    };
    send(1_000, &handle).await;
    cluster.halt();
    // Load while the database is down: past the memory bound, into the spill file.
    send(3_000, &handle).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.rows_spilled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !handle.store_up(),
        "the ledger notices the database is down"
    );
    assert!(
        handle.rows_spilled() >= 1_000,
        "{} spilled",
        handle.rows_spilled()
    );
    assert!(
        handle.is_healthy(),
        "rows are kept, so the ledger stays ready"
    );
    cluster.resume();
    send(1_000, &handle).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.rows_written() < 5_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(handle.rows_written(), 5_000);
    assert_eq!(handle.rows_spilled(), 0);
    assert!(handle.store_up());

    // Down again, and the gateway stops while it is: the rows wait in the spill file
    // and the next start writes them.
    cluster.halt();
    send(1_000, &handle).await;
    handle.close().await;
    let report = writer.closed().await.unwrap();
    assert_eq!(report.rows_lost, 0);
    assert!(std::fs::metadata(&spill).unwrap().len() > 0);
    cluster.resume();
    let (handle, writer) = Ledger::open(&location, opts).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.rows_spilled() > 0 || handle.rows_written() < 1_000 {
        assert!(Instant::now() < deadline, "spill file replayed at start");
        // The writer replays when it wakes; a row wakes it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.close().await;
    writer.closed().await.unwrap();
    let reader = LedgerReader::open(&location).unwrap();
    assert_eq!(reader.count().unwrap(), 6_000, "every row once");
    assert_eq!(std::fs::metadata(&spill).unwrap().len(), 0);
}

#[tokio::test]
async fn reservations_from_two_stores_never_pass_the_budget() {
    use ledger::{KeyChange, KeyRecord, KeyStore};
    let url = postgres_database();
    let a = std::sync::Arc::new(KeyStore::open(&url).await.unwrap());
    let b = std::sync::Arc::new(KeyStore::open(&url).await.unwrap());
    let key = KeyRecord {
        name: "team".into(),
        sha256: "ab".repeat(32),
        routes: vec!["chat".into()],
        rpm: Some(60),
        tpm: None,
        monthly_budget_nusd: Some(1_000_000),
        budget_on: "actual".into(),
        created_at_unix_ms: 1,
        revoked_at_unix_ms: None,
    };
    a.create(&key).await.unwrap();
    let err = b.create(&key).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(b.active().await.unwrap(), vec![key.clone()]);
    let month = 1_796_083_200_000;
    a.open_month("team", month, "actual").await.unwrap();
    b.open_month("team", month, "actual").await.unwrap();
    // 400 reservations of 7,000 nUSD from two stores at once, each settled at 5,000:
    // at most 1,000,000 / 7,000 = 142 fit at any moment.
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = std::sync::Arc::clone(if i % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            match store
                .reserve("team", month, 7_000, 1_000_000)
                .await
                .unwrap()
            {
                Ok(spend) => {
                    assert!(spend.spent_nusd + spend.reserved_nusd <= 1_000_000);
                    store.settle("team", month, 7_000, 5_000).await.unwrap();
                    true
                }
                Err(_) => false,
            }
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += i64::from(t.await.unwrap());
    }
    let spend = a.spend(month).await.unwrap();
    assert_eq!(spend.len(), 1);
    let (_, spend) = spend[0];
    assert_eq!(spend.reserved_nusd, 0, "every reservation settled");
    assert_eq!(spend.spent_nusd, admitted * 5_000);
    assert!(spend.spent_nusd <= 1_000_000);
    assert!(
        admitted >= 142,
        "every reservation that fits is admitted: {admitted}"
    );
    // One at a time, settled below their reservations, more fit: the spend nears the
    // budget by less than one reservation and never passes it.
    while a
        .reserve("team", month, 7_000, 1_000_000)
        .await
        .unwrap()
        .is_ok()
    {
        a.settle("team", month, 7_000, 5_000).await.unwrap();
    }
    let (_, spend) = a.spend(month).await.unwrap()[0];
    assert!(
        spend.spent_nusd <= 1_000_000 && 1_000_000 - spend.spent_nusd < 7_000,
        "{spend:?}"
    );

    let changed = b
        .change(
            "team",
            &KeyChange {
                monthly_budget_nusd: Some(None),
                rpm: Some(Some(5)),
                ..KeyChange::default()
            },
            2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((changed.monthly_budget_nusd, changed.rpm), (None, Some(5)));
    assert_eq!(changed.routes, vec!["chat".to_string()]);
    assert!(a.revoke("team", 3).await.unwrap());
    assert!(!a.revoke("team", 3).await.unwrap());
    assert!(b.active().await.unwrap().is_empty());
    assert_eq!(b.all().await.unwrap()[0].revoked_at_unix_ms, Some(3));
}

/// Once an owner has migrated the database, a role with no more than `SELECT, INSERT,
/// UPDATE, DELETE` (and the sequences) runs the writer and the readers: connecting
/// creates nothing when the schema is current.
#[tokio::test]
async fn a_role_without_create_runs_a_migrated_database() {
    let url = postgres_database();
    let dir = temp_dir("narrow");
    write(&Location::parse(&url).unwrap(), &dir, rows("owner", 3)).await;
    let role = format!(
        "narrow_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (owner_url, statements) = (
        url.clone(),
        format!(
            "CREATE ROLE {role} LOGIN;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ),
    );
    std::thread::spawn(move || {
        postgres::Client::connect(&owner_url, postgres::NoTls)
            .unwrap()
            .batch_execute(&statements)
            .unwrap();
    })
    .join()
    .unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    let narrow = Location::parse(&format!("{scheme}://{role}@{host}")).unwrap();
    write(&narrow, &dir, rows("narrow", 5)).await;
    assert_eq!(LedgerReader::open(&narrow).unwrap().count().unwrap(), 8);
}

/// The conversion to monthly partitions in docs/deploy.md, run as written: the
/// writer's inserts (a batch sent twice included) and every reader work on the
/// partitioned table, and rows land in their month's partition.
#[tokio::test]
async fn the_documented_partitioning_takes_the_writers_rows() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy.md"),
    )
    .unwrap();
    let after = doc.split("**Partitioning by month**").nth(1).unwrap();
    let sql = after
        .split("```sql\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .to_owned();
    assert!(
        sql.contains("PARTITION BY RANGE (started_at_unix_ms)"),
        "{sql}"
    );
    let url = postgres_database();
    let location = Location::parse(&url).unwrap();
    let dir = temp_dir("partitioned");
    // Rows before the conversion (November 2023, into the default partition) ...
    write(&location, &dir, rows("before", 20)).await;
    let owner = url.clone();
    std::thread::spawn(move || {
        postgres::Client::connect(&owner, postgres::NoTls)
            .unwrap()
            .batch_execute(&sql)
            .unwrap();
    })
    .join()
    .unwrap();
    // ... and after, in December 2026 (its own partition), one batch sent twice.
    let december: Vec<LedgerRow> = rows("after", 30)
        .into_iter()
        .map(|r| LedgerRow {
            started_at_unix_ms: r.started_at_unix_ms - 1_700_000_000_000 + 1_796_083_200_000,
            ..r
        })
        .collect();
    write(&location, &dir, december.clone()).await;
    write(&location, &dir, december).await;
    let reader = LedgerReader::open(&location).unwrap();
    assert_eq!(
        reader.count().unwrap(),
        50,
        "the batch sent twice landed once"
    );
    assert_eq!(
        reader
            .summary(&ReportFilter::default())
            .unwrap()
            .iter()
            .map(|g| g.requests)
            .sum::<u64>(),
        50
    );
    let check = url.clone();
    let placed = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&check, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT tableoid::regclass::text, COUNT(*) FROM requests GROUP BY 1 ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(
        placed,
        vec![
            ("requests_2026_12".to_string(), 30),
            ("requests_default".to_string(), 20)
        ]
    );
}
