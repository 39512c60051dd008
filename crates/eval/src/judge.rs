//! The judge: a third backend grades the answers of a sample whose scorer is `judge`,
//! pairwise (which of two answers is better, in an order drawn from the seed and
//! recorded) or on a scale (each answer graded alone, 1 to `scale_max`).

use crate::dataset::Sample;
use crate::rng::SplitMix64;
use crate::run::{JUDGE, JUDGE_CANDIDATE};
use crate::scorer::ScorerSpec;
pub use crate::scorer::{JudgeMode, JudgeOptions};

/// The judge's system prompt.
pub const SYSTEM: &str = "You are a strict, impartial grader. Follow the instructions exactly and answer with the verdict only.";

/// The judge's options, when `spec` is a judge.
pub fn options(spec: &ScorerSpec) -> Option<JudgeOptions> {
    match spec {
        ScorerSpec::Judge(options) => Some(options.clone()),
        _ => None,
    }
}

pub fn mode_of(spec: &ScorerSpec) -> Option<JudgeMode> {
    options(spec).map(|o| o.mode)
}

/// A judge prompt, and for a pairwise judge whether the candidate came first.
pub struct Prompt {
    pub text: String,
    pub candidate_first: bool,
}

/// True when the candidate's answer is shown as answer A (drawn per sample from the seed).
pub fn candidate_first(sample: &Sample, seed: u64) -> bool {
    SplitMix64::for_item(seed, &format!("judge-order:{}", sample.id)).next_u64() & 1 == 0
}

fn question(sample: &Sample) -> String {
    let mut text = String::new();
    if let Some(system) = &sample.system {
        text.push_str(&format!("[system] {system}\n"));
    }
    for (role, content) in &sample.messages {
        text.push_str(&format!("[{role}] {content}\n"));
    }
    text
}

pub fn prompt(sample: &Sample, side: &str, candidate: &str, baseline: &str, seed: u64) -> Prompt {
    let options = options(&sample.scorer_spec).unwrap_or(JudgeOptions {
        mode: JudgeMode::Scale,
        rubric: None,
        scale_max: 5,
    });
    let rubric = options
        .rubric
        .as_deref()
        .unwrap_or("correctness, completeness and faithfulness to the request");
    let reference = sample
        .expected
        .as_ref()
        .map(|e| match e {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .map(|e| format!("\nA reference answer:\n{e}\n"))
        .unwrap_or_default();
    if side == JUDGE {
        let first = candidate_first(sample, seed);
        let (a, b) = if first {
            (candidate, baseline)
        } else {
            (baseline, candidate)
        };
        Prompt {
            text: format!(
                "Compare two answers to the same request on {rubric}.\n\nThe request:\n{}{reference}\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nReply with exactly one of: A, B, tie.",
                question(sample)
            ),
            candidate_first: first,
        }
    } else {
        let answer = if side == JUDGE_CANDIDATE {
            candidate
        } else {
            baseline
        };
        Prompt {
            text: format!(
                "Grade the answer to the request on {rubric}, from 1 (worst) to {} (best).\n\nThe request:\n{}{reference}\nThe answer:\n{answer}\n\nReply with the grade only, a whole number from 1 to {}.",
                options.scale_max,
                question(sample),
                options.scale_max
            ),
            candidate_first: true,
        }
    }
}

/// A judge's verdict read back.
pub struct Verdict {
    /// Pairwise: 1 candidate better, 0.5 tie, 0 baseline better. Scale: the grade.
    pub grade: Option<f64>,
    /// What the judge said and, pairwise, the order shown.
    pub detail: String,
}

pub fn read_verdict(sample: &Sample, side: &str, text: &str, seed: u64) -> Verdict {
    let trimmed = text
        .trim()
        .trim_matches(|c: char| c == '.' || c == '*' || c == '"');
    if side == JUDGE {
        let first = candidate_first(sample, seed);
        let order = if first { "candidate=A" } else { "candidate=B" };
        let word = trimmed
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("")
            .to_ascii_lowercase();
        let grade = match (word.as_str(), first) {
            ("a", true) | ("b", false) => Some(1.0),
            ("a", false) | ("b", true) => Some(0.0),
            ("tie", _) => Some(0.5),
            _ => None,
        };
        Verdict {
            grade,
            detail: format!("{order} verdict={word}"),
        }
    } else {
        let scale_max = options(&sample.scorer_spec).map_or(5, |o| o.scale_max);
        let grade = trimmed
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|g| (1..=scale_max).contains(g))
            .map(f64::from);
        Verdict {
            grade,
            detail: format!(
                "grade={}",
                grade.map_or("none".to_string(), |g| g.to_string())
            ),
        }
    }
}
