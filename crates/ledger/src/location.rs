//! Where a ledger lives: a SQLite file, or a PostgreSQL database named by URL.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{LedgerError, Result};

/// A ledger store: a SQLite file path, or a `postgres://` (or `postgresql://`) URL.
///
/// Parsed from the text a user gives (`server.ledger`, `--ledger`, `--db`): text that
/// starts with `postgres://` or `postgresql://` is a database URL, anything else a path.
/// [`fmt::Display`] hides a URL's password, so a location can go in logs and errors.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (libpq's URL form: user, password, host, port,
    /// database and parameters such as `connect_timeout`).
    Postgres(String),
}

impl Location {
    /// Reads `text` as a location. A URL is checked here, so a mistyped one fails at
    /// start-up with the reason rather than at the first write.
    pub fn parse(text: &str) -> Result<Location> {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            text.parse::<tokio_postgres::Config>()
                .map_err(|e| LedgerError::Location {
                    location: redact(text),
                    detail: format!(
                        "not a PostgreSQL URL ({e}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                    ),
                })?;
            return Ok(Location::Postgres(text.to_owned()));
        }
        if text.contains("://") {
            return Err(LedgerError::Location {
                location: redact(text),
                detail: "only postgres:// and postgresql:// URLs are ledgers; anything else is read as a SQLite file path".into(),
            });
        }
        if text.is_empty() {
            return Err(LedgerError::Location {
                location: String::new(),
                detail: "empty; give a SQLite file path or a postgres:// URL".into(),
            });
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Location::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Sqlite(path.clone())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Sqlite(path)
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

/// `text` with the password of a URL (`user:password@`) and any `password=` parameter
/// replaced by `***`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart_and_passwords_hidden() {
        let url = "postgres://cf:s3cret@db.internal:5432/costfloor";
        let loc = Location::parse(url).unwrap();
        assert!(loc.is_postgres());
        assert_eq!(
            loc.to_string(),
            "postgres://cf:***@db.internal:5432/costfloor"
        );
        assert!(!format!("{loc:?}").contains("s3cret"));
        let loc = Location::parse("postgresql://cf@h/db?password=s3cret&sslmode=disable").unwrap();
        assert_eq!(
            loc.to_string(),
            "postgresql://cf@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            Location::parse("data/costfloor.db").unwrap().sqlite_path(),
            Some(Path::new("data/costfloor.db"))
        );
        let err = Location::parse("mysql://u:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://") && !err.contains("pw@"), "{err}");
        let err = Location::parse("postgres://u:pw@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a PostgreSQL URL") && !err.contains("pw@"),
            "{err}"
        );
    }
}
