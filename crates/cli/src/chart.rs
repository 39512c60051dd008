//! The cost chart: monthly cost vs calls/month on log axes, one line per option and one
//! for the hybrid optimum, capacity steps visible, crossovers and this workload's volume
//! marked. Drawn with plotters' SVG backend.

use std::path::Path;

use anyhow::{anyhow, Result};
use costfloor_core::plan::{human_calls, log_volumes, Plan};
use plotters::prelude::*;

const FROM_CALLS: f64 = 1e4;
const TO_CALLS: f64 = 1e8;
/// Enough points that every replica step shows as a vertical edge.
const POINTS: usize = 1200;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes the cost chart of `plan` to `path`, marking the plan's own volume.
pub fn write_cost_chart(plan: &Plan, path: &Path) -> Result<()> {
    let svg = cost_chart_svg(plan, plan.workload.calls_per_month, "this workload")?;
    std::fs::write(path, svg)?;
    Ok(())
}

/// The cost chart as SVG text, with `marked_volume` drawn as a vertical line named
/// `marked_label` (this workload, or the observed volume in a report).
pub fn cost_chart_svg(plan: &Plan, marked_volume: f64, marked_label: &str) -> Result<String> {
    let mut svg = String::new();
    draw_cost_chart(plan, marked_volume, marked_label, &mut svg)?;
    Ok(svg)
}

fn draw_cost_chart(plan: &Plan, volume: f64, volume_label: &str, svg: &mut String) -> Result<()> {
    let volumes = log_volumes(FROM_CALLS, TO_CALLS, POINTS);
    let series = plan.sweep(&volumes);
    let max_cost = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let min_cost = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|c| *c > 0.0)
        .fold(f64::MAX, f64::min)
        .max(1.0);

    let root = SVGBackend::with_string(svg, (1100, 680)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let title = format!(
        "Monthly cost vs volume ({:.0} in + {:.0} out tokens/call, peak {:.1}x)",
        plan.workload.input_tokens, plan.workload.output_tokens, plan.workload.peak_to_average
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (FROM_CALLS..TO_CALLS).log_scale(),
            ((min_cost / 2.0)..(max_cost * 2.0)).log_scale(),
        )
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("calls per month")
        .y_desc("USD per month")
        .x_label_formatter(&|v| human_calls(*v))
        .y_label_formatter(&|v| format!("${}", human_calls(*v)))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    for (index, s) in series.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let (style, label) = match s.kind {
            "api" => (color.stroke_width(2), format!("{} (API)", s.id)),
            "hybrid" => (
                BLACK.stroke_width(2),
                format!("{} (cheapest replica count, overflow to the API)", s.id),
            ),
            _ => (
                color.stroke_width(3),
                format!("{} (self-hosted, whole replicas for peak)", s.id),
            ),
        };
        let color = if s.kind == "hybrid" { BLACK } else { color };
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|e| anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }

    // Crossovers: where each self-hosted option first gets cheaper than each API.
    let mut marks = Vec::new();
    for b in &plan.break_even {
        if let Some(calls) = b.capacity_aware_calls_per_month {
            if (FROM_CALLS..=TO_CALLS).contains(&calls) {
                marks.push((
                    calls,
                    b.api_cost_per_call.usd_f64() * calls,
                    format!("{} < {}", b.self_hosted, b.api),
                ));
            }
        }
    }
    chart
        .draw_series(
            marks
                .iter()
                .map(|(x, y, _)| Circle::new((*x, *y), 6, BLACK.stroke_width(2))),
        )
        .map_err(|e| anyhow!("{e}"))?
        .label("crossover: self-hosting first cheaper")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.stroke_width(2)));
    for (x, y, _) in &marks {
        chart
            .draw_series(std::iter::once(Text::new(
                human_calls(*x),
                (*x, *y * 1.35),
                ("sans-serif", 13),
            )))
            .map_err(|e| anyhow!("{e}"))?;
    }
    // The volume to mark.
    if (FROM_CALLS..=TO_CALLS).contains(&volume) {
        let marker = RGBColor(200, 30, 30);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(volume, min_cost / 2.0), (volume, max_cost * 2.0)],
                marker.mix(0.6).stroke_width(2),
            )))
            .map_err(|e| anyhow!("{e}"))?
            .label(format!(
                "{volume_label}: {} calls/month",
                human_calls(volume)
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], marker.mix(0.6).stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A line of a time chart: `(Unix ms, value)` points.
pub struct TimeLine {
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

/// A horizontal reference line (a threshold) on a chart.
pub struct Reference {
    pub label: String,
    pub value: f64,
}

fn utc_label(unix_ms: i64, with_time: bool) -> String {
    let (_, month, day) = costfloor_core::calendar::civil_from_days(unix_ms.div_euclid(86_400_000));
    let hour = unix_ms.rem_euclid(86_400_000) / 3_600_000;
    if with_time {
        format!("{month:02}-{day:02} {hour:02}h")
    } else {
        format!("{month:02}-{day:02}")
    }
}

/// Lines over time, as SVG text, with an optional reference line (e.g. 60%).
pub fn time_chart_svg(
    title: &str,
    y_label: &str,
    lines: &[TimeLine],
    reference: Option<&Reference>,
    y_format: &dyn Fn(f64) -> String,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let all = || lines.iter().flat_map(|l| l.points.iter());
        let (mut x0, mut x1) =
            all().fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        if x0 > x1 {
            (x0, x1) = (0, 1);
        }
        if x0 == x1 {
            x1 = x0 + 3_600_000;
        }
        let top = all()
            .map(|p| p.1)
            .chain(reference.map(|r| r.value))
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.15;
        let with_time = x1 - x0 <= 3 * 86_400_000;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_desc(y_label)
            .x_label_formatter(&|v| utc_label(*v, with_time))
            .y_label_formatter(&|v| y_format(*v))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (index, line) in lines.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(line.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if line.points.len() == 1 {
                chart
                    .draw_series(
                        line.points
                            .iter()
                            .map(|p| Circle::new(*p, 4, color.filled())),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        if let Some(reference) = reference {
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x0, reference.value), (x1, reference.value)],
                    red.mix(0.7).stroke_width(1),
                )))
                .map_err(|e| anyhow!("{e}"))?
                .label(reference.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(1))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Grouped bars: one group per category, one bar per series in each, as SVG text.
pub fn bar_chart_svg(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let top = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.15;
        // Group i is centred on x = i, so the axis labels the integers.
        let groups = categories.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..groups - 0.5, 0.0..top)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(categories.len() * 2 + 1)
            .y_desc(y_label)
            .x_label_formatter(&|v| {
                let nearest = v.round();
                if (v - nearest).abs() > 1e-6 || nearest < 0.0 {
                    return String::new();
                }
                categories
                    .get(nearest as usize)
                    .cloned()
                    .unwrap_or_default()
            })
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let width = 0.8 / series.len().max(1) as f64;
        for (index, (label, values)) in series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(values.iter().enumerate().map(|(group, value)| {
                    let left = group as f64 - 0.4 + index as f64 * width;
                    Rectangle::new([(left, 0.0), (left + width * 0.9, *value)], color.filled())
                }))
                .map_err(|e| anyhow!("{e}"))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_labels() {
        // 2026-11-02T09:00:00Z.
        assert_eq!(
            utc_label(1_793_577_600_000 + 9 * 3_600_000, true),
            "11-02 09h"
        );
        assert_eq!(utc_label(0, false), "01-01");
    }
}
