//! The judge: a third backend grades the answers of a sample whose scorer is `judge`,
//! pairwise (which of two answers is better, in an order drawn from the seed and
//! recorded) or on a scale (each answer graded alone, 1 to `scale_max`). The same
//! prompts grade a shadow pair, the primary's answer in the candidate's place and the
//! reference backend's in the baseline's.

use wire::pair::{ChatParts, ClientRequest, RequestError};

use crate::dataset::Sample;
use crate::rng::SplitMix64;
use crate::run::{JUDGE, JUDGE_CANDIDATE};
use crate::scorer::ScorerSpec;
pub use crate::scorer::{JudgeMode, JudgeOptions};

/// The judge's system prompt.
pub const SYSTEM: &str = "You are a strict, impartial grader. Follow the instructions exactly and answer with the verdict only.";

/// Output tokens a verdict may take (`A`, `tie`, a grade).
pub const VERDICT_MAX_TOKENS: u32 = 16;

/// The judge's request for `prompt`, to a backend serving `model`.
pub fn request(model: &str, prompt: String) -> Result<ClientRequest, RequestError> {
    ClientRequest::from_chat(&ChatParts {
        model,
        system: Some(SYSTEM),
        messages: &[("user".to_string(), prompt)],
        max_tokens: Some(VERDICT_MAX_TOKENS),
        temperature: Some(0.0),
    })
}

/// Candidate − baseline, −1 to 1, from a pairwise grade (1 candidate better, 0.5 tie,
/// 0 baseline better).
pub fn pairwise_difference(grade: f64) -> f64 {
    2.0 * grade - 1.0
}

/// Candidate − baseline on the scale's 0-to-1 range, from two grades of 1 to `top`.
pub fn scale_difference(candidate: f64, baseline: f64, top: f64) -> f64 {
    (candidate - baseline) / (top - 1.0)
}

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

/// What is judged: the request as text, a reference answer if any, and the options.
pub struct Case<'a> {
    /// Names the case for the answer order (a sample id, a request id).
    pub id: &'a str,
    pub request: String,
    pub reference: Option<String>,
    pub options: JudgeOptions,
}

impl<'a> Case<'a> {
    /// The case of a sample whose scorer is `judge` (else the default options).
    pub fn of_sample(sample: &'a Sample) -> Case<'a> {
        let mut request = String::new();
        if let Some(system) = &sample.system {
            request.push_str(&format!("[system] {system}\n"));
        }
        for (role, content) in &sample.messages {
            request.push_str(&format!("[{role}] {content}\n"));
        }
        Case {
            id: &sample.id,
            request,
            reference: sample.expected.as_ref().map(|e| match e {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            options: options(&sample.scorer_spec).unwrap_or_default(),
        }
    }
}

/// True when the candidate's answer is shown as answer A (drawn per case from the seed).
pub fn candidate_first(case: &Case<'_>, seed: u64) -> bool {
    SplitMix64::for_item(seed, &format!("judge-order:{}", case.id)).next_u64() & 1 == 0
}

/// The judge's prompt for `side` (`judge`: pairwise; `judge:candidate` or
/// `judge:baseline`: that answer on the scale).
pub fn prompt(case: &Case<'_>, side: &str, candidate: &str, baseline: &str, seed: u64) -> String {
    let options = &case.options;
    let rubric = options
        .rubric
        .as_deref()
        .unwrap_or("correctness, completeness and faithfulness to the request");
    let reference = case
        .reference
        .as_ref()
        .map(|e| format!("\nA reference answer:\n{e}\n"))
        .unwrap_or_default();
    if side == JUDGE {
        let (a, b) = if candidate_first(case, seed) {
            (candidate, baseline)
        } else {
            (baseline, candidate)
        };
        format!(
            "Compare two answers to the same request on {rubric}.\n\nThe request:\n{}{reference}\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nReply with exactly one of: A, B, tie.",
            case.request
        )
    } else {
        let answer = if side == JUDGE_CANDIDATE {
            candidate
        } else {
            baseline
        };
        format!(
            "Grade the answer to the request on {rubric}, from 1 (worst) to {} (best).\n\nThe request:\n{}{reference}\nThe answer:\n{answer}\n\nReply with the grade only, a whole number from 1 to {}.",
            options.scale_max, case.request, options.scale_max
        )
    }
}

/// A judge's verdict read back.
pub struct Verdict {
    /// Pairwise: 1 candidate better, 0.5 tie, 0 baseline better. Scale: the grade.
    pub grade: Option<f64>,
    /// What the judge said and, pairwise, the order shown.
    pub detail: String,
}

pub fn read_verdict(case: &Case<'_>, side: &str, text: &str, seed: u64) -> Verdict {
    let trimmed = text
        .trim()
        .trim_matches(|c: char| c == '.' || c == '*' || c == '"');
    if side == JUDGE {
        let first = candidate_first(case, seed);
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
        let scale_max = case.options.scale_max;
        let grade = trimmed
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|g| (1..=scale_max).contains(g))
            .map(f64::from);
        Verdict {
            grade,
            detail: format!(
                "grade={} of {scale_max}",
                grade.map_or("none".to_string(), |g| g.to_string())
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn case(mode: JudgeMode) -> Case<'static> {
        Case {
            id: "s1",
            request: "[user] 2+2?\n".into(),
            reference: Some("4".into()),
            options: JudgeOptions {
                mode,
                rubric: None,
                scale_max: 5,
            },
        }
    }

    #[test]
    fn pairwise_verdicts_follow_the_recorded_order() {
        let c = case(JudgeMode::Pairwise);
        let first = candidate_first(&c, 7);
        let text = prompt(&c, JUDGE, "CAND", "BASE", 7);
        let (a, b) = if first {
            ("CAND", "BASE")
        } else {
            ("BASE", "CAND")
        };
        assert!(
            text.contains(&format!("Answer A:\n{a}\n"))
                && text.contains(&format!("Answer B:\n{b}\n"))
        );
        // "A" means the candidate won exactly when it was shown first.
        let verdict = read_verdict(&c, JUDGE, "A.", 7);
        assert_eq!(verdict.grade, Some(if first { 1.0 } else { 0.0 }));
        assert!(verdict
            .detail
            .starts_with(if first { "candidate=A" } else { "candidate=B" }));
        assert_eq!(read_verdict(&c, JUDGE, " Tie ", 7).grade, Some(0.5));
        assert_eq!(read_verdict(&c, JUDGE, "both are fine", 7).grade, None);
        // Over many cases the order is drawn both ways.
        let firsts = (0..100)
            .filter(|i| {
                let id = format!("s{i}");
                candidate_first(
                    &Case {
                        id: &id,
                        ..case(JudgeMode::Pairwise)
                    },
                    7,
                )
            })
            .count();
        assert!((30..=70).contains(&firsts), "{firsts}");
    }

    #[test]
    fn scale_grades_are_read_within_the_scale() {
        let c = case(JudgeMode::Scale);
        assert!(prompt(&c, JUDGE_CANDIDATE, "CAND", "BASE", 1).contains("The answer:\nCAND\n"));
        assert_eq!(read_verdict(&c, JUDGE_CANDIDATE, "4", 1).grade, Some(4.0));
        assert_eq!(
            read_verdict(&c, JUDGE_CANDIDATE, "Grade: 5/5", 1).grade,
            Some(5.0)
        );
        assert_eq!(read_verdict(&c, JUDGE_CANDIDATE, "9", 1).grade, None);
    }
}
