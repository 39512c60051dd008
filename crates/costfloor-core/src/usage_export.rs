//! Provider usage exports read into exact token totals, and the workload derived from
//! them: Anthropic's usage report and cost report (Admin API), OpenAI's completions
//! usage and costs (organization API).
//!
//! [`parse_export`] reads one file's text (one or more pages, format found from its
//! shape) into [`Export`] records; [`derive`] merges any number of them into a
//! [`Derivation`]: a [`WorkloadFile`] that `plan --workload` reads, with what was
//! measured, what was assumed, and the cost report cross-check. No I/O: the caller reads
//! the files. Tokens are integers and money is [`Money`], parsed from the exports'
//! decimal text; floats appear only in the derived means and shares.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};
use crate::catalog::{line_col, ApiModel, Catalog};
use crate::cost::{price_tokens, BatchShare, PriceTier, TokenCounts};
use crate::money::{group_thousands, Money};
use crate::workload::{Eligibility, TaskFile, Workload, WorkloadFile, WorkloadFlags};

/// The four exports, told apart by their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExportFormat {
    /// `GET /v1/organizations/usage_report/messages`: tokens per bucket, no requests.
    AnthropicUsage,
    /// `GET /v1/organizations/cost_report`: `amount` in cents, as a decimal string.
    AnthropicCost,
    /// `GET /v1/organization/usage/completions`: tokens and `num_model_requests`.
    OpenAiUsage,
    /// `GET /v1/organization/costs`: `amount.value` in USD, number or string.
    OpenAiCosts,
}

impl ExportFormat {
    pub fn describe(self) -> &'static str {
        match self {
            ExportFormat::AnthropicUsage => "Anthropic usage report",
            ExportFormat::AnthropicCost => "Anthropic cost report",
            ExportFormat::OpenAiUsage => "OpenAI completions usage",
            ExportFormat::OpenAiCosts => "OpenAI costs",
        }
    }

    pub fn is_usage(self) -> bool {
        matches!(
            self,
            ExportFormat::AnthropicUsage | ExportFormat::OpenAiUsage
        )
    }
}

/// Bad input: which file, which record, what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ExportError {
    pub file: Option<String>,
    /// Page and JSON path inside it, e.g. `page 2, data[0].results[1].output_tokens`.
    pub record: Option<String>,
    pub message: String,
}

impl ExportError {
    fn file(file: &str, message: impl Into<String>) -> ExportError {
        ExportError {
            file: Some(file.to_string()),
            record: None,
            message: message.into(),
        }
    }

    fn options(message: impl Into<String>) -> ExportError {
        ExportError {
            file: None,
            record: None,
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        match (&self.file, &self.record) {
            (Some(file), Some(record)) => format!("{file}: {record}: {}", self.message),
            (Some(file), None) => format!("{file}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// Where a record sits: the page of the file (from 1) and its bucket and result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub page: usize,
    pub bucket: usize,
    pub result: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page {}, data[{}]", self.page, self.bucket)?;
        if let Some(result) = self.result {
            write!(f, ".results[{result}]")?;
        }
        Ok(())
    }
}

/// A time bucket, Unix seconds, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub start_s: i64,
    pub end_s: i64,
}

/// One usage result: the tokens of one group in one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRecord {
    pub bucket: Bucket,
    /// In Anthropic's classes: `input` excludes cache reads and writes (OpenAI's
    /// `input_tokens` minus `input_cached_tokens`).
    pub tokens: TokenCounts,
    /// OpenAI's `num_model_requests`; Anthropic's report has no request count.
    pub requests: Option<u64>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub workspace: Option<String>,
    pub project: Option<String>,
    /// `None` when the export is not grouped by service tier (Anthropic) or batch
    /// (OpenAI).
    pub batch: Option<bool>,
    /// Anthropic's tier when it is neither standard nor batch (`priority`, `flex`, …).
    pub other_tier: Option<String>,
    /// Anthropic's `context_window` = `200k-1M`: priced at long-context rates.
    pub long_context: bool,
    /// Every grouping value, to catch a bucket given twice.
    pub group: String,
    pub location: Location,
}

/// One cost result.
#[derive(Clone, Debug, PartialEq)]
pub struct CostRecord {
    pub bucket: Bucket,
    pub amount: Money,
    /// False for Anthropic's `web_search` and `code_execution` costs.
    pub for_tokens: bool,
    /// Anthropic's `cost_type` is null: the report is not grouped by description, so
    /// its amounts mix token and other costs.
    pub ungrouped: bool,
    pub location: Location,
}

/// One file: one export, one or more pages.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub name: String,
    pub format: ExportFormat,
    pub pages: usize,
    pub buckets: Vec<Bucket>,
    pub usage: Vec<UsageRecord>,
    pub costs: Vec<CostRecord>,
    /// The last page says `has_more: true`: pages are missing.
    pub incomplete: bool,
}

impl Export {
    pub fn results(&self) -> usize {
        self.usage.len() + self.costs.len()
    }

    /// The bucket width in seconds when every bucket has the same one.
    pub fn bucket_width_s(&self) -> Option<i64> {
        let widths: BTreeSet<i64> = self.buckets.iter().map(|b| b.end_s - b.start_s).collect();
        match widths.len() {
            1 => widths.first().copied(),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Anthropic,
    OpenAi,
}

/// Reads one export file. Its pages may be one JSON object, an array of pages, or
/// pages written one after another (as appended by a paging loop).
pub fn parse_export(name: &str, text: &str) -> Result<Export, ExportError> {
    let mut pages = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|err| {
            let message = err.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            ExportError::file(
                &format!("{name}:{}:{}", err.line(), err.column()),
                format!("not valid JSON: {message}"),
            )
        })?;
        match value {
            Value::Array(items) => pages.extend(items),
            other => pages.push(other),
        }
    }
    if pages.is_empty() {
        return Err(ExportError::file(
            name,
            "empty file: expected a usage or cost export (pages of `data` buckets)",
        ));
    }
    let mut parser = Parser {
        name,
        family: None,
        format: None,
        export: Export {
            name: name.to_string(),
            format: ExportFormat::AnthropicUsage,
            pages: 0,
            buckets: Vec::new(),
            usage: Vec::new(),
            costs: Vec::new(),
            incomplete: false,
        },
    };
    for (index, page) in pages.iter().enumerate() {
        parser.page(index + 1, page)?;
    }
    let Some(format) = parser.format else {
        return Err(ExportError::file(
            name,
            format!(
                "empty export: {} page(s) and {} bucket(s) with no results; export a period with usage",
                parser.export.pages,
                parser.export.buckets.len()
            ),
        ));
    };
    parser.export.format = format;
    Ok(parser.export)
}

struct Parser<'a> {
    name: &'a str,
    family: Option<Family>,
    format: Option<ExportFormat>,
    export: Export,
}

const TOKENS: &str = "a whole number of tokens >= 0";

impl Parser<'_> {
    fn error(&self, record: String, message: impl Into<String>) -> ExportError {
        ExportError {
            file: Some(self.name.to_string()),
            record: Some(record),
            message: message.into(),
        }
    }

    /// The object in `object[field]`, or an error at `at.field` saying what was expected.
    fn object_field<'v>(
        &self,
        at: &Location,
        object: &'v Map<String, Value>,
        field: &str,
        expected: &str,
    ) -> Result<&'v Map<String, Value>, ExportError> {
        match object.get(field) {
            Some(Value::Object(inner)) => Ok(inner),
            other => Err(self.error(
                format!("{at}.{field}"),
                format!(
                    "expected an object {expected}, found {}",
                    other.map_or("nothing".to_string(), kind)
                ),
            )),
        }
    }

    fn page(&mut self, page: usize, value: &Value) -> Result<(), ExportError> {
        let record = format!("page {page}");
        let Value::Object(object) = value else {
            return Err(self.error(
                record,
                format!(
                    "expected a page object {{\"data\": [...], \"has_more\": ..., \"next_page\": ...}}, found {}",
                    kind(value)
                ),
            ));
        };
        if let Some(error) = object.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(self.error(
                record,
                format!("this is an API error response, not an export: {message}"),
            ));
        }
        let Some(data) = object.get("data") else {
            return Err(self.error(
                record,
                format!(
                    "not a usage or cost export: expected a page with `data` (an array of time buckets), found {}",
                    keys(object)
                ),
            ));
        };
        let Value::Array(buckets) = data else {
            return Err(self.error(
                format!("{record}, data"),
                format!("expected an array of time buckets, found {}", kind(data)),
            ));
        };
        self.export.pages += 1;
        self.export.incomplete = object.get("has_more") == Some(&Value::Bool(true));
        for (index, bucket) in buckets.iter().enumerate() {
            self.bucket(
                Location {
                    page,
                    bucket: index,
                    result: None,
                },
                bucket,
            )?;
        }
        Ok(())
    }

    fn bucket(&mut self, at: Location, value: &Value) -> Result<(), ExportError> {
        let Value::Object(object) = value else {
            return Err(self.error(
                at.to_string(),
                format!("expected a time bucket object, found {}", kind(value)),
            ));
        };
        let (family, start_s, end_s) = if object.contains_key("starting_at") {
            let start = self.time(&at, object, "starting_at")?;
            let end = self.time(&at, object, "ending_at")?;
            (Family::Anthropic, start, end)
        } else if object.contains_key("start_time") {
            let start = self.unix_time(&at, object, "start_time")?;
            let end = self.unix_time(&at, object, "end_time")?;
            (Family::OpenAi, start, end)
        } else {
            return Err(self.error(
                at.to_string(),
                format!(
                    "expected a time bucket with starting_at and ending_at (Anthropic) or start_time and end_time (OpenAI), found {}",
                    keys(object)
                ),
            ));
        };
        if end_s <= start_s {
            return Err(self.error(
                at.to_string(),
                "the bucket ends before it starts: expected its end after its start",
            ));
        }
        match self.family {
            Some(earlier) if earlier != family => {
                return Err(self.error(
                    at.to_string(),
                    "an Anthropic bucket and an OpenAI bucket in one file: expected one export per file",
                ))
            }
            _ => self.family = Some(family),
        }
        let bucket = Bucket { start_s, end_s };
        self.export.buckets.push(bucket);
        let results = match object.get("results") {
            Some(Value::Array(results)) => results,
            other => {
                return Err(self.error(
                    format!("{at}.results"),
                    format!(
                        "expected an array of results, found {}",
                        other.map_or("nothing".to_string(), kind)
                    ),
                ))
            }
        };
        for (index, result) in results.iter().enumerate() {
            let at = Location {
                result: Some(index),
                ..at.clone()
            };
            self.result(family, bucket, at, result)?;
        }
        Ok(())
    }

    fn result(
        &mut self,
        family: Family,
        bucket: Bucket,
        at: Location,
        value: &Value,
    ) -> Result<(), ExportError> {
        let Value::Object(object) = value else {
            return Err(self.error(
                at.to_string(),
                format!("expected a result object, found {}", kind(value)),
            ));
        };
        let format = match family {
            Family::Anthropic if object.contains_key("uncached_input_tokens") => {
                ExportFormat::AnthropicUsage
            }
            Family::Anthropic if object.contains_key("amount") => ExportFormat::AnthropicCost,
            Family::OpenAi if object.contains_key("amount") => ExportFormat::OpenAiCosts,
            Family::OpenAi if object.contains_key("input_tokens") => ExportFormat::OpenAiUsage,
            Family::Anthropic => {
                return Err(self.error(
                    at.to_string(),
                    format!(
                        "expected a usage result (uncached_input_tokens, cache_read_input_tokens, cache_creation, output_tokens) or a cost result (amount, currency), found {}",
                        keys(object)
                    ),
                ))
            }
            Family::OpenAi => {
                return Err(self.error(
                    at.to_string(),
                    format!(
                        "expected a completions usage result (input_tokens, output_tokens, num_model_requests) or a costs result (amount), found {}",
                        keys(object)
                    ),
                ))
            }
        };
        match self.format {
            Some(earlier) if earlier != format => {
                return Err(self.error(
                    at.to_string(),
                    format!(
                        "a {} result in a file whose earlier results are from the {}: expected one export per file",
                        format.describe(),
                        earlier.describe()
                    ),
                ))
            }
            _ => self.format = Some(format),
        }
        match format {
            ExportFormat::AnthropicUsage => {
                let record = self.anthropic_usage(bucket, at, object)?;
                self.export.usage.push(record);
            }
            ExportFormat::OpenAiUsage => {
                let record = self.openai_usage(bucket, at, object)?;
                self.export.usage.push(record);
            }
            ExportFormat::AnthropicCost => {
                let record = self.anthropic_cost(bucket, at, object)?;
                self.export.costs.push(record);
            }
            ExportFormat::OpenAiCosts => {
                let record = self.openai_cost(bucket, at, object)?;
                self.export.costs.push(record);
            }
        }
        Ok(())
    }

    fn anthropic_usage(
        &self,
        bucket: Bucket,
        at: Location,
        object: &Map<String, Value>,
    ) -> Result<UsageRecord, ExportError> {
        let cache_creation = self.object_field(
            &at,
            object,
            "cache_creation",
            "{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}",
        )?;
        let tokens = TokenCounts {
            input: self.tokens(&at, "", object, "uncached_input_tokens")?,
            cache_read: self.tokens(&at, "", object, "cache_read_input_tokens")?,
            cache_write: self.tokens(
                &at,
                "cache_creation.",
                cache_creation,
                "ephemeral_5m_input_tokens",
            )?,
            cache_write_1h: self.tokens(
                &at,
                "cache_creation.",
                cache_creation,
                "ephemeral_1h_input_tokens",
            )?,
            output: self.tokens(&at, "", object, "output_tokens")?,
        };
        let tier = self.text(&at, object, "service_tier")?;
        let context_window = self.text(&at, object, "context_window")?;
        Ok(UsageRecord {
            bucket,
            tokens,
            requests: None,
            model: self.text(&at, object, "model")?,
            api_key: self.text(&at, object, "api_key_id")?,
            workspace: self.text(&at, object, "workspace_id")?,
            project: None,
            batch: tier.as_deref().map(|tier| tier == "batch"),
            other_tier: tier.filter(|tier| tier != "batch" && tier != "standard"),
            long_context: context_window.is_some_and(|window| window.starts_with("200k")),
            group: group_of(object),
            location: at,
        })
    }

    fn openai_usage(
        &self,
        bucket: Bucket,
        at: Location,
        object: &Map<String, Value>,
    ) -> Result<UsageRecord, ExportError> {
        if let Some(Value::String(kind)) = object.get("object") {
            if kind != "organization.usage.completions.result" {
                return Err(self.error(
                    format!("{at}.object"),
                    format!(
                        "\"{kind}\" is not allowed: expected \"organization.usage.completions.result\" (the completions usage export, /v1/organization/usage/completions)"
                    ),
                ));
            }
        }
        let input = self.tokens(&at, "", object, "input_tokens")?;
        let cached = match object.get("input_cached_tokens") {
            None | Some(Value::Null) => 0,
            Some(_) => self.tokens(&at, "", object, "input_cached_tokens")?,
        };
        if cached > input {
            return Err(self.error(
                format!("{at}.input_cached_tokens"),
                format!(
                    "{cached} is not allowed: expected at most input_tokens ({input}), which include the cached tokens"
                ),
            ));
        }
        let batch = match object.get("batch") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(batch)) => Some(*batch),
            Some(other) => {
                return Err(self.error(
                    format!("{at}.batch"),
                    format!(
                        "{} is not allowed: expected true, false or null",
                        show(other)
                    ),
                ))
            }
        };
        Ok(UsageRecord {
            bucket,
            tokens: TokenCounts {
                input: input - cached,
                cache_read: cached,
                cache_write: 0,
                cache_write_1h: 0,
                output: self.tokens(&at, "", object, "output_tokens")?,
            },
            requests: Some(self.tokens(&at, "", object, "num_model_requests")?),
            model: self.text(&at, object, "model")?,
            api_key: self.text(&at, object, "api_key_id")?,
            workspace: None,
            project: self.text(&at, object, "project_id")?,
            batch,
            other_tier: None,
            long_context: false,
            group: group_of(object),
            location: at,
        })
    }

    fn anthropic_cost(
        &self,
        bucket: Bucket,
        at: Location,
        object: &Map<String, Value>,
    ) -> Result<CostRecord, ExportError> {
        let currency = self.text(&at, object, "currency")?;
        if let Some(currency) = currency.filter(|c| !c.eq_ignore_ascii_case("USD")) {
            return Err(self.error(
                format!("{at}.currency"),
                format!("\"{currency}\" is not allowed: expected USD"),
            ));
        }
        // Cents: "123.45" is 123.45 cents, $1.2345; one cent is 10¹⁰ pico-USD.
        let amount = self.money(&at, "", object, "amount", 10_000_000_000, "cents")?;
        let cost_type = self.text(&at, object, "cost_type")?;
        Ok(CostRecord {
            bucket,
            amount,
            for_tokens: cost_type.as_deref().is_none_or(|t| t == "tokens"),
            ungrouped: cost_type.is_none(),
            location: at,
        })
    }

    fn openai_cost(
        &self,
        bucket: Bucket,
        at: Location,
        object: &Map<String, Value>,
    ) -> Result<CostRecord, ExportError> {
        let amount = self.object_field(&at, object, "amount", "{value, currency}")?;
        if let Some(currency) = self
            .text(&at, amount, "currency")?
            .filter(|c| !c.eq_ignore_ascii_case("usd"))
        {
            return Err(self.error(
                format!("{at}.amount.currency"),
                format!("\"{currency}\" is not allowed: expected usd"),
            ));
        }
        Ok(CostRecord {
            bucket,
            amount: self.money(&at, "amount.", amount, "value", 1_000_000_000_000, "USD")?,
            for_tokens: true,
            ungrouped: false,
            location: at,
        })
    }

    fn tokens(
        &self,
        at: &Location,
        prefix: &str,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<u64, ExportError> {
        let record = || format!("{at}.{prefix}{key}");
        match object.get(key) {
            Some(Value::Number(number)) => number.as_u64().ok_or_else(|| {
                self.error(
                    record(),
                    format!("{number} is not allowed: expected {TOKENS}"),
                )
            }),
            Some(other) => Err(self.error(
                record(),
                format!(
                    "{} ({}) is not allowed: expected {TOKENS}",
                    show(other),
                    kind(other)
                ),
            )),
            None => Err(self.error(record(), format!("missing: expected {TOKENS}"))),
        }
    }

    fn money(
        &self,
        at: &Location,
        prefix: &str,
        object: &Map<String, Value>,
        key: &str,
        pico_per_unit: i128,
        unit: &str,
    ) -> Result<Money, ExportError> {
        let record = || format!("{at}.{prefix}{key}");
        let text = match object.get(key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            Some(other) => {
                return Err(self.error(
                    record(),
                    format!(
                        "{} ({}) is not allowed: expected a decimal amount in {unit}",
                        show(other),
                        kind(other)
                    ),
                ))
            }
            None => {
                return Err(self.error(
                    record(),
                    format!("missing: expected a decimal amount in {unit}"),
                ))
            }
        };
        decimal_money(&text, pico_per_unit).ok_or_else(|| {
            self.error(
                record(),
                format!("\"{text}\" is not allowed: expected a decimal amount in {unit}, such as \"123.45\""),
            )
        })
    }

    fn text(
        &self,
        at: &Location,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<String>, ExportError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.error(
                format!("{at}.{key}"),
                format!("{} is not allowed: expected a string or null", show(other)),
            )),
        }
    }

    fn time(
        &self,
        at: &Location,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<i64, ExportError> {
        let value = object.get(key);
        value
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .ok_or_else(|| {
                self.error(
                    format!("{at}.{key}"),
                    format!(
                        "{} is not allowed: expected an RFC 3339 time such as \"2025-07-01T00:00:00Z\"",
                        value.map_or("nothing".to_string(), show)
                    ),
                )
            })
    }

    fn unix_time(
        &self,
        at: &Location,
        object: &Map<String, Value>,
        key: &str,
    ) -> Result<i64, ExportError> {
        let value = object.get(key);
        value
            .and_then(Value::as_i64)
            .filter(|seconds| *seconds >= 0)
            .ok_or_else(|| {
                self.error(
                    format!("{at}.{key}"),
                    format!(
                        "{} is not allowed: expected Unix seconds, such as 1730419200",
                        value.map_or("nothing".to_string(), show)
                    ),
                )
            })
    }
}

/// The grouping values of a result (its strings, booleans and nulls, not its amounts).
fn group_of(object: &Map<String, Value>) -> String {
    object
        .iter()
        .filter(|(key, value)| {
            key.as_str() != "amount"
                && matches!(value, Value::String(_) | Value::Bool(_) | Value::Null)
        })
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .to_string()
}

fn keys(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "an empty object".to_string();
    }
    let names: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    let more = if object.len() > 8 { ", …" } else { "" };
    format!("the keys {}{more}", names.join(", "))
}

fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// A decimal text ("123.45", "-0.5", "1e-06") times `pico_per_unit`, exactly; digits
/// beyond a pico-USD are rounded half away from zero.
pub fn decimal_money(text: &str, pico_per_unit: i128) -> Option<Money> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let value: i128 = if digits.is_empty() {
        0
    } else if digits.len() > 30 {
        return None;
    } else {
        digits.parse().ok()?
    };
    let scale = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let numerator = value.checked_mul(pico_per_unit)?;
    let pico = if scale >= 0 {
        numerator.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?
    } else if scale < -38 {
        0
    } else {
        let denominator = 10i128.pow(scale.unsigned_abs());
        (numerator + denominator / 2) / denominator
    };
    Some(Money::from_pico_usd(if negative { -pico } else { pico }))
}

/// An RFC 3339 time (`2025-07-01T00:00:00Z`, `…T00:00:00.000+02:00`) in Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s)
}

/// `2025-07-01 00:00` (UTC) for Unix seconds.
pub fn format_utc(unix_s: i64) -> String {
    let (year, month, day) = civil_from_days(unix_s.div_euclid(86_400));
    let seconds = unix_s.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60
    )
}

/// The catalog id a vendor model name most likely means: the name itself, else without
/// its date and with version digits joined (`claude-haiku-4-5-20251001` →
/// `claude-haiku-4.5`, `gpt-4.1-mini-2025-04-14` → `gpt-4.1-mini`).
pub fn catalog_id(vendor_model: &str) -> String {
    let is_number =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    let mut parts: Vec<&str> = vendor_model.split('-').collect();
    if parts.last() == Some(&"latest") {
        parts.pop();
    }
    let n = parts.len();
    if n >= 2 && is_number(parts[n - 1], 8) {
        parts.pop();
    } else if n >= 4
        && is_number(parts[n - 3], 4)
        && is_number(parts[n - 2], 2)
        && is_number(parts[n - 1], 2)
    {
        parts.truncate(n - 3);
    }
    let mut id = String::new();
    let mut after_version_digit = false;
    for part in parts {
        let version_digit =
            (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
        if !id.is_empty() {
            id.push(if version_digit && after_version_digit {
                '.'
            } else {
                '-'
            });
        }
        id.push_str(part);
        after_version_digit = version_digit;
    }
    id
}

/// The catalog's entry for a vendor model name, if any (see [`catalog_id`]).
pub fn catalog_model<'a>(catalog: &'a Catalog, vendor_model: &str) -> Option<&'a ApiModel> {
    catalog
        .api_models
        .get(vendor_model)
        .or_else(|| catalog.api_models.get(&catalog_id(vendor_model)))
}

/// The grouping field that becomes the task mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskBy {
    Model,
    ApiKey,
    Workspace,
    Project,
}

impl TaskBy {
    /// The field's name in the exports.
    pub fn field(self) -> &'static str {
        match self {
            TaskBy::Model => "model",
            TaskBy::ApiKey => "api_key_id",
            TaskBy::Workspace => "workspace_id",
            TaskBy::Project => "project_id",
        }
    }

    fn value(self, record: &UsageRecord) -> Option<&str> {
        match self {
            TaskBy::Model => record.model.as_deref(),
            TaskBy::ApiKey => record.api_key.as_deref(),
            TaskBy::Workspace => record.workspace.as_deref(),
            TaskBy::Project => record.project.as_deref(),
        }
    }

    fn supported_by(self, format: ExportFormat) -> bool {
        match self {
            TaskBy::Model | TaskBy::ApiKey => true,
            TaskBy::Workspace => format == ExportFormat::AnthropicUsage,
            TaskBy::Project => format == ExportFormat::OpenAiUsage,
        }
    }
}

/// Readable task names for group values: a TOML file of `"group value" = "task name"`
/// lines. Several groups may share a name; they become one task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskMap {
    pub names: BTreeMap<String, String>,
}

impl TaskMap {
    pub fn parse(name: &str, text: &str) -> Result<TaskMap, ExportError> {
        let names: BTreeMap<String, String> = toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            ExportError::file(
                &format!("{name}:{line}:{column}"),
                format!(
                    "{}; expected lines of `\"group value\" = \"task name\"`",
                    err.message()
                ),
            )
        })?;
        if let Some((group, _)) = names.iter().find(|(_, task)| task.trim().is_empty()) {
            return Err(ExportError::file(
                name,
                format!("\"{group}\" maps to an empty task name: expected a name"),
            ));
        }
        Ok(TaskMap { names })
    }
}

/// What the exports cannot say, given by the user.
#[derive(Clone, Debug, Default)]
pub struct DeriveOptions {
    /// The period the exports cover, when not the span of their buckets.
    pub period_days: Option<f64>,
    /// Calls per month, for exports without a request count.
    pub calls_per_month: Option<f64>,
    /// Mean input tokens per call (cached and uncached), for the same.
    pub mean_input_tokens: Option<f64>,
    pub task_by: Option<TaskBy>,
    pub task_map: Option<TaskMap>,
}

/// One input file, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSummary {
    pub name: String,
    pub format: ExportFormat,
    pub pages: usize,
    pub buckets: usize,
    pub results: usize,
    pub bucket_width_s: Option<i64>,
}

/// The period the usage covers and how it scales to a month.
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    pub start_s: i64,
    pub end_s: i64,
    /// Seconds inside at least one bucket (gaps between files do not count).
    pub covered_s: i64,
    /// The period used for scaling: `covered_s`, or `--period-days`.
    pub used_s: f64,
    /// The catalog's month (`hours_per_month`).
    pub month_s: f64,
}

impl Period {
    pub fn days(&self) -> f64 {
        self.used_s / 86_400.0
    }

    /// Months per period: totals × this = a month.
    pub fn to_month(&self) -> f64 {
        self.month_s / self.used_s
    }

    fn scale_money(&self, money: Money) -> Money {
        money.mul_ratio(self.month_s.round() as i128, self.used_s.round() as i128)
    }
}

/// Where calls per month came from.
#[derive(Clone, Debug, PartialEq)]
pub enum CallsSource {
    /// OpenAI's `num_model_requests`.
    Requests(u64),
    /// `--calls-per-month`.
    Given,
    /// `--mean-input-tokens`: calls = input tokens ÷ this.
    MeanInputTokens(f64),
}

/// The usage priced with the catalog's rate card.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogPrice {
    /// Over the period.
    pub cost: Money,
    pub monthly: Money,
    /// The catalog model with the most tokens.
    pub main_model: String,
    /// Vendor model names without a catalog entry, with their tokens.
    pub unpriced: Vec<(String, u64)>,
}

/// The cost exports against the catalog price of the usage.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossCheck {
    pub reported_tokens: Money,
    /// Web search, code execution and other costs that are not tokens.
    pub reported_other: Money,
    pub catalog: Money,
    /// Reported minus catalog.
    pub difference: Money,
}

/// A derived workload with what it rests on.
#[derive(Clone, Debug)]
pub struct Derivation {
    pub workload: WorkloadFile,
    pub inputs: Vec<InputSummary>,
    pub period: Period,
    pub tokens: TokenCounts,
    pub calls_source: CallsSource,
    /// Calls in the covered period.
    pub calls_in_period: f64,
    pub batch_tokens: u64,
    pub price: Option<CatalogPrice>,
    pub cross_check: Option<CrossCheck>,
    /// What was assumed, estimated or missing, in words.
    pub notes: Vec<String>,
}

fn positive_option(flag: &str, value: Option<f64>) -> Result<Option<f64>, ExportError> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(ExportError::options(format!(
            "{flag} = {v} is not allowed: expected a finite number > 0"
        ))),
        other => Ok(other),
    }
}

/// Merges the exports into one workload. `catalog` gives the month length, the assumed
/// daily peak and the prices of the cross-check.
pub fn derive(
    exports: &[Export],
    options: &DeriveOptions,
    catalog: &Catalog,
) -> Result<Derivation, ExportError> {
    let period_days = positive_option("--period-days", options.period_days)?;
    let calls_per_month_flag = positive_option("--calls-per-month", options.calls_per_month)?;
    let mean_input_flag = positive_option("--mean-input-tokens", options.mean_input_tokens)?;
    if calls_per_month_flag.is_some() && mean_input_flag.is_some() {
        return Err(ExportError::options(
            "--calls-per-month and --mean-input-tokens both set: expected one of them",
        ));
    }
    let usage: Vec<&Export> = exports.iter().filter(|e| e.format.is_usage()).collect();
    if usage.is_empty() {
        let names: Vec<&str> = exports.iter().map(|e| e.name.as_str()).collect();
        return Err(ExportError::options(format!(
            "no usage export among {}: a cost report has no token counts; add the usage export (Anthropic /v1/organizations/usage_report/messages or OpenAI /v1/organization/usage/completions)",
            names.join(", ")
        )));
    }
    check_duplicates(&usage)?;
    let mut notes = Vec::new();

    // The period: every second inside a usage bucket, then scaled to the catalog's month.
    let buckets: Vec<Bucket> = usage
        .iter()
        .flat_map(|e| e.buckets.iter().copied())
        .collect();
    let covered_s = covered_seconds(&buckets);
    let start_s = buckets.iter().map(|b| b.start_s).min().unwrap_or(0);
    let end_s = buckets.iter().map(|b| b.end_s).max().unwrap_or(0);
    if covered_s < end_s - start_s && period_days.is_none() {
        notes.push(format!(
            "The usage exports leave gaps between {} and {}: only the {:.2} days inside their buckets count as the period.",
            format_utc(start_s),
            format_utc(end_s),
            covered_s as f64 / 86_400.0
        ));
    }
    let period = Period {
        start_s,
        end_s,
        covered_s,
        used_s: period_days.map_or(covered_s as f64, |days| days * 86_400.0),
        month_s: catalog.assumptions.hours_per_month * 3600.0,
    };

    // Totals.
    let records: Vec<&UsageRecord> = usage.iter().flat_map(|e| e.usage.iter()).collect();
    let mut tokens = TokenCounts::default();
    let mut batch_tokens = 0u64;
    for record in &records {
        tokens = add_tokens(&tokens, &record.tokens).ok_or_else(|| {
            ExportError::options("the token totals overflow 64 bits: expected real usage")
        })?;
        if record.batch == Some(true) {
            batch_tokens += record.tokens.total_input() + record.tokens.output;
        }
    }
    let total_input = tokens.total_input();
    if total_input == 0 {
        let names: Vec<&str> = usage.iter().map(|e| e.name.as_str()).collect();
        return Err(ExportError::options(format!(
            "empty export: {} hold(s) no input tokens; export a period with usage",
            names.join(", ")
        )));
    }
    let requests: Option<u64> = records.iter().map(|r| r.requests).sum();

    // Calls: counted (OpenAI), or from what the user knows (Anthropic has no count).
    let (calls_in_period, calls_source) = if let Some(per_month) = calls_per_month_flag {
        if let Some(counted) = requests {
            notes.push(format!(
                "Calls per month are --calls-per-month; the exports count {} requests, {} a month.",
                group_thousands(&counted.to_string()),
                whole(counted as f64 * period.to_month())
            ));
        }
        (per_month / period.to_month(), CallsSource::Given)
    } else if let Some(mean) = mean_input_flag {
        (
            total_input as f64 / mean,
            CallsSource::MeanInputTokens(mean),
        )
    } else if let Some(counted) = requests.filter(|r| *r > 0) {
        (counted as f64, CallsSource::Requests(counted))
    } else {
        let without: Vec<&str> = usage
            .iter()
            .filter(|e| e.format == ExportFormat::AnthropicUsage)
            .map(|e| e.name.as_str())
            .collect();
        return Err(ExportError::options(if without.is_empty() {
            "the usage exports count 0 requests: calls per month cannot be derived; give --calls-per-month N (calls in a month) or --mean-input-tokens N (mean input tokens per call, cached and uncached)".to_string()
        } else {
            format!(
                "calls per month cannot be derived: {} is an Anthropic usage report, which counts tokens but not requests. Give --calls-per-month N (calls in a month) or --mean-input-tokens N (mean input tokens per call, cached and uncached)",
                without.join(", ")
            )
        }));
    };
    let calls_per_month = calls_per_month_flag.unwrap_or(calls_in_period * period.to_month());
    let input_tokens = total_input as f64 / calls_in_period;
    let output_tokens = tokens.output as f64 / calls_in_period;

    // Batch: only an export grouped by tier (Anthropic) or batch (OpenAI) can tell.
    for export in &usage {
        if export.usage.iter().all(|r| r.batch.is_none()) {
            let field = match export.format {
                ExportFormat::AnthropicUsage => "service_tier",
                _ => "batch",
            };
            notes.push(format!(
                "{} is not grouped by {field}: its batch share is unknown and counted as 0.",
                export.name
            ));
        }
    }
    let mut other_tiers: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &records {
        if let Some(tier) = &record.other_tier {
            *other_tiers.entry(tier).or_default() +=
                record.tokens.total_input() + record.tokens.output;
        }
    }
    for (tier, count) in other_tiers {
        notes.push(format!(
            "{} tokens in service tier \"{tier}\" are priced as standard.",
            group_thousands(&count.to_string())
        ));
    }
    let long_context: u64 = records
        .iter()
        .filter(|r| r.long_context)
        .map(|r| r.tokens.total_input())
        .sum();
    if long_context > 0 {
        notes.push(format!(
            "{:.1}% of input tokens were in requests over 200k tokens; the plan prices the whole volume at the tier of the mean prompt.",
            100.0 * long_context as f64 / total_input as f64
        ));
    }

    let (hourly_profile, peak_to_average) = load_shape(&usage, catalog, &mut notes);
    let task = match options.task_by {
        Some(task_by) => tasks(
            &usage,
            task_by,
            options.task_map.as_ref(),
            requests,
            calls_in_period,
            &mut notes,
        )?,
        None => Vec::new(),
    };
    if options.task_by.is_none() && options.task_map.is_some() {
        return Err(ExportError::options(
            "--task-map without --task-by: expected --task-by model, api_key, workspace or project",
        ));
    }

    let share = |count: u64| count as f64 / total_input as f64;
    let workload = WorkloadFile {
        calls_per_month: Some(calls_per_month),
        input_tokens: Some(input_tokens),
        output_tokens: Some(output_tokens),
        cached_input_share: Some(share(tokens.cache_read)),
        cache_write_share: Some(share(tokens.cache_write)),
        cache_write_1h_share: (tokens.cache_write_1h > 0).then(|| share(tokens.cache_write_1h)),
        batch_share: Some(batch_tokens as f64 / (total_input + tokens.output) as f64),
        peak_to_average,
        hourly_profile,
        p99_prompt_tokens: None,
        slo: None,
        task,
    };
    Workload::build(
        workload.clone(),
        &WorkloadFlags::default(),
        &catalog.assumptions,
    )
    .map_err(|err| ExportError::options(format!("the derived workload is not valid: {err}")))?;
    notes.push(
        "p99 prompt length is not in any usage export (they hold sums per bucket, not single requests): p99_prompt_tokens is left out, so the plan's context-fit check uses the mean prompt. Set it if you know it.".to_string(),
    );
    notes.push(
        "The latency SLO is not in the exports: the plan uses the catalog's defaults unless you add [slo].".to_string(),
    );
    for export in exports.iter().filter(|e| e.incomplete) {
        notes.push(format!(
            "{}: its last page says has_more = true, so pages are missing; the figures cover only the pages given.",
            export.name
        ));
    }

    let price = price_usage(&records, catalog, &period);
    let cross_check = cross_check(exports, &usage, price.as_ref(), &period, &mut notes);
    if let Some(price) = &price {
        if !price.unpriced.is_empty() {
            let list: Vec<String> = price
                .unpriced
                .iter()
                .map(|(model, count)| {
                    format!("{model} ({} tokens)", group_thousands(&count.to_string()))
                })
                .collect();
            notes.push(format!(
                "Not in the catalog, so not priced: {}.",
                list.join(", ")
            ));
        }
    }
    let inputs = exports
        .iter()
        .map(|e| InputSummary {
            name: e.name.clone(),
            format: e.format,
            pages: e.pages,
            buckets: e.buckets.len(),
            results: e.results(),
            bucket_width_s: e.bucket_width_s(),
        })
        .collect();
    Ok(Derivation {
        workload,
        inputs,
        period,
        tokens,
        calls_source,
        calls_in_period,
        batch_tokens,
        price,
        cross_check,
        notes,
    })
}

fn add_tokens(a: &TokenCounts, b: &TokenCounts) -> Option<TokenCounts> {
    Some(TokenCounts {
        input: a.input.checked_add(b.input)?,
        cache_read: a.cache_read.checked_add(b.cache_read)?,
        cache_write: a.cache_write.checked_add(b.cache_write)?,
        cache_write_1h: a.cache_write_1h.checked_add(b.cache_write_1h)?,
        output: a.output.checked_add(b.output)?,
    })
}

/// The same bucket and group in two places means a page given twice.
fn check_duplicates(usage: &[&Export]) -> Result<(), ExportError> {
    let mut seen: BTreeMap<(i64, i64, String), (&str, &Location)> = BTreeMap::new();
    for export in usage {
        for record in &export.usage {
            let key = (
                record.bucket.start_s,
                record.bucket.end_s,
                record.group.clone(),
            );
            if let Some((file, at)) = seen.get(&key) {
                return Err(ExportError {
                    file: Some(export.name.clone()),
                    record: Some(record.location.to_string()),
                    message: format!(
                        "the same bucket ({}) and group as {file}, {at}: expected each page once",
                        format_utc(record.bucket.start_s)
                    ),
                });
            }
            seen.insert(key, (&export.name, &record.location));
        }
    }
    Ok(())
}

fn covered_seconds(buckets: &[Bucket]) -> i64 {
    let mut sorted: Vec<Bucket> = buckets.to_vec();
    sorted.sort_by_key(|b| (b.start_s, b.end_s));
    let mut covered = 0;
    let mut reach = i64::MIN;
    for bucket in sorted {
        let start = bucket.start_s.max(reach);
        if bucket.end_s > start {
            covered += bucket.end_s - start;
        }
        reach = reach.max(bucket.end_s);
    }
    covered
}

/// The hourly profile from buckets of an hour or less, else the peak-to-average ratio
/// from daily totals times the catalog's assumed peak within a day.
fn load_shape(
    usage: &[&Export],
    catalog: &Catalog,
    notes: &mut Vec<String>,
) -> (Option<Vec<f64>>, Option<f64>) {
    let assumed_peak = catalog.assumptions.peak_to_average;
    let all_hourly = usage
        .iter()
        .flat_map(|e| e.buckets.iter())
        .all(|b| b.end_s - b.start_s <= 3600);
    let load = |record: &UsageRecord| record.tokens.total_input() + record.tokens.output;
    if all_hourly {
        let hours: BTreeSet<i64> = usage
            .iter()
            .flat_map(|e| e.buckets.iter())
            .map(|b| b.start_s.div_euclid(3600))
            .collect();
        let mut days_per_hour = [0u64; 24];
        for hour in &hours {
            days_per_hour[hour.rem_euclid(24) as usize] += 1;
        }
        if days_per_hour.iter().all(|days| *days > 0) {
            let mut tokens_per_hour = [0u64; 24];
            for record in usage.iter().flat_map(|e| e.usage.iter()) {
                let hour = record.bucket.start_s.div_euclid(3600).rem_euclid(24) as usize;
                tokens_per_hour[hour] += load(record);
            }
            let means: Vec<f64> = (0..24)
                .map(|h| tokens_per_hour[h] as f64 / days_per_hour[h] as f64)
                .collect();
            let mean = means.iter().sum::<f64>() / 24.0;
            let profile: Vec<f64> = means
                .iter()
                .map(|m| (m / mean * 1000.0).round() / 1000.0)
                .collect();
            let (peak_hour, peak) =
                profile
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, 0.0),
                        |best, (h, v)| if v > best.1 { (h, v) } else { best },
                    );
            notes.push(format!(
                "Load shape: the hourly profile of {} hours of buckets (UTC, tokens per hour); the busiest hour, {peak_hour:02}:00, carries {peak:.2}× the average.",
                hours.len()
            ));
            return (Some(profile), None);
        }
        notes.push(format!(
            "Load shape: the hourly buckets cover only {} of the 24 hours of the day, too few for a profile; the plan assumes the catalog's peak-to-average ratio ({assumed_peak}).",
            days_per_hour.iter().filter(|d| **d > 0).count()
        ));
        return (None, None);
    }
    let days: BTreeSet<i64> = usage
        .iter()
        .flat_map(|e| e.buckets.iter())
        .map(|b| b.start_s.div_euclid(86_400))
        .collect();
    let mut per_day: BTreeMap<i64, u64> = days.iter().map(|d| (*d, 0)).collect();
    for record in usage.iter().flat_map(|e| e.usage.iter()) {
        *per_day
            .entry(record.bucket.start_s.div_euclid(86_400))
            .or_default() += load(record);
    }
    let mean = per_day.values().sum::<u64>() as f64 / per_day.len().max(1) as f64;
    let busiest = per_day.values().copied().max().unwrap_or(0) as f64;
    let day_ratio = if mean > 0.0 { busiest / mean } else { 1.0 };
    notes.push(format!(
        "Load shape: a daily export cannot show the peak within a day. The busiest of its {} days carries {day_ratio:.2}× the average day; times the catalog's assumed daily peak of {assumed_peak}× that gives peak_to_average = {:.2}. Export 1-hour buckets (bucket_width=1h) to measure the daily profile.",
        per_day.len(),
        day_ratio * assumed_peak
    ));
    (None, Some(day_ratio * assumed_peak))
}

/// The task mix: one task per group value (or per task-map name), its share of calls
/// and its tokens per call. Without request counts, calls split like input tokens.
fn tasks(
    usage: &[&Export],
    task_by: TaskBy,
    task_map: Option<&TaskMap>,
    requests: Option<u64>,
    calls_in_period: f64,
    notes: &mut Vec<String>,
) -> Result<Vec<TaskFile>, ExportError> {
    let field = task_by.field();
    for export in usage {
        if !task_by.supported_by(export.format) {
            let instead = match export.format {
                ExportFormat::OpenAiUsage => "model, api_key or project",
                _ => "model, api_key or workspace",
            };
            return Err(ExportError::file(
                &export.name,
                format!(
                    "--task-by {} is not allowed for the {}, which has no {field}: expected --task-by {instead}",
                    task_by_flag(task_by),
                    export.format.describe()
                ),
            ));
        }
        if export.usage.iter().all(|r| task_by.value(r).is_none()) {
            return Err(ExportError::file(
                &export.name,
                format!(
                    "not grouped by {field}: every result has {field} = null; export it with group_by={field} for --task-by {}",
                    task_by_flag(task_by)
                ),
            ));
        }
    }
    struct Group {
        weight: u64,
        input: u64,
        output: u64,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut unmapped = BTreeSet::new();
    let mut used = BTreeSet::new();
    for record in usage.iter().flat_map(|e| e.usage.iter()) {
        let value = task_by.value(record);
        let name = match (value, task_map) {
            (Some(value), Some(map)) if map.names.contains_key(value) => {
                used.insert(value.to_string());
                map.names[value].clone()
            }
            (Some(value), _) => {
                unmapped.insert(value.to_string());
                value.to_string()
            }
            (None, _) => format!("(no {field})"),
        };
        let group = groups.entry(name).or_insert(Group {
            weight: 0,
            input: 0,
            output: 0,
        });
        let input = record.tokens.total_input();
        group.weight += match requests {
            Some(_) => record.requests.unwrap_or(0),
            None => input,
        };
        group.input += input;
        group.output += record.tokens.output;
    }
    if let Some(map) = task_map {
        if !unmapped.is_empty() {
            notes.push(format!(
                "Not in the task map, so named by their {field}: {}.",
                unmapped.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let unused: Vec<&str> = map
            .names
            .keys()
            .filter(|k| !used.contains(*k))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            notes.push(format!(
                "The task map names {} that no result has.",
                unused.join(", ")
            ));
        }
    }
    if requests.is_none() {
        notes.push(
            "Tasks: the exports count no requests, so calls are split in proportion to input tokens (every task gets the mean prompt); their output tokens per call follow from that.".to_string(),
        );
    }
    let total_weight: u64 = groups.values().map(|g| g.weight).sum();
    let mut tasks = Vec::new();
    for (name, group) in groups {
        if group.weight == 0 || group.input == 0 {
            notes.push(format!(
                "Task \"{name}\" has no calls or no input tokens and is left out of the mix."
            ));
            continue;
        }
        let share = group.weight as f64 / total_weight as f64;
        // The task's calls are its share of all calls; its tokens per call follow.
        let calls = share * calls_in_period;
        tasks.push(TaskFile {
            name,
            share,
            input_tokens: Some(group.input as f64 / calls),
            output_tokens: (group.output > 0).then(|| group.output as f64 / calls),
            self_host: Eligibility::Unknown,
        });
    }
    let total_share: f64 = tasks.iter().map(|t| t.share).sum();
    for task in &mut tasks {
        task.share /= total_share;
    }
    tasks.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(tasks)
}

fn task_by_flag(task_by: TaskBy) -> &'static str {
    match task_by {
        TaskBy::Model => "model",
        TaskBy::ApiKey => "api_key",
        TaskBy::Workspace => "workspace",
        TaskBy::Project => "project",
    }
}

/// Every usage record with a known model, at the catalog's rate card: its own tier
/// (long context when Anthropic says so) and the batch discount on batch records.
fn price_usage(
    records: &[&UsageRecord],
    catalog: &Catalog,
    period: &Period,
) -> Option<CatalogPrice> {
    let mut cost = Money::ZERO;
    let mut per_model: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unpriced: BTreeMap<String, u64> = BTreeMap::new();
    for record in records {
        let count = record.tokens.total_input() + record.tokens.output;
        let model = record
            .model
            .as_deref()
            .and_then(|name| catalog_model(catalog, name));
        let Some(model) = model else {
            let label = record
                .model
                .clone()
                .unwrap_or_else(|| "(not grouped by model)".to_string());
            *unpriced.entry(label).or_default() += count;
            continue;
        };
        let tier = if record.long_context {
            PriceTier::LongContext
        } else {
            PriceTier::Standard
        };
        let batch = if record.batch == Some(true) {
            BatchShare::ALL
        } else {
            BatchShare::NONE
        };
        cost += price_tokens(model, &record.tokens, tier, batch).total();
        *per_model.entry(&model.id).or_default() += count;
    }
    let main_model = per_model
        .iter()
        .max_by_key(|(id, count)| (**count, std::cmp::Reverse(**id)))
        .map(|(id, _)| id.to_string())?;
    Some(CatalogPrice {
        cost,
        monthly: period.scale_money(cost),
        main_model,
        unpriced: unpriced.into_iter().collect(),
    })
}

fn cross_check(
    exports: &[Export],
    usage: &[&Export],
    price: Option<&CatalogPrice>,
    period: &Period,
    notes: &mut Vec<String>,
) -> Option<CrossCheck> {
    let costs: Vec<&Export> = exports.iter().filter(|e| !e.format.is_usage()).collect();
    if costs.is_empty() {
        return None;
    }
    let Some(price) = price else {
        notes.push(
            "The cost report is not compared: no usage result names a model in the catalog (export usage grouped by model).".to_string(),
        );
        return None;
    };
    let records: Vec<&CostRecord> = costs.iter().flat_map(|e| e.costs.iter()).collect();
    let reported_tokens: Money = records
        .iter()
        .filter(|r| r.for_tokens)
        .map(|r| r.amount)
        .sum();
    let reported_other: Money = records
        .iter()
        .filter(|r| !r.for_tokens)
        .map(|r| r.amount)
        .sum();
    if records.iter().any(|r| r.ungrouped) {
        notes.push(
            "The Anthropic cost report is not grouped by description: its web search and code execution costs, if any, count as token costs (export it with group_by[]=description to separate them).".to_string(),
        );
    }
    let cost_buckets: Vec<Bucket> = records.iter().map(|r| r.bucket).collect();
    let usage_buckets: BTreeSet<(i64, i64)> = usage
        .iter()
        .flat_map(|e| e.buckets.iter())
        .map(|b| (b.start_s.div_euclid(86_400), b.end_s.div_euclid(86_400)))
        .collect();
    let usage_days: BTreeSet<i64> = usage_buckets
        .iter()
        .flat_map(|(from, to)| *from..(*to).max(*from + 1))
        .collect();
    let outside = cost_buckets
        .iter()
        .filter(|b| !usage_days.contains(&b.start_s.div_euclid(86_400)))
        .count();
    if outside > 0 {
        notes.push(format!(
            "{outside} cost result(s) fall on days the usage exports do not cover ({} to {}); the difference includes them.",
            format_utc(period.start_s),
            format_utc(period.end_s)
        ));
    }
    if costs.iter().any(|e| e.format == ExportFormat::OpenAiCosts) {
        notes.push(
            "OpenAI's costs export covers every line item of the organization (embeddings, images, …), not only completions.".to_string(),
        );
    }
    if !price.unpriced.is_empty() {
        notes.push(
            "The cross-check is partial: the cost report includes models the catalog cannot price."
                .to_string(),
        );
    }
    Some(CrossCheck {
        reported_tokens,
        reported_other,
        catalog: price.cost,
        difference: reported_tokens - price.cost,
    })
}

fn whole(value: f64) -> String {
    group_thousands(&format!("{:.0}", value.max(0.0)))
}

/// `3,333.3`: thousands separators and one decimal, `.0` dropped.
fn one_decimal(value: f64) -> String {
    let text = format!("{:.1}", value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, "0"));
    let sign = if value < 0.0 { "-" } else { "" };
    if fraction == "0" {
        format!("{sign}{}", group_thousands(whole))
    } else {
        format!("{sign}{}.{fraction}", group_thousands(whole))
    }
}

fn tokens_text(count: u64) -> String {
    group_thousands(&count.to_string())
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "0.0%".to_string();
    }
    format!("{:.1}%", 100.0 * part as f64 / total as f64)
}

/// `$0.0045`: four decimals for small differences (display only).
fn usd_precise(money: Money) -> String {
    let usd = money.usd_f64();
    if usd.abs() >= 100.0 {
        let sign = if money < Money::ZERO { "-" } else { "+" };
        let magnitude = if money < Money::ZERO {
            Money::ZERO - money
        } else {
            money
        };
        format!("{sign}{magnitude}")
    } else {
        format!("{usd:+.4}")
            .replacen('+', "+$", 1)
            .replacen('-', "-$", 1)
    }
}

impl Derivation {
    /// What was read and derived, one line each, for a person; what was assumed or
    /// missing is in `notes`.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|input| {
                let width = match input.bucket_width_s {
                    Some(86_400) => "daily ",
                    Some(3600) => "1-hour ",
                    Some(60) => "1-minute ",
                    _ => "",
                };
                format!(
                    "{} ({}, {} page(s), {} {width}bucket(s), {} result(s))",
                    input.name,
                    input.format.describe(),
                    input.pages,
                    input.buckets,
                    input.results
                )
            })
            .collect();
        lines.push(format!("Read: {}", inputs.join("; ")));
        let p = &self.period;
        lines.push(format!(
            "Period: {} to {} UTC, {:.2} days{}; a month is {} hours, so totals × {:.4}",
            format_utc(p.start_s),
            format_utc(p.end_s),
            p.days(),
            if (p.used_s - p.covered_s as f64).abs() > 0.5 {
                " (--period-days)"
            } else {
                ""
            },
            p.month_s / 3600.0,
            p.to_month()
        ));
        let t = &self.tokens;
        lines.push(format!(
            "Tokens: {} input ({} uncached, {} cache reads, {} 5-minute and {} 1-hour cache writes), {} output",
            tokens_text(t.total_input()),
            tokens_text(t.input),
            tokens_text(t.cache_read),
            tokens_text(t.cache_write),
            tokens_text(t.cache_write_1h),
            tokens_text(t.output)
        ));
        let w = &self.workload;
        let per_month = w.calls_per_month.unwrap_or(0.0);
        let source = match &self.calls_source {
            CallsSource::Requests(count) => format!("{} requests counted", tokens_text(*count)),
            CallsSource::Given => "from --calls-per-month".to_string(),
            CallsSource::MeanInputTokens(mean) => format!(
                "{} input tokens ÷ --mean-input-tokens {mean}",
                tokens_text(t.total_input())
            ),
        };
        lines.push(format!(
            "Calls: {} in the period ({source}), {} a month",
            whole(self.calls_in_period),
            whole(per_month)
        ));
        lines.push(format!(
            "Per call: {} input + {} output tokens",
            one_decimal(w.input_tokens.unwrap_or(0.0)),
            one_decimal(w.output_tokens.unwrap_or(0.0))
        ));
        lines.push(format!(
            "Shares of input: {} cache reads, {} 5-minute and {} 1-hour cache writes; batch: {} of tokens",
            percent(t.cache_read, t.total_input()),
            percent(t.cache_write, t.total_input()),
            percent(t.cache_write_1h, t.total_input()),
            percent(self.batch_tokens, t.total_input() + t.output)
        ));
        if !w.task.is_empty() {
            let tasks: Vec<String> = w
                .task
                .iter()
                .map(|task| {
                    format!(
                        "{} {:.1}% ({} in + {} out)",
                        task.name,
                        task.share * 100.0,
                        one_decimal(task.input_tokens.unwrap_or(0.0)),
                        one_decimal(task.output_tokens.unwrap_or(0.0))
                    )
                })
                .collect();
            lines.push(format!("Tasks: {}", tasks.join(", ")));
        }
        if let Some(price) = &self.price {
            lines.push(format!(
                "At catalog prices: {} over the period, {} a month (most tokens: {})",
                price.cost, price.monthly, price.main_model
            ));
        }
        if let Some(check) = &self.cross_check {
            let difference = if check.difference == Money::ZERO {
                "no difference".to_string()
            } else if check.catalog > Money::ZERO {
                format!(
                    "difference {} ({:+.4}%)",
                    usd_precise(check.difference),
                    100.0 * check.difference.usd_f64() / check.catalog.usd_f64()
                )
            } else {
                format!("difference {}", usd_precise(check.difference))
            };
            let other = if check.reported_other == Money::ZERO {
                String::new()
            } else {
                format!(
                    "; {} for other items (web search, code execution) not compared",
                    check.reported_other
                )
            };
            lines.push(format!(
                "Cost report: {} for tokens against {} at catalog prices: {difference}{other}",
                check.reported_tokens, check.catalog
            ));
        }
        lines
    }

    /// The workload file's text: the summary and notes as comments, then the TOML.
    pub fn to_toml(&self) -> Result<String, ExportError> {
        let body = toml::to_string(&self.workload).map_err(|err| {
            ExportError::options(format!("cannot write the workload as TOML: {err}"))
        })?;
        let mut text = String::from(
            "# A workload derived by `costfloor workload from-usage`, for `costfloor plan --workload`.\n",
        );
        for line in self.summary() {
            for (index, part) in wrap(&line, 86).iter().enumerate() {
                let indent = if index == 0 { "" } else { "  " };
                text.push_str(&format!("# {indent}{part}\n"));
            }
        }
        text.push_str("#\n# Notes:\n");
        for note in &self.notes {
            for (index, part) in wrap(note, 84).iter().enumerate() {
                let bullet = if index == 0 { "- " } else { "  " };
                text.push_str(&format!("# {bullet}{part}\n"));
            }
        }
        text.push('\n');
        text.push_str(&body);
        Ok(text)
    }
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word
/// stays whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::embedded().unwrap()
    }

    fn anthropic_page(results: &str) -> String {
        format!(
            r#"{{"data":[{{"starting_at":"2025-07-01T00:00:00Z","ending_at":"2025-07-02T00:00:00Z","results":[{results}]}}],"has_more":false,"next_page":null}}"#
        )
    }

    const ONE_RESULT: &str = r#"{"uncached_input_tokens":100,"cache_creation":{"ephemeral_1h_input_tokens":10,"ephemeral_5m_input_tokens":20},"cache_read_input_tokens":300,"output_tokens":50,"model":"claude-haiku-4-5-20251001","service_tier":"batch"}"#;

    #[test]
    fn cents_and_dollars_parse_exactly() {
        let cent = 10_000_000_000;
        // "123.45" cents = $1.2345 = 1,234,500,000,000 pico-USD.
        assert_eq!(
            decimal_money("123.45", cent),
            Some(Money::from_pico_usd(1_234_500_000_000))
        );
        assert_eq!(decimal_money("5000", cent), Some(Money::from_whole_usd(50)));
        // OpenAI's USD floats: 0.06 → 6 cents; "1e-06" → one micro-USD.
        let usd = 1_000_000_000_000;
        assert_eq!(
            decimal_money("0.06", usd),
            Some(Money::from_pico_usd(60_000_000_000))
        );
        assert_eq!(
            decimal_money("1e-06", usd),
            Some(Money::from_pico_usd(1_000_000))
        );
        assert_eq!(
            decimal_money("-0.5", usd),
            Some(Money::from_pico_usd(-500_000_000_000))
        );
        // A float's noise beyond a pico-USD rounds away: 0.30000000000000004 → $0.30.
        assert_eq!(
            decimal_money("0.30000000000000004", usd),
            Some(Money::from_pico_usd(300_000_000_000))
        );
        for bad in ["", "abc", "1.2.3", "12a", ".", "--1", "1e"] {
            assert_eq!(decimal_money(bad, usd), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_times_and_back() {
        // 2025-07-01 is day 20,270 since 1970-01-01: 20,270 × 86,400 = 1,751,328,000.
        assert_eq!(parse_rfc3339("2025-07-01T00:00:00Z"), Some(1_751_328_000));
        assert_eq!(
            parse_rfc3339("2025-07-01T02:00:00.000+02:00"),
            Some(1_751_328_000)
        );
        assert_eq!(format_utc(1_751_328_000), "2025-07-01 00:00");
        // OpenAI's documented bucket start, 1730419200, is 2024-11-01 00:00 UTC.
        assert_eq!(format_utc(1_730_419_200), "2024-11-01 00:00");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for bad in [
            "2025-02-29T00:00:00Z",
            "2025-07-01",
            "2025-07-01T00:00:00",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn vendor_model_names_map_to_catalog_ids() {
        assert_eq!(catalog_id("claude-haiku-4-5-20251001"), "claude-haiku-4.5");
        assert_eq!(catalog_id("claude-sonnet-4-6"), "claude-sonnet-4.6");
        assert_eq!(catalog_id("gpt-4.1-mini-2025-04-14"), "gpt-4.1-mini");
        assert_eq!(catalog_id("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(catalog_id("claude-3-5-haiku-latest"), "claude-3.5-haiku");
        let catalog = catalog();
        assert_eq!(
            catalog_model(&catalog, "claude-opus-4-7").map(|m| m.id.as_str()),
            Some("claude-opus-4.7")
        );
        assert!(catalog_model(&catalog, "claude-2.1").is_none());
    }

    #[test]
    fn an_anthropic_result_reads_into_token_classes() {
        let export = parse_export("a.json", &anthropic_page(ONE_RESULT)).unwrap();
        assert_eq!(export.format, ExportFormat::AnthropicUsage);
        let record = &export.usage[0];
        assert_eq!(
            record.tokens,
            TokenCounts {
                input: 100,
                cache_read: 300,
                cache_write: 20,
                cache_write_1h: 10,
                output: 50
            }
        );
        assert_eq!((record.batch, record.requests), (Some(true), None));
        assert_eq!(export.bucket_width_s(), Some(86_400));
    }

    #[test]
    fn openai_input_tokens_include_the_cached_ones() {
        let text = r#"{"object":"page","data":[{"object":"bucket","start_time":1730419200,"end_time":1730505600,"results":[{"object":"organization.usage.completions.result","input_tokens":1000,"output_tokens":500,"input_cached_tokens":800,"num_model_requests":5,"batch":null}]}],"has_more":false,"next_page":null}"#;
        let export = parse_export("o.json", text).unwrap();
        assert_eq!(export.format, ExportFormat::OpenAiUsage);
        // 1,000 input including 800 cached: 200 uncached.
        assert_eq!(export.usage[0].tokens.input, 200);
        assert_eq!(export.usage[0].tokens.cache_read, 800);
        assert_eq!(export.usage[0].requests, Some(5));
    }

    #[test]
    fn bad_records_name_the_page_path_and_expectation() {
        let negative =
            anthropic_page(&ONE_RESULT.replace("\"output_tokens\":50", "\"output_tokens\":-5"));
        let err = parse_export("a.json", &negative).unwrap_err().to_string();
        assert_eq!(
            err,
            "a.json: page 1, data[0].results[0].output_tokens: -5 is not allowed: expected a whole number of tokens >= 0"
        );
        let text = anthropic_page(&ONE_RESULT.replace(
            "\"uncached_input_tokens\":100",
            "\"uncached_input_tokens\":\"100\"",
        ));
        let err = parse_export("a.json", &text).unwrap_err().to_string();
        assert!(
            err.contains("results[0].uncached_input_tokens: \"100\" (a string)"),
            "{err}"
        );
        let err = parse_export("x.json", r#"{"foo": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.json: page 1: not a usage or cost export"),
            "{err}"
        );
        let err = parse_export("x.json", "{\"data\": [")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.json:1:"), "{err}");
        let err = parse_export("x.json", r#"{"data":[],"has_more":false}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty export"), "{err}");
    }

    #[test]
    fn anthropic_usage_alone_needs_calls_or_mean_prompt() {
        let export = parse_export("a.json", &anthropic_page(ONE_RESULT)).unwrap();
        let err = derive(
            std::slice::from_ref(&export),
            &DeriveOptions::default(),
            &catalog(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a.json is an Anthropic usage report"), "{err}");
        assert!(err.contains("--calls-per-month") && err.contains("--mean-input-tokens"));
        // 430 input tokens ÷ 43 per call = 10 calls in one day; × 730 h / 24 h = 304.17 a month.
        let derived = derive(
            &[export],
            &DeriveOptions {
                mean_input_tokens: Some(43.0),
                ..Default::default()
            },
            &catalog(),
        )
        .unwrap();
        assert!((derived.calls_in_period - 10.0).abs() < 1e-9);
        assert!((derived.workload.calls_per_month.unwrap() - 10.0 * 730.0 / 24.0).abs() < 1e-9);
        // All 480 tokens are batch: batch share 1.
        assert_eq!(derived.workload.batch_share, Some(1.0));
    }

    #[test]
    fn the_same_page_twice_is_refused() {
        let export = parse_export("a.json", &anthropic_page(ONE_RESULT)).unwrap();
        let again = Export {
            name: "b.json".to_string(),
            ..export.clone()
        };
        let err = derive(
            &[export, again],
            &DeriveOptions {
                mean_input_tokens: Some(43.0),
                ..Default::default()
            },
            &catalog(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("b.json: page 1, data[0].results[0]: the same bucket"),
            "{err}"
        );
    }

    #[test]
    fn pages_may_come_as_an_array_and_a_missing_page_is_said() {
        let first = anthropic_page(ONE_RESULT).replace("\"has_more\":false", "\"has_more\":true");
        let second = first.replace("2025-07-01T", "2025-07-02T").replace(
            "2025-07-02T00:00:00Z\",\"results",
            "2025-07-03T00:00:00Z\",\"results",
        );
        let export = parse_export("a.json", &format!("[{first}, {second}]")).unwrap();
        assert_eq!((export.pages, export.usage.len()), (2, 2));
        assert!(export.incomplete);
        let derived = derive(
            &[export],
            &DeriveOptions {
                mean_input_tokens: Some(43.0),
                ..Default::default()
            },
            &catalog(),
        )
        .unwrap();
        assert!(
            derived.notes.iter().any(|n| n.contains("has_more = true")),
            "{:?}",
            derived.notes
        );
        // Two equal days: the busiest is 1.0× the mean, × the catalog's 2.0.
        assert_eq!(derived.workload.peak_to_average, Some(2.0));
    }

    #[test]
    fn hourly_buckets_short_of_a_day_give_no_profile() {
        let text =
            anthropic_page(ONE_RESULT).replace("2025-07-02T00:00:00Z", "2025-07-01T01:00:00Z");
        let export = parse_export("a.json", &text).unwrap();
        let derived = derive(
            &[export],
            &DeriveOptions {
                mean_input_tokens: Some(43.0),
                ..Default::default()
            },
            &catalog(),
        )
        .unwrap();
        assert_eq!(derived.workload.hourly_profile, None);
        assert_eq!(derived.workload.peak_to_average, None);
        assert!(derived
            .notes
            .iter()
            .any(|n| n.contains("cover only 1 of the 24 hours")));
    }

    #[test]
    fn a_cost_report_is_compared_with_the_catalog_price() {
        let usage = parse_export("a.json", &anthropic_page(ONE_RESULT)).unwrap();
        // Ungrouped: no cost_type. "1.2345" cents = $0.012345.
        let report = anthropic_page(r#"{"amount":"1.2345","currency":"USD"}"#);
        let cost = parse_export("c.json", &report).unwrap();
        assert_eq!(cost.format, ExportFormat::AnthropicCost);
        let derived = derive(
            &[usage, cost],
            &DeriveOptions {
                mean_input_tokens: Some(43.0),
                ..Default::default()
            },
            &catalog(),
        )
        .unwrap();
        // Haiku 4.5 in the batch tier: 100 × $1 + 300 × $0.10 + 20 × $1.25 + 10 × $2 +
        // 50 × $5 = 100 + 30 + 25 + 20 + 250 = 425 micro-USD, half off: 212.5 micro-USD.
        let check = derived.cross_check.unwrap();
        assert_eq!(check.catalog, Money::from_pico_usd(212_500_000));
        assert_eq!(check.reported_tokens, Money::from_pico_usd(12_345_000_000));
        assert_eq!(
            check.difference,
            Money::from_pico_usd(12_345_000_000 - 212_500_000)
        );
        assert!(derived
            .notes
            .iter()
            .any(|n| n.contains("not grouped by description")));
    }

    #[test]
    fn task_maps_are_toml_and_say_where_they_are_wrong() {
        let map = TaskMap::parse("m.toml", "\"wrkspc_1\" = \"chat\"\n").unwrap();
        assert_eq!(map.names["wrkspc_1"], "chat");
        let err = TaskMap::parse("m.toml", "a = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("m.toml:1:"), "{err}");
    }
}
