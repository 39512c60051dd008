//! Key checks: client keys on the generation endpoints and the admin key on
//! `/admin/*`, both in constant time and from either header form
//! (`Authorization: Bearer KEY` or the Anthropic key header).
//!
//! It must not log or echo a presented key.

use axum::http::HeaderMap;
use wire::pair::{presented_key, API_KEY_HEADER};
use wire::ApiErrorKind;

use crate::config::Secret;
use crate::error::ClientError;
use crate::keys::{key_digest, ClientKey};

/// The key a request presented, from either header form.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let api_key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    presented_key(authorization, api_key)
}

/// The client key a request presented, found by its SHA-256 among the config's keys
/// and those stored in the ledger database; `None` when there are none and none was
/// ever stored (`closed` false): the gateway is open.
pub fn authenticate<'k>(
    keys: &'k [ClientKey],
    stored: &'k [ClientKey],
    closed: bool,
    headers: &HeaderMap,
) -> Result<Option<&'k ClientKey>, ClientError> {
    if keys.is_empty() && stored.is_empty() && !closed {
        return Ok(None);
    }
    let Some(presented) = presented(headers) else {
        return Err(ClientError::client(
            ApiErrorKind::Authentication,
            format!("missing API key: send `Authorization: Bearer KEY` or `{API_KEY_HEADER}: KEY`"),
        ));
    };
    let presented = key_digest(presented);
    // Every stored digest is compared, so the time does not say which one matched.
    let mut found = None;
    for key in keys.iter().chain(stored) {
        if constant_time_eq(&key.sha256, &presented) {
            found = Some(key);
        }
    }
    found
        .map(Some)
        .ok_or_else(|| ClientError::client(ApiErrorKind::Authentication, "invalid API key"))
}

/// True when the request presented the admin key.
pub fn is_admin(admin: &Secret, headers: &HeaderMap) -> bool {
    presented(headers)
        .is_some_and(|key| constant_time_eq(admin.expose().as_bytes(), key.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
