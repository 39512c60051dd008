//! Client keys and their monthly spend in PostgreSQL, shared by every gateway replica
//! (tables `client_keys` and `key_spend`).
//!
//! A key is stored as the hex SHA-256 of its secret, never the secret. Its budget is
//! held by reservation: before a request is forwarded, [`KeyStore::reserve`] adds the
//! request's largest possible cost to the month's `reserved_nusd` in one conditional
//! `UPDATE`, which succeeds only if `spent + reserved + amount <= budget`; the row lock
//! makes that atomic across replicas. [`KeyStore::settle`] then moves the reservation
//! into `spent_nusd` at the actual cost. So the budget is passed only by what requests
//! cost beyond their reservation (an input count above its estimate), whatever the
//! number of replicas.
//!
//! Async (tokio-postgres) because reservations are on the request path; the gateway's
//! tasks call it directly. Statements are prepared once per connection; a dropped
//! connection is replaced on the next call.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::{Client, Statement};

use crate::location::redact;
use crate::{LedgerError, Result};

/// A client key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's name, as ledger rows record it.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Routes the key may use; empty: any.
    pub routes: Vec<String>,
    /// Requests per minute, per replica.
    pub rpm: Option<u32>,
    /// Tokens per minute, per replica.
    pub tpm: Option<u64>,
    /// Monthly budget in nano-USD.
    pub monthly_budget_nusd: Option<i64>,
    /// `actual` or `counterfactual`.
    pub budget_on: String,
    /// When it was created (Unix ms).
    pub created_at_unix_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_unix_ms: Option<i64>,
}

/// A change to a key's limits: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChange {
    /// New routes (empty: any).
    pub routes: Option<Vec<String>>,
    /// New requests-per-minute limit.
    pub rpm: Option<Option<u32>>,
    /// New tokens-per-minute limit.
    pub tpm: Option<Option<u64>>,
    /// New monthly budget, nano-USD.
    pub monthly_budget_nusd: Option<Option<i64>>,
    /// New `budget_on`.
    pub budget_on: Option<String>,
}

/// A key's spend in one month, in nano-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MonthSpend {
    /// Settled.
    pub spent_nusd: i64,
    /// Reserved by requests in flight.
    pub reserved_nusd: i64,
}

struct Conn {
    client: Client,
    reserve: Statement,
    settle: Statement,
    seed: Statement,
}

/// The key tables, on one pipelined connection; see the module documentation.
pub struct KeyStore {
    config: tokio_postgres::Config,
    url: String,
    conn: Mutex<Option<Arc<Conn>>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("url", &redact(&self.url))
            .finish()
    }
}

const KEY_COLUMNS: &str = "name, sha256, routes, rpm, tpm, monthly_budget_nusd, budget_on,
    created_at_unix_ms, revoked_at_unix_ms";

fn record(row: &tokio_postgres::Row) -> Result<KeyRecord> {
    let routes: Option<String> = row.try_get(2)?;
    let routes = match routes {
        Some(text) => serde_json::from_str(&text).map_err(|e| LedgerError::Decode {
            column: 2,
            detail: format!("routes {text:?}: {e}"),
        })?,
        None => Vec::new(),
    };
    let rpm: Option<i64> = row.try_get(3)?;
    let tpm: Option<i64> = row.try_get(4)?;
    Ok(KeyRecord {
        name: row.try_get(0)?,
        sha256: row.try_get(1)?,
        routes,
        rpm: rpm.and_then(|v| u32::try_from(v).ok()),
        tpm: tpm.and_then(|v| u64::try_from(v).ok()),
        monthly_budget_nusd: row.try_get(5)?,
        budget_on: row.try_get(6)?,
        created_at_unix_ms: row.try_get(7)?,
        revoked_at_unix_ms: row.try_get(8)?,
    })
}

fn routes_json(routes: &[String]) -> Option<String> {
    (!routes.is_empty()).then(|| serde_json::Value::from(routes.to_vec()).to_string())
}

impl KeyStore {
    /// Connects to `url`, creating the tables if this is the first costfloor to use the
    /// database (migrations under the advisory lock).
    pub async fn open(url: &str) -> Result<KeyStore> {
        // The migrations run on the sync client's thread, as the ledger's do.
        let owned = url.to_owned();
        tokio::task::spawn_blocking(move || crate::pg::PgConn::open(&owned).map(drop))
            .await
            .map_err(|_| LedgerError::Unavailable("the migration task stopped".into()))??;
        let store = KeyStore {
            config: crate::pg::async_config(url)?,
            url: url.to_owned(),
            conn: Mutex::new(None),
        };
        store.conn().await?;
        Ok(store)
    }

    async fn conn(&self) -> Result<Arc<Conn>> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(conn));
        }
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| LedgerError::Unavailable(format!("{}: {e}", redact(&self.url))))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "key store connection ended");
            }
        });
        let reserve = client
            .prepare(
                "UPDATE key_spend SET reserved_nusd = reserved_nusd + $3
                 WHERE key_name = $1 AND month_start_unix_ms = $2
                   AND spent_nusd + reserved_nusd + $3 <= $4
                 RETURNING spent_nusd, reserved_nusd",
            )
            .await?;
        let settle = client
            .prepare(
                "UPDATE key_spend SET reserved_nusd = GREATEST(reserved_nusd - $3, 0),
                                      spent_nusd = spent_nusd + $4
                 WHERE key_name = $1 AND month_start_unix_ms = $2",
            )
            .await?;
        // A key's first request of a month opens its row, starting from what the
        // ledger already holds for it that month (keys that moved from a config file).
        let seed = client
            .prepare(
                "INSERT INTO key_spend (key_name, month_start_unix_ms, spent_nusd, reserved_nusd)
                 SELECT $1, $2, CAST(COALESCE(SUM(CASE WHEN $3 = 'counterfactual'
                        THEN counterfactual_cost_nusd ELSE cost_nusd END), 0) AS BIGINT), 0
                 FROM requests WHERE client_key = $1 AND started_at_unix_ms >= $2
                 ON CONFLICT (key_name, month_start_unix_ms) DO NOTHING",
            )
            .await?;
        let conn = Arc::new(Conn {
            client,
            reserve,
            settle,
            seed,
        });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Every key that is not revoked, by name.
    pub async fn active(&self) -> Result<Vec<KeyRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM client_keys WHERE revoked_at_unix_ms IS NULL ORDER BY name"
                ),
                &[],
            )
            .await?;
        rows.iter().map(record).collect()
    }

    /// Every key, revoked ones too, by name.
    pub async fn all(&self) -> Result<Vec<KeyRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM client_keys ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(record).collect()
    }

    /// Stores a new key. Fails with [`LedgerError::Conflict`] if the name (even a
    /// revoked one) or the digest is taken.
    pub async fn create(&self, key: &KeyRecord) -> Result<()> {
        let conn = self.conn().await?;
        let done = conn
            .client
            .execute(
                "INSERT INTO client_keys (name, sha256, routes, rpm, tpm, monthly_budget_nusd,
                     budget_on, created_at_unix_ms, updated_at_unix_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &[
                    &key.name,
                    &key.sha256,
                    &routes_json(&key.routes),
                    &key.rpm.map(i64::from),
                    &key.tpm.and_then(|v| i64::try_from(v).ok()),
                    &key.monthly_budget_nusd,
                    &key.budget_on,
                    &key.created_at_unix_ms,
                ],
            )
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(LedgerError::Conflict(format!(
                    "a key named `{}` (or with the same secret) already exists",
                    key.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a key's limits; returns the key as it now is, or `None` when there is no
    /// such key that is not revoked.
    pub async fn change(
        &self,
        name: &str,
        change: &KeyChange,
        now_ms: i64,
    ) -> Result<Option<KeyRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(
                &format!(
                    "UPDATE client_keys SET
                        routes = CASE WHEN $2 THEN $3 ELSE routes END,
                        rpm = CASE WHEN $4 THEN $5 ELSE rpm END,
                        tpm = CASE WHEN $6 THEN $7 ELSE tpm END,
                        monthly_budget_nusd = CASE WHEN $8 THEN $9 ELSE monthly_budget_nusd END,
                        budget_on = COALESCE($10, budget_on),
                        updated_at_unix_ms = $11
                     WHERE name = $1 AND revoked_at_unix_ms IS NULL
                     RETURNING {KEY_COLUMNS}"
                ),
                &[
                    &name,
                    &change.routes.is_some(),
                    &change.routes.as_deref().and_then(routes_json),
                    &change.rpm.is_some(),
                    &change.rpm.flatten().map(i64::from),
                    &change.tpm.is_some(),
                    &change.tpm.flatten().and_then(|v| i64::try_from(v).ok()),
                    &change.monthly_budget_nusd.is_some(),
                    &change.monthly_budget_nusd.flatten(),
                    &change.budget_on,
                    &now_ms,
                ],
            )
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Revokes a key; returns whether there was one to revoke.
    pub async fn revoke(&self, name: &str, now_ms: i64) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .client
            .execute(
                "UPDATE client_keys SET revoked_at_unix_ms = $2, updated_at_unix_ms = $2
                 WHERE name = $1 AND revoked_at_unix_ms IS NULL",
                &[&name, &now_ms],
            )
            .await?;
        Ok(n == 1)
    }

    /// Every key's spend in the month starting at `month_start_unix_ms`.
    pub async fn spend(&self, month_start_unix_ms: i64) -> Result<Vec<(String, MonthSpend)>> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                "SELECT key_name, spent_nusd, reserved_nusd FROM key_spend
                 WHERE month_start_unix_ms = $1 ORDER BY key_name",
                &[&month_start_unix_ms],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    MonthSpend {
                        spent_nusd: r.try_get(1)?,
                        reserved_nusd: r.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    /// Opens `key`'s row for the month if it has none; `budget_on` says which ledger
    /// cost a new row starts from. Idempotent.
    pub async fn open_month(
        &self,
        key: &str,
        month_start_unix_ms: i64,
        budget_on: &str,
    ) -> Result<()> {
        let conn = self.conn().await?;
        conn.client
            .execute(&conn.seed, &[&key, &month_start_unix_ms, &budget_on])
            .await?;
        Ok(())
    }

    /// Reserves `amount` of `key`'s month if `spent + reserved + amount <= budget`.
    /// `Ok(Err(spend))` is a refusal, with the month's spend as it stood. The month's
    /// row must be open ([`KeyStore::open_month`]).
    pub async fn reserve(
        &self,
        key: &str,
        month_start_unix_ms: i64,
        amount_nusd: i64,
        budget_nusd: i64,
    ) -> Result<std::result::Result<MonthSpend, MonthSpend>> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(
                &conn.reserve,
                &[&key, &month_start_unix_ms, &amount_nusd, &budget_nusd],
            )
            .await?;
        if let Some(row) = row {
            return Ok(Ok(MonthSpend {
                spent_nusd: row.try_get(0)?,
                reserved_nusd: row.try_get(1)?,
            }));
        }
        let row = conn
            .client
            .query_opt(
                "SELECT spent_nusd, reserved_nusd FROM key_spend
                 WHERE key_name = $1 AND month_start_unix_ms = $2",
                &[&key, &month_start_unix_ms],
            )
            .await?;
        let spend = match row {
            Some(row) => MonthSpend {
                spent_nusd: row.try_get(0)?,
                reserved_nusd: row.try_get(1)?,
            },
            None => MonthSpend::default(),
        };
        Ok(Err(spend))
    }

    /// Settles a reservation: `reserved_nusd` goes down by the reserved amount and
    /// `spent_nusd` up by what the request cost.
    pub async fn settle(
        &self,
        key: &str,
        month_start_unix_ms: i64,
        reserved_nusd: i64,
        spent_nusd: i64,
    ) -> Result<()> {
        let conn = self.conn().await?;
        conn.client
            .execute(
                &conn.settle,
                &[&key, &month_start_unix_ms, &reserved_nusd, &spent_nusd],
            )
            .await?;
        Ok(())
    }
}
