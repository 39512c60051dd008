//! The workload as the gateway observed it: volume, token means and p99, cache shares,
//! task mix and load shape from the ledger's totals, written as the workload file
//! `plan --workload` reads. `workload from-ledger` and the review both use it, so they
//! never disagree. No I/O: the caller passes the totals in.

use crate::catalog::Assumptions;
use crate::error::InputError;
use crate::workload::{Eligibility, TaskFile, Workload, WorkloadFile, WorkloadFlags};

/// Totals of the successful requests of a period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedTraffic {
    /// The hours the period covers.
    pub period_hours: f64,
    pub calls: u64,
    pub estimated_calls: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub output_tokens: u64,
    pub p99_prompt_tokens: Option<u64>,
    /// Calls per hour of the day (UTC).
    pub calls_by_hour_of_day: [u64; 24],
    /// The most calls in one clock hour.
    pub busiest_hour_calls: u64,
    pub tasks: Vec<ObservedTask>,
}

/// One task label's totals; `None` for requests without a label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedTask {
    pub task: Option<String>,
    pub calls: u64,
    /// All input tokens, cached or not.
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The observed workload, and what was assumed to get it.
#[derive(Clone, Debug)]
pub struct ObservedWorkload {
    pub file: WorkloadFile,
    pub notes: Vec<String>,
}

/// The task name written for requests that carried no task label.
pub const UNTAGGED_TASK: &str = "untagged";

/// The workload file of `traffic`, checked to build.
pub fn observed_workload(
    traffic: &ObservedTraffic,
    assumptions: &Assumptions,
) -> Result<ObservedWorkload, InputError> {
    if traffic.calls == 0 {
        return Err(InputError::invalid(
            "period",
            "no successful requests",
            "a period with at least one answered request (widen --since/--until)",
        ));
    }
    if !(traffic.period_hours.is_finite() && traffic.period_hours > 0.0) {
        return Err(InputError::invalid(
            "period",
            traffic.period_hours,
            "a period longer than zero",
        ));
    }
    let calls = traffic.calls as f64;
    let all_input = traffic.input_tokens
        + traffic.cache_read_tokens
        + traffic.cache_write_tokens
        + traffic.cache_write_1h_tokens;
    let share = |part: u64| {
        if all_input == 0 {
            0.0
        } else {
            part as f64 / all_input as f64
        }
    };
    let mut notes = Vec::new();
    let mut file = WorkloadFile {
        calls_per_month: Some(calls / traffic.period_hours * assumptions.hours_per_month),
        input_tokens: Some(all_input as f64 / calls),
        output_tokens: Some(traffic.output_tokens as f64 / calls),
        cached_input_share: Some(share(traffic.cache_read_tokens)),
        cache_write_share: Some(share(traffic.cache_write_tokens)),
        cache_write_1h_share: Some(share(traffic.cache_write_1h_tokens)),
        batch_share: Some(0.0),
        p99_prompt_tokens: traffic.p99_prompt_tokens.map(|p| p as f64),
        ..WorkloadFile::default()
    };
    notes.push(format!(
        "{} answered calls over {:.3} hours, scaled to a month of {} hours",
        traffic.calls, traffic.period_hours, assumptions.hours_per_month
    ));
    if traffic.period_hours >= 24.0 {
        file.hourly_profile = Some(
            traffic
                .calls_by_hour_of_day
                .iter()
                .map(|&c| c as f64)
                .collect(),
        );
        notes.push("load shape: calls per hour of the day (UTC) over the period".to_string());
    } else {
        let mean_per_hour = calls / traffic.period_hours.max(1.0);
        let ratio = (traffic.busiest_hour_calls as f64 / mean_per_hour).max(1.0);
        file.peak_to_average = Some(ratio);
        notes.push(format!(
            "load shape: less than a day observed, so no daily profile; the busiest clock hour \
             carried {ratio:.2}× the mean hour"
        ));
    }
    if traffic.estimated_calls > 0 {
        notes.push(format!(
            "{} of {} calls ({:.1}%) have estimated token counts (the backend reported no usage)",
            traffic.estimated_calls,
            traffic.calls,
            100.0 * traffic.estimated_calls as f64 / calls
        ));
    }
    notes.push("batch share: 0, gateway traffic is interactive".to_string());
    if traffic.tasks.iter().any(|t| t.task.is_some()) {
        file.task = traffic
            .tasks
            .iter()
            .filter(|t| t.calls > 0)
            .map(|t| TaskFile {
                name: t.task.clone().unwrap_or_else(|| UNTAGGED_TASK.to_string()),
                share: t.calls as f64 / calls,
                input_tokens: Some(t.input_tokens as f64 / t.calls as f64),
                output_tokens: Some(t.output_tokens as f64 / t.calls as f64),
                self_host: Eligibility::Unknown,
            })
            .collect();
        notes.push(
            "task mix: from the task labels; mark each task's self_host after a quality check"
                .to_string(),
        );
    }
    Workload::build(file.clone(), &WorkloadFlags::default(), assumptions)?;
    Ok(ObservedWorkload { file, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn traffic() -> ObservedTraffic {
        let mut by_hour = [0; 24];
        by_hour[9] = 30;
        by_hour[10] = 10;
        ObservedTraffic {
            period_hours: 2.0,
            calls: 40,
            estimated_calls: 4,
            input_tokens: 20_000,
            cache_read_tokens: 16_000,
            cache_write_tokens: 3_000,
            cache_write_1h_tokens: 1_000,
            output_tokens: 8_000,
            p99_prompt_tokens: Some(2_500),
            calls_by_hour_of_day: by_hour,
            busiest_hour_calls: 30,
            tasks: vec![
                ObservedTask {
                    task: None,
                    calls: 10,
                    input_tokens: 5_000,
                    output_tokens: 1_000,
                },
                ObservedTask {
                    task: Some("classify".into()),
                    calls: 30,
                    input_tokens: 35_000,
                    output_tokens: 7_000,
                },
            ],
        }
    }

    #[test]
    fn totals_become_means_shares_and_a_monthly_volume() {
        let assumptions = Catalog::embedded().unwrap().assumptions;
        let observed = observed_workload(&traffic(), &assumptions).unwrap();
        let file = &observed.file;
        // 40 calls in 2 hours, × 730 hours a month.
        assert_eq!(
            file.calls_per_month,
            Some(40.0 / 2.0 * assumptions.hours_per_month)
        );
        // (20,000 + 16,000 + 3,000 + 1,000) / 40 and 8,000 / 40.
        assert_eq!(file.input_tokens, Some(1_000.0));
        assert_eq!(file.output_tokens, Some(200.0));
        assert_eq!(file.cached_input_share, Some(0.4));
        assert_eq!(file.cache_write_share, Some(0.075));
        assert_eq!(file.cache_write_1h_share, Some(0.025));
        assert_eq!(file.p99_prompt_tokens, Some(2_500.0));
        // Under a day: the busiest hour (30) over the mean hour (20).
        assert_eq!(file.peak_to_average, Some(1.5));
        assert!(file.hourly_profile.is_none());
        assert_eq!(file.task.len(), 2);
        assert_eq!(file.task[0].name, UNTAGGED_TASK);
        assert_eq!(file.task[0].share, 0.25);
        assert_eq!(file.task[1].input_tokens, Some(35_000.0 / 30.0));
        assert!(observed.notes.iter().any(|n| n.contains("4 of 40 calls")));
    }

    #[test]
    fn a_day_or_more_gives_the_hourly_profile() {
        let assumptions = Catalog::embedded().unwrap().assumptions;
        let mut long = traffic();
        long.period_hours = 48.0;
        long.tasks.clear();
        let observed = observed_workload(&long, &assumptions).unwrap();
        let profile = observed.file.hourly_profile.unwrap();
        assert_eq!(profile[9], 30.0);
        assert_eq!(profile[10], 10.0);
        assert!(observed.file.peak_to_average.is_none());
        assert!(observed.file.task.is_empty());
    }

    #[test]
    fn an_empty_period_is_an_error_that_says_what_to_do() {
        let assumptions = Catalog::embedded().unwrap().assumptions;
        let error = observed_workload(&ObservedTraffic::default(), &assumptions).unwrap_err();
        assert!(error.to_string().contains("--since"), "{error}");
    }
}
