//! Quality records (schema version 5): offline evaluation runs and their answers
//! (`eval_runs`, `eval_results`), and the pairs of production requests mirrored to a
//! reference backend (`shadow_pairs`).
//!
//! Both are written on connections of their own, off the request path: an eval run
//! writes each answer as it arrives, so a run killed at any point keeps every answer it
//! paid for; the gateway's shadow task writes one pair per mirrored request.

use serde::{Deserialize, Serialize};

use crate::reader::open_db;
use crate::schema::WriteDb;
use crate::sql::{args, SqlRow, SqlRowExt};
use crate::{Location, ReportFilter, Result};

/// One evaluation run: its settings are the eval crate's JSON, kept as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRun {
    pub run_id: String,
    pub created_at_unix_ms: i64,
    pub settings: String,
    /// `running`, `complete`, `stopped` (interrupted or capped; resumable).
    pub status: String,
}

/// One answer of one side (`candidate`, `baseline` or `judge`) to one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    pub run_id: String,
    pub sample_id: String,
    pub side: String,
    pub task: String,
    pub backend: String,
    /// The answer's text; `None` when the request failed.
    pub output: Option<String>,
    /// The scorer's verdict: `None` when ungraded (failed, or graded by the judge).
    pub correct: Option<bool>,
    /// A judge's grade (the scale, or for a pairwise judge 1 = candidate better, 0.5 tie, 0).
    pub grade: Option<f64>,
    /// What the scorer extracted or the judge decided, e.g. the label or the order.
    pub detail: Option<String>,
    /// Why the request failed, as the client would have been told.
    pub error: Option<String>,
    pub latency_us: i64,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub cost_nusd: i64,
    pub attempts: i64,
    pub finished_at_unix_ms: i64,
}

/// One mirrored request: the primary's answer and the shadow's, with the shadow's
/// usage and cost, which never enter the primary's ledger row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowPair {
    pub request_id: String,
    pub started_at_unix_ms: i64,
    pub route: String,
    pub task: Option<String>,
    pub primary_backend: String,
    pub shadow_backend: String,
    /// The request as text (`[role] text` lines), kept with the outputs for a judge.
    pub prompt: Option<String>,
    /// `None` unless the route stores outputs (`store_outputs`).
    pub primary_output: Option<String>,
    pub shadow_output: Option<String>,
    pub primary_input_tokens: i64,
    pub primary_output_tokens: i64,
    pub shadow_input_tokens: i64,
    pub shadow_output_tokens: i64,
    pub shadow_cost_nusd: i64,
    pub shadow_latency_us: i64,
    pub shadow_error: Option<String>,
}

/// Reads and writes evaluation runs and their answers.
#[derive(Debug)]
pub struct EvalStore {
    db: WriteDb,
}

impl EvalStore {
    /// Opens (creating and migrating if needed) the ledger file.
    pub fn open(location: impl Into<Location>) -> Result<EvalStore> {
        Ok(EvalStore {
            db: WriteDb::open(&location.into())?,
        })
    }

    /// Records a new run.
    pub fn create_run(&self, run: &EvalRun) -> Result<()> {
        self.db.lock().execute(
            "INSERT INTO eval_runs (run_id, created_at_unix_ms, settings, status)
             VALUES ($1, $2, $3, $4)",
            &args![
                &run.run_id,
                run.created_at_unix_ms,
                &run.settings,
                &run.status
            ],
        )?;
        Ok(())
    }

    pub fn set_status(&self, run_id: &str, status: &str) -> Result<()> {
        self.db.lock().execute(
            "UPDATE eval_runs SET status = $1 WHERE run_id = $2",
            &args![status, run_id],
        )?;
        Ok(())
    }

    /// The run, or `None` when there is no such run.
    pub fn run(&self, run_id: &str) -> Result<Option<EvalRun>> {
        self.db.lock().first(
            "SELECT run_id, created_at_unix_ms, settings, status FROM eval_runs WHERE run_id = $1",
            &args![run_id],
            |r| {
                Ok(EvalRun {
                    run_id: r.string(0)?,
                    created_at_unix_ms: r.req_int(1)?,
                    settings: r.string(2)?,
                    status: r.string(3)?,
                })
            },
        )
    }

    /// Every run's id, newest first.
    pub fn run_ids(&self) -> Result<Vec<String>> {
        self.db.lock().collect(
            "SELECT run_id FROM eval_runs ORDER BY created_at_unix_ms DESC, run_id",
            &[],
            |r| r.string(0),
        )
    }

    /// Stores one answer. An answer already stored for the same (run, sample, side) is
    /// kept and this one ignored (the first answer paid for is the one that counts),
    /// unless the stored one is a failure, which a resumed run's new answer replaces.
    /// Returns whether it was stored.
    pub fn insert_result(&self, result: &EvalResult) -> Result<bool> {
        let changed = self.db.lock().execute(
            "INSERT INTO eval_results (run_id, sample_id, side, task, backend, output,
                correct, grade, detail, error, latency_us, input_tokens, cache_read_tokens,
                cache_write_tokens, output_tokens, cost_nusd, attempts, finished_at_unix_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (run_id, sample_id, side) DO UPDATE SET
                task = excluded.task, backend = excluded.backend, output = excluded.output,
                correct = excluded.correct, grade = excluded.grade, detail = excluded.detail,
                error = excluded.error, latency_us = excluded.latency_us,
                input_tokens = excluded.input_tokens, cache_read_tokens = excluded.cache_read_tokens,
                cache_write_tokens = excluded.cache_write_tokens,
                output_tokens = excluded.output_tokens,
                cost_nusd = eval_results.cost_nusd + excluded.cost_nusd,
                attempts = eval_results.attempts + excluded.attempts,
                finished_at_unix_ms = excluded.finished_at_unix_ms
             WHERE eval_results.error IS NOT NULL",
            &args![
                &result.run_id,
                &result.sample_id,
                &result.side,
                &result.task,
                &result.backend,
                &result.output,
                result.correct,
                result.grade,
                &result.detail,
                &result.error,
                result.latency_us,
                result.input_tokens,
                result.cache_read_tokens,
                result.cache_write_tokens,
                result.output_tokens,
                result.cost_nusd,
                result.attempts,
                result.finished_at_unix_ms,
            ],
        )?;
        Ok(changed == 1)
    }

    /// Every answer of a run, ordered by sample and side.
    pub fn results(&self, run_id: &str) -> Result<Vec<EvalResult>> {
        self.db.lock().collect(
            "SELECT run_id, sample_id, side, task, backend, output, correct, grade, detail, error,
                    latency_us, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens,
                    cost_nusd, attempts, finished_at_unix_ms
             FROM eval_results WHERE run_id = $1 ORDER BY sample_id, side",
            &args![run_id],
            result_from_sql,
        )
    }
}

fn result_from_sql(r: &dyn SqlRow) -> Result<EvalResult> {
    Ok(EvalResult {
        run_id: r.string(0)?,
        sample_id: r.string(1)?,
        side: r.string(2)?,
        task: r.string(3)?,
        backend: r.string(4)?,
        output: r.opt_string(5)?,
        correct: r.opt_flag(6)?,
        grade: r.real(7)?,
        detail: r.opt_string(8)?,
        error: r.opt_string(9)?,
        latency_us: r.req_int(10)?,
        input_tokens: r.req_int(11)?,
        cache_read_tokens: r.req_int(12)?,
        cache_write_tokens: r.req_int(13)?,
        output_tokens: r.req_int(14)?,
        cost_nusd: r.req_int(15)?,
        attempts: r.req_int(16)?,
        finished_at_unix_ms: r.req_int(17)?,
    })
}

/// The gateway's writer of shadow pairs, and their reader.
#[derive(Debug)]
pub struct ShadowStore {
    db: WriteDb,
}

impl ShadowStore {
    /// Opens (creating and migrating if needed) the ledger file.
    pub fn open(location: impl Into<Location>) -> Result<ShadowStore> {
        Ok(ShadowStore {
            db: WriteDb::open(&location.into())?,
        })
    }

    /// Stores `pairs` in one transaction. Blocking: call it off the async runtime.
    pub fn insert_many(&self, pairs: &[ShadowPair]) -> Result<()> {
        let rows: Vec<Vec<crate::sql::Param<'_>>> = pairs
            .iter()
            .map(|pair| {
                args![
                    &pair.request_id,
                    pair.started_at_unix_ms,
                    &pair.route,
                    &pair.task,
                    &pair.primary_backend,
                    &pair.shadow_backend,
                    &pair.primary_output,
                    &pair.shadow_output,
                    pair.primary_input_tokens,
                    pair.primary_output_tokens,
                    pair.shadow_input_tokens,
                    pair.shadow_output_tokens,
                    pair.shadow_cost_nusd,
                    pair.shadow_latency_us,
                    &pair.shadow_error,
                    &pair.prompt,
                ]
                .to_vec()
            })
            .collect();
        self.db.lock().execute_many(
            "INSERT INTO shadow_pairs (request_id, started_at_unix_ms, route, task,
                primary_backend, shadow_backend, primary_output, shadow_output,
                primary_input_tokens, primary_output_tokens, shadow_input_tokens,
                shadow_output_tokens, shadow_cost_nusd, shadow_latency_us, shadow_error, prompt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &rows,
        )?;
        Ok(())
    }

    /// The shadow spend of `route` since `since_unix_ms`, in nano-USD (an integer sum).
    pub fn spend_since(&self, route: &str, since_unix_ms: i64) -> Result<i64> {
        Ok(self
            .db
            .lock()
            .first(
                "SELECT CAST(COALESCE(SUM(shadow_cost_nusd), 0) AS BIGINT) FROM shadow_pairs
                 WHERE route = $1 AND started_at_unix_ms >= $2",
                &args![route, since_unix_ms],
                |r| r.req_int(0),
            )?
            .unwrap_or(0))
    }

    /// Deletes the pairs of `route` older than `before_unix_ms` (retention); returns how
    /// many went. Their cost leaves the monthly sums only once the month is over, as
    /// retention is at least a month when a cap is set (checked by the gateway config).
    pub fn delete_older_than(&self, route: &str, before_unix_ms: i64) -> Result<usize> {
        let deleted = self.db.lock().execute(
            "DELETE FROM shadow_pairs WHERE route = $1 AND started_at_unix_ms < $2",
            &args![route, before_unix_ms],
        )?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

/// The shadow pairs in `filter` (by start time), optionally of one task, oldest first.
pub fn read_shadow_pairs(
    location: impl Into<Location>,
    filter: &ReportFilter,
    task: Option<&str>,
) -> Result<Vec<ShadowPair>> {
    open_db(&location.into(), false)?.collect(
        "SELECT request_id, started_at_unix_ms, route, task, primary_backend, shadow_backend,
                primary_output, shadow_output, primary_input_tokens, primary_output_tokens,
                shadow_input_tokens, shadow_output_tokens, shadow_cost_nusd, shadow_latency_us,
                shadow_error, prompt
         FROM shadow_pairs
         WHERE (CAST($1 AS BIGINT) IS NULL OR started_at_unix_ms >= $1)
           AND (CAST($2 AS BIGINT) IS NULL OR started_at_unix_ms < $2)
           AND (CAST($3 AS TEXT) IS NULL OR task = $3)
         ORDER BY started_at_unix_ms, id",
        &args![filter.since_unix_ms, filter.until_unix_ms, task],
        |r| {
            Ok(ShadowPair {
                request_id: r.string(0)?,
                started_at_unix_ms: r.req_int(1)?,
                route: r.string(2)?,
                task: r.opt_string(3)?,
                primary_backend: r.string(4)?,
                shadow_backend: r.string(5)?,
                primary_output: r.opt_string(6)?,
                shadow_output: r.opt_string(7)?,
                primary_input_tokens: r.req_int(8)?,
                primary_output_tokens: r.req_int(9)?,
                shadow_input_tokens: r.req_int(10)?,
                shadow_output_tokens: r.req_int(11)?,
                shadow_cost_nusd: r.req_int(12)?,
                shadow_latency_us: r.req_int(13)?,
                shadow_error: r.opt_string(14)?,
                prompt: r.opt_string(15)?,
            })
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn result(sample: &str, side: &str, cost: i64) -> EvalResult {
        EvalResult {
            run_id: "r1".into(),
            sample_id: sample.into(),
            side: side.into(),
            task: "t".into(),
            backend: "b".into(),
            output: Some("yes".into()),
            correct: Some(true),
            grade: None,
            detail: None,
            error: None,
            latency_us: 10,
            input_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 1,
            cost_nusd: cost,
            attempts: 1,
            finished_at_unix_ms: 1,
        }
    }

    #[test]
    fn results_are_stored_once_per_sample_and_side() {
        let dir = std::env::temp_dir().join(format!("cf-quality-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.db");
        let _ = std::fs::remove_file(&path);
        let store = EvalStore::open(&path).unwrap();
        store
            .create_run(&EvalRun {
                run_id: "r1".into(),
                created_at_unix_ms: 1,
                settings: "{}".into(),
                status: "running".into(),
            })
            .unwrap();
        assert!(store.insert_result(&result("a", "candidate", 7)).unwrap());
        assert!(store.insert_result(&result("a", "baseline", 9)).unwrap());
        // A second answer to the same side of the same sample is not stored.
        assert!(!store.insert_result(&result("a", "candidate", 100)).unwrap());
        let results = store.results("r1").unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].cost_nusd, 7, "the first answer is kept");
        // A failed answer is replaced by a later one, its cost and attempts added.
        let failed = EvalResult {
            output: None,
            correct: None,
            error: Some("429".into()),
            cost_nusd: 0,
            ..result("b", "candidate", 0)
        };
        assert!(store.insert_result(&failed).unwrap());
        assert!(store.insert_result(&result("b", "candidate", 5)).unwrap());
        let b = store
            .results("r1")
            .unwrap()
            .into_iter()
            .find(|r| r.sample_id == "b")
            .unwrap();
        assert_eq!((b.error, b.cost_nusd, b.attempts), (None, 5, 2));
        store.set_status("r1", "complete").unwrap();
        assert_eq!(store.run("r1").unwrap().unwrap().status, "complete");
        assert!(store.run("nope").unwrap().is_none());

        let shadows = ShadowStore::open(&path).unwrap();
        let pair = ShadowPair {
            request_id: "q".into(),
            started_at_unix_ms: 1_000,
            route: "simple".into(),
            task: Some("classify".into()),
            primary_backend: "llama".into(),
            shadow_backend: "haiku".into(),
            prompt: None,
            primary_output: None,
            shadow_output: None,
            primary_input_tokens: 3,
            primary_output_tokens: 2,
            shadow_input_tokens: 3,
            shadow_output_tokens: 2,
            shadow_cost_nusd: 13,
            shadow_latency_us: 5,
            shadow_error: None,
        };
        shadows
            .insert_many(&[
                pair.clone(),
                ShadowPair {
                    started_at_unix_ms: 5_000,
                    ..pair.clone()
                },
            ])
            .unwrap();
        assert_eq!(shadows.spend_since("simple", 0).unwrap(), 26);
        assert_eq!(shadows.spend_since("simple", 2_000).unwrap(), 13);
        assert_eq!(shadows.spend_since("other", 0).unwrap(), 0);
        let all = read_shadow_pairs(&path, &ReportFilter::default(), Some("classify")).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(shadows.delete_older_than("simple", 2_000).unwrap(), 1);
        assert_eq!(
            read_shadow_pairs(&path, &ReportFilter::default(), None)
                .unwrap()
                .len(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
