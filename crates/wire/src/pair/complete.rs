//! A whole (non-streamed) upstream response: checked to be a response of the backend's
//! protocol, its usage read (or estimated where the server reported none), and
//! converted to the client's format.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{ClientFormat, FormatPair};
use crate::json::to_vec;
use crate::usage::TokenUsage;
use crate::{anthropic, openai, responses, translate};

/// A whole response, already in the client's format, with its usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    pub body: Bytes,
    pub usage: TokenUsage,
    /// True when the backend reported no usage and it was estimated.
    pub estimated: bool,
    /// Tool calls whose arguments were not a JSON object, passed on as they were
    /// (translated responses only; a pass-through body is not parsed that deep).
    pub invalid_tool_arguments: u64,
}

impl Completed {
    /// The answer's text in `client`'s format (the body is already in it): the first
    /// choice's content, or the text blocks joined. `None` when there is no text (a
    /// pure tool-call answer) or the body does not parse.
    pub fn text(&self, client: ClientFormat) -> Option<String> {
        match client {
            ClientFormat::OpenAi => {
                serde_json::from_slice::<openai::ChatResponse>(&self.body)
                    .ok()?
                    .choices
                    .into_iter()
                    .next()?
                    .message
                    .content
            }
            ClientFormat::Responses => responses::output_text(&self.body),
            ClientFormat::Anthropic => {
                let response: anthropic::MessagesResponse =
                    serde_json::from_slice(&self.body).ok()?;
                let mut text = String::new();
                let mut any = false;
                for block in &response.content {
                    if let anthropic::ContentBlock::Text { text: part, .. } = block {
                        text.push_str(part);
                        any = true;
                    }
                }
                any.then_some(text)
            }
        }
    }
}

/// An upstream body that is not a response of the backend's protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("returned a body that is not a valid {protocol} response (starts with {head:?})")]
pub struct InvalidResponse {
    pub protocol: &'static str,
    /// The first 60 bytes of the body, lossily decoded.
    pub head: String,
}

/// What a response must hold to be one: OpenAI's `choices`, Anthropic's `content`
/// (an error body sent with a 2xx status has neither), with the usage if reported.
#[derive(Deserialize)]
struct OpenAiPeek {
    usage: Option<openai::Usage>,
    choices: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct AnthropicPeek {
    usage: Option<anthropic::Usage>,
    content: Option<IgnoredAny>,
}

pub(super) fn read_complete(
    pair: FormatPair,
    body: Bytes,
    input_estimate: u64,
    echo: Option<&responses::Echo>,
) -> Result<Completed, InvalidResponse> {
    let invalid = || InvalidResponse {
        protocol: pair.backend.name(),
        head: String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned(),
    };
    if pair.backend.speaks_responses() {
        let usage = responses::peek_usage(&body).ok_or_else(invalid)?;
        let body = if pair.client == ClientFormat::Responses {
            body
        } else {
            return Err(invalid());
        };
        return Ok(Completed {
            body,
            usage,
            estimated: false,
            invalid_tool_arguments: 0,
        });
    }
    let (usage, estimated) = if pair.backend.speaks_anthropic() {
        let peek: AnthropicPeek = serde_json::from_slice(&body).map_err(|_| invalid())?;
        if peek.content.is_none() {
            return Err(invalid());
        }
        match peek.usage {
            Some(usage) => (usage.to_token_usage(), false),
            None => (
                TokenUsage {
                    input_tokens: input_estimate,
                    ..TokenUsage::default()
                },
                true,
            ),
        }
    } else {
        let peek: OpenAiPeek = serde_json::from_slice(&body).map_err(|_| invalid())?;
        if peek.choices.is_none() {
            return Err(invalid());
        }
        match peek.usage {
            Some(usage) => (usage.to_token_usage(), false),
            None => (estimate_from_openai_body(&body, input_estimate), true),
        }
    };
    let mut invalid_tool_arguments = 0;
    let body = match (pair.client, pair.backend.speaks_anthropic()) {
        (ClientFormat::OpenAi, false) | (ClientFormat::Anthropic, true) => body,
        (ClientFormat::OpenAi, true) => {
            let upstream: anthropic::MessagesResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let translated = translate::anthropic_to_openai_response(&upstream, &upstream.model);
            Bytes::from(to_vec(&translated))
        }
        (ClientFormat::Anthropic, false) => {
            let upstream: openai::ChatResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let translated = translate::openai_to_anthropic_response(&upstream, &upstream.model);
            invalid_tool_arguments = translated
                .content
                .iter()
                .filter(|block| {
                    matches!(block, anthropic::ContentBlock::ToolUse { input, .. } if !input.is_object())
                })
                .count() as u64;
            Bytes::from(to_vec(&translated))
        }
        (ClientFormat::Responses, from_anthropic) => {
            let chat = if from_anthropic {
                let upstream: anthropic::MessagesResponse =
                    serde_json::from_slice(&body).map_err(|_| invalid())?;
                translate::anthropic_to_openai_response(&upstream, &upstream.model)
            } else {
                serde_json::from_slice::<openai::ChatResponse>(&body).map_err(|_| invalid())?
            };
            let default_echo = responses::Echo::default();
            let echo = echo.unwrap_or(&default_echo);
            Bytes::from(to_vec(&responses::from_chat_response(&chat, &usage, echo)))
        }
    };
    Ok(Completed {
        body,
        usage,
        estimated,
        invalid_tool_arguments,
    })
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
