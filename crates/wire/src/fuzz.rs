//! Entry points that drive every parser and translation of this crate with arbitrary
//! bytes: the bodies of the cargo-fuzz targets in `fuzz/`, and of the test that
//! replays their corpus. Each must return (never panic) whatever the input.
//!
//! - [`request`]: a client body in one format, parsed and checked, then sent to
//!   every backend protocol (translated where needed), counted, and read back.
//! - [`stream`]: an upstream SSE body, split at a point the input chooses, relayed
//!   to every client format.
//! - [`response`]: a whole upstream body read for every (client, backend) pair.

use bytes::BytesMut;

use crate::pair::{BackendProtocol, ClientFormat, FormatPair, RelayInit, RelayStep};

const BACKENDS: [BackendProtocol; 4] = [
    BackendProtocol::OpenAiResponses,
    BackendProtocol::Anthropic,
    BackendProtocol::OpenAi,
    BackendProtocol::OpenAiCompatible,
];
const CLIENTS: [ClientFormat; 3] = [
    ClientFormat::OpenAi,
    ClientFormat::Anthropic,
    ClientFormat::Responses,
];

/// A client request body in `format`: parsed, checked, its upstream body built for
/// each backend protocol, its token-count attempts, and every reader of it.
pub fn request(format: ClientFormat, data: &[u8]) {
    let Ok(mut request) = format.parse_request(data) else {
        return;
    };
    let _ = request.estimated_input_tokens();
    let _ = request.transcript();
    let _ = request.task_label();
    let _ = request.max_output_tokens(1024);
    let _ = request.without_stream();
    for backend in BACKENDS {
        let pair = FormatPair::new(format, backend);
        if let Ok(body) = pair.upstream_body(&mut request, "fuzz-model", 1024) {
            // What the gateway sends must parse as the backend's own request.
            let upstream = if backend.speaks_anthropic() {
                ClientFormat::Anthropic
            } else {
                ClientFormat::OpenAi
            };
            let _ = upstream.parse_request(&body);
        }
        let _ = request.count_attempts(backend, "fuzz-model");
    }
    if format == ClientFormat::Anthropic {
        let _ = crate::pair::ClientRequest::parse_count(data);
    }
}

/// An upstream stream body from `backend`, relayed to every client; the first byte
/// chooses where the body is split.
pub fn stream(backend: BackendProtocol, data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(body.len());
    for client in CLIENTS {
        for wants_usage in [false, true] {
            let mut relay = FormatPair::new(client, backend).stream_relay(&RelayInit {
                request_id: "fuzz",
                model: "fuzz-model",
                created_unix_s: 0,
                client_wants_usage: wants_usage,
                input_estimate: 7,
                responses_echo: None,
            });
            relay.capture_text();
            let mut out = BytesMut::new();
            let mut step = relay.feed(&body[..cut], &mut out);
            if step == RelayStep::Continue {
                step = relay.feed(&body[cut..], &mut out);
            }
            if step == RelayStep::Continue {
                step = relay.end_of_input(&mut out);
            }
            if let RelayStep::UpstreamError { kind, message } = step {
                relay.fail(kind, &message, &mut out);
            }
            let _ = relay.usage();
            let _ = relay.invalid_tool_arguments();
            let _ = relay.text();
        }
    }
}

/// A whole upstream body, read for every (client, backend) pair.
pub fn response(data: &[u8]) {
    let body = bytes::Bytes::copy_from_slice(data);
    for client in CLIENTS {
        let minimal: &[u8] = match client {
            ClientFormat::OpenAi => br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            ClientFormat::Anthropic => {
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#
            }
            ClientFormat::Responses => br#"{"model":"m","input":"x"}"#,
        };
        let Ok(request) = client.parse_request(minimal) else {
            continue;
        };
        for backend in BACKENDS {
            if let Ok(completed) =
                FormatPair::new(client, backend).read_complete(body.clone(), 3, &request)
            {
                let _ = completed.text(client);
            }
        }
    }
    let _ = crate::pair::read_count(crate::pair::CountTarget::ServerPath("/tokenize"), data);
    let _ = crate::error::kind_from_body(data);
}
