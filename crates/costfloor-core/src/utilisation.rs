//! Utilisation of a self-hosted deployment over time, and what its idle share cost:
//! the method's weekly check, where a week under the threshold (60% by default) means
//! paying for GPUs that wait.
//!
//! The basis, best first: the GPUs' own utilisation (DCGM); else the tokens the server
//! counted per second over the capacity `size` computes for the deployment; else the
//! tokens the ledger recorded, over the same capacity (an estimate, labelled as one).
//! No I/O: the caller passes the samples in.

use serde::Serialize;

use crate::money::Money;

const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: i64 = 7 * 24 * HOUR_MS;
/// The Unix epoch fell on a Thursday: weeks start on Monday 1970-01-05, UTC.
const FIRST_MONDAY_MS: i64 = 4 * 24 * HOUR_MS;

/// One sample of a server's metrics, as the gateway stored it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsSample {
    pub at_unix_ms: i64,
    /// Mean GPU utilisation, 0 to 1 (DCGM).
    pub gpu_util: Option<f64>,
    /// Counters since the server started.
    pub prompt_tokens_total: Option<f64>,
    pub generation_tokens_total: Option<f64>,
}

/// What a utilisation figure rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// DCGM's `DCGM_FI_DEV_GPU_UTIL`.
    GpuUtil,
    /// The server's token counters over the deployment's capacity.
    ServerTokens,
    /// The ledger's tokens over the deployment's capacity: an estimate.
    LedgerTokens,
}

/// Utilisation at a time (0 to 1, or above when the capacity model is optimistic).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    pub at_unix_ms: i64,
    pub utilisation: f64,
}

/// The utilisation series of a backend from its samples: DCGM where any sample has it,
/// else the token rate between consecutive samples over `capacity_tokens_per_s`
/// (a counter that went down, a restart, starts afresh). `None` without either.
pub fn from_samples(
    samples: &[MetricsSample],
    capacity_tokens_per_s: f64,
) -> Option<(Basis, Vec<Point>)> {
    if samples.iter().any(|s| s.gpu_util.is_some()) {
        let points = samples
            .iter()
            .filter_map(|s| {
                s.gpu_util.map(|u| Point {
                    at_unix_ms: s.at_unix_ms,
                    utilisation: u,
                })
            })
            .collect();
        return Some((Basis::GpuUtil, points));
    }
    if !(capacity_tokens_per_s.is_finite() && capacity_tokens_per_s > 0.0) {
        return None;
    }
    let tokens = |s: &MetricsSample| match (s.prompt_tokens_total, s.generation_tokens_total) {
        (None, None) => None,
        (p, g) => Some(p.unwrap_or(0.0) + g.unwrap_or(0.0)),
    };
    let counted: Vec<(i64, f64)> = samples
        .iter()
        .filter_map(|s| tokens(s).map(|t| (s.at_unix_ms, t)))
        .collect();
    if counted.len() < 2 {
        return None;
    }
    let points = counted
        .windows(2)
        .filter_map(|pair| {
            let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
            (t1 > t0 && v1 >= v0).then(|| Point {
                at_unix_ms: t1,
                utilisation: (v1 - v0) / ((t1 - t0) as f64 / 1000.0) / capacity_tokens_per_s,
            })
        })
        .collect();
    Some((Basis::ServerTokens, points))
}

/// The utilisation series from the ledger's tokens per clock hour (`(hour start, tokens)`).
pub fn from_ledger_hours(hours: &[(i64, u64)], capacity_tokens_per_s: f64) -> Vec<Point> {
    if !(capacity_tokens_per_s.is_finite() && capacity_tokens_per_s > 0.0) {
        return Vec::new();
    }
    hours
        .iter()
        .map(|&(at_unix_ms, tokens)| Point {
            at_unix_ms,
            utilisation: tokens as f64 / 3600.0 / capacity_tokens_per_s,
        })
        .collect()
}

/// One week's utilisation and what its idle share cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Week {
    /// Monday 00:00 UTC.
    pub week_start_unix_ms: i64,
    pub points: usize,
    pub mean: f64,
    pub peak: f64,
    pub under_threshold: bool,
    /// The fixed cost of the hours the week's points cover, times the idle share
    /// (1 − mean, at least 0).
    #[serde(serialize_with = "crate::cost::usd")]
    pub idle_cost: Money,
}

fn week_start(at_unix_ms: i64) -> i64 {
    (at_unix_ms - FIRST_MONDAY_MS).div_euclid(WEEK_MS) * WEEK_MS + FIRST_MONDAY_MS
}

/// The weeks of `points`, in order. `covered_hours(week start)` gives the hours of that
/// week inside the report's period, over which `fixed_monthly` (for `hours_per_month`)
/// is prorated.
pub fn weekly(
    points: &[Point],
    threshold: f64,
    fixed_monthly: Money,
    hours_per_month: f64,
    covered_hours: impl Fn(i64) -> f64,
) -> Vec<Week> {
    let mut weeks: Vec<Week> = Vec::new();
    for point in points {
        let start = week_start(point.at_unix_ms);
        match weeks.last_mut() {
            Some(week) if week.week_start_unix_ms == start => {
                week.points += 1;
                week.mean += point.utilisation;
                week.peak = week.peak.max(point.utilisation);
            }
            _ => weeks.push(Week {
                week_start_unix_ms: start,
                points: 1,
                mean: point.utilisation,
                peak: point.utilisation,
                under_threshold: false,
                idle_cost: Money::ZERO,
            }),
        }
    }
    for week in &mut weeks {
        week.mean /= week.points as f64;
        week.under_threshold = week.mean < threshold;
        let idle = (1.0 - week.mean).clamp(0.0, 1.0);
        let hours = covered_hours(week.week_start_unix_ms).clamp(0.0, 168.0);
        // Prorated by milliseconds of the month, then the idle share in parts per million.
        let covered_ms = (hours * HOUR_MS as f64).round() as i128;
        let month_ms = (hours_per_month * HOUR_MS as f64).round().max(1.0) as i128;
        let idle_ppm = (idle * 1e6).round() as i128;
        week.idle_cost = fixed_monthly
            .mul_ratio(covered_ms, month_ms)
            .mul_ratio(idle_ppm, 1_000_000);
    }
    weeks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-02T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_793_577_600_000;

    fn sample(at: i64, prompt: f64, generated: f64) -> MetricsSample {
        MetricsSample {
            at_unix_ms: at,
            gpu_util: None,
            prompt_tokens_total: Some(prompt),
            generation_tokens_total: Some(generated),
        }
    }

    #[test]
    fn token_counters_over_capacity() {
        // 15 s apart: 3,000 then 1,500 tokens; capacity 400 tokens/s.
        let samples = [
            sample(MONDAY, 1_000.0, 0.0),
            sample(MONDAY + 15_000, 3_000.0, 1_000.0),
            sample(MONDAY + 30_000, 4_000.0, 1_500.0),
            // A restart: the counters went down; that interval is skipped.
            sample(MONDAY + 45_000, 10.0, 0.0),
        ];
        let (basis, points) = from_samples(&samples, 400.0).unwrap();
        assert_eq!(basis, Basis::ServerTokens);
        assert_eq!(points.len(), 2);
        // 3,000 / 15 / 400 = 0.5; 1,500 / 15 / 400 = 0.25.
        assert_eq!(points[0].utilisation, 0.5);
        assert_eq!(points[1].utilisation, 0.25);
    }

    #[test]
    fn dcgm_wins_when_present() {
        let mut with_gpu = sample(MONDAY, 0.0, 0.0);
        with_gpu.gpu_util = Some(0.8);
        let (basis, points) = from_samples(&[with_gpu, sample(MONDAY + 1, 5.0, 5.0)], 1.0).unwrap();
        assert_eq!(basis, Basis::GpuUtil);
        assert_eq!(
            points,
            vec![Point {
                at_unix_ms: MONDAY,
                utilisation: 0.8
            }]
        );
        assert_eq!(from_samples(&[sample(MONDAY, 1.0, 1.0)], 1.0), None);
    }

    #[test]
    fn ledger_hours_are_an_estimate_over_capacity() {
        // 720,000 tokens in an hour = 200 tokens/s, over 400 tokens/s.
        let points = from_ledger_hours(&[(MONDAY, 720_000)], 400.0);
        assert_eq!(points[0].utilisation, 0.5);
    }

    #[test]
    fn weeks_start_on_monday_and_price_the_idle_share() {
        let points = [
            Point {
                at_unix_ms: MONDAY - 1,
                utilisation: 0.9,
            },
            Point {
                at_unix_ms: MONDAY,
                utilisation: 0.3,
            },
            Point {
                at_unix_ms: MONDAY + 3 * 86_400_000,
                utilisation: 0.5,
            },
        ];
        // $7,300 a month over 730 hours is $10 an hour; each week covers 168 hours.
        let weeks = weekly(&points, 0.6, Money::from_whole_usd(7_300), 730.0, |_| 168.0);
        assert_eq!(weeks.len(), 2);
        assert_eq!(weeks[0].week_start_unix_ms, MONDAY - 7 * 86_400_000);
        assert!(!weeks[0].under_threshold);
        assert_eq!(weeks[1].week_start_unix_ms, MONDAY);
        assert_eq!(weeks[1].points, 2);
        assert!((weeks[1].mean - 0.4).abs() < 1e-12);
        assert_eq!(weeks[1].peak, 0.5);
        assert!(weeks[1].under_threshold);
        // 168 h × $10 × 60% idle = $1,008.
        assert_eq!(weeks[1].idle_cost, Money::from_whole_usd(1_008));
        // 10% idle of the week before: $168.
        assert_eq!(weeks[0].idle_cost, Money::from_whole_usd(168));
    }
}
