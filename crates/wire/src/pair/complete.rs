//! A whole (non-streamed) upstream response: checked to be a response of the backend's
//! protocol, its usage read (or estimated where the server reported none), and
//! converted to the client's format.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{ClientFormat, FormatPair};
use crate::json::to_vec;
use crate::usage::TokenUsage;
use crate::{anthropic, openai, translate};

/// A whole response, already in the client's format, with its usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    pub body: Bytes,
    pub usage: TokenUsage,
    /// True when the backend reported no usage and it was estimated.
    pub estimated: bool,
}

/// An upstream body that is not a response of the backend's protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("returned a body that is not a valid {protocol} response (starts with {head:?})")]
pub struct InvalidResponse {
    pub protocol: &'static str,
    /// The first 60 bytes of the body, lossily decoded.
    pub head: String,
}

pub(super) fn read_complete(
    pair: FormatPair,
    body: Bytes,
    input_estimate: u64,
) -> Result<Completed, InvalidResponse> {
    let invalid = || InvalidResponse {
        protocol: pair.backend.name(),
        head: String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned(),
    };
    match (pair.client, pair.backend.speaks_anthropic()) {
        (ClientFormat::OpenAi, false) => {
            #[derive(Deserialize)]
            struct Peek {
                usage: Option<openai::Usage>,
                #[serde(default)]
                choices: Option<Vec<IgnoredAny>>,
            }
            let peek: Peek = serde_json::from_slice(&body).map_err(|_| invalid())?;
            if peek.choices.is_none() {
                return Err(invalid());
            }
            let (usage, estimated) = match peek.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (estimate_from_openai_body(&body, input_estimate), true),
            };
            Ok(Completed {
                body,
                usage,
                estimated,
            })
        }
        (ClientFormat::Anthropic, true) => {
            #[derive(Deserialize)]
            struct Peek {
                usage: Option<anthropic::Usage>,
                content: Option<IgnoredAny>,
            }
            let peek: Peek = serde_json::from_slice(&body).map_err(|_| invalid())?;
            if peek.content.is_none() {
                return Err(invalid());
            }
            let (usage, estimated) = match peek.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (
                    TokenUsage {
                        input_tokens: input_estimate,
                        ..TokenUsage::default()
                    },
                    true,
                ),
            };
            Ok(Completed {
                body,
                usage,
                estimated,
            })
        }
        (ClientFormat::OpenAi, true) => {
            let upstream: anthropic::MessagesResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let translated = translate::anthropic_to_openai_response(&upstream, &upstream.model);
            Ok(Completed {
                body: Bytes::from(to_vec(&translated)),
                usage: upstream.usage.to_token_usage(),
                estimated: false,
            })
        }
        (ClientFormat::Anthropic, false) => {
            let upstream: openai::ChatResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let (usage, estimated) = match &upstream.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (estimate_from_openai_body(&body, input_estimate), true),
            };
            let translated = translate::openai_to_anthropic_response(&upstream, &upstream.model);
            Ok(Completed {
                body: Bytes::from(to_vec(&translated)),
                usage,
                estimated,
            })
        }
    }
}

/// Usage for an OpenAI response without any: the input estimate, and the output
/// estimated from the first choice's text.
fn estimate_from_openai_body(body: &[u8], input_estimate: u64) -> TokenUsage {
    let text = serde_json::from_slice::<openai::ChatResponse>(body)
        .ok()
        .and_then(|r| r.choices.into_iter().next())
        .and_then(|c| c.message.content)
        .unwrap_or_default();
    TokenUsage {
        input_tokens: input_estimate,
        output_tokens: translate::estimate_tokens(&text),
        ..TokenUsage::default()
    }
}
