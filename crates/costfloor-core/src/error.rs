//! Errors of the cost core. Each says what was wrong, the value, and what is allowed.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CatalogError {
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: `{entry}`: field `{field}` = {value} is not allowed: expected {allowed}")]
    Invalid {
        file: String,
        entry: String,
        field: String,
        value: String,
        allowed: String,
    },
    #[error(
        "{}unknown {kind} `{id}`{}",
        context_prefix(context),
        suggestions(close_matches)
    )]
    UnknownId {
        kind: &'static str,
        id: String,
        close_matches: Vec<String>,
        context: String,
    },
}

/// A deployment the catalog cannot price as asked.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CostError {
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error(
        "deployment `{deployment}` cannot be priced as owned: its GPU `{gpu}` has no \
         purchase_usd in the catalog. Add purchase_usd to the GPU entry, or keep the deployment rented"
    )]
    NoPurchasePrice { deployment: String, gpu: String },
}

/// Bad workload or sizing input: names the field, the value and what is allowed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    #[error("{field} = {value} is not allowed: expected {allowed}")]
    Invalid {
        field: String,
        value: String,
        allowed: String,
    },
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Cost(#[from] CostError),
    #[error(
        "{model} at {precision} does not fit on {gpus}x {gpu}: needs {needed_gib:.1} GiB \
         (weights {weights_gib:.1} GiB + KV cache {kv_gib:.1} GiB for one {context_tokens}-token sequence), \
         {usable_gib:.1} GiB usable; short by {shortfall_gib:.1} GiB. Use more GPUs, a larger GPU, or a lower precision"
    )]
    DoesNotFit {
        model: String,
        precision: String,
        gpu: String,
        gpus: u32,
        weights_gib: f64,
        kv_gib: f64,
        context_tokens: u64,
        usable_gib: f64,
        needed_gib: f64,
        shortfall_gib: f64,
    },
}

impl InputError {
    pub fn invalid(field: &str, value: impl ToString, allowed: &str) -> InputError {
        InputError::Invalid {
            field: field.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }
}

fn context_prefix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

fn suggestions(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Up to five known ids closest to `wanted`: prefix/substring matches first, then by
/// Jaro-Winkler similarity. Falls back to listing everything when nothing is close.
pub fn close_matches<'a>(wanted: &str, known: impl Iterator<Item = &'a String>) -> Vec<String> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let mut scored: Vec<(f64, &String)> = known
        .map(|id| {
            let lower = id.to_ascii_lowercase();
            let mut score = strsim::jaro_winkler(&wanted_lower, &lower);
            if !wanted_lower.is_empty()
                && (lower.contains(&wanted_lower) || wanted_lower.contains(&lower))
            {
                score += 1.0;
            }
            (score, id)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let close: Vec<String> = scored
        .iter()
        .filter(|(score, _)| *score >= 0.8)
        .take(5)
        .map(|(_, id)| (*id).clone())
        .collect();
    if close.is_empty() {
        scored.iter().map(|(_, id)| (*id).clone()).collect()
    } else {
        close
    }
}
