//! The format pair, table-driven: every stream fixture through every client format it
//! can reach, fed whole and split at every byte; every whole response through both
//! client formats.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use wire::pair::{BackendProtocol, ClientFormat, FormatPair, RelayInit, RelayStep};
use wire::sse::SseParser;
use wire::{ApiErrorKind, TokenUsage};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Clone, Debug, PartialEq)]
enum End {
    Done,
    UpstreamError(ApiErrorKind, &'static str),
    /// The body ended before the stream was complete.
    Truncated,
}

struct StreamCase {
    name: &'static str,
    bytes: Vec<u8>,
    client: ClientFormat,
    backend: BackendProtocol,
    wants_usage: bool,
    input_estimate: u64,
    /// The text the client reads.
    text: &'static str,
    usage: TokenUsage,
    estimated: bool,
    end: End,
}

fn usage(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        ..TokenUsage::default()
    }
}

fn init(case: &StreamCase) -> RelayInit<'static> {
    RelayInit {
        request_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        model: "served-model",
        created_unix_s: 1_700_000_000,
        client_wants_usage: case.wants_usage,
        input_estimate: case.input_estimate,
        responses_echo: None,
    }
}

/// Relays `pieces` in order, as the gateway does: stops at the first step that ends
/// the stream, and at the end of the body asks the relay whether it was complete.
fn relay(case: &StreamCase, pieces: &[&[u8]]) -> (Bytes, End, TokenUsage, bool) {
    let pair = FormatPair::new(case.client, case.backend);
    let mut relay = pair.stream_relay(&init(case));
    let mut out = BytesMut::new();
    let mut step = RelayStep::Continue;
    for piece in pieces {
        step = relay.feed(piece, &mut out);
        if step != RelayStep::Continue {
            break;
        }
    }
    if step == RelayStep::Continue {
        step = relay.end_of_input(&mut out);
    }
    let end = match step {
        RelayStep::Done => End::Done,
        RelayStep::Continue => End::Truncated,
        RelayStep::UpstreamError { kind, message } => {
            relay.fail(kind, &format!("backend reported: {message}"), &mut out);
            // The message is compared below; leak it into the static End only in tests.
            End::UpstreamError(kind, Box::leak(message.into_boxed_str()))
        }
    };
    let (usage, estimated) = relay.usage();
    (out.freeze(), end, usage, estimated)
}

/// What the client reads: the text, the usage it was sent (OpenAI usage chunk or
/// Anthropic `message_delta`), whether the stream ended with its format's end marker,
/// and any error event.
#[derive(Debug, Default)]
struct ClientView {
    text: String,
    usage: Option<Value>,
    usage_chunks: usize,
    ended: bool,
    error: Option<Value>,
}

fn client_view(format: ClientFormat, bytes: &[u8]) -> ClientView {
    let mut view = ClientView::default();
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    for event in events {
        match format {
            ClientFormat::OpenAi => {
                if event.is_openai_done() {
                    view.ended = true;
                    continue;
                }
                let value: Value = serde_json::from_str(&event.data).unwrap();
                if value.get("error").is_some() {
                    view.error = Some(value["error"].clone());
                    continue;
                }
                if let Some(text) = value["choices"][0]["delta"]["content"].as_str() {
                    view.text.push_str(text);
                }
                if !value["usage"].is_null() && value.get("usage").is_some() {
                    view.usage_chunks += 1;
                    assert_eq!(value["choices"], Value::Array(Vec::new()), "{value}");
                    view.usage = Some(value["usage"].clone());
                }
            }
            ClientFormat::Anthropic => {
                let name = event.event.clone().unwrap_or_default();
                let value: Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(value["type"], name.as_str(), "event name and type agree");
                match name.as_str() {
                    "content_block_delta" => {
                        view.text
                            .push_str(value["delta"]["text"].as_str().unwrap_or_default());
                    }
                    "message_delta" => view.usage = Some(value["usage"].clone()),
                    "message_stop" => view.ended = true,
                    "error" => view.error = Some(value["error"].clone()),
                    _ => {}
                }
            }
            ClientFormat::Responses => {
                let name = event.event.clone().unwrap_or_default();
                let value: Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(value["type"], name.as_str(), "event name and type agree");
                match name.as_str() {
                    "response.output_text.delta" => {
                        view.text
                            .push_str(value["delta"].as_str().unwrap_or_default());
                    }
                    "response.completed" | "response.incomplete" => {
                        view.usage = Some(value["response"]["usage"].clone());
                        view.ended = true;
                    }
                    "error" => {
                        view.error = Some(
                            serde_json::json!({"type": value["code"], "message": value["message"]}),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    view
}

/// A one-message request in `client`'s format.
fn minimal_request(client: ClientFormat) -> wire::pair::ClientRequest {
    let body: &[u8] = match client {
        ClientFormat::OpenAi => {
            br#"{"model": "m", "messages": [{"role": "user", "content": "x"}]}"#
        }
        ClientFormat::Anthropic => {
            br#"{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}"#
        }
        ClientFormat::Responses => br#"{"model": "m", "input": "x"}"#,
    };
    client.parse_request(body).unwrap()
}

fn stream_cases() -> Vec<StreamCase> {
    let docs = fixture("anthropic_stream_docs.sse");
    let cut = docs
        .windows(b"event: message_delta".len())
        .position(|w| w == b"event: message_delta")
        .unwrap();
    let truncated = docs[..cut].to_vec();
    let cache = fixture("anthropic_stream_cache_1h.sse");
    let error = fixture("anthropic_stream_error.sse");
    let openai = fixture("openai_stream_usage.sse");
    let llama = fixture("llamacpp_stream.sse");
    // The llama.cpp text, as recorded (fixtures/llamacpp_stream.sse: 11 content deltas).
    let llama_text = "Alejandro, a wise and compassionate soul.";
    // The cache fixture's message_start: 21 uncached, 1,800 read, 1,000 5-minute and
    // 2,000 1-hour writes; message_delta: 4 output tokens.
    let cache_usage = TokenUsage {
        input_tokens: 21,
        output_tokens: 4,
        cache_read_tokens: 1800,
        cache_write_tokens: 1000,
        cache_write_1h_tokens: 2000,
    };
    use BackendProtocol::{Anthropic as AnthropicApi, OpenAiCompatible};
    use ClientFormat::{Anthropic, OpenAi};
    let case =
        |name, bytes: &Vec<u8>, client, backend, wants_usage, text, usage, estimated, end| {
            StreamCase {
                name,
                bytes: bytes.clone(),
                client,
                backend,
                wants_usage,
                input_estimate: 7,
                text,
                usage,
                estimated,
                end,
            }
        };
    let cases = vec![
        // The docs stream: 25 in, 15 out (message_delta's cumulative count).
        case(
            "docs→anthropic",
            &docs,
            Anthropic,
            AnthropicApi,
            false,
            "Hello!",
            usage(25, 15),
            false,
            End::Done,
        ),
        case(
            "docs→openai",
            &docs,
            OpenAi,
            AnthropicApi,
            false,
            "Hello!",
            usage(25, 15),
            false,
            End::Done,
        ),
        case(
            "docs→openai+usage",
            &docs,
            OpenAi,
            AnthropicApi,
            true,
            "Hello!",
            usage(25, 15),
            false,
            End::Done,
        ),
        // Cut before message_delta: message_start's input, and the 2 text deltas as
        // the output estimate.
        case(
            "truncated→anthropic",
            &truncated,
            Anthropic,
            AnthropicApi,
            false,
            "Hello!",
            usage(25, 2),
            true,
            End::Truncated,
        ),
        case(
            "truncated→openai",
            &truncated,
            OpenAi,
            AnthropicApi,
            false,
            "Hello!",
            usage(25, 2),
            true,
            End::Truncated,
        ),
        case(
            "cache→anthropic",
            &cache,
            Anthropic,
            AnthropicApi,
            false,
            "Cached.",
            cache_usage,
            false,
            End::Done,
        ),
        case(
            "cache→openai+usage",
            &cache,
            OpenAi,
            AnthropicApi,
            true,
            "Cached.",
            cache_usage,
            false,
            End::Done,
        ),
        // The error after one delta: the usage seen (25 in, 1 text delta), estimated.
        case(
            "error→anthropic",
            &error,
            Anthropic,
            AnthropicApi,
            false,
            "Hel",
            usage(25, 1),
            true,
            End::UpstreamError(ApiErrorKind::Overloaded, "Overloaded"),
        ),
        case(
            "error→openai",
            &error,
            OpenAi,
            AnthropicApi,
            false,
            "Hel",
            usage(25, 1),
            true,
            End::UpstreamError(ApiErrorKind::Overloaded, "Overloaded"),
        ),
        // The OpenAI reference stream: 9 in, 2 out from its usage chunk.
        case(
            "openai→openai",
            &openai,
            OpenAi,
            OpenAiCompatible,
            false,
            "Hello!",
            usage(9, 2),
            false,
            End::Done,
        ),
        case(
            "openai→openai+usage",
            &openai,
            OpenAi,
            OpenAiCompatible,
            true,
            "Hello!",
            usage(9, 2),
            false,
            End::Done,
        ),
        case(
            "openai→anthropic",
            &openai,
            Anthropic,
            OpenAiCompatible,
            false,
            "Hello!",
            usage(9, 2),
            false,
            End::Done,
        ),
        // The llama.cpp server sends no usage on streams: the input estimate (7) and
        // one token per content delta (11).
        case(
            "llama→openai",
            &llama,
            OpenAi,
            OpenAiCompatible,
            false,
            llama_text,
            usage(7, 11),
            true,
            End::Done,
        ),
        case(
            "llama→openai+usage",
            &llama,
            OpenAi,
            OpenAiCompatible,
            true,
            llama_text,
            usage(7, 11),
            true,
            End::Done,
        ),
        case(
            "llama→anthropic",
            &llama,
            Anthropic,
            OpenAiCompatible,
            false,
            llama_text,
            usage(7, 11),
            true,
            End::Done,
        ),
    ];
    // A Responses client gets every stream an OpenAI client gets, as Responses events.
    let responses: Vec<StreamCase> = cases
        .iter()
        .filter(|c| c.client == OpenAi && !c.wants_usage)
        .map(|c| StreamCase {
            name: Box::leak(c.name.replace("openai", "responses").into_boxed_str()),
            bytes: c.bytes.clone(),
            client: ClientFormat::Responses,
            backend: c.backend,
            wants_usage: false,
            input_estimate: c.input_estimate,
            text: c.text,
            usage: c.usage,
            estimated: c.estimated,
            end: c.end.clone(),
        })
        .collect();
    assert!(
        responses.len() >= 5,
        "the Responses cases cover every upstream"
    );
    cases.into_iter().chain(responses).collect()
}

fn check_view(case: &StreamCase, out: &[u8], end: &End) {
    let view = client_view(case.client, out);
    let name = case.name;
    assert_eq!(view.text, case.text, "{name}: text");
    match end {
        End::Done => {
            assert!(view.ended, "{name}: the client's end marker");
            assert!(view.error.is_none(), "{name}");
        }
        End::UpstreamError(kind, message) => {
            let error = view.error.as_ref().expect("an error event");
            let kind_field = match case.client {
                ClientFormat::OpenAi => kind.openai_type(),
                ClientFormat::Anthropic => kind.anthropic_type(),
                ClientFormat::Responses => kind.openai_default_code().unwrap_or(kind.openai_type()),
            };
            assert_eq!(error["type"], kind_field, "{name}");
            assert_eq!(
                error["message"],
                format!("backend reported: {message}"),
                "{name}"
            );
            assert!(!view.ended, "{name}: no end marker after an error");
        }
        End::Truncated => assert!(!view.ended, "{name}"),
    }
    let expected_input = case.usage.total_input_tokens();
    match case.client {
        ClientFormat::OpenAi if case.wants_usage && *end == End::Done => {
            assert_eq!(view.usage_chunks, 1, "{name}: one usage chunk");
            let sent = view.usage.as_ref().unwrap();
            assert_eq!(sent["prompt_tokens"], expected_input, "{name}");
            assert_eq!(
                sent["completion_tokens"], case.usage.output_tokens,
                "{name}"
            );
            assert_eq!(
                sent["total_tokens"],
                expected_input + case.usage.output_tokens,
                "{name}"
            );
        }
        ClientFormat::OpenAi => assert_eq!(view.usage_chunks, 0, "{name}: usage not asked for"),
        ClientFormat::Anthropic if *end == End::Done => {
            let sent = view.usage.as_ref().expect("message_delta usage");
            assert_eq!(sent["output_tokens"], case.usage.output_tokens, "{name}");
        }
        ClientFormat::Anthropic => {}
        ClientFormat::Responses if *end == End::Done => {
            let sent = view.usage.as_ref().expect("response.completed usage");
            assert_eq!(sent["input_tokens"], expected_input, "{name}");
            assert_eq!(sent["output_tokens"], case.usage.output_tokens, "{name}");
        }
        ClientFormat::Responses => {}
    }
}

#[test]
fn streams_relay_the_same_at_every_split_point() {
    for case in stream_cases() {
        let (whole, end, usage, estimated) = relay(&case, &[&case.bytes]);
        assert_eq!(end, case.end, "{}", case.name);
        assert_eq!(usage, case.usage, "{}", case.name);
        assert_eq!(estimated, case.estimated, "{}", case.name);
        check_view(&case, &whole, &end);
        for split in 0..=case.bytes.len() {
            let (head, tail) = case.bytes.split_at(split);
            let (out, split_end, split_usage, split_estimated) = relay(&case, &[head, tail]);
            assert_eq!(out, whole, "{} split at {split}", case.name);
            assert_eq!(split_end, end, "{} split at {split}", case.name);
            assert_eq!(split_usage, usage, "{} split at {split}", case.name);
            assert_eq!(split_estimated, estimated, "{} split at {split}", case.name);
        }
        let bytes: Vec<&[u8]> = case.bytes.chunks(1).collect();
        let (out, ..) = relay(&case, &bytes);
        assert_eq!(out, whole, "{} byte by byte", case.name);
    }
}

#[test]
fn passed_through_anthropic_streams_are_byte_for_byte_events() {
    // Anthropic → Anthropic re-frames each event unchanged: the data lines of the
    // fixture come out in order (the comment lines and the ping's position included).
    let bytes = fixture("anthropic_stream_docs.sse");
    let case = &stream_cases()[0];
    let (out, ..) = relay(case, &[&bytes]);
    let data_in: Vec<String> = SseParser::new()
        .feed(&bytes)
        .into_iter()
        .map(|e| e.data)
        .collect();
    let data_out: Vec<String> = SseParser::new()
        .feed(&out)
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data_in, data_out);
}

struct CompleteCase {
    name: &'static str,
    body: Vec<u8>,
    client: ClientFormat,
    backend: BackendProtocol,
    text: &'static str,
    usage: TokenUsage,
    estimated: bool,
}

fn text_of(format: ClientFormat, body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap();
    let text = match format {
        ClientFormat::OpenAi => &value["choices"][0]["message"]["content"],
        ClientFormat::Anthropic => &value["content"][0]["text"],
        ClientFormat::Responses => &value["output"][0]["content"][0]["text"],
    };
    text.as_str().unwrap_or_default().to_string()
}

#[test]
fn whole_responses_are_checked_translated_and_counted() {
    use BackendProtocol::{Anthropic as AnthropicApi, OpenAi as OpenAiApi, OpenAiCompatible};
    use ClientFormat::{Anthropic, OpenAi};
    // fixtures/anthropic_complete.json: 2,095 uncached, 1,800 read, 148 5-minute and
    // 100 1-hour writes, 503 out.
    let anthropic_usage = TokenUsage {
        input_tokens: 2095,
        output_tokens: 503,
        cache_read_tokens: 1800,
        cache_write_tokens: 148,
        cache_write_1h_tokens: 100,
    };
    let anthropic = fixture("anthropic_complete.json");
    let openai = fixture("openai_complete.json");
    let llama = fixture("llamacpp_complete.json");
    let no_usage = br#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"twelve chars"},"finish_reason":"stop"}]}"#.to_vec();
    let cases = [
        CompleteCase {
            name: "anthropic→anthropic",
            body: anthropic.clone(),
            client: Anthropic,
            backend: AnthropicApi,
            text: "Hi! My name is Claude.",
            usage: anthropic_usage,
            estimated: false,
        },
        CompleteCase {
            name: "anthropic→openai",
            body: anthropic,
            client: OpenAi,
            backend: AnthropicApi,
            text: "Hi! My name is Claude.",
            usage: anthropic_usage,
            estimated: false,
        },
        // fixtures/openai_complete.json: 19 prompt, 10 completion tokens.
        CompleteCase {
            name: "openai→openai",
            body: openai.clone(),
            client: OpenAi,
            backend: OpenAiApi,
            text: "Hello! How can I assist you today?",
            usage: usage(19, 10),
            estimated: false,
        },
        CompleteCase {
            name: "openai→anthropic",
            body: openai,
            client: Anthropic,
            backend: OpenAiApi,
            text: "Hello! How can I assist you today?",
            usage: usage(19, 10),
            estimated: false,
        },
        // fixtures/llamacpp_complete.json: 36 prompt, 12 completion tokens, as recorded.
        CompleteCase {
            name: "llama→openai",
            body: llama.clone(),
            client: OpenAi,
            backend: OpenAiCompatible,
            text: "Alejandro, a wise and just soul with a",
            usage: usage(36, 12),
            estimated: false,
        },
        CompleteCase {
            name: "llama→anthropic",
            body: llama,
            client: Anthropic,
            backend: OpenAiCompatible,
            text: "Alejandro, a wise and just soul with a",
            usage: usage(36, 12),
            estimated: false,
        },
        // No usage: the input estimate (7) and 12 characters / 4 = 3 output tokens.
        CompleteCase {
            name: "no usage→openai",
            body: no_usage.clone(),
            client: OpenAi,
            backend: OpenAiCompatible,
            text: "twelve chars",
            usage: usage(7, 3),
            estimated: true,
        },
        CompleteCase {
            name: "no usage→anthropic",
            body: no_usage,
            client: Anthropic,
            backend: OpenAiCompatible,
            text: "twelve chars",
            usage: usage(7, 3),
            estimated: true,
        },
    ];
    for case in cases {
        let pair = FormatPair::new(case.client, case.backend);
        let completed = pair
            .read_complete(
                Bytes::from(case.body.clone()),
                7,
                &minimal_request(case.client),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(completed.usage, case.usage, "{}", case.name);
        assert_eq!(completed.estimated, case.estimated, "{}", case.name);
        assert_eq!(
            text_of(case.client, &completed.body),
            case.text,
            "{}",
            case.name
        );
        if pair.passes_through() {
            assert_eq!(
                completed.body, case.body,
                "{}: passed through as sent",
                case.name
            );
        } else if case.client == OpenAi && !case.estimated {
            let value: Value = serde_json::from_slice(&completed.body).unwrap();
            assert_eq!(
                value["usage"]["prompt_tokens"],
                case.usage.total_input_tokens(),
                "{}: prompt_tokens counts every input class",
                case.name
            );
        }
    }
}

#[test]
fn bodies_of_the_wrong_shape_are_refused() {
    let cases: [(&[u8], BackendProtocol); 4] = [
        (
            b"<html>502 Bad Gateway</html>",
            BackendProtocol::OpenAiCompatible,
        ),
        (
            br#"{"error":{"message":"nope","type":"server_error"}}"#,
            BackendProtocol::OpenAiCompatible,
        ),
        (
            br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
            BackendProtocol::Anthropic,
        ),
        (b"", BackendProtocol::Anthropic),
    ];
    for (body, backend) in cases {
        for client in [
            ClientFormat::OpenAi,
            ClientFormat::Anthropic,
            ClientFormat::Responses,
        ] {
            let error = FormatPair::new(client, backend)
                .read_complete(Bytes::copy_from_slice(body), 0, &minimal_request(client))
                .unwrap_err();
            assert_eq!(error.protocol, backend.name());
            assert!(error.to_string().contains("not a valid"), "{error}");
        }
    }
}

/// A mirrored stream's transcript (`capture_text`) is the text the client reads, in
/// every mode and however the upstream bytes are split; without it there is none.
#[test]
fn a_captured_transcript_is_the_text_the_client_reads() {
    for case in stream_cases() {
        let pair = FormatPair::new(case.client, case.backend);
        let transcript = |pieces: &[&[u8]]| {
            let mut relay = pair.stream_relay(&init(&case));
            relay.capture_text();
            let mut out = BytesMut::new();
            for piece in pieces {
                if relay.feed(piece, &mut out) != RelayStep::Continue {
                    break;
                }
            }
            let _ = relay.end_of_input(&mut out);
            relay.text().unwrap().to_string()
        };
        let whole = transcript(&[&case.bytes]);
        assert_eq!(whole, case.text, "{}", case.name);
        let bytes: Vec<&[u8]> = case.bytes.chunks(7).collect();
        assert_eq!(transcript(&bytes), whole, "{} in 7-byte pieces", case.name);
        assert!(pair.stream_relay(&init(&case)).text().is_none());
    }
}
