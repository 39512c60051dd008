//! A client request in its own format: parsing, the checks each official API makes,
//! what the gateway reads from it (model, stream, task label, token estimate), and
//! the upstream body for each backend protocol.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{BackendProtocol, ClientFormat, RequestError};
use crate::json::to_vec;
use crate::translate::{media, tools};
use crate::{anthropic, openai, responses, translate};

/// The metadata key that labels a request's task; removed before it goes upstream.
const TASK_KEY: &str = "task";

/// The parts of a chat request built by costfloor itself (an eval sample, a judge).
#[derive(Clone, Debug)]
pub struct ChatParts<'a> {
    pub model: &'a str,
    pub system: Option<&'a str>,
    /// (role, text) in order: `user`, `assistant` (or `system`).
    pub messages: &'a [(String, String)],
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
}

/// A parsed and validated client request.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientRequest {
    OpenAi(openai::ChatRequest),
    Anthropic(anthropic::MessagesRequest),
    /// A Responses request, held as the Chat Completions request it is sent as.
    Responses(Box<responses::ResponsesRequest>),
}

/// What a request holds besides text, or what a backend's model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Media {
    pub images: bool,
    pub documents: bool,
}

impl Media {
    /// Text only.
    pub const NONE: Media = Media {
        images: false,
        documents: false,
    };
    /// Text, images and documents.
    pub const ALL: Media = Media {
        images: true,
        documents: true,
    };

    /// From config names (`text`, `image`, `document`); the first unknown name is the error.
    pub fn from_names(names: &[String]) -> Result<Media, String> {
        let mut media = Media::NONE;
        for name in names {
            match name.as_str() {
                "text" => {}
                "image" => media.images = true,
                "document" => media.documents = true,
                other => return Err(other.to_owned()),
            }
        }
        Ok(media)
    }

    /// What of `self` (a request's media) a backend that takes `takes` cannot take:
    /// "images", "documents", or `None`.
    pub fn missing_in(self, takes: Media) -> Option<&'static str> {
        if self.images && !takes.images {
            Some("images")
        } else if self.documents && !takes.documents {
            Some("documents")
        } else {
            None
        }
    }
}

/// A request as one of the two conversation shapes.
enum View<'a> {
    Chat(&'a openai::ChatRequest),
    Messages(&'a anthropic::MessagesRequest),
}

impl ClientRequest {
    pub(super) fn parse(format: ClientFormat, body: &[u8]) -> Result<ClientRequest, RequestError> {
        let invalid = |e: serde_json::Error| {
            let message = if e.is_syntax() || e.is_eof() {
                format!("invalid JSON body: {e}")
            } else {
                format!("invalid request body: {e}")
            };
            RequestError::invalid(message)
        };
        let request = match format {
            ClientFormat::OpenAi => {
                ClientRequest::OpenAi(serde_json::from_slice(body).map_err(invalid)?)
            }
            ClientFormat::Anthropic => {
                ClientRequest::Anthropic(serde_json::from_slice(body).map_err(invalid)?)
            }
            ClientFormat::Responses => ClientRequest::Responses(Box::new(
                responses::parse_request(body).map_err(RequestError::invalid)?,
            )),
        };
        request.validate()?;
        Ok(request)
    }

    /// The format the request came in.
    pub fn format(&self) -> ClientFormat {
        match self {
            ClientRequest::OpenAi(_) => ClientFormat::OpenAi,
            ClientRequest::Anthropic(_) => ClientFormat::Anthropic,
            ClientRequest::Responses(_) => ClientFormat::Responses,
        }
    }

    fn view(&self) -> View<'_> {
        match self {
            ClientRequest::OpenAi(r) => View::Chat(r),
            ClientRequest::Responses(r) => View::Chat(&r.chat),
            ClientRequest::Anthropic(r) => View::Messages(r),
        }
    }

    /// The images and documents the conversation holds.
    pub fn media(&self) -> Media {
        let mut media = Media::NONE;
        match self.view() {
            View::Chat(r) => {
                for message in &r.messages {
                    if let Some(openai::MessageContent::Parts(parts)) = &message.content {
                        for part in parts {
                            match part.kind() {
                                "image_url" | "input_image" => media.images = true,
                                "file" | "input_file" => media.documents = true,
                                _ => {}
                            }
                        }
                    }
                }
            }
            View::Messages(r) => {
                fn visit(blocks: &[anthropic::ContentBlock], media: &mut Media) {
                    for block in blocks {
                        match block {
                            anthropic::ContentBlock::Image { .. } => media.images = true,
                            anthropic::ContentBlock::Document { .. } => media.documents = true,
                            anthropic::ContentBlock::ToolResult {
                                content: Some(Value::Array(inner)),
                                ..
                            } => {
                                for item in inner {
                                    match item.get("type").and_then(Value::as_str) {
                                        Some("image") => media.images = true,
                                        Some("document") => media.documents = true,
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                for message in &r.messages {
                    if let anthropic::MessageContent::Blocks(blocks) = &message.content {
                        visit(blocks, &mut media);
                    }
                }
            }
        }
        media
    }

    /// What a Responses client's `response` object repeats of its request.
    pub fn responses_echo(&self) -> Option<&responses::Echo> {
        match self {
            ClientRequest::Responses(r) => Some(&r.echo),
            _ => None,
        }
    }

    /// The model the client asked for: a route alias or a backend model name.
    pub fn model(&self) -> &str {
        match self.view() {
            View::Chat(r) => &r.model,
            View::Messages(r) => &r.model,
        }
    }

    /// True when the client asked for a stream.
    pub fn stream(&self) -> bool {
        match self.view() {
            View::Chat(r) => r.is_stream(),
            View::Messages(r) => r.is_stream(),
        }
    }

    /// The output limit the client set, or `default` where it set none.
    pub fn max_output_tokens(&self, default: u32) -> u64 {
        match self.view() {
            View::Chat(r) => u64::from(r.max_completion_tokens.or(r.max_tokens).unwrap_or(default)),
            View::Messages(r) => u64::from(r.max_tokens.unwrap_or(default)),
        }
    }

    /// A rough count of the prompt's tokens, for routing and for usage no backend
    /// reported ([`translate::estimate_tokens`]).
    pub fn estimated_input_tokens(&self) -> u64 {
        match self.view() {
            View::Chat(r) => translate::estimate_openai_input_tokens(r),
            View::Messages(r) => translate::estimate_anthropic_input_tokens(r),
        }
    }

    /// The task label in `metadata.task`, if the client set one.
    pub fn task_label(&self) -> Option<String> {
        let value = match self.view() {
            View::Chat(r) => r.metadata.as_ref().and_then(|m| m.get(TASK_KEY)),
            View::Messages(r) => r.metadata.as_ref().and_then(|m| m.get(TASK_KEY)),
        };
        value.and_then(Value::as_str).map(str::to_string)
    }

    /// True when an OpenAI streaming client asked for the final usage chunk (a
    /// Responses stream always ends with its usage).
    pub fn wants_stream_usage(&self) -> bool {
        match self {
            ClientRequest::OpenAi(r) => r.wants_stream_usage(),
            ClientRequest::Responses(_) => true,
            ClientRequest::Anthropic(_) => false,
        }
    }

    /// A Chat Completions request built from its parts, as an OpenAI client would send
    /// it, and checked like one: what `costfloor eval` sends for a sample and a judge.
    pub fn from_chat(parts: &ChatParts<'_>) -> Result<ClientRequest, RequestError> {
        let mut messages = Vec::with_capacity(parts.messages.len() + 1);
        if let Some(system) = parts.system {
            messages.push(openai::Message::text("system", system));
        }
        for (role, text) in parts.messages {
            messages.push(openai::Message::text(role, text));
        }
        let request = ClientRequest::OpenAi(openai::ChatRequest {
            model: parts.model.to_string(),
            messages,
            max_tokens: parts.max_tokens,
            max_completion_tokens: None,
            temperature: parts.temperature,
            top_p: None,
            stop: None,
            stream: None,
            stream_options: None,
            n: None,
            user: None,
            metadata: None,
            extra: Map::new(),
        });
        request.validate()?;
        Ok(request)
    }

    /// The conversation as text, one `[role] text` line per message (text parts only):
    /// what a judge reads of a shadowed request.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        let mut line = |role: &str, text: &str| {
            if !text.is_empty() {
                out.push_str(&format!("[{role}] {text}\n"));
            }
        };
        let anthropic_text = |blocks: &[anthropic::ContentBlock]| {
            blocks
                .iter()
                .filter_map(|b| match b {
                    anthropic::ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self.view() {
            View::Chat(r) => {
                for message in &r.messages {
                    let text = message
                        .content
                        .as_ref()
                        .map_or_else(String::new, |content| content.text_joined(" "));
                    line(&message.role, &text);
                }
            }
            View::Messages(r) => {
                match &r.system {
                    Some(anthropic::SystemPrompt::Text(text)) => line("system", text),
                    Some(anthropic::SystemPrompt::Blocks(blocks)) => {
                        line("system", &anthropic_text(blocks))
                    }
                    None => {}
                }
                for message in &r.messages {
                    let text = match &message.content {
                        anthropic::MessageContent::Text(text) => text.clone(),
                        anthropic::MessageContent::Blocks(blocks) => anthropic_text(blocks),
                    };
                    line(&message.role, &text);
                }
            }
        }
        out
    }

    /// The same request asking for a whole response instead of a stream (a shadow
    /// copy is read whole, never relayed).
    pub fn without_stream(&self) -> ClientRequest {
        let mut copy = self.clone();
        match &mut copy {
            ClientRequest::OpenAi(r) => {
                r.stream = None;
                r.stream_options = None;
            }
            ClientRequest::Responses(r) => {
                r.chat.stream = None;
                r.raw.remove("stream");
                r.raw.remove("stream_options");
            }
            ClientRequest::Anthropic(r) => r.stream = None,
        }
        copy
    }

    fn validate(&self) -> Result<(), RequestError> {
        let bad = |message: String| Err(RequestError::invalid(message));
        if self.model().is_empty() {
            return bad("model: must be a non-empty string".to_string());
        }
        // Only OpenAI's Responses API can take it; it makes its own checks.
        if let ClientRequest::Responses(r) = self {
            if r.untranslatable.is_some() {
                return Ok(());
            }
        }
        let (messages_empty, temperature, temperature_max, top_p) = match self.view() {
            View::Chat(r) => (r.messages.is_empty(), r.temperature, 2.0, r.top_p),
            View::Messages(r) => (r.messages.is_empty(), r.temperature, 1.0, r.top_p),
        };
        if messages_empty {
            return bad("messages: must contain at least one message".to_string());
        }
        if let Some(t) = temperature {
            if !(0.0..=temperature_max).contains(&t) {
                return bad(format!(
                    "temperature: {t} is out of range; expected 0 to {temperature_max}"
                ));
            }
        }
        if let Some(p) = top_p {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("top_p: {p} is out of range; expected 0 to 1"));
            }
        }
        match self.view() {
            View::Messages(r) => {
                match r.max_tokens {
                    None => return bad("max_tokens: Field required".to_string()),
                    Some(0) => return bad("max_tokens: must be at least 1".to_string()),
                    Some(_) => {}
                }
                for (index, message) in r.messages.iter().enumerate() {
                    if message.role != "user" && message.role != "assistant" {
                        return bad(format!(
                            "messages.{index}.role: `{}` is not allowed; expected `user` or `assistant` (put the system prompt in `system`)",
                            message.role
                        ));
                    }
                }
            }
            View::Chat(r) => {
                if r.max_tokens == Some(0) || r.max_completion_tokens == Some(0) {
                    return bad("max_tokens: must be at least 1".to_string());
                }
                for (index, message) in r.messages.iter().enumerate() {
                    if !matches!(
                        message.role.as_str(),
                        "system" | "developer" | "user" | "assistant" | "tool" | "function"
                    ) {
                        return bad(format!(
                            "messages[{index}].role: `{}` is not a valid role",
                            message.role
                        ));
                    }
                }
            }
        }
        self.check_tools_and_media().map_err(RequestError::invalid)
    }

    /// The checks both APIs make on tools, tool results and media, so that a bad
    /// request is refused in the client's shape before it goes anywhere.
    fn check_tools_and_media(&self) -> Result<(), String> {
        let mut pending = tools::PendingCalls::default();
        match self.view() {
            View::Chat(r) => {
                if let Some(list) = r.extra.get("tools").filter(|t| !t.is_null()) {
                    tools::check_openai_tools(list)?;
                }
                for (index, message) in r.messages.iter().enumerate() {
                    match message.role.as_str() {
                        "assistant" => pending.assistant_turn(tools::openai_call_ids(
                            message.tool_calls.as_deref().unwrap_or_default(),
                        )),
                        "tool" => {
                            let id = message.tool_call_id.as_deref().ok_or_else(|| {
                                format!("messages[{index}].tool_call_id: Field required for a `tool` message")
                            })?;
                            if !pending.answers(id) {
                                return Err(format!(
                                    "messages[{index}].tool_call_id: `{id}` answers no tool call of the preceding assistant message"
                                ));
                            }
                        }
                        _ => pending.assistant_turn([]),
                    }
                    if let Some(openai::MessageContent::Parts(parts)) = &message.content {
                        for (part_index, part) in parts.iter().enumerate() {
                            if let openai::ContentPart::Other(value) = part {
                                if let Some(url) = value.pointer("/image_url/url") {
                                    let url = url.as_str().unwrap_or_default();
                                    media::check_image_url(url).map_err(|e| {
                                        format!("messages[{index}].content[{part_index}].image_url.url: {e}")
                                    })?;
                                }
                            }
                        }
                    }
                }
            }
            View::Messages(r) => {
                if let Some(list) = r.extra.get("tools").filter(|t| !t.is_null()) {
                    tools::check_anthropic_tools(list)?;
                }
                for (index, message) in r.messages.iter().enumerate() {
                    let blocks = match &message.content {
                        anthropic::MessageContent::Blocks(blocks) => blocks.as_slice(),
                        anthropic::MessageContent::Text(_) => &[],
                    };
                    let mut stray = Vec::new();
                    for (block_index, block) in blocks.iter().enumerate() {
                        let path = format!("messages.{index}.content.{block_index}");
                        match block {
                            anthropic::ContentBlock::Image { source, .. }
                            | anthropic::ContentBlock::Document { source, .. } => {
                                media::check_anthropic_source(block.kind(), source)
                                    .map_err(|e| format!("{path}.{e}"))?;
                            }
                            anthropic::ContentBlock::ToolResult { tool_use_id, .. }
                                if !pending.answers(tool_use_id) =>
                            {
                                stray.push(tool_use_id.as_str());
                            }
                            _ => {}
                        }
                    }
                    if !stray.is_empty() {
                        return Err(format!(
                            "messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: {}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                            stray.join(", ")
                        ));
                    }
                    let ids = blocks.iter().filter_map(|block| match block {
                        anthropic::ContentBlock::ToolUse { id, .. }
                            if message.role == "assistant" =>
                        {
                            Some(id.as_str())
                        }
                        _ => None,
                    });
                    pending.assistant_turn(ids);
                }
            }
        }
        Ok(())
    }
}

pub(super) fn upstream_body(
    backend: BackendProtocol,
    request: &mut ClientRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<Bytes, RequestError> {
    if backend.speaks_responses() {
        let ClientRequest::Responses(r) = request else {
            return Err(RequestError::invalid(format!(
                "the backend chosen for this request speaks only the OpenAI Responses API; send the request to /v1/responses, or route `{}` to another backend",
                request.model()
            )));
        };
        let mut body = r.raw.clone();
        body.insert("model".to_owned(), Value::from(model));
        if let Some(Value::Object(metadata)) = body.get_mut("metadata") {
            metadata.remove(TASK_KEY);
        }
        return Ok(Bytes::from(to_vec(&body)));
    }
    if let ClientRequest::Responses(r) = request {
        if let Some(why) = &r.untranslatable {
            return Err(RequestError::invalid(format!(
                "{why} (this needs a backend that speaks the OpenAI Responses API, `type = \"openai_responses\"`)"
            )));
        }
    }
    let body = match (request, backend.speaks_anthropic()) {
        (ClientRequest::Anthropic(r), true) => {
            let client_model = std::mem::replace(&mut r.model, model.to_string());
            let metadata = r.metadata.take();
            r.metadata = anthropic_metadata(metadata.as_ref());
            let body = to_vec(r);
            r.model = client_model;
            r.metadata = metadata;
            body
        }
        (ClientRequest::OpenAi(r), false) => chat_body(backend, r, model),
        (ClientRequest::Responses(r), false) => chat_body(backend, &mut r.chat, model),
        (ClientRequest::OpenAi(r), true) => chat_to_anthropic_body(r, model, default_max_tokens)?,
        (ClientRequest::Responses(r), true) => {
            chat_to_anthropic_body(&r.chat, model, default_max_tokens)?
        }
        (ClientRequest::Anthropic(r), false) => {
            let mut upstream = translate::anthropic_to_openai_request(r)?;
            model.clone_into(&mut upstream.model);
            upstream.metadata = openai_metadata(upstream.metadata.as_ref(), backend);
            ask_for_stream_usage(&mut upstream);
            to_vec(&upstream)
        }
    };
    Ok(Bytes::from(body))
}

/// A chat request for an OpenAI backend: the model swapped and the fields put back
/// after encoding, so the request is never deep-copied.
fn chat_body(backend: BackendProtocol, r: &mut openai::ChatRequest, model: &str) -> Vec<u8> {
    let client_model = std::mem::replace(&mut r.model, model.to_string());
    let metadata = r.metadata.take();
    r.metadata = openai_metadata(metadata.as_ref(), backend);
    let stream_options = r.stream_options.clone();
    ask_for_stream_usage(r);
    let body = to_vec(r);
    r.model = client_model;
    r.metadata = metadata;
    r.stream_options = stream_options;
    body
}

fn chat_to_anthropic_body(
    r: &openai::ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<Vec<u8>, RequestError> {
    let mut upstream = translate::openai_to_anthropic_request(r, default_max_tokens)?;
    model.clone_into(&mut upstream.model);
    upstream.metadata = anthropic_metadata(upstream.metadata.as_ref());
    Ok(to_vec(&upstream))
}

/// Anthropic accepts only `user_id` in metadata; the task label is the gateway's.
fn anthropic_metadata(metadata: Option<&Value>) -> Option<Value> {
    let mut map = metadata?.as_object()?.clone();
    map.remove(TASK_KEY);
    (!map.is_empty()).then_some(Value::Object(map))
}

/// OpenAI keeps metadata (without the task label); compatible servers get none.
fn openai_metadata(
    metadata: Option<&Map<String, Value>>,
    backend: BackendProtocol,
) -> Option<Map<String, Value>> {
    if backend == BackendProtocol::OpenAiCompatible {
        return None;
    }
    let mut map = metadata?.clone();
    map.remove(TASK_KEY);
    (!map.is_empty()).then_some(map)
}

/// Asks an OpenAI upstream for usage on streams even when the client did not.
fn ask_for_stream_usage(request: &mut openai::ChatRequest) {
    if request.is_stream() {
        let options = request.stream_options.get_or_insert_with(Default::default);
        options.include_usage = Some(true);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ApiErrorKind;

    fn parse(format: ClientFormat, body: Value) -> Result<ClientRequest, RequestError> {
        ClientRequest::parse(format, &serde_json::to_vec(&body).unwrap())
    }

    /// Each rule of each API, with the message naming the field. The Anthropic rules
    /// are the Messages API's (https://docs.claude.com/en/api/messages: `max_tokens`
    /// required, roles `user`/`assistant`, temperature 0–1); OpenAI's allow
    /// temperature 0–2 (https://platform.openai.com/docs/api-reference/chat/create).
    #[test]
    fn validation_rules_name_the_field() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let cases = [
            (ClientFormat::OpenAi, json!({"model": "", "messages": user}), "model: must be a non-empty string"),
            (ClientFormat::OpenAi, json!({"model": "m", "messages": []}), "messages: must contain at least one message"),
            (ClientFormat::OpenAi, json!({"model": "m", "messages": user, "temperature": 2.5}), "temperature: 2.5 is out of range; expected 0 to 2"),
            (ClientFormat::OpenAi, json!({"model": "m", "messages": user, "top_p": 1.5}), "top_p: 1.5 is out of range; expected 0 to 1"),
            (ClientFormat::OpenAi, json!({"model": "m", "messages": user, "max_tokens": 0}), "max_tokens: must be at least 1"),
            (ClientFormat::OpenAi, json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}), "messages[0].role: `robot` is not a valid role"),
            (ClientFormat::Anthropic, json!({"model": "m", "messages": user}), "max_tokens: Field required"),
            (ClientFormat::Anthropic, json!({"model": "m", "messages": user, "max_tokens": 0}), "max_tokens: must be at least 1"),
            (ClientFormat::Anthropic, json!({"model": "m", "messages": user, "max_tokens": 5, "temperature": 1.5}), "temperature: 1.5 is out of range; expected 0 to 1"),
            (ClientFormat::Anthropic, json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}), "messages.0.role: `system` is not allowed; expected `user` or `assistant` (put the system prompt in `system`)"),
        ];
        for (format, body, message) in cases {
            let error = parse(format, body.clone()).unwrap_err();
            assert_eq!(error.kind, ApiErrorKind::InvalidRequest, "{body}");
            assert_eq!(error.message, message, "{body}");
        }
        assert!(parse(
            ClientFormat::OpenAi,
            json!({"model": "m", "messages": user, "temperature": 2.0})
        )
        .is_ok());
        let syntax = ClientRequest::parse(ClientFormat::OpenAi, b"{").unwrap_err();
        assert!(
            syntax.message.starts_with("invalid JSON body"),
            "{}",
            syntax.message
        );
        let shape = parse(ClientFormat::OpenAi, json!({"model": 5, "messages": user})).unwrap_err();
        assert!(
            shape.message.starts_with("invalid request body"),
            "{}",
            shape.message
        );
    }

    #[test]
    fn reads_what_the_gateway_needs() {
        let request = parse(
            ClientFormat::OpenAi,
            json!({"model": "m", "messages": [{"role": "user", "content": "12345678"}],
                   "max_completion_tokens": 9, "max_tokens": 7, "stream": true,
                   "stream_options": {"include_usage": true}, "metadata": {"task": "extract"}}),
        )
        .unwrap();
        assert_eq!(request.format(), ClientFormat::OpenAi);
        assert_eq!(request.model(), "m");
        assert!(request.stream());
        assert!(request.wants_stream_usage());
        // max_completion_tokens wins over the deprecated max_tokens.
        assert_eq!(request.max_output_tokens(100), 9);
        // 8 characters / 4 per token.
        assert_eq!(request.estimated_input_tokens(), 2);
        assert_eq!(request.task_label().as_deref(), Some("extract"));
        let request = parse(
            ClientFormat::Anthropic,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        assert_eq!(request.max_output_tokens(100), 5);
        assert_eq!(request.task_label(), None);
        assert!(!request.wants_stream_usage());
    }

    fn body_of(backend: BackendProtocol, request: &mut ClientRequest) -> Value {
        let bytes = upstream_body(backend, request, "upstream-model", 1024).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn metadata_and_stream_usage_rules() {
        let original = json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "metadata": {"task": "t", "user_id": "u"}});
        let mut request = parse(ClientFormat::OpenAi, original.clone()).unwrap();
        let kept = request.clone();
        // OpenAI keeps metadata without the task; compatible servers get none; both
        // streams ask for usage.
        let openai = body_of(BackendProtocol::OpenAi, &mut request);
        assert_eq!(openai["model"], "upstream-model");
        assert_eq!(openai["metadata"], json!({"user_id": "u"}));
        assert_eq!(openai["stream_options"]["include_usage"], true);
        let compatible = body_of(BackendProtocol::OpenAiCompatible, &mut request);
        assert!(compatible.get("metadata").is_none());
        assert_eq!(compatible["stream_options"]["include_usage"], true);
        // The client's request is left as it came.
        assert_eq!(request, kept);
        // Translated to Anthropic: OpenAI's metadata has no equivalent (only `user`
        // becomes `metadata.user_id`), max_tokens is defaulted.
        let anthropic = body_of(BackendProtocol::Anthropic, &mut request);
        assert!(anthropic.get("metadata").is_none());
        assert_eq!(anthropic["max_tokens"], 1024);
        assert_eq!(anthropic["model"], "upstream-model");

        let mut request = parse(
            ClientFormat::Anthropic,
            json!({"model": "alias", "max_tokens": 5, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}], "metadata": {"task": "t"}}),
        )
        .unwrap();
        let kept = request.clone();
        let anthropic = body_of(BackendProtocol::Anthropic, &mut request);
        assert!(anthropic.get("metadata").is_none());
        assert_eq!(request, kept);
        let compatible = body_of(BackendProtocol::OpenAiCompatible, &mut request);
        assert_eq!(compatible["stream_options"]["include_usage"], true);
        assert!(compatible.get("metadata").is_none());
    }

    #[test]
    fn untranslatable_requests_are_client_errors() {
        let mut request = parse(
            ClientFormat::OpenAi,
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        let error = upstream_body(BackendProtocol::Anthropic, &mut request, "x", 16).unwrap_err();
        assert_eq!(error.kind, ApiErrorKind::InvalidRequest);
        assert!(error.message.contains("`n`"), "{}", error.message);
    }

    #[test]
    fn media_is_found_in_every_shape_and_matched_with_what_a_backend_takes() {
        let image = parse(
            ClientFormat::OpenAi,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}]}),
        )
        .unwrap();
        assert_eq!(
            image.media(),
            Media {
                images: true,
                documents: false
            }
        );
        let nested = parse(
            ClientFormat::Anthropic,
            json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}
            ]}),
        )
        .unwrap();
        assert_eq!(
            nested.media(),
            Media {
                images: false,
                documents: true
            }
        );
        let text = Media::from_names(&["text".to_owned()]).unwrap();
        assert_eq!(image.media().missing_in(text), Some("images"));
        assert_eq!(nested.media().missing_in(text), Some("documents"));
        assert_eq!(image.media().missing_in(Media::ALL), None);
        assert_eq!(
            Media::from_names(&["video".to_owned()]),
            Err("video".to_owned())
        );
    }
}
