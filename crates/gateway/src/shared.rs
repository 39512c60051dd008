//! What replicas share through PostgreSQL, when it is the ledger: client keys kept in
//! the database, and monthly budgets held by reservation.
//!
//! - **Keys** are read from `ledger::KeyStore` at start and every [`KEYS_REFRESH`], so a
//!   key created, changed or revoked on any replica (the admin endpoints, or `costfloor
//!   keys --ledger`) takes effect on every replica within a second, without a reload.
//!   A database key whose name a `[[client_key]]` of the config already has is skipped.
//! - **Budgets** (of database keys and of config keys alike): before a request is
//!   forwarded, its largest possible cost is reserved in the key's month row; the
//!   reservation is settled with the cost its ledger row records. The database checks
//!   and reserves in one statement, so the budget holds across replicas: the overshoot
//!   is at most what in-flight requests cost beyond their reservations (docs/gateway.md).
//!   While the database cannot be reached, requests of budgeted keys are refused (503
//!   in the client's shape) rather than let through uncounted.
//!
//! It must not write SQL (`ledger` does) or answer HTTP (`admin` does).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use costfloor_core::calendar::month_bounds_unix_ms;
use costfloor_core::money::Money;
use ledger::{KeyRecord, KeyStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::ApiErrorKind;

use crate::error::ClientError;
use crate::keys::ClientKey;
use crate::limits::{BudgetOn, KeyLimits};

/// How often each replica reads the keys table.
pub const KEYS_REFRESH: Duration = Duration::from_secs(1);

/// Longest a reservation may take before the request is refused as unavailable.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pauses between attempts at a settlement the database did not take: about 30 s in
/// all, so that shutdown (which waits for these tasks) is not held longer.
const SETTLE_BACKOFF: [Duration; 7] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(10),
];

/// The budget's name for what it counts, as the database stores it.
pub fn budget_on_name(on: BudgetOn) -> &'static str {
    match on {
        BudgetOn::Actual => "actual",
        BudgetOn::Counterfactual => "counterfactual",
    }
}

/// A stored key as the gateway checks it; `None` (logged) if its digest is malformed.
pub fn client_key(record: &KeyRecord) -> Option<ClientKey> {
    let Some(sha256) = crate::keys::from_hex(&record.sha256) else {
        tracing::error!(key = %record.name, "stored client key has a malformed sha256; skipped");
        return None;
    };
    Some(ClientKey {
        name: record.name.clone(),
        sha256,
        routes: record.routes.clone(),
        limits: KeyLimits {
            rpm: record.rpm,
            tpm: record.tpm,
            monthly_budget: record.monthly_budget_nusd.map(Money::from_nano_usd),
            budget_on: if record.budget_on == "counterfactual" {
                BudgetOn::Counterfactual
            } else {
                BudgetOn::Actual
            },
        },
    })
}

/// Keys and budgets in the shared database.
pub struct Shared {
    pub(crate) store: Arc<KeyStore>,
    keys: ArcSwap<Vec<ClientKey>>,
    /// Whether the table has ever held a key (revoked ones count): from then on the
    /// gateway asks for a key even when none is active.
    ever_had_keys: std::sync::atomic::AtomicBool,
    /// Names the config's own keys take (a database key of the same name is skipped).
    config_names: Mutex<HashSet<String>>,
    /// (key, month start) rows this process has opened.
    opened: Mutex<HashSet<(String, i64)>>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

impl Shared {
    /// Connects and reads the keys once.
    pub async fn open(
        url: &str,
        config_keys: &[ClientKey],
        tracker: TaskTracker,
    ) -> Result<Arc<Shared>, ledger::LedgerError> {
        let shared = Arc::new(Shared {
            store: Arc::new(KeyStore::open(url).await?),
            keys: ArcSwap::from_pointee(Vec::new()),
            ever_had_keys: std::sync::atomic::AtomicBool::new(false),
            config_names: Mutex::new(config_keys.iter().map(|k| k.name.clone()).collect()),
            opened: Mutex::new(HashSet::new()),
            tracker,
        });
        shared.refresh().await?;
        Ok(shared)
    }

    /// The database's keys, as last read.
    pub fn keys(&self) -> arc_swap::Guard<Arc<Vec<ClientKey>>> {
        self.keys.load()
    }

    /// Whether keys are required even with none active: a key was stored once.
    pub fn ever_had_keys(&self) -> bool {
        self.ever_had_keys
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// After a config reload: the names its keys now take.
    pub fn set_config_keys(&self, config_keys: &[ClientKey]) {
        *self
            .config_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            config_keys.iter().map(|k| k.name.clone()).collect();
    }

    /// Reads the keys table now.
    pub async fn refresh(&self) -> Result<(), ledger::LedgerError> {
        let mut records = self.store.all().await?;
        if !records.is_empty() {
            self.ever_had_keys
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        records.retain(|r| r.revoked_at_unix_ms.is_none());
        let taken = self
            .config_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let keys: Vec<ClientKey> = records
            .iter()
            .filter(|r| {
                let clash = taken.contains(&r.name);
                if clash {
                    tracing::warn!(key = %r.name,
                        "a stored client key has the name of a [[client_key]] in the config; the config's is used");
                }
                !clash
            })
            .filter_map(client_key)
            .collect();
        let before = self.keys.load();
        if before.as_slice() != keys.as_slice() {
            tracing::info!(
                keys = keys.len(),
                "client keys from the ledger database updated"
            );
            self.keys.store(Arc::new(keys));
        }
        Ok(())
    }

    /// Reads the keys table every [`KEYS_REFRESH`] until `shutdown`.
    pub fn spawn_refresher(self: &Arc<Self>, shutdown: CancellationToken) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(KEYS_REFRESH) => {}
                }
                match shared.refresh().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("client keys readable again from the ledger database");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!(error = %e,
                            "cannot read client keys from the ledger database; keeping the last ones read");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Reserves `cost_bound` of `key`'s month, or refuses the request: 429 when it
    /// does not fit, 503 when the database cannot say.
    pub async fn reserve(
        self: &Arc<Self>,
        key: &ClientKey,
        budget: Money,
        cost_bound: Money,
        now_ms: i64,
    ) -> Result<Hold, ClientError> {
        let (month, _) = month_bounds_unix_ms(now_ms);
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!(key = %key.name, error = %e, "budget reservation failed");
            let mut error = ClientError::upstream(
                ApiErrorKind::Overloaded,
                format!(
                    "budget: key `{}`'s spend cannot be checked right now; retry shortly",
                    key.name
                ),
            );
            error.retry_after = Some(Duration::from_secs(1));
            error
        };
        let reserve = async {
            let id = (key.name.clone(), month);
            let opened = self
                .opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id);
            if !opened {
                self.store
                    .open_month(&key.name, month, budget_on_name(key.limits.budget_on))
                    .await?;
                self.opened
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
            }
            self.store
                .reserve(&key.name, month, cost_bound.nano_usd(), budget.nano_usd())
                .await
        };
        let outcome = match tokio::time::timeout(RESERVE_TIMEOUT, reserve).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => return Err(unavailable(&e)),
            Err(_) => return Err(unavailable(&"timed out")),
        };
        match outcome {
            Ok(spend) => {
                crate::limits::observe_spend(
                    &key.name,
                    Money::from_nano_usd(spend.spent_nusd),
                    Money::from_nano_usd(spend.reserved_nusd),
                    Some(budget),
                );
                Ok(Hold {
                    shared: Arc::clone(self),
                    key: key.name.clone(),
                    month,
                    reserved: cost_bound,
                    on: key.limits.budget_on,
                    settled: false,
                })
            }
            Err(spend) => Err(crate::limits::over_budget(
                &key.name,
                Money::from_nano_usd(spend.spent_nusd),
                Money::from_nano_usd(spend.reserved_nusd),
                budget,
                cost_bound,
                now_ms,
            )),
        }
    }

    /// Settles in the background, retried for about 30 s; shutdown waits for these
    /// tasks. A settlement never made (the database away longer, the process killed
    /// first) leaves its reservation in place: the key can spend less, never more.
    fn settle(&self, key: String, month: i64, reserved: Money, spent: Money) {
        let store = Arc::clone(&self.store);
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                key,
                "budget settlement outside the runtime; its reservation stays"
            );
            return;
        }
        ::metrics::gauge!(crate::metrics::KEY_SETTLES_PENDING).increment(1.0);
        self.tracker.spawn(async move {
            let mut pauses = SETTLE_BACKOFF.iter();
            loop {
                match store
                    .settle(&key, month, reserved.nano_usd(), spent.nano_usd())
                    .await
                {
                    Ok(()) => break,
                    Err(e) => match pauses.next() {
                        Some(pause) => {
                            if pauses.len() + 1 == SETTLE_BACKOFF.len() {
                                tracing::warn!(key, error = %e, "budget settlement failed; retrying");
                            }
                            tokio::time::sleep(*pause).await;
                        }
                        None => {
                            tracing::error!(key, error = %e,
                                reserved_nano_usd = reserved.nano_usd(), spent_nano_usd = spent.nano_usd(),
                                "budget settlement abandoned; the reservation stays on the key's month");
                            break;
                        }
                    },
                }
            }
            ::metrics::gauge!(crate::metrics::KEY_SETTLES_PENDING).decrement(1.0);
        });
    }
}

/// A request's reservation on its key's month, settled with its cost (or released when
/// dropped unsettled).
pub struct Hold {
    shared: Arc<Shared>,
    key: String,
    month: i64,
    reserved: Money,
    on: BudgetOn,
    settled: bool,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("key", &self.key)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl Hold {
    /// Moves the reservation into the month's spend at the request's cost.
    pub fn settle(mut self, cost: Money, counterfactual: Money) {
        let spent = match self.on {
            BudgetOn::Actual => cost,
            BudgetOn::Counterfactual => counterfactual,
        };
        self.settled = true;
        self.shared
            .settle(self.key.clone(), self.month, self.reserved, spent);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.settle(
                std::mem::take(&mut self.key),
                self.month,
                self.reserved,
                Money::ZERO,
            );
        }
    }
}
