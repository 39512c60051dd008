//! Samples of self-hosted backends' metrics endpoints (table `backend_samples`): what
//! the gateway's sampler writes and what a utilisation report reads.
//!
//! Samples are few (one per backend per interval), so they are written directly on a
//! connection of their own, off the request path, not through the request queue.

use serde::{Deserialize, Serialize};

use crate::reader::open_db;
use crate::schema::WriteDb;
use crate::sql::{args, SqlRow, SqlRowExt};
use crate::{Location, ReportFilter, Result};

/// One sample of one backend. Gauges and counters are as the server exported them;
/// `None` where it exported no such series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendSample {
    /// The gateway backend's name.
    pub backend: String,
    pub sampled_at_unix_ms: i64,
    /// Which formats the values came from: `vllm`, `llamacpp`, `dcgm`, joined by `+`.
    pub source: String,
    /// Requests being processed (vLLM `num_requests_running`, llama.cpp `requests_processing`).
    pub requests_running: Option<f64>,
    /// Requests waiting (vLLM `num_requests_waiting`, llama.cpp `requests_deferred`).
    pub requests_waiting: Option<f64>,
    /// KV-cache usage, 0 to 1.
    pub kv_cache_usage: Option<f64>,
    /// Counter: prompt tokens processed since the server started.
    pub prompt_tokens_total: Option<f64>,
    /// Counter: tokens generated since the server started.
    pub generation_tokens_total: Option<f64>,
    /// Counter: decode steps (llama.cpp `n_decode_total`), which grows while it works.
    pub decode_steps_total: Option<f64>,
    /// Mean GPU utilisation over the backend's GPUs, 0 to 1 (DCGM `DCGM_FI_DEV_GPU_UTIL` / 100).
    pub gpu_util: Option<f64>,
    /// Mean graphics-engine activity, 0 to 1 (DCGM `DCGM_FI_PROF_GR_ENGINE_ACTIVE`).
    pub gpu_engine_active: Option<f64>,
    /// GPUs the DCGM series covered.
    pub gpus: Option<i64>,
}

/// The writing side: one connection, used by the sampler task only.
#[derive(Debug)]
pub struct SampleStore {
    db: WriteDb,
}

impl SampleStore {
    /// Opens (creating and migrating if needed) the ledger for writing samples.
    pub fn open(location: impl Into<Location>) -> Result<SampleStore> {
        Ok(SampleStore {
            db: WriteDb::open(&location.into())?,
        })
    }

    /// Writes `samples` in one transaction. Blocking: call it off the async runtime.
    pub fn insert(&self, samples: &[BackendSample]) -> Result<()> {
        let rows: Vec<Vec<crate::sql::Param<'_>>> = samples
            .iter()
            .map(|s| {
                args![
                    &s.backend,
                    s.sampled_at_unix_ms,
                    &s.source,
                    s.requests_running,
                    s.requests_waiting,
                    s.kv_cache_usage,
                    s.prompt_tokens_total,
                    s.generation_tokens_total,
                    s.decode_steps_total,
                    s.gpu_util,
                    s.gpu_engine_active,
                    s.gpus,
                ]
                .to_vec()
            })
            .collect();
        self.db.lock().execute_many(
            "INSERT INTO backend_samples (backend, sampled_at_unix_ms, source,
                requests_running, requests_waiting, kv_cache_usage, prompt_tokens_total,
                generation_tokens_total, decode_steps_total, gpu_util, gpu_engine_active, gpus)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &rows,
        )?;
        Ok(())
    }
}

/// The samples in `filter` (by `sampled_at_unix_ms`), in time order per backend.
pub fn read_samples(
    location: impl Into<Location>,
    filter: &ReportFilter,
) -> Result<Vec<BackendSample>> {
    open_db(&location.into(), false)?.collect(
        "SELECT backend, sampled_at_unix_ms, source, requests_running, requests_waiting,
                kv_cache_usage, prompt_tokens_total, generation_tokens_total,
                decode_steps_total, gpu_util, gpu_engine_active, gpus
         FROM backend_samples
         WHERE (CAST($1 AS BIGINT) IS NULL OR sampled_at_unix_ms >= $1)
           AND (CAST($2 AS BIGINT) IS NULL OR sampled_at_unix_ms < $2)
         ORDER BY backend, sampled_at_unix_ms, id",
        &args![filter.since_unix_ms, filter.until_unix_ms],
        sample_from_sql,
    )
}

fn sample_from_sql(r: &dyn SqlRow) -> Result<BackendSample> {
    Ok(BackendSample {
        backend: r.string(0)?,
        sampled_at_unix_ms: r.req_int(1)?,
        source: r.string(2)?,
        requests_running: r.real(3)?,
        requests_waiting: r.real(4)?,
        kv_cache_usage: r.real(5)?,
        prompt_tokens_total: r.real(6)?,
        generation_tokens_total: r.real(7)?,
        decode_steps_total: r.real(8)?,
        gpu_util: r.real(9)?,
        gpu_engine_active: r.real(10)?,
        gpus: r.int(11)?,
    })
}
