//! One streamed request, timed: the moment each text delta arrives (TTFT, the gaps
//! between deltas), the usage the stream reports, and how it ended. Frames are read
//! by `wire` (`sse::SseParser`, `bench::read_event`); the only allocations per
//! request are its body, its gap list and the parser's event text.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use wire::sse::SseParser;

use crate::record::{Outcome, Sample};
use crate::target::{error_chain, Target};

/// Sends again after a stale pooled connection, at most this many times.
const STALE_RETRIES: u32 = 3;

/// Whether a send failed on a connection the server had closed: a request error that is
/// neither a connect error nor a timeout, so no answer can have started.
fn stale_connection(err: &reqwest::Error) -> bool {
    err.is_request() && !err.is_connect() && !err.is_timeout()
}

/// Sends `body` to the generation endpoint and reads the stream to its end.
/// `expected_input_tokens` stands in for the prompt's usage when the stream reports
/// none; `max_tokens` sizes the gap list.
pub(crate) async fn stream_one(
    target: &Target,
    url: &str,
    body: Bytes,
    expected_input_tokens: u64,
    max_tokens: u32,
) -> Outcome {
    let sent = Instant::now();
    // A pooled connection the server closed while idle (keep-alive timeouts are 5 s in
    // llama.cpp's server and uvicorn, and llama.cpp's closes after a few requests) fails
    // as it is reused, before any answer: sent again, up to STALE_RETRIES times, timed
    // from the first attempt. Every pooled connection may be stale at once.
    let mut attempt = 0;
    let response = loop {
        match target.post(url, body.clone()).send().await {
            Ok(response) => break response,
            Err(err) if stale_connection(&err) && attempt < STALE_RETRIES => attempt += 1,
            Err(err) => return Outcome::Failed(failure_kind(&err)),
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Outcome::Failed(format!("HTTP {}", status.as_u16()));
    }
    let mut parser = SseParser::new();
    let mut stream = response.bytes_stream();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut gaps_us: Vec<u32> = Vec::with_capacity(usize::try_from(max_tokens).unwrap_or(0));
    let mut deltas: u64 = 0;
    let mut input_tokens: Option<u64> = None;
    let mut output_tokens: Option<u64> = None;
    let mut ended = false;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => return Outcome::Failed(failure_kind(&err)),
        };
        let now = Instant::now();
        for event in parser.feed(&chunk) {
            let reading = wire::bench::read_event(target.format, &event);
            if let Some(message) = reading.error {
                return Outcome::Failed(format!("error event: {}", shorten(&message)));
            }
            if reading.invalid {
                return Outcome::Failed("a stream event that is not JSON".to_owned());
            }
            if reading.text_deltas > 0 {
                deltas += u64::from(reading.text_deltas);
                match last {
                    None => first = Some(now),
                    Some(previous) => {
                        let gap = now.saturating_duration_since(previous).as_micros();
                        gaps_us.push(u32::try_from(gap).unwrap_or(u32::MAX));
                    }
                }
                last = Some(now);
            }
            input_tokens = reading.input_tokens.or(input_tokens);
            output_tokens = reading.output_tokens.or(output_tokens);
            ended |= reading.end;
        }
    }
    let finished = Instant::now();
    if !ended {
        return Outcome::Failed("stream ended before its terminal event".to_owned());
    }
    let Some(first) = first else {
        return Outcome::Failed("stream carried no text".to_owned());
    };
    Outcome::Completed(Sample {
        ttft: first.saturating_duration_since(sent),
        e2e: finished.saturating_duration_since(sent),
        input_tokens: input_tokens.unwrap_or(expected_input_tokens),
        output_tokens: output_tokens.unwrap_or(deltas),
        gaps_us,
        finished,
    })
}

/// A transport failure in a few words, the same for every request that meets it.
fn failure_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else if err.is_body() || err.is_decode() {
        "stream broken".to_owned()
    } else {
        shorten(&error_chain(err))
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(120).collect()
}
