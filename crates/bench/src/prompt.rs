//! Synthetic prompts of a calibrated token length.
//!
//! A prompt is a tag of 8 digits, different for every request, then a body of common
//! English words drawn once per run from the seed. The tag comes first so that no two
//! requests share a prefix a server could serve from its prompt cache (vLLM's prefix
//! cache hashes blocks from the start; the llama.cpp server reuses a slot's common
//! prefix), and has a fixed width so that every prompt has the same token count.
//!
//! The body's length in words is fitted to the target in tokens, by asking the server:
//! its `/tokenize` (vLLM counts the chat with its template, the llama.cpp server the
//! text alone, the template's tokens then taken from one request's usage), else the
//! prompt tokens its usage reports for whole requests of one output token. The count
//! is close to linear in the words, so a line through two counts and a few corrections
//! find the length.

use std::fmt::Write;

use wire::bench::{generation_body, Forcing, Generation};

use crate::error::BenchError;
use crate::rng::{mix, SplitMix64};
use crate::target::Target;

/// Words that are one token each in the common tokenizers' vocabularies.
const VOCABULARY: [&str; 64] = [
    "the",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
];

/// Digits in a request's tag.
const TAG_DIGITS: usize = 8;
const TAG_MODULUS: u64 = 100_000_000;

/// Makes the prompt of request `i`: the tag, then the body.
#[derive(Debug, Clone)]
pub struct PromptMaker {
    body: String,
    salt: u64,
}

impl PromptMaker {
    /// A body of `words` words drawn from `seed`; tags mixed with `salt` (the run's,
    /// so that two runs against one server share no prompt).
    pub fn new(words: usize, seed: u64, salt: u64) -> PromptMaker {
        let mut rng = SplitMix64::new(seed ^ 0x7072_6f6d_7074);
        let mut body = String::with_capacity(words * 8);
        for i in 0..words {
            if i > 0 {
                body.push(' ');
            }
            let at = usize::try_from(rng.next_u64() % VOCABULARY.len() as u64).unwrap_or(0);
            body.push_str(VOCABULARY[at]);
        }
        PromptMaker { body, salt }
    }

    /// The prompt of request `index`.
    pub fn prompt(&self, index: u64) -> String {
        let mut text = String::with_capacity(TAG_DIGITS + 1 + self.body.len());
        let tag = mix(self.salt ^ index) % TAG_MODULUS;
        let _ = write!(text, "{tag:0width$}", width = TAG_DIGITS);
        if !self.body.is_empty() {
            text.push(' ');
            text.push_str(&self.body);
        }
        text
    }

    /// Words in the body.
    pub fn words(&self) -> usize {
        if self.body.is_empty() {
            0
        } else {
            self.body.split(' ').count()
        }
    }
}

/// How the prompt length was fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// The server's `/tokenize`.
    Tokenize,
    /// The usage of whole requests.
    Usage,
    /// Neither answered: one token per 0.75 words, a common English average.
    Estimate,
}

impl Calibration {
    /// The label the measurement records (`input_calibration`).
    pub fn as_str(self) -> &'static str {
        match self {
            Calibration::Tokenize => "tokenize",
            Calibration::Usage => "usage",
            Calibration::Estimate => "estimate",
        }
    }
}

/// A fitted prompt.
#[derive(Debug, Clone)]
pub struct Calibrated {
    pub maker: PromptMaker,
    pub method: Calibration,
    /// The prompt tokens of a request, as the last count saw them.
    pub input_tokens: u64,
}

/// Counts a prompt of a given body length.
struct Counter<'a> {
    target: &'a Target,
    seed: u64,
    salt: u64,
    method: Calibration,
    forcing: Forcing,
    /// Tokens the chat template adds to a text-only `/tokenize` count.
    template_tokens: i64,
}

impl Counter<'_> {
    async fn count(&self, words: usize) -> Result<Option<u64>, BenchError> {
        let maker = PromptMaker::new(words, self.seed, self.salt);
        let prompt = maker.prompt(0);
        match self.method {
            Calibration::Tokenize => Ok(self.target.tokenize(&prompt).await.map(|count| {
                let tokens = i64::try_from(count.tokens).unwrap_or(i64::MAX);
                let template = if count.chat { 0 } else { self.template_tokens };
                u64::try_from(tokens + template).unwrap_or(0)
            })),
            Calibration::Usage => usage_input_tokens(self.target, &prompt, self.forcing).await,
            Calibration::Estimate => Ok(None),
        }
    }
}

/// The prompt tokens a whole request of `prompt` and one output token reports.
pub(crate) async fn usage_input_tokens(
    target: &Target,
    prompt: &str,
    forcing: Forcing,
) -> Result<Option<u64>, BenchError> {
    let body = generation_body(
        target.format,
        &Generation {
            model: &target.model,
            prompt,
            max_tokens: 1,
            forcing,
            stream: false,
        },
    );
    let (status, body) = target.whole(body).await?;
    if !status.is_success() {
        return Ok(None);
    }
    Ok(wire::bench::read_whole_usage(target.format, &body).map(|(input, _)| input))
}

/// Fits the body length so that a prompt has `tokens` tokens.
pub async fn calibrate(
    target: &Target,
    tokens: u64,
    forcing: Forcing,
    seed: u64,
    salt: u64,
) -> Result<Calibrated, BenchError> {
    let first_words = usize::try_from((tokens * 3 / 4).max(16)).unwrap_or(16);
    let probe = PromptMaker::new(first_words, seed, salt).prompt(0);
    let mut counter = Counter {
        target,
        seed,
        salt,
        method: Calibration::Estimate,
        forcing,
        template_tokens: 0,
    };
    if let Some(count) = target.tokenize(&probe).await {
        counter.method = Calibration::Tokenize;
        if !count.chat {
            // The llama.cpp server counts the text: the template's tokens are the
            // difference from what a request of the same text reports.
            if let Some(reported) = usage_input_tokens(target, &probe, forcing).await? {
                counter.template_tokens =
                    i64::try_from(reported).unwrap_or(0) - i64::try_from(count.tokens).unwrap_or(0);
            }
        }
    } else if usage_input_tokens(target, &probe, forcing).await?.is_some() {
        counter.method = Calibration::Usage;
    }
    if counter.method == Calibration::Estimate {
        let words = usize::try_from(tokens * 3 / 4).unwrap_or(0);
        return Ok(Calibrated {
            maker: PromptMaker::new(words, seed, salt),
            method: Calibration::Estimate,
            input_tokens: tokens,
        });
    }
    let words = fit(tokens, first_words, |words| counter.count(words)).await?;
    let maker = PromptMaker::new(words.words, seed, salt);
    Ok(Calibrated {
        maker,
        method: counter.method,
        input_tokens: words.tokens,
    })
}

/// A body length and the tokens it gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fit {
    pub words: usize,
    pub tokens: u64,
}

/// Most counts a fit asks for.
const MAX_COUNTS: usize = 8;

/// Finds the body length whose count is closest to `tokens`: two counts give a line,
/// then steps of (tokens − count) / slope words until the count is exact, the step
/// rounds to a length already tried, or [`MAX_COUNTS`] counts were made.
pub(crate) async fn fit<F, Fut>(
    tokens: u64,
    first_words: usize,
    count: F,
) -> Result<Fit, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Option<u64>, BenchError>>,
{
    let wanted = tokens as f64;
    let mut tried: Vec<Fit> = Vec::new();
    let Some(a) = count(first_words).await? else {
        return Err(BenchError::Input(
            "the server stopped answering token counts during calibration".to_owned(),
        ));
    };
    tried.push(Fit {
        words: first_words,
        tokens: a,
    });
    let second_words = first_words * 2;
    let Some(b) = count(second_words).await? else {
        return Err(BenchError::Input(
            "the server stopped answering token counts during calibration".to_owned(),
        ));
    };
    tried.push(Fit {
        words: second_words,
        tokens: b,
    });
    let slope = ((b as f64 - a as f64) / first_words as f64).max(0.05);
    let intercept = a as f64 - slope * first_words as f64;
    let mut words = ((wanted - intercept) / slope).round().max(0.0) as usize;
    while tried.len() < MAX_COUNTS {
        if let Some(done) = tried.iter().find(|fit| fit.words == words) {
            if done.tokens == tokens {
                break;
            }
        } else {
            let Some(got) = count(words).await? else {
                break;
            };
            tried.push(Fit { words, tokens: got });
            if got == tokens {
                break;
            }
        }
        let last = tried
            .iter()
            .find(|fit| fit.words == words)
            .copied()
            .unwrap_or(Fit { words, tokens });
        let step = ((wanted - last.tokens as f64) / slope).round();
        let step = if step == 0.0 {
            (wanted - last.tokens as f64).signum()
        } else {
            step
        };
        let next = (words as f64 + step).max(0.0) as usize;
        if next == words || tried.iter().any(|fit| fit.words == next) {
            break;
        }
        words = next;
    }
    let best = tried
        .iter()
        .min_by_key(|fit| (fit.tokens.abs_diff(tokens), fit.words))
        .copied()
        .unwrap_or(Fit {
            words: first_words,
            tokens: a,
        });
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_differ_in_the_tag_only() {
        let maker = PromptMaker::new(20, 1, 2);
        let (a, b) = (maker.prompt(0), maker.prompt(1));
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[TAG_DIGITS..], b[TAG_DIGITS..]);
        assert_eq!(maker.words(), 20);
        assert_eq!(a.split(' ').count(), 21);
        assert_eq!(PromptMaker::new(0, 1, 2).prompt(5).len(), TAG_DIGITS);
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn fit_finds_the_exact_length_of_a_linear_tokenizer() {
        // 1.3 tokens a word, rounded down, plus 9 for the tag and the template.
        let count = |words: usize| async move { Ok(Some((words as f64 * 1.3) as u64 + 9)) };
        let fit = run(fit(1000, 750, count)).unwrap();
        assert_eq!(fit.tokens, 1000);
        assert_eq!((fit.words as f64 * 1.3) as u64 + 9, 1000);
    }

    #[test]
    fn fit_takes_the_closest_when_exact_is_impossible() {
        // Two tokens a word: odd targets cannot be hit; 101 → 50 words = 100 tokens
        // or 51 = 102, both off by one; the shorter is kept.
        let count = |words: usize| async move { Ok(Some(words as u64 * 2)) };
        let fit = run(fit(101, 75, count)).unwrap();
        assert_eq!(
            fit,
            Fit {
                words: 50,
                tokens: 100
            }
        );
    }

    #[test]
    fn fit_of_a_target_below_the_overhead_is_an_empty_body() {
        let count = |words: usize| async move { Ok(Some(words as u64 + 20)) };
        let fit = run(fit(5, 16, count)).unwrap();
        assert_eq!(
            fit,
            Fit {
                words: 0,
                tokens: 20
            }
        );
    }
}
