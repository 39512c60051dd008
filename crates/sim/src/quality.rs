//! Known accuracy, for testing evaluations: given an eval dataset (`answers_file`, the
//! JSONL `costfloor eval run` reads) and a probability per model and task, the sim
//! answers a sample's prompt with its expected answer with that probability, and with a
//! wrong one otherwise.
//!
//! The draw is deterministic: `u = splitmix64(seed ^ fnv1a(sample id))` over `[0, 1)`,
//! correct when `u < p`. Every model shares the sample's `u`, so a model with the higher
//! `p` is right on every sample a lower one gets right, as models of different strength
//! fail on the same hard samples: the discordant share is `|p₁ − p₂|`.
//!
//! ```toml
//! [quality]
//! answers_file = "examples/eval/dataset.jsonl"
//! seed = 7
//! [[quality.accuracy]]
//! model = "llama-3.3-70b"
//! task = "classification"   # optional: every task
//! p = 0.9
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::{fnv1a, splitmix64, Segment};

/// The wrong answer: no scorer takes it for a right one (no label, number or JSON).
pub const WRONG_ANSWER: &str = "I cannot tell from what is given.";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// The eval dataset whose prompts get known answers (`costfloor sim --config`: relative
    /// to the config's folder).
    pub answers_file: PathBuf,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub accuracy: Vec<AccuracyRule>,
    /// Models that act as an oracle judge of eval's judge prompts: they prefer (or grade
    /// 5 against 1) the answer that is not [`WRONG_ANSWER`], and call two alike a tie.
    #[serde(default)]
    pub judges: Vec<String>,
    /// Prompt text → (sample id, task, expected answer), read by [`QualityConfig::load`].
    #[serde(skip)]
    pub answers: HashMap<String, (String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyRule {
    pub model: String,
    #[serde(default)]
    pub task: Option<String>,
    pub p: f64,
}

impl QualityConfig {
    /// Reads `answers_file` (relative to `base_dir` unless absolute).
    pub fn load(&mut self, base_dir: &Path) -> Result<(), String> {
        for rule in &self.accuracy {
            if !(0.0..=1.0).contains(&rule.p) {
                return Err(format!(
                    "quality.accuracy: p = {} for model `{}` is not allowed; expected 0 to 1",
                    rule.p, rule.model
                ));
            }
        }
        let path = base_dir.join(&self.answers_file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("quality.answers_file: cannot read {}: {e}", path.display()))?;
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not valid JSON: {e}", path.display(), index + 1))?;
            let id = match &value["id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let task = value["task"].as_str().unwrap_or_default().to_string();
            let prompt = match (&value["prompt"], &value["messages"]) {
                (Value::String(p), _) => p.clone(),
                (_, Value::Array(messages)) => messages
                    .iter()
                    .rev()
                    .find(|m| m["role"] == "user")
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => continue,
            };
            let expected = match &value["expected"] {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let key = Segment::new("user", &Value::String(prompt)).text;
            self.answers
                .insert(key.trim().to_string(), (id, task, expected));
        }
        Ok(())
    }

    /// The answer to a request whose last user message is `prompt`, from `model`:
    /// `None` when the prompt is not a sample or no rule covers the model and task.
    pub fn answer(&self, model: &str, prompt: &str) -> Option<String> {
        if self.judges.iter().any(|j| j == model) {
            return judge(prompt);
        }
        let (id, task, expected) = self.answers.get(prompt.trim())?;
        let rule = self
            .accuracy
            .iter()
            .find(|r| r.model == model && r.task.as_deref() == Some(task.as_str()))
            .or_else(|| {
                self.accuracy
                    .iter()
                    .find(|r| r.model == model && r.task.is_none())
            })?;
        let u = (splitmix64(self.seed ^ fnv1a(0xcbf2_9ce4_8422_2325, id.as_bytes())) >> 11) as f64
            / (1u64 << 53) as f64;
        Some(if u < rule.p {
            expected.clone()
        } else {
            WRONG_ANSWER.to_string()
        })
    }
}

/// An oracle verdict on one of eval's judge prompts (pairwise: `Answer A:` … `Answer
/// B:` … `Reply with exactly one of: A, B, tie.`; scale: `The answer:` … `Reply with the
/// grade only`), or `None` for another prompt.
fn judge(prompt: &str) -> Option<String> {
    let wrong = |answer: &str| answer.trim() == WRONG_ANSWER;
    if let Some((_, rest)) = prompt.split_once("\nAnswer A:\n") {
        let (a, rest) = rest.split_once("\n\nAnswer B:\n")?;
        let (b, _) = rest.split_once("\n\nReply with exactly one of")?;
        return Some(
            match (wrong(a), wrong(b)) {
                (false, true) => "A",
                (true, false) => "B",
                _ => "tie",
            }
            .to_string(),
        );
    }
    let (_, rest) = prompt.split_once("\nThe answer:\n")?;
    let (answer, _) = rest.split_once("\n\nReply with the grade only")?;
    Some(if wrong(answer) { "1" } else { "5" }.to_string())
}

/// The output of a request: the known answer where the config has one, else the
/// deterministic generated text.
pub fn output(
    config: &crate::SimConfig,
    model: &str,
    segments: &[Segment],
    max_tokens: Option<u64>,
    stops: &[String],
) -> crate::text::Output {
    let known = config
        .quality
        .as_ref()
        .and_then(|q| q.answer(model, last_user_text(segments)?));
    match known {
        Some(answer) => crate::text::Output::answer(&answer),
        None => crate::text::generate(
            crate::text::prompt_hash(segments),
            max_tokens,
            u64::from(config.default_output_tokens),
            stops,
        ),
    }
}

/// The last user segment's text.
pub fn last_user_text(segments: &[Segment]) -> Option<&str> {
    segments
        .iter()
        .rev()
        .find(|s| s.role == "user")
        .map(|s| s.text.as_str())
}
