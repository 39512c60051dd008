//! Translation between the OpenAI and Anthropic formats: requests, responses, streams, plus token estimates.
//!
//! Only what has the same meaning on both sides is translated: text
//! conversations, sampling parameters, stop sequences, streaming and usage, tool
//! use ([`tools`]: definitions, `tool_choice`, calls and results, streamed too),
//! images and PDFs ([`media`]). Structured output, several choices, server tools,
//! uploaded-file references and the like are refused with [`Unsupported`], naming
//! the field, rather than silently sent without it.

pub mod media;
mod request;
mod response;
mod stream;
pub mod tools;

use std::fmt;

pub use request::{anthropic_to_openai_request, openai_to_anthropic_request};
pub use response::{
    anthropic_stop_to_openai_finish, anthropic_to_openai_response, openai_finish_to_anthropic_stop,
    openai_to_anthropic_response,
};
pub use stream::{
    AnthropicStreamUsage, AnthropicToOpenAiStream, OpenAiStreamUsage, OpenAiToAnthropicStream,
};

use crate::{anthropic, openai};

/// A request that cannot be translated without changing its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// What cannot be translated, naming the field, e.g.
    /// ``messages[1].content[0]: `image_url` parts have no equivalent here``.
    pub what: String,
}

impl Unsupported {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "this request cannot be translated for the selected backend: {}",
            self.what
        )
    }
}

impl std::error::Error for Unsupported {}

/// `text` cut to `limit` characters with an ellipsis, for error messages.
pub(crate) fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(limit).collect();
    short.push('…');
    short
}

/// A rough token count for routing by input length: one token per four
/// characters (Unicode scalar values), rounded up. This is the usual rule of
/// thumb for English text with GPT- and Claude-family tokenizers; it
/// undercounts code and non-Latin scripts, and must never be billed.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// [`estimate_tokens`] over the text of every message of an OpenAI request.
/// Non-text parts (images, audio) are not counted.
pub fn estimate_openai_input_tokens(request: &openai::ChatRequest) -> u64 {
    request
        .messages
        .iter()
        .filter_map(|message| message.content.as_ref())
        .map(|content| match content {
            openai::MessageContent::Text(text) => estimate_tokens(text),
            openai::MessageContent::Parts(parts) => parts
                .iter()
                .map(|part| match part {
                    openai::ContentPart::Text { text, .. } => estimate_tokens(text),
                    openai::ContentPart::Other(_) => 0,
                })
                .sum(),
        })
        .sum()
}

/// [`estimate_tokens`] over the system prompt and the text blocks of every
/// message of an Anthropic request. Other blocks are not counted.
pub fn estimate_anthropic_input_tokens(request: &anthropic::MessagesRequest) -> u64 {
    fn blocks_tokens(blocks: &[anthropic::ContentBlock]) -> u64 {
        blocks
            .iter()
            .map(|block| match block {
                anthropic::ContentBlock::Text { text, .. } => estimate_tokens(text),
                _ => 0,
            })
            .sum()
    }
    let system = match &request.system {
        Some(anthropic::SystemPrompt::Text(text)) => estimate_tokens(text),
        Some(anthropic::SystemPrompt::Blocks(blocks)) => blocks_tokens(blocks),
        None => 0,
    };
    let messages: u64 = request
        .messages
        .iter()
        .map(|message| match &message.content {
            anthropic::MessageContent::Text(text) => estimate_tokens(text),
            anthropic::MessageContent::Blocks(blocks) => blocks_tokens(blocks),
        })
        .sum();
    system + messages
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn estimate_is_ceil_of_chars_over_four() {
        for (text, tokens) in [
            ("", 0),
            ("a", 1),
            ("abcd", 1),
            ("abcde", 2),
            ("日本語の文", 2),
        ] {
            assert_eq!(estimate_tokens(text), tokens, "{text:?}");
        }
    }

    #[test]
    fn request_estimates_count_text_only() {
        let openai: openai::ChatRequest = serde_json::from_value(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "12345678"},
                {"role": "user", "content": [
                    {"type": "text", "text": "1234"},
                    {"type": "image_url", "image_url": {"url": "data:..."}}
                ]},
                {"role": "assistant", "content": null}
            ]
        }))
        .unwrap();
        assert_eq!(estimate_openai_input_tokens(&openai), 3);

        let anthropic: anthropic::MessagesRequest = serde_json::from_value(json!({
            "model": "m",
            "system": [{"type": "text", "text": "12345678"}],
            "messages": [
                {"role": "user", "content": "1234"},
                {"role": "user", "content": [{"type": "text", "text": "12345"}, {"type": "image", "source": {}}]}
            ]
        }))
        .unwrap();
        assert_eq!(estimate_anthropic_input_tokens(&anthropic), 5);
    }

    #[test]
    fn unsupported_message_names_the_field() {
        let error = Unsupported::new("`n` = 2: only one choice can be generated");
        assert_eq!(
            error.to_string(),
            "this request cannot be translated for the selected backend: `n` = 2: only one choice can be generated"
        );
    }
}
