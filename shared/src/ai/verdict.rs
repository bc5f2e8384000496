//! The model's answer: the one tool it may call ([`VERDICT_TOOL`], its JSON schema from
//! [`verdict_tool_schema`]) and the check of what it passed to it ([`Verdict::from_tool_input`]),
//! which holds the input to exactly that schema: a model does not always keep to a schema it
//! was given.

use serde_json::{Map, Value, json};

use crate::json::type_name;

/// The name of the only tool the model is given.
pub const VERDICT_TOOL: &str = "verdict";
/// What the model reads about the tool.
pub const VERDICT_TOOL_DESCRIPTION: &str = "Records your answer to the question about the \
     event: verdict (true for yes, false for no), your confidence in it from 0 to 1, and the \
     reason in at most 300 characters.";
/// Longest `reason`, in characters (Unicode scalar values, as JSON Schema's `maxLength`).
pub const MAX_REASON_CHARS: usize = 300;

const KEYS: [&str; 3] = ["verdict", "confidence", "reason"];

/// The verdict tool's input schema: the only statement of it, sent to the model as is and
/// held to by [`Verdict::from_tool_input`] (a test checks the two agree).
pub fn verdict_tool_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"type": "boolean"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
        },
        "required": KEYS,
        "additionalProperties": false,
    })
}

/// The model's answer to a check's question.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Yes (`true`) or no.
    pub verdict: bool,
    /// How sure the model is of `verdict`, from 0 to 1.
    pub confidence: f64,
    /// Why, in at most [`MAX_REASON_CHARS`] characters.
    pub reason: String,
}

/// Why a model's answer is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The model did not call the verdict tool (it answered in text, or stopped early).
    #[error("the model did not call the verdict tool ({0})")]
    NoVerdict(String),
    /// The model called a tool it was not given.
    #[error("the model called a tool named {0:?}, not verdict")]
    OtherTool(String),
    /// The verdict tool's input does not fit its schema.
    #[error("the verdict tool's input {0}")]
    Input(String),
}

impl Verdict {
    /// Reads the verdict tool's input, held to [`verdict_tool_schema`] exactly (no missing or
    /// extra field, a finite confidence from 0 to 1, a reason of at most 300 characters), and
    /// without U+0000 in the reason (which is stored and shown).
    pub fn from_tool_input(input: &Value) -> Result<Self, Malformed> {
        let bad = |message: String| Err(Malformed::Input(message));
        let Value::Object(map) = input else {
            return bad(format!("is {}, not an object", type_name(input)));
        };
        if let Some(extra) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return bad(format!("has an unexpected field {:?}", preview(extra)));
        }
        let verdict = match map.get("verdict") {
            Some(Value::Bool(b)) => *b,
            Some(other) => return bad(format!("verdict is {}, not a boolean", type_name(other))),
            None => return bad("has no verdict".into()),
        };
        let confidence = match map.get("confidence") {
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && (0.0..=1.0).contains(&f) => f,
                _ => return bad(format!("confidence {n} is not between 0 and 1")),
            },
            Some(other) => {
                return bad(format!("confidence is {}, not a number", type_name(other)));
            }
            None => return bad("has no confidence".into()),
        };
        let reason = match map.get("reason") {
            Some(Value::String(s)) if s.contains('\0') => {
                return bad("reason contains U+0000".into());
            }
            Some(Value::String(s)) if s.chars().count() > MAX_REASON_CHARS => {
                return bad(format!(
                    "reason is longer than {MAX_REASON_CHARS} characters"
                ));
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => return bad(format!("reason is {}, not a string", type_name(other))),
            None => return bad("has no reason".into()),
        };
        Ok(Self {
            verdict,
            confidence,
            reason,
        })
    }

    /// The verdict in the tool's input form (as cached and recorded); reads back with
    /// [`Verdict::from_tool_input`].
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("verdict".into(), json!(self.verdict));
        map.insert("confidence".into(), json!(self.confidence));
        map.insert("reason".into(), json!(self.reason));
        Value::Object(map)
    }

    /// True when the answer is yes with at least `min_confidence`: the trigger fires.
    pub fn passes(&self, min_confidence: f64) -> bool {
        self.verdict && self.confidence >= min_confidence
    }
}

/// The start of a key the model made up, for an error message.
fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(input: Value) -> Result<Verdict, Malformed> {
        Verdict::from_tool_input(&input)
    }

    #[test]
    fn a_complete_answer_is_a_verdict() {
        assert_eq!(
            verdict(json!({"verdict": true, "confidence": 0.92, "reason": "Asks to cancel."})),
            Ok(Verdict {
                verdict: true,
                confidence: 0.92,
                reason: "Asks to cancel.".into()
            })
        );
        let edges = verdict(json!({"verdict": false, "confidence": 0, "reason": ""}));
        assert_eq!(edges.map(|v| v.confidence), Ok(0.0));
        let sure = verdict(json!({"verdict": false, "confidence": 1, "reason": "x"}));
        assert_eq!(sure.map(|v| v.confidence), Ok(1.0));
    }

    #[test]
    fn an_answer_off_the_schema_is_malformed() {
        for bad in [
            json!("yes"),
            json!(null),
            json!([true, 0.9, "r"]),
            json!({"verdict": true, "confidence": 0.9}),
            json!({"verdict": "yes", "confidence": 0.9, "reason": "r"}),
            json!({"verdict": true, "confidence": "high", "reason": "r"}),
            json!({"verdict": true, "confidence": 1.5, "reason": "r"}),
            json!({"verdict": true, "confidence": -0.1, "reason": "r"}),
            json!({"verdict": true, "confidence": 0.9, "reason": null}),
            json!({"verdict": true, "confidence": 0.9, "reason": "r", "note": "extra"}),
            json!({"verdict": true, "confidence": 0.9, "reason": "x".repeat(301)}),
            json!({"verdict": true, "confidence": 0.9, "reason": "a\u{0}b"}),
        ] {
            assert!(
                matches!(verdict(bad.clone()), Err(Malformed::Input(_))),
                "{bad} should be malformed"
            );
        }
        // Characters, not bytes.
        assert!(
            verdict(json!({"verdict": true, "confidence": 0.9, "reason": "é".repeat(300)})).is_ok()
        );
    }

    #[test]
    fn a_malformed_answer_says_what_is_wrong() {
        let extra = verdict(json!({"verdict": true, "confidence": 0.9, "reason": "r", "x": 1}));
        assert_eq!(
            extra.map_err(|e| e.to_string()),
            Err("the verdict tool's input has an unexpected field \"x\"".into())
        );
        let high = verdict(json!({"verdict": true, "confidence": 2, "reason": "r"}));
        assert_eq!(
            high.map_err(|e| e.to_string()),
            Err("the verdict tool's input confidence 2 is not between 0 and 1".into())
        );
    }

    #[test]
    fn only_a_yes_with_enough_confidence_passes() {
        let yes = |confidence| Verdict {
            verdict: true,
            confidence,
            reason: String::new(),
        };
        assert!(yes(0.7).passes(0.7));
        assert!(yes(0.95).passes(0.7));
        assert!(!yes(0.69).passes(0.7));
        let no = Verdict {
            verdict: false,
            ..yes(1.0)
        };
        assert!(!no.passes(0.0));
    }

    #[test]
    fn a_verdict_reads_back_from_its_value() {
        let v = Verdict {
            verdict: true,
            confidence: 0.81,
            reason: "Mentions cancelling.".into(),
        };
        assert_eq!(Verdict::from_tool_input(&v.to_value()), Ok(v));
    }

    #[test]
    fn the_schema_names_the_fields_the_check_reads() {
        let schema = verdict_tool_schema();
        let mut properties: Vec<&str> = schema["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        properties.sort_unstable();
        let mut keys = KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(properties, keys);
        assert_eq!(schema["required"], json!(KEYS));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["reason"]["maxLength"],
            json!(MAX_REASON_CHARS)
        );
    }

    /// The check accepts exactly what a JSON Schema validator accepts under the schema (but
    /// U+0000 in the reason, which the check refuses beyond it).
    #[cfg(feature = "test-support")]
    #[test]
    fn the_check_agrees_with_a_json_schema_validator() {
        let validator = jsonschema::validator_for(&verdict_tool_schema()).expect("a valid schema");
        let cases = [
            json!({"verdict": true, "confidence": 0.5, "reason": "r"}),
            json!({"verdict": false, "confidence": 0, "reason": ""}),
            json!({"verdict": false, "confidence": 1, "reason": "é".repeat(300)}),
            json!({"verdict": false, "confidence": 1, "reason": "é".repeat(301)}),
            json!({"verdict": true, "confidence": 1.0001, "reason": "r"}),
            json!({"verdict": true, "confidence": -0.0001, "reason": "r"}),
            json!({"verdict": true, "confidence": "0.5", "reason": "r"}),
            json!({"verdict": 1, "confidence": 0.5, "reason": "r"}),
            json!({"verdict": true, "reason": "r"}),
            json!({"verdict": true, "confidence": 0.5}),
            json!({"confidence": 0.5, "reason": "r"}),
            json!({"verdict": true, "confidence": 0.5, "reason": "r", "extra": null}),
            json!({"verdict": true, "confidence": 0.5, "reason": ["r"]}),
            json!([]),
            json!("verdict"),
        ];
        for case in cases {
            assert_eq!(
                Verdict::from_tool_input(&case).is_ok(),
                validator.is_valid(&case),
                "{case}"
            );
        }
    }
}
