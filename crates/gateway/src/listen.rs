//! Accepting client connections: HTTP/1.1, and HTTP/2 without TLS (h2c, from a load
//! balancer that speaks it to its backends), told apart by peeking at the first bytes,
//! then served by hyper; on shutdown, no new connection is taken and the open ones
//! finish the requests they carry.
//!
//! Peeking leaves the bytes in the socket, so hyper's HTTP/1 connection reads the
//! request into its own 8 KiB buffer. The usual way (hyper-util's `auto` builder, which
//! `axum::serve` uses) reads 24 bytes first and hands them back: hyper then holds the
//! request in a 16 KiB buffer for the whole life of the connection, 8 KiB more on
//! every open stream (bench/streams/RESULTS.md).
//!
//! It must not look at requests: routing, limits and errors are the router's.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What every HTTP/2 connection opens with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a connection may take to send enough bytes to tell its version.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` is cancelled, then waits for the open
/// connections to finish. The caller bounds the wait: dropping this future aborts the
/// connections still open, so their requests end (and queue their ledger rows) before
/// the ledger closes.
pub(crate) async fn serve(listener: TcpListener, app: axum::Router, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum::serve does.
                    tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        connections.spawn(connection(tcp, app.clone(), stop.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn connection(tcp: TcpStream, app: axum::Router, stop: CancellationToken) {
    // Responses are small and latency matters: no Nagle delay on client sockets.
    let _ = tcp.set_nodelay(true);
    let http2 = match tokio::time::timeout(SNIFF_TIMEOUT, speaks_http2(&tcp)).await {
        Ok(Ok(http2)) => http2,
        // Closed, reset or silent before its first request: nothing to answer.
        _ => return,
    };
    let io = TokioIo::new(tcp);
    let service = TowerToHyperService::new(app);
    if http2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service);
        // Boxed: the HTTP/1 connection is the common one, and an HTTP/2 connection's
        // state would otherwise make every connection's task as large as its own.
        Box::pin(drive(conn, stop, |conn| conn.graceful_shutdown())).await;
    } else {
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        drive(conn, stop, |conn| conn.graceful_shutdown()).await;
    }
}

/// Runs a connection to its end; on `stop`, asks it to finish its requests and close.
async fn drive<C, E>(conn: C, stop: CancellationToken, shut: impl FnOnce(Pin<&mut C>))
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            shut(conn.as_mut());
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

/// Whether the connection opens with the HTTP/2 preface, read without consuming it.
/// The first bytes almost always settle it (`POST`, `GET`: not `PR…`); a connection
/// that has sent only part of the preface is peeked again shortly.
async fn speaks_http2(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != PREFACE[..n] {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniff(chunks: &[&[u8]]) -> std::io::Result<bool> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            for chunk in chunks {
                tcp.write_all(&chunk).await.unwrap();
                tcp.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let result = speaks_http2(&tcp).await;
        // Nothing was consumed: the whole request is still there to read.
        if result.is_ok() {
            let mut buf = [0u8; 64];
            assert!(tcp.peek(&mut buf).await.unwrap() > 0);
        }
        client.abort();
        result
    }

    #[tokio::test]
    async fn http1_methods_are_told_from_the_preface_on_their_first_bytes() {
        assert!(!sniff(&[b"POST /v1/messages HTTP/1.1\r\n"]).await.unwrap());
        assert!(!sniff(&[b"GET /metrics HTTP/1.1\r\n"]).await.unwrap());
        assert!(!sniff(&[b"P", b"UT / HTTP/1.1\r\n"]).await.unwrap());
    }

    #[tokio::test]
    async fn the_preface_is_recognised_when_it_comes_in_pieces() {
        assert!(sniff(&[PREFACE]).await.unwrap());
        assert!(sniff(&[&PREFACE[..5], &PREFACE[5..]]).await.unwrap());
        // Almost the preface, then something else.
        assert!(!sniff(&[&PREFACE[..10], b"xxxxxxxxxxxxxxxx"]).await.unwrap());
    }
}
