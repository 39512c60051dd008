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

pub fn write_cost_chart(plan: &Plan, path: &Path) -> Result<()> {
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

    let root = SVGBackend::new(path, (1100, 680)).into_drawing_area();
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
    // This workload's volume.
    let volume = plan.workload.calls_per_month;
    if (FROM_CALLS..=TO_CALLS).contains(&volume) {
        let marker = RGBColor(200, 30, 30);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(volume, min_cost / 2.0), (volume, max_cost * 2.0)],
                marker.mix(0.6).stroke_width(2),
            )))
            .map_err(|e| anyhow!("{e}"))?
            .label(format!(
                "this workload: {} calls/month",
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
