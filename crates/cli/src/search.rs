//! `plan --search`: flags, the model list (named, or the eval's passing candidate),
//! `costfloor_core::search`, and its tables, JSON and chart (the top rented options
//! drawn by the plan chart through a catalog that holds them).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::Cell;
use costfloor_core::catalog::Catalog;
use costfloor_core::plan::{human_calls, plan, PlanRequest};
use costfloor_core::quality::MeasuredQuality;
use costfloor_core::search::{search, SearchOption, SearchRequest, SearchResult};
use costfloor_core::workload::{Eligibility, Workload};

use crate::chart;
use crate::commands::input_failure;
use crate::output::{self, number, right, table};

/// Options drawn on the search chart.
const CHART_OPTIONS: usize = 5;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Search the catalog for the cheapest deployments that carry the peak within the
    /// SLO, instead of comparing named ones.
    #[arg(long)]
    pub search: bool,
    /// Models to search (comma-separated catalog ids, or `all`). Default: the eval's
    /// candidate when `--eval` shows it fit for some task.
    #[arg(long, value_name = "IDS", value_delimiter = ',', requires = "search")]
    pub search_models: Vec<String>,
    /// GPUs to search (comma-separated ids; default: every GPU in the catalog).
    #[arg(
        long = "gpu",
        value_name = "IDS",
        value_delimiter = ',',
        requires = "search"
    )]
    pub gpus: Vec<String>,
    /// Most GPUs a result may need at peak.
    #[arg(long, value_name = "N", requires = "search")]
    pub max_gpus: Option<u64>,
    /// Least context window, in tokens, a model must offer.
    #[arg(long, value_name = "TOKENS", requires = "search")]
    pub min_context: Option<u64>,
    /// Results per ownership (rented, owned).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "search")]
    pub top: usize,
}

/// The models to search: those named, every catalog model for `all`, else the eval's
/// candidate if it is a catalog model the eval found fit for at least one task.
fn models(
    catalog: &Catalog,
    args: &SearchArgs,
    quality: Option<&MeasuredQuality>,
) -> Result<Vec<String>> {
    if args.search_models.iter().any(|m| m == "all") {
        return Ok(catalog.models.keys().cloned().collect());
    }
    if !args.search_models.is_empty() {
        return Ok(args.search_models.clone());
    }
    let Some(quality) = quality else {
        return Err(input_failure(
            "--search needs the models to search: --search-models ID,ID (or `all`), or --eval with a run whose candidate is a catalog model; which models are good enough is for you or the eval to say",
        ));
    };
    if catalog.model(&quality.candidate).is_err() {
        return Err(input_failure(format!(
            "--eval: the run's candidate {:?} is not a catalog model id, so the search cannot size it; name the models with --search-models",
            quality.candidate
        )));
    }
    if !quality
        .tasks
        .iter()
        .any(|t| t.eligibility == Eligibility::Yes)
    {
        return Err(input_failure(format!(
            "--eval: the run found {} fit for no task, so there is nothing to self-host; name the models with --search-models to search anyway",
            quality.candidate
        )));
    }
    Ok(vec![quality.candidate.clone()])
}

pub fn run(
    catalog: &Catalog,
    args: &SearchArgs,
    workload: Workload,
    api_id: &str,
    quality: Option<&MeasuredQuality>,
    chart_path: Option<&Path>,
    json: bool,
) -> Result<()> {
    let request = SearchRequest {
        workload,
        api_id: api_id.to_string(),
        models: models(catalog, args, quality)?,
        gpus: args.gpus.clone(),
        max_gpus: args.max_gpus,
        min_context: args.min_context,
        top: args.top,
    };
    let result = search(catalog, &request).map_err(input_failure)?;
    if let Some(path) = chart_path {
        write_chart(catalog, &request, &result, path)
            .with_context(|| format!("writing chart {}", path.display()))?;
    }
    if json {
        return output::print_json(&result);
    }
    output::print_text(&render(&request, &result, chart_path))?;
    match &result.none_because {
        // Nothing carries the load: say so on stderr and exit non-zero.
        Some(reason) => Err(input_failure(reason)),
        None => Ok(()),
    }
}

/// The plan chart of the top rented options: each as a catalog deployment, planned
/// against the reference API, so the lines are the same costs `plan` prints.
fn write_chart(
    catalog: &Catalog,
    request: &SearchRequest,
    result: &SearchResult,
    path: &Path,
) -> Result<()> {
    let top: Vec<&SearchOption> = result.rented.iter().take(CHART_OPTIONS).collect();
    if top.is_empty() {
        return Err(input_failure("--chart: no option to draw"));
    }
    let mut with_options = catalog.clone();
    for option in &top {
        with_options
            .deployments
            .insert(option.id.clone(), option.deployment.clone());
    }
    let plan = plan(
        &with_options,
        &PlanRequest {
            workload: request.workload.clone(),
            api_ids: vec![request.api_id.clone()],
            deployment_ids: top.iter().map(|o| o.id.clone()).collect(),
            compare_owned: false,
            quality: None,
            measured: Vec::new(),
        },
    )
    .map_err(input_failure)?;
    chart::write_cost_chart(&plan, path)
}

fn options_table(options: &[SearchOption]) -> String {
    let mut t = table(&[
        "#",
        "deployment",
        "replicas × TP",
        "GPUs",
        "utilisation",
        "monthly cost",
        "effective $/MTok",
        "per replica",
        "hybrid optimum",
    ]);
    for (rank, o) in options.iter().enumerate() {
        let h = &o.hybrid.optimum;
        t.add_row(vec![
            right(rank + 1),
            Cell::new(&o.id),
            right(format!("{} × {}", o.replicas, o.tensor_parallel)),
            right(o.gpus),
            right(format!("{:.0}%", o.utilization * 100.0)),
            right(o.monthly_cost_usd.to_string()),
            right(format!("${:.3}", o.effective_usd_per_mtok)),
            right(format!(
                "{} calls/month, {:.1} ms/token ({})",
                human_calls(o.calls_per_month_per_replica),
                o.tpot_ms,
                o.limited_by
            )),
            right(format!(
                "{}: {} replica(s), {:.0}% self-hosted",
                h.monthly_cost_usd,
                h.replicas,
                h.self_hosted_share * 100.0
            )),
        ]);
    }
    t.to_string()
}

fn render(request: &SearchRequest, result: &SearchResult, chart: Option<&Path>) -> String {
    let w = &request.workload;
    let mut out = format!(
        "costfloor plan --search: {} calls/month, {:.0} input + {:.0} output tokens per call, peak {:.2}× average, SLO {:.0} ms/token and {:.0} ms to first token\n",
        human_calls(w.calls_per_month),
        w.input_tokens,
        w.output_tokens,
        w.peak_to_average,
        w.slo_tpot_ms,
        w.slo_ttft_ms
    );
    out += &format!(
        "Searched {} configurations of {} on {} GPU type(s); {} carry the peak. All API ({}): {}/month.\n\n",
        number(result.considered as f64, 0),
        result.models.join(", "),
        result.gpus.len(),
        number(result.feasible as f64, 0),
        result.api,
        result.api_monthly_usd
    );
    for (name, options) in [("Rented", &result.rented), ("Owned", &result.owned)] {
        if options.is_empty() {
            continue;
        }
        out += &format!("{name}, cheapest first (monthly cost at the replicas the peak needs; ops at the catalog's minimum budget)\n");
        out += &options_table(options);
        out += "\n\n";
    }
    if let Some(path) = chart {
        out += &format!("Chart: {}\n", path.display());
    }
    out
}
