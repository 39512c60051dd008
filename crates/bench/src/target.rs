//! The server under test: its URL, the one HTTP client every request shares, the
//! headers of its format, and the checks made before any load (reachable, an API of
//! the right format, the key accepted).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use wire::bench::{self as wire_bench, BenchFormat};

use crate::error::BenchError;

/// An API key and the environment variable it came from (named in errors; the value
/// never is).
#[derive(Clone)]
pub struct ApiKey {
    pub env_var: String,
    pub value: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(${}, redacted)", self.env_var)
    }
}

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may stay silent (between bytes) before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Attempts a pre-load request gets when the server answers a transient refusal.
pub(crate) const TRANSIENT_ATTEMPTS: u32 = 5;

/// Statuses a server gives when busy or briefly failing: worth sending again.
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 529)
}

/// The server under test.
#[derive(Debug)]
pub struct Target {
    /// Scheme, host and port: what the measurement records.
    pub origin: String,
    /// The origin plus any path prefix before `/v1`, without a trailing slash.
    base: String,
    pub format: BenchFormat,
    pub model: String,
    client: reqwest::Client,
    headers: HeaderMap,
    key: Option<ApiKey>,
}

impl Target {
    /// Parses `url` (`http://host:port`, optionally ending in `/v1`) and builds the
    /// client: one connection pool with no idle limit, `TCP_NODELAY`, explicit
    /// connect and read timeouts.
    pub fn new(
        url: &str,
        format: BenchFormat,
        model: &str,
        key: Option<ApiKey>,
    ) -> Result<Target, BenchError> {
        let parsed = reqwest::Url::parse(url).map_err(|err| {
            BenchError::Input(format!(
                "--target {url:?} is not a URL ({err}); expected e.g. http://127.0.0.1:8000"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BenchError::Input(format!(
                "--target {url:?}: the scheme must be http or https"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(BenchError::Input(
                "--target must not carry credentials; put the key in an environment variable \
                 and pass --api-key-env VAR"
                    .to_owned(),
            ));
        }
        if parsed.query().is_some() {
            return Err(BenchError::Input(format!(
                "--target {}: a query string is not supported",
                parsed.origin().ascii_serialization()
            )));
        }
        let origin = parsed.origin().ascii_serialization();
        let path = parsed.path().trim_end_matches('/');
        let prefix = path.strip_suffix("/v1").unwrap_or(path);
        let base = format!("{origin}{prefix}");

        let mut headers = HeaderMap::new();
        for header in format.headers(key.as_ref().map(|k| k.value.as_str())) {
            let name = HeaderName::from_static(header.name);
            let mut value = HeaderValue::from_str(&header.value).map_err(|_| {
                BenchError::Input(match &key {
                    Some(key) => format!(
                        "the key in ${} holds characters a header cannot carry",
                        key.env_var
                    ),
                    None => "a header value is not valid".to_owned(),
                })
            })?;
            value.set_sensitive(header.secret);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            // Below the 5 s keep-alive of llama.cpp's server and uvicorn, so that an idle
            // connection is dropped here before the server drops it.
            .pool_idle_timeout(Duration::from_secs(4))
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|err| BenchError::Client(err.to_string()))?;
        Ok(Target {
            origin,
            base,
            format,
            model: model.to_owned(),
            client,
            headers,
            key,
        })
    }

    /// The URL of a path below the base.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST of `body` with the format's headers.
    pub(crate) fn post(&self, url: &str, body: Bytes) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .headers(self.headers.clone())
            .body(body)
    }

    /// `GET /v1/models`: reachable, an API of this format, the key accepted. Returns
    /// the model ids listed. Sends nothing to the generation endpoint.
    pub async fn check(&self) -> Result<Vec<String>, BenchError> {
        let url = self.url(wire_bench::MODELS_PATH);
        let (status, body) = self
            .read(self.client.get(&url).headers(self.headers.clone()))
            .await?;
        if is_auth(status) {
            return Err(self.auth_error(status, &body));
        }
        if !status.is_success() {
            return Err(self.not_an_api(format!(
                "GET {} answered {status} with {}",
                wire_bench::MODELS_PATH,
                describe(&body)
            )));
        }
        wire_bench::read_model_ids(&body).ok_or_else(|| {
            self.not_an_api(format!(
                "GET {} answered {status} with {}, not a model list",
                wire_bench::MODELS_PATH,
                describe(&body)
            ))
        })
    }

    /// One whole (non-streamed) request to the generation endpoint: status and body.
    /// A transient refusal (429, 500, 502, 503, 529, or a body cut off) is sent again, up to
    /// [`TRANSIENT_ATTEMPTS`] times in all, after its `retry-after` (at most 10 s) or a
    /// pause doubling from half a second: a probe that meets a busy server waits for
    /// it rather than failing the run.
    pub(crate) async fn whole(&self, body: Bytes) -> Result<(StatusCode, Bytes), BenchError> {
        let url = self.url(self.format.generation_path());
        let mut pause = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .post(&url, body.clone())
                .send()
                .await
                .map_err(|err| self.unreachable(&err))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(10.0)));
            // A body cut off after the server answered (a reset) is transient too.
            let answer = match response.bytes().await {
                Ok(answer) => answer,
                Err(err) if attempt >= TRANSIENT_ATTEMPTS => return Err(self.unreachable(&err)),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(8));
                    continue;
                }
            };
            if !is_transient(status) || attempt >= TRANSIENT_ATTEMPTS {
                return Ok((status, answer));
            }
            tokio::time::sleep(retry_after.unwrap_or(pause)).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    }

    /// Sends `request` and reads its whole answer; a transport failure is "unreachable".
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Bytes), BenchError> {
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        Ok((status, body))
    }

    /// `POST /tokenize` at the server's root: the answer, or `None` when the server
    /// has no such endpoint or gives no count.
    pub(crate) async fn tokenize(&self, text: &str) -> Option<wire_bench::TokenizeCount> {
        let url = self.url(wire_bench::TOKENIZE_PATH);
        let response = self
            .post(&url, wire_bench::tokenize_body(&self.model, text))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.bytes().await.ok()?;
        wire_bench::read_tokenize(&body)
    }

    pub(crate) fn unreachable(&self, err: &reqwest::Error) -> BenchError {
        BenchError::Unreachable {
            target: self.origin.clone(),
            cause: error_chain(err),
        }
    }

    pub(crate) fn not_an_api(&self, detail: String) -> BenchError {
        BenchError::NotAnApi {
            target: self.origin.clone(),
            format: match self.format {
                BenchFormat::OpenAi => "OpenAI",
                BenchFormat::Anthropic => "Anthropic",
            },
            detail,
        }
    }

    pub(crate) fn auth_error(&self, status: StatusCode, body: &[u8]) -> BenchError {
        let said = wire_bench::error_message(body)
            .map(|message| format!(" (it said: {})", self.scrub(&message)))
            .unwrap_or_default();
        let hint = match &self.key {
            Some(key) => format!(
                "the key in ${} was refused{said}; check that it is the server's key",
                key.env_var
            ),
            None => format!(
                "the server wants an API key{said}; put it in an environment variable and \
                 pass --api-key-env VAR"
            ),
        };
        BenchError::Auth {
            target: self.origin.clone(),
            status: status.as_u16(),
            hint,
        }
    }

    /// `text` with the key's value, if it appears, replaced.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = shorten(text, 300);
        if let Some(key) = &self.key {
            if !key.value.is_empty() {
                out = out.replace(&key.value, "[key]");
            }
        }
        out
    }
}

pub(crate) fn is_auth(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// A body in a few words: "an HTML page", "an empty body", or its start.
pub(crate) fn describe(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let lower = trimmed.get(..15).unwrap_or(trimmed).to_ascii_lowercase();
    if trimmed.is_empty() {
        "an empty body".to_owned()
    } else if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        "an HTML page".to_owned()
    } else {
        format!("{:?}", shorten(trimmed, 120))
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// The error and its causes, joined: "error sending request …: tcp connect error:
/// Connection refused".
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, BenchError> {
        Target::new(url, BenchFormat::OpenAi, "m", None)
    }

    #[test]
    fn urls_keep_a_prefix_and_drop_v1() {
        let t = target("http://127.0.0.1:8000/v1/").unwrap();
        assert_eq!(t.origin, "http://127.0.0.1:8000");
        assert_eq!(t.url("/v1/models"), "http://127.0.0.1:8000/v1/models");
        let t = target("https://example.com/openai/v1").unwrap();
        assert_eq!(t.url("/tokenize"), "https://example.com/openai/tokenize");
    }

    #[test]
    fn bad_urls_are_input_errors() {
        for url in [
            "localhost:8000",
            "ftp://h",
            "http://user:pw@h:1",
            "http://h/?k=v",
        ] {
            let err = target(url).unwrap_err();
            assert!(matches!(err, BenchError::Input(_)), "{url}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn bodies_described() {
        assert_eq!(describe(b"  <!DOCTYPE html><html>"), "an HTML page");
        assert_eq!(describe(b""), "an empty body");
        assert_eq!(describe(b"hello"), "\"hello\"");
    }

    #[test]
    fn keys_never_print() {
        let key = ApiKey {
            env_var: "MY_KEY".into(),
            value: "sk-secret".into(),
        };
        let t = Target::new("http://h:1", BenchFormat::OpenAi, "m", Some(key.clone())).unwrap();
        assert!(!format!("{key:?} {t:?}").contains("sk-secret"));
        let err = t.auth_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"message":"bad key sk-secret"}}"#,
        );
        let text = err.to_string();
        assert!(
            text.contains("$MY_KEY") && !text.contains("sk-secret"),
            "{text}"
        );
    }
}
