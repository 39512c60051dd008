//! Small serde helpers shared by the wire modules.

use serde::{Deserialize, Deserializer, Serialize};

/// Serializes a wire value to compact JSON.
///
/// The types in this crate only hold strings, numbers and `serde_json` values
/// with string keys, for which serialization cannot fail; should it ever fail,
/// an empty object is written rather than panicking on the request path.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as the
/// type's default value; some OpenAI-compatible servers send `null` where
/// OpenAI sends `[]` or `0`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Seconds since the Unix epoch, for the `created` field of OpenAI bodies.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
