//! `size --calibrate`: reads measurements (bench results or `[[observation]]` files),
//! fits the efficiency factors through `costfloor_core::calibrate`, and prints the fit,
//! the leave-one-out check and the `[assumptions]` overlay.

use std::path::PathBuf;

use anyhow::Result;
use costfloor_core::calibrate::{self, CrossValidation, Factors, Observation};
use costfloor_core::catalog::Catalog;
use costfloor_core::measured::Measurement;
use serde::Serialize;

use crate::commands::{input_failure, read_input_file};
use crate::output::{self, number, right, table};

#[derive(Serialize)]
struct Calibration<'a> {
    observations: usize,
    before: Factors,
    after: Factors,
    /// The fit on every row, and with `--cross-validate` every row left out in turn.
    cross_validation: Option<&'a CrossValidation>,
    rows: Vec<RowOut>,
    overlay: String,
}

#[derive(Serialize)]
struct RowOut {
    id: String,
    measured: f64,
    before: f64,
    after: f64,
    left_out: Option<f64>,
    excluded: bool,
}

/// Reads every file: JSON is a bench measurement, anything else an observation TOML.
fn read_observations(files: &[PathBuf], catalog: &Catalog) -> Result<Vec<Observation>> {
    let mut observations = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = read_input_file(path)?;
        if text.trim_start().starts_with('{') {
            let measurement = Measurement::from_json(&name, &text).map_err(input_failure)?;
            let rows =
                calibrate::from_measurement(&name, &measurement, catalog).map_err(input_failure)?;
            if rows.is_empty() {
                return Err(input_failure(format!(
                    "{name}: no load level completed a request, so there is nothing to fit"
                )));
            }
            observations.extend(rows);
        } else {
            observations
                .extend(calibrate::parse_observations(&name, &text).map_err(input_failure)?);
        }
    }
    Ok(observations)
}

pub fn run(files: &[PathBuf], cross_validate: bool, json: bool, catalog: &Catalog) -> Result<()> {
    let observations = read_observations(files, catalog)?;
    let base = &catalog.assumptions;
    let before = Factors::of(base);
    let validation = if cross_validate {
        Some(calibrate::cross_validate(&observations, catalog, base).map_err(input_failure)?)
    } else {
        None
    };
    let after = match &validation {
        Some(v) => v.factors.clone(),
        None => calibrate::fit(&observations, catalog, base).map_err(input_failure)?,
    };
    let fitted = after.apply(base);
    let mut rows = Vec::with_capacity(observations.len());
    for (index, observation) in observations.iter().enumerate() {
        rows.push(RowOut {
            id: observation.id.clone(),
            measured: observation.measured,
            before: calibrate::predict(observation, catalog, base).map_err(input_failure)?,
            after: calibrate::predict(observation, catalog, &fitted).map_err(input_failure)?,
            left_out: validation.as_ref().and_then(|v| v.rows[index].left_out),
            excluded: observation.excluded,
        });
    }
    let files_text: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let overlay = after.overlay_toml(&format!(
        "Fitted by `costfloor size --calibrate` to {} observations in {}",
        observations.iter().filter(|o| !o.excluded).count(),
        files_text.join(", ")
    ));
    let calibration = Calibration {
        observations: observations.len(),
        before,
        after,
        cross_validation: validation.as_ref(),
        rows,
        overlay,
    };
    if json {
        return output::print_json(&calibration);
    }
    output::print_text(&render(&calibration))
}

fn ratio(predicted: f64, measured: f64) -> String {
    format!("{:.2}", predicted / measured)
}

fn render(c: &Calibration<'_>) -> String {
    let mut header = vec!["row", "measured", "before", "ratio", "fitted", "ratio"];
    if c.cross_validation.is_some() {
        header.extend(["left out", "ratio"]);
    }
    let mut t = table(&header);
    for row in &c.rows {
        let id = if row.excluded {
            format!("{} (excluded)", row.id)
        } else {
            row.id.clone()
        };
        let mut cells = vec![
            comfy_table::Cell::new(id),
            right(number(row.measured, 1)),
            right(number(row.before, 1)),
            right(ratio(row.before, row.measured)),
            right(number(row.after, 1)),
            right(ratio(row.after, row.measured)),
        ];
        if c.cross_validation.is_some() {
            match row.left_out {
                Some(p) => cells.extend([right(number(p, 1)), right(ratio(p, row.measured))]),
                None => cells.extend([right("-"), right("-")]),
            }
        }
        t.add_row(cells);
    }
    let factor_line = |name: &str, f: &Factors| {
        let per_gpu = |values: &std::collections::BTreeMap<String, f64>| {
            values
                .iter()
                .map(|(gpu, v)| format!(" {gpu} {v:.3}"))
                .collect::<String>()
        };
        format!(
            "{name}: memory_bandwidth_efficiency {:.3}, kv_bandwidth_efficiency {:.3}, mfu {:.3} (by GPU:{}), mfu_fp8 {:.3} (by GPU:{}), tp_efficiency_nvlink {:.3}, step_overhead_ms {:.3}\n",
            f.memory_bandwidth_efficiency,
            f.kv_bandwidth_efficiency,
            f.mfu,
            per_gpu(&f.mfu_by_gpu),
            f.mfu_fp8,
            per_gpu(&f.mfu_fp8_by_gpu),
            f.tp_efficiency_nvlink,
            f.step_overhead_ms
        )
    };
    let mut out = format!("{t}\n");
    out += &factor_line("before", &c.before);
    out += &factor_line("fitted", &c.after);
    if let Some(v) = c.cross_validation {
        for (name, s) in [
            ("in sample", &v.in_sample),
            ("leave one out", &v.leave_one_out),
        ] {
            out += &format!(
                "{name}: {} rows, median ratio {:.2}, {} within ±25% ({:.0}%)\n",
                s.rows,
                s.median_ratio,
                s.within_25_percent,
                s.share_within_25_percent * 100.0
            );
        }
    }
    out += "\n";
    out += &c.overlay;
    out
}
