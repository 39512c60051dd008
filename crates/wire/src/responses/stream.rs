//! A chat completion stream as Responses events.
//!
//! The first chunk sends `response.created` and `response.in_progress`. Text opens a
//! `message` item (`response.output_item.added`, `response.content_part.added`) and
//! streams as `response.output_text.delta`; each new tool call opens a
//! `function_call` item and streams `response.function_call_arguments.delta`. A new
//! item closes the one before it (`…output_text.done`, `…content_part.done`,
//! `…function_call_arguments.done`, `response.output_item.done`). The finish waits
//! for the usage, then `response.completed` (or `response.incomplete` when the output
//! limit was reached) carries the whole response with `usage`. A failure is an
//! `error` event and `response.failed`. Every event has a `sequence_number`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{function_call_item, id_part, message_item, response_object, status_for, Echo};
use crate::error::ApiErrorKind;
use crate::openai::{ChatChunk, FinishReason};
use crate::sse;
use crate::usage::TokenUsage;

enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        chat_index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn json(&self, status: &str) -> Value {
        match self {
            Item::Message { id, text } => message_item(id, text, status),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => function_call_item(id, call_id, name, arguments, status),
        }
    }
}

/// Turns chat chunks into Responses event frames.
pub struct ResponsesStream {
    id: String,
    created_at: u64,
    echo: Echo,
    sequence: u64,
    started: bool,
    items: Vec<Item>,
    /// The index of the item open now.
    open: Option<usize>,
    finish: Option<FinishReason>,
    usage: Option<TokenUsage>,
    done: bool,
}

impl ResponsesStream {
    /// `request_id` names the response (`resp_…`) and its items.
    pub fn new(request_id: &str, created_at: u64, echo: Echo) -> Self {
        Self {
            id: format!("resp_{}", id_part(request_id)),
            created_at,
            echo,
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: None,
            finish: None,
            usage: None,
            done: false,
        }
    }

    /// True after `response.completed`, `response.incomplete` or a failure.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The text streamed so far, over all message items.
    pub fn text(&self) -> String {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Message { text, .. } => Some(text.as_str()),
                Item::Call { .. } => None,
            })
            .collect()
    }

    /// Translates one chat chunk (choice 0; a `choices: []` chunk carries the usage).
    pub fn on_chunk(&mut self, chunk: &ChatChunk, usage: Option<TokenUsage>) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        let mut frames = Vec::new();
        self.start(&mut frames);
        if usage.is_some() {
            self.usage = usage;
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if self.finish.is_some() {
                break;
            }
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.on_text(&mut frames, text);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.on_call(&mut frames, call);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish = Some(reason.clone());
                self.close(&mut frames);
            }
        }
        if self.finish.is_some() && chunk.choices.is_empty() && self.usage.is_some() {
            self.end(&mut frames);
        }
        frames
    }

    /// The upstream ended (`[DONE]`, or the body ended): closes what is open and sends
    /// the final event with the usage seen, or `estimate` when none came.
    pub fn finish(&mut self, estimate: TokenUsage) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        let mut frames = Vec::new();
        self.start(&mut frames);
        self.close(&mut frames);
        if self.usage.is_none() {
            self.usage = Some(estimate);
        }
        self.end(&mut frames);
        frames
    }

    /// Ends the stream with an `error` event and `response.failed`.
    pub fn fail(&mut self, kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut frames = Vec::new();
        let code = kind.openai_default_code().unwrap_or(kind.openai_type());
        self.push(
            &mut frames,
            "error",
            json!({ "code": code, "message": message, "param": null }),
        );
        let mut response = self.snapshot("failed", Value::Null, None);
        response["error"] = json!({ "code": code, "message": message });
        self.push(
            &mut frames,
            "response.failed",
            json!({ "response": response }),
        );
        frames
    }

    fn push(&mut self, frames: &mut Vec<Bytes>, kind: &str, mut body: Value) {
        body["type"] = Value::from(kind);
        body["sequence_number"] = Value::from(self.sequence);
        self.sequence += 1;
        frames.push(sse::anthropic_event(kind, &crate::json::to_vec(&body)));
    }

    fn snapshot(&self, status: &str, incomplete: Value, usage: Option<&TokenUsage>) -> Value {
        let output = self
            .items
            .iter()
            .map(|item| item.json("completed"))
            .collect();
        response_object(
            &self.id,
            self.created_at,
            &self.echo,
            status,
            incomplete,
            output,
            usage,
        )
    }

    fn start(&mut self, frames: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress", Value::Null, None);
        self.push(frames, "response.created", json!({ "response": response }));
        self.push(
            frames,
            "response.in_progress",
            json!({ "response": response }),
        );
    }

    fn on_text(&mut self, frames: &mut Vec<Bytes>, text: &str) {
        let index = match self.open {
            Some(index) if matches!(self.items[index], Item::Message { .. }) => index,
            _ => {
                self.close(frames);
                let id = format!("msg_{}_{}", id_part(&self.id), self.items.len());
                self.items.push(Item::Message {
                    id: id.clone(),
                    text: String::new(),
                });
                let index = self.items.len() - 1;
                self.open = Some(index);
                let item = message_item(&id, "", "in_progress");
                let mut item_empty = item;
                item_empty["content"] = json!([]);
                self.push(
                    frames,
                    "response.output_item.added",
                    json!({ "output_index": index, "item": item_empty }),
                );
                self.push(
                    frames,
                    "response.content_part.added",
                    json!({ "item_id": id, "output_index": index, "content_index": 0,
                            "part": { "type": "output_text", "text": "", "annotations": [] } }),
                );
                index
            }
        };
        let Item::Message { id, text: so_far } = &mut self.items[index] else {
            return;
        };
        so_far.push_str(text);
        let id = id.clone();
        self.push(
            frames,
            "response.output_text.delta",
            json!({ "item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": [] }),
        );
    }

    fn on_call(&mut self, frames: &mut Vec<Bytes>, call: &Value) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let field = |pointer: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let known = self
            .items
            .iter()
            .position(|item| matches!(item, Item::Call { chat_index: i, .. } if *i == chat_index));
        let index = match known {
            Some(index) => index,
            None => {
                self.close(frames);
                let id = format!("fc_{}_{}", id_part(&self.id), self.items.len());
                let mut call_id = field("/id");
                if call_id.is_empty() {
                    call_id = format!("call_{chat_index}");
                }
                let item = Item::Call {
                    id,
                    chat_index,
                    call_id,
                    name: field("/function/name"),
                    arguments: String::new(),
                };
                let added = item.json("in_progress");
                self.items.push(item);
                let index = self.items.len() - 1;
                self.open = Some(index);
                self.push(
                    frames,
                    "response.output_item.added",
                    json!({ "output_index": index, "item": added }),
                );
                index
            }
        };
        let delta = field("/function/arguments");
        if delta.is_empty() {
            return;
        }
        let Item::Call { id, arguments, .. } = &mut self.items[index] else {
            return;
        };
        arguments.push_str(&delta);
        let id = id.clone();
        self.push(
            frames,
            "response.function_call_arguments.delta",
            json!({ "item_id": id, "output_index": index, "delta": delta }),
        );
    }

    /// Closes the open item with its `…done` events.
    fn close(&mut self, frames: &mut Vec<Bytes>) {
        let Some(index) = self.open.take() else {
            return;
        };
        let done = self.items[index].json("completed");
        match &self.items[index] {
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.push(
                    frames,
                    "response.output_text.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": [] }),
                );
                self.push(
                    frames,
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0,
                            "part": { "type": "output_text", "text": text, "annotations": [] } }),
                );
            }
            Item::Call {
                id,
                arguments,
                name,
                ..
            } => {
                let (id, arguments, name) = (id.clone(), arguments.clone(), name.clone());
                self.push(
                    frames,
                    "response.function_call_arguments.done",
                    json!({ "item_id": id, "output_index": index, "arguments": arguments, "name": name }),
                );
            }
        }
        self.push(
            frames,
            "response.output_item.done",
            json!({ "output_index": index, "item": done }),
        );
    }

    fn end(&mut self, frames: &mut Vec<Bytes>) {
        self.close(frames);
        let (status, incomplete) = status_for(self.finish.as_ref());
        let usage = self.usage.unwrap_or_default();
        let response = self.snapshot(status, incomplete, Some(&usage));
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.push(frames, kind, json!({ "response": response }));
        self.done = true;
    }

    /// Tool calls whose arguments are not valid JSON.
    pub fn invalid_tool_arguments(&self) -> u64 {
        self.items
            .iter()
            .filter(|item| match item {
                Item::Call { arguments, .. } => {
                    crate::translate::tools::arguments_are_invalid(arguments)
                }
                Item::Message { .. } => false,
            })
            .count() as u64
    }
}

/// What a Responses stream passed through unchanged (to a Responses client from a
/// Responses backend) reports: the usage of its final event, the text deltas for an
/// estimate, and the sequence number a failure event of ours continues from.
#[derive(Debug, Default)]
pub struct ResponsesPass {
    usage: Option<TokenUsage>,
    deltas: u64,
    next_sequence: u64,
    done: bool,
}

/// What one passed-through event is.
#[derive(Debug, PartialEq, Eq)]
pub enum PassEvent {
    /// Pass it on.
    Event,
    /// The final event (`response.completed`, `.incomplete` or `.failed`): pass it on and end.
    Final,
    /// An `error` event: not passed on; the caller fails the stream.
    Error {
        code: Option<String>,
        message: String,
    },
}

#[derive(serde::Deserialize)]
struct PassPeek {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    response: Option<ResponsePeek>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(serde::Deserialize)]
struct ResponsePeek {
    #[serde(default)]
    usage: Option<super::UsagePeek>,
}

impl ResponsesPass {
    /// Reads one upstream event's data.
    pub fn on_data(&mut self, data: &str) -> PassEvent {
        let Ok(peek) = serde_json::from_str::<PassPeek>(data) else {
            return PassEvent::Event;
        };
        if let Some(sequence) = peek.sequence_number {
            self.next_sequence = sequence + 1;
        }
        match peek.kind.as_str() {
            "response.output_text.delta" | "response.function_call_arguments.delta" => {
                self.deltas += 1;
                PassEvent::Event
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.usage = peek.response.and_then(|r| r.usage).map(|u| u.token_usage());
                self.done = true;
                PassEvent::Final
            }
            "error" => PassEvent::Error {
                code: peek.code,
                message: peek.message.unwrap_or_default(),
            },
            _ => PassEvent::Event,
        }
    }

    /// The usage of the final event, if it came.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.usage
    }

    /// One output token per text or arguments delta, for a stream that ended early.
    pub fn estimated_output_tokens(&self) -> u64 {
        self.deltas
    }

    /// An `error` event numbered after the last event passed on.
    pub fn fail(&mut self, kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let code = kind.openai_default_code().unwrap_or(kind.openai_type());
        let body = json!({ "type": "error", "code": code, "message": message, "param": null,
                           "sequence_number": self.next_sequence });
        vec![sse::anthropic_event("error", &crate::json::to_vec(&body))]
    }
}
