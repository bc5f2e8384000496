//! Events: the JSON a tenant sends, in the CloudEvents 1.0 JSON format with relaxed
//! requirements, and reading ingest bodies (one event, `{"events": [...]}`, or a JSON array as
//! in `application/cloudevents-batch+json`) into validated [`Event`]s with every problem
//! located by its path.
//!
//! An event is `id` (client-chosen; a UUIDv7 when absent), `type` (required), `source`,
//! `subject`, `time` (RFC 3339; the receipt time when absent) and `data` (any JSON), plus the
//! other CloudEvents attributes: `specversion` (`"1.0"` when sent), `datacontenttype`,
//! `dataschema`, `data_base64` (instead of `data`) and extension attributes (names of 1 to 20
//! lower-case letters and digits; values strings, integers or booleans). Every attribute is
//! kept, delivered and matchable where the client put it, at the top of the event.
//!
//! `data` is kept as the client wrote it (numbers beyond 64 bits stay exact; matching reads
//! them as numbers). Times are normalised to UTC with microsecond precision, as Postgres keeps
//! them, so that what a trigger matched and what the API shows later are the same text. Every
//! body is held to the one JSON rule of [`crate::json::strict`] (no duplicate keys, no
//! U+0000, numbers within a double's range), and an event may nest [`MAX_EVENT_DEPTH`] levels.
//!
//! Sizes are measured on the bytes the client sent for each event, so a limit means what the
//! client can see.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub use crate::ids::EventId;
use crate::json::{RawJson, strict, type_name};
use crate::problem::FieldError;

/// How deeply an event may nest objects and arrays, the event itself being level 1. The queue
/// message and the webhook body each wrap an event in a few more levels, and every reader
/// downstream stops at 128: an event deeper than this is refused at ingest rather than
/// accepted and then unreadable.
pub const MAX_EVENT_DEPTH: usize = 100;

/// Limits on ingest bodies and events; each is configurable per deployment.
#[derive(Debug, Clone)]
pub struct EventLimits {
    /// Largest request body, in bytes (5 MB).
    pub max_body_bytes: usize,
    /// Most events in one request (500).
    pub max_events: usize,
    /// Largest single event as sent, in bytes (1 MiB: four times what EventBridge accepts).
    pub max_event_bytes: usize,
    /// Longest `id`, in characters.
    pub max_id_chars: usize,
    /// Longest `type`, in characters.
    pub max_type_chars: usize,
    /// Longest `source`, `subject` and other string attributes, in characters.
    pub max_attribute_chars: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_events: 500,
            max_event_bytes: 1024 * 1024,
            max_id_chars: 256,
            max_type_chars: 256,
            max_attribute_chars: 1024,
        }
    }
}

/// A valid event, as queued, matched against patterns and stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(with = "rfc3339_micros")]
    pub time: DateTime<Utc>,
    /// `None` when the event has no data or `"data": null`; otherwise the client's JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// The other CloudEvents attributes (`specversion`, `datacontenttype`, `dataschema`,
    /// `data_base64`, extensions), each at the top of the event as sent.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

/// The attributes every event may have, beside extensions.
const CORE: [&str; 6] = ["id", "type", "source", "subject", "time", "data"];
/// The optional CloudEvents attributes with a meaning of their own.
const OPTIONAL: [&str; 4] = [
    "specversion",
    "datacontenttype",
    "dataschema",
    "data_base64",
];

/// Reading an event back (a queue message, a stored row): every key that is not a core
/// attribute is one of the others. Written by hand because `data` is raw JSON, which serde's
/// `flatten` cannot carry.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;

        impl<'de> Visitor<'de> for EventVisitor {
            type Value = Event;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
                let (mut id, mut kind, mut time) = (None, None, None);
                let (mut source, mut subject, mut data) = (None, None, None);
                let mut attributes = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value::<EventId>()?),
                        "type" => kind = Some(map.next_value::<String>()?),
                        "source" => source = map.next_value::<Option<String>>()?,
                        "subject" => subject = map.next_value::<Option<String>>()?,
                        "time" => {
                            let text = map.next_value::<std::borrow::Cow<'_, str>>()?;
                            let parsed =
                                DateTime::parse_from_rfc3339(&text).map_err(de::Error::custom)?;
                            time = Some(parsed.with_timezone(&Utc));
                        }
                        "data" => data = Some(map.next_value::<Box<RawValue>>()?),
                        _ => {
                            let value = map.next_value::<Value>()?;
                            attributes.insert(key, value);
                        }
                    }
                }
                Ok(Event {
                    id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                    kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    source,
                    subject,
                    time: time.ok_or_else(|| de::Error::missing_field("time"))?,
                    data: data.filter(|d| d.get() != "null").map(RawJson::from),
                    attributes,
                })
            }
        }

        deserializer.deserialize_map(EventVisitor)
    }
}

/// RFC 3339 in UTC with `Z` and only the fractional digits needed: the one text form of every
/// time in events, so a pattern on `time` sees what the API shows.
pub mod rfc3339_micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Formats a time the way events do.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One event of an ingest body: where it was, and what came of reading it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Position in the body (0 for a single event).
    pub index: usize,
    /// Its JSON path in the body: `$`, `$.events[3]` or `$[3]`.
    pub path: String,
    /// The event, or its id (when it had a usable one) and every problem.
    pub parsed: Result<Event, Rejected>,
}

/// An event that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

/// A whole ingest body, read.
#[derive(Debug, Clone)]
pub struct IngestBody {
    /// `{"events": [...]}` or a JSON array rather than a single event.
    pub batch: bool,
    pub items: Vec<Item>,
}

/// Why a whole ingest body is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON.
    Malformed(String),
    /// One or more events are over the size limit (413); one error per event, by index.
    EventsTooLarge(Vec<FieldError>),
    /// The body's shape is wrong (422): not an object, `events` not an array, too many…
    Invalid(Vec<FieldError>),
}

/// The deepest body the envelope checks let through to serde_json, whose readers stop at 128
/// levels: deeper bodies are refused whole, the events inside are held to their own limit.
const BODY_SCAN_DEPTH: usize = 120;

impl IngestBody {
    /// Reads `bytes` (already checked against [`EventLimits::max_body_bytes`]). Events that are
    /// invalid are reported per item; only problems with the body as a whole are an `Err`.
    /// `now` is the receipt time, used for events without `time`.
    pub fn parse(
        bytes: &[u8],
        limits: &EventLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, BodyError> {
        // The one JSON rule over the whole body first: a body nested beyond what the parsers
        // can read is refused whole, with the path where it went too deep.
        let body_problems = strict::check(bytes, "$", BODY_SCAN_DEPTH)
            .err()
            .unwrap_or_default();
        let too_deep: Vec<FieldError> = body_problems
            .iter()
            .filter(|p| p.message.contains("nested too deeply"))
            .cloned()
            .collect();
        if !too_deep.is_empty() {
            return Err(BodyError::Invalid(too_deep));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| BodyError::Malformed(e.to_string()))?
            .trim();
        let now = now.trunc_subsecs(6);
        let (batch, raws): (bool, Vec<(String, &str)>) = match Shape::of(text)? {
            Shape::Single => (false, vec![("$".to_owned(), text)]),
            Shape::Batch { parent, events } => {
                // Problems of the rule outside every event are the body's (two "events" keys).
                let outside: Vec<FieldError> = body_problems
                    .into_iter()
                    .filter(|p| !inside(&p.path, parent))
                    .collect();
                if !outside.is_empty() {
                    return Err(BodyError::Invalid(outside));
                }
                if events.is_empty() || events.len() > limits.max_events {
                    return Err(BodyError::Invalid(vec![FieldError::new(
                        parent,
                        format!(
                            "must hold 1 to {} events, not {}",
                            limits.max_events,
                            events.len()
                        ),
                    )]));
                }
                let raws = events
                    .iter()
                    .enumerate()
                    .map(|(i, raw)| (crate::json::index(parent, i), raw.get()))
                    .collect();
                (true, raws)
            }
        };
        let oversized: Vec<FieldError> = raws
            .iter()
            .filter(|(_, raw)| raw.len() > limits.max_event_bytes)
            .map(|(path, raw)| too_large(path, raw.len(), limits))
            .collect();
        if !oversized.is_empty() {
            return Err(BodyError::EventsTooLarge(oversized));
        }
        let items = raws
            .into_iter()
            .enumerate()
            .map(|(index, (path, raw))| {
                // Each event by the rule again, with the events' own depth limit.
                let problems = strict::check(raw.as_bytes(), &path, MAX_EVENT_DEPTH)
                    .err()
                    .unwrap_or_default();
                let parsed = read_event(raw, &path, problems, limits, now);
                Item {
                    index,
                    path,
                    parsed,
                }
            })
            .collect();
        Ok(Self { batch, items })
    }
}

/// Whether `path` lies inside an element of the array at `parent` (`$.events[3].data`).
fn inside(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|tail| tail.starts_with('[') && tail.len() > 2)
}

/// What kind of ingest body: one event, or a batch of them under `parent`.
enum Shape<'a> {
    Single,
    Batch {
        parent: &'static str,
        events: Vec<&'a RawValue>,
    },
}

impl<'a> Shape<'a> {
    fn of(text: &'a str) -> Result<Self, BodyError> {
        if text.starts_with('[') {
            let events: Vec<&RawValue> = serde_json::from_str(text).map_err(malformed)?;
            return Ok(Shape::Batch {
                parent: "$",
                events,
            });
        }
        let top: BTreeMap<String, &RawValue> = match serde_json::from_str(text) {
            Ok(top) => top,
            Err(e) if e.is_data() => {
                let found = serde_json::from_str::<Value>(text)
                    .map(|v| type_name(&v))
                    .unwrap_or("something else");
                return Err(BodyError::Invalid(vec![FieldError::new(
                    "$",
                    format!(
                        "must be an event, {{\"events\": [...]}} or an array of events, not {found}"
                    ),
                )]));
            }
            Err(e) => return Err(malformed(e)),
        };
        let Some(events) = top.get("events") else {
            return Ok(Shape::Single);
        };
        let mut invalid: Vec<FieldError> = top
            .keys()
            .filter(|k| *k != "events")
            .map(|key| {
                FieldError::new(
                    crate::json::child("$", key),
                    "is not a known field (send either one event or {\"events\": [...]})",
                )
            })
            .collect();
        match serde_json::from_str::<Vec<&RawValue>>(events.get()) {
            Ok(events) if invalid.is_empty() => Ok(Shape::Batch {
                parent: "$.events",
                events,
            }),
            Ok(_) => Err(BodyError::Invalid(invalid)),
            Err(_) => {
                let found = serde_json::from_str::<Value>(events.get())
                    .map(|v| type_name(&v))
                    .unwrap_or("something else");
                invalid.push(FieldError::new(
                    "$.events",
                    format!("must be an array, not {found}"),
                ));
                Err(BodyError::Invalid(invalid))
            }
        }
    }
}

fn malformed(e: serde_json::Error) -> BodyError {
    BodyError::Malformed(e.to_string())
}

fn too_large(path: &str, size: usize, limits: &EventLimits) -> FieldError {
    FieldError::new(
        path,
        format!(
            "is {size} bytes; an event may be at most {} bytes",
            limits.max_event_bytes
        ),
    )
}

/// The fields of one event object, each taken once.
struct Attributes<'r> {
    path: &'r str,
    raw: BTreeMap<String, &'r RawValue>,
    problems: Vec<FieldError>,
}

impl Attributes<'_> {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        let path = crate::json::child(self.path, key);
        self.problems.push(FieldError::new(path, message));
    }

    /// Takes `key` as a (small) JSON value; `null` counts as absent, as in CloudEvents.
    fn take(&mut self, key: &str) -> Option<Value> {
        let raw = self.raw.remove(key)?;
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .filter(|v| !v.is_null())
    }

    /// `text` if it is at most `max_chars` characters, without control characters (and not
    /// empty, when `non_empty`); otherwise a problem at `key`.
    fn check_text(
        &mut self,
        key: &str,
        text: String,
        max_chars: usize,
        non_empty: bool,
    ) -> Option<String> {
        let problem = if non_empty && text.trim().is_empty() {
            "must not be empty".to_owned()
        } else if text.len() > max_chars && text.chars().count() > max_chars {
            format!("must be at most {max_chars} characters")
        } else if text.chars().any(char::is_control) {
            "must not contain control characters".to_owned()
        } else {
            return Some(text);
        };
        self.push(key, problem);
        None
    }

    /// Takes `key` as an optional string attribute.
    fn text(&mut self, key: &str, max_chars: usize) -> Option<String> {
        match self.take(key)? {
            Value::String(text) => self.check_text(key, text, max_chars, false),
            other => {
                self.push(key, format!("must be a string, not {}", type_name(&other)));
                None
            }
        }
    }
}

/// Reads one event from its raw JSON text; `problems` are what the JSON rule found in it.
fn read_event(
    raw: &str,
    path: &str,
    problems: Vec<FieldError>,
    limits: &EventLimits,
    now: DateTime<Utc>,
) -> Result<Event, Rejected> {
    let top: BTreeMap<String, &RawValue> = match serde_json::from_str(raw) {
        Ok(top) if problems.iter().all(|p| p.path != path) => top,
        Ok(_) => {
            return Err(Rejected {
                id: None,
                errors: problems,
            });
        }
        Err(_) => {
            let found = serde_json::from_str::<Value>(raw)
                .map(|v| type_name(&v))
                .unwrap_or("something else");
            let mut errors = problems;
            if errors.is_empty() {
                errors.push(FieldError::new(
                    path,
                    format!("must be a JSON object, not {found}"),
                ));
            }
            return Err(Rejected { id: None, errors });
        }
    };
    let mut fields = Attributes {
        path,
        raw: top,
        problems,
    };
    let id = match fields.take("id") {
        None => Some(EventId::generate()),
        Some(Value::String(id)) => fields
            .check_text("id", id, limits.max_id_chars, true)
            .map(EventId::new),
        Some(other) => {
            fields.push("id", format!("must be a string, not {}", type_name(&other)));
            None
        }
    };
    let kind = match fields.take("type") {
        None => {
            fields.push("type", "is required");
            None
        }
        Some(Value::String(kind)) => fields.check_text("type", kind, limits.max_type_chars, true),
        Some(other) => {
            fields.push(
                "type",
                format!("must be a string, not {}", type_name(&other)),
            );
            None
        }
    };
    let source = fields.text("source", limits.max_attribute_chars);
    let subject = fields.text("subject", limits.max_attribute_chars);
    let time = match fields.take("time") {
        None => Some(now),
        Some(Value::String(text)) => match DateTime::parse_from_rfc3339(&text) {
            Ok(t) => Some(t.with_timezone(&Utc).trunc_subsecs(6)),
            Err(e) => {
                fields.push(
                    "time",
                    format!("is not an RFC 3339 time like \"2026-05-17T09:30:00Z\" ({e})"),
                );
                None
            }
        },
        Some(other) => {
            fields.push(
                "time",
                format!("must be a string, not {}", type_name(&other)),
            );
            None
        }
    };
    let data = fields
        .raw
        .remove("data")
        .filter(|d| d.get() != "null")
        .map(|d| RawJson::from(d.to_owned()));
    let attributes = cloudevents_attributes(&mut fields, data.is_some(), limits);
    if fields.problems.is_empty()
        && let (Some(id), Some(kind), Some(time)) = (&id, kind, time)
    {
        return Ok(Event {
            id: id.clone(),
            kind,
            source,
            subject,
            time,
            data,
            attributes,
        });
    }
    Err(Rejected {
        id: id.map(|id| id.to_string()),
        errors: fields.problems,
    })
}

/// The attributes beyond the core ones: CloudEvents' optional attributes and extensions.
fn cloudevents_attributes(
    fields: &mut Attributes<'_>,
    has_data: bool,
    limits: &EventLimits,
) -> BTreeMap<String, Value> {
    let mut attributes = BTreeMap::new();
    let keys: Vec<String> = fields.raw.keys().cloned().collect();
    for key in keys {
        let Some(value) = fields.take(&key) else {
            continue;
        };
        let kept = match (key.as_str(), value) {
            ("specversion", Value::String(v)) if v == "1.0" => Some(Value::String(v)),
            ("specversion", _) => {
                fields.push(&key, "must be \"1.0\": TriggerIQ reads CloudEvents 1.0");
                None
            }
            ("datacontenttype" | "dataschema", Value::String(text)) => fields
                .check_text(&key, text, limits.max_attribute_chars, true)
                .map(Value::String),
            ("data_base64", Value::String(text)) => {
                if has_data {
                    fields.push(&key, "send either data or data_base64, not both");
                    None
                } else if base64::engine::general_purpose::STANDARD
                    .decode(&text)
                    .is_err()
                {
                    fields.push(&key, "is not base64 (RFC 4648, with padding)");
                    None
                } else {
                    Some(Value::String(text))
                }
            }
            (name, other) if OPTIONAL.contains(&name) => {
                fields.push(&key, format!("must be a string, not {}", type_name(&other)));
                None
            }
            (name, _) if !is_extension_name(name) => {
                fields.push(
                    &key,
                    format!(
                        "is not a known field: an event has {} and CloudEvents extension \
                         attributes, named with 1 to 20 lower-case letters and digits",
                        CORE.iter()
                            .chain(&OPTIONAL)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                None
            }
            (_, Value::String(text)) => fields
                .check_text(&key, text, limits.max_attribute_chars, false)
                .map(Value::String),
            (_, Value::Bool(flag)) => Some(Value::Bool(flag)),
            (_, Value::Number(n)) if n.is_i64() => Some(Value::Number(n)),
            (_, other) => {
                fields.push(
                    &key,
                    format!(
                        "an extension attribute must be a string, an integer or a boolean, not {}",
                        type_name(&other)
                    ),
                );
                None
            }
        };
        if let Some(value) = kept {
            attributes.insert(key, value);
        }
    }
    attributes
}

/// CloudEvents' rule for attribute names: lower-case ASCII letters and digits, at most 20.
fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !CORE.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 0).unwrap()
    }

    fn parse(body: &str) -> Result<IngestBody, BodyError> {
        IngestBody::parse(body.as_bytes(), &EventLimits::default(), now())
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_single_event_gets_an_id_and_the_receipt_time() {
        let body = parse(r#"{"type": "order.created", "data": {"total": 12.5}}"#).unwrap();
        assert!(!body.batch);
        let event = body.items[0].parsed.clone().unwrap();
        assert_eq!(event.kind, "order.created");
        assert_eq!(event.time, now());
        assert_eq!(
            uuid::Uuid::parse_str(&event.id).unwrap().get_version_num(),
            7
        );
        assert_eq!(
            event.data.as_ref().map(RawJson::get),
            Some(r#"{"total": 12.5}"#)
        );
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains(r#""time":"2026-05-17T09:30:00Z""#), "{text}");
        assert!(
            !text.contains("source"),
            "absent attributes are not serialised: {text}"
        );
    }

    #[test]
    fn times_are_normalised_to_utc_microseconds() {
        let body =
            parse(r#"{"id": "a", "type": "t", "time": "2026-05-17T11:30:00.123456789+02:00"}"#)
                .unwrap();
        let event = body.items[0].parsed.clone().unwrap();
        assert_eq!(format_time(&event.time), "2026-05-17T09:30:00.123456Z");
        let back: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn every_problem_of_every_event_is_reported_with_its_path() {
        let body = parse(
            r#"{"events": [
                {"id": "ok", "type": "a"},
                {"id": 5, "source": 1, "time": "yesterday", "Colour": "red"},
                {"id": "bad\u0001", "type": "", "data": {"k": "a\u0000b"}},
                []
            ]}"#,
        )
        .unwrap();
        assert!(body.batch);
        assert!(body.items[0].parsed.is_ok());
        let second = body.items[1].parsed.clone().unwrap_err();
        assert_eq!(second.id, None);
        let mut got = paths(&second.errors);
        got.sort();
        assert_eq!(
            got,
            vec![
                "$.events[1].Colour",
                "$.events[1].id",
                "$.events[1].source",
                "$.events[1].time",
                "$.events[1].type"
            ]
        );
        let third = body.items[2].parsed.clone().unwrap_err();
        let mut got = paths(&third.errors);
        got.sort();
        assert_eq!(
            got,
            vec!["$.events[2].data.k", "$.events[2].id", "$.events[2].type"]
        );
        let fourth = body.items[3].parsed.clone().unwrap_err();
        assert_eq!(paths(&fourth.errors), vec!["$.events[3]"]);
    }

    #[test]
    fn the_id_of_an_otherwise_invalid_event_is_kept_for_the_answer() {
        let body = parse(r#"{"id": "evt-1"}"#).unwrap();
        let rejected = body.items[0].parsed.clone().unwrap_err();
        assert_eq!(rejected.id.as_deref(), Some("evt-1"));
        assert_eq!(paths(&rejected.errors), vec!["$.type"]);
    }

    #[test]
    fn oversized_events_are_named_by_index() {
        let limits = EventLimits {
            max_event_bytes: 60,
            ..EventLimits::default()
        };
        let big = format!(r#"{{"type": "t", "data": "{}"}}"#, "x".repeat(80));
        let body = format!(r#"{{"events": [{{"type": "t"}}, {big}, {big}]}}"#);
        match IngestBody::parse(body.as_bytes(), &limits, now()) {
            Err(BodyError::EventsTooLarge(errors)) => {
                assert_eq!(paths(&errors), vec!["$.events[1]", "$.events[2]"]);
                assert!(errors[0].message.contains("at most 60 bytes"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        match IngestBody::parse(big.as_bytes(), &limits, now()) {
            Err(BodyError::EventsTooLarge(errors)) => assert_eq!(paths(&errors), vec!["$"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_envelopes_are_refused_as_a_whole() {
        assert!(matches!(parse("{"), Err(BodyError::Malformed(_))));
        assert!(matches!(parse("7"), Err(BodyError::Invalid(e)) if paths(&e) == ["$"]));
        assert!(
            matches!(parse(r#"{"events": {}}"#), Err(BodyError::Invalid(e)) if paths(&e) == ["$.events"])
        );
        assert!(
            matches!(parse(r#"{"events": []}"#), Err(BodyError::Invalid(e)) if paths(&e) == ["$.events"])
        );
        assert!(
            matches!(parse(r#"{"events": [{"type": "a"}], "type": "b"}"#), Err(BodyError::Invalid(e)) if paths(&e) == ["$.type"])
        );
        let limits = EventLimits {
            max_events: 2,
            ..EventLimits::default()
        };
        let three = r#"{"events": [{"type": "a"}, {"type": "a"}, {"type": "a"}]}"#;
        assert!(matches!(
            IngestBody::parse(three.as_bytes(), &limits, now()),
            Err(BodyError::Invalid(e)) if e[0].message.contains("1 to 2 events, not 3")
        ));
    }

    fn nested(levels: usize) -> String {
        // An event whose data nests `levels` objects and arrays in all, the event included.
        let inner = levels.saturating_sub(2);
        format!(
            r#"{{"type": "t", "data": {}0{}}}"#,
            "[".repeat(inner + 1),
            "]".repeat(inner + 1)
        )
    }

    #[test]
    fn a_cloudevents_body_is_accepted_and_every_attribute_kept_where_it_was() {
        let body = parse(
            r#"{"specversion": "1.0", "id": "A234-1234-1234", "source": "/mycontext",
                "type": "com.example.someevent", "datacontenttype": "application/json",
                "dataschema": "https://example.com/schema", "comexampleextension1": "value",
                "comexampleothervalue": 5, "traced": true, "data": {"big": 18446744073709551616}}"#,
        )
        .unwrap();
        let event = body.items[0].parsed.clone().unwrap();
        assert_eq!(event.attributes["specversion"], "1.0");
        assert_eq!(event.attributes["comexampleothervalue"], 5);
        let text = serde_json::to_string(&event).unwrap();
        for kept in [
            r#""specversion":"1.0""#,
            r#""datacontenttype":"application/json""#,
            r#""comexampleextension1":"value""#,
            r#""traced":true"#,
            // Beyond 64 bits, not rounded to a double.
            r#""data":{"big": 18446744073709551616}"#,
        ] {
            assert!(text.contains(kept), "{kept} in {text}");
        }
        // Read back from a queue message: the same event.
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn cloudevents_attributes_that_break_the_format_are_refused_with_their_paths() {
        let body = parse(
            r#"[{"type": "a", "specversion": "0.3"},
                {"type": "a", "data": 1, "data_base64": "AAAA"},
                {"type": "a", "data_base64": "not base64!"},
                {"type": "a", "Upper": "x", "waytoolongtobeanextension": 1},
                {"type": "a", "ext": {"nested": true}, "num": 1.5},
                {"type": "a", "ext": null}]"#,
        )
        .unwrap();
        assert!(body.batch);
        let problems = |i: usize| {
            paths(&body.items[i].parsed.clone().unwrap_err().errors)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(problems(0), ["$[0].specversion"]);
        assert_eq!(problems(1), ["$[1].data_base64"]);
        assert_eq!(problems(2), ["$[2].data_base64"]);
        assert_eq!(
            problems(3),
            ["$[3].Upper", "$[3].waytoolongtobeanextension"]
        );
        assert_eq!(problems(4), ["$[4].ext", "$[4].num"]);
        // null is an absent attribute, as in CloudEvents.
        assert!(body.items[5].parsed.clone().unwrap().attributes.is_empty());
    }

    #[test]
    fn a_key_twice_refuses_that_event_only() {
        let body =
            parse(r#"{"events": [{"id": "a", "id": "b", "type": "t"}, {"id": "c", "type": "t"}]}"#)
                .unwrap();
        let rejected = body.items[0].parsed.clone().unwrap_err();
        assert_eq!(paths(&rejected.errors), ["$.events[0].id"]);
        assert!(body.items[1].parsed.is_ok());
        // Twice at the top of the body: the body is refused.
        assert!(matches!(
            parse(r#"{"events": [{"type": "t"}], "events": [{"type": "u"}]}"#),
            Err(BodyError::Invalid(e)) if paths(&e) == ["$.events"]
        ));
    }

    #[test]
    fn events_nest_at_most_the_limit_alone_and_in_a_batch() {
        assert!(
            parse(&nested(MAX_EVENT_DEPTH)).unwrap().items[0]
                .parsed
                .is_ok()
        );
        let deep = parse(&nested(MAX_EVENT_DEPTH + 1)).unwrap().items[0]
            .parsed
            .clone()
            .unwrap_err();
        assert_eq!(deep.errors.len(), 1);
        assert!(deep.errors[0].path.starts_with("$.data["), "{deep:?}");
        assert!(
            deep.errors[0].message.contains("at most 100 levels"),
            "{deep:?}"
        );
        let batch = format!(
            r#"{{"events": [{}, {}]}}"#,
            nested(MAX_EVENT_DEPTH),
            nested(MAX_EVENT_DEPTH + 1)
        );
        let body = parse(&batch).unwrap();
        assert!(body.items[0].parsed.is_ok());
        assert!(
            body.items[1].parsed.clone().unwrap_err().errors[0]
                .path
                .starts_with("$.events[1].data[")
        );
        // Far beyond any parser's recursion limit: one problem, for the body.
        let abyss = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse(&abyss),
            Err(BodyError::Invalid(e)) if e.len() == 1 && e[0].message.contains("nested too deeply")
        ));
    }

    #[test]
    fn a_number_beyond_a_double_refuses_its_event_with_the_path() {
        let body =
            parse(r#"{"events": [{"type": "t", "data": {"n": 1e400}}, {"type": "t"}]}"#).unwrap();
        let rejected = body.items[0].parsed.clone().unwrap_err();
        assert_eq!(paths(&rejected.errors), ["$.events[0].data.n"]);
        assert!(body.items[1].parsed.is_ok());
    }
}
