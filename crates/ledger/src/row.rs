//! The ledger row: what one gateway request cost and how it went.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// One request through the gateway, as stored in the ledger.
///
/// Money is integer nano-USD, latencies integer microseconds, timestamps Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// Unique request id (UUIDv7 text). Writing a second row with the same id fails for that row
    /// only; it is logged and counted as lost.
    pub request_id: String,
    /// When the gateway received the request.
    pub started_at_unix_ms: i64,
    /// When the gateway finished the response (or gave up).
    pub finished_at_unix_ms: i64,
    /// Name of the client key that authenticated the request — never the secret itself.
    pub client_key: Option<String>,
    /// Gateway route, e.g. `/v1/chat/completions` or `/v1/messages`.
    pub route: String,
    /// Backend that produced the final answer (or the last one tried); empty if none was tried.
    pub backend: String,
    /// The model that served the request: the backend's model once one was chosen,
    /// else the model the client asked for.
    pub model: String,
    /// The model the client asked for (a route alias or a backend model); `None` on
    /// rows written before the ledger recorded it.
    pub requested_model: Option<String>,
    /// Task label, if the client or routing rules supplied one.
    pub task: Option<String>,
    /// Whether the response was streamed.
    pub stream: bool,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Input tokens read from a prompt cache.
    pub cache_read_tokens: i64,
    /// Input tokens written to a prompt cache with the default 5-minute lifetime (on
    /// rows from before schema version 2: writes of both lifetimes).
    pub cache_write_tokens: i64,
    /// Input tokens written to a prompt cache with a 1-hour lifetime.
    pub cache_write_1h_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Time to first token in microseconds; `None` when no token was produced or not streamed.
    pub ttft_us: Option<i64>,
    /// Total request time in microseconds, as seen by the gateway.
    pub total_us: i64,
    /// Time spent in the gateway itself (total minus upstream), in microseconds.
    pub overhead_us: i64,
    /// HTTP status returned to the client.
    pub http_status: u16,
    /// How the request ended.
    pub outcome: Outcome,
    /// Short machine-readable error class, when `outcome` is not [`Outcome::Success`].
    pub error_kind: Option<String>,
    /// Backends tried in order with their status, e.g. `sim-a:529>sim-b:200`.
    pub fallback_chain: String,
    /// What this request cost, in nano-USD.
    pub cost_nusd: i64,
    /// What the reference API would have charged for the same tokens, in nano-USD.
    ///
    /// For requests served by an API backend this is set equal to `cost_nusd` (what the API
    /// charged), so that summing it over all rows gives the "everything on the API" total.
    pub counterfactual_cost_nusd: i64,
    /// Whether the token counts (and therefore costs) are estimates rather than reported by the
    /// backend.
    pub estimated: bool,
    /// Whether the serving backend is self-hosted (cost is amortised hardware, not an invoice).
    pub self_hosted: bool,
    /// The gateway's raw estimate of the input tokens (about four characters a token,
    /// before calibration); `None` on rows from before schema version 4.
    pub input_estimate: Option<i64>,
    /// The gateway process that wrote the row (`server.replica`, else the host name);
    /// `None` on rows from before schema version 6.
    pub replica: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The client got a successful response.
    Success,
    /// Every backend tried failed (or the last one did); the client got an upstream error.
    UpstreamError,
    /// The request was rejected as invalid (auth, validation, unknown model, ...).
    ClientError,
    /// The client went away before the response was complete.
    ClientDisconnect,
}

impl Outcome {
    /// All outcomes, in a stable order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::UpstreamError,
        Outcome::ClientError,
        Outcome::ClientDisconnect,
    ];

    /// The text stored in the ledger: `success`, `upstream_error`, `client_error` or
    /// `client_disconnect`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientError => "client_error",
            Outcome::ClientDisconnect => "client_disconnect",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when parsing text that is not one of the [`Outcome`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

impl ToSql for Outcome {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Outcome {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_text_round_trips() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert!("Success".parse::<Outcome>().is_err());
    }
}
