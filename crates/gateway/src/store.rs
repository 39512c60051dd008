//! Where the gateway keeps its records: the ledger's location (a SQLite file or a
//! PostgreSQL URL, from `server.ledger` or `server.ledger_env`) and, for PostgreSQL, the
//! spill file rows wait in while the database is away.
//!
//! It must not open either: `ledger` does.

use std::path::{Path, PathBuf};

use ledger::Location;

use crate::config::{ConfigError, ServerFile};

/// Where `server` puts the ledger: `ledger` (a file relative to `base_dir`, or a URL),
/// or the URL in the variable `ledger_env` names; `costfloor.db` in the working
/// directory by default.
pub fn ledger_location(
    server: &ServerFile,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Location, ConfigError> {
    let err = ConfigError;
    Ok(match (&server.ledger, &server.ledger_env) {
        (Some(_), Some(_)) => {
            return Err(err("server: set at most one of ledger or ledger_env".into()));
        }
        (None, Some(var)) => {
            let text = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                err(format!(
                    "server.ledger_env: environment variable {var} is not set"
                ))
            })?;
            Location::parse(&text).map_err(|e| err(format!("server.ledger_env ({var}): {e}")))?
        }
        (Some(text), None) => {
            match Location::parse(text).map_err(|e| err(format!("server.ledger: {e}")))? {
                Location::Sqlite(path) => Location::Sqlite(base_dir.join(path)),
                url => url,
            }
        }
        (None, None) => Location::Sqlite(PathBuf::from(ledger::DEFAULT_FILE_NAME)),
    })
}

/// The spill file: `server.ledger_spill`, or one named for the replica beside the
/// config file (in the working directory without one), so that replicas sharing a
/// folder do not share a file.
pub fn spill_path(configured: Option<&Path>, config_path: Option<&Path>, replica: &str) -> PathBuf {
    if let Some(path) = configured {
        return path.to_owned();
    }
    let base = config_path.and_then(Path::parent).unwrap_or(Path::new(""));
    let safe: String = replica
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(format!("costfloor-ledger-spill-{safe}.jsonl"))
}
