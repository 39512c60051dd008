//! The review, utilisation and daily cost: the sections built on the core's functions.
//!
//! - The observed workload is the extraction `workload from-ledger` writes
//!   ([`observed_traffic`] then `costfloor_core::observed`), and the review reruns
//!   `costfloor_core::plan` on it: nothing is priced here.
//! - Utilisation per self-hosted backend comes from its metrics samples (DCGM, or the
//!   server's token counters) over the capacity the plan's sizing gives its deployment,
//!   else from the ledger's tokens (an estimate, labelled as one), per week
//!   (`costfloor_core::utilisation`).

use costfloor_core::catalog::Catalog;
use costfloor_core::money::Money;
use costfloor_core::observed::{observed_workload, ObservedTraffic};
use costfloor_core::plan::{plan, Plan, PlanRequest, DEFAULT_API_IDS, DEFAULT_DEPLOYMENT_IDS};
use costfloor_core::review::{review, Alternatives, CurrentSetup, Review};
use costfloor_core::utilisation::{self, Basis, MetricsSample, Point, Week};
use costfloor_core::workload::{Eligibility, Workload, WorkloadFile, WorkloadFlags};
use ledger::{LedgerReader, ReportFilter};
use serde::Serialize;

use crate::period::{format_utc, MS_PER_DAY, MS_PER_HOUR};
use crate::{Observed, Report, ReportError};

/// A self-hosted backend as the gateway config names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfHostedBackend {
    pub backend: String,
    pub deployment: String,
    /// `max_in_flight` (0: none).
    pub max_in_flight: u32,
}

/// What runs today, from the gateway config.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub self_hosted: Vec<SelfHostedBackend>,
    /// The catalog API models the API backends are priced as.
    pub api_models: Vec<String>,
}

/// The observed traffic of a period, as the core's observed workload takes it: one scan
/// of the rows (the report gathers the same in its own pass, [`crate::build_with_observed`]).
pub fn observed_traffic(
    reader: &LedgerReader,
    filter: &ReportFilter,
) -> Result<ObservedTraffic, ReportError> {
    let mut observed = Observed::default();
    reader.scan(filter, |row| observed.add(row))?;
    Ok(observed.traffic(filter.since_unix_ms, filter.until_unix_ms))
}

/// One day's cost: what the API charged, the fixed costs of the day, and the all-API
/// counterfactual.
#[derive(Clone, Debug, Serialize)]
pub struct Day {
    pub day: String,
    pub day_unix_ms: i64,
    pub requests: u64,
    pub api_spend_usd: f64,
    /// API spend plus a day of fixed costs; `null` when the fixed costs are unknown.
    pub actual_usd: Option<f64>,
    pub counterfactual_usd: f64,
}

/// One self-hosted backend's utilisation.
#[derive(Clone, Debug, Serialize)]
pub struct BackendUtilisation {
    pub backend: String,
    pub basis: Basis,
    /// Tokens per second the deployment carries at the observed shape (the plan's sizing).
    pub capacity_tokens_per_s: f64,
    pub weeks: Vec<Week>,
    /// Weeks under the threshold, by their Monday (UTC).
    pub weeks_under_threshold: Vec<String>,
    #[serde(serialize_with = "costfloor_core::cost::usd")]
    pub idle_cost_usd: Money,
    #[serde(skip)]
    pub points: Vec<Point>,
}

/// How good a self-hosted backend's estimated input counts are.
#[derive(Clone, Debug, Serialize)]
pub struct EstimateQuality {
    pub backend: String,
    /// Answered rows whose counts were estimated (the backend reported none).
    pub estimated_rows: u64,
    /// Rows with an exact count and the raw estimate, that the error is measured on.
    pub exact_rows: u64,
    /// The calibrated estimate's root-mean-square error on those rows, in tokens, and as
    /// a share of their mean input; `null` under two rows.
    pub rmse_tokens: Option<f64>,
    pub rmse_share: Option<f64>,
}

impl EstimateQuality {
    /// The figure in words, as the report prints it.
    pub fn sentence(&self) -> String {
        match (self.rmse_tokens, self.rmse_share) {
            (Some(tokens), Some(share)) => format!(
                "Estimated input counts on {}: {} rows; the calibrated estimate is off by {:.1} tokens ({:.1}%) RMS on {} rows with exact counts.",
                self.backend, self.estimated_rows, tokens, share * 100.0, self.exact_rows
            ),
            _ => format!(
                "Estimated input counts on {}: {} rows; too few rows with exact counts ({}) to measure their error.",
                self.backend, self.estimated_rows, self.exact_rows
            ),
        }
    }
}

/// A backend or route whose p99 time to first token is over the SLO.
#[derive(Clone, Debug, Serialize)]
pub struct SloMiss {
    /// `backend` or `route`.
    pub kind: &'static str,
    pub name: String,
    pub ttft_p99_ms: f64,
}

/// The latency SLO check: the catalog's time to first token (`slo_ttft_ms`) against
/// each backend's and route's p99 of streamed requests.
#[derive(Clone, Debug, Serialize)]
pub struct SloCheck {
    pub ttft_ms: f64,
    pub misses: Vec<SloMiss>,
}

fn slo_check(report: &Report, ttft_ms: f64) -> SloCheck {
    let groups = [
        ("backend", &report.latency.by_backend),
        ("route", &report.latency.by_route),
    ];
    let misses = groups
        .into_iter()
        .flat_map(|(kind, list)| {
            list.iter().filter_map(move |g| {
                g.ttft.filter(|p| p.p99_ms > ttft_ms).map(|p| SloMiss {
                    kind,
                    name: g.name.clone(),
                    ttft_p99_ms: p.p99_ms,
                })
            })
        })
        .collect();
    SloCheck { ttft_ms, misses }
}

/// The sections past cost, latency and traffic.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewSection {
    /// The workload observed over the period, as `workload from-ledger` writes it.
    pub observed_workload: Option<WorkloadFile>,
    pub observed_notes: Vec<String>,
    /// The plan on the observed workload against today's setup.
    pub review: Option<Review>,
    /// Why there is no review, when there is none.
    pub review_missing: Option<String>,
    pub threshold: f64,
    pub utilisation: Vec<BackendUtilisation>,
    pub daily: Vec<Day>,
    pub slo: SloCheck,
    /// Per self-hosted backend: estimated rows and the error of the calibrated estimate.
    pub estimates: Vec<EstimateQuality>,
    /// Quality per task from comparisons of the two sides; `null` when none was
    /// recorded, with `quality_note` saying so.
    pub quality: Option<Vec<String>>,
    pub quality_note: String,
    /// The plan on the observed workload (for the cost-vs-volume chart).
    #[serde(skip)]
    pub plan: Option<Plan>,
}

/// Builds the review, utilisation and daily sections for `report`'s period.
pub fn build_review(
    db: &ledger::Location,
    report: &Report,
    observed: &Observed,
    catalog: &Catalog,
    setup: Option<&Setup>,
) -> Result<ReviewSection, ReportError> {
    let filter = ReportFilter {
        since_unix_ms: Some(report.period.since_unix_ms),
        until_unix_ms: Some(report.period.until_unix_ms),
    };
    let threshold = catalog.assumptions.min_utilization;
    // A day of every deployment's monthly cost: monthly × 24 h ÷ the month's hours.
    let month_microhours = (catalog.assumptions.hours_per_month * 1e6).round() as i128;
    let fixed_daily: Money = report
        .self_hosted
        .iter()
        .map(|s| s.monthly.money().mul_ratio(24_000_000, month_microhours))
        .sum();
    let fixed_known = report.cost.fixed_costs_known;
    let daily = observed
        .days
        .iter()
        .map(|(&day, d)| {
            let day_unix_ms = day * MS_PER_DAY;
            let cost = Money::from_pico_usd(d.cost_nusd * 1000);
            Day {
                day: format_utc(day_unix_ms)[..10].to_string(),
                day_unix_ms,
                requests: d.requests,
                api_spend_usd: cost.usd_f64(),
                actual_usd: fixed_known.then(|| (cost + fixed_daily).usd_f64()),
                counterfactual_usd: Money::from_pico_usd(d.counterfactual_cost_nusd * 1000)
                    .usd_f64(),
            }
        })
        .collect();
    let mut section = ReviewSection {
        observed_workload: None,
        observed_notes: Vec::new(),
        review: None,
        review_missing: None,
        threshold,
        utilisation: Vec::new(),
        daily,
        slo: slo_check(report, catalog.assumptions.slo_ttft_ms),
        estimates: observed
            .estimates
            .iter()
            .map(|(backend, estimated_rows, fit)| {
                let rmse = fit.rmse();
                EstimateQuality {
                    backend: backend.clone(),
                    estimated_rows: *estimated_rows,
                    exact_rows: fit.n,
                    rmse_tokens: rmse.map(|(e, _)| e),
                    rmse_share: rmse.map(|(e, mean)| if mean > 0.0 { e / mean } else { 0.0 }),
                }
            })
            .collect(),
        quality: None,
        quality_note: "Quality: no comparison of the self-hosted and API answers is recorded for \
             this period; compare both on samples of your own traffic before moving a task."
            .to_string(),
        plan: None,
    };
    let traffic = observed.traffic(filter.since_unix_ms, filter.until_unix_ms);
    let observed_file = match observed_workload(&traffic, &catalog.assumptions) {
        Ok(file) => file,
        Err(error) => {
            section.review_missing = Some(format!("no observed workload: {error}"));
            return Ok(section);
        }
    };
    let workload = Workload::build(
        observed_file.file.clone(),
        &WorkloadFlags::default(),
        &catalog.assumptions,
    )
    .map_err(Box::new)?;
    let setup = setup.cloned().unwrap_or_default();
    let deployment = setup
        .self_hosted
        .first()
        .map(|s| s.deployment.clone())
        .unwrap_or_else(|| DEFAULT_DEPLOYMENT_IDS[0].to_string());
    let deployment = catalog
        .deployment(&deployment)
        .map(|d| d.id.clone())
        .unwrap_or(deployment);
    let api = setup
        .api_models
        .first()
        .cloned()
        .unwrap_or_else(|| DEFAULT_API_IDS[0].to_string());
    let plan_for = |workload: Workload, deployment: &str| {
        plan(
            catalog,
            &PlanRequest {
                workload,
                api_ids: vec![api.clone()],
                deployment_ids: vec![deployment.to_string()],
                compare_owned: false,
                quality: None,
                measured: Vec::new(),
            },
        )
        .map_err(Box::new)
    };
    let plan = plan_for(workload.clone(), &deployment)?;
    let alternatives = alternatives(catalog, &workload, &deployment, &plan_for);
    // The capacity of one deployment as given, at the observed shape.
    let capacity = plan
        .options
        .iter()
        .find(|o| o.deployment.as_deref() == Some(deployment.as_str()))
        .and_then(|o| o.capacity.as_ref())
        .map_or(0.0, |c| c.provided_tokens_per_s);
    // From an hour before the period, so its first interval has a sample to start from
    // (counters are read as differences); points are kept inside the period.
    let samples = ledger::read_samples(
        db,
        &ReportFilter {
            since_unix_ms: filter.since_unix_ms.map(|since| since - MS_PER_HOUR),
            until_unix_ms: filter.until_unix_ms,
        },
    )?;
    let week_hours = |week_start: i64| {
        let week_end = week_start + 7 * 24 * MS_PER_HOUR;
        let start = week_start.max(report.period.since_unix_ms);
        let end = week_end.min(report.period.until_unix_ms);
        (end - start).max(0) as f64 / MS_PER_HOUR as f64
    };
    for backend in &setup.self_hosted {
        let own: Vec<MetricsSample> = samples
            .iter()
            .filter(|s| s.backend == backend.backend)
            .map(|s| MetricsSample {
                at_unix_ms: s.sampled_at_unix_ms,
                gpu_util: s.gpu_util,
                prompt_tokens_total: s.prompt_tokens_total,
                generation_tokens_total: s.generation_tokens_total,
            })
            .collect();
        let (basis, points) = match utilisation::from_samples(&own, capacity) {
            Some((basis, mut points)) => {
                points.retain(|p| p.at_unix_ms >= report.period.since_unix_ms);
                (basis, points)
            }
            None => (
                Basis::LedgerTokens,
                utilisation::from_ledger_hours(&observed.backend_hours(&backend.backend), capacity),
            ),
        };
        let monthly = report
            .self_hosted
            .iter()
            .find(|s| s.backend == backend.backend)
            .map_or(Money::ZERO, |s| s.monthly.money());
        let weeks = utilisation::weekly(
            &points,
            threshold,
            monthly,
            catalog.assumptions.hours_per_month,
            week_hours,
        );
        section.utilisation.push(BackendUtilisation {
            backend: backend.backend.clone(),
            basis,
            capacity_tokens_per_s: capacity,
            weeks_under_threshold: weeks
                .iter()
                .filter(|w| w.under_threshold)
                .map(|w| format_utc(w.week_start_unix_ms)[..10].to_string())
                .collect(),
            idle_cost_usd: weeks.iter().map(|w| w.idle_cost).sum(),
            weeks,
            points,
        });
    }
    let actual_monthly = report
        .cost
        .per_month
        .as_ref()
        .and_then(|m| m.actual.or(Some(m.api_spend)))
        .map_or(Money::ZERO, |a| a.money());
    let current = CurrentSetup {
        deployment: setup
            .self_hosted
            .first()
            .map(|s| deployment_id(catalog, &s.deployment)),
        replicas: setup
            .self_hosted
            .iter()
            .filter(|s| deployment_id(catalog, &s.deployment) == deployment)
            .count() as u64,
        max_in_flight_per_replica: setup.self_hosted.first().map_or(0, |s| s.max_in_flight),
        monthly_cost: actual_monthly,
    };
    if !report.cost.fixed_costs_known && !setup.self_hosted.is_empty() {
        section.review_missing = Some(
            "today's fixed costs are unknown (pass --config): the review compares API spend only"
                .to_string(),
        );
    }
    section.review = Some(review(&plan, &current, &alternatives));
    section.observed_workload = Some(observed_file.file);
    section.observed_notes = observed_file.notes;
    section.plan = Some(plan);
    Ok(section)
}

/// The plan of a workload on one deployment.
type PlanFor<'a> =
    dyn Fn(Workload, &str) -> Result<Plan, Box<costfloor_core::error::InputError>> + 'a;

/// The hybrid optimum on every other catalog deployment of the same model, and with
/// each task of at least 5% of the calls kept on the API. A plan that cannot be made
/// (a deployment the model does not fit) is left out.
fn alternatives(
    catalog: &Catalog,
    workload: &Workload,
    deployment: &str,
    plan_for: &PlanFor<'_>,
) -> Alternatives {
    let model = catalog.deployment(deployment).map(|d| d.model.clone()).ok();
    let deployments = catalog
        .deployments
        .values()
        .filter(|d| Some(&d.model) == model.as_ref() && d.id != deployment)
        .filter_map(|d| {
            let plan = plan_for(workload.clone(), &d.id).ok()?;
            let optimum = &plan.hybrid.optimum;
            Some((d.id.clone(), optimum.monthly_cost_usd, optimum.replicas))
        })
        .collect();
    let tasks_on_api = workload
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, task)| task.share >= 0.05 && workload.tasks.len() > 1)
        .filter_map(|(index, task)| {
            let mut split = workload.clone();
            split.tasks[index].self_host = Eligibility::No;
            let plan = plan_for(split, deployment).ok()?;
            Some((task.name.clone(), plan.hybrid.optimum.monthly_cost_usd))
        })
        .collect();
    Alternatives {
        deployments,
        tasks_on_api,
    }
}

fn deployment_id(catalog: &Catalog, id: &str) -> String {
    catalog
        .deployment(id)
        .map_or_else(|_| id.to_string(), |d| d.id.clone())
}
