//! `/admin/keys`: client keys stored in the ledger database (PostgreSQL), managed over
//! HTTP with the admin key, effective on every replica within
//! [`crate::shared::KEYS_REFRESH`] and on this one at once.
//!
//! - `GET /admin/keys`: every key (revoked ones too), with this month's spend;
//! - `POST /admin/keys` `{name, routes?, rpm?, tpm?, monthly_budget_usd?, budget_on?}`:
//!   a new key, answered once with the secret (201); only its SHA-256 is stored;
//! - `PATCH /admin/keys/{name}`: any of the same fields but `name`; `null` clears one;
//! - `DELETE /admin/keys/{name}`: revokes it.
//!
//! [`new_key`] checks a new key's fields for both this and `costfloor keys --ledger`.
//! It must not write SQL (`ledger::KeyStore` does) or see a secret after answering it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use costfloor_core::calendar::month_bounds_unix_ms;
use costfloor_core::money::Money;
use ledger::{KeyChange, KeyRecord, LedgerError};
use serde::{Deserialize, Deserializer, Serialize};

use crate::limits::BudgetOn;
use crate::shared::budget_on_name;
use crate::state::AppState;

/// The routes under `/admin/keys`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route(
            "/admin/keys/{name}",
            axum::routing::patch(change).delete(revoke),
        )
}

/// A new key's fields, as `POST /admin/keys` takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(default)]
    pub routes: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub monthly_budget_usd: Option<Money>,
    pub budget_on: Option<BudgetOn>,
}

/// A change, as `PATCH /admin/keys/{name}` takes it: an absent field stays, `null`
/// clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub routes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub monthly_budget_usd: Option<Option<Money>>,
    pub budget_on: Option<BudgetOn>,
}

/// A field that is there, `null` or not: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Checks a key name: 1 to 64 letters, digits, `.`, `_` or `-`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name = {:?} is not allowed: 1 to 64 letters, digits, '.', '_' or '-'",
            name.chars().take(80).collect::<String>()
        ))
    }
}

fn check_routes(routes: &[String], known: &[String]) -> Result<(), String> {
    match routes.iter().find(|r| !known.contains(r)) {
        Some(route) => Err(format!(
            "routes: `{route}` is not a configured route; routes: {}",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn check_rates(rpm: Option<u32>, tpm: Option<u64>) -> Result<(), String> {
    if rpm == Some(0) || tpm == Some(0) {
        return Err("rpm and tpm must be at least 1 (leave them out for no limit)".into());
    }
    Ok(())
}

/// Checks `new` against the configured routes and makes the key: the secret, shown
/// once, and the record to store.
pub fn new_key(
    new: &NewKey,
    known_routes: &[String],
    now_ms: i64,
) -> Result<(String, KeyRecord), String> {
    check_name(&new.name)?;
    check_routes(&new.routes, known_routes)?;
    check_rates(new.rpm, new.tpm)?;
    if new.budget_on.is_some() && new.monthly_budget_usd.is_none() {
        return Err("budget_on needs monthly_budget_usd".into());
    }
    let (secret, sha256) = crate::keys::generate()?;
    Ok((
        secret,
        KeyRecord {
            name: new.name.clone(),
            sha256,
            routes: new.routes.clone(),
            rpm: new.rpm,
            tpm: new.tpm,
            monthly_budget_nusd: new.monthly_budget_usd.map(Money::nano_usd),
            budget_on: budget_on_name(new.budget_on.unwrap_or_default()).into(),
            created_at_unix_ms: now_ms,
            revoked_at_unix_ms: None,
        },
    ))
}

/// Checks `patch` and turns it into the store's change.
pub fn key_change(patch: &KeyPatch, known_routes: &[String]) -> Result<KeyChange, String> {
    if let Some(routes) = &patch.routes {
        check_routes(routes, known_routes)?;
    }
    check_rates(patch.rpm.flatten(), patch.tpm.flatten())?;
    Ok(KeyChange {
        routes: patch.routes.clone(),
        rpm: patch.rpm,
        tpm: patch.tpm,
        monthly_budget_nusd: patch.monthly_budget_usd.map(|b| b.map(Money::nano_usd)),
        budget_on: patch.budget_on.map(|on| budget_on_name(on).to_owned()),
    })
}

/// A stored key as listed: never its secret, the first 12 digits of its digest.
#[derive(Debug, Serialize)]
pub struct ListedKey {
    pub name: String,
    pub sha256_prefix: String,
    pub routes: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Exact, in nano-USD.
    pub monthly_budget_nano_usd: Option<i64>,
    pub budget_on: String,
    pub created_at_unix_ms: i64,
    pub revoked_at_unix_ms: Option<i64>,
    /// This month (UTC), nano-USD: settled, and reserved by requests in flight.
    pub spent_nano_usd: i64,
    pub reserved_nano_usd: i64,
}

impl ListedKey {
    pub fn new(record: &KeyRecord, spend: ledger::MonthSpend) -> ListedKey {
        ListedKey {
            name: record.name.clone(),
            sha256_prefix: record.sha256.chars().take(12).collect(),
            routes: record.routes.clone(),
            rpm: record.rpm,
            tpm: record.tpm,
            monthly_budget_nano_usd: record.monthly_budget_nusd,
            budget_on: record.budget_on.clone(),
            created_at_unix_ms: record.created_at_unix_ms,
            revoked_at_unix_ms: record.revoked_at_unix_ms,
            spent_nano_usd: spend.spent_nusd,
            reserved_nano_usd: spend.reserved_nusd,
        }
    }
}

#[derive(Serialize)]
struct Refusal {
    error: String,
}

#[derive(Serialize)]
struct Listing {
    keys: Vec<ListedKey>,
}

/// A new key: what is stored, and the secret, this once.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    stored: ListedKey,
    key: String,
}

#[derive(Serialize)]
struct Revoked {
    name: String,
    revoked: bool,
}

/// Every key with its spend this month (none where the month has no row yet).
pub fn listed(keys: &[KeyRecord], spend: &[(String, ledger::MonthSpend)]) -> Vec<ListedKey> {
    keys.iter()
        .map(|k| {
            let s = spend
                .iter()
                .find(|(name, _)| *name == k.name)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            ListedKey::new(k, s)
        })
        .collect()
}

fn answer<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    answer(
        status,
        &Refusal {
            error: message.into(),
        },
    )
}

/// The store, once the admin key is checked; or the answer refusing the request.
#[allow(clippy::result_large_err)]
fn authorised(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<crate::shared::Shared>, Response> {
    let admin = state.runtime.load().config.admin_key.clone();
    let Some(admin) = admin else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "admin endpoints are off: set server.admin_key_env or server.admin_key_file",
        ));
    };
    if !crate::auth::is_admin(&admin, headers) {
        return Err(refuse(StatusCode::UNAUTHORIZED, "invalid admin key"));
    }
    state.shared.clone().ok_or_else(|| {
        refuse(
            StatusCode::CONFLICT,
            "client keys are kept in the config file here: /admin/keys needs server.ledger on PostgreSQL; use `costfloor keys --config`",
        )
    })
}

/// The store failing: the detail goes to the log, the client learns only that.
fn store_failed(e: &LedgerError) -> Response {
    if let LedgerError::Conflict(message) = e {
        return refuse(StatusCode::CONFLICT, message.clone());
    }
    tracing::error!(error = %e, "admin keys: the ledger database failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the ledger database cannot be reached; retry shortly",
    )
}

fn route_names(state: &AppState) -> Vec<String> {
    let runtime = state.runtime.load();
    let mut names: Vec<String> = runtime
        .config
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    names.sort();
    names
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let shared = match authorised(&state, &headers) {
        Ok(shared) => shared,
        Err(response) => return response,
    };
    let (month, _) = month_bounds_unix_ms(crate::row::unix_ms());
    let found = async {
        let keys = shared.store.all().await?;
        let spend = shared.store.spend(month).await?;
        Ok::<_, LedgerError>((keys, spend))
    }
    .await;
    match found {
        Ok((keys, spend)) => answer(
            StatusCode::OK,
            &Listing {
                keys: listed(&keys, &spend),
            },
        ),
        Err(e) => store_failed(&e),
    }
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = match authorised(&state, &headers) {
        Ok(shared) => shared,
        Err(response) => return response,
    };
    let new: NewKey = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    if state
        .runtime
        .load()
        .config
        .client_keys
        .iter()
        .any(|k| k.name == new.name)
    {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "a [[client_key]] named `{}` is in the config file",
                new.name
            ),
        );
    }
    let (secret, record) = match new_key(&new, &route_names(&state), crate::row::unix_ms()) {
        Ok(made) => made,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    if let Err(e) = shared.store.create(&record).await {
        return store_failed(&e);
    }
    if let Err(e) = shared.refresh().await {
        tracing::warn!(error = %e, "admin keys: the new key is stored; this replica reads it at its next refresh");
    }
    tracing::info!(key = %record.name, "client key created");
    answer(
        StatusCode::CREATED,
        &Created {
            stored: ListedKey::new(&record, Default::default()),
            key: secret,
        },
    )
}

async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let shared = match authorised(&state, &headers) {
        Ok(shared) => shared,
        Err(response) => return response,
    };
    let patch: KeyPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let change = match key_change(&patch, &route_names(&state)) {
        Ok(change) => change,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    match shared
        .store
        .change(&name, &change, crate::row::unix_ms())
        .await
    {
        Ok(Some(record)) => {
            if let Err(e) = shared.refresh().await {
                tracing::warn!(error = %e, "admin keys: changed; this replica reads it at its next refresh");
            }
            tracing::info!(key = %name, "client key changed");
            answer(StatusCode::OK, &ListedKey::new(&record, Default::default()))
        }
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            format!("no stored client key named `{name}` (or it is revoked)"),
        ),
        Err(e) => store_failed(&e),
    }
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let shared = match authorised(&state, &headers) {
        Ok(shared) => shared,
        Err(response) => return response,
    };
    match shared.store.revoke(&name, crate::row::unix_ms()).await {
        Ok(true) => {
            if let Err(e) = shared.refresh().await {
                tracing::warn!(error = %e, "admin keys: revoked; this replica drops it at its next refresh");
            }
            tracing::info!(key = %name, "client key revoked");
            answer(
                StatusCode::OK,
                &Revoked {
                    name,
                    revoked: true,
                },
            )
        }
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            format!("no stored client key named `{name}` (or it is revoked already)"),
        ),
        Err(e) => store_failed(&e),
    }
}
