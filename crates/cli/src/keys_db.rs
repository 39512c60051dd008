//! `costfloor keys --ledger postgres://…`: the keys stored in a PostgreSQL ledger, the
//! same ones `/admin/keys` manages. A key is checked by `gateway::admin::new_key` (the
//! routes against `--config`'s when given), printed once, stored as its SHA-256.

use std::path::Path;

use anyhow::Result;
use costfloor_core::calendar::month_bounds_unix_ms;
use costfloor_core::money::Money;
use gateway::admin::{ListedKey, NewKey};
use ledger::{KeyChange, KeyStore, LedgerError, Location};

use crate::commands::{input_failure, now_unix_ms, tokio_runtime};
use crate::keys::LimitFlags;
use crate::output;

async fn open(url: &str) -> Result<KeyStore> {
    let location = Location::parse(url).map_err(|e| input_failure(format!("--ledger: {e}")))?;
    if !location.is_postgres() {
        return Err(input_failure(format!(
            "--ledger {location}: expected a postgres:// URL; keys in a config file are edited with --config"
        )));
    }
    KeyStore::open(url)
        .await
        .map_err(|e| input_failure(format!("--ledger {location}: {e}")))
}

fn failed(e: LedgerError) -> anyhow::Error {
    match e {
        LedgerError::Conflict(message) => input_failure(message),
        other => anyhow::Error::new(other),
    }
}

pub fn create(
    url: &str,
    config: Option<&Path>,
    name: &str,
    routes: &[String],
    limits: &LimitFlags,
) -> Result<()> {
    let known: Vec<String> = match config {
        Some(path) => gateway::config::load(path)
            .map_err(input_failure)?
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        None => {
            if !routes.is_empty() {
                eprintln!("routes are not checked against a config: pass --config to check them");
            }
            routes.to_vec()
        }
    };
    let new = NewKey {
        name: name.to_owned(),
        routes: routes.to_vec(),
        rpm: limits.rpm,
        tpm: limits.tpm,
        monthly_budget_usd: limits.budget()?,
        budget_on: limits.budget_on()?,
    };
    let (secret, record) =
        gateway::admin::new_key(&new, &known, now_unix_ms()).map_err(input_failure)?;
    tokio_runtime()?.block_on(async {
        let store = open(url).await?;
        store.create(&record).await.map_err(failed)
    })?;
    eprintln!(
        "client key `{name}` stored in the ledger database as its SHA-256; every replica takes it within a second. The key is shown once, below."
    );
    output::print_line(&secret)
}

pub fn list(url: &str, json: bool) -> Result<()> {
    let (keys, spend) = tokio_runtime()?.block_on(async {
        let store = open(url).await?;
        let (month, _) = month_bounds_unix_ms(now_unix_ms());
        let keys = store.all().await.map_err(failed)?;
        let spend = store.spend(month).await.map_err(failed)?;
        Ok::<_, anyhow::Error>((keys, spend))
    })?;
    let listed: Vec<ListedKey> = gateway::admin::listed(&keys, &spend);
    if json {
        return output::print_json(&listed);
    }
    if listed.is_empty() {
        return output::print_line("no client key is stored in the ledger database");
    }
    let lines: Vec<String> = listed
        .iter()
        .map(|k| {
            let routes = if k.routes.is_empty() {
                "any route".to_string()
            } else {
                k.routes.join(", ")
            };
            let mut limits = Vec::new();
            if let Some(rpm) = k.rpm {
                limits.push(format!("{rpm} requests/min"));
            }
            if let Some(tpm) = k.tpm {
                limits.push(format!("{tpm} tokens/min"));
            }
            if let Some(budget) = k.monthly_budget_nano_usd {
                limits.push(format!(
                    "{} of {}/month ({} cost)",
                    Money::from_nano_usd(k.spent_nano_usd).fine(),
                    Money::from_nano_usd(budget).fine(),
                    k.budget_on
                ));
            }
            let limits = if limits.is_empty() {
                "no limits".to_string()
            } else {
                limits.join(", ")
            };
            let state = if k.revoked_at_unix_ms.is_some() {
                "  (revoked)"
            } else {
                ""
            };
            format!(
                "{}  sha256 {}…  {routes}  {limits}{state}",
                k.name, k.sha256_prefix
            )
        })
        .collect();
    output::print_line(&lines.join("\n"))
}

pub fn set_budget(url: &str, name: &str, limits: &LimitFlags) -> Result<()> {
    let change = KeyChange {
        monthly_budget_nusd: Some(limits.budget()?.map(Money::nano_usd)),
        budget_on: limits
            .budget_on()?
            .map(|on| gateway::shared::budget_on_name(on).to_owned()),
        ..KeyChange::default()
    };
    let changed = tokio_runtime()?.block_on(async {
        let store = open(url).await?;
        store
            .change(name, &change, now_unix_ms())
            .await
            .map_err(failed)
    })?;
    match changed {
        Some(_) => output::print_line(&format!(
            "client key `{name}`: monthly budget ${}; every replica applies it within a second",
            limits.monthly_budget_usd.unwrap_or_default()
        )),
        None => Err(input_failure(format!(
            "--name {name}: no client key of that name is stored (or it is revoked)"
        ))),
    }
}

pub fn revoke(url: &str, name: &str) -> Result<()> {
    let revoked = tokio_runtime()?.block_on(async {
        let store = open(url).await?;
        store.revoke(name, now_unix_ms()).await.map_err(failed)
    })?;
    if revoked {
        output::print_line(&format!(
            "client key `{name}` revoked; every replica refuses it within a second"
        ))
    } else {
        Err(input_failure(format!(
            "--name {name}: no client key of that name is stored (or it is revoked already)"
        )))
    }
}
