//! Everything the CLI prints: human tables and JSON. The only module that writes to
//! stdout.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::path::Path;

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};
use costfloor_core::catalog::Catalog;
use costfloor_core::litellm::{Diff, Figure, Import, NoteKind, PriceChange, Summary};
use costfloor_core::money::{group_thousands, Money, UsdPerMtok};
use costfloor_core::plan::{human_calls, Plan};
use costfloor_core::sizing::Sizing;
use costfloor_core::usage_export::Derivation;
use costfloor_core::verdict::CheckStatus;
use serde::Serialize;

use crate::commands::input_failure;

pub fn print_line(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Where a report goes: stdout, or stderr when stdout carries the overlay itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

fn write_to(stream: Stream, text: &str) -> Result<()> {
    match stream {
        Stream::Stdout => io::stdout().lock().write_all(text.as_bytes())?,
        Stream::Stderr => io::stderr().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Text as it is, e.g. a whole TOML file.
pub fn print_text(text: &str) -> Result<()> {
    write_to(Stream::Stdout, text)
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    // Serialised first, so that a closed pipe (`| head`) is an io::Error the binary
    // recognises, not one wrapped inside serde_json's.
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(150)
        .set_header(header.iter().map(Cell::new));
    table
}

pub(crate) fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

pub(crate) fn number(value: f64, decimals: usize) -> String {
    let formatted = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = formatted.split_once('.').unwrap_or((&formatted, ""));
    let sign = if value < 0.0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{}", group_thousands(whole))
    } else {
        format!("{sign}{}.{fraction}", group_thousands(whole))
    }
}

fn usd(value: f64) -> String {
    Money::from_usd_f64(value).to_string()
}

/// The plan as text: one section after another, written to stdout at once.
pub fn print_plan(plan: &Plan, chart: Option<&Path>) -> Result<()> {
    let mut out = String::new();
    write_workload(&mut out, plan)?;
    write_options(&mut out, plan)?;
    writeln!(out, "{}\n", plan.comparison.headline)?;
    write_capacity(&mut out, plan)?;
    write_break_even(&mut out, plan)?;
    write_hybrid(&mut out, plan)?;
    write_verdict(&mut out, plan)?;
    write_assumptions(&mut out, plan)?;
    if let Some(path) = chart {
        writeln!(out, "\nChart written to {}", path.display())?;
    }
    let mut stdout = io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    Ok(())
}

/// The workload in one line, then the demand it puts on a deployment.
fn write_workload(out: &mut String, plan: &Plan) -> fmt::Result {
    let w = &plan.workload;
    let d = &plan.demand;
    writeln!(
        out,
        "costfloor plan: {} calls/month, {} input + {} output tokens per call, peak {:.2}× average",
        number(w.calls_per_month, 0),
        number(w.input_tokens, 0),
        number(w.output_tokens, 0),
        w.peak_to_average
    )?;
    writeln!(
        out,
        "Demand: {:.2} calls/s on average, {:.2} at peak; {} tokens/s on average ({} output), {} at peak ({} output)\n",
        d.average_calls_per_s,
        d.peak_calls_per_s,
        number(d.average_input_tokens_per_s + d.average_output_tokens_per_s, 0),
        number(d.average_output_tokens_per_s, 0),
        number(d.peak_tokens_per_s, 0),
        number(d.peak_output_tokens_per_s, 0),
    )
}

/// Every option's monthly cost, breakdown, effective price and capacity.
fn write_options(out: &mut String, plan: &Plan) -> fmt::Result {
    let quoted = plan.quoted_selfhost_usd_per_mtok;
    let mut options = table(&[
        "option",
        "kind",
        "monthly cost",
        "breakdown",
        "effective $/MTok",
        "capacity (as given)",
    ]);
    for option in &plan.options {
        let breakdown = option
            .cost_breakdown
            .iter()
            .map(|(name, amount)| format!("{name} {}", usd(*amount)))
            .collect::<Vec<_>>()
            .join(", ");
        let effective = option
            .effective_usd_per_mtok
            .map_or("per token".to_string(), |e| {
                format!(
                    "${e:.3} ({:.1}× the quoted ${quoted:.2})",
                    option.effective_vs_quoted_price.unwrap_or(0.0)
                )
            });
        let capacity = option
            .capacity
            .as_ref()
            .map_or("unlimited".to_string(), |c| {
                format!(
                    "{} calls/month max, {:.0}% utilised{}",
                    human_calls(c.max_calls_per_month),
                    c.utilization_as_given * 100.0,
                    if c.fits {
                        ""
                    } else {
                        ": does NOT carry the peak"
                    }
                )
            });
        options.add_row(vec![
            Cell::new(&option.id),
            Cell::new(option.kind),
            right(option.monthly_cost_usd),
            Cell::new(breakdown),
            right(effective),
            Cell::new(capacity),
        ]);
    }
    writeln!(out, "Options\n{options}")?;
    writeln!(
        out,
        "Effective $/MTok: a self-hosted option's monthly cost ÷ the tokens it serves, against the \
         self-hosting price people often quote (${quoted:.2}/MTok).\n"
    )
}

/// Whether the primary deployment carries the peak, and what it takes if not.
fn write_capacity(out: &mut String, plan: &Plan) -> fmt::Result {
    let d = &plan.demand;
    let Some((option, c)) = plan
        .options
        .iter()
        .find_map(|o| o.capacity.as_ref().map(|c| (o, c)))
    else {
        return Ok(());
    };
    let s = &c.sizing;
    writeln!(
        out,
        "Capacity check: {} ({}× {}, {}: {} replica(s) of TP {}, SLO {:.0} ms/token)",
        option.id,
        s.gpus,
        s.gpu,
        s.precision.as_str(),
        s.replicas,
        s.tensor_parallel,
        plan.workload.slo_tpot_ms
    )?;
    let mut cap = table(&["", "value"]);
    let rows = [
        (
            "workload needs at peak",
            format!(
                "{} tokens/s ({} output)",
                number(d.peak_tokens_per_s, 0),
                number(d.peak_output_tokens_per_s, 0)
            ),
        ),
        (
            "deployment delivers",
            format!(
                "{} tokens/s ({} output)",
                number(c.provided_tokens_per_s, 0),
                number(c.provided_output_tokens_per_s, 0)
            ),
        ),
        (
            "per replica",
            if s.limited_by.starts_with("measured") {
                format!(
                    "measured: {:.2} requests/s within the SLO with {} in flight, {} calls/month at 100% (costfloor bench)",
                    s.requests_per_s_per_replica,
                    s.best_batch,
                    human_calls(s.max_calls_per_month_per_replica)
                )
            } else {
                format!(
                    "batch {} of {} that fit, {:.1} ms/token, {} calls/month at 100% ({})",
                    s.best_batch,
                    s.max_concurrency,
                    s.tpot_ms,
                    human_calls(s.max_calls_per_month_per_replica),
                    s.limited_by
                )
            },
        ),
        (
            "replicas needed at peak",
            format!("{} ({} GPUs)", c.required_replicas, c.required_gpus),
        ),
        (
            "cost at the replicas needed",
            format!(
                "{}/month, ${:.3}/MTok effective",
                c.monthly_cost_at_required_usd, c.effective_usd_per_mtok_at_required
            ),
        ),
        (
            "utilisation at that size",
            format!("{:.0}%", c.utilization * 100.0),
        ),
    ];
    for (name, value) in rows {
        cap.add_row(vec![Cell::new(name), right(value)]);
    }
    writeln!(out, "{cap}\n")
}

/// Break-even volumes of every pair, then the rule-of-thumb crossover checked.
fn write_break_even(out: &mut String, plan: &Plan) -> fmt::Result {
    let with_variable = format!(
        "charging self-hosting ${:.2}/MTok",
        plan.quoted_selfhost_usd_per_mtok
    );
    let mut be = table(&[
        "API",
        "self-hosted",
        "break-even (as given)",
        &with_variable,
        "input-only tokens",
        "capacity-aware",
    ]);
    for b in &plan.break_even {
        let calls = |v: Option<f64>| {
            v.map_or("never".to_string(), |c| {
                format!("{} calls/mo", human_calls(c))
            })
        };
        let aware = match (
            b.capacity_aware_calls_per_month,
            b.stays_cheaper,
            b.cheaper_for_good_from_calls_per_month,
        ) {
            (None, _, _) => "never cheaper".to_string(),
            (Some(first), true, _) => format!("{} and stays cheaper", human_calls(first)),
            (Some(first), false, Some(good)) => format!(
                "{}, for good from {}",
                human_calls(first),
                human_calls(good)
            ),
            (Some(first), false, None) => format!("{} (only in bands)", human_calls(first)),
        };
        be.add_row(vec![
            Cell::new(&b.api),
            Cell::new(&b.self_hosted),
            right(calls(b.calls_per_month)),
            right(calls(b.calls_per_month_with_variable)),
            right(
                b.input_only_tokens_per_month
                    .map_or("never".to_string(), |t| format!("{:.2}B/mo", t / 1e9)),
            ),
            right(aware),
        ]);
    }
    writeln!(out, "Break-even\n{be}")?;
    writeln!(
        out,
        "Rule-of-thumb check: {}\n",
        plan.rule_of_thumb_crossover.explanation
    )
}

/// All API, all self-hosted, and the cheapest mix of the two.
fn write_hybrid(out: &mut String, plan: &Plan) -> fmt::Result {
    let h = &plan.hybrid;
    let o = &h.optimum;
    writeln!(
        out,
        "Hybrid optimum ({} + {}; {:.0}% of calls eligible for self-hosting)",
        h.self_hosted,
        h.api,
        h.eligible_share * 100.0
    )?;
    let mut hy = table(&["strategy", "monthly cost", "detail"]);
    hy.add_row(vec![
        Cell::new("all API"),
        right(h.all_api_usd),
        Cell::new(&h.api),
    ]);
    hy.add_row(vec![
        Cell::new("all self-hosted (sized for peak)"),
        right(h.all_self_hosted_usd),
        Cell::new(format!("{} replica(s)", h.all_self_hosted_replicas)),
    ]);
    hy.add_row(vec![
        Cell::new("hybrid"),
        right(o.monthly_cost_usd),
        Cell::new(format!(
            "{} replica(s) ({} self-hosted + {} API); {:.1}% of calls self-hosted, {:.1}% API ({} overflow calls/month); utilisation {:.0}%; spill over above {} in-flight per replica",
            o.replicas,
            o.self_hosted_cost_usd,
            o.api_cost_usd,
            o.self_hosted_share * 100.0,
            o.api_share * 100.0,
            human_calls(o.overflow_calls_per_month),
            o.utilization * 100.0,
            o.spillover_max_in_flight_per_replica
        )),
    ]);
    writeln!(out, "{hy}\n")
}

/// The checklist, the recommendation and its reasons.
fn write_verdict(out: &mut String, plan: &Plan) -> fmt::Result {
    let v = &plan.verdict;
    let mut checks = table(&["check", "measured", "threshold", "result", "note"]);
    for check in &v.checks {
        let status = match check.status {
            CheckStatus::Pass => "pass (self-host)",
            CheckStatus::Fail => "fail (API)",
            CheckStatus::Warn => "warn",
            CheckStatus::Unknown => "unknown",
        };
        checks.add_row(vec![
            Cell::new(check.name),
            Cell::new(&check.measured),
            Cell::new(&check.threshold),
            Cell::new(status),
            Cell::new(&check.note),
        ]);
    }
    writeln!(
        out,
        "Verdict checklist ({} vs {})\n{checks}",
        plan.comparison.self_hosted, plan.comparison.api
    )?;
    writeln!(out, "Recommendation: {}", v.summary)?;
    for reason in &v.reasons {
        writeln!(out, "  - {reason}")?;
    }
    Ok(())
}

fn write_assumptions(out: &mut String, plan: &Plan) -> fmt::Result {
    writeln!(out, "\nAssumptions")?;
    for a in &plan.assumptions {
        writeln!(out, "  {}: {}", a.name, a.value)?;
    }
    Ok(())
}

pub fn print_sizing(s: &Sizing) -> Result<()> {
    let mut t = table(&["", "value"]);
    let rows: Vec<(&str, String)> = vec![
        (
            "model / GPU",
            format!(
                "{} on {} × {} ({})",
                s.model,
                s.gpus,
                s.gpu,
                s.precision.as_str()
            ),
        ),
        ("weights", format!("{:.1} GiB", s.weights_gib)),
        (
            "KV cache per token",
            format!(
                "{} bytes ({:.0} KiB)",
                number(s.kv_bytes_per_token as f64, 0),
                s.kv_bytes_per_token as f64 / 1024.0
            ),
        ),
        (
            "KV budget per replica",
            if s.kv_copies > 1.0 {
                format!(
                    "{:.1} GiB = {} tokens (each KV byte held {} times across the TP ranks)",
                    s.kv_budget_gib,
                    number(s.kv_budget_tokens as f64, 0),
                    s.kv_copies
                )
            } else {
                format!(
                    "{:.1} GiB = {} tokens",
                    s.kv_budget_gib,
                    number(s.kv_budget_tokens as f64, 0)
                )
            },
        ),
        (
            "tensor parallel / replicas",
            format!("TP {} × {} replica(s)", s.tensor_parallel, s.replicas),
        ),
        (
            "max concurrency (memory)",
            format!("{} sequences per replica", s.max_concurrency),
        ),
        (
            "best batch within SLO",
            format!(
                "{} ({}; {:.1} ms/token)",
                s.best_batch, s.limited_by, s.tpot_ms
            ),
        ),
        (
            "single-stream decode",
            format!("{:.1} tokens/s", s.single_stream_tokens_per_s),
        ),
        (
            "output throughput per replica",
            format!(
                "{} tokens/s (prefill included)",
                number(s.output_tokens_per_s, 0)
            ),
        ),
        (
            "prefill throughput per replica",
            format!("{} tokens/s", number(s.prefill_tokens_per_s, 0)),
        ),
        (
            "TTFT (p99 prompt, idle)",
            format!(
                "{:.0} ms{}",
                s.ttft_ms,
                if s.meets_ttft_slo {
                    ""
                } else {
                    " (over the TTFT SLO)"
                }
            ),
        ),
        (
            "capacity",
            format!(
                "{} calls/month ({} per replica) at 100% utilisation",
                number(s.max_calls_per_month, 0),
                number(s.max_calls_per_month_per_replica, 0)
            ),
        ),
        (
            "efficiency factors",
            format!(
                "bandwidth {:.2} (KV reads {:.2}), MFU {:.2}, TP {:.2}, step overhead {:.1} ms",
                s.bandwidth_efficiency,
                s.kv_bandwidth_efficiency,
                s.mfu,
                s.tp_efficiency,
                s.step_overhead_ms
            ),
        ),
    ];
    for (name, value) in rows {
        t.add_row(vec![Cell::new(name), Cell::new(value)]);
    }
    print_line(&t.to_string())
}

pub fn print_catalog_list(catalog: &Catalog, json: bool) -> Result<()> {
    if json {
        #[derive(Serialize)]
        struct All<'a> {
            assumptions: &'a costfloor_core::catalog::Assumptions,
            api_models: Vec<&'a costfloor_core::catalog::ApiModel>,
            gpus: Vec<&'a costfloor_core::catalog::Gpu>,
            models: Vec<&'a costfloor_core::catalog::OpenModel>,
            deployments: Vec<&'a costfloor_core::catalog::Deployment>,
        }
        return print_json(&All {
            assumptions: &catalog.assumptions,
            api_models: catalog.api_models.values().collect(),
            gpus: catalog.gpus.values().collect(),
            models: catalog.models.values().collect(),
            deployments: catalog.deployments.values().collect(),
        });
    }
    let mut apis = table(&[
        "API model",
        "input",
        "output",
        "cache write 5m",
        "cache write 1h",
        "cache read",
        "batch",
        "context",
        "as of",
    ]);
    for m in catalog.api_models.values() {
        let price = |p: Option<costfloor_core::money::UsdPerMtok>| {
            p.map_or("-".to_string(), |p| format!("${}", p.usd_f64()))
        };
        apis.add_row(vec![
            Cell::new(&m.id),
            right(format!("${}", m.input_usd_per_mtok.usd_f64())),
            right(format!("${}", m.output_usd_per_mtok.usd_f64())),
            right(price(m.cache_write_usd_per_mtok)),
            right(price(m.cache_write_1h_usd_per_mtok)),
            right(price(m.cache_read_usd_per_mtok)),
            right(format!("{:.0}% off", m.batch_discount * 100.0)),
            right(number(m.context_window as f64, 0)),
            Cell::new(&m.as_of),
        ]);
    }
    let mut gpus = table(&[
        "GPU",
        "memory GiB",
        "GB/s",
        "BF16 TFLOPS",
        "FP8 TFLOPS",
        "rental $/h",
        "purchase",
    ]);
    for g in catalog.gpus.values() {
        gpus.add_row(vec![
            Cell::new(&g.id),
            right(g.memory_gib),
            right(number(g.bandwidth_gb_s, 0)),
            right(g.bf16_tflops),
            right(g.fp8_tflops.map_or("-".to_string(), |f| f.to_string())),
            right(g.rental_usd_per_gpu_hour),
            right(g.purchase_usd.map_or("-".to_string(), |p| p.to_string())),
        ]);
    }
    let mut models = table(&[
        "model",
        "layers",
        "hidden",
        "heads",
        "KV heads",
        "head_dim",
        "params (B)",
        "active (B)",
        "max context",
    ]);
    for m in catalog.models.values() {
        models.add_row(vec![
            Cell::new(&m.id),
            right(m.layers),
            right(m.hidden_size),
            right(m.attention_heads),
            right(m.kv_heads),
            right(m.head_dim),
            right(m.params_b),
            right(m.active_params_b),
            right(number(m.max_context as f64, 0)),
        ]);
    }
    let mut deployments = table(&[
        "deployment",
        "model",
        "GPUs",
        "precision",
        "GPU $/month",
        "ops/month",
        "setup",
    ]);
    for dep in catalog.deployments.values() {
        let per_gpu = dep
            .gpu_usd_per_month
            .map_or("rental × hours".to_string(), |m| m.to_string());
        deployments.add_row(vec![
            Cell::new(&dep.id),
            Cell::new(&dep.model),
            right(format!("{} × {}", dep.gpus, dep.gpu)),
            Cell::new(dep.precision.as_str()),
            right(per_gpu),
            right(catalog.ops_per_month(dep)),
            right(format!(
                "{} / {} mo",
                dep.setup_usd, dep.setup_amortize_months
            )),
        ]);
    }
    print_line(&format!("{apis}\n{gpus}\n{models}\n{deployments}"))
}

pub fn print_catalog_entry(catalog: &Catalog, id: &str, json: bool) -> Result<()> {
    let entry = catalog.entry(id).map_err(input_failure)?;
    let value = serde_json::to_value(entry)?;
    if json {
        return print_json(&value);
    }
    let mut t = table(&["field", "value"]);
    if let serde_json::Value::Object(map) = value {
        for (key, val) in map {
            let text = match val {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            t.add_row(vec![Cell::new(key), Cell::new(text)]);
        }
    }
    print_line(&t.to_string())
}

/// Entry ids listed per kind of note in the text summary; `--json` lists all.
const NOTE_IDS_SHOWN: usize = 5;

/// What an import read, kept and skipped: counts by reason, every entry skipped for a
/// problem in the file by name, and the notes on imported entries by kind.
pub fn print_import_summary(import: &Import, out: Option<&Path>, stream: Stream) -> Result<()> {
    let summary = &import.summary;
    let mut text = String::new();
    write_summary(&mut text, summary)?;
    if let Some(path) = out {
        writeln!(
            text,
            "Wrote {} entries to {}; use it with --catalog {}",
            count(summary.imported),
            path.display(),
            path.display()
        )?;
    }
    write_to(stream, &text)
}

fn count(n: usize) -> String {
    group_thousands(&n.to_string())
}

fn write_summary(out: &mut String, summary: &Summary) -> fmt::Result {
    let only = if summary.providers.is_empty() {
        String::new()
    } else {
        format!(" (--only {})", summary.providers.join(", "))
    };
    writeln!(out, "{}{only}:", summary.file)?;
    let mut rows: Vec<(String, usize, String)> = vec![
        ("entries read".into(), summary.entries_read, String::new()),
        (
            "imported (chat models)".into(),
            summary.imported,
            String::new(),
        ),
        (
            "aliases, mapped to the entry they name".into(),
            summary.aliases,
            String::new(),
        ),
    ];
    let mut modes: Vec<(&String, &usize)> = summary.other_modes.iter().collect();
    modes.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let modes: Vec<String> = modes
        .iter()
        .map(|(mode, n)| format!("{mode} {}", count(**n)))
        .collect();
    rows.push((
        "other modes, not imported".into(),
        summary.other_modes_total(),
        modes.join(", "),
    ));
    for (reason, n) in &summary.skipped {
        rows.push((format!("skipped: {}", reason.describe()), *n, String::new()));
    }
    let width = rows
        .iter()
        .map(|row| row.0.chars().count())
        .max()
        .unwrap_or(0);
    for (label, n, detail) in rows {
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("  ({detail})")
        };
        writeln!(out, "  {label:<width$}  {:>7}{detail}", count(n))?;
    }
    let reported: Vec<_> = summary
        .skipped_entries
        .iter()
        .filter(|skipped| skipped.reason.is_reported())
        .collect();
    if !reported.is_empty() {
        writeln!(out, "Not imported, for a problem in the file:")?;
        for skipped in reported {
            writeln!(out, "  {}: {}", skipped.litellm_key, skipped.detail)?;
        }
    }
    let mut by_kind: BTreeMap<NoteKind, Vec<&str>> = BTreeMap::new();
    for note in &summary.notes {
        by_kind.entry(note.kind).or_default().push(&note.id);
    }
    if !by_kind.is_empty() {
        writeln!(
            out,
            "Imported with less than LiteLLM lists (--json says what, entry by entry):"
        )?;
        for (kind, ids) in by_kind {
            let mut shown = ids
                .iter()
                .take(NOTE_IDS_SHOWN)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if ids.len() > NOTE_IDS_SHOWN {
                shown.push_str(&format!(", … {} more", count(ids.len() - NOTE_IDS_SHOWN)));
            }
            writeln!(
                out,
                "  {} {}:\n      {shown}",
                count(ids.len()),
                kind.describe()
            )?;
        }
    }
    Ok(())
}

/// The summary, the entries (LiteLLM key → id) and the diff as one JSON object.
pub fn print_import_json(
    import: &Import,
    diff: Option<&Diff>,
    out: Option<&Path>,
    stream: Stream,
) -> Result<()> {
    #[derive(Serialize)]
    struct Entry<'a> {
        litellm_key: &'a str,
        id: &'a str,
        litellm_provider: &'a str,
        aliases: &'a [String],
    }
    #[derive(Serialize)]
    struct Report<'a> {
        summary: &'a Summary,
        entries: Vec<Entry<'a>>,
        out: Option<String>,
        diff: Option<&'a Diff>,
    }
    let report = Report {
        summary: &import.summary,
        entries: import
            .entries
            .iter()
            .map(|entry| Entry {
                litellm_key: &entry.litellm_key,
                id: &entry.model.id,
                litellm_provider: &entry.litellm_provider,
                aliases: &entry.aliases,
            })
            .collect(),
        out: out.map(|path| path.display().to_string()),
        diff,
    };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    write_to(stream, &text)
}

/// A price exactly, with at least two decimals: `$22.50`, `$0.025`.
fn usd_per_mtok(price: UsdPerMtok) -> String {
    let micro = price.micro_usd();
    let whole = group_thousands(&(micro / 1_000_000).to_string());
    let fraction = format!("{:06}", micro % 1_000_000);
    let digits = fraction.trim_end_matches('0').len().max(2);
    format!("${whole}.{}", &fraction[..digits])
}

fn figure(value: Figure) -> String {
    match value {
        Figure::UsdPerMtok(price) => usd_per_mtok(price),
        Figure::Discount(0.0) => "none".to_string(),
        Figure::Discount(fraction) => format!("{}% off", fraction * 100.0),
        Figure::Tokens(tokens) => number(tokens as f64, 0),
        Figure::Absent => "-".to_string(),
    }
}

fn change(price_change: &PriceChange) -> String {
    match (
        price_change.old,
        price_change.new,
        price_change.percent_change(),
    ) {
        (Figure::Discount(_), _, Some(points)) => format!("{points:+.1} points"),
        (_, _, Some(percent)) => format!("{percent:+.1}%"),
        (Figure::Absent, _, None) => "added".to_string(),
        (_, Figure::Absent, None) => "removed".to_string(),
        _ => "from zero".to_string(),
    }
}

/// Every price that differs between the catalog and the import, and what each lacks.
pub fn print_price_diff(diff: &Diff) -> Result<()> {
    let mut out = String::new();
    let compared = diff.unchanged.len() + {
        let mut ids: Vec<&str> = diff.changes.iter().map(|c| c.id.as_str()).collect();
        ids.dedup();
        ids.len()
    };
    if diff.changes.is_empty() {
        writeln!(
            out,
            "\nNo price differs from the current catalog for the {} entries both have.",
            count(compared)
        )?;
    } else {
        let mut t = table(&["API model", "price", "catalog", "import", "change"]);
        for price_change in &diff.changes {
            t.add_row(vec![
                Cell::new(&price_change.id),
                Cell::new(price_change.price),
                right(figure(price_change.old)),
                right(figure(price_change.new)),
                right(change(price_change)),
            ]);
        }
        writeln!(
            out,
            "\nPrices that differ from the current catalog ({} of the {} entries both have):\n{t}",
            count(compared - diff.unchanged.len()),
            count(compared)
        )?;
    }
    writeln!(
        out,
        "{} imported entries are not in the current catalog.",
        count(diff.new_ids.len())
    )?;
    if !diff.missing.is_empty() {
        writeln!(
            out,
            "In the current catalog but not in the import: {}",
            diff.missing.join(", ")
        )?;
    }
    write_to(Stream::Stdout, &out)
}

/// What `workload from-usage` derived and assumed, and where the workload went.
pub fn print_usage_summary(derivation: &Derivation, path: &Path) -> Result<()> {
    let mut out = String::new();
    writeln!(out, "Workload written to {}", path.display())?;
    for line in derivation.summary() {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "Notes:")?;
    for note in &derivation.notes {
        writeln!(out, "- {note}")?;
    }
    let api = derivation
        .price
        .as_ref()
        .map_or(String::new(), |p| format!(" --api {}", p.main_model));
    writeln!(
        out,
        "Next: costfloor plan --workload {}{api}",
        path.display()
    )?;
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// Money in a report: cents from $1 up, the digits it needs below (`$0.00188`).
fn amount(a: report::Amount) -> String {
    let money = a.money();
    if money != Money::ZERO && money.cents().abs() < 100 {
        let precise = costfloor_core::plan::format_usd_precise(Money::from_nano_usd(a.nusd.abs()));
        let sign = if a.nusd < 0 { "-" } else { "" };
        format!("{sign}{precise}")
    } else {
        money.to_string()
    }
}

fn optional_amount(a: Option<report::Amount>) -> String {
    a.map_or("unknown".to_string(), amount)
}

/// A group's name; requests refused before reaching a backend or route have none.
fn group_name(name: &str) -> &str {
    if name.is_empty() {
        "(none)"
    } else {
        name
    }
}

fn percent(share: Option<f64>) -> String {
    share.map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0))
}

fn latency_cells(p: Option<report::Percentiles>) -> [Cell; 3] {
    match p {
        Some(p) => [
            right(number(p.p50_ms, 1)),
            right(number(p.p95_ms, 1)),
            right(number(p.p99_ms, 1)),
        ],
        None => [right("-"), right("-"), right("-")],
    }
}

/// `costfloor report` as text: cost, self-hosted deployments, groups, latency, traffic.
pub fn print_report(r: &report::Report) -> Result<()> {
    let mut out = String::new();
    write_report(&mut out, r)?;
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn write_report(out: &mut String, r: &report::Report) -> fmt::Result {
    writeln!(
        out,
        "costfloor report: {} to {} ({} days), {} requests\n",
        r.period.since,
        r.period.until,
        number(r.period.days, 2),
        group_thousands(&r.requests.to_string())
    )?;
    if let Some(message) = &r.message {
        writeln!(out, "{message}")?;
        for note in &r.notes {
            writeln!(out, "- {note}")?;
        }
        return Ok(());
    }
    write_report_cost(out, r)?;
    write_report_groups(out, "By backend", &r.by_backend)?;
    write_report_groups(out, "By requested model", &r.by_requested_model)?;
    write_report_latency(out, "Latency by backend", &r.latency.by_backend)?;
    write_report_latency(out, "Latency by route", &r.latency.by_route)?;
    write_report_traffic(out, r)?;
    if !r.notes.is_empty() {
        writeln!(out, "Notes")?;
        for note in &r.notes {
            writeln!(out, "- {note}")?;
        }
    }
    Ok(())
}

fn write_report_cost(out: &mut String, r: &report::Report) -> fmt::Result {
    let c = &r.cost;
    let month_days = number(r.period.month_days, 2);
    let mut costs = table(&[
        "cost",
        "this period",
        &format!("per month ({month_days} days)"),
    ]);
    let month = c.per_month.as_ref();
    let rows: [(&str, String, String); 5] = [
        (
            "API spend",
            amount(c.period.api_spend),
            month.map_or("-".into(), |m| amount(m.api_spend)),
        ),
        (
            "self-hosted fixed (catalog deployments)",
            optional_amount(c.period.self_hosted_fixed),
            month.map_or("-".into(), |m| optional_amount(m.self_hosted_fixed)),
        ),
        (
            "actual",
            optional_amount(c.period.actual),
            month.map_or("-".into(), |m| optional_amount(m.actual)),
        ),
        (
            "the same traffic all on the API",
            amount(c.period.counterfactual_all_api),
            month.map_or("-".into(), |m| amount(m.counterfactual_all_api)),
        ),
        (
            "savings",
            optional_amount(c.period.savings),
            month.map_or("-".into(), |m| optional_amount(m.savings)),
        ),
    ];
    for (name, period, per_month) in rows {
        costs.add_row(vec![Cell::new(name), right(period), right(per_month)]);
    }
    writeln!(out, "Cost\n{costs}")?;
    if !r.self_hosted.is_empty() {
        let mut backends = table(&[
            "self-hosted backend",
            "deployment",
            "monthly",
            "this period",
            "requests",
            "tokens",
            "effective $/MTok",
        ]);
        for s in &r.self_hosted {
            backends.add_row(vec![
                Cell::new(&s.backend),
                Cell::new(format!("{} ({} GPUs)", s.deployment, s.gpus)),
                right(amount(s.monthly)),
                right(amount(s.period)),
                right(group_thousands(&s.requests.to_string())),
                right(group_thousands(&s.tokens.to_string())),
                right(
                    s.effective_usd_per_mtok
                        .map_or("-".to_string(), |e| format!("${}", number(e, 3))),
                ),
            ]);
        }
        writeln!(out, "{backends}")?;
        if let Some(effective) = c.self_hosted_effective_usd_per_mtok {
            writeln!(
                out,
                "Self-hosted effective price at this volume: ${}/MTok ({} tokens).",
                number(effective, 3),
                group_thousands(&c.self_hosted_tokens.to_string())
            )?;
        }
    }
    writeln!(out)
}

fn write_report_groups(
    out: &mut String,
    title: &str,
    groups: &[report::GroupFigures],
) -> fmt::Result {
    let mut t = table(&[
        "name",
        "requests",
        "share",
        "errors",
        "input tokens",
        "output tokens",
        "cost",
        "on the API",
        "estimated",
    ]);
    for g in groups {
        let input =
            g.input_tokens + g.cache_read_tokens + g.cache_write_tokens + g.cache_write_1h_tokens;
        t.add_row(vec![
            Cell::new(g.name.as_deref().map_or("(not recorded)", group_name)),
            right(group_thousands(&g.requests.to_string())),
            right(percent(g.share)),
            right(group_thousands(&g.errors.to_string())),
            right(group_thousands(&input.to_string())),
            right(group_thousands(&g.output_tokens.to_string())),
            right(amount(g.cost)),
            right(amount(g.counterfactual)),
            right(group_thousands(&g.estimated_requests.to_string())),
        ]);
    }
    writeln!(out, "{title}\n{t}\n")
}

fn write_report_latency(
    out: &mut String,
    title: &str,
    groups: &[report::LatencyGroup],
) -> fmt::Result {
    let mut t = table(&[
        "name",
        "successful",
        "total p50 ms",
        "p95",
        "p99",
        "with TTFT",
        "TTFT p50 ms",
        "p95",
        "p99",
    ]);
    for g in groups.iter().filter(|g| g.requests > 0) {
        let mut row = vec![
            Cell::new(group_name(&g.name)),
            right(group_thousands(&g.requests.to_string())),
        ];
        row.extend(latency_cells(g.total));
        row.push(right(group_thousands(&g.ttft_requests.to_string())));
        row.extend(latency_cells(g.ttft));
        t.add_row(row);
    }
    writeln!(out, "{title} (successful requests)\n{t}\n")
}

fn write_report_traffic(out: &mut String, r: &report::Report) -> fmt::Result {
    let t = &r.traffic;
    writeln!(out, "Traffic")?;
    if let (Some(average), Some(ratio), Some(peak_hour)) =
        (t.average_calls_per_hour, t.peak_to_average, &t.peak_hour)
    {
        writeln!(
            out,
            "- calls per hour: {} on average over {} hours; peak {} in the hour from {peak_hour}, {ratio:.2}× the average",
            number(average, 1),
            group_thousands(&t.hours.to_string()),
            group_thousands(&t.peak_calls_per_hour.to_string()),
        )?;
    }
    for (what, o) in [
        ("spilled over (a target was full)", &t.spilled),
        ("fell back (sent to more than one backend)", &t.fell_back),
        ("estimated token counts", &t.estimated),
    ] {
        writeln!(
            out,
            "- {what}: {} requests ({}), costing {} ({} on the API)",
            group_thousands(&o.requests.to_string()),
            percent(o.share),
            amount(o.cost),
            amount(o.counterfactual)
        )?;
    }
    if t.errors.is_empty() {
        writeln!(out, "- errors: none\n")?;
        return Ok(());
    }
    writeln!(out)?;
    let mut errors = table(&["outcome", "error kind", "requests", "share"]);
    for e in &t.errors {
        errors.add_row(vec![
            Cell::new(&e.outcome),
            Cell::new(e.error_kind.as_deref().unwrap_or("-")),
            right(group_thousands(&e.requests.to_string())),
            right(percent(e.share)),
        ]);
    }
    writeln!(out, "Errors\n{errors}\n")
}

/// The review, utilisation and the observed workload, after the report's tables.
pub fn print_review(section: &report::review::ReviewSection) -> Result<()> {
    let mut out = String::new();
    write_review(&mut out, section)?;
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn write_review(out: &mut String, section: &report::review::ReviewSection) -> fmt::Result {
    if !section.utilisation.is_empty() {
        writeln!(
            out,
            "\nUtilisation per week (under {:.0}% means paying for GPUs that wait)",
            section.threshold * 100.0
        )?;
        let mut t = table(&[
            "backend",
            "week of",
            "basis",
            "mean",
            "peak",
            "idle share cost",
        ]);
        for backend in &section.utilisation {
            for week in &backend.weeks {
                t.add_row(vec![
                    Cell::new(&backend.backend),
                    Cell::new(
                        report::period::format_utc(week.week_start_unix_ms)
                            .get(..10)
                            .unwrap_or_default(),
                    ),
                    Cell::new(basis_label(backend.basis)),
                    right(format!(
                        "{:.0}%{}",
                        week.mean * 100.0,
                        if week.under_threshold { " (under)" } else { "" }
                    )),
                    right(format!("{:.0}%", week.peak * 100.0)),
                    right(week.idle_cost.to_string()),
                ]);
            }
            if backend.weeks.is_empty() {
                t.add_row(vec![
                    Cell::new(&backend.backend),
                    Cell::new("-"),
                    Cell::new(basis_label(backend.basis)),
                    right("no data"),
                    right("-"),
                    right("-"),
                ]);
            }
        }
        writeln!(out, "{t}")?;
    }
    match (&section.review, &section.review_missing) {
        (Some(review), missing) => {
            writeln!(out, "\nReview on the observed workload")?;
            let mut t = table(&["option", "monthly cost", "detail"]);
            t.add_row(vec![
                Cell::new("today"),
                right(review.current_monthly_usd.to_string()),
                Cell::new("API spend and fixed costs of the period, scaled to a month"),
            ]);
            for option in &review.options {
                t.add_row(vec![
                    Cell::new(&option.name),
                    right(option.monthly_cost_usd.to_string()),
                    Cell::new(&option.detail),
                ]);
            }
            writeln!(out, "{t}")?;
            writeln!(out, "{}", review.summary)?;
            for change in &review.changes {
                writeln!(out, "- {change}")?;
            }
            if let Some(missing) = missing {
                writeln!(out, "Note: {missing}")?;
            }
        }
        (None, Some(missing)) => writeln!(out, "\nReview: {missing}")?,
        (None, None) => {}
    }
    for e in section.estimates.iter().filter(|e| e.estimated_rows > 0) {
        writeln!(out, "\n{}", e.sentence())?;
    }
    if section.slo.misses.is_empty() {
        writeln!(
            out,
            "\nLatency SLO: every backend and route kept p99 time to first token within {:.0} ms.",
            section.slo.ttft_ms
        )?;
    } else {
        writeln!(
            out,
            "\nLatency SLO ({:.0} ms to first token, p99) missed by:",
            section.slo.ttft_ms
        )?;
        for miss in &section.slo.misses {
            writeln!(
                out,
                "- {} {}: {:.0} ms",
                miss.kind, miss.name, miss.ttft_p99_ms
            )?;
        }
    }
    writeln!(out, "\n{}", section.quality_note)?;
    if !section.observed_notes.is_empty() {
        writeln!(
            out,
            "\nObserved workload (`costfloor workload from-ledger` writes it as a file)"
        )?;
        for note in &section.observed_notes {
            writeln!(out, "- {note}")?;
        }
    }
    Ok(())
}

pub fn basis_label(basis: costfloor_core::utilisation::Basis) -> &'static str {
    match basis {
        costfloor_core::utilisation::Basis::GpuUtil => "GPU utilisation (DCGM)",
        costfloor_core::utilisation::Basis::ServerTokens => "server's tokens ÷ capacity",
        costfloor_core::utilisation::Basis::LedgerTokens => "ledger's tokens ÷ capacity (estimate)",
    }
}
