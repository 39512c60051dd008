//! The recommended routing policy of a run as `[[route]]` entries in the gateway
//! config's own format (`tasks`, `targets`, `reference_api`), for pasting ahead of the
//! config's other routes: tasks recommended for self-hosting go to the candidate with
//! the baseline as fallback; the rest, undecided ones included, stay on the baseline.

use serde::Serialize;

use crate::summary::EvalReport;

#[derive(Serialize)]
struct Route {
    name: String,
    tasks: Vec<String>,
    targets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_api: Option<String>,
}

#[derive(Serialize)]
struct Fragment {
    route: Vec<Route>,
}

/// The fragment for `report`. `reference_api` is the baseline backend's catalog price
/// id, the counterfactual of self-hosted calls.
pub fn routes_toml(report: &EvalReport, reference_api: Option<&str>) -> String {
    let pick = |decision: &str| -> Vec<String> {
        report
            .tasks
            .iter()
            .filter(|t| t.recommendation.decision == decision)
            .map(|t| t.task.clone())
            .collect()
    };
    let self_host = pick("self_host");
    let mut api = pick("api");
    let undecided = pick("undecided");
    api.extend(undecided.iter().cloned());
    let mut header = format!(
        "# The routing policy of eval run {} (costfloor eval policy): {} on the candidate `{}`,\n# {} on the baseline `{}`, within a gap of {:.1} points at {:.0}% confidence.\n# Paste ahead of the other [[route]] entries: the first matching route wins.\n",
        report.run_id,
        plural(self_host.len(), "task"),
        report.candidate,
        plural(api.len(), "task"),
        report.baseline,
        report.max_gap * 100.0,
        report.confidence * 100.0
    );
    for task in &report.tasks {
        header.push_str(&format!(
            "#   {}: {} ({})\n",
            task.task, task.recommendation.decision, task.recommendation.reason
        ));
    }
    let mut routes = Vec::new();
    if !self_host.is_empty() {
        routes.push(Route {
            name: "eval-self-host".to_string(),
            tasks: self_host,
            targets: vec![report.candidate.clone(), report.baseline.clone()],
            reference_api: reference_api.map(str::to_string),
        });
    }
    if !api.is_empty() {
        routes.push(Route {
            name: "eval-api".to_string(),
            tasks: api,
            targets: vec![report.baseline.clone()],
            reference_api: None,
        });
    }
    let body = toml::to_string(&Fragment { route: routes }).unwrap_or_default();
    format!("{header}\n{body}")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
