//! Event patterns: the whole Amazon EventBridge event pattern language, a
//! reference interpreter for one pattern, and [`PatternSet`], a compiled
//! matcher for many patterns whose cost per event follows the event's size,
//! not the number of patterns.
//!
//! This module owns pattern validation (every problem reported with its JSON
//! path), pattern semantics and matching. It knows nothing of AWS, tenants or
//! triggers, and depends only on serde_json, ipnet, memchr and rustc-hash.
//!
//! ```
//! use triggeriq::pattern::{Pattern, PatternSet};
//!
//! let pattern = Pattern::parse(r#"{"type": ["payment.failed"], "data": {"amount": [{"numeric": [">", 100]}]}}"#)?;
//! assert!(pattern.matches(br#"{"type": "payment.failed", "data": {"amount": 250}}"#)?);
//!
//! let mut set = PatternSet::new();
//! set.insert("big-failures", &pattern)?;
//! let hits = set.matches(br#"{"type": "payment.failed", "data": {"amount": 250}}"#)?;
//! assert_eq!(hits, vec!["big-failures"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See `docs/patterns.md` for the language, with an example per operator, and
//! for what TriggerIQ does beyond EventBridge.

mod compile;
mod index;
mod interp;
mod scan;
mod set;
mod value;

use serde_json::Value;

pub use set::{PatternSet, SetError, SetLimits};

/// Deepest nesting of arrays and objects accepted in an event: the same limit
/// serde_json applies, so the reference interpreter and [`PatternSet`]
/// accept and refuse the same events.
pub const EVENT_MAX_DEPTH: usize = 127;

/// Limits applied when parsing a pattern.
#[derive(Debug, Clone)]
pub struct PatternLimits {
    /// Maximum length of the pattern's compact JSON serialisation, in
    /// characters (Unicode scalar values). Default 4,096, as in EventBridge.
    pub max_chars: usize,
    /// Maximum nesting depth of objects and arrays in the pattern, the
    /// top-level object counting as 1. Default 32: a leaf operator such as
    /// `{"numeric": [">", 0]}` sits three levels below its field, so this
    /// leaves room for about 28 levels of nested fields. Values above 256
    /// are treated as 256, so that validation cannot exhaust the stack.
    pub max_depth: usize,
}

impl Default for PatternLimits {
    fn default() -> Self {
        Self {
            max_chars: 4096,
            max_depth: 32,
        }
    }
}

/// One problem in a pattern: where (a JSON path rooted at `$`, such as
/// `$.data.amount[0].numeric`) and why, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PatternError {
    /// JSON path of the offending part. Keys that are not plain identifiers
    /// are written in brackets: `$["my key"]`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A pattern was rejected; holds at least one error, and every problem that
/// could be found in one pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid pattern: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct InvalidPattern {
    /// The problems, in the order they appear in the pattern.
    pub errors: Vec<PatternError>,
}

impl InvalidPattern {
    fn at_root(message: String) -> Self {
        InvalidPattern {
            errors: vec![PatternError {
                path: "$".into(),
                message,
            }],
        }
    }
}

/// An event could not be read: not valid JSON (or not UTF-8), or nested
/// deeper than [`EVENT_MAX_DEPTH`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("event is not valid JSON: {0}")]
pub struct EventError(pub String);

/// A valid, parsed pattern. The only way to get one is through validation, so
/// holding a `Pattern` means holding a pattern EventBridge would accept.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: Value,
    /// The pattern with every `$or` expanded: it matches when any clause does.
    clauses: Vec<compile::Node>,
}

impl Pattern {
    /// Parses and validates pattern JSON text with the default limits.
    ///
    /// ```
    /// use triggeriq::pattern::Pattern;
    /// let err = Pattern::parse(r#"{"data": {"amount": [{"numeric": ["!=", 5]}]}}"#).unwrap_err();
    /// assert_eq!(err.errors[0].path, "$.data.amount[0].numeric");
    /// assert!(err.errors[0].message.contains("\"!=\" is not a numeric operator"));
    /// ```
    pub fn parse(text: &str) -> Result<Pattern, InvalidPattern> {
        Self::parse_with(text, &PatternLimits::default())
    }

    /// Parses and validates pattern JSON text with the given limits.
    pub fn parse_with(text: &str, limits: &PatternLimits) -> Result<Pattern, InvalidPattern> {
        // Whitespace does not count against the limit, but an absurdly long
        // text is refused before it is parsed at all.
        let generous = limits.max_chars.saturating_mul(8).saturating_add(1 << 16);
        if text.len() > generous {
            return Err(InvalidPattern::at_root(format!(
                "the pattern is longer than {} characters",
                limits.max_chars
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| InvalidPattern::at_root(format!("not valid JSON: {e}")))?;
        Self::from_value(&value, limits)
    }

    /// Validates a pattern already held as JSON. Its size is measured on the
    /// value's compact JSON serialisation.
    pub fn from_value(value: &Value, limits: &PatternLimits) -> Result<Pattern, InvalidPattern> {
        let clauses =
            compile::compile(value, limits).map_err(|errors| InvalidPattern { errors })?;
        Ok(Pattern {
            source: value.clone(),
            clauses,
        })
    }

    /// The pattern as given.
    pub fn as_value(&self) -> &Value {
        &self.source
    }

    /// Matches one event, given as JSON bytes, with the reference
    /// interpreter. For many patterns use a [`PatternSet`].
    pub fn matches(&self, event: &[u8]) -> Result<bool, EventError> {
        let value: Value = serde_json::from_slice(event).map_err(|e| EventError(e.to_string()))?;
        Ok(self.matches_value(&value))
    }

    /// Matches one event held as a JSON value. An event nested deeper than
    /// [`EVENT_MAX_DEPTH`] matches nothing.
    pub fn matches_value(&self, event: &Value) -> bool {
        if compile::depth_of(event) > EVENT_MAX_DEPTH {
            return false;
        }
        interp::matches_value(&self.clauses, event)
    }

    pub(crate) fn clauses(&self) -> &[compile::Node] {
        &self.clauses
    }
}

impl std::str::FromStr for Pattern {
    type Err = InvalidPattern;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
