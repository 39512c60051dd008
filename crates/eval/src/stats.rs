//! The statistics of a paired two-system accuracy comparison: Wilson intervals for one
//! accuracy, McNemar's exact test and Newcombe's paired score interval for the gap
//! between a candidate and a baseline graded on the same samples, a seeded bootstrap
//! for graded (non-binary) differences, Connor's sample size for a target power, and
//! nearest-rank percentiles.
//!
//! Pure functions over counts and slices: no I/O, no global state, and the bootstrap
//! draws from its own seeded SplitMix64 so a report is reproducible from its seed.
//! A `confidence` outside (0, 1) yields the widest interval (or `None`).

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// A two-sided confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }

    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// The standard normal quantile z with P(|Z| <= z) = `confidence`; `None` outside (0, 1).
pub fn z_for_confidence(confidence: f64) -> Option<f64> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    Some(Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0))
}

/// Wilson score interval for `successes` of `n` at confidence `confidence` (0.95 -> z =
/// 1.959963984540054 from statrs Normal inverse cdf). n = 0 -> Interval{low:0.0, high:1.0}.
pub fn wilson(successes: u64, n: u64, confidence: f64) -> Interval {
    let Some(z) = z_for_confidence(confidence) else {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    };
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let successes = successes.min(n);
    let (n_f, z2) = (n as f64, z * z);
    let p = successes as f64 / n_f;
    let centre = 2.0 * n_f * p + z2;
    let spread = z * (z2 + 4.0 * n_f * p * (1.0 - p)).sqrt();
    let denominator = 2.0 * (n_f + z2);
    // The bounds are exactly 0 and 1 at the edges; the formula only rounds to them.
    let low = if successes == 0 {
        0.0
    } else {
        (centre - spread) / denominator
    };
    let high = if successes == n {
        1.0
    } else {
        (centre + spread) / denominator
    };
    Interval {
        low: low.max(0.0),
        high: high.min(1.0),
    }
}

/// McNemar's exact test on the discordant pairs: `b` = pairs where only the candidate is
/// right, `c` = only the baseline is right. Two-sided exact binomial p-value:
/// min(1, 2 * P(X <= min(b,c))) with X ~ Binomial(b+c, 0.5). b+c = 0 -> 1.0.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let discordant = b + c;
    if discordant == 0 {
        return 1.0;
    }
    match Binomial::new(0.5, discordant) {
        Ok(binomial) => (2.0 * binomial.cdf(b.min(c))).min(1.0),
        Err(_) => 1.0,
    }
}

/// The four cells of a paired 2x2 table of binary outcomes on the same samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PairedCounts {
    pub both: u64,
    pub candidate_only: u64,
    pub baseline_only: u64,
    pub neither: u64,
}

impl PairedCounts {
    /// Adds one sample graded for both systems.
    pub fn record(&mut self, candidate_right: bool, baseline_right: bool) {
        match (candidate_right, baseline_right) {
            (true, true) => self.both += 1,
            (true, false) => self.candidate_only += 1,
            (false, true) => self.baseline_only += 1,
            (false, false) => self.neither += 1,
        }
    }

    pub fn n(&self) -> u64 {
        self.both + self.candidate_only + self.baseline_only + self.neither
    }

    /// Candidate accuracy; 0.0 when there are no samples.
    pub fn candidate_accuracy(&self) -> f64 {
        ratio(self.both + self.candidate_only, self.n())
    }

    /// Baseline accuracy; 0.0 when there are no samples.
    pub fn baseline_accuracy(&self) -> f64 {
        ratio(self.both + self.baseline_only, self.n())
    }

    /// candidate − baseline
    pub fn difference(&self) -> f64 {
        self.candidate_accuracy() - self.baseline_accuracy()
    }

    /// The share of samples where exactly one system is right, (b + c) / n.
    pub fn discordant_fraction(&self) -> f64 {
        ratio(self.candidate_only + self.baseline_only, self.n())
    }

    /// McNemar's exact p-value for these counts.
    pub fn mcnemar_p(&self) -> f64 {
        mcnemar_exact(self.candidate_only, self.baseline_only)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The paired accuracy difference candidate − baseline and its `confidence`-level interval:
/// Newcombe's method 10 (Newcombe 1998, Statistics in Medicine 17:2635-2650, "Improved
/// confidence intervals for the difference between binomial proportions based on paired
/// data"), the square-and-add of the Wilson intervals of both marginals with the
/// correlation `phi` corrected as in the paper: (AD − BC − n/2) when AD − BC > n/2, 0 when
/// 0 <= AD − BC <= n/2, AD − BC when negative, over sqrt of the four margins' product (and
/// 0 when a margin is empty). n = 0 -> Interval{-1.0, 1.0}.
pub fn paired_difference_interval(counts: &PairedCounts, confidence: f64) -> Interval {
    let n = counts.n();
    if n == 0 || z_for_confidence(confidence).is_none() {
        return Interval {
            low: -1.0,
            high: 1.0,
        };
    }
    let (a, b, c, d) = (
        counts.both as f64,
        counts.candidate_only as f64,
        counts.baseline_only as f64,
        counts.neither as f64,
    );
    let candidate_right = counts.both + counts.candidate_only;
    let baseline_right = counts.both + counts.baseline_only;
    let (p1, p2) = (counts.candidate_accuracy(), counts.baseline_accuracy());
    let w1 = wilson(candidate_right, n, confidence);
    let w2 = wilson(baseline_right, n, confidence);

    let margins = (a + b) * (c + d) * (a + c) * (b + d);
    let cross = a * d - b * c;
    let half_n = n as f64 / 2.0;
    let phi = if margins == 0.0 {
        0.0
    } else if cross > half_n {
        (cross - half_n) / margins.sqrt()
    } else if cross >= 0.0 {
        0.0
    } else {
        cross / margins.sqrt()
    };

    let square_and_add = |x: f64, y: f64| (x * x - 2.0 * phi * x * y + y * y).max(0.0).sqrt();
    let difference = p1 - p2;
    let low = difference - square_and_add(p1 - w1.low, w2.high - p2);
    let high = difference + square_and_add(p2 - w2.low, w1.high - p1);
    Interval {
        low: low.max(-1.0),
        high: high.min(1.0),
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014), the seeding generator of xoshiro: small,
/// fast and good enough to draw bootstrap indices.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..bound by Lemire's multiply-shift (bias below 2^-64 · bound).
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}

/// Paired bootstrap interval (percentile method) of the mean of `differences` (one per
/// sample: candidate score − baseline score, e.g. judge grades), with `resamples`
/// resamples and a fixed seed. Deterministic for a seed. Empty input or zero resamples ->
/// None.
pub fn bootstrap_mean_difference(
    differences: &[f64],
    resamples: u32,
    confidence: f64,
    seed: u64,
) -> Option<Interval> {
    z_for_confidence(confidence)?;
    if differences.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let n = differences.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| differences[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let last = means.len() - 1;
    let low_index = ((tail * means.len() as f64).floor() as usize).min(last);
    let high_index = (((1.0 - tail) * means.len() as f64).ceil() as usize).saturating_sub(1);
    Some(Interval {
        low: means[low_index],
        high: means[high_index.clamp(low_index, last)],
    })
}

/// Samples needed for `power` (e.g. 0.8) to detect an accuracy gap of `gap` (e.g. 0.05)
/// with McNemar's test at two-sided `alpha` (0.05), given the expected proportion of
/// discordant pairs `discordant` = (b+c)/n. Connor (1987, Biometrics 43:207-211):
/// n = ( z_{1-α/2} · sqrt(ψ) + z_{power} · sqrt(ψ − gap²) )² / gap², rounded up.
/// ψ is clamped to [gap, 1] (the discordant share cannot be below the gap it produces),
/// which keeps ψ − gap² >= 0. gap <= 0, gap > 1, or alpha/power outside (0, 1) -> None.
pub fn samples_for_power(gap: f64, discordant: f64, alpha: f64, power: f64) -> Option<u64> {
    if !(gap > 0.0 && gap <= 1.0) || discordant.is_nan() {
        return None;
    }
    let z_alpha = z_for_confidence(1.0 - alpha)?;
    if !(power > 0.0 && power < 1.0) {
        return None;
    }
    let z_power = Normal::standard().inverse_cdf(power);
    let psi = discordant.clamp(gap, 1.0);
    let root = z_alpha * psi.sqrt() + z_power * (psi - gap * gap).max(0.0).sqrt();
    let n = (root * root / (gap * gap)).ceil();
    (n.is_finite() && n >= 0.0).then_some((n as u64).max(1))
}

/// Percentile of a sample by nearest rank (p in 0..=100, clamped), None when empty or
/// when p is NaN. Sorts `values` in place.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() || p.is_nan() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0 * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn z_is_the_normal_quantile() {
        // 1.959963984540054: the standard normal 0.975 quantile (any table).
        close(
            z_for_confidence(0.95).unwrap_or(0.0),
            1.959963984540054,
            1e-9,
        );
        assert_eq!(z_for_confidence(1.0), None);
        assert_eq!(z_for_confidence(0.0), None);
    }

    #[test]
    fn wilson_matches_newcombe_1998_single_proportion_table() {
        // Newcombe (1998) "Two-sided confidence intervals for the single proportion:
        // comparison of seven methods", Stat Med 17:857-872, Table I, method 3 (score
        // interval without continuity correction); each recomputed here to 4 decimals.
        for (successes, n, low, high) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let interval = wilson(successes, n, 0.95);
            close(interval.low, low, 5e-5);
            close(interval.high, high, 5e-5);
        }
        assert_eq!(wilson(0, 20, 0.95).low, 0.0);
        assert_eq!(wilson(29, 29, 0.95).high, 1.0);
        assert_eq!(
            wilson(0, 0, 0.95),
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
    }

    #[test]
    fn mcnemar_exact_p_values() {
        // By hand: b=1, c=9, X ~ Bin(10, 1/2): 2·(C(10,0)+C(10,1))/2^10 = 22/1024.
        close(mcnemar_exact(1, 9), 0.021484375, 1e-12);
        close(mcnemar_exact(9, 1), 0.021484375, 1e-12);
        // Fagerland, Lydersen, Laake (2013) "The McNemar test for binary matched-pairs
        // data: mid-p and asymptotic are better than exact conditional", BMC Med Res
        // Methodol 13:91, Bentur et al. example b=1, c=7: exact p = 0.070
        // (by hand 2·(1+8)/256 = 0.0703125).
        close(mcnemar_exact(1, 7), 0.0703125, 1e-12);
        // b = c: 2·P(X <= b) > 1, capped.
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    #[test]
    fn paired_interval_matches_fagerland_cavo_example() {
        // Fagerland, Lydersen, Laake (2017) "Statistical Analysis of Contingency Tables",
        // ch. 8, Cavo et al. (2012) complete response before/after consolidation, table
        // [[59, 6], [16, 80]]: Newcombe square-and-add estimate -0.0621, 95% CI -0.1186 to
        // -0.0046 (also asserted by the authors' R package contingencytables, test-ch8.R).
        let cavo = PairedCounts {
            both: 59,
            candidate_only: 6,
            baseline_only: 16,
            neither: 80,
        };
        close(cavo.difference(), -0.0621, 5e-5);
        let interval = paired_difference_interval(&cavo, 0.95);
        close(interval.low, -0.1186, 5e-5);
        close(interval.high, -0.0046, 5e-5);
    }

    #[test]
    fn paired_interval_properties() {
        // Bentur et al. (1,1,7,12), n=21, used by Fagerland et al. (2013): we compute
        // -0.2857 (-0.5069 to -0.0256) by the formula above; we are not certain of the
        // book's printed digits, so these are asserted as this code's values only.
        let bentur = PairedCounts {
            both: 1,
            candidate_only: 1,
            baseline_only: 7,
            neither: 12,
        };
        let interval = paired_difference_interval(&bentur, 0.95);
        close(interval.low, -0.5069, 5e-5);
        close(interval.high, -0.0256, 5e-5);
        assert!(interval.contains(bentur.difference()));
        // Swapping the sides mirrors the interval.
        let swapped = PairedCounts {
            candidate_only: 7,
            baseline_only: 1,
            ..bentur
        };
        let mirror = paired_difference_interval(&swapped, 0.95);
        close(mirror.low, -interval.high, 1e-12);
        close(mirror.high, -interval.low, 1e-12);
        // Ten times the data: narrower, still around the estimate, inside [-1, 1].
        let scaled = PairedCounts {
            both: 10,
            candidate_only: 10,
            baseline_only: 70,
            neither: 120,
        };
        let narrow = paired_difference_interval(&scaled, 0.95);
        assert!(narrow.width() < interval.width() && narrow.contains(scaled.difference()));
        let extreme = PairedCounts {
            candidate_only: 3,
            ..PairedCounts::default()
        };
        let edge = paired_difference_interval(&extreme, 0.95);
        assert!(edge.low >= -1.0 && edge.high <= 1.0 && edge.contains(1.0));
        assert_eq!(
            paired_difference_interval(&PairedCounts::default(), 0.95),
            Interval {
                low: -1.0,
                high: 1.0
            }
        );
    }

    #[test]
    fn paired_counts_record_and_accuracies() {
        let mut counts = PairedCounts::default();
        for (candidate, baseline) in [
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (true, false),
        ] {
            counts.record(candidate, baseline);
        }
        assert_eq!(
            counts,
            PairedCounts {
                both: 1,
                candidate_only: 2,
                baseline_only: 1,
                neither: 1
            }
        );
        assert_eq!(counts.n(), 5);
        close(counts.candidate_accuracy(), 0.6, 1e-12);
        close(counts.baseline_accuracy(), 0.4, 1e-12);
        close(counts.discordant_fraction(), 0.6, 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_sane() {
        let differences: Vec<f64> = (0..50).map(|i| f64::from(i % 5) - 1.0).collect();
        let mean = differences.iter().sum::<f64>() / differences.len() as f64;
        let first = bootstrap_mean_difference(&differences, 2000, 0.95, 7).unwrap();
        assert_eq!(
            Some(first),
            bootstrap_mean_difference(&differences, 2000, 0.95, 7)
        );
        assert_ne!(
            Some(first),
            bootstrap_mean_difference(&differences, 2000, 0.95, 8)
        );
        assert!(first.contains(mean) && first.width() > 0.0);
        let wider = bootstrap_mean_difference(&differences, 2000, 0.99, 7).unwrap();
        assert!(wider.width() >= first.width());
        assert_eq!(
            bootstrap_mean_difference(&[0.5; 20], 500, 0.95, 1),
            Some(Interval {
                low: 0.5,
                high: 0.5
            })
        );
        assert_eq!(bootstrap_mean_difference(&[], 500, 0.95, 1), None);
    }

    #[test]
    fn samples_for_power_by_connor() {
        // By hand: gap 0.05, ψ 0.10, α 0.05, power 0.8: z = 1.959964, zβ = 0.841621,
        // n = (1.959964·0.316228 + 0.841621·sqrt(0.0975))² / 0.0025
        //   = (0.619795 + 0.262796)² / 0.0025 = 0.778967 / 0.0025 = 311.59 -> 312.
        assert_eq!(samples_for_power(0.05, 0.10, 0.05, 0.8), Some(312));
        // More discordance needs more samples: ψ 0.20 -> 625.55 -> 626 (same formula).
        assert_eq!(samples_for_power(0.05, 0.20, 0.05, 0.8), Some(626));
        // ψ below the gap is clamped to the gap: 0.01 -> 0.10 with gap 0.10:
        // (1.959964·0.316228 + 0.841621·sqrt(0.09))² / 0.01 = 76.09 -> 77.
        assert_eq!(samples_for_power(0.10, 0.01, 0.05, 0.8), Some(77));
        // gap 1 forces ψ = 1, ψ − gap² = 0: n = 1.959964² = 3.84 -> 4.
        assert_eq!(samples_for_power(1.0, 0.0, 0.05, 0.8), Some(4));
        assert_eq!(samples_for_power(0.0, 0.1, 0.05, 0.8), None);
        assert_eq!(samples_for_power(-0.1, 0.1, 0.05, 0.8), None);
        assert_eq!(samples_for_power(0.05, 0.1, 0.0, 0.8), None);
    }

    #[test]
    fn percentile_by_nearest_rank() {
        // Nearest rank on 15, 20, 35, 40, 50 (the Wikipedia "Percentile" worked example):
        // p5 -> 15, p30 -> 20, p40 -> 20, p50 -> 35, p100 -> 50.
        let mut values = [50.0, 15.0, 40.0, 20.0, 35.0];
        for (p, expected) in [
            (0.0, 15.0),
            (5.0, 15.0),
            (30.0, 20.0),
            (40.0, 20.0),
            (50.0, 35.0),
            (100.0, 50.0),
        ] {
            assert_eq!(percentile(&mut values, p), Some(expected), "p{p}");
        }
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
