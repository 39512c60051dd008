//! Vendor-neutral token usage, in Anthropic's five classes, which is what gets priced.

/// Tokens used by one request, split by how each class is priced.
///
/// `input_tokens` counts only uncached input, as Anthropic reports it: total
/// input is `input_tokens + cache_read_tokens + cache_write_tokens +
/// cache_write_1h_tokens`. A cache write is priced instead of plain input, not on
/// top of it, and a 1-hour write at its own price (Anthropic's
/// `cache_creation.ephemeral_1h_input_tokens`).
///
/// From OpenAI usage, `input_tokens = prompt_tokens - cached_tokens` and
/// `cache_read_tokens = cached_tokens`; OpenAI reports no cache writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache with the default 5-minute lifetime.
    pub cache_write_tokens: u64,
    /// Input tokens written to the prompt cache with a 1-hour lifetime.
    pub cache_write_1h_tokens: u64,
}

impl TokenUsage {
    /// All input tokens: uncached, cache reads and cache writes.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// Cache writes of both lifetimes: Anthropic's `cache_creation_input_tokens`.
    pub fn all_cache_write_tokens(&self) -> u64 {
        self.cache_write_tokens
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// All tokens, input and output.
    pub fn total_tokens(&self) -> u64 {
        self.total_input_tokens().saturating_add(self.output_tokens)
    }

    /// True when every count is zero (no usage was reported).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_each_class_once() {
        let usage = TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 100,
            cache_write_tokens: 20,
            cache_write_1h_tokens: 7,
        };
        assert_eq!(usage.total_input_tokens(), 137);
        assert_eq!(usage.total_tokens(), 142);
        assert_eq!(usage.all_cache_write_tokens(), 27);
        assert!(!usage.is_zero());
        assert!(TokenUsage::default().is_zero());
    }

    #[test]
    fn totals_saturate_instead_of_overflowing() {
        let usage = TokenUsage {
            input_tokens: u64::MAX,
            output_tokens: 1,
            cache_read_tokens: 1,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(usage.total_tokens(), u64::MAX);
    }
}
