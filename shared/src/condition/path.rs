//! Field paths into an event (`$.data.customer.id`, `$.subject`, `$["odd key"].x`) and the
//! group an event belongs to under a condition's `group_by`.

use std::fmt;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::json::{Problems, type_name};

/// Most segments in one path.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Longest path text, in bytes.
pub const MAX_PATH_BYTES: usize = 256;
/// Most paths in `group_by`.
pub const MAX_GROUP_BY: usize = 3;
/// Largest group key (the JSON text of the group's values), in bytes. An event whose group
/// values are longer belongs to no group: a group is an identity (a customer, a device), and
/// a multi-kilobyte identity is almost certainly the wrong field.
pub const MAX_GROUP_KEY_BYTES: usize = 1024;

/// A path from the event's top (`$`) to one field: object keys only, no wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    keys: Vec<String>,
}

impl FieldPath {
    /// Reads `$.a.b`, `$["a b"].c`; keys in dotted form are letters, digits, `_` and `-`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(format!("must be at most {MAX_PATH_BYTES} bytes"));
        }
        let Some(mut rest) = raw.strip_prefix('$') else {
            return Err("must start with `$` (for example \"$.data.customer.id\")".into());
        };
        let mut keys = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty()
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "has an invalid key {key:?} after `.`; write other keys as [\"key\"]"
                    ));
                }
                keys.push(key.to_owned());
                rest = &after[end..];
            } else if rest.starts_with("[\"") {
                let mut stream =
                    serde_json::Deserializer::from_str(&rest[1..]).into_iter::<String>();
                let key = match stream.next() {
                    Some(Ok(key)) => key,
                    _ => return Err("has a `[` not followed by a JSON string and `]`".into()),
                };
                let consumed = 1 + stream.byte_offset();
                let Some(after) = rest[consumed..].strip_prefix(']') else {
                    return Err("has a `[\"key\"` not closed by `]`".into());
                };
                if key.contains('\0') {
                    return Err("must not contain U+0000".into());
                }
                keys.push(key);
                rest = after;
            } else {
                return Err(format!(
                    "must continue with `.key` or `[\"key\"]` at {rest:?} (array indices and wildcards are not supported)"
                ));
            }
            if keys.len() > MAX_PATH_SEGMENTS {
                return Err(format!("must have at most {MAX_PATH_SEGMENTS} keys"));
            }
        }
        if keys.is_empty() {
            return Err("must name a field, not the whole event".into());
        }
        Ok(Self {
            text: raw.to_owned(),
            keys,
        })
    }

    /// The value at this path in `event`, if every key on the way is an object's field.
    pub fn lookup<'v>(&self, event: &'v Value) -> Option<&'v Value> {
        self.keys
            .iter()
            .try_fold(event, |value, key| value.as_object()?.get(key))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads a required path field of a condition (`"sum": "$.data.amount"`).
pub(super) fn parse_path(value: &Value, path: &str, problems: &mut Problems) -> Option<FieldPath> {
    match value {
        Value::String(raw) => FieldPath::parse(raw)
            .map_err(|m| problems.push(path, m))
            .ok(),
        other => {
            problems.push(
                path,
                format!(
                    "must be a JSON path string like \"$.data.id\", not {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// The fields whose values name an event's group; empty: the whole trigger is one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupBy(Vec<FieldPath>);

impl GroupBy {
    pub fn parse(value: &Value, path: &str, problems: &mut Problems) -> Option<Self> {
        let Value::Array(items) = value else {
            problems.push(
                path,
                format!("must be an array of JSON paths, not {}", type_name(value)),
            );
            return None;
        };
        if items.len() > MAX_GROUP_BY {
            problems.push(path, format!("must have at most {MAX_GROUP_BY} paths"));
            return None;
        }
        let before = problems.0.len();
        let mut paths = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = crate::json::index(path, i);
            if let Some(p) = parse_path(item, &at, problems) {
                if paths.contains(&p) {
                    problems.push(at, "repeats an earlier path");
                } else {
                    paths.push(p);
                }
            }
        }
        (problems.0.len() == before).then_some(Self(paths))
    }

    pub fn paths(&self) -> &[FieldPath] {
        &self.0
    }

    /// The group `event` belongs to; `None` when a group field is missing or `null` (such an
    /// event belongs to no group and a grouped condition ignores it), or the values are larger
    /// than [`MAX_GROUP_KEY_BYTES`].
    pub fn key_of(&self, event: &Value) -> Option<GroupKey> {
        let values: Vec<Value> = self
            .0
            .iter()
            .map(|p| p.lookup(event).filter(|v| !v.is_null()).cloned())
            .collect::<Option<_>>()?;
        let text = Value::Array(values.clone()).to_string();
        (text.len() <= MAX_GROUP_KEY_BYTES).then_some(GroupKey { values, text })
    }
}

/// One group's values, in `group_by` order. Values of different JSON types are different
/// groups (`"42"` is not `42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    values: Vec<Value>,
    text: String,
}

impl GroupKey {
    /// The group of stored values (as [`Self::values`] gave them).
    pub fn from_values(values: Vec<Value>) -> Self {
        let text = Value::Array(values.clone()).to_string();
        Self { values, text }
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values as one JSON array text: the group's identity.
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// A fixed-length digest of the identity, for storage keys.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_read_dotted_and_quoted_keys() {
        let event = json!({"data": {"customer": {"id": "c-1"}, "odd key": {"x": 2}}});
        let dotted = FieldPath::parse("$.data.customer.id").expect("valid");
        assert_eq!(dotted.lookup(&event), Some(&json!("c-1")));
        let quoted = FieldPath::parse("$.data[\"odd key\"].x").expect("valid");
        assert_eq!(quoted.lookup(&event), Some(&json!(2)));
        assert_eq!(
            FieldPath::parse("$.data.missing")
                .ok()
                .and_then(|p| p.lookup(&event).cloned()),
            None
        );
    }

    #[test]
    fn paths_refuse_what_they_cannot_follow() {
        for bad in [
            "data.id",
            "$",
            "$.",
            "$.a..b",
            "$.a[0]",
            "$.a[*]",
            "$.a b",
            "$[\"a\"",
            "$[\"a\\u0000\"]",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(FieldPath::parse(&format!("$.{}", "a".repeat(300))).is_err());
        assert!(FieldPath::parse(&"$.a".repeat(17)).is_err());
    }

    #[test]
    fn a_group_is_the_values_of_its_fields_and_their_types() {
        let by = GroupBy(vec![FieldPath::parse("$.data.id").expect("valid")]);
        let text = by.key_of(&json!({"data": {"id": "42"}})).expect("grouped");
        let number = by.key_of(&json!({"data": {"id": 42}})).expect("grouped");
        assert_ne!(text, number);
        assert_ne!(text.digest(), number.digest());
        assert_eq!(number.values(), &[json!(42)]);
    }

    #[test]
    fn an_event_without_its_group_field_belongs_to_no_group() {
        let by = GroupBy(vec![FieldPath::parse("$.data.id").expect("valid")]);
        assert_eq!(by.key_of(&json!({"data": {}})), None);
        assert_eq!(by.key_of(&json!({"data": {"id": null}})), None);
        assert_eq!(by.key_of(&json!({"data": {"id": "x".repeat(2000)}})), None);
        let ungrouped = GroupBy::default().key_of(&json!({})).expect("one group");
        assert_eq!(ungrouped.as_text(), "[]");
    }

    #[test]
    fn group_by_reports_each_bad_path_where_it_is() {
        let mut problems = Problems::default();
        let parsed = GroupBy::parse(
            &json!(["$.a", 3, "$.a"]),
            "$.condition.group_by",
            &mut problems,
        );
        assert_eq!(parsed, None);
        let paths: Vec<&str> = problems.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["$.condition.group_by[1]", "$.condition.group_by[2]"]
        );
        let mut problems = Problems::default();
        assert_eq!(
            GroupBy::parse(&json!(["$.a", "$.b", "$.c", "$.d"]), "$.g", &mut problems),
            None
        );
        assert_eq!(problems.0.len(), 1);
    }
}
