//! The verdict: the seed's four factors and "wins when" lists as a checklist with
//! measured values, then a recommendation with the figures that drive it.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Favours self-hosting.
    Pass,
    /// Favours the API.
    Fail,
    /// Self-hosting is possible but this needs attention.
    Warn,
    /// Not measured yet.
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub measured: String,
    pub threshold: String,
    pub status: CheckStatus,
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Api,
    SelfHost,
    Hybrid,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub recommendation: Recommendation,
    pub summary: String,
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
}
