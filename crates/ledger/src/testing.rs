//! Test support (feature `testing`): PostgreSQL databases for the test suites.
//!
//! `scripts/test.sh` starts one throwaway cluster and exports its URL as
//! `COSTFLOOR_TEST_POSTGRES`; [`postgres_database`] makes a fresh database on it for each
//! test. A test that stops the database under load starts a [`Cluster`] of its own with
//! the same script. Without the variable the tests fail, saying how to set it: they
//! never skip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::NoTls;

/// The variable holding the URL of the test cluster's `postgres` database.
pub const ENV: &str = "COSTFLOOR_TEST_POSTGRES";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A new, empty database on the test cluster; returns its URL.
///
/// # Panics
///
/// When `COSTFLOOR_TEST_POSTGRES` is not set or the cluster cannot be reached.
pub fn postgres_database() -> String {
    let base = std::env::var(ENV).unwrap_or_else(|_| {
        panic!(
            "{ENV} is not set: run the suite with `bash scripts/test.sh`, or start a cluster with \
             `export {ENV}=$(bash scripts/setup-postgres.sh start | tail -n 1)`"
        )
    });
    let name = format!(
        "cf_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    create_database(&base, &name)
}

/// Creates `name` on the cluster of `base` (a URL ending in a database name) and returns
/// the new database's URL. Runs on a thread of its own: the sync client cannot run
/// inside an async test.
fn create_database(base: &str, name: &str) -> String {
    let (prefix, _) = base.rsplit_once('/').unwrap_or((base, ""));
    let url = format!("{prefix}/{name}");
    let base = base.to_owned();
    let statement = format!("CREATE DATABASE {name}");
    let made = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&base, NoTls)
            .unwrap_or_else(|e| panic!("test cluster {base}: {e}"));
        client.batch_execute(&statement)
    })
    .join();
    match made {
        Ok(Ok(())) => url,
        Ok(Err(e)) => panic!("creating test database {name}: {e}"),
        Err(_) => panic!("creating test database {name}: the thread panicked"),
    }
}

/// A cluster of a test's own (`scripts/setup-postgres.sh`), stopped and deleted on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: String,
    url: String,
    script: PathBuf,
}

impl Cluster {
    /// Starts a new cluster on a free loopback port.
    ///
    /// # Panics
    ///
    /// When the script fails.
    pub fn start() -> Cluster {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-postgres.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines = stdout.lines().rev();
        let (Some(url), Some(dir)) = (lines.next(), lines.next()) else {
            panic!(
                "{} start failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        assert!(out.status.success(), "{} start failed", script.display());
        Cluster {
            dir: dir.to_owned(),
            url: url.to_owned(),
            script,
        }
    }

    /// A new, empty database on this cluster; returns its URL.
    pub fn database(&self, name: &str) -> String {
        create_database(&self.url, name)
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn halt(&self) {
        self.run("halt");
    }

    /// Starts the server again on the same port.
    pub fn resume(&self) {
        self.run("resume");
    }

    fn run(&self, what: &str) {
        let status = Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .arg(&self.dir)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.script.display()));
        assert!(status.success(), "setup-postgres.sh {what} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
