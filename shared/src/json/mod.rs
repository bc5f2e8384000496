//! Reading untrusted JSON objects field by field, collecting every problem with its path.
//!
//! Request bodies are first held to one rule for every route ([`strict`]: malformed is 400;
//! duplicate keys, nesting too deep, numbers beyond a double and U+0000 are 422 with the
//! path), then read into `serde_json::Value` and read with [`Fields`]: serde's derive stops at
//! the first error and cannot name every unknown field.

pub mod strict;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::problem::FieldError;

/// JSON kept as the client wrote it: its numbers exact (an integer beyond 64 bits is not
/// rounded to a double), its keys in their order. Serialises as the same text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// `text`, if it is JSON.
    pub fn parse(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(Self)
    }

    /// The JSON of `value` (its numbers as `serde_json` holds them).
    pub fn of(value: &Value) -> Self {
        // A `Value` always serialises.
        Self(serde_json::value::to_raw_value(value).unwrap_or_default())
    }

    /// The JSON read into a `Value` (numbers beyond a double become doubles).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

/// Equal when the texts are: two spellings of the same JSON differ, as they do on the wire.
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// The JSON path of `key` inside the object at `parent`: `$.name`, or `$["odd key"]`.
pub fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::String(key.to_owned()))
    }
}

/// The JSON path of element `index` of the array at `parent`.
pub fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Re-roots a path that starts at `$` under `parent` (`$.a` under `$.pattern` → `$.pattern.a`).
pub fn reroot(parent: &str, path: &str) -> String {
    match path.strip_prefix('$') {
        Some(rest) => format!("{parent}{rest}"),
        None => format!("{parent}.{path}"),
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collected validation problems.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was reported, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// Reads the fields of one JSON object; [`Fields::finish`] reports the fields nobody asked for.
pub struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
    taken: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    /// Starts reading `value` at `path`; reports and returns `None` when it is not an object.
    pub fn of(value: &'a Value, path: &str, problems: &mut Problems) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self {
                path: path.to_owned(),
                map,
                taken: Vec::new(),
            }),
            other => {
                problems.push(path, format!("must be an object, not {}", type_name(other)));
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of field `key` of this object.
    pub fn path_of(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// The value of `key`, if present (a JSON `null` counts as present).
    pub fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        self.taken.push(key);
        self.map.get(key)
    }

    /// A required field; reports when missing.
    pub fn required(&mut self, key: &'a str, problems: &mut Problems) -> Option<&'a Value> {
        let value = self.get(key);
        if value.is_none() {
            problems.push(self.path_of(key), "is required");
        }
        value
    }

    /// An optional string; `null` counts as absent.
    pub fn opt_str(&mut self, key: &'a str, problems: &mut Problems) -> Option<&'a str> {
        match self.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                problems.push(
                    self.path_of(key),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional boolean; `null` counts as absent.
    pub fn opt_bool(&mut self, key: &'a str, problems: &mut Problems) -> Option<bool> {
        match self.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                problems.push(
                    self.path_of(key),
                    format!("must be a boolean, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Marks `keys` as known without reading them (read-only fields echoed back by clients).
    pub fn ignore(&mut self, keys: &[&'a str]) {
        self.taken.extend_from_slice(keys);
    }

    /// Reports every field of the object that was not read.
    pub fn finish(self, problems: &mut Problems) {
        for key in self.map.keys() {
            if !self.taken.contains(&key.as_str()) {
                problems.push(child(&self.path, key), "is not a known field");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_quote_keys_that_are_not_plain_identifiers() {
        assert_eq!(child("$", "name"), "$.name");
        assert_eq!(child("$", "a.b"), "$[\"a.b\"]");
        assert_eq!(child("$", "1st"), "$[\"1st\"]");
        assert_eq!(index("$.actions", 2), "$.actions[2]");
        assert_eq!(
            reroot("$.pattern", "$.data[0].numeric"),
            "$.pattern.data[0].numeric"
        );
    }

    #[test]
    fn unknown_and_mistyped_fields_are_all_reported() {
        let body = json!({"name": 3, "colour": "red", "enabled": true});
        let mut problems = Problems::default();
        let mut fields = Fields::of(&body, "$", &mut problems).expect("object");
        assert_eq!(fields.opt_str("name", &mut problems), None);
        assert_eq!(fields.opt_bool("enabled", &mut problems), Some(true));
        fields.finish(&mut problems);
        let paths: Vec<_> = problems.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["$.name", "$.colour"]);
    }
}
