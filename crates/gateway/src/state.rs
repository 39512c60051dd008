//! The state every request shares: the runtime snapshot, the ledger handle, the
//! tracker of row-writing tasks, and the drain flag. Cheap to clone; read without
//! locks on the request path.
//!
//! It owns reloading the config. It must not serve HTTP (that is `server`) or handle
//! requests (that is `proxy`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ledger::LedgerHandle;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::task::TaskTracker;

use crate::config;
use crate::error::GatewayError;
use crate::runtime::Runtime;

/// State shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub ledger: LedgerHandle,
    pub tracker: TaskTracker,
    /// Shadow copies and their pairs.
    pub(crate) shadow: Arc<crate::shadow::ShadowHub>,
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) config_path: Option<Arc<PathBuf>>,
    pub(crate) reload_lock: Arc<tokio::sync::Mutex<()>>,
    /// The name every ledger row of this process records (`row::replica_name`).
    pub(crate) replica: Arc<str>,
    /// Client keys' rates and budgets; kept across reloads.
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// Keys and budgets in the ledger database, when it is PostgreSQL.
    pub(crate) shared: Option<Arc<crate::shared::Shared>>,
}

impl AppState {
    /// The client keys stored in the ledger database (none without PostgreSQL).
    pub fn stored_keys(&self) -> Arc<Vec<crate::keys::ClientKey>> {
        static NONE: std::sync::LazyLock<Arc<Vec<crate::keys::ClientKey>>> =
            std::sync::LazyLock::new(Default::default);
        self.shared
            .as_ref()
            .map_or_else(|| Arc::clone(&NONE), |s| Arc::clone(&s.keys()))
    }

    /// Whether a key is required even with none configured or active: the ledger
    /// database has held one.
    pub fn keys_required(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.ever_had_keys())
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Re-reads the config file and swaps it in; in-flight requests keep the old one.
    /// An invalid config is rejected and the old one keeps serving.
    pub async fn reload(&self) -> Result<String, GatewayError> {
        let _serial = self.reload_lock.lock().await;
        let Some(path) = &self.config_path else {
            return Err(GatewayError::NoConfigFile);
        };
        let config = config::load(path)?;
        let current = self.runtime.load_full();
        if config.listen != current.config.listen || config.ledger != current.config.ledger {
            tracing::warn!(
                "server.listen and server.ledger changes take effect only after a restart"
            );
        }
        let runtime = Runtime::build(config, Some(&current))?;
        self.shadow.refresh(&runtime.config);
        if let Some(shared) = &self.shared {
            shared.set_config_keys(&runtime.config.client_keys);
        }
        let summary = format!(
            "{} backends, {} routes",
            runtime.backends.len(),
            runtime.config.routes.len()
        );
        self.runtime.store(Arc::new(runtime));
        Ok(summary)
    }
}
