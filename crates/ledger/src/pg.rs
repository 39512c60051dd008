//! PostgreSQL: the connection thread, the schema and its migrations.
//!
//! The sync client (`postgres`) runs its own small runtime and so cannot be called from
//! inside an async one. [`PgConn`] therefore owns its client on a thread of its own and
//! takes jobs over a channel: readers, stores and the writer can call it from any
//! thread, async or not. The thread reconnects on the next job after the connection
//! drops, so a database restart needs no restart of the caller.
//!
//! Migrations run in one transaction holding `pg_advisory_xact_lock`, so two replicas
//! starting at once apply them once; the version is in the table `costfloor_schema`.

use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::location::redact;
use crate::sql::{OwnedParam, Param, SqlRow};
use crate::{LedgerError, Result};

/// The advisory lock key migrations hold: "costfloor" in ASCII, folded into 63 bits.
const MIGRATION_LOCK: i64 = 0x636f_7374_666c_6f6f;

/// How long a connection attempt waits when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL migrations, in order; migration `i` takes the database from version
/// `i` to `i + 1`. Only ever appended. Integers are `BIGINT` (flags 0 or 1, as in the
/// SQLite file), so the shared statements in the readers read both stores alike; texts
/// that are sorted on use the byte order (`COLLATE "C"`), as SQLite does.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite file holds at its version 6, and the client keys with
    // their monthly spend, which only a shared store can hold for several replicas.
    r#"CREATE TABLE requests (
        id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id                TEXT COLLATE "C" NOT NULL,
        started_at_unix_ms        BIGINT NOT NULL,
        finished_at_unix_ms       BIGINT NOT NULL,
        client_key                TEXT COLLATE "C",
        route                     TEXT COLLATE "C" NOT NULL,
        backend                   TEXT COLLATE "C" NOT NULL,
        model                     TEXT COLLATE "C" NOT NULL,
        task                      TEXT COLLATE "C",
        stream                    BIGINT NOT NULL CHECK (stream IN (0, 1)),
        input_tokens              BIGINT NOT NULL,
        cache_read_tokens         BIGINT NOT NULL,
        cache_write_tokens        BIGINT NOT NULL,
        output_tokens             BIGINT NOT NULL,
        ttft_us                   BIGINT,
        total_us                  BIGINT NOT NULL,
        overhead_us               BIGINT NOT NULL,
        http_status               BIGINT NOT NULL CHECK (http_status BETWEEN 0 AND 65535),
        outcome                   TEXT COLLATE "C" NOT NULL CHECK (outcome IN
                                      ('success', 'upstream_error', 'client_error', 'client_disconnect')),
        error_kind                TEXT COLLATE "C",
        fallback_chain            TEXT COLLATE "C" NOT NULL,
        cost_nusd                 BIGINT NOT NULL,
        counterfactual_cost_nusd  BIGINT NOT NULL,
        estimated                 BIGINT NOT NULL CHECK (estimated IN (0, 1)),
        self_hosted               BIGINT NOT NULL CHECK (self_hosted IN (0, 1)),
        requested_model           TEXT COLLATE "C",
        cache_write_1h_tokens     BIGINT NOT NULL DEFAULT 0,
        input_estimate            BIGINT,
        replica                   TEXT COLLATE "C",
        -- With the start time, so that the table can be partitioned by month (a
        -- partitioned table's unique keys include its partition key); a replayed row
        -- has both the same.
        CONSTRAINT requests_request_id_started UNIQUE (request_id, started_at_unix_ms)
    );
    CREATE INDEX requests_started_at ON requests (started_at_unix_ms);
    CREATE INDEX requests_backend_started_at ON requests (backend, started_at_unix_ms);
    CREATE INDEX requests_client_key_started_at ON requests (client_key, started_at_unix_ms);
    CREATE TABLE backend_samples (
        id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        backend                   TEXT COLLATE "C" NOT NULL,
        sampled_at_unix_ms        BIGINT NOT NULL,
        source                    TEXT COLLATE "C" NOT NULL,
        requests_running          DOUBLE PRECISION,
        requests_waiting          DOUBLE PRECISION,
        kv_cache_usage            DOUBLE PRECISION,
        prompt_tokens_total       DOUBLE PRECISION,
        generation_tokens_total   DOUBLE PRECISION,
        decode_steps_total        DOUBLE PRECISION,
        gpu_util                  DOUBLE PRECISION,
        gpu_engine_active         DOUBLE PRECISION,
        gpus                      BIGINT
    );
    CREATE INDEX backend_samples_backend_at ON backend_samples (backend, sampled_at_unix_ms);
    CREATE TABLE eval_runs (
        run_id              TEXT COLLATE "C" PRIMARY KEY,
        created_at_unix_ms  BIGINT NOT NULL,
        settings            TEXT NOT NULL,
        status              TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE eval_results (
        run_id              TEXT COLLATE "C" NOT NULL REFERENCES eval_runs (run_id),
        sample_id           TEXT COLLATE "C" NOT NULL,
        side                TEXT COLLATE "C" NOT NULL,
        task                TEXT COLLATE "C" NOT NULL,
        backend             TEXT COLLATE "C" NOT NULL,
        output              TEXT,
        correct             BIGINT,
        grade               DOUBLE PRECISION,
        detail              TEXT,
        error               TEXT,
        latency_us          BIGINT NOT NULL,
        input_tokens        BIGINT NOT NULL,
        cache_read_tokens   BIGINT NOT NULL,
        cache_write_tokens  BIGINT NOT NULL,
        output_tokens       BIGINT NOT NULL,
        cost_nusd           BIGINT NOT NULL,
        attempts            BIGINT NOT NULL,
        finished_at_unix_ms BIGINT NOT NULL,
        PRIMARY KEY (run_id, sample_id, side)
    );
    CREATE TABLE shadow_pairs (
        id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id               TEXT COLLATE "C" NOT NULL,
        started_at_unix_ms       BIGINT NOT NULL,
        route                    TEXT COLLATE "C" NOT NULL,
        task                     TEXT COLLATE "C",
        primary_backend          TEXT COLLATE "C" NOT NULL,
        shadow_backend           TEXT COLLATE "C" NOT NULL,
        prompt                   TEXT,
        primary_output           TEXT,
        shadow_output            TEXT,
        primary_input_tokens     BIGINT NOT NULL,
        primary_output_tokens    BIGINT NOT NULL,
        shadow_input_tokens      BIGINT NOT NULL,
        shadow_output_tokens     BIGINT NOT NULL,
        shadow_cost_nusd         BIGINT NOT NULL,
        shadow_latency_us        BIGINT NOT NULL,
        shadow_error             TEXT
    );
    CREATE INDEX shadow_pairs_started_at ON shadow_pairs (started_at_unix_ms);
    CREATE TABLE client_keys (
        name                 TEXT COLLATE "C" PRIMARY KEY,
        sha256               TEXT COLLATE "C" NOT NULL UNIQUE,
        routes               TEXT,
        rpm                  BIGINT CHECK (rpm > 0),
        tpm                  BIGINT CHECK (tpm > 0),
        monthly_budget_nusd  BIGINT CHECK (monthly_budget_nusd >= 0),
        budget_on            TEXT COLLATE "C" NOT NULL DEFAULT 'actual'
                                 CHECK (budget_on IN ('actual', 'counterfactual')),
        created_at_unix_ms   BIGINT NOT NULL,
        updated_at_unix_ms   BIGINT NOT NULL,
        revoked_at_unix_ms   BIGINT
    );
    CREATE TABLE key_spend (
        key_name             TEXT COLLATE "C" NOT NULL,
        month_start_unix_ms  BIGINT NOT NULL,
        spent_nusd           BIGINT NOT NULL DEFAULT 0,
        reserved_nusd        BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nusd >= 0),
        PRIMARY KEY (key_name, month_start_unix_ms)
    );"#,
];

/// The PostgreSQL schema version this build writes and reads.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Connects to `url` with a connect timeout when the URL sets none.
pub(crate) fn connect(url: &str) -> Result<Client> {
    let mut config = postgres::Config::from_str(url).map_err(|e| LedgerError::Location {
        location: redact(url),
        detail: e.to_string(),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .connect(NoTls)
        .map_err(|e| LedgerError::Unavailable(format!("{}: {e}", redact(url))))
}

/// Connects to `url` and brings its schema up to date.
fn connect_migrated(url: &str) -> Result<Client> {
    let mut client = connect(url)?;
    migrate(&mut client)?;
    Ok(client)
}

/// The async config for `url`, with the same default connect timeout.
pub(crate) fn async_config(url: &str) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| LedgerError::Location {
        location: redact(url),
        detail: e.to_string(),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// Applies pending migrations under the advisory lock. Fails on a database written by a
/// newer build.
pub(crate) fn migrate(client: &mut Client) -> Result<()> {
    let known = i64::from(PG_SCHEMA_VERSION);
    // Up to date: nothing to create or lock, so a role without CREATE can run the
    // gateway once an owner has migrated the database.
    let exists: bool = client
        .query_one("SELECT to_regclass('costfloor_schema') IS NOT NULL", &[])?
        .try_get(0)?;
    if exists {
        if let Some(row) = client.query_opt("SELECT version FROM costfloor_schema", &[])? {
            let found: i64 = row.try_get(0)?;
            if found > known {
                return Err(LedgerError::NewerSchema { found, known });
            }
            if found == known {
                return Ok(());
            }
        }
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS costfloor_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM costfloor_schema", &[])? {
        Some(row) => row.try_get(0)?,
        None => {
            tx.execute("INSERT INTO costfloor_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > known {
        return Err(LedgerError::NewerSchema { found, known });
    }
    let start = usize::try_from(found).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.batch_execute(sql)?;
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute("UPDATE costfloor_schema SET version = $1", &[&version])?;
        tracing::info!(version, "ledger database migrated");
    }
    tx.commit()?;
    Ok(())
}

/// Whether `e` is about the rows sent (bad data, a constraint), not the database being
/// unreachable: retrying cannot help, other rows are fine.
pub(crate) fn is_row_error(e: &LedgerError) -> bool {
    match e {
        LedgerError::Postgres(e) => e.code().is_some_and(|code| {
            let class = &code.code()[..2];
            class == "22" || class == "23"
        }),
        LedgerError::Decode { .. } => true,
        _ => false,
    }
}

type Job = Box<dyn FnOnce(Result<&mut Client>) + Send>;

/// A PostgreSQL client on a thread of its own; see the module documentation.
pub(crate) struct PgConn {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PgConn {
    /// Connects (failing now if the database cannot be reached), migrates, and starts
    /// the thread.
    pub(crate) fn open(url: &str) -> Result<PgConn> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("ledger-postgres".into())
            .spawn(move || {
                // Connected on this thread: the sync client cannot run inside an async
                // runtime, and the caller may be in one.
                let mut client = match connect_migrated(&url) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        Some(c)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = match connect_migrated(&url) {
                            Ok(c) => {
                                tracing::info!("ledger database reconnected");
                                Some(c)
                            }
                            Err(e) => {
                                job(Err(e));
                                continue;
                            }
                        };
                    }
                    match client.as_mut() {
                        Some(c) => job(Ok(c)),
                        None => job(Err(LedgerError::Unavailable("not connected".into()))),
                    }
                }
            })
            .map_err(LedgerError::Spawn)?;
        ready_rx
            .recv()
            .map_err(|_| LedgerError::Unavailable("the connection thread stopped".into()))??;
        Ok(PgConn {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Box::new(move |client| {
            let _ = tx.send(client.and_then(f));
        }))?;
        rx.recv()
            .map_err(|_| LedgerError::Unavailable("the connection thread stopped".into()))?
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| LedgerError::Unavailable("the connection thread stopped".into()))
    }

    /// Streams a query's rows to `each` as they arrive (at most 256 are buffered between
    /// the threads, so memory stays flat on a large scan).
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> Result<()>,
    ) -> Result<u64> {
        let (tx, rx) = mpsc::sync_channel::<Result<postgres::Row>>(256);
        let sql = sql.to_owned();
        let params: Vec<OwnedParam> = params.iter().map(OwnedParam::from).collect();
        self.submit(Box::new(move |client| {
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let refs = params.iter().map(|p| p as &dyn postgres::types::ToSql);
            let mut rows = match client.query_raw(sql.as_str(), refs) {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            };
            loop {
                match rows.next() {
                    Ok(Some(row)) => {
                        if tx.send(Ok(row)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                }
            }
        }))?;
        let mut seen = 0;
        for row in rx {
            each(&row?)?;
            seen += 1;
        }
        Ok(seen)
    }

    /// Runs `sql` once per parameter list in one transaction; returns the rows changed.
    pub(crate) fn execute_many(&self, sql: &str, rows: Vec<Vec<OwnedParam>>) -> Result<u64> {
        let sql = sql.to_owned();
        self.run(move |client| {
            let mut tx = client.transaction()?;
            let stmt = tx.prepare(&sql)?;
            let mut changed = 0;
            for params in &rows {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                changed += tx.execute(&stmt, &refs)?;
            }
            tx.commit()?;
            Ok(changed)
        })
    }
}
