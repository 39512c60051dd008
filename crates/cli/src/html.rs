//! The HTML report: one self-contained page (inline CSS and SVG charts, no script, no
//! request to anywhere) that can be mailed or attached. Laid out with `maud`, so every
//! text is escaped; the charts come from `chart`.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::chart::{self, Reference, TimeLine};

/// A table: a header row and rows of cells, all text.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub caption: Option<String>,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One section of the page: text, charts (SVG text) and tables.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub id: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub charts: Vec<String>,
    pub tables: Vec<Table>,
}

/// The whole page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub title: String,
    pub subtitle: String,
    /// Headline figures: (label, value).
    pub headline: Vec<(String, String)>,
    pub sections: Vec<Section>,
    pub footer: String,
}

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; color: #c5cad6; }
main { max-width: 960px; margin: 0 auto; padding: 16px 32px 48px; }
.headline { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.figure { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.figure .label { font-size: 12px; color: #5b6475; }
.figure .value { font-size: 20px; font-weight: 600; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 8px 20px 16px; margin: 16px 0; }
h2 { font-size: 18px; }
.chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid #e6e8ee; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; }
footer { color: #5b6475; font-size: 12px; margin-top: 24px; }
";

fn table(table: &Table) -> Markup {
    html! {
        table {
            @if let Some(caption) = &table.caption { caption { (caption) } }
            thead { tr { @for header in &table.headers { th { (header) } } } }
            tbody {
                @for row in &table.rows {
                    tr { @for cell in row { td { (cell) } } }
                }
            }
        }
    }
}

/// The page as HTML text.
pub fn render(page: &Page) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (page.title) }
                    p { (page.subtitle) }
                }
                main {
                    div class="headline" {
                        @for (label, value) in &page.headline {
                            div class="figure" {
                                div class="label" { (label) }
                                div class="value" { (value) }
                            }
                        }
                    }
                    @for section in &page.sections {
                        section id=(section.id) {
                            h2 { (section.heading) }
                            @for paragraph in &section.paragraphs { p { (paragraph) } }
                            @for chart in &section.charts {
                                // The SVG comes from plotters, which escapes its own text.
                                div class="chart" { (PreEscaped(chart)) }
                            }
                            @for t in &section.tables { (table(t)) }
                        }
                    }
                    footer { (page.footer) }
                }
            }
        }
    }
    .into_string()
}

fn money_text(usd: f64) -> String {
    costfloor_core::money::Money::from_usd_f64(usd).to_string()
}

fn opt_amount(amount: Option<report::Amount>) -> String {
    amount.map_or_else(|| "unknown".to_string(), |a| a.money().to_string())
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// The report page: headline figures, then cost, latency, utilisation, traffic, the
/// review and notes, each with its charts.
pub fn report_page(
    r: &report::Report,
    section: &report::review::ReviewSection,
) -> anyhow::Result<Page> {
    let mut page = Page {
        title: "costfloor report".to_string(),
        subtitle: format!(
            "{} to {} ({:.2} days), {} requests",
            r.period.since, r.period.until, r.period.days, r.requests
        ),
        footer: format!(
            "Money from the ledger's integer nano-USD; prices and fixed costs from the catalog, \
             as costfloor plan uses them. Per-month figures scale the period to {:.2} days.",
            r.period.month_days
        ),
        ..Page::default()
    };
    if let Some(month) = &r.cost.per_month {
        page.headline = vec![
            ("actual per month".into(), opt_amount(month.actual)),
            (
                "all on the API per month".into(),
                month.counterfactual_all_api.money().to_string(),
            ),
            ("savings per month".into(), opt_amount(month.savings)),
            (
                "API spend per month".into(),
                month.api_spend.money().to_string(),
            ),
        ];
    }
    if let Some(message) = &r.message {
        page.sections.push(Section {
            id: "empty".into(),
            heading: "No traffic in this period".into(),
            paragraphs: vec![message.clone()],
            ..Section::default()
        });
        return Ok(page);
    }

    // Cost.
    let cost_table = Table {
        caption: Some("Cost".into()),
        headers: vec!["".into(), "this period".into(), "per month".into()],
        rows: {
            let p = &r.cost.period;
            let m = r.cost.per_month.as_ref();
            vec![
                vec![
                    "API spend".into(),
                    p.api_spend.money().to_string(),
                    m.map_or("-".into(), |m| m.api_spend.money().to_string()),
                ],
                vec![
                    "self-hosted fixed costs".into(),
                    opt_amount(p.self_hosted_fixed),
                    m.map_or("-".into(), |m| opt_amount(m.self_hosted_fixed)),
                ],
                vec![
                    "actual".into(),
                    opt_amount(p.actual),
                    m.map_or("-".into(), |m| opt_amount(m.actual)),
                ],
                vec![
                    "all on the API".into(),
                    p.counterfactual_all_api.money().to_string(),
                    m.map_or("-".into(), |m| m.counterfactual_all_api.money().to_string()),
                ],
                vec![
                    "savings".into(),
                    opt_amount(p.savings),
                    m.map_or("-".into(), |m| opt_amount(m.savings)),
                ],
            ]
        },
    };
    let daily_lines = {
        let mut lines = vec![TimeLine {
            label: "all on the API".into(),
            points: section
                .daily
                .iter()
                .map(|d| (d.day_unix_ms, d.counterfactual_usd))
                .collect(),
        }];
        if section.daily.iter().all(|d| d.actual_usd.is_some()) {
            lines.insert(
                0,
                TimeLine {
                    label: "actual (API spend + fixed costs)".into(),
                    points: section
                        .daily
                        .iter()
                        .map(|d| (d.day_unix_ms, d.actual_usd.unwrap_or(0.0)))
                        .collect(),
                },
            );
        } else {
            lines.insert(
                0,
                TimeLine {
                    label: "API spend (fixed costs unknown)".into(),
                    points: section
                        .daily
                        .iter()
                        .map(|d| (d.day_unix_ms, d.api_spend_usd))
                        .collect(),
                },
            );
        }
        lines
    };
    let by_backend = Table {
        caption: Some("By backend".into()),
        headers: [
            "backend",
            "requests",
            "errors",
            "tokens in",
            "tokens out",
            "cost",
            "all-API cost",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .by_backend
            .iter()
            .map(|g| {
                vec![
                    g.name.clone().unwrap_or_else(|| "(none)".into()),
                    g.requests.to_string(),
                    g.errors.to_string(),
                    (g.input_tokens
                        + g.cache_read_tokens
                        + g.cache_write_tokens
                        + g.cache_write_1h_tokens)
                        .to_string(),
                    g.output_tokens.to_string(),
                    g.cost.money().to_string(),
                    g.counterfactual.money().to_string(),
                ]
            })
            .collect(),
    };
    page.sections.push(Section {
        id: "cost".into(),
        heading: "Cost".into(),
        paragraphs: vec![format!(
            "Effective self-hosted price: {}.",
            r.cost.self_hosted_effective_usd_per_mtok.map_or_else(
                || "unknown".to_string(),
                |p| format!("${p:.3} per million tokens")
            )
        )],
        charts: vec![chart::time_chart_svg(
            "Daily cost",
            "USD per day",
            &daily_lines,
            None,
            &|v| money_text(v),
        )?],
        tables: vec![cost_table, by_backend],
    });

    // Latency.
    let groups = &r.latency.by_backend;
    let categories: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let total = |pick: fn(&report::Percentiles) -> f64| -> Vec<f64> {
        groups
            .iter()
            .map(|g| g.total.as_ref().map_or(0.0, pick))
            .collect()
    };
    let latency_chart = chart::bar_chart_svg(
        "Total latency per backend",
        "milliseconds",
        &categories,
        &[
            ("p50".to_string(), total(|p| p.p50_ms)),
            ("p95".to_string(), total(|p| p.p95_ms)),
            ("p99".to_string(), total(|p| p.p99_ms)),
        ],
    )?;
    let latency_rows = groups
        .iter()
        .map(|g| {
            let fmt = |p: &Option<report::Percentiles>| {
                p.as_ref().map_or_else(
                    || "-".to_string(),
                    |p| format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p95_ms, p.p99_ms),
                )
            };
            vec![
                g.name.clone(),
                g.requests.to_string(),
                fmt(&g.total),
                fmt(&g.ttft),
            ]
        })
        .collect();
    let slo_line = if section.slo.misses.is_empty() {
        format!(
            "Every backend and route kept its p99 time to first token within the SLO of {:.0} ms.",
            section.slo.ttft_ms
        )
    } else {
        format!(
            "Over the SLO of {:.0} ms to first token (p99): {}.",
            section.slo.ttft_ms,
            section
                .slo
                .misses
                .iter()
                .map(|m| format!("{} {} at {:.0} ms", m.kind, m.name, m.ttft_p99_ms))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    page.sections.push(Section {
        id: "latency".into(),
        heading: "Latency".into(),
        paragraphs: vec![slo_line],
        charts: vec![latency_chart],
        tables: vec![Table {
            caption: Some("Per backend, p50 / p95 / p99 in ms".into()),
            headers: ["backend", "requests", "total", "time to first token"]
                .map(String::from)
                .to_vec(),
            rows: latency_rows,
        }],
    });

    // Utilisation.
    let mut utilisation = Section {
        id: "utilisation".into(),
        heading: "Utilisation".into(),
        ..Section::default()
    };
    if section.utilisation.is_empty() {
        utilisation
            .paragraphs
            .push("No self-hosted backend in the gateway config (pass --config).".into());
    } else {
        let lines: Vec<TimeLine> = section
            .utilisation
            .iter()
            .map(|u| TimeLine {
                label: format!("{} ({})", u.backend, crate::output::basis_label(u.basis)),
                points: u
                    .points
                    .iter()
                    .map(|p| (p.at_unix_ms, p.utilisation * 100.0))
                    .collect(),
            })
            .collect();
        utilisation.charts.push(chart::time_chart_svg(
            "Utilisation over time",
            "percent",
            &lines,
            Some(&Reference {
                label: format!("{:.0}% threshold", section.threshold * 100.0),
                value: section.threshold * 100.0,
            }),
            &|v| format!("{v:.0}%"),
        )?);
        utilisation.tables.push(Table {
            caption: Some("Per week".into()),
            headers: ["backend", "week of", "mean", "peak", "idle share cost"]
                .map(String::from)
                .to_vec(),
            rows: section
                .utilisation
                .iter()
                .flat_map(|u| {
                    u.weeks.iter().map(move |w| {
                        vec![
                            u.backend.clone(),
                            report::period::format_utc(w.week_start_unix_ms)
                                .get(..10)
                                .unwrap_or_default()
                                .to_string(),
                            format!(
                                "{:.0}%{}",
                                w.mean * 100.0,
                                if w.under_threshold { " (under)" } else { "" }
                            ),
                            format!("{:.0}%", w.peak * 100.0),
                            w.idle_cost.to_string(),
                        ]
                    })
                })
                .collect(),
        });
    }
    page.sections.push(utilisation);

    // Traffic.
    let t = &r.traffic;
    let hourly = TimeLine {
        label: "calls per hour".into(),
        points: section_hours(t),
    };
    page.sections.push(Section {
        id: "traffic".into(),
        heading: "Traffic".into(),
        paragraphs: vec![format!(
            "Peak {} calls in an hour against {} on average (peak-to-average {}). Spilled over: {} ({}); fell back: {} ({}); estimated token counts: {} ({}).",
            t.peak_calls_per_hour,
            t.average_calls_per_hour.map_or_else(|| "-".to_string(), |a| format!("{a:.1}")),
            t.peak_to_average.map_or_else(|| "-".to_string(), |p| format!("{p:.2}")),
            t.spilled.requests,
            percent(t.spilled.share),
            t.fell_back.requests,
            percent(t.fell_back.share),
            t.estimated.requests,
            percent(t.estimated.share),
        )]
        .into_iter()
        .chain(
            section
                .estimates
                .iter()
                .filter(|e| e.estimated_rows > 0)
                .map(report::review::EstimateQuality::sentence),
        )
        .collect(),
        charts: vec![chart::time_chart_svg("Calls per hour", "calls", &[hourly], None, &|v| format!("{v:.0}"))?],
        tables: vec![Table {
            caption: Some("Errors".into()),
            headers: ["outcome", "kind", "requests", "share"].map(String::from).to_vec(),
            rows: t
                .errors
                .iter()
                .map(|e| vec![e.outcome.clone(), e.error_kind.clone().unwrap_or_default(), e.requests.to_string(), percent(e.share)])
                .collect(),
        }],
    });

    // Review.
    let mut review = Section {
        id: "review".into(),
        heading: "Review on the observed workload".into(),
        ..Section::default()
    };
    if let Some(missing) = &section.review_missing {
        review.paragraphs.push(missing.clone());
    }
    if let Some(rv) = &section.review {
        review.paragraphs.push(rv.summary.clone());
        review
            .paragraphs
            .extend(rv.changes.iter().map(|c| format!("Change: {c}.")));
        let mut rows = vec![vec![
            "today".to_string(),
            rv.current_monthly_usd.to_string(),
            "API spend and fixed costs, scaled to a month".to_string(),
        ]];
        rows.extend(rv.options.iter().map(|o| {
            vec![
                o.name.clone(),
                o.monthly_cost_usd.to_string(),
                o.detail.clone(),
            ]
        }));
        review.tables.push(Table {
            caption: Some("Monthly cost of the same traffic".into()),
            headers: ["option", "per month", "detail"].map(String::from).to_vec(),
            rows,
        });
    }
    if let Some(plan) = &section.plan {
        review.charts.push(chart::cost_chart_svg(
            plan,
            plan.workload.calls_per_month,
            "observed volume",
        )?);
    }
    review
        .paragraphs
        .extend(section.observed_notes.iter().cloned());
    page.sections.push(review);

    page.sections.push(Section {
        id: "quality".into(),
        heading: "Quality".into(),
        paragraphs: vec![section.quality_note.clone()],
        ..Section::default()
    });
    page.sections.push(Section {
        id: "notes".into(),
        heading: "Notes".into(),
        paragraphs: if r.notes.is_empty() {
            vec!["None.".into()]
        } else {
            r.notes.clone()
        },
        ..Section::default()
    });
    Ok(page)
}

/// Calls per hour as chart points.
fn section_hours(t: &report::Traffic) -> Vec<(i64, f64)> {
    t.calls_per_hour
        .iter()
        .filter_map(|h| {
            costfloor_core::usage_export::parse_rfc3339(&h.hour).map(|s| (s * 1000, h.calls as f64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        let page = Page {
            title: "Report <b>".into(),
            sections: vec![Section {
                id: "cost".into(),
                heading: "Cost & savings".into(),
                tables: vec![Table {
                    caption: None,
                    headers: vec!["a".into()],
                    rows: vec![vec!["<script>alert(1)</script>".into()]],
                }],
                ..Section::default()
            }],
            ..Page::default()
        };
        let text = render(&page);
        assert!(text.contains("Report &lt;b&gt;"));
        assert!(text.contains("Cost &amp; savings"));
        assert!(!text.contains("<script>"));
        assert!(!text.contains("src=") && !text.contains("href="));
    }
}
