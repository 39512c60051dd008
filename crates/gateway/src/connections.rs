//! The connections to one backend, and the HTTP version spoken on them.
//!
//! Over HTTP/1.1 every request in flight holds a connection of its own, from one
//! client's pool. Over HTTP/2 requests share connections, and a server takes only so
//! many streams on one (`SETTINGS_MAX_CONCURRENT_STREAMS`; hyper's default is 200):
//! past that, a request on a single shared connection waits for a stream to end, which
//! for long streams means a first-byte timeout. So an HTTP/2 backend gets a set of
//! clients, one connection each, and a request goes to the first carrying fewer than
//! `streams_per_connection`; when all are full, another client (connection) is added.
//! 10,000 streams to an HTTP/2 backend take 100 sockets instead of 10,000.
//!
//! It must not read or write bodies or know vendor formats: it hands out clients.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

/// `[backend.http]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// `"auto"` (default: HTTP/2 where TLS negotiates it, else HTTP/1.1), `"1.1"`, or
    /// `"2"` (HTTP/2 only, without TLS as well: h2c with prior knowledge).
    pub version: Option<String>,
    /// HTTP/2: the most requests one connection carries at once (default 100, the
    /// least a server should allow by RFC 9113); keep it at or under the server's own
    /// limit.
    pub streams_per_connection: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Auto,
    Http1,
    Http2,
}

/// The validated `[backend.http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http {
    pub version: Version,
    pub streams_per_connection: u32,
}

pub const DEFAULT_STREAMS_PER_CONNECTION: u32 = 100;

impl Http {
    /// `what` names the backend in errors (`backend \`api\``).
    pub fn from_file(file: &HttpFile, what: &str) -> Result<Http, String> {
        let version = match file.version.as_deref() {
            None | Some("auto") => Version::Auto,
            Some("1.1") => Version::Http1,
            Some("2") => Version::Http2,
            Some(other) => {
                return Err(format!(
                    "{what}.http.version = {other:?} is not allowed: expected \"auto\", \"1.1\" or \"2\""
                ))
            }
        };
        let streams_per_connection = match file.streams_per_connection {
            Some(0) => {
                return Err(format!(
                    "{what}.http.streams_per_connection = 0 is not allowed: expected an integer > 0"
                ))
            }
            Some(n) => n,
            None => DEFAULT_STREAMS_PER_CONNECTION,
        };
        Ok(Http {
            version,
            streams_per_connection,
        })
    }
}

impl Default for Http {
    fn default() -> Http {
        Http {
            version: Version::Auto,
            streams_per_connection: DEFAULT_STREAMS_PER_CONNECTION,
        }
    }
}

/// What a backend's clients are built with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: Http,
    pub connect_timeout: Duration,
    /// Loopback backends skip the proxy lookup.
    pub loopback: bool,
    /// Whether the endpoint is `https` (only TLS can negotiate HTTP/2 under `auto`).
    pub tls: bool,
    /// The backend's name, for `costfloor_backend_http2_connections`.
    pub backend: String,
}

struct Slot {
    client: reqwest::Client,
    streams: AtomicU32,
}

/// A request's hold on its connection's stream count, released on drop: keep it as
/// long as the response body is read.
#[must_use]
pub struct Lease(Option<Arc<Slot>>);

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = &self.0 {
            slot.streams.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub struct Connections {
    settings: Settings,
    clients: Clients,
}

enum Clients {
    /// HTTP/1.1 only: every request shares one client, which keeps a connection per
    /// request in flight.
    Shared(reqwest::Client),
    /// HTTP/2: a set of clients, one connection each.
    Multiplexed(Multiplexed),
}

/// What an HTTP/2 backend's set of clients keeps.
struct Multiplexed {
    per_connection: u32,
    /// Set to the number of clients (connections).
    opened: ::metrics::Gauge,
    slots: RwLock<Vec<Arc<Slot>>>,
}

impl Multiplexed {
    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("settings", &self.settings)
            .field("clients", &self.clients())
            .finish()
    }
}

impl Connections {
    pub fn new(settings: Settings) -> Result<Connections, reqwest::Error> {
        let multiplexed = match settings.http.version {
            Version::Http1 => false,
            Version::Http2 => true,
            Version::Auto => settings.tls,
        };
        let client = build(&settings)?;
        let clients = if multiplexed {
            let opened = ::metrics::gauge!(crate::metrics::HTTP2_CONNECTIONS, "backend" => settings.backend.clone());
            opened.set(1.0);
            Clients::Multiplexed(Multiplexed {
                per_connection: settings.http.streams_per_connection,
                opened,
                slots: RwLock::new(vec![Arc::new(Slot {
                    client,
                    streams: AtomicU32::new(0),
                })]),
            })
        } else {
            Clients::Shared(client)
        };
        Ok(Connections { settings, clients })
    }

    /// A client to send one request with, and the lease to hold while its answer is
    /// read.
    pub fn lease(&self) -> (reqwest::Client, Lease) {
        let http2 = match &self.clients {
            Clients::Shared(client) => return (client.clone(), Lease(None)),
            Clients::Multiplexed(http2) => http2,
        };
        let limit = http2.per_connection;
        // The first client with room takes one more request.
        let room = |slots: &[Arc<Slot>]| {
            slots.iter().find_map(|slot| {
                let taken = slot
                    .streams
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < limit).then_some(n + 1)
                    })
                    .is_ok();
                taken.then(|| (slot.client.clone(), Lease(Some(Arc::clone(slot)))))
            })
        };
        if let Some(leased) = room(&http2.slots()) {
            return leased;
        }
        // Checked again under the write lock: another request may have added a client.
        let mut slots = http2.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(leased) = room(&slots) {
            return leased;
        }
        // Building a client only fails on TLS setup, which the first one passed.
        match build(&self.settings) {
            Ok(client) => {
                let slot = Arc::new(Slot {
                    client,
                    streams: AtomicU32::new(1),
                });
                slots.push(Arc::clone(&slot));
                http2.opened.set(slots.len() as f64);
                (slot.client.clone(), Lease(Some(slot)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot build another HTTP/2 client; sharing a full one");
                let slot = Arc::clone(&slots[0]);
                slot.streams.fetch_add(1, Ordering::AcqRel);
                (slot.client.clone(), Lease(Some(slot)))
            }
        }
    }

    /// How many clients (HTTP/2: connections) this backend has opened so far.
    pub fn clients(&self) -> usize {
        match &self.clients {
            Clients::Shared(_) => 1,
            Clients::Multiplexed(http2) => http2.slots().len(),
        }
    }

    /// Requests in flight on each client; a shared HTTP/1.1 client counts none.
    pub fn streams(&self) -> Vec<u32> {
        match &self.clients {
            Clients::Shared(_) => vec![0],
            Clients::Multiplexed(http2) => http2
                .slots()
                .iter()
                .map(|slot| slot.streams.load(Ordering::Acquire))
                .collect(),
        }
    }
}

fn build(settings: &Settings) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder();
    // Loopback backends (a local vLLM, llama.cpp server, sim) never go through a
    // proxy, and skipping the per-request proxy match is measurably cheaper.
    if settings.loopback {
        builder = builder.no_proxy();
    }
    builder = match settings.http.version {
        Version::Auto => builder,
        Version::Http1 => builder.http1_only(),
        Version::Http2 => builder.http2_prior_knowledge(),
    };
    builder
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(version: Version, per: u32, tls: bool) -> Connections {
        Connections::new(Settings {
            http: Http {
                version,
                streams_per_connection: per,
            },
            connect_timeout: Duration::from_secs(1),
            loopback: true,
            tls,
            backend: "test".into(),
        })
        .unwrap()
    }

    #[test]
    fn http1_shares_one_client_and_counts_nothing() {
        let c = connections(Version::Auto, 2, false);
        let leases: Vec<_> = (0..5).map(|_| c.lease()).collect();
        assert_eq!(c.clients(), 1);
        assert_eq!(c.streams(), vec![0]);
        drop(leases);
    }

    #[test]
    fn http2_opens_another_connection_when_all_are_full_and_reuses_freed_room() {
        let c = connections(Version::Http2, 3, false);
        let mut leases: Vec<_> = (0..7).map(|_| c.lease().1).collect();
        // 7 requests, 3 a connection: 3 + 3 + 1.
        assert_eq!(c.streams(), vec![3, 3, 1]);
        drop(leases.remove(0));
        drop(leases.remove(0));
        assert_eq!(c.streams(), vec![1, 3, 1]);
        // The first with room is filled before a new one is opened.
        leases.push(c.lease().1);
        leases.push(c.lease().1);
        leases.push(c.lease().1);
        assert_eq!(c.streams(), vec![3, 3, 2]);
        drop(leases);
        assert_eq!(c.streams(), vec![0, 0, 0]);
    }

    #[test]
    fn auto_over_tls_may_multiplex() {
        let c = connections(Version::Auto, 1, true);
        let _a = c.lease();
        let _b = c.lease();
        assert_eq!(c.clients(), 2);
    }

    #[test]
    fn bad_settings_name_the_field_the_value_and_what_is_allowed() {
        let what = "backend `api`";
        let file = HttpFile {
            version: Some("3".into()),
            streams_per_connection: None,
        };
        assert_eq!(
            Http::from_file(&file, what).unwrap_err(),
            "backend `api`.http.version = \"3\" is not allowed: expected \"auto\", \"1.1\" or \"2\""
        );
        let file = HttpFile {
            version: None,
            streams_per_connection: Some(0),
        };
        assert!(Http::from_file(&file, what)
            .unwrap_err()
            .contains("streams_per_connection = 0 is not allowed"));
        assert_eq!(
            Http::from_file(&HttpFile::default(), what).unwrap(),
            Http::default()
        );
    }
}
