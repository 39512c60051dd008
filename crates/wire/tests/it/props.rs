//! Property tests (`proptest`): translations keep a request's meaning, tools and
//! images included; stream usage and tool-call arguments come out the same however
//! the upstream bytes are split.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use wire::anthropic::StreamEvent;
use wire::openai::ChatRequest;
use wire::pair::{BackendProtocol, ClientFormat, FormatPair, RelayInit, RelayStep};
use wire::translate::{
    anthropic_to_openai_request, openai_to_anthropic_request, OpenAiToAnthropicStream,
};
use wire::TokenUsage;

fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.?!é日]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z_]{0,12}"
}

/// Tool-call arguments: a JSON object of a few scalar fields, as serde_json writes it.
fn arguments() -> impl Strategy<Value = String> {
    proptest::collection::btree_map(
        name(),
        prop_oneof![
            word().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ],
        0..4,
    )
    .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>()).to_string())
}

fn image() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})),
        "[a-z]{1,8}".prop_map(|path| json!({"type": "image_url", "image_url": {"url": format!("https://example.com/{path}.jpg")}})),
    ]
}

/// A user turn: plain text, or text with an image (kept as parts both ways).
fn user_message() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(|text| json!({"role": "user", "content": text})),
        (word(), image()).prop_map(|(text, image)| json!({"role": "user", "content": [{"type": "text", "text": text}, image]})),
    ]
}

/// An assistant turn: text, or tool calls (with or without text) and their results.
fn assistant_turn(turn: usize) -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        word().prop_map(|text| vec![json!({"role": "assistant", "content": text})]),
        (
            proptest::option::of(word()),
            proptest::collection::vec((name(), arguments(), word()), 1..4),
        )
            .prop_map(move |(text, calls)| {
                let mut assistant = json!({"role": "assistant", "tool_calls": calls.iter().enumerate().map(|(i, (name, args, _))| json!({
                    "id": format!("call_{turn}_{i}"), "type": "function", "function": {"name": name, "arguments": args}
                })).collect::<Vec<_>>()});
                // No text is an empty string, as the translation writes it back.
                assistant["content"] = Value::from(text.unwrap_or_default());
                let mut messages = vec![assistant];
                for (i, (_, _, result)) in calls.iter().enumerate() {
                    messages.push(json!({"role": "tool", "tool_call_id": format!("call_{turn}_{i}"), "content": result}));
                }
                messages
            }),
    ]
}

fn tools() -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec((name(), word()), 0..3).prop_map(|tools| {
        tools
            .into_iter()
            .map(|(name, description)| {
                json!({"type": "function", "function": {
                    "name": name, "description": description,
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}
                }})
            })
            .collect()
    })
}

fn conversation() -> impl Strategy<Value = ChatRequest> {
    (
        proptest::option::of(word()),
        proptest::collection::vec((user_message(), 0..2usize), 1..4),
        user_message(),
        tools(),
        prop_oneof![
            Just(json!("auto")),
            Just(json!("none")),
            Just(json!("required"))
        ],
        any::<bool>(),
        1..4096u32,
    )
        .prop_flat_map(|(system, turns, last, tools, choice, serial, max_tokens)| {
            let turn_count = turns.len();
            let assistants: Vec<_> = (0..turn_count).map(assistant_turn).collect();
            (
                Just((system, turns, last, tools, choice, serial, max_tokens)),
                assistants,
            )
        })
        .prop_map(
            |((system, turns, last, tools, choice, serial, max_tokens), assistants)| {
                let mut messages = Vec::new();
                if let Some(system) = system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                for ((user, _), assistant) in turns.into_iter().zip(assistants) {
                    messages.push(user);
                    messages.extend(assistant);
                }
                messages.push(last);
                let mut body =
                    json!({"model": "m", "messages": messages, "max_tokens": max_tokens});
                if !tools.is_empty() {
                    body["tools"] = Value::Array(tools);
                    body["tool_choice"] = choice.clone();
                    // With tool use off, whether calls run in parallel means nothing (and
                    // Anthropic's `none` choice has no field for it).
                    if serial && choice != "none" {
                        body["parallel_tool_calls"] = Value::Bool(false);
                    }
                }
                serde_json::from_value(body).unwrap()
            },
        )
}

/// An Anthropic conversation in the shape the translation writes back: text as
/// strings, blocks where there are images or tool use, every `tool_result` first in
/// the user turn after its `tool_use`.
fn anthropic_conversation() -> impl Strategy<Value = wire::anthropic::MessagesRequest> {
    let image = prop_oneof![
        Just(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})),
        "[a-z]{1,8}".prop_map(|p| json!({"type": "image", "source": {"type": "url", "url": format!("https://example.com/{p}.png")}})),
    ];
    let user = prop_oneof![
        word().prop_map(|text| json!(text)),
        (word(), image).prop_map(|(text, image)| json!([{"type": "text", "text": text}, image])),
    ];
    let turn = (
        user,
        prop_oneof![
            word().prop_map(|text| (json!(text), Vec::new())),
            (
                proptest::option::of(word()),
                proptest::collection::vec((name(), arguments(), word(), any::<bool>()), 1..3)
            )
                .prop_map(|(text, calls)| {
                    let mut blocks: Vec<Value> = text
                        .into_iter()
                        .map(|t| json!({"type": "text", "text": t}))
                        .collect();
                    let mut results = Vec::new();
                    for (i, (name, args, result, failed)) in calls.into_iter().enumerate() {
                        let id = format!("toolu_{i}_{name}");
                        let input: Value = serde_json::from_str(&args).unwrap();
                        blocks.push(
                            json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                        );
                        // An error result comes back as text starting with the prefix.
                        let content = if failed {
                            format!("Error: {result}")
                        } else {
                            result
                        };
                        results.push(
                            json!({"type": "tool_result", "tool_use_id": id, "content": content}),
                        );
                    }
                    (Value::Array(blocks), results)
                }),
        ],
    );
    (
        proptest::option::of(word()),
        proptest::collection::vec(turn, 1..4),
        word(),
        1..4096u32,
    )
        .prop_map(|(system, turns, last, max_tokens)| {
            let mut messages = Vec::new();
            let mut pending: Vec<Value> = Vec::new();
            for (user, (assistant, results)) in turns {
                let mut content: Vec<Value> = std::mem::take(&mut pending);
                if content.is_empty() {
                    messages.push(json!({"role": "user", "content": user}));
                } else {
                    match user {
                        Value::String(text) => content.push(json!({"type": "text", "text": text})),
                        Value::Array(blocks) => content.extend(blocks),
                        _ => unreachable!(),
                    }
                    messages.push(json!({"role": "user", "content": content}));
                }
                messages.push(json!({"role": "assistant", "content": assistant}));
                pending = results;
            }
            let mut content = pending;
            if content.is_empty() {
                messages.push(json!({"role": "user", "content": last}));
            } else {
                content.push(json!({"type": "text", "text": last}));
                messages.push(json!({"role": "user", "content": content}));
            }
            let mut body = json!({"model": "m", "max_tokens": max_tokens, "messages": messages});
            if let Some(system) = system {
                body["system"] = Value::from(system);
            }
            serde_json::from_value(body).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Anthropic → OpenAI → Anthropic gives back the same request too.
    #[test]
    fn an_anthropic_request_translated_there_and_back_keeps_its_meaning(original in anthropic_conversation()) {
        let openai = anthropic_to_openai_request(&original).unwrap();
        let back = openai_to_anthropic_request(&openai, 1).unwrap();
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&original).unwrap());
    }

    /// OpenAI → Anthropic → OpenAI gives back the same request: roles, text, images,
    /// tool definitions, tool choice, calls with their arguments, and results.
    #[test]
    fn a_request_translated_there_and_back_keeps_its_meaning(original in conversation()) {
        let anthropic = openai_to_anthropic_request(&original, 1).unwrap();
        let back = anthropic_to_openai_request(&anthropic).unwrap();
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&original).unwrap());
    }

    /// Tool-call arguments split anywhere into OpenAI deltas arrive whole in the
    /// Anthropic `input_json_delta`s, and the other way round.
    #[test]
    fn tool_arguments_reassemble_however_they_are_split(
        args in arguments(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let pieces = split_at(&args, &cuts);
        let mut chunks = vec![json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": null}]})];
        for piece in &pieces {
            chunks.push(json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, "finish_reason": null}]}));
        }
        let mut translator = OpenAiToAnthropicStream::new("msg", "m");
        let mut sent = String::new();
        for chunk in &chunks {
            for frame in translator.on_chunk(&serde_json::from_value(chunk.clone()).unwrap()) {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                if let Ok(StreamEvent::ContentBlockDelta { delta: wire::anthropic::BlockDelta::InputJsonDelta { partial_json }, .. }) = StreamEvent::parse(data) {
                    sent.push_str(&partial_json);
                }
            }
        }
        prop_assert_eq!(&sent, &args);

        // Anthropic pieces, through the relay to an OpenAI client and to a Responses client.
        let mut events = String::new();
        events.push_str(&anthropic_event(&json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}})));
        events.push_str(&anthropic_event(&json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}})));
        for piece in &pieces {
            events.push_str(&anthropic_event(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        events.push_str(&anthropic_event(&json!({"type": "content_block_stop", "index": 0})));
        events.push_str(&anthropic_event(&json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})));
        events.push_str(&anthropic_event(&json!({"type": "message_stop"})));
        let (out, _) = relay(ClientFormat::OpenAi, BackendProtocol::Anthropic, events.as_bytes(), &[]);
        let arguments: String = data_payloads(&out)
            .iter()
            .filter_map(|p| p.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str).map(str::to_owned))
            .collect();
        prop_assert_eq!(&arguments, &args);
        let (out, _) = relay(ClientFormat::Responses, BackendProtocol::Anthropic, events.as_bytes(), &[]);
        let done = data_payloads(&out)
            .into_iter()
            .find(|p| p["type"] == "response.function_call_arguments.done")
            .unwrap();
        prop_assert_eq!(done["arguments"].as_str().unwrap(), args.as_str());
    }

    /// The usage of a stream, split into any byte chunks, is the final usage it
    /// reports, for every client format and both upstreams.
    #[test]
    fn stream_usage_is_the_same_however_the_bytes_are_split(
        input in 1..100_000u64,
        cached in 0..50_000u64,
        deltas in proptest::collection::vec(word(), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let output = deltas.len() as u64 + 3;
        let mut openai = String::new();
        openai.push_str(&openai_data(&json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})));
        for text in &deltas {
            openai.push_str(&openai_data(&json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})));
        }
        openai.push_str(&openai_data(&json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
        openai.push_str(&openai_data(&json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
            "usage": {"prompt_tokens": input + cached, "completion_tokens": output, "total_tokens": input + cached + output, "prompt_tokens_details": {"cached_tokens": cached}}})));
        openai.push_str("data: [DONE]\n\n");
        let mut anthropic = String::new();
        anthropic.push_str(&anthropic_event(&json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [],
            "usage": {"input_tokens": input, "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0, "output_tokens": 1}}})));
        anthropic.push_str(&anthropic_event(&json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for text in &deltas {
            anthropic.push_str(&anthropic_event(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
        }
        anthropic.push_str(&anthropic_event(&json!({"type": "content_block_stop", "index": 0})));
        anthropic.push_str(&anthropic_event(&json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}})));
        anthropic.push_str(&anthropic_event(&json!({"type": "message_stop"})));
        let expected = TokenUsage { input_tokens: input, cache_read_tokens: cached, output_tokens: output, ..TokenUsage::default() };
        for (backend, bytes) in [(BackendProtocol::OpenAiCompatible, &openai), (BackendProtocol::Anthropic, &anthropic)] {
            for client in [ClientFormat::OpenAi, ClientFormat::Anthropic, ClientFormat::Responses] {
                let (_, usage) = relay(client, backend, bytes.as_bytes(), &cuts);
                prop_assert_eq!(usage, (expected, false), "{:?} from {:?}", client, backend);
            }
        }
    }
}

/// `text` cut at the char boundaries nearest the chosen indices.
fn split_at(text: &str, cuts: &[prop::sample::Index]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|cut| {
            let mut at = cut.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    points.push(0);
    points.push(text.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| text[w[0]..w[1]].to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn openai_data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn anthropic_event(value: &Value) -> String {
    format!(
        "event: {}\ndata: {value}\n\n",
        value["type"].as_str().unwrap()
    )
}

/// Relays `bytes` cut at `cuts` through a [`wire::pair::StreamRelay`]; the client's
/// bytes and the usage.
fn relay(
    client: ClientFormat,
    backend: BackendProtocol,
    bytes: &[u8],
    cuts: &[prop::sample::Index],
) -> (Vec<u8>, (TokenUsage, bool)) {
    let mut relay = FormatPair::new(client, backend).stream_relay(&RelayInit {
        request_id: "0190a1b2-c3d4",
        model: "m",
        created_unix_s: 1,
        client_wants_usage: true,
        input_estimate: 0,
        responses_echo: None,
    });
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut out = BytesMut::new();
    for w in points.windows(2) {
        if relay.feed(&bytes[w[0]..w[1]], &mut out) != RelayStep::Continue {
            break;
        }
    }
    relay.end_of_input(&mut out);
    (out.to_vec(), relay.usage())
}

fn data_payloads(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}
