//! Deterministic token counting, prompt hashing and output generation.
//!
//! The rules (also in the crate documentation):
//! - a token is a whitespace-separated word;
//! - the text of a message is its string content, or the `text` fields of its content
//!   parts/blocks (looking inside `content` of nested blocks such as `tool_result`);
//!   images, tool calls and tool definitions count nothing;
//! - every message costs 4 tokens plus its words; an Anthropic top-level `system`
//!   counts like a message, so a conversation costs the same in both formats;
//! - the output is a sequence of words from [`VOCAB`], chosen from the FNV-1a hash of
//!   the (role, text) pairs of the conversation: the same conversation gives the same
//!   output in both formats.

use serde_json::Value;

/// Tokens charged per message, on top of its words.
pub const MESSAGE_OVERHEAD: u64 = 4;

/// The words the output is made of (each is one token).
pub const VOCAB: [&str; 64] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cedar", "dune",
    "ember", "fjord", "granite", "harbor", "iris", "jade", "kelp", "lagoon", "meadow", "nectar",
    "orchid", "pebble", "quartz", "reef", "saffron", "tundra", "umber", "violet", "willow",
    "yarrow", "zephyr", "anchor", "beacon", "compass", "drift", "ferry", "gale", "haven", "island",
    "jetty", "keel", "lantern", "mast", "nautilus",
];

/// Number of tokens in `s`: its whitespace-separated words.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Appends the text of a content value (string, parts or blocks) to `out`.
pub fn content_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => push_text(out, s),
        Value::Array(items) => items.iter().for_each(|x| content_text(x, out)),
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("text") {
                push_text(out, t);
            }
            if let Some(c) = map.get("content") {
                content_text(c, out);
            }
        }
        _ => {}
    }
}

fn push_text(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(s);
}

/// Time-to-live of an Anthropic cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTtl {
    /// The default, `{"type": "ephemeral"}`.
    FiveMinutes,
    /// `{"type": "ephemeral", "ttl": "1h"}`.
    OneHour,
}

/// One unit of the prompt: a message, or the Anthropic `system` parameter.
#[derive(Debug, Clone)]
pub struct Segment {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// Its text, as [`content_text`] collects it.
    pub text: String,
    /// Whether a block of it holds an Anthropic `cache_control` marker, and its TTL.
    pub cache_marker: Option<CacheTtl>,
    /// Images and documents in it, each counted as `tools::MEDIA_TOKENS` tokens.
    pub media: u64,
}

impl Segment {
    /// Builds a segment from a role and a content value.
    pub fn new(role: &str, content: &Value) -> Segment {
        let mut text = String::new();
        content_text(content, &mut text);
        Segment {
            role: role.to_string(),
            text,
            cache_marker: find_cache_marker(content),
            media: crate::tools::media_count(content),
        }
    }

    /// Tokens of this segment: the overhead plus its words.
    pub fn tokens(&self) -> u64 {
        MESSAGE_OVERHEAD + words(&self.text) + self.media * crate::tools::MEDIA_TOKENS
    }
}

/// The last `cache_control` marker inside a content value, if any.
fn find_cache_marker(v: &Value) -> Option<CacheTtl> {
    match v {
        Value::Array(items) => items.iter().rev().find_map(find_cache_marker),
        Value::Object(map) => {
            let nested = map.get("content").and_then(find_cache_marker);
            nested.or_else(|| match map.get("cache_control") {
                Some(Value::Object(cc)) => Some(match cc.get("ttl").and_then(Value::as_str) {
                    Some("1h") => CacheTtl::OneHour,
                    _ => CacheTtl::FiveMinutes,
                }),
                _ => None,
            })
        }
        _ => None,
    }
}

/// Total input tokens of a prompt.
pub fn prompt_tokens(segments: &[Segment]) -> u64 {
    segments.iter().map(Segment::tokens).sum()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a, continuing from `state`.
pub fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// Folds one segment into a running FNV-1a hash.
fn fold_segment(state: u64, s: &Segment) -> u64 {
    let h = fnv1a(state, s.role.as_bytes());
    let h = fnv1a(h, &[0x1f]);
    let h = fnv1a(h, s.text.as_bytes());
    fnv1a(h, &[0x1e])
}

/// Hash of the whole conversation: the seed of the output.
pub fn prompt_hash(segments: &[Segment]) -> u64 {
    segments.iter().fold(FNV_OFFSET, fold_segment)
}

/// Hashes of every prefix of the conversation (`result[i]` covers `segments[..=i]`),
/// starting from a hash of `scope` (format and model), for the cache simulation.
pub fn prefix_hashes(scope: &str, segments: &[Segment]) -> Vec<u64> {
    let mut h = fnv1a(FNV_OFFSET, scope.as_bytes());
    segments
        .iter()
        .map(|s| {
            h = fold_segment(h, s);
            h
        })
        .collect()
}

/// SplitMix64: a small, good-enough mixer for deterministic choices.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why the output ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The natural end: `default_output_tokens` were produced (`end_turn` / `stop`).
    Natural,
    /// `max_tokens` was reached (`max_tokens` / `length`).
    Length,
    /// The next word matched this stop sequence (`stop_sequence` / `stop`).
    Stop(String),
}

/// A generated output: its words (one token each) and why it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The words, in order.
    pub words: Vec<std::borrow::Cow<'static, str>>,
    /// Why generation stopped.
    pub finish: Finish,
}

impl Output {
    /// A given answer (see [`crate::quality`]): its words, ended naturally.
    pub fn answer(text: &str) -> Output {
        Output {
            words: text
                .split_whitespace()
                .map(|w| std::borrow::Cow::Owned(w.to_string()))
                .collect(),
            finish: Finish::Natural,
        }
    }

    /// Number of output tokens.
    pub fn tokens(&self) -> u64 {
        self.words.len() as u64
    }

    /// The whole text: the words joined by single spaces.
    pub fn text(&self) -> String {
        self.words.join(" ")
    }

    /// The text of the `i`-th streamed delta: the word, preceded by a space except for
    /// the first, so that the deltas concatenate to [`Output::text`].
    pub fn delta(&self, i: usize) -> String {
        match (i, self.words.get(i)) {
            (_, None) => String::new(),
            (0, Some(w)) => w.to_string(),
            (_, Some(w)) => format!(" {w}"),
        }
    }
}

/// Generates the output for a prompt hash.
///
/// The length is `min(max_tokens, default_tokens)`; `Finish::Length` when `max_tokens`
/// is the smaller (or equal) one. A stop sequence matches a word equal to it (after
/// trimming whitespace); that word is not emitted.
pub fn generate(
    seed: u64,
    max_tokens: Option<u64>,
    default_tokens: u64,
    stops: &[String],
) -> Output {
    let (limit, by_length) = match max_tokens {
        Some(m) if m <= default_tokens => (m, true),
        _ => (default_tokens, false),
    };
    let mut words = Vec::with_capacity(usize::try_from(limit.min(4096)).unwrap_or(0));
    for i in 0..limit {
        let x = splitmix64(seed ^ splitmix64(i));
        let word = VOCAB[usize::try_from(x % VOCAB.len() as u64).unwrap_or(0)];
        if let Some(stop) = stops.iter().find(|s| s.trim() == word) {
            return Output {
                words,
                finish: Finish::Stop(stop.clone()),
            };
        }
        words.push(std::borrow::Cow::Borrowed(word));
    }
    Output {
        words,
        finish: if by_length {
            Finish::Length
        } else {
            Finish::Natural
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counting_rules() {
        let s = Segment::new("user", &json!("Hello there,  world"));
        assert_eq!(s.tokens(), 4 + 3);
        let s = Segment::new(
            "user",
            &json!([{"type": "text", "text": "one two"}, {"type": "image"},
                    {"type": "tool_result", "content": [{"type": "text", "text": "three"}]}]),
        );
        assert_eq!(s.text, "one two three");
        assert_eq!(s.cache_marker, None);
    }

    #[test]
    fn cache_markers() {
        let s = Segment::new(
            "system",
            &json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
        );
        assert_eq!(s.cache_marker, Some(CacheTtl::OneHour));
        let s = Segment::new(
            "user",
            &json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]),
        );
        assert_eq!(s.cache_marker, Some(CacheTtl::FiveMinutes));
    }

    #[test]
    fn generation_is_deterministic_and_bounded() {
        let a = generate(42, None, 10, &[]);
        let b = generate(42, Some(100), 10, &[]);
        assert_eq!(a.words, b.words);
        assert_eq!(a.tokens(), 10);
        assert_eq!(a.finish, Finish::Natural);
        let c = generate(42, Some(3), 10, &[]);
        assert_eq!(c.words, a.words[..3]);
        assert_eq!(c.finish, Finish::Length);
        let stop = a.words[4].to_string();
        let first = a.words.iter().position(|w| *w == stop).unwrap();
        let d = generate(42, None, 10, &[format!(" {stop} ")]);
        assert_eq!(d.words, a.words[..first]);
        assert_eq!(d.finish, Finish::Stop(format!(" {stop} ")));
        let joined: String = (0..a.words.len()).map(|i| a.delta(i)).collect();
        assert_eq!(joined, a.text());
        assert_eq!(words(&a.text()), a.tokens());
    }
}
