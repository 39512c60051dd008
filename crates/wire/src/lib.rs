//! OpenAI and Anthropic JSON and SSE wire formats, and translation between them.
//!
//! This crate is the only place in costfloor that knows vendor JSON. It does no
//! I/O: callers hand it bytes or parsed values and get back bytes or values.
//!
//! - [`openai`]: Chat Completions request, response, stream chunk and error types.
//! - [`anthropic`]: Messages request, response, stream event and error types.
//! - [`usage`]: [`TokenUsage`], the vendor-neutral token count the ledger prices.
//! - [`sse`]: an incremental server-sent-events parser and frame writers.
//! - [`error`]: [`ApiErrorKind`] and the error bodies each API expects.
//! - [`translate`]: request, response and stream translation in both directions.
//! - [`fuzz`]: every parser and translation driven by arbitrary bytes (fuzz targets).
//! - [`responses`]: the OpenAI Responses API, read into and written from Chat Completions.
//! - [`bench`]: what `costfloor bench` sends and reads: streaming requests of a given
//!   length, tokenizer counts, model lists, stream events read into tokens and usage.
//! - [`pair`]: every rule that depends on the (client format, backend protocol)
//!   pair: request checks, upstream bodies and headers, whole responses, stream
//!   relays, error and model-list bodies.
//!
//! Unknown fields are kept (`extra` maps) so that a body parsed and written back
//! keeps what this crate does not model; unknown content blocks and stream
//! events are kept as raw JSON values instead of failing the parse.

/// Declares a string-valued wire enum with a catch-all `Other(String)` variant,
/// so that a value added by the vendor later parses instead of failing.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )*
                    Self::Other(text) => text,
                }
            }

            /// Parses a wire value; unknown values become `Other`.
            pub fn from_wire(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from_wire(&text))
            }
        }
    };
}

pub mod anthropic;
pub mod bench;
pub mod error;
pub mod fuzz;
pub mod openai;
pub mod pair;
pub mod responses;
pub mod sse;
pub mod translate;
pub mod usage;

mod json;

pub use error::ApiErrorKind;
pub use usage::TokenUsage;
