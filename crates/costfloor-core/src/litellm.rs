//! LiteLLM's price database (`model_prices_and_context_window.json`) turned into a
//! catalog overlay of `[[api_model]]` entries, and the difference from a catalog.
//!
//! Prices are read from their decimal text (`3.75e-06`), never through `f64`: USD per
//! token × 10¹² is the catalog's integer micro-USD per million tokens, computed from the
//! mantissa digits and the exponent. A price finer than that is reported, not rounded.
//! An entry that cannot be used is skipped with its reason; no entry aborts the import.
//! The caller reads the file and passes its text in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::catalog::{ApiModel, Catalog, LongContextPrice, Provider};
use crate::error::close_matches;
use crate::money::{group_thousands, UsdPerMtok};

/// LiteLLM keys of the models the embedded catalog already has, and their catalog ids.
/// Every other entry gets a derived id ([`catalog_id`]).
pub const CATALOG_IDS: [(&str, &str); 8] = [
    ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("claude-sonnet-4-6", "claude-sonnet-4.6"),
    ("claude-opus-4-7", "claude-opus-4.7"),
    ("gpt-4.1", "gpt-4.1"),
    ("gpt-4.1-mini", "gpt-4.1-mini"),
    ("gpt-4.1-nano", "gpt-4.1-nano"),
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-mini", "gpt-4o-mini"),
];

/// The `*_above_200k_tokens` prices apply to prompts of more than this many input tokens.
pub const LONG_CONTEXT_THRESHOLD_TOKENS: u64 = 200_000;

/// Micro-USD per MTok per USD per token: 1 USD/token = 10⁶ USD/MTok = 10¹² micro-USD/MTok.
const PER_TOKEN_TO_MICRO_PER_MTOK_EXPONENT: i64 = 12;

const PARTS_PER_MILLION: i128 = 1_000_000;

/// The catalog id of a LiteLLM key: the documented one for the models the embedded
/// catalog has ([`CATALOG_IDS`]), else the key in lower case with every character other
/// than `a-z 0-9 . _ -` (such as `/` and `:`) turned into `-`.
pub fn catalog_id(litellm_key: &str) -> String {
    if let Some((_, id)) = CATALOG_IDS.iter().find(|(key, _)| *key == litellm_key) {
        return (*id).to_string();
    }
    let mut id = String::with_capacity(litellm_key.len());
    for ch in litellm_key.chars().flat_map(char::to_lowercase) {
        let keep = ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_');
        if keep {
            id.push(ch);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_string()
}

/// Why decimal text is not an exact price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    NotANumber,
    Negative,
    /// More decimal places than the unit holds.
    TooPrecise,
    OutOfRange,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::NotANumber => "not a number",
            DecimalError::Negative => "negative",
            DecimalError::TooPrecise => "finer than 1 micro-USD per million tokens",
            DecimalError::OutOfRange => "out of range",
        })
    }
}

/// A JSON number's text in USD per token (`1e-06`, `3.75e-06`, `0.0`) as an exact
/// price in micro-USD per million tokens (`1e-06` → 1,000,000), by integer arithmetic
/// on its digits and exponent.
pub fn usd_per_mtok_from_usd_per_token(text: &str) -> Result<UsdPerMtok, DecimalError> {
    scaled_integer(text, PER_TOKEN_TO_MICRO_PER_MTOK_EXPONENT).map(UsdPerMtok::from_micro_usd)
}

/// `text × 10^shift` as an exact non-negative integer.
fn scaled_integer(text: &str, shift: i64) -> Result<i128, DecimalError> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let exponent_digits = exponent
        .strip_prefix('+')
        .or_else(|| exponent.strip_prefix('-'))
        .unwrap_or(exponent);
    if exponent_digits.is_empty() || !exponent_digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::NotANumber);
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (mantissa.contains('.') && fraction.is_empty())
    {
        return Err(DecimalError::NotANumber);
    }
    let digits = format!("{whole}{fraction}");
    let mut digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(DecimalError::Negative);
    }
    let exponent: i64 = exponent.parse().map_err(|_| DecimalError::OutOfRange)?;
    let mut scale = i64::try_from(fraction.len())
        .ok()
        .and_then(|places| exponent.checked_sub(places))
        .and_then(|scale| scale.checked_add(shift))
        .ok_or(DecimalError::OutOfRange)?;
    while scale < 0 && digits.ends_with('0') {
        digits = &digits[..digits.len() - 1];
        scale += 1;
    }
    if scale < 0 {
        return Err(DecimalError::TooPrecise);
    }
    let mut value: i128 = digits.parse().map_err(|_| DecimalError::OutOfRange)?;
    for _ in 0..scale {
        value = value.checked_mul(10).ok_or(DecimalError::OutOfRange)?;
    }
    Ok(value)
}

/// Why an entry was not imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `sample_spec`, LiteLLM's description of the fields.
    Documentation,
    /// A top-level value that is not an object.
    NotAnObject,
    /// No `litellm_provider` (e.g. `fallback_generalizations`).
    NotAModel,
    /// A `litellm_provider` but no `mode` (e.g. Fireworks' size-based price tiers).
    NoMode,
    /// Not one of the providers asked for with `--only`.
    ProviderNotSelected,
    /// No `input_cost_per_token` or no `output_cost_per_token`.
    MissingPrice,
    /// A field that is read has the wrong type, or a price is negative or out of range.
    BadValue,
    /// A price finer than 1 micro-USD per million tokens.
    InexactPrice,
    /// Neither `max_input_tokens` nor `max_tokens` (or zero).
    NoContextWindow,
    /// A 1-hour cache write cheaper than the 5-minute one.
    CacheWriteOrder,
    /// Its catalog id is already another entry's.
    IdTaken,
    /// An alias whose target is missing or was not imported.
    AliasTargetNotImported,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Documentation => "documentation entry (sample_spec)",
            SkipReason::NotAnObject => "not an object",
            SkipReason::NotAModel => "not a model (no litellm_provider)",
            SkipReason::NoMode => "no mode",
            SkipReason::ProviderNotSelected => "provider not selected (--only)",
            SkipReason::MissingPrice => "no input or output price",
            SkipReason::BadValue => "a field of the wrong type or a negative price",
            SkipReason::InexactPrice => "price finer than 1 micro-USD per million tokens",
            SkipReason::NoContextWindow => "no max_input_tokens or max_tokens",
            SkipReason::CacheWriteOrder => "1-hour cache write cheaper than the 5-minute one",
            SkipReason::IdTaken => "catalog id already taken",
            SkipReason::AliasTargetNotImported => "alias of an entry not imported",
        }
    }

    /// Reasons that point at a problem in the file, whose entries are listed by name.
    pub fn is_reported(self) -> bool {
        matches!(
            self,
            SkipReason::BadValue
                | SkipReason::InexactPrice
                | SkipReason::CacheWriteOrder
                | SkipReason::IdTaken
        )
    }
}

/// One skipped entry and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub litellm_key: String,
    pub reason: SkipReason,
    pub detail: String,
}

/// What an imported entry lacks compared with its LiteLLM entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Batch prices that no single discount off every class gives: no batch discount.
    BatchNotOneDiscount,
    /// A batch price for input or output only: no batch discount.
    BatchPriceForOneSide,
    /// Long-context prices above a threshold other than 200K tokens: not imported.
    OtherLongContextTier,
}

impl NoteKind {
    pub fn describe(self) -> &'static str {
        match self {
            NoteKind::BatchNotOneDiscount => {
                "with batch prices that are not one discount off input and output; no batch discount"
            }
            NoteKind::BatchPriceForOneSide => {
                "with a batch price for input or output only; no batch discount"
            }
            NoteKind::OtherLongContextTier => {
                "with long-context prices above a threshold other than 200K tokens, not imported"
            }
        }
    }
}

/// Something about an imported entry its user should know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryNote {
    pub litellm_key: String,
    pub id: String,
    pub kind: NoteKind,
    pub note: String,
}

/// What the import read, kept and skipped. `imported + aliases + other modes + skipped`
/// accounts for every top-level entry ([`Summary::accounted`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub file: String,
    /// The `--only` providers (empty: all).
    pub providers: Vec<String>,
    pub entries_read: usize,
    pub imported: usize,
    /// Alias entries mapped to an imported entry.
    pub aliases: usize,
    /// Entries of modes other than `chat`, by mode.
    pub other_modes: BTreeMap<String, usize>,
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Every skipped entry, except those of providers not selected.
    pub skipped_entries: Vec<Skipped>,
    pub notes: Vec<EntryNote>,
}

impl Summary {
    pub fn other_modes_total(&self) -> usize {
        self.other_modes.values().sum()
    }

    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// Entries the summary accounts for; equals `entries_read`.
    pub fn accounted(&self) -> usize {
        self.imported + self.aliases + self.other_modes_total() + self.skipped_total()
    }
}

/// One imported model.
#[derive(Clone, Debug, Serialize)]
pub struct ImportedEntry {
    pub litellm_key: String,
    pub litellm_provider: String,
    /// Alias entries (`{"alias_of": …}`) that resolve to this one.
    pub aliases: Vec<String>,
    pub model: ApiModel,
}

/// The result of an import: the entries, sorted by id, and the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Import {
    pub entries: Vec<ImportedEntry>,
    pub summary: Summary,
}

/// What to import and how to label it.
#[derive(Clone, Copy, Debug)]
pub struct ImportOptions<'a> {
    /// The file's name, for messages and each entry's `source`.
    pub file_name: &'a str,
    /// The import date, each entry's `as_of`.
    pub as_of: &'a str,
    /// Keep only these `litellm_provider` values; all when empty.
    pub only_providers: &'a [String],
}

/// The file cannot be read as LiteLLM's price database at all.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LitellmError {
    #[error(
        "{file}: not JSON ({message}): expected LiteLLM's model_prices_and_context_window.json, \
         a JSON object of model entries"
    )]
    NotJson { file: String, message: String },
    #[error(
        "{file}: the top level is {found}: expected a JSON object mapping model names to their \
         prices (LiteLLM's model_prices_and_context_window.json)"
    )]
    NotAnObject { file: String, found: &'static str },
    #[error(
        "--only {provider}: no entry of {file} has litellm_provider `{provider}`{}",
        suggest(close_matches)
    )]
    UnknownProvider {
        file: String,
        provider: String,
        close_matches: Vec<String>,
    },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
        format!("; did you mean {}?", names.join(", "))
    }
}

/// The top-level entries in file order, each value unparsed.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of model entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// What one entry turned out to be, before ids and aliases are resolved.
enum Read {
    Model(Box<Candidate>),
    Alias(String),
    OtherMode(String),
    Skipped(SkipReason, String),
}

/// A chat model whose fields all read.
struct Candidate {
    provider: String,
    input: UsdPerMtok,
    output: UsdPerMtok,
    cache_write: Option<UsdPerMtok>,
    cache_write_1h: Option<UsdPerMtok>,
    cache_read: Option<UsdPerMtok>,
    batch_discount: f64,
    long_context: Option<LongContextPrice>,
    context_window: u64,
    max_output_tokens: Option<u64>,
    notes: Vec<(NoteKind, String)>,
}

type Problem = (SkipReason, String);

/// One entry's fields, unparsed.
struct Fields<'a>(BTreeMap<String, &'a RawValue>);

impl<'a> Fields<'a> {
    fn raw(&self, name: &str) -> Option<&'a str> {
        let text = self.0.get(name)?.get().trim();
        (text != "null").then_some(text)
    }

    fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        serde_json::from_str::<String>(raw).map(Some).map_err(|_| {
            (
                SkipReason::BadValue,
                format!("`{name}` = {} is not text", shorten(raw)),
            )
        })
    }

    fn number(&self, name: &str, shift: i64, unit: &str) -> Result<Option<i128>, Problem> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        scaled_integer(raw, shift).map(Some).map_err(|err| {
            let reason = match err {
                DecimalError::TooPrecise => SkipReason::InexactPrice,
                _ => SkipReason::BadValue,
            };
            (
                reason,
                format!("`{name}` = {}: {err} ({unit})", shorten(raw)),
            )
        })
    }

    fn price(&self, name: &str) -> Result<Option<UsdPerMtok>, Problem> {
        let price = self.number(name, PER_TOKEN_TO_MICRO_PER_MTOK_EXPONENT, "USD per token")?;
        Ok(price.map(UsdPerMtok::from_micro_usd))
    }

    fn tokens(&self, name: &str) -> Result<Option<u64>, Problem> {
        match self.number(name, 0, "tokens")? {
            None => Ok(None),
            Some(tokens) => u64::try_from(tokens).map(Some).map_err(|_| {
                (
                    SkipReason::BadValue,
                    format!("`{name}` = {tokens}: out of range"),
                )
            }),
        }
    }
}

/// Long values (prose, nested objects) cut for messages.
fn shorten(raw: &str) -> String {
    const MAX: usize = 60;
    if raw.chars().count() <= MAX {
        raw.to_string()
    } else {
        let cut: String = raw.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn kind_of(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Imports LiteLLM's price file: every `chat` entry (of the `only_providers`, when given)
/// that can be priced exactly becomes an [`ApiModel`]; the rest is counted by reason.
pub fn import(text: &str, options: &ImportOptions<'_>) -> Result<Import, LitellmError> {
    let file = options.file_name.to_string();
    let top: &RawValue = serde_json::from_str(text).map_err(|err| LitellmError::NotJson {
        file: file.clone(),
        message: err.to_string(),
    })?;
    if !top.get().trim_start().starts_with('{') {
        return Err(LitellmError::NotAnObject {
            file,
            found: kind_of(top.get()),
        });
    }
    let Entries(entries) =
        serde_json::from_str(top.get()).map_err(|err| LitellmError::NotJson {
            file: file.clone(),
            message: err.to_string(),
        })?;

    let mut reads: Vec<(String, Read)> = Vec::with_capacity(entries.len());
    let mut providers_seen: BTreeSet<String> = BTreeSet::new();
    for (key, raw) in &entries {
        let read = read_entry(key, raw, options.only_providers, &mut providers_seen);
        reads.push((key.clone(), read));
    }
    for provider in options.only_providers {
        if !providers_seen.contains(provider) {
            return Err(LitellmError::UnknownProvider {
                file,
                provider: provider.clone(),
                close_matches: close_matches(provider, providers_seen.iter())
                    .into_iter()
                    .take(5)
                    .collect(),
            });
        }
    }

    let mut summary = Summary {
        file: file.clone(),
        providers: options.only_providers.to_vec(),
        entries_read: entries.len(),
        ..Summary::default()
    };

    // Ids in file order; the documented ids belong to their LiteLLM keys.
    let mut id_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut imported: BTreeMap<String, (String, Candidate)> = BTreeMap::new();
    let mut fates: Vec<(String, Fate)> = Vec::with_capacity(reads.len());
    for (key, read) in reads {
        let fate = match read {
            Read::Model(candidate) => assign_id(&key, &mut id_owner).map_or_else(
                |(reason, detail)| Fate::Skipped(reason, detail),
                |id| {
                    imported.insert(id.clone(), (key.clone(), *candidate));
                    Fate::Imported(id)
                },
            ),
            Read::Alias(target) => Fate::Alias(target),
            Read::OtherMode(mode) => Fate::OtherMode(mode),
            Read::Skipped(reason, detail) => Fate::Skipped(reason, detail),
        };
        fates.push((key, fate));
    }
    // An alias names the first entry of that key.
    let mut first_of_key: BTreeMap<&str, &Fate> = BTreeMap::new();
    for (key, fate) in &fates {
        first_of_key.entry(key.as_str()).or_insert(fate);
    }

    // Aliases take their target's fate.
    let mut aliases_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, fate) in &fates {
        let resolved = match fate {
            Fate::Alias(target) => resolve_alias(key, target, &first_of_key),
            other => other.clone(),
        };
        match resolved {
            Fate::Imported(id) => {
                if matches!(fate, Fate::Alias(_)) {
                    summary.aliases += 1;
                    aliases_of.entry(id).or_default().push(key.clone());
                } else {
                    summary.imported += 1;
                }
            }
            Fate::OtherMode(mode) => *summary.other_modes.entry(mode).or_default() += 1,
            Fate::Skipped(reason, detail) => {
                *summary.skipped.entry(reason).or_default() += 1;
                if reason == SkipReason::ProviderNotSelected {
                    continue;
                }
                summary.skipped_entries.push(Skipped {
                    litellm_key: key.clone(),
                    reason,
                    detail,
                });
            }
            // resolve_alias never returns an alias.
            Fate::Alias(_) => {}
        }
    }

    let mut imported_entries = Vec::with_capacity(imported.len());
    for (id, (key, candidate)) in imported {
        let aliases = aliases_of.remove(&id).unwrap_or_default();
        for (kind, note) in &candidate.notes {
            summary.notes.push(EntryNote {
                litellm_key: key.clone(),
                id: id.clone(),
                kind: *kind,
                note: note.clone(),
            });
        }
        let model = api_model(&id, &key, &candidate, &aliases, options);
        imported_entries.push(ImportedEntry {
            litellm_key: key,
            litellm_provider: candidate.provider,
            aliases,
            model,
        });
    }
    Ok(Import {
        entries: imported_entries,
        summary,
    })
}

/// The catalog id of a model entry, unless another entry has it already.
fn assign_id(key: &str, id_owner: &mut BTreeMap<String, String>) -> Result<String, Problem> {
    let id = catalog_id(key);
    if id.is_empty() {
        return Err((
            SkipReason::BadValue,
            "its name gives no catalog id (no letter or digit)".into(),
        ));
    }
    let reserved = CATALOG_IDS
        .iter()
        .find(|(mapped_key, mapped_id)| *mapped_id == id && *mapped_key != key);
    if let Some((mapped_key, _)) = reserved {
        return Err((
            SkipReason::IdTaken,
            format!("its id `{id}` is the catalog id of LiteLLM's `{mapped_key}`"),
        ));
    }
    if let Some(owner) = id_owner.get(&id) {
        return Err((
            SkipReason::IdTaken,
            format!("its id `{id}` is already the id of `{owner}`"),
        ));
    }
    id_owner.insert(id.clone(), key.to_string());
    Ok(id)
}

#[derive(Clone, Debug)]
enum Fate {
    Imported(String),
    Alias(String),
    OtherMode(String),
    Skipped(SkipReason, String),
}

/// Follows `alias_of` links to the entry they end at; aliases of entries that were not
/// imported count where their target counts (another mode, an unselected provider) or as
/// an alias of an entry not imported.
fn resolve_alias(key: &str, first_target: &str, fates: &BTreeMap<&str, &Fate>) -> Fate {
    let mut target = first_target.to_string();
    let mut seen = BTreeSet::from([key.to_string()]);
    loop {
        if !seen.insert(target.clone()) {
            return Fate::Skipped(
                SkipReason::AliasTargetNotImported,
                format!("`alias_of` links loop back at `{target}`"),
            );
        }
        match fates.get(target.as_str()).copied() {
            None => {
                return Fate::Skipped(
                    SkipReason::AliasTargetNotImported,
                    format!("alias of `{target}`, which the file does not have"),
                )
            }
            Some(Fate::Alias(next)) => target = next.clone(),
            Some(Fate::Imported(id)) => return Fate::Imported(id.clone()),
            Some(Fate::OtherMode(mode)) => return Fate::OtherMode(mode.clone()),
            Some(Fate::Skipped(SkipReason::ProviderNotSelected, detail)) => {
                return Fate::Skipped(SkipReason::ProviderNotSelected, detail.clone())
            }
            Some(Fate::Skipped(reason, _)) => {
                return Fate::Skipped(
                    SkipReason::AliasTargetNotImported,
                    format!(
                        "alias of `{target}`, which was skipped: {}",
                        reason.describe()
                    ),
                )
            }
        }
    }
}

/// Reads one top-level entry.
fn read_entry(
    key: &str,
    raw: &RawValue,
    only_providers: &[String],
    providers_seen: &mut BTreeSet<String>,
) -> Read {
    if key == "sample_spec" {
        return Read::Skipped(
            SkipReason::Documentation,
            "LiteLLM's description of the fields".into(),
        );
    }
    let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(raw.get()) {
        Ok(fields) => fields,
        Err(_) => {
            return Read::Skipped(
                SkipReason::NotAnObject,
                format!("the value is {}", kind_of(raw.get())),
            )
        }
    };
    let fields = Fields(fields);
    match read_model(&fields, only_providers, providers_seen) {
        Ok(read) => read,
        Err((reason, detail)) => Read::Skipped(reason, detail),
    }
}

fn read_model(
    fields: &Fields<'_>,
    only_providers: &[String],
    providers_seen: &mut BTreeSet<String>,
) -> Result<Read, Problem> {
    if fields.0.contains_key("alias_of") {
        let target = fields.text("alias_of")?.ok_or((
            SkipReason::BadValue,
            "`alias_of` is null: expected the name of another entry".to_string(),
        ))?;
        return Ok(Read::Alias(target));
    }
    let Some(provider) = fields.text("litellm_provider")? else {
        return Ok(Read::Skipped(
            SkipReason::NotAModel,
            "no `litellm_provider`".into(),
        ));
    };
    providers_seen.insert(provider.clone());
    if !only_providers.is_empty() && !only_providers.contains(&provider) {
        return Ok(Read::Skipped(
            SkipReason::ProviderNotSelected,
            format!("litellm_provider `{provider}`"),
        ));
    }
    let Some(mode) = fields.text("mode")? else {
        return Ok(Read::Skipped(SkipReason::NoMode, "no `mode`".into()));
    };
    if mode != "chat" {
        return Ok(Read::OtherMode(mode));
    }
    let required = |name: &str| -> Result<UsdPerMtok, Problem> {
        fields
            .price(name)?
            .ok_or_else(|| (SkipReason::MissingPrice, format!("no `{name}`")))
    };
    let input = required("input_cost_per_token")?;
    let output = required("output_cost_per_token")?;
    let cache_write = fields.price("cache_creation_input_token_cost")?;
    let cache_write_1h = fields.price("cache_creation_input_token_cost_above_1hr")?;
    let cache_read = fields.price("cache_read_input_token_cost")?;
    let batch_input = fields.price("input_cost_per_token_batches")?;
    let batch_output = fields.price("output_cost_per_token_batches")?;
    let long_input = fields.price("input_cost_per_token_above_200k_tokens")?;
    let long_output = fields.price("output_cost_per_token_above_200k_tokens")?;
    let context_window = match fields.tokens("max_input_tokens")? {
        Some(tokens) => Some(tokens),
        None => fields.tokens("max_tokens")?,
    };
    let max_output_tokens = fields.tokens("max_output_tokens")?;

    let context_window = match context_window {
        Some(tokens) if tokens > 0 => tokens,
        Some(_) => {
            return Err((
                SkipReason::NoContextWindow,
                "`max_input_tokens` is 0".into(),
            ))
        }
        None => {
            return Err((
                SkipReason::NoContextWindow,
                "no `max_input_tokens` or `max_tokens`".into(),
            ))
        }
    };
    if let (Some(one_hour), Some(five_minutes)) = (cache_write_1h, cache_write) {
        if one_hour < five_minutes {
            return Err((
                SkipReason::CacheWriteOrder,
                format!(
                    "1-hour write ${}/MTok < 5-minute write ${}/MTok",
                    one_hour.usd_f64(),
                    five_minutes.usd_f64()
                ),
            ));
        }
    }

    let mut notes = Vec::new();
    let (batch_discount, batch_note) = batch_discount(input, output, batch_input, batch_output);
    notes.extend(batch_note);
    let long_context = match (long_input, long_output) {
        (None, None) => None,
        (input_above, output_above) => Some(LongContextPrice {
            threshold_input_tokens: LONG_CONTEXT_THRESHOLD_TOKENS,
            input_usd_per_mtok: input_above.unwrap_or(input),
            output_usd_per_mtok: output_above.unwrap_or(output),
        }),
    };
    let other_tiers: Vec<String> = fields
        .0
        .keys()
        .filter_map(|name| {
            name.strip_prefix("input_cost_per_token_above_")?
                .strip_suffix("_tokens")
                .filter(|tier| *tier != "200k")
                .map(str::to_uppercase)
        })
        .collect();
    if !other_tiers.is_empty() {
        notes.push((
            NoteKind::OtherLongContextTier,
            format!(
                "its long-context prices above {} input tokens are not imported (the import \
                 reads the *_above_200k_tokens prices)",
                other_tiers.join(" and ")
            ),
        ));
    }
    Ok(Read::Model(Box::new(Candidate {
        provider,
        input,
        output,
        cache_write,
        cache_write_1h,
        cache_read,
        batch_discount,
        long_context,
        context_window,
        max_output_tokens,
        notes,
    })))
}

/// How a batch price relates to its standard price, in parts per million off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchRatio {
    /// Both prices are zero: any discount fits.
    Any,
    Exact(i128),
    /// No discount in [0, 1) of whole parts per million gives the batch price.
    Inexact,
}

fn batch_ratio(standard: UsdPerMtok, batch: UsdPerMtok) -> BatchRatio {
    let (standard, batch) = (standard.micro_usd(), batch.micro_usd());
    if standard == 0 {
        return if batch == 0 {
            BatchRatio::Any
        } else {
            BatchRatio::Inexact
        };
    }
    let off = (standard - batch) * PARTS_PER_MILLION;
    if batch > standard || batch == 0 || off % standard != 0 {
        return BatchRatio::Inexact;
    }
    BatchRatio::Exact(off / standard)
}

/// The catalog's one batch discount (a fraction off every class) from the batch input
/// and output prices, when one discount gives both exactly; else none, with a note.
fn batch_discount(
    input: UsdPerMtok,
    output: UsdPerMtok,
    batch_input: Option<UsdPerMtok>,
    batch_output: Option<UsdPerMtok>,
) -> (f64, Option<(NoteKind, String)>) {
    let (batch_input, batch_output) = match (batch_input, batch_output) {
        (None, None) => return (0.0, None),
        (Some(batch_input), Some(batch_output)) => (batch_input, batch_output),
        (Some(_), None) | (None, Some(_)) => {
            let has = if batch_input.is_some() {
                "input"
            } else {
                "output"
            };
            return (
                0.0,
                Some((
                    NoteKind::BatchPriceForOneSide,
                    format!("only its {has} has a batch price: imported without a batch discount"),
                )),
            );
        }
    };
    let ppm = match (
        batch_ratio(input, batch_input),
        batch_ratio(output, batch_output),
    ) {
        (BatchRatio::Any, BatchRatio::Any) => Some(0),
        (BatchRatio::Exact(ppm), BatchRatio::Any) | (BatchRatio::Any, BatchRatio::Exact(ppm)) => {
            Some(ppm)
        }
        (BatchRatio::Exact(a), BatchRatio::Exact(b)) if a == b => Some(a),
        _ => None,
    };
    match ppm {
        Some(ppm) => (ppm as f64 / PARTS_PER_MILLION as f64, None),
        None => {
            let off = |standard: UsdPerMtok, batch: UsdPerMtok| {
                let prices = format!("${} → ${}", standard.usd_f64(), batch.usd_f64());
                if standard.micro_usd() == 0 {
                    prices
                } else {
                    let fraction = 1.0 - batch.micro_usd() as f64 / standard.micro_usd() as f64;
                    format!("{prices}, {:.1}% off", fraction * 100.0)
                }
            };
            (
                0.0,
                Some((
                    NoteKind::BatchNotOneDiscount,
                    format!(
                        "its batch prices are not one discount off both (input {}; output {}): \
                         imported without a batch discount",
                        off(input, batch_input),
                        off(output, batch_output)
                    ),
                )),
            )
        }
    }
}

fn api_model(
    id: &str,
    key: &str,
    candidate: &Candidate,
    aliases: &[String],
    options: &ImportOptions<'_>,
) -> ApiModel {
    let provider = match candidate.provider.as_str() {
        "anthropic" => Provider::Anthropic,
        "openai" => Provider::Openai,
        _ => Provider::Other,
    };
    let mut note = Vec::new();
    if let Some(tokens) = candidate.max_output_tokens {
        note.push(format!(
            "max output {} tokens",
            group_thousands(&tokens.to_string())
        ));
    }
    if !aliases.is_empty() {
        note.push(format!("LiteLLM aliases: {}", aliases.join(", ")));
    }
    ApiModel {
        id: id.to_string(),
        provider,
        input_usd_per_mtok: candidate.input,
        output_usd_per_mtok: candidate.output,
        cache_write_usd_per_mtok: candidate.cache_write,
        cache_write_1h_usd_per_mtok: candidate.cache_write_1h,
        cache_read_usd_per_mtok: candidate.cache_read,
        batch_discount: candidate.batch_discount,
        context_window: candidate.context_window,
        long_context: candidate.long_context.clone(),
        note: (!note.is_empty()).then(|| note.join("; ")),
        as_of: options.as_of.to_string(),
        source: format!(
            "LiteLLM model_prices_and_context_window.json ({}), entry `{key}` (litellm_provider {})",
            options.file_name, candidate.provider
        ),
    }
}

impl Import {
    /// The entries as a catalog overlay, the TOML that `--catalog` accepts.
    pub fn overlay_toml(&self) -> Result<String, toml::ser::Error> {
        #[derive(Serialize)]
        struct OverlayFile<'a> {
            api_model: Vec<&'a ApiModel>,
        }
        let body = toml::to_string(&OverlayFile {
            api_model: self.entries.iter().map(|entry| &entry.model).collect(),
        })?;
        let as_of = self
            .entries
            .first()
            .map_or("", |entry| entry.model.as_of.as_str());
        Ok(format!(
            "# costfloor catalog overlay: {} API models imported from LiteLLM's price file {} on {as_of}.\n\
             # Load it with --catalog FILE; an entry replaces the catalog entry with the same id.\n\n{body}",
            self.entries.len(),
            self.summary.file,
        ))
    }
}

/// A price figure in a [`PriceChange`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    UsdPerMtok(UsdPerMtok),
    /// A fraction off (0.5 = 50% off).
    Discount(f64),
    Tokens(u64),
    Absent,
}

/// One price of one entry that differs between the catalog and the import.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceChange {
    pub id: String,
    pub price: &'static str,
    pub old: Figure,
    pub new: Figure,
}

impl PriceChange {
    /// `(new − old) ÷ old` in percent, for prices and token thresholds with an old value
    /// above zero; for a discount, the change in percentage points.
    pub fn percent_change(&self) -> Option<f64> {
        match (self.old, self.new) {
            (Figure::UsdPerMtok(old), Figure::UsdPerMtok(new)) if old.micro_usd() > 0 => {
                Some((new.micro_usd() - old.micro_usd()) as f64 / old.micro_usd() as f64 * 100.0)
            }
            (Figure::Tokens(old), Figure::Tokens(new)) if old > 0 => {
                Some((new as f64 - old as f64) / old as f64 * 100.0)
            }
            (Figure::Discount(old), Figure::Discount(new)) => Some((new - old) * 100.0),
            _ => None,
        }
    }
}

/// What an import changes in a catalog.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Diff {
    /// Every differing price of the entries both have, by id.
    pub changes: Vec<PriceChange>,
    /// Ids both have with the same prices.
    pub unchanged: Vec<String>,
    /// Imported ids the catalog does not have.
    pub new_ids: Vec<String>,
    /// The catalog's API models (of the selected providers) that the import lacks.
    pub missing: Vec<String>,
}

fn figures(model: &ApiModel) -> [(&'static str, Figure); 9] {
    let price = |p: Option<UsdPerMtok>| p.map_or(Figure::Absent, Figure::UsdPerMtok);
    let long = model.long_context.as_ref();
    [
        ("input", Figure::UsdPerMtok(model.input_usd_per_mtok)),
        ("output", Figure::UsdPerMtok(model.output_usd_per_mtok)),
        ("cache write 5m", price(model.cache_write_usd_per_mtok)),
        ("cache write 1h", price(model.cache_write_1h_usd_per_mtok)),
        ("cache read", price(model.cache_read_usd_per_mtok)),
        ("batch discount", Figure::Discount(model.batch_discount)),
        (
            "long-context threshold",
            long.map_or(Figure::Absent, |l| Figure::Tokens(l.threshold_input_tokens)),
        ),
        (
            "long-context input",
            price(long.map(|l| l.input_usd_per_mtok)),
        ),
        (
            "long-context output",
            price(long.map(|l| l.output_usd_per_mtok)),
        ),
    ]
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::Openai => "openai",
        Provider::Other => "other",
    }
}

/// Every price that differs between `catalog` and `import`, for the ids both have.
pub fn diff(catalog: &Catalog, import: &Import) -> Diff {
    let mut result = Diff::default();
    let imported: BTreeSet<&str> = import
        .entries
        .iter()
        .map(|entry| entry.model.id.as_str())
        .collect();
    for entry in &import.entries {
        let new = &entry.model;
        let Some(old) = catalog.api_models.get(&new.id) else {
            result.new_ids.push(new.id.clone());
            continue;
        };
        let before = result.changes.len();
        for ((price, old_figure), (_, new_figure)) in figures(old).into_iter().zip(figures(new)) {
            if old_figure != new_figure {
                result.changes.push(PriceChange {
                    id: new.id.clone(),
                    price,
                    old: old_figure,
                    new: new_figure,
                });
            }
        }
        if result.changes.len() == before {
            result.unchanged.push(new.id.clone());
        }
    }
    let selected = &import.summary.providers;
    for model in catalog.api_models.values() {
        let provider_selected =
            selected.is_empty() || selected.iter().any(|p| p == provider_name(model.provider));
        if provider_selected && !imported.contains(model.id.as_str()) {
            result.missing.push(model.id.clone());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXCERPT: &str = include_str!("../testdata/litellm/model_prices_excerpt.json");

    fn import_excerpt(only: &[String]) -> Import {
        import(
            EXCERPT,
            &ImportOptions {
                file_name: "model_prices_excerpt.json",
                as_of: "2026-11-29",
                only_providers: only,
            },
        )
        .unwrap()
    }

    fn entry<'a>(import: &'a Import, id: &str) -> &'a ImportedEntry {
        import
            .entries
            .iter()
            .find(|entry| entry.model.id == id)
            .unwrap_or_else(|| panic!("no entry `{id}`"))
    }

    fn micro(price: Option<UsdPerMtok>) -> Option<i128> {
        price.map(UsdPerMtok::micro_usd)
    }

    #[test]
    fn decimal_text_converts_exactly() {
        // 1 USD per token = 10^12 micro-USD per MTok, so each case is the text × 10^12.
        for (text, micro_usd) in [
            ("1e-06", 1_000_000),
            ("3.75e-06", 3_750_000),
            ("2e-06", 2_000_000),
            ("1.25e-06", 1_250_000),
            ("1e-07", 100_000),
            ("2.5e-08", 25_000),
            ("1.875e-06", 1_875_000),
            ("0.0", 0),
            ("0", 0),
            ("-0.0", 0),
            ("1E-6", 1_000_000),
            ("1e+0", 1_000_000_000_000),
            ("0.000015", 15_000_000),
            ("1.5e-05", 15_000_000),
            // 1e-12 USD per token is exactly 1 micro-USD per MTok, the finest price.
            ("1e-12", 1),
            ("10.0e-13", 1),
        ] {
            assert_eq!(
                usd_per_mtok_from_usd_per_token(text).map(UsdPerMtok::micro_usd),
                Ok(micro_usd),
                "{text}"
            );
        }
    }

    #[test]
    fn decimal_text_that_is_not_an_exact_price_is_an_error() {
        for (text, err) in [
            // $0.141953125/MTok: 0.125 micro-USD finer than the unit (morph-dsv4flash).
            ("1.41953125e-07", DecimalError::TooPrecise),
            // A float artefact: 2999990.0000000002 micro-USD.
            ("2.9999900000000002e-06", DecimalError::TooPrecise),
            ("1e-13", DecimalError::TooPrecise),
            ("-1e-06", DecimalError::Negative),
            ("\"1e-06\"", DecimalError::NotANumber),
            ("1.e-06", DecimalError::NotANumber),
            (".5", DecimalError::NotANumber),
            ("1e", DecimalError::NotANumber),
            ("1e999999999999999999999", DecimalError::OutOfRange),
            ("1e40", DecimalError::OutOfRange),
        ] {
            assert_eq!(usd_per_mtok_from_usd_per_token(text), Err(err), "{text}");
        }
        // A zero with any exponent is zero.
        assert_eq!(
            usd_per_mtok_from_usd_per_token("0e-99").map(UsdPerMtok::micro_usd),
            Ok(0)
        );
    }

    #[test]
    fn ids_keep_the_embedded_catalog_ids_and_derive_the_rest() {
        assert_eq!(catalog_id("claude-haiku-4-5"), "claude-haiku-4.5");
        assert_eq!(catalog_id("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(
            catalog_id("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "anthropic.claude-sonnet-4-5-20250929-v1-0"
        );
        assert_eq!(
            catalog_id("baseten/MiniMaxAI/MiniMax-M2.5"),
            "baseten-minimaxai-minimax-m2.5"
        );
        assert_eq!(
            catalog_id("vertex_ai/gemini-2.5-pro"),
            "vertex_ai-gemini-2.5-pro"
        );
    }

    #[test]
    fn every_embedded_api_model_has_a_documented_litellm_key() {
        let catalog = Catalog::embedded().unwrap();
        for id in catalog.api_models.keys() {
            assert!(
                CATALOG_IDS.iter().any(|(_, mapped)| mapped == id),
                "the embedded API model `{id}` has no LiteLLM key in CATALOG_IDS"
            );
        }
    }

    #[test]
    fn haiku_4_5_comes_out_to_the_micro_dollar() {
        let import = import_excerpt(&[]);
        let haiku = entry(&import, "claude-haiku-4.5");
        assert_eq!(haiku.litellm_key, "claude-haiku-4-5");
        let model = &haiku.model;
        assert_eq!(model.provider, Provider::Anthropic);
        // The excerpt's claude-haiku-4-5: input 1e-06, output 5e-06, 5-minute write
        // 1.25e-06, 1-hour write 2e-06, read 1e-07 USD per token, × 10^12.
        assert_eq!(model.input_usd_per_mtok.micro_usd(), 1_000_000);
        assert_eq!(model.output_usd_per_mtok.micro_usd(), 5_000_000);
        assert_eq!(micro(model.cache_write_usd_per_mtok), Some(1_250_000));
        assert_eq!(micro(model.cache_write_1h_usd_per_mtok), Some(2_000_000));
        assert_eq!(micro(model.cache_read_usd_per_mtok), Some(100_000));
        // Batch 5e-07 / 1e-06 and 2.5e-06 / 5e-06: both 50% off.
        assert_eq!(model.batch_discount, 0.5);
        // max_input_tokens 200000; max_output_tokens 64000.
        assert_eq!(model.context_window, 200_000);
        assert!(model.long_context.is_none());
        assert_eq!(model.note.as_deref(), Some("max output 64,000 tokens"));
        assert_eq!(model.as_of, "2026-11-29");
        assert!(
            model.source.contains("`claude-haiku-4-5`"),
            "{}",
            model.source
        );
        // Same prices as the embedded catalog's entry.
        let embedded = Catalog::embedded().unwrap();
        let old = embedded.api_model("claude-haiku-4.5").unwrap();
        assert_eq!(figures(old), figures(model));
    }

    #[test]
    fn an_alias_maps_to_its_targets_entry() {
        let import = import_excerpt(&[]);
        // "claude-sonnet-latest": {"alias_of": "claude-sonnet-5-5"}.
        assert!(import
            .entries
            .iter()
            .all(|entry| entry.litellm_key != "claude-sonnet-latest"));
        let target = entry(&import, "claude-sonnet-5-5");
        assert_eq!(target.aliases, ["claude-sonnet-latest"]);
        // claude-sonnet-5-5: input 2e-06, output 1e-05, writes 2.5e-06 and 4e-06, read
        // 1e-07, batch 1e-06 / 5e-06 (50% off), max_input_tokens 1000000.
        let model = &target.model;
        assert_eq!(model.input_usd_per_mtok.micro_usd(), 2_000_000);
        assert_eq!(model.output_usd_per_mtok.micro_usd(), 10_000_000);
        assert_eq!(micro(model.cache_write_usd_per_mtok), Some(2_500_000));
        assert_eq!(micro(model.cache_write_1h_usd_per_mtok), Some(4_000_000));
        assert_eq!(micro(model.cache_read_usd_per_mtok), Some(100_000));
        assert_eq!(model.batch_discount, 0.5);
        assert_eq!(model.context_window, 1_000_000);
        assert!(
            model
                .note
                .as_deref()
                .unwrap()
                .contains("LiteLLM aliases: claude-sonnet-latest"),
            "{:?}",
            model.note
        );
        // "bedrock/claude-opus-latest" names an entry the excerpt does not have.
        let skipped = import
            .summary
            .skipped_entries
            .iter()
            .find(|s| s.litellm_key == "bedrock/claude-opus-latest")
            .unwrap();
        assert_eq!(skipped.reason, SkipReason::AliasTargetNotImported);
        assert!(skipped.detail.contains("global.anthropic.claude-opus-5-5"));
    }

    #[test]
    fn above_200k_prices_become_the_long_context_price() {
        let import = import_excerpt(&[]);
        let model = &entry(&import, "anthropic.claude-sonnet-4-5-20250929-v1-0").model;
        // input_cost_per_token_above_200k_tokens 6e-06, output_…_above_200k_tokens 2.25e-05.
        let long = model.long_context.as_ref().unwrap();
        assert_eq!(long.threshold_input_tokens, 200_000);
        assert_eq!(long.input_usd_per_mtok.micro_usd(), 6_000_000);
        assert_eq!(long.output_usd_per_mtok.micro_usd(), 22_500_000);
        // Standard tier 3e-06 / 1.5e-05; batch 1.5e-06 / 7.5e-06: 50% off.
        assert_eq!(model.input_usd_per_mtok.micro_usd(), 3_000_000);
        assert_eq!(model.output_usd_per_mtok.micro_usd(), 15_000_000);
        assert_eq!(model.batch_discount, 0.5);
        assert_eq!(model.provider, Provider::Other);
    }

    #[test]
    fn batch_prices_that_are_not_one_discount_are_reported() {
        let import = import_excerpt(&[]);
        // google.gemma-3-12b-it: input 9e-08 → 5e-08 (44.4% off), output 2.9e-07 →
        // 1.5e-07 (48.3% off): the catalog's single discount cannot hold both.
        let model = &entry(&import, "google.gemma-3-12b-it").model;
        assert_eq!(model.batch_discount, 0.0);
        assert_eq!(model.input_usd_per_mtok.micro_usd(), 90_000);
        let note = import
            .summary
            .notes
            .iter()
            .find(|n| n.litellm_key == "google.gemma-3-12b-it")
            .unwrap();
        assert!(
            note.note.contains("44.4% off") && note.note.contains("48.3% off"),
            "{}",
            note.note
        );
        // gpt-5.5's tier above 272K tokens is reported, not read.
        let note = import
            .summary
            .notes
            .iter()
            .find(|n| n.litellm_key == "gpt-5.5")
            .unwrap();
        assert!(note.note.contains("272K"), "{}", note.note);
        assert!(entry(&import, "gpt-5.5").model.long_context.is_none());
    }

    #[test]
    fn the_excerpt_summary_accounts_for_every_entry() {
        let import = import_excerpt(&[]);
        let summary = &import.summary;
        // The excerpt has 18 top-level entries (testdata/litellm/SOURCES.md lists them).
        assert_eq!(summary.entries_read, 18);
        assert_eq!(summary.accounted(), summary.entries_read);
        // Imported: claude-haiku-4-5, -20251001, claude-sonnet-4-6, claude-opus-4-7,
        // claude-sonnet-5-5, the Bedrock Sonnet 4.5, gpt-4.1, gpt-4o-mini, gpt-5.5,
        // google.gemma-3-12b-it.
        assert_eq!(summary.imported, 10);
        assert_eq!(summary.aliases, 1);
        assert_eq!(
            summary.other_modes,
            BTreeMap::from([("embedding".to_string(), 1)])
        );
        assert_eq!(
            summary.skipped,
            BTreeMap::from([
                (SkipReason::Documentation, 1),
                (SkipReason::NotAModel, 1),
                (SkipReason::NoMode, 1),
                (SkipReason::InexactPrice, 1),
                (SkipReason::NoContextWindow, 1),
                (SkipReason::AliasTargetNotImported, 1),
            ])
        );
        let inexact = summary
            .skipped_entries
            .iter()
            .find(|s| s.reason == SkipReason::InexactPrice)
            .unwrap();
        assert_eq!(inexact.litellm_key, "morph/morph-dsv4flash");
        assert!(
            inexact.detail.contains("1.41953125e-07"),
            "{}",
            inexact.detail
        );
        // Sorted by id for stable files.
        let ids: Vec<&str> = import.entries.iter().map(|e| e.model.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn only_keeps_the_named_providers_and_rejects_unknown_ones() {
        let only = ["openai".to_string()];
        let import = import_excerpt(&only);
        let ids: Vec<&str> = import.entries.iter().map(|e| e.model.id.as_str()).collect();
        assert_eq!(ids, ["gpt-4.1", "gpt-4o-mini", "gpt-5.5"]);
        // Still all 18 entries of the excerpt, now mostly "provider not selected".
        assert_eq!(import.summary.accounted(), 18);
        // The alias of claude-sonnet-5-5 counts with its (unselected) target.
        assert_eq!(
            import.summary.skipped[&SkipReason::ProviderNotSelected],
            // 5 anthropic, 2 bedrock_converse, morph, fireworks_ai, azure, and the alias.
            11
        );
        let err = super::import(
            EXCERPT,
            &ImportOptions {
                file_name: "x.json",
                as_of: "2026-11-29",
                only_providers: &["anthropc".to_string()],
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("did you mean `anthropic`"), "{err}");
    }

    #[test]
    fn the_overlay_loads_through_the_catalog_and_keeps_every_price() {
        let import = import_excerpt(&[]);
        let toml = import.overlay_toml().unwrap();
        let mut catalog = Catalog::embedded().unwrap();
        catalog.overlay("imported.toml", &toml).unwrap();
        for entry in &import.entries {
            let loaded = catalog.api_model(&entry.model.id).unwrap();
            assert_eq!(figures(loaded), figures(&entry.model), "{}", entry.model.id);
            assert_eq!(loaded.context_window, entry.model.context_window);
        }
    }

    #[test]
    fn the_diff_lists_every_changed_price() {
        let import = import_excerpt(&[]);
        let catalog = Catalog::embedded().unwrap();
        let diff = diff(&catalog, &import);
        // The embedded claude-sonnet-4.6 has a long-context tier above 200K tokens
        // ($6/$22.50); the excerpt's claude-sonnet-4-6 has none: three figures change.
        let sonnet: Vec<&PriceChange> = diff
            .changes
            .iter()
            .filter(|c| c.id == "claude-sonnet-4.6")
            .collect();
        assert_eq!(sonnet.len(), 3, "{sonnet:?}");
        assert_eq!(sonnet[1].price, "long-context input");
        assert_eq!(
            sonnet[1].old,
            Figure::UsdPerMtok(UsdPerMtok::from_micro_usd(6_000_000))
        );
        assert_eq!(sonnet[1].new, Figure::Absent);
        assert!(diff.unchanged.contains(&"claude-haiku-4.5".to_string()));
        // The embedded gpt-4.1-mini, -nano and gpt-4o are not in the excerpt.
        assert_eq!(diff.missing, ["gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o"]);
        assert!(diff.new_ids.contains(&"claude-sonnet-5-5".to_string()));
        // A price change in percent: $1 → $1.25 is +25%.
        let change = PriceChange {
            id: "m".into(),
            price: "input",
            old: Figure::UsdPerMtok(UsdPerMtok::from_micro_usd(1_000_000)),
            new: Figure::UsdPerMtok(UsdPerMtok::from_micro_usd(1_250_000)),
        };
        assert_eq!(change.percent_change(), Some(25.0));
    }

    #[test]
    fn bad_top_levels_say_what_was_expected() {
        let options = ImportOptions {
            file_name: "prices.json",
            as_of: "2026-11-29",
            only_providers: &[],
        };
        let err = import("[1, 2]", &options).unwrap_err();
        assert_eq!(
            err,
            LitellmError::NotAnObject {
                file: "prices.json".into(),
                found: "an array"
            }
        );
        let err = import("{\"a\": ", &options).unwrap_err().to_string();
        assert!(
            err.starts_with("prices.json: not JSON") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn odd_entries_are_skipped_not_fatal() {
        let text = r#"{
            "n": 3,
            "text-price": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": "1e-06", "output_cost_per_token": 1e-06, "max_input_tokens": 10},
            "negative": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06, "max_input_tokens": 10},
            "old-style": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_tokens": 4096},
            "Old-Style": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_tokens": 4096},
            "a": {"alias_of": "b"},
            "b": {"alias_of": "a"},
            "gpt-4.1 ": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_tokens": 4096},
            "write-order": {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_tokens": 4096, "cache_creation_input_token_cost": 2e-06, "cache_creation_input_token_cost_above_1hr": 1e-06}
        }"#;
        let import = import(
            text,
            &ImportOptions {
                file_name: "odd.json",
                as_of: "x",
                only_providers: &[],
            },
        )
        .unwrap();
        let reason = |key: &str| {
            import
                .summary
                .skipped_entries
                .iter()
                .find(|s| s.litellm_key == key)
                .map(|s| s.reason)
        };
        assert_eq!(reason("n"), Some(SkipReason::NotAnObject));
        assert_eq!(reason("text-price"), Some(SkipReason::BadValue));
        assert_eq!(reason("negative"), Some(SkipReason::BadValue));
        assert_eq!(reason("Old-Style"), Some(SkipReason::IdTaken));
        assert_eq!(reason("a"), Some(SkipReason::AliasTargetNotImported));
        // "gpt-4.1 " derives to gpt-4.1, the id kept for LiteLLM's "gpt-4.1".
        assert_eq!(reason("gpt-4.1 "), Some(SkipReason::IdTaken));
        assert_eq!(reason("write-order"), Some(SkipReason::CacheWriteOrder));
        // max_tokens, the older field, gives the context window.
        assert_eq!(entry(&import, "old-style").model.context_window, 4096);
        assert_eq!(import.summary.accounted(), import.summary.entries_read);
    }
}
