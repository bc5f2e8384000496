//! Events: the CloudEvents-shaped JSON a tenant sends, and reading ingest bodies (one event,
//! or `{"events": [...]}`) into validated [`Event`]s with every problem located by its path.
//!
//! An event is `id` (client-chosen; a UUIDv7 when absent), `type` (required), `source`,
//! `subject`, `time` (RFC 3339; the receipt time when absent) and `data` (any JSON). Times are
//! normalised to UTC with microsecond precision, as Postgres keeps them, so that what a trigger
//! matched and what the API shows later are the same text. Strings may not contain U+0000,
//! which Postgres cannot store (in `text` or in `jsonb`).
//!
//! Sizes are measured on the bytes the client sent for each event, so a limit means what the
//! client can see.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::json::{Fields, Problems, type_name};
use crate::problem::FieldError;

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
    /// Longest `source` and `subject`, in characters.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(with = "rfc3339_micros")]
    pub time: DateTime<Utc>,
    /// `None` when the event has no data or `"data": null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
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
    /// `{"events": [...]}` rather than a single event.
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

const EVENT_FIELDS: [&str; 6] = ["id", "type", "source", "subject", "time", "data"];

impl IngestBody {
    /// Reads `bytes` (already checked against [`EventLimits::max_body_bytes`]). Events that are
    /// invalid are reported per item; only problems with the body as a whole are an `Err`.
    /// `now` is the receipt time, used for events without `time`.
    pub fn parse(
        bytes: &[u8],
        limits: &EventLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, BodyError> {
        let top: BTreeMap<String, &RawValue> = match serde_json::from_slice(bytes) {
            Ok(top) => top,
            Err(e) if e.is_data() => {
                let found = serde_json::from_slice::<Value>(bytes)
                    .map(|v| type_name(&v))
                    .unwrap_or("something else");
                return Err(BodyError::Invalid(vec![FieldError::new(
                    "$",
                    format!("must be an event or {{\"events\": [...]}}, not {found}"),
                )]));
            }
            Err(e) => return Err(BodyError::Malformed(e.to_string())),
        };
        let now = now.trunc_subsecs(6);
        let Some(events) = top.get("events") else {
            // A single event: the whole body.
            let raw = std::str::from_utf8(bytes)
                .map_err(|e| BodyError::Malformed(e.to_string()))?
                .trim();
            if raw.len() > limits.max_event_bytes {
                return Err(BodyError::EventsTooLarge(vec![too_large(
                    "$",
                    raw.len(),
                    limits,
                )]));
            }
            let parsed = read_event(raw, "$", limits, now);
            return Ok(Self {
                batch: false,
                items: vec![Item { index: 0, parsed }],
            });
        };

        let mut problems = Problems::default();
        for key in top.keys().filter(|k| *k != "events") {
            problems.push(
                crate::json::child("$", key),
                "is not a known field (send either one event or {\"events\": [...]})",
            );
        }
        let raws: Vec<&RawValue> = match serde_json::from_str(events.get()) {
            Ok(raws) => raws,
            Err(_) => {
                let found = serde_json::from_str::<Value>(events.get())
                    .map(|v| type_name(&v))
                    .unwrap_or("something else");
                problems.push("$.events", format!("must be an array, not {found}"));
                return Err(BodyError::Invalid(problems.0));
            }
        };
        if raws.is_empty() || raws.len() > limits.max_events {
            problems.push(
                "$.events",
                format!(
                    "must hold 1 to {} events, not {}",
                    limits.max_events,
                    raws.len()
                ),
            );
        }
        if !problems.is_empty() {
            return Err(BodyError::Invalid(problems.0));
        }
        let oversized: Vec<FieldError> = raws
            .iter()
            .enumerate()
            .filter(|(_, raw)| raw.get().len() > limits.max_event_bytes)
            .map(|(i, raw)| too_large(&crate::json::index("$.events", i), raw.get().len(), limits))
            .collect();
        if !oversized.is_empty() {
            return Err(BodyError::EventsTooLarge(oversized));
        }
        let items = raws
            .iter()
            .enumerate()
            .map(|(index, raw)| Item {
                index,
                parsed: read_event(
                    raw.get(),
                    &crate::json::index("$.events", index),
                    limits,
                    now,
                ),
            })
            .collect();
        Ok(Self { batch: true, items })
    }
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

/// Reads one event from its raw JSON text.
fn read_event(
    raw: &str,
    path: &str,
    limits: &EventLimits,
    now: DateTime<Utc>,
) -> Result<Event, Rejected> {
    let value: Value = serde_json::from_str(raw).map_err(|e| Rejected {
        id: None,
        errors: vec![FieldError::new(path, format!("is not valid JSON: {e}"))],
    })?;
    let mut problems = Problems::default();
    let Some(mut fields) = Fields::of(&value, path, &mut problems) else {
        return Err(Rejected {
            id: None,
            errors: problems.0,
        });
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => Some(uuid::Uuid::now_v7().to_string()),
        Some(Value::String(id)) => {
            check_text(id, &fields, "id", limits.max_id_chars, true, &mut problems)
                .map(str::to_owned)
        }
        Some(other) => {
            problems.push(
                fields.path_of("id"),
                format!("must be a string, not {}", type_name(other)),
            );
            None
        }
    };
    let kind = match fields.required("type", &mut problems) {
        Some(Value::String(kind)) => check_text(
            kind,
            &fields,
            "type",
            limits.max_type_chars,
            true,
            &mut problems,
        ),
        Some(other) => {
            problems.push(
                fields.path_of("type"),
                format!("must be a string, not {}", type_name(other)),
            );
            None
        }
        None => None,
    };
    let source = fields.opt_str("source", &mut problems).and_then(|s| {
        check_text(
            s,
            &fields,
            "source",
            limits.max_attribute_chars,
            false,
            &mut problems,
        )
    });
    let subject = fields.opt_str("subject", &mut problems).and_then(|s| {
        check_text(
            s,
            &fields,
            "subject",
            limits.max_attribute_chars,
            false,
            &mut problems,
        )
    });
    let time = match fields.opt_str("time", &mut problems) {
        None => Some(now),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc).trunc_subsecs(6)),
            Err(e) => {
                problems.push(
                    fields.path_of("time"),
                    format!("is not an RFC 3339 time like \"2026-05-17T09:30:00Z\" ({e})"),
                );
                None
            }
        },
    };
    match fields.get("data") {
        // Postgres cannot store U+0000; look for it only when the text could hold one.
        Some(data) if raw.contains("\\u0000") => {
            nul_paths(data, &fields.path_of("data"), &mut problems);
        }
        _ => {}
    }
    fields.finish(&mut problems);
    if problems.is_empty()
        && let (Some(id), Some(kind), Some(time)) = (&id, kind, time)
    {
        let event = Event {
            id: id.clone(),
            kind: kind.to_owned(),
            source: source.map(str::to_owned),
            subject: subject.map(str::to_owned),
            time,
            data: None,
        };
        // The data moves out of the parsed value rather than being copied.
        let mut value = value;
        let data = value
            .as_object_mut()
            .and_then(|map| map.remove("data"))
            .filter(|d| !d.is_null());
        return Ok(Event { data, ..event });
    }
    let mut errors = problems.0;
    // The field list is fixed; say so once rather than leave the client guessing.
    if errors.iter().any(|e| e.message == "is not a known field") {
        for e in &mut errors {
            if e.message == "is not a known field" {
                e.message = format!(
                    "is not a known field (an event has {})",
                    EVENT_FIELDS.join(", ")
                );
            }
        }
    }
    Err(Rejected { id, errors })
}

/// A string attribute of field `key`: not empty (when `non_empty`), not too long, no control
/// characters. The path is only built for a problem: this runs for every field of every event.
fn check_text<'a>(
    text: &'a str,
    fields: &Fields<'_>,
    key: &str,
    max_chars: usize,
    non_empty: bool,
    problems: &mut Problems,
) -> Option<&'a str> {
    let problem = if non_empty && text.trim().is_empty() {
        "must not be empty".to_owned()
    } else if text.len() > max_chars && text.chars().count() > max_chars {
        format!("must be at most {max_chars} characters")
    } else if text.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else {
        return Some(text);
    };
    problems.push(fields.path_of(key), problem);
    None
}

/// Reports every string (key or value) under `value` that contains U+0000.
fn nul_paths(value: &Value, path: &str, problems: &mut Problems) {
    const WHY: &str = "contains U+0000, which cannot be stored; remove it or encode the value";
    match value {
        Value::String(s) if s.contains('\0') => problems.push(path, WHY),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nul_paths(item, &crate::json::index(path, i), problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = crate::json::child(path, key);
                if key.contains('\0') {
                    problems.push(child.clone(), WHY);
                }
                nul_paths(item, &child, problems);
            }
        }
        _ => {}
    }
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
        assert_eq!(event.data, Some(serde_json::json!({"total": 12.5})));
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
                {"id": 5, "source": 1, "time": "yesterday", "colour": "red"},
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
                "$.events[1].colour",
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
        assert!(matches!(parse("[1]"), Err(BodyError::Invalid(e)) if paths(&e) == ["$"]));
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
}
