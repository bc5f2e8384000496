//! Event patterns: the whole Amazon EventBridge event pattern language, a
//! reference interpreter for one pattern, and [`PatternSet`], a compiled
//! matcher for many patterns whose cost per event follows the event's size,
//! not the number of patterns.
//!
//! This module owns pattern validation (every problem reported with its JSON
//! path), pattern semantics and matching, and the bounds on what one pattern
//! may cost. It knows nothing of AWS, tenants or triggers, and depends only
//! on serde_json, ipnet, memchr and rustc-hash.
//!
//! Inside: `validate` (the language's rules and error paths), `compile`
//! (the clauses of a valid pattern, its `$or`s expanded), `interp` (the
//! reference interpreter), `set` with `index` (the automaton and its
//! per-field value indexes), `scan` (reading an event once: the path trie,
//! the kept fields, the scanner) and `value` (numbers, case folding,
//! wildcards).
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
mod validate;
mod value;

use serde_json::Value;

pub use set::{PatternSet, SetError, SetLimits};

/// The most values to match a pattern may hold once its `$or`s are expanded
/// ([`Pattern::cost`]) when it has any `$or`; a pattern over it is refused
/// at validation, with the path of the `$or` that took it over. Each clause
/// of the expansion repeats the conditions beside the `$or`s, so without
/// this bound a valid 4 KB pattern expanded to about two million values
/// (hundreds of MiB compiled). 16,384 is about eight times what a 4 KB
/// pattern without `$or` can hold.
pub const MAX_EXPANDED_VALUES: usize = 16_384;

/// A step allowance for [`Pattern::matches_within`] that patterns of
/// realistic shape stay far below on large events (a tenth of it covers a
/// five-condition pattern with `$or` on a 256 KB event), and that the
/// reference interpreter spends in 10–80 ms (release build, development VM;
/// `docs/patterns.md`, "Limits and costs").
pub const DEFAULT_MATCH_STEPS: u64 = 10_000_000;

/// The operators a pattern's conditions may use (beside plain values and `$or`): the one
/// list validation names in its messages and the model's guide for drafting a trigger
/// (`crate::ai::draft`) teaches, so neither can name an operator the matcher does not know.
pub const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "cidr",
    "exists",
];

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

impl PatternLimits {
    /// For reading back patterns that were validated when they were written: a limit lowered
    /// since must not make a stored pattern unreadable.
    pub fn stored() -> Self {
        Self {
            max_chars: 1 << 20,
            max_depth: 128,
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

/// [`Pattern::matches_within`] could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MatchError {
    /// The event could not be read.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Matching this pattern against this event takes more than the steps
    /// allowed. A property of the pair, not of either alone: an API caller
    /// can answer it as a client error (the pattern is too expensive for the
    /// event), never as a server one.
    #[error(
        "the pattern is too expensive to match against this event: it takes more than {max_steps} steps; simplify the pattern (fewer \"$or\" cases or values) or send a smaller event"
    )]
    TooExpensive {
        /// The allowance that ran out.
        max_steps: u64,
    },
}

/// A valid, parsed pattern. The only way to get one is through validation, so
/// holding a `Pattern` means holding a pattern EventBridge would accept.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: Value,
    compiled: compile::Compiled,
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
        let compiled =
            compile::compile(value, limits).map_err(|errors| InvalidPattern { errors })?;
        Ok(Pattern {
            source: value.clone(),
            compiled,
        })
    }

    /// The pattern as given.
    pub fn as_value(&self) -> &Value {
        &self.source
    }

    /// The pattern's size once its `$or`s are expanded: how many values to
    /// match its clauses hold in all. Each value in a leaf array and each
    /// operator counts one, except `anything-but` lists, one per element;
    /// each clause repeats the conditions beside the `$or`s. Without `$or`,
    /// the values as written.
    ///
    /// The work of compiling the pattern into a [`PatternSet`], and the
    /// reference interpreter's work per event value, grow with this number,
    /// so a caller can bound what one tenant's patterns cost by the sum of
    /// theirs ([`PatternSet::cost`]); for memory in bytes, a set has
    /// [`PatternSet::approx_bytes`] and [`SetLimits::max_bytes`]. Validation
    /// refuses a pattern with `$or`s whose cost would exceed
    /// [`MAX_EXPANDED_VALUES`].
    ///
    /// ```
    /// use triggeriq::pattern::Pattern;
    /// let p = Pattern::parse(r#"{"type": ["a", "b"], "$or": [{"x": [1]}, {"y": [2, 3]}]}"#)?;
    /// // Clauses {type, x} and {type, y}: (2 + 1) + (2 + 2) values.
    /// assert_eq!(p.cost(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cost(&self) -> usize {
        usize::try_from(self.compiled.cost).unwrap_or(usize::MAX)
    }

    /// Matches one event, given as JSON bytes, with the reference
    /// interpreter. For many patterns use a [`PatternSet`].
    ///
    /// The work has no bound other than the pattern's [`cost`](Pattern::cost)
    /// times the event's size, which can take seconds for a large event and
    /// a pattern with many `$or` cases: for patterns or events from an
    /// untrusted caller, use [`matches_within`](Pattern::matches_within).
    pub fn matches(&self, event: &[u8]) -> Result<bool, EventError> {
        match self.matches_within(event, u64::MAX) {
            Ok(answer) => Ok(answer),
            Err(MatchError::Event(e)) => Err(e),
            // u64::MAX steps take centuries; the type still has to be answered.
            Err(MatchError::TooExpensive { .. }) => Ok(false),
        }
    }

    /// Like [`matches`](Pattern::matches), giving up with
    /// [`MatchError::TooExpensive`] after `max_steps` steps of work (a step
    /// is one value to match tested against one event value, or one event
    /// value visited; [`DEFAULT_MATCH_STEPS`] suits an API request).
    ///
    /// ```
    /// use triggeriq::pattern::{DEFAULT_MATCH_STEPS, MatchError, Pattern};
    /// let p = Pattern::parse(r#"{"n": [1, 2, 3]}"#)?;
    /// let event = format!(r#"{{"n": [{}]}}"#, vec!["0"; 1000].join(","));
    /// assert!(!p.matches_within(event.as_bytes(), DEFAULT_MATCH_STEPS)?);
    /// assert!(matches!(
    ///     p.matches_within(event.as_bytes(), 100),
    ///     Err(MatchError::TooExpensive { max_steps: 100 })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches_within(&self, event: &[u8], max_steps: u64) -> Result<bool, MatchError> {
        let value: Value = serde_json::from_slice(event).map_err(|e| EventError(e.to_string()))?;
        self.matches_value_within(&value, max_steps)
    }

    /// Matches one event held as a JSON value, without a bound on the work
    /// (see [`matches`](Pattern::matches)). An event nested deeper than
    /// [`EVENT_MAX_DEPTH`] matches nothing.
    pub fn matches_value(&self, event: &Value) -> bool {
        self.matches_value_within(event, u64::MAX).unwrap_or(false)
    }

    /// [`matches_value`](Pattern::matches_value) within `max_steps` steps
    /// (see [`matches_within`](Pattern::matches_within)).
    pub fn matches_value_within(&self, event: &Value, max_steps: u64) -> Result<bool, MatchError> {
        if validate::depth_of(event) > EVENT_MAX_DEPTH {
            return Ok(false);
        }
        let mut steps = interp::Steps::new(max_steps);
        interp::matches_value(&self.compiled.clauses, event, &mut steps)
            .map_err(|interp::OutOfSteps| MatchError::TooExpensive { max_steps })
    }

    /// [`matches_value_within`](Pattern::matches_value_within) drawing on an allowance that
    /// several matches share: the steps this one takes are taken from `allowance`, so that one
    /// allowance bounds the work over a whole list of events (`POST /v1/triggers/test`), where
    /// a fixed allowance per event would let the work grow with the number of events.
    pub fn matches_value_drawing(
        &self,
        event: &Value,
        allowance: &mut u64,
    ) -> Result<bool, MatchError> {
        if validate::depth_of(event) > EVENT_MAX_DEPTH {
            return Ok(false);
        }
        let max_steps = *allowance;
        let mut steps = interp::Steps::new(max_steps);
        let answer = interp::matches_value(&self.compiled.clauses, event, &mut steps);
        *allowance = steps.left();
        answer.map_err(|interp::OutOfSteps| {
            *allowance = 0;
            MatchError::TooExpensive { max_steps }
        })
    }

    pub(crate) fn clauses(&self) -> &[compile::Node] {
        &self.compiled.clauses
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
