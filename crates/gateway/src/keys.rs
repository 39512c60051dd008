//! Client keys: the `[[client_key]]` entries of the config, each a name, the SHA-256 of
//! the key and the routes it may use; and new keys for `costfloor keys create`.
//!
//! A key is kept only as its digest: `sha256` in the config (what `costfloor keys
//! create` writes), or hashed at load from `secret_env` / `secret_file`. It must not
//! keep, log or echo a key in clear.

use std::collections::HashSet;
use std::path::PathBuf;

use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// What every generated key starts with, so that it is recognisable in a secret scan.
pub const KEY_PREFIX: &str = "cfk_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKeyFile {
    pub name: String,
    /// Hex SHA-256 of the key (`costfloor keys create` writes it).
    pub sha256: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Routes this key may use; empty: any route (and any backend by name).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (input and output) per minute.
    pub tpm: Option<u64>,
    /// USD per calendar month (UTC).
    pub monthly_budget_usd: Option<costfloor_core::money::Money>,
    /// What the budget counts: `actual` (default) or `counterfactual` cost.
    pub budget_on: Option<crate::limits::BudgetOn>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub routes: Vec<String>,
    pub limits: crate::limits::KeyLimits,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("name", &self.name)
            .field("sha256", &format_args!("{}…", &to_hex(&self.sha256)[..8]))
            .field("routes", &self.routes)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ClientKey {
    /// Whether this key may use the route named `route`.
    pub fn allows(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route)
    }
}

/// The SHA-256 of a presented key.
pub fn key_digest(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
    out
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new key (32 random bytes from the system's generator, base64url, with
/// [`KEY_PREFIX`]) and its hex SHA-256.
pub fn generate() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system's random generator failed".to_string())?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = to_hex(&key_digest(&key));
    Ok((key, hash))
}

/// Checks every entry and keeps only digests. `read_secret` reads `secret_env` /
/// `secret_file`; `routes` are the configured route names a key may list.
pub fn resolve(
    files: &[ClientKeyFile],
    routes: &HashSet<&str>,
    read_secret: impl Fn(&str, &Option<String>, &Option<PathBuf>) -> Result<Secret, ConfigError>,
) -> Result<Vec<ClientKey>, ConfigError> {
    let err = ConfigError;
    let mut keys = Vec::with_capacity(files.len());
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    for file in files {
        let what = format!("client_key `{}`", file.name);
        if !names.insert(file.name.as_str()) {
            return Err(err(format!("client_key `{}` is defined twice", file.name)));
        }
        let sha256 = match (&file.sha256, &file.secret_env, &file.secret_file) {
            (Some(hex), None, None) => from_hex(hex).ok_or_else(|| {
                err(format!(
                    "{what}: sha256 = {:?} is not allowed: expected 64 hex digits, the SHA-256 of the key (`costfloor keys create` writes it)",
                    hex.chars().take(80).collect::<String>()
                ))
            })?,
            (None, env, path) if env.is_some() != path.is_some() => {
                key_digest(read_secret(&what, env, path)?.expose())
            }
            _ => {
                return Err(err(format!(
                    "{what}: set exactly one of sha256, secret_env or secret_file"
                )))
            }
        };
        if !digests.insert(sha256) {
            return Err(err(format!(
                "{what}: the same key as another client_key; each client needs its own"
            )));
        }
        for route in &file.routes {
            if !routes.contains(route.as_str()) {
                let mut known: Vec<&str> = routes.iter().copied().collect();
                known.sort_unstable();
                return Err(err(format!(
                    "{what}: routes names `{route}`, which is not a configured route; routes: {}",
                    known.join(", ")
                )));
            }
        }
        if file.rpm == Some(0) || file.tpm == Some(0) {
            return Err(err(format!(
                "{what}: rpm and tpm must be at least 1 (leave them out for no limit)"
            )));
        }
        if file
            .monthly_budget_usd
            .is_some_and(|b| b < costfloor_core::money::Money::ZERO)
        {
            return Err(err(format!("{what}: monthly_budget_usd must be 0 or more")));
        }
        if file.budget_on.is_some() && file.monthly_budget_usd.is_none() {
            return Err(err(format!("{what}: budget_on needs monthly_budget_usd")));
        }
        keys.push(ClientKey {
            name: file.name.clone(),
            sha256,
            routes: file.routes.clone(),
            limits: crate::limits::KeyLimits {
                rpm: file.rpm,
                tpm: file.tpm,
                monthly_budget: file.monthly_budget_usd,
                budget_on: file.budget_on.unwrap_or_default(),
            },
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_hash_to_what_is_stored() {
        let (a, hash_a) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43,
            "{a}"
        );
        assert_eq!(from_hex(&hash_a), Some(key_digest(&a)));
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            to_hex(&key_digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn entries_are_checked() {
        let routes: HashSet<&str> = ["chat"].into();
        let no_secret = |_: &str,
                         _: &Option<String>,
                         _: &Option<PathBuf>|
         -> Result<Secret, ConfigError> { Ok(Secret("from-env".into())) };
        let file = |name: &str, sha: Option<&str>, route: &str| ClientKeyFile {
            name: name.into(),
            sha256: sha.map(str::to_string),
            secret_env: None,
            secret_file: None,
            routes: if route.is_empty() {
                vec![]
            } else {
                vec![route.into()]
            },
            rpm: None,
            tpm: None,
            monthly_budget_usd: None,
            budget_on: None,
        };
        let hash = to_hex(&key_digest("k"));
        let keys = resolve(&[file("a", Some(&hash), "chat")], &routes, no_secret).unwrap();
        assert!(keys[0].allows("chat") && !keys[0].allows("other"));
        let err = resolve(&[file("a", Some("12ab"), "")], &routes, no_secret)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client_key `a`") && err.contains("64 hex digits"),
            "{err}"
        );
        let err = resolve(&[file("a", Some(&hash), "nope")], &routes, no_secret)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`nope`") && err.contains("routes: chat"),
            "{err}"
        );
        let err = resolve(&[file("a", None, "")], &routes, no_secret)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one of sha256"), "{err}");
        let err = resolve(
            &[file("a", Some(&hash), ""), file("b", Some(&hash), "")],
            &routes,
            no_secret,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("client_key `b`") && err.contains("same key"),
            "{err}"
        );
        // Debug shows a prefix of the digest, never more.
        let shown = format!("{:?}", keys[0]);
        assert!(
            shown.contains(&hash[..8]) && !shown.contains(&hash[8..16]),
            "{shown}"
        );
    }
}
