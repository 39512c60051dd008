//! `costfloor keys`: client keys in the gateway config. `create` makes a key, prints it
//! once and stores only its SHA-256; `list` shows names, routes and digest prefixes;
//! `revoke` removes an entry. The file is edited in place (comments and order kept,
//! through `toml_edit`), checked to parse as a gateway config, and replaced through a
//! rename; the gateway applies it on reload (`POST /admin/reload` or SIGHUP).

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

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Make a key: printed once on stdout, its SHA-256 stored in the config.
    Create {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The key's name, as the ledger records it.
        #[arg(long)]
        name: String,
        /// Routes the key may use (repeatable; default: any).
        #[arg(long = "route", value_name = "NAME")]
        routes: Vec<String>,
    },
    /// The configured keys: name, how each is stored, digest prefix, routes.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key from the config.
    Revoke {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}

#[derive(Serialize)]
struct Listed {
    name: String,
    /// `sha256`, `secret_env VAR` or `secret_file PATH`.
    stored_as: String,
    /// The first 12 hex digits of the stored digest (`sha256` entries only).
    sha256_prefix: Option<String>,
    routes: Vec<String>,
}

pub fn run(args: KeysArgs) -> Result<()> {
    match args.action {
        KeysAction::Create {
            config,
            name,
            routes,
        } => create(&config, &name, &routes),
        KeysAction::List { config, json } => list(&config, json),
        KeysAction::Revoke { config, name } => revoke(&config, &name),
    }
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

fn create(path: &Path, name: &str, routes: &[String]) -> Result<()> {
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
        lines.push(format!("{}  {}{digest}  {routes}", key.name, key.stored_as));
    }
    output::print_line(&lines.join("\n"))
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
