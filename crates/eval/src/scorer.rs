//! The built-in scorers: how a dataset line or the eval TOML names one (`ScorerSpec`),
//! the build step that checks it against the sample's expected value and compiles it
//! (`Scorer::build`), and scoring an output against the expected value (`score`) or
//! against another model's answer (`agree`, for shadow traffic).
//!
//! Scoring is pure and local; the `judge` scorer is only described here, and `score`
//! answers `None` for it because a model grades it elsewhere.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Every scorer `type`, in the order errors list them.
pub const KINDS: &[&str] = &[
    "exact",
    "contains",
    "regex",
    "choice",
    "numeric",
    "json_fields",
    "judge",
];

/// A scorer as written in a dataset line (`"scorer": {"type": "exact", ...}` or just
/// `"scorer": "exact"`) or in the eval TOML. The bare form takes the defaults; `choice`
/// has a required option and so only exists in the object form.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScorerSpec {
    Exact(TextOptions),
    Contains(TextOptions),
    Regex(RegexOptions),
    Choice(ChoiceOptions),
    Numeric(NumericOptions),
    JsonFields(JsonFieldsOptions),
    Judge(JudgeOptions),
}

/// Options of `exact` and `contains`: output and expected get the same normalisation.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextOptions {
    #[serde(default)]
    pub case_sensitive: bool,
    /// Trim and collapse runs of whitespace to one space.
    #[serde(default = "yes")]
    pub normalize_whitespace: bool,
    /// Drop ASCII and Unicode punctuation before comparing.
    #[serde(default)]
    pub ignore_punctuation: bool,
}

/// Options of `regex`: without `pattern`, the sample's expected string is the pattern.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegexOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// Options of `choice`: the labels, at least two, matched as whole words.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOptions {
    pub choices: Vec<String>,
}

/// Options of `numeric`: correct when within `tolerance` (absolute) or, when set, within
/// `relative_tolerance` times |expected|.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NumericOptions {
    #[serde(default)]
    pub tolerance: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_tolerance: Option<f64>,
}

/// Options of `json_fields`: the fields to compare (default: every key of expected).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFieldsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// How the judge grades: one answer on a scale, or candidate against baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    Pairwise,
    #[default]
    Scale,
}

/// Options of `judge`, which a model grades outside this module.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeOptions {
    #[serde(default)]
    pub mode: JudgeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric: Option<String>,
    #[serde(default = "default_scale_max")]
    pub scale_max: u32,
}

fn yes() -> bool {
    true
}

fn default_scale_max() -> u32 {
    5
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            case_sensitive: false,
            normalize_whitespace: true,
            ignore_punctuation: false,
        }
    }
}

impl Default for JudgeOptions {
    fn default() -> Self {
        JudgeOptions {
            mode: JudgeMode::Scale,
            rubric: None,
            scale_max: default_scale_max(),
        }
    }
}

impl Default for ScorerSpec {
    fn default() -> Self {
        ScorerSpec::Exact(TextOptions::default())
    }
}

impl ScorerSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ScorerSpec::Exact(_) => "exact",
            ScorerSpec::Contains(_) => "contains",
            ScorerSpec::Regex(_) => "regex",
            ScorerSpec::Choice(_) => "choice",
            ScorerSpec::Numeric(_) => "numeric",
            ScorerSpec::JsonFields(_) => "json_fields",
            ScorerSpec::Judge(_) => "judge",
        }
    }

    pub fn is_judge(&self) -> bool {
        matches!(self, ScorerSpec::Judge(_))
    }
}

/// The object form, which serde's internal tagging reads (and whose unknown-variant error
/// lists every kind).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TaggedSpec {
    Exact(TextOptions),
    Contains(TextOptions),
    Regex(RegexOptions),
    Choice(ChoiceOptions),
    Numeric(NumericOptions),
    JsonFields(JsonFieldsOptions),
    Judge(JudgeOptions),
}

impl From<TaggedSpec> for ScorerSpec {
    fn from(tagged: TaggedSpec) -> Self {
        match tagged {
            TaggedSpec::Exact(options) => ScorerSpec::Exact(options),
            TaggedSpec::Contains(options) => ScorerSpec::Contains(options),
            TaggedSpec::Regex(options) => ScorerSpec::Regex(options),
            TaggedSpec::Choice(options) => ScorerSpec::Choice(options),
            TaggedSpec::Numeric(options) => ScorerSpec::Numeric(options),
            TaggedSpec::JsonFields(options) => ScorerSpec::JsonFields(options),
            TaggedSpec::Judge(options) => ScorerSpec::Judge(options),
        }
    }
}

impl<'de> Deserialize<'de> for ScorerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = ScorerSpec;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a scorer name such as \"exact\" or an object with a `type` field")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ScorerSpec, E> {
        Ok(match name {
            "exact" => ScorerSpec::Exact(TextOptions::default()),
            "contains" => ScorerSpec::Contains(TextOptions::default()),
            "regex" => ScorerSpec::Regex(RegexOptions::default()),
            "numeric" => ScorerSpec::Numeric(NumericOptions::default()),
            "json_fields" => ScorerSpec::JsonFields(JsonFieldsOptions::default()),
            "judge" => ScorerSpec::Judge(JudgeOptions::default()),
            "choice" => {
                return Err(E::custom(
                    "scorer `choice` needs its labels: write {\"type\": \"choice\", \"choices\": [...]}",
                ))
            }
            other => return Err(E::unknown_variant(other, KINDS)),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScorerSpec, A::Error> {
        TaggedSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(ScorerSpec::from)
    }
}

/// Why a scorer cannot be built for a sample. Each message names the field, the value and
/// what is allowed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScorerError {
    #[error("expected: required by the `{kind}` scorer")]
    MissingExpected { kind: &'static str },
    #[error("expected: the `{kind}` scorer needs {allowed}, got {found}")]
    ExpectedShape {
        kind: &'static str,
        allowed: &'static str,
        found: String,
    },
    #[error("expected: `{value}` is not one of the choices {choices}")]
    NotAChoice { value: String, choices: String },
    #[error("{field}: `{pattern}` is not a valid regex: {reason}")]
    InvalidRegex {
        field: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("scorer.{option}: {value} is not allowed; {allowed}")]
    InvalidOption {
        option: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("scorer.fields: `{field}` is not a key of expected (keys: {keys})")]
    UnknownField { field: String, keys: String },
}

/// A checked, compiled scorer for one sample.
#[derive(Clone, Debug)]
pub struct Scorer {
    check: Check,
}

#[derive(Clone, Debug)]
enum Check {
    Exact {
        options: TextOptions,
        expected: Option<String>,
    },
    Contains {
        options: TextOptions,
        expected: Option<String>,
    },
    Regex {
        regex: Regex,
    },
    Choice {
        choices: Vec<String>,
        expected: Option<usize>,
    },
    Numeric {
        options: NumericOptions,
        expected: Option<f64>,
    },
    JsonFields {
        fields: Option<Vec<String>>,
        expected: Option<Map<String, Value>>,
    },
    Judge,
}

impl Scorer {
    /// Checks the spec against the sample's expected value (None when the sample has none)
    /// and compiles it. Every scorer but `judge` and `regex` with a `pattern` needs one.
    pub fn build(spec: &ScorerSpec, expected: Option<&Value>) -> Result<Scorer, ScorerError> {
        let kind = spec.kind();
        let needs_expected = !matches!(
            spec,
            ScorerSpec::Judge(_) | ScorerSpec::Regex(RegexOptions { pattern: Some(_) })
        );
        if needs_expected && expected.is_none_or(Value::is_null) {
            return Err(ScorerError::MissingExpected { kind });
        }
        Self::compile(spec, expected.filter(|value| !value.is_null()))
    }

    /// A scorer for `agree` only, where there is no expected value (shadow traffic): the
    /// options are checked as in `build`, and `score` answers `None`.
    pub fn for_agreement(spec: &ScorerSpec) -> Result<Scorer, ScorerError> {
        Self::compile(spec, None)
    }

    fn compile(spec: &ScorerSpec, expected: Option<&Value>) -> Result<Scorer, ScorerError> {
        let kind = spec.kind();
        let check = match spec {
            ScorerSpec::Exact(options) | ScorerSpec::Contains(options) => {
                let text = expected
                    .map(|value| expected_text(kind, value))
                    .transpose()?;
                let text = text.map(|text| normalize(&text, options));
                if matches!(spec, ScorerSpec::Exact(_)) {
                    Check::Exact {
                        options: options.clone(),
                        expected: text,
                    }
                } else if text.as_deref() == Some("") {
                    return Err(shape(kind, "a non-empty string", "an empty string"));
                } else {
                    Check::Contains {
                        options: options.clone(),
                        expected: text,
                    }
                }
            }
            ScorerSpec::Regex(options) => {
                let (field, pattern) = match (&options.pattern, expected) {
                    (Some(pattern), _) => ("scorer.pattern", pattern.clone()),
                    (None, Some(Value::String(pattern))) => ("expected", pattern.clone()),
                    (None, Some(other)) => {
                        return Err(shape(
                            kind,
                            "a string pattern (or scorer.pattern)",
                            describe(other),
                        ))
                    }
                    (None, None) => return Err(ScorerError::MissingExpected { kind }),
                };
                let regex = Regex::new(&pattern).map_err(|error| ScorerError::InvalidRegex {
                    field,
                    pattern,
                    reason: regex_reason(&error),
                })?;
                Check::Regex { regex }
            }
            ScorerSpec::Choice(options) => compile_choice(options, expected)?,
            ScorerSpec::Numeric(options) => {
                for (option, value) in [
                    ("tolerance", Some(options.tolerance)),
                    ("relative_tolerance", options.relative_tolerance),
                ] {
                    if let Some(value) = value.filter(|value| !(value.is_finite() && *value >= 0.0))
                    {
                        return Err(invalid(option, value.to_string(), "a finite number >= 0"));
                    }
                }
                let number = match expected {
                    None => None,
                    Some(Value::Number(number)) => number.as_f64(),
                    Some(Value::String(text)) => Some(
                        extract_number(text)
                            .ok_or_else(|| shape(kind, "a number", format!("`{text}`")))?,
                    ),
                    Some(other) => return Err(shape(kind, "a number", describe(other))),
                };
                Check::Numeric {
                    options: options.clone(),
                    expected: number,
                }
            }
            ScorerSpec::JsonFields(options) => compile_json_fields(options, expected)?,
            ScorerSpec::Judge(options) => {
                if options.scale_max < 2 {
                    return Err(invalid(
                        "scale_max",
                        options.scale_max.to_string(),
                        "at least 2",
                    ));
                }
                Check::Judge
            }
        };
        Ok(Scorer { check })
    }

    /// Scores one output: Some(true/false), or None for the judge (graded elsewhere) and for
    /// a scorer built by `for_agreement`.
    pub fn score(&self, output: &str) -> Option<bool> {
        Some(match &self.check {
            Check::Exact { options, expected } => {
                normalize(output, options) == *expected.as_ref()?
            }
            Check::Contains { options, expected } => {
                normalize(output, options).contains(expected.as_deref()?)
            }
            Check::Regex { regex } => regex.is_match(output),
            Check::Choice { choices, expected } => {
                extract_choice(output, choices) == Some((*expected)?)
            }
            Check::Numeric { options, expected } => {
                let expected = (*expected)?;
                extract_number(output).is_some_and(|number| within(options, number, expected))
            }
            Check::JsonFields { fields, expected } => {
                let expected = expected.as_ref()?;
                let output = extract_json_object(output);
                let names = fields
                    .clone()
                    .unwrap_or_else(|| expected.keys().cloned().collect());
                output.is_some_and(|output| {
                    names
                        .iter()
                        .all(|name| json_equal(output.get(name), expected.get(name)))
                })
            }
            Check::Judge => return None,
        })
    }

    /// Scores `output` against `reference` (another model's answer) instead of the expected
    /// value, for shadow-traffic agreement: `exact` compares both normalised texts,
    /// `contains` agrees when one normalised text contains the other, `choice`, `numeric`
    /// and `json_fields` compare what they extract from both (nothing extracted never
    /// agrees; a field absent from both agrees), `regex` agrees when both match or both
    /// don't. Judge -> None.
    pub fn agree(&self, output: &str, reference: &str) -> Option<bool> {
        Some(match &self.check {
            Check::Exact { options, .. } => {
                normalize(output, options) == normalize(reference, options)
            }
            Check::Contains { options, .. } => {
                let (output, reference) =
                    (normalize(output, options), normalize(reference, options));
                output.contains(&reference) || reference.contains(&output)
            }
            Check::Regex { regex } => regex.is_match(output) == regex.is_match(reference),
            Check::Choice { choices, .. } => extract_choice(output, choices)
                .is_some_and(|label| extract_choice(reference, choices) == Some(label)),
            Check::Numeric { options, .. } => {
                match (extract_number(output), extract_number(reference)) {
                    (Some(output), Some(reference)) => within(options, output, reference),
                    _ => false,
                }
            }
            Check::JsonFields { fields, expected } => {
                let (Some(output), Some(reference)) =
                    (extract_json_object(output), extract_json_object(reference))
                else {
                    return Some(false);
                };
                let names: Vec<String> = match (fields, expected) {
                    (Some(fields), _) => fields.clone(),
                    (None, Some(expected)) => expected.keys().cloned().collect(),
                    (None, None) => reference.keys().chain(output.keys()).cloned().collect(),
                };
                names
                    .iter()
                    .all(|name| json_equal(output.get(name), reference.get(name)))
            }
            Check::Judge => return None,
        })
    }

    /// "exact", "contains", ... (one of `KINDS`).
    pub fn kind(&self) -> &'static str {
        match self.check {
            Check::Exact { .. } => "exact",
            Check::Contains { .. } => "contains",
            Check::Regex { .. } => "regex",
            Check::Choice { .. } => "choice",
            Check::Numeric { .. } => "numeric",
            Check::JsonFields { .. } => "json_fields",
            Check::Judge => "judge",
        }
    }
}

fn compile_choice(options: &ChoiceOptions, expected: Option<&Value>) -> Result<Check, ScorerError> {
    let choices: Vec<String> = options
        .choices
        .iter()
        .map(|choice| choice.trim().to_lowercase())
        .collect();
    let listed = options.choices.join(", ");
    let distinct = choices
        .iter()
        .enumerate()
        .all(|(index, choice)| !choices[..index].contains(choice));
    if choices.len() < 2 || choices.iter().any(String::is_empty) || !distinct {
        return Err(invalid(
            "choices",
            format!("[{listed}]"),
            "give at least two distinct, non-empty labels",
        ));
    }
    let expected = match expected {
        None => None,
        Some(Value::String(label)) => Some(
            choices
                .iter()
                .position(|choice| *choice == label.trim().to_lowercase())
                .ok_or_else(|| ScorerError::NotAChoice {
                    value: label.clone(),
                    choices: listed.clone(),
                })?,
        ),
        Some(other) => {
            return Err(shape(
                "choice",
                "one of the choices as a string",
                describe(other),
            ))
        }
    };
    Ok(Check::Choice { choices, expected })
}

fn compile_json_fields(
    options: &JsonFieldsOptions,
    expected: Option<&Value>,
) -> Result<Check, ScorerError> {
    let expected = match expected {
        None => None,
        Some(Value::Object(object)) => Some(object.clone()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Some(object),
            _ => return Err(shape("json_fields", "a JSON object", format!("`{text}`"))),
        },
        Some(other) => return Err(shape("json_fields", "a JSON object", describe(other))),
    };
    if let Some(fields) = &options.fields {
        if fields.is_empty() {
            return Err(invalid(
                "fields",
                "[]",
                "name at least one field, or leave it out to compare every key",
            ));
        }
        if let Some(object) = &expected {
            if let Some(field) = fields.iter().find(|field| !object.contains_key(*field)) {
                let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let keys = keys.join(", ");
                return Err(ScorerError::UnknownField {
                    field: field.clone(),
                    keys,
                });
            }
        }
    }
    Ok(Check::JsonFields {
        fields: options.fields.clone(),
        expected,
    })
}

fn shape(kind: &'static str, allowed: &'static str, found: impl Into<String>) -> ScorerError {
    let found = found.into();
    ScorerError::ExpectedShape {
        kind,
        allowed,
        found,
    }
}

fn invalid(option: &'static str, value: impl Into<String>, allowed: &'static str) -> ScorerError {
    let value = value.into();
    ScorerError::InvalidOption {
        option,
        value,
        allowed,
    }
}

fn expected_text(kind: &'static str, value: &Value) -> Result<String, ScorerError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
        other => Err(shape(kind, "a string, number or bool", describe(other))),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .to_string()
}

/// The regex crate's message without its multi-line caret diagram.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// ASCII punctuation (Rust's definition, which includes symbols like `$`) plus Unicode
/// general category P.
fn punctuation() -> Option<&'static Regex> {
    static PUNCTUATION: OnceLock<Option<Regex>> = OnceLock::new();
    PUNCTUATION
        .get_or_init(|| Regex::new(r"[\p{P}[:punct:]]").ok())
        .as_ref()
}

fn normalize(text: &str, options: &TextOptions) -> String {
    let mut text = text.to_string();
    if options.ignore_punctuation {
        text = match punctuation() {
            Some(regex) => regex.replace_all(&text, "").into_owned(),
            None => text.chars().filter(|c| !c.is_ascii_punctuation()).collect(),
        };
    }
    if !options.case_sensitive {
        text = text.to_lowercase();
    }
    if options.normalize_whitespace {
        text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    text
}

/// The index of the choice found as a whole word (case-insensitive) earliest in `output`;
/// at one position the longer label wins. `choices` are already lower-cased.
fn extract_choice(output: &str, choices: &[String]) -> Option<usize> {
    let text = output.to_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut best: Option<(usize, usize, usize)> = None; // (position, -length as tie-break, index)
    for (index, choice) in choices.iter().enumerate() {
        let found = text.match_indices(choice.as_str()).find(|(start, label)| {
            !is_word(text[..*start].chars().next_back())
                && !is_word(text[start + label.len()..].chars().next())
        });
        if let Some((start, _)) = found {
            let key = (start, usize::MAX - choice.len(), index);
            best = Some(best.map_or(key, |current| current.min(key)));
        }
    }
    best.map(|(_, _, index)| index)
}

/// The first number in `text`: an optional minus sign (not a hyphen after a word), an
/// optional `$`, digits with optional `,` thousands groups, decimals and exponent.
pub fn extract_number(text: &str) -> Option<f64> {
    static NUMBER: OnceLock<Option<Regex>> = OnceLock::new();
    let regex = NUMBER
        .get_or_init(|| Regex::new(r"([-−]?)\s?\$?((?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)([eE][-+]?[0-9]+)?").ok())
        .as_ref()?;
    let found = regex.captures(text)?;
    let whole = found.get(0)?;
    let after_word = text[..whole.start()]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    let negative = !found[1].is_empty() && !after_word;
    let digits = format!(
        "{}{}",
        found[2].replace(',', ""),
        found.get(3).map_or("", |exponent| exponent.as_str())
    );
    let number: f64 = digits.parse().ok()?;
    Some(if negative { -number } else { number })
}

/// The JSON object in a model's answer: the whole text, else the first ``` fence (with or
/// without a `json` tag), else the first `{...}` that parses.
pub fn extract_json_object(text: &str) -> Option<Map<String, Value>> {
    let parse = |candidate: &str| match serde_json::from_str::<Value>(candidate.trim()) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    if let Some(object) = parse(text) {
        return Some(object);
    }
    if let Some((_, rest)) = text.split_once("```") {
        let body = rest.split_once("```").map_or(rest, |(body, _)| body);
        let body = body
            .strip_prefix("json")
            .or_else(|| body.strip_prefix("JSON"))
            .unwrap_or(body);
        if let Some(object) = parse(body) {
            return Some(object);
        }
    }
    text.match_indices('{').take(64).find_map(
        |(start, _)| match serde_json::Deserializer::from_str(&text[start..])
            .into_iter::<Value>()
            .next()
        {
            Some(Ok(Value::Object(object))) => Some(object),
            _ => None,
        },
    )
}

/// Strings compare trimmed and case-insensitively, numbers numerically (also against a
/// string holding a number), arrays and objects element by element.
fn json_equal(left: Option<&Value>, right: Option<&Value>) -> bool {
    let number = |value: &Value| match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (left, right) {
        (None, None) => true,
        (Some(Value::String(a)), Some(Value::String(b))) => {
            a.trim().to_lowercase() == b.trim().to_lowercase()
        }
        (
            Some(a @ (Value::Number(_) | Value::String(_))),
            Some(b @ (Value::Number(_) | Value::String(_))),
        ) => number(a).is_some_and(|a| number(b) == Some(a)),
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equal(Some(a), Some(b)))
        }
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| json_equal(Some(value), b.get(key)))
        }
        (a, b) => a == b,
    }
}

fn within(options: &NumericOptions, value: f64, target: f64) -> bool {
    let gap = (value - target).abs();
    gap <= options.tolerance
        || options
            .relative_tolerance
            .is_some_and(|relative| gap <= relative * target.abs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(text: &str) -> ScorerSpec {
        serde_json::from_str(text).unwrap()
    }

    fn scorer(spec_text: &str, expected: Value) -> Scorer {
        Scorer::build(&spec(spec_text), Some(&expected)).unwrap()
    }

    fn error(spec_text: &str, expected: Option<Value>) -> String {
        Scorer::build(&spec(spec_text), expected.as_ref())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn spec_reads_bare_and_object_forms() {
        assert_eq!(
            spec(r#""exact""#),
            ScorerSpec::Exact(TextOptions::default())
        );
        assert_eq!(spec(r#"{"type": "exact"}"#), ScorerSpec::default());
        assert_eq!(
            spec(r#"{"type": "numeric", "tolerance": 0.5}"#),
            ScorerSpec::Numeric(NumericOptions {
                tolerance: 0.5,
                relative_tolerance: None
            })
        );
        let from_toml: ScorerSpec =
            toml::from_str::<toml::Table>("scorer = { type = \"judge\", mode = \"pairwise\" }")
                .unwrap()["scorer"]
                .clone()
                .try_into()
                .unwrap();
        assert_eq!(
            from_toml,
            ScorerSpec::Judge(JudgeOptions {
                mode: JudgeMode::Pairwise,
                ..JudgeOptions::default()
            })
        );
        assert!(from_toml.is_judge() && !spec(r#""regex""#).is_judge());
        let round_trip = spec(r#"{"type": "choice", "choices": ["yes", "no"]}"#);
        assert_eq!(
            spec(&serde_json::to_string(&round_trip).unwrap()),
            round_trip
        );
    }

    #[test]
    fn spec_errors_list_kinds_and_unknown_fields() {
        let listed = "expected one of `exact`, `contains`, `regex`, `choice`, `numeric`, `json_fields`, `judge`";
        for text in [r#""fuzzy""#, r#"{"type": "fuzzy"}"#] {
            let message = serde_json::from_str::<ScorerSpec>(text)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("unknown variant `fuzzy`") && message.contains(listed),
                "{message}"
            );
        }
        let message =
            serde_json::from_str::<ScorerSpec>(r#"{"type": "exact", "casesensitive": true}"#)
                .unwrap_err()
                .to_string();
        assert!(
            message.contains("unknown field `casesensitive`"),
            "{message}"
        );
        let message = serde_json::from_str::<ScorerSpec>(r#""choice""#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("needs its labels"), "{message}");
    }

    #[test]
    fn exact_and_its_normalisation() {
        let default = scorer(r#""exact""#, json!("Paris"));
        assert_eq!(default.score("  paris \n"), Some(true));
        assert_eq!(default.score("Paris."), Some(false));
        assert_eq!(default.score("Lyon"), Some(false));
        assert_eq!(
            scorer(
                r#"{"type": "exact", "case_sensitive": true}"#,
                json!("Paris")
            )
            .score("paris"),
            Some(false)
        );
        let spaced = r#"{"type": "exact", "normalize_whitespace": false}"#;
        assert_eq!(
            scorer(spaced, json!("New York")).score("New  York"),
            Some(false)
        );
        assert_eq!(
            scorer(r#""exact""#, json!("New York")).score("New  York"),
            Some(true)
        );
        let punct = scorer(
            r#"{"type": "exact", "ignore_punctuation": true}"#,
            json!("Hello, world"),
        );
        assert_eq!(punct.score("hello world!"), Some(true));
        assert_eq!(punct.score("«hello» — world…"), Some(true));
        // Numbers and bools are compared by their JSON text.
        assert_eq!(scorer(r#""exact""#, json!(42)).score("42"), Some(true));
        assert_eq!(scorer(r#""exact""#, json!(true)).score("True"), Some(true));
    }

    #[test]
    fn contains_regex_and_choice() {
        let contains = scorer(r#""contains""#, json!("Blue Whale"));
        assert_eq!(contains.score("The answer: the blue  whale."), Some(true));
        assert_eq!(contains.score("an elephant"), Some(false));
        let pattern = scorer(
            r#"{"type": "regex", "pattern": "^\\d{4}-\\d{2}$"}"#,
            Value::Null,
        );
        assert_eq!(
            (pattern.score("2024-05"), pattern.score("May 2024")),
            (Some(true), Some(false))
        );
        let from_expected = scorer(r#""regex""#, json!("(?i)^yes\\b"));
        assert_eq!(
            (from_expected.score("Yes, sure"), from_expected.score("no")),
            (Some(true), Some(false))
        );

        let choices = r#"{"type": "choice", "choices": ["positive", "negative", "neutral"]}"#;
        let positive = scorer(choices, json!("Positive"));
        assert_eq!(positive.score("The answer is: Positive."), Some(true));
        assert_eq!(positive.score("Neutral, leaning positive"), Some(false));
        assert_eq!(positive.score("postive"), Some(false));
        // The earliest whole word wins even when negated: "not negative, it is positive"
        // extracts `negative`. Prompts should ask for the bare label.
        assert_eq!(positive.score("not negative, it is positive"), Some(false));
        assert_eq!(
            scorer(choices, json!("negative")).score("not negative, it is positive"),
            Some(true)
        );
        // Whole words only: "nonnegative" is no label.
        assert_eq!(
            scorer(choices, json!("neutral")).score("nonnegative, so neutral"),
            Some(true)
        );
        // At one position the longer label wins.
        let overlapping = scorer(
            r#"{"type": "choice", "choices": ["no", "no opinion"]}"#,
            json!("no opinion"),
        );
        assert_eq!(overlapping.score("No opinion."), Some(true));
    }

    #[test]
    fn numeric_extraction_and_tolerance() {
        assert_eq!(extract_number("Total: $1,234.50 due"), Some(1234.5));
        assert_eq!(extract_number("it fell -3.5 points"), Some(-3.5));
        assert_eq!(extract_number("GPT-4 scored"), Some(4.0));
        assert_eq!(extract_number("about 2.5e3 tokens"), Some(2500.0));
        assert_eq!(extract_number("none"), None);
        let exact = scorer(r#""numeric""#, json!(1234.5));
        assert_eq!(exact.score("The total is $1,234.50."), Some(true));
        assert_eq!(exact.score("The total is $1,234.51."), Some(false));
        assert_eq!(exact.score("no idea"), Some(false));
        let loose = scorer(r#"{"type": "numeric", "tolerance": 0.5}"#, json!("42"));
        assert_eq!(
            (loose.score("42.4"), loose.score("42.6")),
            (Some(true), Some(false))
        );
        let relative = scorer(
            r#"{"type": "numeric", "relative_tolerance": 0.01}"#,
            json!(1000),
        );
        assert_eq!(
            (relative.score("1,009"), relative.score("1,011")),
            (Some(true), Some(false))
        );
    }

    #[test]
    fn json_fields_in_fences_and_text() {
        let expected = json!({"name": "Ada Lovelace", "age": 36, "tags": ["math"]});
        let all = scorer(r#""json_fields""#, expected.clone());
        assert_eq!(
            all.score(r#"{"name": " ada lovelace ", "age": 36.0, "tags": ["Math"], "extra": 1}"#),
            Some(true)
        );
        assert_eq!(all.score("Here:\n```json\n{\"name\": \"Ada Lovelace\", \"age\": \"36\", \"tags\": [\"math\"]}\n```"), Some(true));
        assert_eq!(all.score("Sure! {\"name\": \"Ada Lovelace\", \"age\": 37, \"tags\": [\"math\"]} hope it helps"), Some(false));
        assert_eq!(all.score("no json here"), Some(false));
        let some = scorer(r#"{"type": "json_fields", "fields": ["name"]}"#, expected);
        assert_eq!(
            some.score("```\n{\"name\": \"ADA LOVELACE\", \"age\": 1}\n```"),
            Some(true)
        );
        assert_eq!(
            some.score("text {not json} then {\"name\": \"Ada Lovelace\"}"),
            Some(true)
        );
    }

    #[test]
    fn agree_compares_two_answers() {
        let exact = Scorer::for_agreement(&spec(r#""exact""#)).unwrap();
        assert_eq!(
            (exact.agree("Paris", " paris"), exact.agree("Paris", "Lyon")),
            (Some(true), Some(false))
        );
        assert_eq!(exact.score("Paris"), None);
        let contains = scorer(r#""contains""#, json!("x"));
        assert_eq!(contains.agree("It is Paris.", "paris"), Some(true));
        let choice = scorer(
            r#"{"type": "choice", "choices": ["yes", "no"]}"#,
            json!("yes"),
        );
        assert_eq!(
            (
                choice.agree("Yes.", "yes, because"),
                choice.agree("yes", "No")
            ),
            (Some(true), Some(false))
        );
        assert_eq!(choice.agree("maybe", "perhaps"), Some(false));
        let numeric = scorer(r#"{"type": "numeric", "tolerance": 0.01}"#, json!(3));
        assert_eq!(
            (numeric.agree("$3.00", "3"), numeric.agree("3", "4")),
            (Some(true), Some(false))
        );
        let regex = scorer(r#"{"type": "regex", "pattern": "\\d"}"#, Value::Null);
        assert_eq!(
            (
                regex.agree("a1", "b2"),
                regex.agree("a", "b"),
                regex.agree("a1", "b")
            ),
            (Some(true), Some(true), Some(false))
        );
        let fields =
            Scorer::for_agreement(&spec(r#"{"type": "json_fields", "fields": ["a"]}"#)).unwrap();
        assert_eq!(
            (
                fields.agree(r#"{"a": 1, "b": 2}"#, r#"{"a": 1.0}"#),
                fields.agree(r#"{"a": 1}"#, r#"{"a": 2}"#)
            ),
            (Some(true), Some(false))
        );
        let judge = scorer(r#""judge""#, Value::Null);
        assert_eq!(
            (judge.score("x"), judge.agree("x", "y"), judge.kind()),
            (None, None, "judge")
        );
    }

    #[test]
    fn build_errors_name_field_value_and_allowed() {
        assert_eq!(
            error(r#""exact""#, None),
            "expected: required by the `exact` scorer"
        );
        assert_eq!(
            error(r#""numeric""#, Some(json!(null))),
            "expected: required by the `numeric` scorer"
        );
        assert_eq!(
            error(
                r#"{"type": "choice", "choices": ["yes", "no"]}"#,
                Some(json!("maybe"))
            ),
            "expected: `maybe` is not one of the choices yes, no"
        );
        let message = error(r#"{"type": "regex", "pattern": "a(b"}"#, None);
        assert!(
            message.starts_with("scorer.pattern: `a(b` is not a valid regex: ")
                && message.contains("unclosed group"),
            "{message}"
        );
        assert!(error(r#""regex""#, Some(json!("a(b")))
            .starts_with("expected: `a(b` is not a valid regex"));
        assert_eq!(
            error(
                r#"{"type": "choice", "choices": ["yes"]}"#,
                Some(json!("yes"))
            ),
            "scorer.choices: [yes] is not allowed; give at least two distinct, non-empty labels"
        );
        assert_eq!(
            error(r#"{"type": "numeric", "tolerance": -1}"#, Some(json!(1))),
            "scorer.tolerance: -1 is not allowed; a finite number >= 0"
        );
        assert_eq!(
            error(r#""numeric""#, Some(json!("n/a"))),
            "expected: the `numeric` scorer needs a number, got `n/a`"
        );
        assert_eq!(
            error(r#""exact""#, Some(json!([1]))),
            "expected: the `exact` scorer needs a string, number or bool, got an array"
        );
        assert_eq!(
            error(r#""contains""#, Some(json!(" "))),
            "expected: the `contains` scorer needs a non-empty string, got an empty string"
        );
        assert_eq!(
            error(
                r#"{"type": "json_fields", "fields": ["nme"]}"#,
                Some(json!({"name": "x", "age": 1}))
            ),
            "scorer.fields: `nme` is not a key of expected (keys: age, name)"
        );
        assert_eq!(
            error(r#""json_fields""#, Some(json!(3))),
            "expected: the `json_fields` scorer needs a JSON object, got a number"
        );
        assert_eq!(
            error(r#"{"type": "judge", "scale_max": 1}"#, None),
            "scorer.scale_max: 1 is not allowed; at least 2"
        );
    }

    #[test]
    fn kinds_match_specs() {
        let specs = [
            r#""exact""#,
            r#""contains""#,
            r#""regex""#,
            r#"{"type": "choice", "choices": ["a", "b"]}"#,
            r#""numeric""#,
            r#""json_fields""#,
            r#""judge""#,
        ];
        let kinds: Vec<&str> = specs.iter().map(|text| spec(text).kind()).collect();
        assert_eq!(kinds, KINDS);
        let built = Scorer::build(&spec(r#"{"type": "regex", "pattern": "x"}"#), None).unwrap();
        assert_eq!(built.kind(), "regex");
    }
}
