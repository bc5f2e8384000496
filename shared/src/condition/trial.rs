//! A trial of a trigger: its body, a list of events with their times, and how long the clock
//! runs past the last one → the firings [`super::simulate`] produces, with their reasons. What
//! `POST /v1/triggers/test` and `triggeriq trigger test` share: reading the events (as ingest
//! reads them, each with its `time`, which the simulated clock reads), reading `until`, and
//! the bounds the route holds every tenant to ([`TrialLimits`]): a request costs a bounded
//! amount of CPU however its trigger and events are made.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Span;
use super::simulate::{SimulateLimits, Simulated, TooExpensive, simulate};
use crate::event::{BodyError, Event, EventLimits, IngestBody, MAX_EVENT_DEPTH};
use crate::json::{self, Fields, Problems, type_name};
use crate::pattern::DEFAULT_MATCH_STEPS;
use crate::problem::FieldError;
use crate::trigger::{BodyKind, TriggerBody, TriggerLimits, TriggerSpec};

/// How deeply a trial body may nest: an event may nest [`MAX_EVENT_DEPTH`] levels, and it is
/// an element of `events`, in the body.
pub const MAX_TRIAL_DEPTH: usize = MAX_EVENT_DEPTH + 2;

/// Bounds on one trial; the route's come from [`TrialLimits::default`].
#[derive(Debug, Clone)]
pub struct TrialLimits {
    /// Most events in one trial (1,000).
    pub max_events: usize,
    /// Longest `until` (30 days, the longest window or timer a condition may have).
    pub max_until: Duration,
    /// What the simulation may spend: 1,000 firings, and test-pattern's allowance of steps for
    /// matching the pattern, over all the events together.
    pub simulate: SimulateLimits,
    /// Limits on each event, as ingest's defaults.
    pub events: EventLimits,
}

impl Default for TrialLimits {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_until: Duration::from_secs(30 * 24 * 3600),
            simulate: SimulateLimits {
                max_firings: 1000,
                max_match_steps: DEFAULT_MATCH_STEPS,
            },
            events: EventLimits::default(),
        }
    }
}

/// A trial, read and valid.
#[derive(Debug, Clone)]
pub struct Trial {
    pub spec: TriggerSpec,
    /// In arrival order.
    pub events: Vec<Event>,
    /// How long the clock runs past the last event.
    pub until: Duration,
}

impl Trial {
    /// Reads `{"trigger": {...}, "events": [...], "until": "10m"}`: the trigger as
    /// `POST /v1/triggers` takes it (held to `triggers`), every problem with its path
    /// (`$.trigger.condition.count`, `$.events[3].time`, `$.until`).
    pub fn parse(
        body: &Value,
        triggers: &TriggerLimits,
        limits: &TrialLimits,
    ) -> Result<Self, Vec<FieldError>> {
        let mut problems = Problems::default();
        let Some(mut fields) = Fields::of(body, "$", &mut problems) else {
            return Err(problems.0);
        };
        let spec = fields.required("trigger", &mut problems).and_then(|value| {
            TriggerBody::parse(value, BodyKind::Create, triggers)
                .map(|body| body.spec)
                .map_err(|errors| {
                    for e in errors {
                        problems.push(json::reroot("$.trigger", &e.path), e.message);
                    }
                })
                .ok()
        });
        let events = match fields.required("events", &mut problems) {
            // Refused before any is read: reading them is the work the limit bounds.
            Some(Value::Array(items)) if items.len() > limits.max_events => {
                problems.push(
                    "$.events",
                    format!(
                        "must hold at most {} events, not {}",
                        limits.max_events,
                        items.len()
                    ),
                );
                None
            }
            Some(Value::Array(items)) => {
                let raws = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (json::index("$.events", i), item.to_string()));
                read_events(raws, &limits.events)
                    .map_err(|errors| problems.0.extend(errors))
                    .ok()
            }
            Some(other) => {
                problems.push(
                    "$.events",
                    format!("must be an array of events, not {}", type_name(other)),
                );
                None
            }
            None => None,
        };
        let until = match fields.opt_str("until", &mut problems) {
            None => Some(Duration::ZERO),
            Some(raw) => parse_until(raw, limits.max_until)
                .map_err(|m| problems.push("$.until", m))
                .ok(),
        };
        fields.finish(&mut problems);
        match (spec, events, until) {
            (Some(spec), Some(events), Some(until)) if problems.is_empty() => Ok(Self {
                spec,
                events,
                until,
            }),
            _ => Err(problems.0),
        }
    }

    /// Runs the trigger over the events on the simulated clock, within `limits`.
    pub fn run(&self, limits: SimulateLimits) -> Result<Simulated, TooExpensive> {
        simulate(
            &self.spec.pattern,
            &self.spec.condition,
            self.spec.cooldown.map(|c| c.as_duration()),
            &self.events,
            self.until,
            limits,
        )
    }
}

/// Reads `until`: a duration from `0s` to `max`, in whole milliseconds.
pub fn parse_until(raw: &str, max: Duration) -> Result<Duration, String> {
    Span::parse(raw.trim(), Duration::ZERO, max).map(Span::as_duration)
}

/// Reads the events of a trial, in order, each given as `(where it is, its JSON text)`: where
/// is the path every problem of that event is put under (`$.events[3]`, `line 4: $`). Answers
/// every event, or every problem of every event.
pub fn read_events<S: AsRef<str>>(
    raws: impl IntoIterator<Item = (String, S)>,
    limits: &EventLimits,
) -> Result<Vec<Event>, Vec<FieldError>> {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (at, raw) in raws {
        match read_event(raw.as_ref(), &at, limits) {
            Ok(event) => events.push(event),
            Err(problems) => errors.extend(problems),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// Reads one event of a trial from its JSON text, as ingest reads one event, except that
/// `time` is required: ingest takes the receipt time for an event without one, and a trial
/// has no receipt.
pub fn read_event(raw: &str, at: &str, limits: &EventLimits) -> Result<Event, Vec<FieldError>> {
    read_one(raw, at, limits, None)
}

/// Reads one event from its JSON text exactly as ingest reads one, `now` standing for the
/// time of an event without one: for events whose pattern alone is matched (the example
/// events of a trigger draft), where no clock reads the time.
pub fn read_event_as_ingest(
    raw: &str,
    at: &str,
    limits: &EventLimits,
    now: DateTime<Utc>,
) -> Result<Event, Vec<FieldError>> {
    read_one(raw, at, limits, Some(now))
}

/// [`read_event`] when `now` is `None` (the time is required), else
/// [`read_event_as_ingest`].
fn read_one(
    raw: &str,
    at: &str,
    limits: &EventLimits,
    now: Option<DateTime<Utc>>,
) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    if now.is_none()
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(raw)
        && map.get("time").is_none_or(Value::is_null)
    {
        errors.push(FieldError::new(
            json::reroot(at, "$.time"),
            "is required: the simulated clock reads it",
        ));
    }
    let under = |e: FieldError| FieldError::new(json::reroot(at, &e.path), e.message);
    // Without `now`, ingest's stands for the time of an event without one, which is refused
    // above.
    let now = now.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    match IngestBody::parse(raw.as_bytes(), limits, now) {
        Ok(body) if !body.batch => {
            for item in body.items {
                match item.parsed {
                    Ok(event) if errors.is_empty() => return Ok(event),
                    Ok(_) => {}
                    Err(rejected) => errors.extend(rejected.errors.into_iter().map(under)),
                }
            }
        }
        Ok(_) => errors.push(FieldError::new(at, "must be one event, not a batch")),
        Err(BodyError::Malformed(detail)) => {
            errors.push(FieldError::new(at, format!("is not JSON ({detail})")));
        }
        Err(BodyError::Invalid(problems) | BodyError::EventsTooLarge(problems)) => {
            errors.extend(problems.into_iter().map(under));
        }
    }
    if errors.is_empty() {
        // A single body always holds its one item; this is only for the type.
        errors.push(FieldError::new(at, "must be an event"));
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(events: Value) -> Value {
        json!({
            "trigger": {"name": "t", "pattern": {"type": ["t"]},
                        "actions": [{"url": "https://hooks.example.com/a"}]},
            "events": events,
        })
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    fn parse(body: &Value) -> Result<Trial, Vec<FieldError>> {
        Trial::parse(body, &TriggerLimits::default(), &TrialLimits::default())
    }

    #[test]
    fn every_event_needs_its_time_and_problems_are_put_under_its_path() {
        let got = parse(&body(json!([
            {"id": "a", "type": "t", "time": "2026-04-01T09:00:00Z"},
            {"id": "b", "type": "t"},
            {"id": "c", "type": "t", "time": null, "source": 5},
            "not an event",
            {"events": [{"type": "t", "time": "2026-04-01T09:00:00Z"}]},
        ])))
        .expect_err("invalid events");
        assert_eq!(
            paths(&got),
            [
                "$.events[1].time",
                "$.events[2].time",
                "$.events[2].source",
                "$.events[3]",
                "$.events[4].time",
                "$.events[4]",
            ],
            "{got:?}"
        );
    }

    #[test]
    fn a_trial_reads_its_trigger_events_and_until() {
        let mut sent = body(json!([{"id": "a", "type": "t", "time": "2026-04-01T09:00:00Z"}]));
        sent["until"] = json!("1h 30m");
        let trial = parse(&sent).expect("valid");
        assert_eq!(trial.events.len(), 1);
        assert_eq!(trial.events[0].id.as_str(), "a");
        assert_eq!(trial.until, Duration::from_secs(5400));
        let without = parse(&body(json!([]))).expect("valid");
        assert_eq!(without.until, Duration::ZERO);
    }

    #[test]
    fn the_trigger_until_and_the_number_of_events_are_held_to_their_limits() {
        let mut sent = body(json!([]));
        sent["trigger"]["condition"] = json!({"kind": "absence", "every": "10s"});
        sent["until"] = json!("31d");
        sent["extra"] = json!(1);
        let got = parse(&sent).expect_err("invalid");
        assert_eq!(
            paths(&got),
            ["$.trigger.condition.every", "$.until", "$.extra"]
        );
        let event = json!({"type": "t", "time": "2026-04-01T09:00:00Z"});
        let many = parse(&body(Value::Array(vec![event; 1001]))).expect_err("too many");
        assert_eq!(paths(&many), ["$.events"]);
        assert!(many[0].message.contains("at most 1000"), "{many:?}");
    }

    #[test]
    fn a_line_of_the_cli_is_read_the_same_way() {
        let got = read_events(
            [
                ("line 1: $".to_owned(), r#"{"type": "t"}"#),
                ("line 2: $".to_owned(), "{"),
            ],
            &EventLimits::default(),
        )
        .expect_err("invalid");
        assert_eq!(paths(&got), ["line 1: $.time", "line 2: $"], "{got:?}");
    }
}
