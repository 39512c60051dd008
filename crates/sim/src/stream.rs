//! Streamed bodies: a precomputed script of timed frames, played by a stream that
//! carries a [`StreamGuard`].

use std::io;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;

use crate::config::FaultKind;
use crate::state::StreamGuard;

/// One write of a streamed body.
#[derive(Debug)]
pub(crate) struct Frame {
    /// Wait before sending it.
    pub delay: Duration,
    pub bytes: Bytes,
    /// Whether it carries an output token.
    pub token: bool,
    /// Whether its wait is a token gap: one decode step under the capacity model.
    pub step: bool,
}

/// How a script ends once its frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The last frame was the terminal event.
    Complete,
    /// The last frame was an error event (`error_event_mid_stream`).
    ErrorEvent,
    /// Break the connection (`reset_mid_stream`).
    Reset,
}

#[derive(Debug)]
pub(crate) struct Script {
    frames: Vec<Frame>,
    pending_delay: Duration,
    pending_step: bool,
}

impl Script {
    pub fn new(first_delay: Duration) -> Script {
        Script {
            frames: Vec::new(),
            pending_delay: first_delay,
            pending_step: false,
        }
    }

    /// Adds a frame; it waits for any delay added since the previous frame.
    pub fn push(&mut self, bytes: impl Into<Bytes>, token: bool) {
        self.frames.push(Frame {
            delay: std::mem::take(&mut self.pending_delay),
            bytes: bytes.into(),
            token,
            step: std::mem::take(&mut self.pending_step),
        });
    }

    /// Makes the next frame wait one token gap: `d`, or, under the capacity model,
    /// the decode step current when the wait starts.
    pub fn wait_token(&mut self, d: Duration) {
        self.pending_delay += d;
        self.pending_step = true;
    }

    /// Plays the script as a response body. Under the capacity model a token gap
    /// ends at the previous token's deadline plus the current step, so the timer's
    /// rounding does not add up over a stream.
    pub fn into_body(self, ending: Ending, guard: StreamGuard) -> Body {
        let state = Some((self.frames.into_iter(), guard, None::<Instant>));
        let stream = futures_util::stream::unfold(state, move |state| async move {
            let (mut frames, mut guard, mut deadline) = state?;
            let Some(frame) = frames.next() else {
                finish(&mut guard, ending);
                return match ending {
                    Ending::Reset => {
                        // Let the server flush what was sent before breaking the connection.
                        tokio::time::sleep(FLUSH_PAUSE).await;
                        Some((Err(reset_error()), None))
                    }
                    Ending::Complete | Ending::ErrorEvent => None,
                };
            };
            match (frame.step, guard.step(), deadline) {
                (true, Some(step), Some(previous)) => {
                    let next = previous + step;
                    tokio::time::sleep_until(next.into()).await;
                    deadline = Some(next);
                }
                _ => {
                    if !frame.delay.is_zero() {
                        tokio::time::sleep(frame.delay).await;
                    }
                    if frame.token {
                        deadline = Some(Instant::now());
                    }
                }
            }
            if frame.token {
                guard.on_token();
            }
            if frames.len() == 0 && ending != Ending::Reset {
                finish(&mut guard, ending);
            }
            Some((Ok(frame.bytes), Some((frames, guard, deadline))))
        });
        Body::from_stream(stream)
    }
}

fn finish(guard: &mut StreamGuard, ending: Ending) {
    match ending {
        Ending::Complete => guard.complete(),
        Ending::ErrorEvent => guard.faulted(FaultKind::ErrorEventMidStream),
        Ending::Reset => guard.faulted(FaultKind::ResetMidStream),
    }
}

/// How long a reset waits before breaking the connection, so that the bytes sent
/// before it leave the server.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "simulated reset_mid_stream")
}

/// A body that sends `head` and then breaks the connection.
pub(crate) fn truncated_body(head: Bytes) -> Body {
    let stream = futures_util::stream::unfold(Some(Some(head)), |state| async move {
        match state? {
            Some(head) => Some((Ok(head), Some(None))),
            None => {
                tokio::time::sleep(FLUSH_PAUSE).await;
                Some((Err(reset_error()), None))
            }
        }
    });
    Body::from_stream(stream)
}

/// An Anthropic SSE event.
pub(crate) fn sse_event(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// An OpenAI SSE data line.
pub(crate) fn sse_data(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}
