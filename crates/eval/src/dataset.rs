//! The dataset (JSONL, one sample a line) and the eval TOML (a default scorer and an
//! error cost per task). Every line is checked before anything is sent: a line that
//! does not parse is reported with its number and the reason.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scorer::{Scorer, ScorerSpec};
use crate::EvalError;

/// One sample as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleLine {
    id: Value,
    task: String,
    #[serde(default)]
    messages: Option<Vec<MessageLine>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    scorer: Option<ScorerSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageLine {
    role: String,
    content: String,
}

/// A checked sample, with its scorer built.
#[derive(Debug, Clone)]
pub struct Sample {
    pub id: String,
    pub task: String,
    /// The line it came from (1-based).
    pub line: usize,
    pub system: Option<String>,
    /// (role, text), the last one the user's.
    pub messages: Vec<(String, String)>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub expected: Option<Value>,
    pub scorer_spec: ScorerSpec,
    pub scorer: Scorer,
}

/// A line that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A parsed dataset: the samples, and the lines refused.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub invalid: Vec<LineError>,
    /// FNV-1a of the file's bytes, so a resumed run can tell the file changed.
    pub fingerprint: String,
}

/// Per-task settings from the eval TOML.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    pub scorer: Option<ScorerSpec>,
    /// The downstream cost of one wrong answer, in USD.
    pub error_cost_usd: Option<f64>,
    /// Calls per month of this task, where no workload file says.
    pub calls_per_month: Option<f64>,
}

/// The eval TOML: defaults, then one table per task.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    #[serde(default)]
    pub defaults: TaskSettings,
    #[serde(default)]
    pub task: BTreeMap<String, TaskSettings>,
}

impl EvalSettings {
    /// Parses the eval TOML; errors give `file:line:col`.
    pub fn parse(name: &str, text: &str) -> Result<EvalSettings, EvalError> {
        let settings: EvalSettings = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| costfloor_core::catalog::line_col(text, s.start))
                .unwrap_or((1, 1));
            EvalError::Input(format!("{name}:{line}:{column}: {}", e.message()))
        })?;
        for (task, value) in std::iter::once(("defaults", &settings.defaults))
            .chain(settings.task.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if let Some(cost) = value.error_cost_usd {
                if !(cost.is_finite() && cost >= 0.0) {
                    return Err(EvalError::Input(format!(
                        "{name}: {task}.error_cost_usd = {cost} is not allowed: expected a non-negative number of USD"
                    )));
                }
            }
        }
        Ok(settings)
    }

    /// The scorer for a sample of `task` without one of its own.
    pub fn scorer_for(&self, task: &str, fallback: Option<&ScorerSpec>) -> Option<ScorerSpec> {
        self.task
            .get(task)
            .and_then(|t| t.scorer.clone())
            .or_else(|| fallback.cloned())
            .or_else(|| self.defaults.scorer.clone())
    }

    /// The error cost of `task`: its own, else the default, else `global`.
    pub fn error_cost_for(&self, task: &str, global: Option<f64>) -> Option<f64> {
        self.task
            .get(task)
            .and_then(|t| t.error_cost_usd)
            .or(global)
            .or(self.defaults.error_cost_usd)
    }
}

/// FNV-1a 64 of `bytes`, as 16 hex digits.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Parses every line of `text`. `default_scorer` is the command line's; the eval
/// TOML's per-task scorer comes first.
pub fn parse(text: &str, settings: &EvalSettings, default_scorer: Option<&ScorerSpec>) -> Dataset {
    let mut samples = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(line, raw, settings, default_scorer) {
            Ok(sample) => {
                if seen.insert(sample.id.clone()) {
                    samples.push(sample);
                } else {
                    invalid.push(LineError {
                        line,
                        reason: format!(
                            "id: `{}` is used by an earlier line; ids must be unique",
                            sample.id
                        ),
                    });
                }
            }
            Err(reason) => invalid.push(LineError { line, reason }),
        }
    }
    Dataset {
        samples,
        invalid,
        fingerprint: fingerprint(text.as_bytes()),
    }
}

fn parse_line(
    line: usize,
    raw: &str,
    settings: &EvalSettings,
    default_scorer: Option<&ScorerSpec>,
) -> Result<Sample, String> {
    let parsed: SampleLine = serde_json::from_str(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            e.to_string()
        }
    })?;
    let id = match &parsed.id {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(format!(
                "id: {other} is not allowed; expected a non-empty string or a number"
            ))
        }
    };
    if parsed.task.trim().is_empty() {
        return Err("task: must be a non-empty string, e.g. \"classification\"".to_string());
    }
    let messages = match (parsed.messages, parsed.prompt) {
        (Some(_), Some(_)) => {
            return Err("messages and prompt: give one of them, not both".to_string())
        }
        (None, None) => {
            return Err("messages: required (or prompt); the sample has neither".to_string())
        }
        (None, Some(prompt)) => vec![("user".to_string(), prompt)],
        (Some(messages), None) => {
            if messages.is_empty() {
                return Err("messages: must contain at least one message".to_string());
            }
            let mut out = Vec::with_capacity(messages.len());
            for (i, m) in messages.into_iter().enumerate() {
                if !matches!(m.role.as_str(), "user" | "assistant" | "system") {
                    return Err(format!(
                        "messages[{i}].role: `{}` is not allowed; expected user, assistant or system",
                        m.role
                    ));
                }
                out.push((m.role, m.content));
            }
            if out.last().is_some_and(|(role, _)| role != "user") {
                return Err("messages: the last message must be the user's".to_string());
            }
            out
        }
    };
    if let Some(t) = parsed.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(format!(
                "temperature: {t} is out of range; expected 0 to 1 (the range both APIs accept)"
            ));
        }
    }
    if parsed.max_tokens == Some(0) {
        return Err("max_tokens: must be at least 1".to_string());
    }
    let spec = parsed
        .scorer
        .or_else(|| settings.scorer_for(&parsed.task, default_scorer))
        .ok_or_else(|| {
            format!(
                "scorer: none for task `{}`; give one on the line, in the eval TOML ([task.{}] scorer = ...), or with --scorer",
                parsed.task, parsed.task
            )
        })?;
    let scorer = Scorer::build(&spec, parsed.expected.as_ref()).map_err(|e| e.to_string())?;
    Ok(Sample {
        id,
        task: parsed.task,
        line,
        system: parsed.system,
        messages,
        max_tokens: parsed.max_tokens,
        temperature: parsed.temperature,
        expected: parsed.expected,
        scorer_spec: spec,
        scorer,
    })
}

/// A reproducible random subset of `count` samples (seeded Fisher–Yates over the
/// indexes), in dataset order.
pub fn choose(samples: &[Sample], count: usize, seed: u64) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..samples.len()).collect();
    if count >= samples.len() {
        return indexes;
    }
    let mut rng = crate::rng::SplitMix64::new(seed);
    for i in (1..indexes.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        indexes.swap(i, j);
    }
    indexes.truncate(count);
    indexes.sort_unstable();
    indexes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"id": "a", "task": "t", "prompt": "p1", "expected": "yes", "scorer": {"type": "choice", "choices": ["yes", "no"]}}
{"id": 2, "task": "t", "messages": [{"role": "user", "content": "p2"}], "expected": "4"}

{"id": "a", "task": "t", "prompt": "again", "expected": "x", "scorer": "exact"}
{"id": "b", "task": "t", "prompt": "p", "messages": [{"role": "user", "content": "p"}], "expected": "x"}
{"id": "c", "task": "t", "messages": [{"role": "assistant", "content": "hi"}], "expected": "x"}
{"id": "d", "task": "t", "prompt": "p", "temperature": 1.5, "expected": "x"}
{"id": "e", "task": "other", "prompt": "p", "expected": "x"}
{"id": "f", "task": "t", "prompt": "p", "expected": "x", "colour": "red"}"#;

    #[test]
    fn every_bad_line_is_named_with_its_number_and_reason() {
        let settings = EvalSettings::parse(
            "eval.toml",
            "[task.t]\nscorer = \"numeric\"\nerror_cost_usd = 0.5\n",
        )
        .unwrap();
        let dataset = parse(LINES, &settings, None);
        // Line 2 takes the task's scorer from the eval TOML; the blank line 3 is skipped.
        assert_eq!(dataset.samples.len(), 2);
        assert_eq!(dataset.samples[1].id, "2");
        assert_eq!(dataset.samples[1].scorer.kind(), "numeric");
        let reasons: Vec<(usize, &str)> = dataset
            .invalid
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        let expect = [
            (4, "is used by an earlier line"),
            (5, "give one of them, not both"),
            (6, "the last message must be the user's"),
            (7, "temperature: 1.5 is out of range"),
            (8, "scorer: none for task `other`"),
            (9, "unknown field `colour`"),
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
        for ((line, reason), (want_line, want)) in reasons.iter().zip(expect) {
            assert_eq!(*line, want_line);
            assert!(reason.contains(want), "line {line}: {reason}");
        }
        assert_eq!(settings.error_cost_for("t", None), Some(0.5));
        assert_eq!(settings.error_cost_for("u", Some(2.0)), Some(2.0));
        let bad = EvalSettings::parse("eval.toml", "[task.t]\nerror_cost_usd = -1\n").unwrap_err();
        assert!(bad.to_string().contains("t.error_cost_usd = -1"), "{bad}");
    }

    #[test]
    fn a_seeded_limit_is_reproducible() {
        let text: String = (0..50)
            .map(|i| format!("{{\"id\": \"s{i}\", \"task\": \"t\", \"prompt\": \"p{i}\", \"expected\": \"x\"}}\n"))
            .collect();
        let samples = parse(
            &text,
            &EvalSettings::default(),
            Some(&ScorerSpec::default()),
        )
        .samples;
        let first = choose(&samples, 10, 42);
        assert_eq!(first, choose(&samples, 10, 42));
        assert_ne!(first, choose(&samples, 10, 43));
        assert_eq!(first.len(), 10);
        assert!(first.windows(2).all(|w| w[0] < w[1]), "in dataset order");
        assert_eq!(choose(&samples, 100, 1).len(), 50);
    }
}
