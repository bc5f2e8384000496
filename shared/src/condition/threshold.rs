//! `threshold`: enough matching events of one group within a sliding window of event time.
//!
//! ```json
//! {"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.data.customer.id"]}
//! {"kind": "threshold", "sum": "$.data.amount", "at_least": 500, "within": "1d"}
//! {"kind": "threshold", "distinct": "$.data.ip", "at_least": 5, "within": "10m"}
//! ```
//!
//! # Semantics
//!
//! A group's [`Window`] holds one [`Entry`] per counted event, keyed by event id (so an event
//! seen twice, as when SQS delivers a message again, counts once). Entries are ordered by event
//! time, then id: arrival order does not matter. The condition is met for event `e` when some
//! span of `within` (both ends included) that contains `e` holds enough *live* entries: the
//! count reaches `count`, the sum of the field reaches `at_least`, or the number of distinct
//! values reaches `at_least`. Of such spans, the firing takes the one that ends first, as short
//! as it can be (`count` events exactly; for sum and distinct, the newest events of the span
//! that reach the mark), and consumes its entries: the window starts again, each event counts
//! toward at most one firing, and an event that arrives late still counts with the live events
//! within `within` of it.
//!
//! Only an event inside the crossing span can fire it. Of two evaluations that both see the
//! crossing, the store lets the one whose write comes first fire ([`Window::epoch`] is the
//! compare-and-set token), and the other, reading the window again, finds its event consumed.
//!
//! # Precision
//!
//! Counts are exact up to [`MAX_COUNT`]. Sum and distinct are exact over the newest
//! [`MAX_LIVE_ENTRIES`] live events of a group; a group with more events than that inside one
//! window is measured over those newest ones only (so it may fire later than an exact count
//! would, never earlier).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::path::{FieldPath, GroupKey, parse_path};
use super::{ConditionLimits, GroupBy, Span, group_by_field, span_field};
use crate::ids::EventId;
use crate::json::{Fields, Problems, type_name};

/// Largest `count` (and distinct `at_least`): exact counting keeps one entry per event.
pub const MAX_COUNT: u64 = 1000;
/// Live entries a group's window measures at most (see the module's precision note).
pub const MAX_LIVE_ENTRIES: usize = 1000;
/// How long past its window an entry is kept so that a redelivered event is still known.
pub const REDELIVERY_HORIZON_MS: i64 = 3_600_000;
/// Event ids listed in a firing's reason; `event_count` says how many there were.
pub const MAX_REASON_EVENT_IDS: usize = 100;
/// Distinct values longer than this (as JSON text) are kept as their SHA-256 digest.
const MAX_DISTINCT_VALUE_BYTES: usize = 64;
/// A window's estimated stored size above which its oldest entries are dropped (DynamoDB
/// items hold at most 400 KB).
pub const MAX_WINDOW_BYTES: usize = 300 * 1024;
/// Firing reasons kept in a window (on the entries of the events that fired), for
/// redeliveries of those events.
const KEPT_REASONS: usize = 3;

/// What a threshold measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// The number of events reaches `count`.
    Count(u64),
    /// The sum of a numeric field reaches `at_least` (events without a number there are not
    /// counted).
    Sum { field: FieldPath, at_least: f64 },
    /// The number of distinct values of a field reaches `at_least` (events without the field,
    /// or with `null` there, are not counted).
    Distinct { field: FieldPath, at_least: u64 },
}

/// A `threshold` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub measure: Measure,
    pub within: Span,
    pub group_by: GroupBy,
}

impl Threshold {
    pub(super) fn parse<'a>(
        fields: &mut Fields<'a>,
        limits: &ConditionLimits,
        problems: &mut Problems,
    ) -> Option<Self> {
        let within = span_field(fields, "within", limits, problems);
        let group_by = group_by_field(fields, problems);
        let count = fields.get("count").map(|v| (fields.path_of("count"), v));
        let sum = fields.get("sum").map(|v| (fields.path_of("sum"), v));
        let distinct = fields
            .get("distinct")
            .map(|v| (fields.path_of("distinct"), v));
        let at_least = fields
            .get("at_least")
            .map(|v| (fields.path_of("at_least"), v));
        let measure = match (count, sum, distinct) {
            (Some((path, value)), None, None) => {
                if let Some((at, _)) = at_least {
                    problems.push(at, "goes with `sum` or `distinct`; `count` is its own mark");
                }
                whole(value, &path, problems).map(Measure::Count)
            }
            (None, Some((path, value)), None) => {
                let field = parse_path(value, &path, problems);
                let mark = required_mark(at_least, fields, problems).and_then(|(at, v)| {
                    match v.as_f64().filter(|f| f.is_finite()) {
                        Some(f) => Some(f),
                        None => {
                            problems.push(at, format!("must be a number, not {}", type_name(v)));
                            None
                        }
                    }
                });
                field
                    .zip(mark)
                    .map(|(field, at_least)| Measure::Sum { field, at_least })
            }
            (None, None, Some((path, value))) => {
                let field = parse_path(value, &path, problems);
                let mark = required_mark(at_least, fields, problems)
                    .and_then(|(at, v)| whole(v, &at, problems));
                field
                    .zip(mark)
                    .map(|(field, at_least)| Measure::Distinct { field, at_least })
            }
            (None, None, None) => {
                problems.push(
                    fields.path(),
                    "a threshold needs one of `count`, `sum` (with `at_least`) or `distinct` (with `at_least`)",
                );
                None
            }
            _ => {
                problems.push(
                    fields.path(),
                    "a threshold has exactly one of `count`, `sum` and `distinct`",
                );
                None
            }
        };
        Some(Self {
            measure: measure?,
            within: within?,
            group_by: group_by?,
        })
    }

    /// The stored (and shown) form's fields, beside `kind`.
    pub(super) fn write(&self, map: &mut Map<String, Value>) {
        match &self.measure {
            Measure::Count(count) => {
                map.insert("count".into(), json!(count));
            }
            Measure::Sum { field, at_least } => {
                map.insert("sum".into(), json!(field.as_str()));
                map.insert("at_least".into(), json!(at_least));
            }
            Measure::Distinct { field, at_least } => {
                map.insert("distinct".into(), json!(field.as_str()));
                map.insert("at_least".into(), json!(at_least));
            }
        }
        map.insert("within".into(), json!(self.within.to_text()));
        let paths: Vec<&str> = self
            .group_by
            .paths()
            .iter()
            .map(FieldPath::as_str)
            .collect();
        map.insert("group_by".into(), json!(paths));
    }

    /// What `event` contributes to the measure; `None` when it does not count (a sum's field
    /// that is not a number, a distinct field that is missing or `null`).
    pub fn sample(&self, event: &Value) -> Option<Sample> {
        match &self.measure {
            Measure::Count(_) => Some(Sample::One),
            Measure::Sum { field, .. } => field
                .lookup(event)?
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Sample::Number),
            Measure::Distinct { field, .. } => {
                let value = field.lookup(event).filter(|v| !v.is_null())?;
                let text = value.to_string();
                Some(Sample::Value(if text.len() > MAX_DISTINCT_VALUE_BYTES {
                    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
                } else {
                    text
                }))
            }
        }
    }

    /// The span that `event` completes, if the condition is met for it now: of the spans of
    /// live entries that contain it and fit in `within`, the one that ends first, as short as
    /// it can be (a firing consumes only what it needed: `count` events exactly, or the
    /// newest events of the span whose sum or distinct values reach the mark).
    pub fn crossing(&self, window: &Window, event: &EventId) -> Option<Crossing> {
        let live = window.live();
        let idx = live.iter().position(|(id, _)| *id == event)?;
        let within = self.within.as_millis();
        for j in idx..live.len() {
            let end = live[j].1.at_ms;
            let earliest = live.partition_point(|(_, e)| e.at_ms < end.saturating_sub(within));
            if earliest > idx {
                break;
            }
            let start = match &self.measure {
                Measure::Count(n) => {
                    let n = usize::try_from(*n).unwrap_or(usize::MAX);
                    (j + 1)
                        .checked_sub(n)
                        .filter(|s| (earliest..=idx).contains(s))
                }
                _ => (earliest..=idx)
                    .rev()
                    .find(|s| self.measure.of(&live[*s..=j]).meets(&self.measure)),
            };
            if let Some(start) = start {
                let span = &live[start..=j];
                return Some(Crossing {
                    events: span.iter().map(|(id, _)| (*id).clone()).collect(),
                    from_ms: live[start].1.at_ms,
                    to_ms: end,
                    reached: self.measure.of(span),
                });
            }
        }
        None
    }

    /// How far the group is toward firing, measured over the `within` that ends at `at_ms`.
    pub fn progress(&self, window: &Window, at_ms: i64) -> Value {
        let live = window.live();
        let from = at_ms.saturating_sub(self.within.as_millis());
        let span: Vec<_> = live
            .into_iter()
            .filter(|(_, e)| e.at_ms >= from && e.at_ms <= at_ms)
            .collect();
        json!({
            "reached": self.measure.of(&span).to_json(),
            "of": self.measure.mark(),
            "within": self.within.to_text(),
        })
    }

    /// Why the trigger fired: recorded with the firing and sent in its webhook.
    pub fn reason(&self, group: &GroupKey, crossing: &Crossing) -> Value {
        let mut reason = json!({
            "condition": "threshold",
            "measure": self.measure.name(),
            "group": group.values(),
            "reached": crossing.reached.to_json(),
            "at_least": self.measure.mark(),
            "within": self.within.to_text(),
            "window": {
                "from": millis_text(crossing.from_ms),
                "to": millis_text(crossing.to_ms),
            },
            "event_ids": crossing.events.iter().take(MAX_REASON_EVENT_IDS).map(EventId::as_str).collect::<Vec<_>>(),
            "event_count": crossing.events.len(),
        });
        if let (Some(map), Measure::Sum { field, .. } | Measure::Distinct { field, .. }) =
            (reason.as_object_mut(), &self.measure)
        {
            map.insert("field".into(), json!(field.as_str()));
        }
        reason
    }
}

fn required_mark<'a>(
    at_least: Option<(String, &'a Value)>,
    fields: &Fields<'a>,
    problems: &mut Problems,
) -> Option<(String, &'a Value)> {
    if at_least.is_none() {
        problems.push(
            fields.path_of("at_least"),
            "is required with `sum` and `distinct`",
        );
    }
    at_least
}

/// A whole number in `1..=MAX_COUNT`.
fn whole(value: &Value, path: &str, problems: &mut Problems) -> Option<u64> {
    match value.as_u64() {
        Some(n) if (1..=MAX_COUNT).contains(&n) => Some(n),
        _ => {
            problems.push(
                path,
                format!("must be a whole number from 1 to {MAX_COUNT}, not {value}"),
            );
            None
        }
    }
}

pub(super) fn millis_text(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Measure {
    fn name(&self) -> &'static str {
        match self {
            Self::Count(_) => "count",
            Self::Sum { .. } => "sum",
            Self::Distinct { .. } => "distinct",
        }
    }

    fn mark(&self) -> Value {
        match self {
            Self::Count(n) | Self::Distinct { at_least: n, .. } => json!(n),
            Self::Sum { at_least, .. } => json!(at_least),
        }
    }

    fn of(&self, span: &[(&EventId, &Entry)]) -> Reached {
        match self {
            Self::Count(_) => Reached::Count(span.len()),
            Self::Sum { .. } => Reached::Sum(
                span.iter()
                    .map(|(_, e)| match &e.sample {
                        Sample::Number(n) => *n,
                        _ => 0.0,
                    })
                    .sum(),
            ),
            Self::Distinct { .. } => Reached::Distinct(
                span.iter()
                    .filter_map(|(_, e)| match &e.sample {
                        Sample::Value(v) => Some(v.as_str()),
                        _ => None,
                    })
                    .collect::<HashSet<_>>()
                    .len(),
            ),
        }
    }
}

/// What one event adds to a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// One more event (`count`).
    One,
    /// The value of the summed field.
    Number(f64),
    /// The distinct field's value as JSON text (or its digest, when long).
    Value(String),
    /// The sequence steps the event matches (bit `i` for step `i`).
    Steps(u32),
}

/// What the measure came to over a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reached {
    Count(usize),
    Sum(f64),
    Distinct(usize),
}

impl Reached {
    fn meets(&self, measure: &Measure) -> bool {
        match (self, measure) {
            (Self::Count(n), Measure::Count(mark)) => *n as u64 >= *mark,
            (Self::Sum(s), Measure::Sum { at_least, .. }) => s >= at_least,
            (Self::Distinct(n), Measure::Distinct { at_least, .. }) => *n as u64 >= *at_least,
            _ => false,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Self::Count(n) | Self::Distinct(n) => json!(n),
            Self::Sum(s) => json!(s),
        }
    }
}

/// One counted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Event time, in milliseconds since the epoch.
    pub at_ms: i64,
    pub sample: Sample,
    /// Set on the entry of the event that fired: the firing's reason, so that a redelivery of
    /// that event records the same firing.
    pub reason: Option<Value>,
    /// Counted in a firing already.
    pub consumed: bool,
}

/// A span of live entries that meets the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    /// The span's events, oldest first.
    pub events: Vec<EventId>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub reached: Reached,
}

/// One group's state: its counted events and what the last firing consumed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Bumped by every firing: a store writes a firing only if the epoch it read is current.
    pub epoch: u64,
    pub entries: BTreeMap<EventId, Entry>,
}

impl Window {
    /// Entries no firing consumed, oldest first (at most the newest [`MAX_LIVE_ENTRIES`]).
    pub(super) fn live(&self) -> Vec<(&EventId, &Entry)> {
        let mut live: Vec<(&EventId, &Entry)> =
            self.entries.iter().filter(|(_, e)| !e.consumed).collect();
        live.sort_by(|a, b| (a.1.at_ms, a.0).cmp(&(b.1.at_ms, b.0)));
        let skip = live.len().saturating_sub(MAX_LIVE_ENTRIES);
        live.split_off(skip)
    }

    /// Counts `entry` for `id`; `false` (and no change) when the event was already counted.
    pub fn observe(&mut self, id: EventId, entry: Entry) -> bool {
        if self.entries.contains_key(&id) {
            return false;
        }
        self.entries.insert(id, entry);
        true
    }

    /// The reason `id` fired with, if it did.
    pub fn fired_reason(&self, id: &EventId) -> Option<&Value> {
        self.entries.get(id)?.reason.as_ref()
    }

    /// Records a firing by `firer` of `crossing`, as a store's conditional write does.
    pub fn fire(&mut self, crossing: &Crossing, firer: &EventId, reason: Value) {
        self.epoch += 1;
        for id in &crossing.events {
            if let Some(entry) = self.entries.get_mut(id) {
                entry.consumed = true;
            }
        }
        if let Some(entry) = self.entries.get_mut(firer) {
            entry.reason = Some(reason);
        }
    }

    /// Entries the window no longer needs, given the newest event time it holds: entries
    /// older than `within` plus [`REDELIVERY_HORIZON_MS`] before the newest (no span with a
    /// newer event can hold them), and the oldest entries past [`MAX_WINDOW_BYTES`] of
    /// estimated size; never the newest few that carry a firing's reason.
    pub fn prunable(&self, within: Span) -> Vec<EventId> {
        let Some(newest) = self.entries.values().map(|e| e.at_ms).max() else {
            return Vec::new();
        };
        let horizon = newest
            .saturating_sub(within.as_millis())
            .saturating_sub(REDELIVERY_HORIZON_MS);
        let mut by_age: Vec<(&EventId, &Entry)> = self.entries.iter().collect();
        by_age.sort_by(|a, b| (b.1.at_ms, b.0).cmp(&(a.1.at_ms, a.0)));
        let mut reasons_kept = 0;
        let mut bytes = 0;
        let mut out = Vec::new();
        for (id, entry) in by_age {
            let keep_reason = entry.reason.is_some() && reasons_kept < KEPT_REASONS;
            reasons_kept += usize::from(keep_reason);
            bytes += estimated_bytes(id, entry);
            let stale = entry.at_ms < horizon || bytes > MAX_WINDOW_BYTES;
            if stale && !keep_reason {
                out.push(id.clone());
            }
        }
        out
    }
}

/// An entry's size as a store keeps it, roughly (name, id, time, sample, reason).
fn estimated_bytes(id: &EventId, entry: &Entry) -> usize {
    let sample = match &entry.sample {
        Sample::One => 0,
        Sample::Number(_) => 22,
        Sample::Value(v) => v.len() + 2,
        Sample::Steps(_) => 12,
    };
    let reason = entry.reason.as_ref().map_or(0, |r| r.to_string().len() + 2);
    40 + id.as_str().len() + sample + reason
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::condition::Condition;

    const MINUTE: i64 = 60_000;

    fn threshold(value: Value) -> Threshold {
        match serde_json::from_value::<Condition>(value).expect("valid condition") {
            Condition::Threshold(t) => t,
            other => panic!("not a threshold: {other:?}"),
        }
    }

    /// Feeds `(id, minute, data)` events into one group in the order given; answers the
    /// firings as (firer, the span's event ids).
    fn run(t: &Threshold, events: &[(&str, i64, Value)]) -> Vec<(String, Vec<String>)> {
        let mut window = Window::default();
        let mut fired = Vec::new();
        for (id, minute, data) in events {
            let event = json!({"data": data});
            let Some(sample) = t.sample(&event) else {
                continue;
            };
            let id = EventId::new(*id);
            window.observe(
                id.clone(),
                Entry {
                    at_ms: minute * MINUTE,
                    sample,
                    reason: None,
                    consumed: false,
                },
            );
            if let Some(crossing) = t.crossing(&window, &id) {
                let ids = crossing
                    .events
                    .iter()
                    .map(|e| e.as_str().to_owned())
                    .collect();
                window.fire(&crossing, &id, json!({}));
                fired.push((id.as_str().to_owned(), ids));
            }
        }
        fired
    }

    fn count3() -> Threshold {
        threshold(json!({"kind": "threshold", "count": 3, "within": "1h"}))
    }

    #[test]
    fn payment_failed_three_times_within_an_hour_fires_once_on_the_third() {
        let fired = run(
            &count3(),
            &[
                ("a", 0, json!({})),
                ("b", 20, json!({})),
                ("c", 40, json!({})),
                ("d", 50, json!({})),
            ],
        );
        assert_eq!(
            fired,
            [("c".to_owned(), vec!["a".to_owned(), "b".into(), "c".into()])]
        );
    }

    #[test]
    fn after_firing_the_window_starts_again() {
        let events: Vec<(String, i64)> = (0..7).map(|i| (format!("e{i}"), i * 5)).collect();
        let events: Vec<(&str, i64, Value)> = events
            .iter()
            .map(|(id, m)| (id.as_str(), *m, json!({})))
            .collect();
        let firers: Vec<String> = run(&count3(), &events)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(firers, ["e2", "e5"]);
    }

    #[test]
    fn the_window_includes_both_ends_and_nothing_beyond() {
        let exact = run(
            &count3(),
            &[
                ("a", 0, json!({})),
                ("b", 30, json!({})),
                ("c", 60, json!({})),
            ],
        );
        assert_eq!(exact.len(), 1, "an hour apart, both ends included");
        let late = threshold(json!({"kind": "threshold", "count": 3, "within": "59m 59s"}));
        let none = run(
            &late,
            &[
                ("a", 0, json!({})),
                ("b", 30, json!({})),
                ("c", 60, json!({})),
            ],
        );
        assert!(none.is_empty());
    }

    #[test]
    fn events_count_by_their_time_not_their_arrival() {
        // c (minute 30) arrives first, then a (minute 0), then b (minute 70): a..b spans 70
        // minutes, but c and b are within an hour, and a, c are too; no three are.
        let fired = run(
            &count3(),
            &[
                ("c", 30, json!({})),
                ("a", 0, json!({})),
                ("b", 70, json!({})),
            ],
        );
        assert!(fired.is_empty(), "{fired:?}");
        // A late event that falls between the others completes the span.
        let fired = run(
            &count3(),
            &[
                ("c", 30, json!({})),
                ("b", 70, json!({})),
                ("late", 50, json!({})),
            ],
        );
        assert_eq!(
            fired,
            [(
                "late".to_owned(),
                vec!["c".to_owned(), "late".into(), "b".into()]
            )]
        );
    }

    #[test]
    fn the_same_event_twice_counts_once() {
        let fired = run(
            &count3(),
            &[
                ("a", 0, json!({})),
                ("a", 0, json!({})),
                ("b", 1, json!({})),
                ("b", 1, json!({})),
            ],
        );
        assert!(fired.is_empty());
    }

    #[test]
    fn a_late_event_counts_with_the_live_events_near_it() {
        let fired = run(
            &count3(),
            &[
                ("a", 10, json!({})),
                ("b", 11, json!({})),
                ("c", 12, json!({})),
                ("late1", 1, json!({})),
                ("late2", 2, json!({})),
                ("d", 13, json!({})),
                ("e", 14, json!({})),
            ],
        );
        let spans: Vec<Vec<String>> = fired.into_iter().map(|(_, span)| span).collect();
        assert_eq!(spans, [vec!["a", "b", "c"], vec!["late1", "late2", "d"]]);
    }

    #[test]
    fn a_sum_fires_when_the_amounts_in_a_day_reach_the_mark() {
        let t = threshold(
            json!({"kind": "threshold", "sum": "$.data.amount", "at_least": 500, "within": "1d"}),
        );
        let fired = run(
            &t,
            &[
                ("a", 0, json!({"amount": 200})),
                ("skip", 1, json!({"amount": "300"})),
                ("b", 200, json!({"amount": 250.5})),
                ("c", 25 * 60, json!({"amount": 100})),
                ("d", 26 * 60, json!({"amount": 400})),
            ],
        );
        // a + b = 450.5; by c, a has left the day; c + d = 500 is all the firing needs.
        assert_eq!(fired, [("d".to_owned(), vec!["c".to_owned(), "d".into()])]);
    }

    #[test]
    fn distinct_counts_values_not_events() {
        let t = threshold(
            json!({"kind": "threshold", "distinct": "$.data.ip", "at_least": 3, "within": "10m"}),
        );
        let fired = run(
            &t,
            &[
                ("a", 0, json!({"ip": "10.0.0.1"})),
                ("b", 1, json!({"ip": "10.0.0.1"})),
                ("c", 2, json!({"ip": "10.0.0.2"})),
                ("n", 3, json!({"ip": null})),
                ("d", 4, json!({"ip": 167772161})),
            ],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].0, "d");
    }

    #[test]
    fn a_thousand_events_are_counted_exactly() {
        let t = threshold(json!({"kind": "threshold", "count": 1000, "within": "1d"}));
        let mut window = Window::default();
        let mut fired_at = None;
        for i in 0..1500 {
            let id = EventId::new(format!("e{i}"));
            window.observe(
                id.clone(),
                Entry {
                    at_ms: i * 1000,
                    sample: Sample::One,
                    reason: None,
                    consumed: false,
                },
            );
            if let Some(c) = t.crossing(&window, &id) {
                assert_eq!(c.reached, Reached::Count(1000));
                fired_at.get_or_insert(i);
                window.fire(&c, &id, json!({}));
            }
        }
        assert_eq!(fired_at, Some(999));
    }

    #[test]
    fn the_reason_says_what_was_reached_and_by_which_events() {
        let t = threshold(
            json!({"kind": "threshold", "count": 2, "within": "1h", "group_by": ["$.data.customer"]}),
        );
        let group = t
            .group_by
            .key_of(&json!({"data": {"customer": "c-9"}}))
            .expect("grouped");
        let crossing = Crossing {
            events: vec![EventId::new("a"), EventId::new("b")],
            from_ms: 0,
            to_ms: 90_000,
            reached: Reached::Count(2),
        };
        let reason = t.reason(&group, &crossing);
        assert_eq!(reason["condition"], "threshold");
        assert_eq!(reason["group"], json!(["c-9"]));
        assert_eq!(reason["reached"], 2);
        assert_eq!(reason["event_ids"], json!(["a", "b"]));
        assert_eq!(reason["window"]["to"], "1970-01-01T00:01:30.000Z");
    }

    #[test]
    fn progress_says_how_far_the_group_is() {
        let t = count3();
        let mut window = Window::default();
        for (id, m) in [("a", 0), ("b", 30)] {
            window.observe(
                EventId::new(id),
                Entry {
                    at_ms: m * MINUTE,
                    sample: Sample::One,
                    reason: None,
                    consumed: false,
                },
            );
        }
        assert_eq!(
            t.progress(&window, 30 * MINUTE),
            json!({"reached": 2, "of": 3, "within": "1h"})
        );
    }

    #[test]
    fn pruning_keeps_what_a_redelivery_or_a_later_span_needs() {
        let t = count3();
        let mut window = Window::default();
        for (id, m) in [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 200)] {
            let id = EventId::new(id);
            window.observe(
                id.clone(),
                Entry {
                    at_ms: m * MINUTE,
                    sample: Sample::One,
                    reason: None,
                    consumed: false,
                },
            );
            if let Some(c) = t.crossing(&window, &id) {
                window.fire(&c, &id, json!({"n": 1}));
            }
        }
        let mut pruned: Vec<String> = window
            .prunable(t.within)
            .iter()
            .map(|i| i.as_str().to_owned())
            .collect();
        pruned.sort();
        // Minute 200 is newest: a..d are more than 1h (window) + 1h (redelivery) older, but c
        // fired and keeps its reason for a redelivery of c.
        assert_eq!(pruned, ["a", "b", "d"]);
    }

    #[test]
    fn invalid_thresholds_name_the_field() {
        let cases = [
            (json!({"kind": "threshold", "within": "1h"}), "$.condition"),
            (
                json!({"kind": "threshold", "count": 0, "within": "1h"}),
                "$.condition.count",
            ),
            (
                json!({"kind": "threshold", "count": 1001, "within": "1h"}),
                "$.condition.count",
            ),
            (
                json!({"kind": "threshold", "count": 2.5, "within": "1h"}),
                "$.condition.count",
            ),
            (
                json!({"kind": "threshold", "count": 3}),
                "$.condition.within",
            ),
            (
                json!({"kind": "threshold", "count": 3, "within": "1h", "at_least": 2}),
                "$.condition.at_least",
            ),
            (
                json!({"kind": "threshold", "sum": "$.data.x", "within": "1h"}),
                "$.condition.at_least",
            ),
            (
                json!({"kind": "threshold", "sum": "data.x", "at_least": 1, "within": "1h"}),
                "$.condition.sum",
            ),
            (
                json!({"kind": "threshold", "distinct": "$.d", "at_least": "5", "within": "1h"}),
                "$.condition.at_least",
            ),
            (
                json!({"kind": "threshold", "count": 3, "sum": "$.a", "within": "1h"}),
                "$.condition",
            ),
            (
                json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": "$.a"}),
                "$.condition.group_by",
            ),
            (
                json!({"kind": "threshold", "count": 3, "within": "1h", "per": "x"}),
                "$.condition.per",
            ),
        ];
        crate::condition::tests::assert_refused_at(&cases);
    }
}
