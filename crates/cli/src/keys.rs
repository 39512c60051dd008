//! `costfloor keys`: client keys in the gateway config. `create` makes a key, prints it
//! once and stores only its SHA-256 (with its routes, rates and budget); `list` shows
//! names, routes, limits and digest prefixes; `set-budget` changes a budget; `revoke`
//! removes an entry. The file is edited in place (comments and order kept,
//! through `toml_edit`), checked to parse as a gateway config, and replaced through a
//! rename; the gateway applies it on reload (`POST /admin/reload` or SIGHUP). With
//! `--ledger postgres://…` the same commands manage the keys stored in the database
//! (`keys_db`), which every replica reads within a second.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use gateway::keys::{generate, KEY_PREFIX};
use serde::Serialize;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use crate::commands::{input_failure, read_input_file};
use crate::output;

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

/// Where the keys are: a config file's `[[client_key]]` entries, or a PostgreSQL ledger.
#[derive(Args, Debug)]
struct Target {
    /// The gateway config whose [[client_key]] entries to edit; with --ledger, the
    /// config whose routes a new key is checked against.
    #[arg(long, value_name = "FILE", required_unless_present = "ledger")]
    config: Option<PathBuf>,
    /// Manage the keys stored in this PostgreSQL ledger (postgres:// URL) instead:
    /// every replica on it takes a change within a second, without a reload.
    #[arg(
        long,
        value_name = "URL",
        env = "COSTFLOOR_LEDGER",
        hide_env_values = true
    )]
    ledger: Option<String>,
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Make a key: printed once on stdout, its SHA-256 stored.
    Create {
        #[command(flatten)]
        target: Target,
        /// The key's name, as the ledger records it.
        #[arg(long)]
        name: String,
        /// Routes the key may use (repeatable; default: any).
        #[arg(long = "route", value_name = "NAME")]
        routes: Vec<String>,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// Set or change a key's monthly budget (and what it counts).
    SetBudget {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        name: String,
        /// USD per calendar month (UTC); 0 refuses every request.
        #[arg(long, value_name = "USD", allow_negative_numbers = true)]
        monthly_budget_usd: f64,
        /// What it counts: actual (default) or counterfactual cost.
        #[arg(long, value_name = "ON")]
        budget_on: Option<String>,
    },
    /// The keys: name, how each is stored, digest prefix, routes, limits (and, in a
    /// ledger, this month's spend).
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key from the config, or revoke it in the ledger.
    Revoke {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Debug, Default)]
pub(crate) struct LimitFlags {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub(crate) rpm: Option<u32>,
    /// Tokens (input and output) per minute.
    #[arg(long, value_name = "N")]
    pub(crate) tpm: Option<u64>,
    /// USD per calendar month (UTC).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub(crate) monthly_budget_usd: Option<f64>,
    /// What the budget counts: actual (default) or counterfactual cost.
    #[arg(long, value_name = "ON")]
    pub(crate) budget_on: Option<String>,
}

impl LimitFlags {
    /// `--monthly-budget-usd`, checked: a finite number of USD, 0 or more.
    pub(crate) fn budget(&self) -> Result<Option<costfloor_core::money::Money>> {
        match self.monthly_budget_usd {
            Some(usd) if !(usd.is_finite() && usd >= 0.0) => Err(input_failure(format!(
                "--monthly-budget-usd = {usd} is not allowed: a number of USD, 0 or more"
            ))),
            other => Ok(other.map(costfloor_core::money::Money::from_usd_f64)),
        }
    }

    /// `--budget-on`, checked: actual or counterfactual.
    pub(crate) fn budget_on(&self) -> Result<Option<gateway::limits::BudgetOn>> {
        use gateway::limits::BudgetOn;
        match self.budget_on.as_deref() {
            None => Ok(None),
            Some("actual") => Ok(Some(BudgetOn::Actual)),
            Some("counterfactual") => Ok(Some(BudgetOn::Counterfactual)),
            Some(other) => Err(input_failure(format!(
                "--budget-on = {other} is not allowed: actual or counterfactual"
            ))),
        }
    }

    /// Writes the limits into `table`, checking each.
    fn apply(&self, table: &mut Table) -> Result<()> {
        for (flag, value) in [("--rpm", self.rpm.map(u64::from)), ("--tpm", self.tpm)] {
            if value == Some(0) {
                return Err(input_failure(format!(
                    "{flag} = 0 is not allowed: at least 1 (leave it out for no limit)"
                )));
            }
        }
        if let Some(rpm) = self.rpm {
            table.insert("rpm", value(i64::from(rpm)));
        }
        if let Some(tpm) = self.tpm {
            table.insert("tpm", value(tpm as i64));
        }
        if self.budget()?.is_some() {
            if let Some(budget) = self.monthly_budget_usd {
                table.insert("monthly_budget_usd", value(budget));
            }
        }
        if let Some(on) = &self.budget_on {
            self.budget_on()?;
            if self.monthly_budget_usd.is_none() && !table.contains_key("monthly_budget_usd") {
                return Err(input_failure("--budget-on needs --monthly-budget-usd"));
            }
            table.insert("budget_on", value(on.as_str()));
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Listed {
    name: String,
    /// `sha256`, `secret_env VAR` or `secret_file PATH`.
    stored_as: String,
    /// The first 12 hex digits of the stored digest (`sha256` entries only).
    sha256_prefix: Option<String>,
    routes: Vec<String>,
    rpm: Option<i64>,
    tpm: Option<i64>,
    monthly_budget_usd: Option<f64>,
    budget_on: Option<String>,
}

pub fn run(args: KeysArgs) -> Result<()> {
    match args.action {
        KeysAction::Create {
            target,
            name,
            routes,
            limits,
        } => match (&target.ledger, &target.config) {
            (Some(url), config) => {
                crate::keys_db::create(url, config.as_deref(), &name, &routes, &limits)
            }
            (None, Some(config)) => create(config, &name, &routes, &limits),
            (None, None) => Err(no_target()),
        },
        KeysAction::SetBudget {
            target,
            name,
            monthly_budget_usd,
            budget_on,
        } => {
            let limits = LimitFlags {
                monthly_budget_usd: Some(monthly_budget_usd),
                budget_on,
                ..LimitFlags::default()
            };
            match (&target.ledger, &target.config) {
                (Some(url), _) => crate::keys_db::set_budget(url, &name, &limits),
                (None, Some(config)) => set_budget(config, &name, &limits),
                (None, None) => Err(no_target()),
            }
        }
        KeysAction::List { target, json } => match (&target.ledger, &target.config) {
            (Some(url), _) => crate::keys_db::list(url, json),
            (None, Some(config)) => list(config, json),
            (None, None) => Err(no_target()),
        },
        KeysAction::Revoke { target, name } => match (&target.ledger, &target.config) {
            (Some(url), _) => crate::keys_db::revoke(url, &name),
            (None, Some(config)) => revoke(config, &name),
            (None, None) => Err(no_target()),
        },
    }
}

fn no_target() -> anyhow::Error {
    input_failure("--config FILE or --ledger URL: one is needed to find the keys")
}

fn load(path: &Path) -> Result<DocumentMut> {
    let text = read_input_file(path)?;
    gateway::config::ConfigFile::parse(&path.display().to_string(), &text)
        .map_err(input_failure)?;
    text.parse::<DocumentMut>()
        .map_err(|err| input_failure(format!("{}: {err}", path.display())))
}

fn entries(document: &DocumentMut) -> Vec<&Table> {
    document
        .get("client_key")
        .and_then(Item::as_array_of_tables)
        .map(|tables| tables.iter().collect())
        .unwrap_or_default()
}

fn name_of(table: &Table) -> Option<&str> {
    table.get("name").and_then(Item::as_str)
}

/// Checks the edited text parses as a gateway config, then replaces the file.
fn save(path: &Path, document: &DocumentMut) -> Result<()> {
    let text = document.to_string();
    gateway::config::ConfigFile::parse(&path.display().to_string(), &text)
        .map_err(input_failure)?;
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, &text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn create(path: &Path, name: &str, routes: &[String], limits: &LimitFlags) -> Result<()> {
    if name.trim().is_empty() {
        return Err(input_failure("--name must not be empty"));
    }
    let mut document = load(path)?;
    if entries(&document).iter().any(|t| name_of(t) == Some(name)) {
        return Err(input_failure(format!(
            "{}: client_key `{name}` already exists; revoke it first to replace it",
            path.display()
        )));
    }
    let route_names: Vec<String> = document
        .get("route")
        .and_then(Item::as_array_of_tables)
        .map(|tables| {
            tables
                .iter()
                .filter_map(|t| name_of(t).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for route in routes {
        if !route_names.contains(route) {
            return Err(input_failure(format!(
                "--route {route}: not a route in {}; routes: {}",
                path.display(),
                route_names.join(", ")
            )));
        }
    }
    let (key, sha256) = generate().map_err(anyhow::Error::msg)?;
    let mut table = Table::new();
    table.insert("name", value(name));
    table.insert("sha256", value(sha256));
    if !routes.is_empty() {
        let mut list = Array::new();
        for route in routes {
            list.push(route.as_str());
        }
        table.insert("routes", value(list));
    }
    limits.apply(&mut table)?;
    match document.get_mut("client_key") {
        Some(Item::ArrayOfTables(tables)) => tables.push(table),
        Some(_) => {
            return Err(input_failure(format!(
                "{}: client_key must be an array of tables ([[client_key]])",
                path.display()
            )))
        }
        None => {
            let mut tables = ArrayOfTables::new();
            tables.push(table);
            document.insert("client_key", Item::ArrayOfTables(tables));
        }
    }
    save(path, &document)?;
    eprintln!(
        "client_key `{name}` added to {}, stored as its SHA-256. The key is shown once, below; \
         the gateway takes it on reload (POST /admin/reload or SIGHUP).",
        path.display()
    );
    output::print_line(&key)
}

fn list(path: &Path, json: bool) -> Result<()> {
    let document = load(path)?;
    let listed: Vec<Listed> = entries(&document)
        .into_iter()
        .map(|t| {
            let text = |field: &str| t.get(field).and_then(Item::as_str).map(str::to_string);
            let stored_as = match (text("sha256"), text("secret_env"), text("secret_file")) {
                (Some(_), _, _) => "sha256".to_string(),
                (_, Some(var), _) => format!("secret_env {var}"),
                (_, _, Some(file)) => format!("secret_file {file}"),
                _ => "(nothing)".to_string(),
            };
            Listed {
                name: text("name").unwrap_or_default(),
                stored_as,
                sha256_prefix: text("sha256").map(|h| h.chars().take(12).collect()),
                routes: t
                    .get("routes")
                    .and_then(Item::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                rpm: t.get("rpm").and_then(Item::as_integer),
                tpm: t.get("tpm").and_then(Item::as_integer),
                monthly_budget_usd: t
                    .get("monthly_budget_usd")
                    .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))),
                budget_on: text("budget_on"),
            }
        })
        .collect();
    if json {
        return output::print_json(&listed);
    }
    if listed.is_empty() {
        return output::print_line(&format!(
            "{}: no [[client_key]]: the gateway serves every client that reaches it",
            path.display()
        ));
    }
    let mut lines = Vec::with_capacity(listed.len());
    for key in &listed {
        let routes = if key.routes.is_empty() {
            "any route".to_string()
        } else {
            key.routes.join(", ")
        };
        let digest = key
            .sha256_prefix
            .as_ref()
            .map_or(String::new(), |p| format!(" {p}…"));
        let mut limits = Vec::new();
        if let Some(rpm) = key.rpm {
            limits.push(format!("{rpm} requests/min"));
        }
        if let Some(tpm) = key.tpm {
            limits.push(format!("{tpm} tokens/min"));
        }
        if let Some(budget) = key.monthly_budget_usd {
            let on = key.budget_on.as_deref().unwrap_or("actual");
            limits.push(format!("${budget}/month ({on} cost)"));
        }
        let limits = if limits.is_empty() {
            "no limits".to_string()
        } else {
            limits.join(", ")
        };
        lines.push(format!(
            "{}  {}{digest}  {routes}  {limits}",
            key.name, key.stored_as
        ));
    }
    output::print_line(&lines.join("\n"))
}

fn set_budget(path: &Path, name: &str, limits: &LimitFlags) -> Result<()> {
    let mut document = load(path)?;
    let Some(Item::ArrayOfTables(tables)) = document.get_mut("client_key") else {
        return Err(input_failure(format!(
            "{}: no client_key `{name}` (the config has no [[client_key]])",
            path.display()
        )));
    };
    let Some(table) = tables.iter_mut().find(|t| name_of(t) == Some(name)) else {
        return Err(input_failure(format!(
            "{}: no client_key `{name}`",
            path.display()
        )));
    };
    limits.apply(table)?;
    save(path, &document)?;
    output::print_line(&format!(
        "client_key `{name}`: monthly budget ${}; the gateway applies it on reload (POST /admin/reload or SIGHUP)",
        limits.monthly_budget_usd.unwrap_or_default()
    ))
}

fn revoke(path: &Path, name: &str) -> Result<()> {
    let mut document = load(path)?;
    let Some(Item::ArrayOfTables(tables)) = document.get_mut("client_key") else {
        return Err(input_failure(format!(
            "{}: no client_key `{name}` (the config has no [[client_key]])",
            path.display()
        )));
    };
    let before = tables.len();
    tables.retain(|t| name_of(t) != Some(name));
    if tables.len() == before {
        return Err(input_failure(format!(
            "{}: no client_key `{name}`",
            path.display()
        )));
    }
    if tables.is_empty() {
        document.remove("client_key");
        eprintln!(
            "the last client_key is gone: after the reload the gateway serves every client that reaches it"
        );
    }
    save(path, &document)?;
    output::print_line(&format!(
        "client_key `{name}` removed from {}; it stops working when the gateway reloads (POST /admin/reload or SIGHUP). Keys made here start with {KEY_PREFIX}.",
        path.display()
    ))
}
