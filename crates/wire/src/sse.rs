//! Server-sent events: an incremental parser for upstream streams and writers for client frames.
//!
//! The parser follows the WHATWG event-stream rules
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//! lines end in `\n`, `\r\n` or `\r`; a blank line dispatches the event;
//! `data:` lines are joined with `\n`; lines starting with `:` are comments;
//! one space after the colon is dropped; `id:` and `retry:` are ignored, since
//! neither API uses them. Chunks may split lines and even `\r\n` pairs anywhere.

use bytes::Bytes;

/// The frame that ends an OpenAI stream.
pub const OPENAI_DONE: &[u8] = b"data: [DONE]\n\n";

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the event had one (Anthropic names every event; OpenAI names none).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// True for OpenAI's end-of-stream marker, `data: [DONE]`.
    pub fn is_openai_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Incremental SSE parser: feed it bytes as they arrive, get back whole events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`, so a leading `\n` in the next one belongs to it.
    after_cr: bool,
    /// The byte-order mark at the very start of the stream has been handled.
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next chunk of the stream and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if rest.is_empty() {
            return events;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            let ends_in_cr = rest[end] == b'\r';
            let event = if self.line.is_empty() {
                // The whole line is in this chunk: no copy needed.
                self.process_line(&rest[..end])
            } else {
                self.line.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.line);
                let event = self.process_line(&line);
                // Keep the line buffer's allocation for the next line.
                self.line = line;
                self.line.clear();
                event
            };
            events.extend(event);
            rest = &rest[end + 1..];
            if ends_in_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// Ends the stream: a last line without a terminator is processed and a
    /// pending event with data is dispatched. The spec discards such an event;
    /// it is kept here because some servers close without the final blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            if let Some(event) = self.process_line(&line) {
                return Some(event);
            }
        }
        self.process_line(b"")
    }

    fn process_line(&mut self, raw_line: &[u8]) -> Option<SseEvent> {
        let mut line = raw_line;
        if !self.started {
            self.started = true;
            if let Some(tail) = line.strip_prefix("\u{feff}".as_bytes()) {
                line = tail;
            }
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

/// An OpenAI stream frame: `data: <json>\n\n`. `json` must be compact (no raw newlines).
pub fn openai_data(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The OpenAI end-of-stream frame, `data: [DONE]\n\n`, as `Bytes`.
pub fn openai_done() -> Bytes {
    Bytes::from_static(OPENAI_DONE)
}

/// An Anthropic stream frame: `event: <name>\ndata: <json>\n\n`. `json` must be compact.
pub fn anthropic_event(name: &str, json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(name.len() + json.len() + 16);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.feed(chunk));
        }
        events.extend(parser.finish());
        events
    }

    /// Every way of cutting `stream` into two or three chunks gives the same events.
    fn check_every_split(stream: &[u8], expected: &[SseEvent]) {
        assert_eq!(parse_all(&[stream]), expected, "whole stream");
        for first in 0..=stream.len() {
            assert_eq!(
                parse_all(&[&stream[..first], &stream[first..]]),
                expected,
                "split at {first}"
            );
            for second in first..=stream.len() {
                assert_eq!(
                    parse_all(&[&stream[..first], &stream[first..second], &stream[second..]]),
                    expected,
                    "split at {first} and {second}"
                );
            }
        }
    }

    #[test]
    fn anthropic_named_events() {
        // Shape from https://docs.claude.com/en/docs/build-with-claude/streaming
        let stream = b"event: ping\ndata: {\"type\": \"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        check_every_split(
            stream,
            &[
                event(Some("ping"), "{\"type\": \"ping\"}"),
                event(Some("message_stop"), "{\"type\":\"message_stop\"}"),
            ],
        );
    }

    #[test]
    fn openai_unnamed_events_and_done() {
        let stream = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
        let events = parse_all(&[stream]);
        assert_eq!(events, [event(None, "{\"a\":1}"), event(None, "[DONE]")]);
        assert!(!events[0].is_openai_done());
        assert!(events[1].is_openai_done());
    }

    #[test]
    fn line_endings_crlf_and_cr() {
        let expected = [event(Some("e"), "x"), event(None, "y")];
        check_every_split(b"event: e\r\ndata: x\r\n\r\ndata: y\r\n\r\n", &expected);
        check_every_split(b"event: e\rdata: x\r\rdata: y\r\r", &expected);
        check_every_split(b"event: e\ndata: x\r\n\rdata: y\n\n", &expected);
    }

    #[test]
    fn multi_line_data_comments_and_field_rules() {
        let stream = b": keep-alive comment\ndata: first\ndata:second\ndata:  two spaces\nid: 7\nretry: 100\nunknown: x\n\n";
        check_every_split(stream, &[event(None, "first\nsecond\n two spaces")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_empty_data_is() {
        let events = parse_all(&[b"event: lonely\n\ndata\n\nevent: e\ndata:\n\n"]);
        assert_eq!(events, [event(None, ""), event(Some("e"), "")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let stream = "data: héllo — 日本\n\n".as_bytes();
        check_every_split(stream, &[event(None, "héllo — 日本")]);
    }

    #[test]
    fn byte_order_mark_is_dropped_only_at_start() {
        let stream = "\u{feff}data: a\n\n".as_bytes();
        check_every_split(stream, &[event(None, "a")]);
    }

    #[test]
    fn finish_flushes_an_unterminated_event() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: tail").is_empty());
        assert_eq!(parser.finish(), Some(event(None, "tail")));
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn writers_frame_exactly() {
        assert_eq!(&openai_data(b"{\"x\":1}")[..], b"data: {\"x\":1}\n\n");
        assert_eq!(&openai_done()[..], b"data: [DONE]\n\n");
        assert_eq!(OPENAI_DONE, b"data: [DONE]\n\n");
        assert_eq!(
            &anthropic_event("ping", b"{\"type\":\"ping\"}")[..],
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
    }

    #[test]
    fn written_frames_parse_back() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&anthropic_event("message_stop", b"{}"));
        stream.extend_from_slice(&openai_data(b"{\"k\":\"v\"}"));
        stream.extend_from_slice(OPENAI_DONE);
        check_every_split(
            &stream,
            &[
                event(Some("message_stop"), "{}"),
                event(None, "{\"k\":\"v\"}"),
                event(None, "[DONE]"),
            ],
        );
    }
}
