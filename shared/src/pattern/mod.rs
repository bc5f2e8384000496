//! EventBridge event patterns. PLACEHOLDER: replaced by the pattern engine (issue 3).
//! The public contract below is what the rest of TriggerIQ relies on.

use serde_json::Value;

/// Limits applied when parsing a pattern.
#[derive(Debug, Clone)]
pub struct PatternLimits {
    /// Maximum length of the pattern's JSON text, in characters.
    pub max_chars: usize,
    /// Maximum nesting depth of objects in the pattern.
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

/// One problem in a pattern: where (a JSON path rooted at `$`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A pattern was rejected; holds at least one error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid pattern: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct InvalidPattern {
    pub errors: Vec<PatternError>,
}

/// An event could not be read as JSON.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event is not valid JSON: {0}")]
pub struct EventError(pub String);

/// A valid, parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: Value,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, InvalidPattern> {
        Self::parse_with(text, &PatternLimits::default())
    }

    pub fn parse_with(text: &str, limits: &PatternLimits) -> Result<Pattern, InvalidPattern> {
        let value: Value = serde_json::from_str(text).map_err(|e| InvalidPattern {
            errors: vec![PatternError {
                path: "$".into(),
                message: format!("not valid JSON: {e}"),
            }],
        })?;
        Self::from_value(&value, limits)
    }

    pub fn from_value(value: &Value, _limits: &PatternLimits) -> Result<Pattern, InvalidPattern> {
        if !value.is_object() {
            return Err(InvalidPattern {
                errors: vec![PatternError {
                    path: "$".into(),
                    message: "a pattern must be a JSON object".into(),
                }],
            });
        }
        Ok(Pattern {
            source: value.clone(),
        })
    }

    /// The pattern as JSON.
    pub fn as_value(&self) -> &Value {
        &self.source
    }

    pub fn matches(&self, event: &[u8]) -> Result<bool, EventError> {
        let _: Value = serde_json::from_slice(event).map_err(|e| EventError(e.to_string()))?;
        Ok(false)
    }
}
