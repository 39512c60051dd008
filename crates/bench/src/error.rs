//! `BenchError`: why a benchmark could not start or stopped. Every message names the
//! target and says what to check; none carries the API key.

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag or value the user can fix.
    #[error("{0}")]
    Input(String),
    /// Nothing answered at the target.
    #[error("cannot reach {target}: {cause}; is the server running, and is --target right?")]
    Unreachable { target: String, cause: String },
    /// Something answered, but not an OpenAI- or Anthropic-compatible API.
    #[error("{target} does not look like an {format}-compatible API: {detail}")]
    NotAnApi {
        target: String,
        format: &'static str,
        detail: String,
    },
    /// 401 or 403.
    #[error("{target} refused the request with {status}: {hint}")]
    Auth {
        target: String,
        status: u16,
        hint: String,
    },
    /// The API answered the probe request with an error.
    #[error("{target} refused the probe request ({status}): {detail}")]
    Probe {
        target: String,
        status: u16,
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(String),
}

impl BenchError {
    /// Whether the user can fix it (exit code 2): everything found before the load.
    pub fn is_input(&self) -> bool {
        !matches!(self, BenchError::Client(_))
    }
}
