//! Conditions: when a trigger whose pattern matched actually fires.
//!
//! `every` fires on each matching event (subject to the cooldown). `threshold` counts the
//! matching events of one group (`group_by`) over a sliding window of event time and fires when
//! the count, the sum of a field or the number of distinct values of a field reaches its mark
//! ([`threshold`]). Conditions are read from request bodies with [`Condition::parse`], which
//! reports every problem with its JSON path; the stored form is the same JSON a client sends,
//! read back through the same parser.
//!
//! Nothing here does I/O or reads a clock: the window logic takes event times as arguments, so
//! tests run hours of event time in microseconds and the offline `triggeriq trigger test` runs
//! the very code evaluate-events runs.

pub mod calendar;
pub mod path;
pub mod sequence;
pub mod simulate;
pub mod then_not;
pub mod threshold;
pub mod timed;
pub mod trial;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pattern::PatternLimits;

use crate::json::{Fields, Problems, type_name};
pub use path::{FieldPath, GroupBy, GroupKey};
pub use sequence::Sequence;
pub use threshold::{Measure, Threshold};
pub use timed::{
    Absence, Arrival, Debounce, Deliver, Expected, Seen, Step, Timed, TimerFiring, TimerState,
};

/// Bounds on conditions; configurable per deployment like the other trigger limits.
#[derive(Debug, Clone)]
pub struct ConditionLimits {
    /// Shortest `within` (1 second).
    pub min_window: Duration,
    /// Longest `within` (30 days).
    pub max_window: Duration,
    /// Shortest `quiet`, `max_wait` and `every` (1 minute: evaluate-timers runs every minute;
    /// the local stack lowers it so tests can run on seconds).
    pub min_timer: Duration,
    /// Limits on each of a sequence's step patterns (those of the trigger's pattern).
    pub pattern: PatternLimits,
}

impl Default for ConditionLimits {
    fn default() -> Self {
        Self {
            min_window: Duration::from_secs(1),
            max_window: Duration::from_secs(30 * 24 * 3600),
            min_timer: Duration::from_secs(60),
            pattern: PatternLimits::default(),
        }
    }
}

/// When a matching event makes the trigger fire. Stored as the JSON a client sends
/// (`{"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.subject"]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Condition {
    /// Every matching event fires (subject to the cooldown).
    Every,
    /// Enough matching events of one group within a sliding window of event time.
    Threshold(Threshold),
    /// One event per step, in order of event time, within a span.
    Sequence(Sequence),
    /// Once per burst of a group's events, when the burst is over.
    Debounce(Debounce),
    /// When a group that has been seen stops sending (and when it comes back).
    Absence(Absence),
}

impl Condition {
    /// Every condition kind, as `kind` names it: the list an unknown kind's problem offers
    /// and the model's guide for drafting a trigger (`crate::ai::draft`) teaches.
    pub const KINDS: &'static [&'static str] =
        &["every", "threshold", "sequence", "debounce", "absence"];

    /// Reads a condition from a request body at `path`, reporting every problem.
    pub fn parse(
        value: &Value,
        path: &str,
        limits: &ConditionLimits,
        problems: &mut Problems,
    ) -> Option<Self> {
        let mut fields = Fields::of(value, path, problems)?;
        let kind = match fields.required("kind", problems) {
            Some(Value::String(kind)) => Some(kind.as_str()),
            Some(other) => {
                problems.push(
                    fields.path_of("kind"),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
            None => None,
        };
        let condition = match kind {
            Some("every") => Some(Condition::Every),
            Some("threshold") => {
                Threshold::parse(&mut fields, limits, problems).map(Condition::Threshold)
            }
            Some("sequence") => {
                Sequence::parse(&mut fields, limits, problems).map(Condition::Sequence)
            }
            Some("debounce") => {
                Debounce::parse(&mut fields, limits, problems).map(Condition::Debounce)
            }
            Some("absence") => {
                Absence::parse(&mut fields, limits, problems).map(Condition::Absence)
            }
            Some(other) => {
                problems.push(
                    fields.path_of("kind"),
                    format!(
                        "unknown condition kind {other:?}; supported: {}",
                        Self::KINDS.join(", ")
                    ),
                );
                None
            }
            None => None,
        };
        fields.finish(problems);
        condition
    }

    /// What matching the condition costs beyond the trigger's pattern (a sequence's steps),
    /// counted in the tenant's pattern budget.
    pub fn cost(&self) -> usize {
        match self {
            Self::Sequence(q) => q.cost(),
            _ => 0,
        }
    }

    /// The event patterns the condition matches events against beyond the trigger's (a
    /// sequence's steps and its `then_not`).
    pub fn patterns(&self) -> impl Iterator<Item = &crate::pattern::Pattern> {
        let sequence = match self {
            Self::Sequence(q) => Some(q),
            _ => None,
        };
        sequence
            .into_iter()
            .flat_map(|q| q.steps.iter().chain(&q.then_not))
    }

    /// The condition's name, as in its `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Every => "every",
            Self::Threshold(_) => "threshold",
            Self::Sequence(_) => "sequence",
            Self::Debounce(_) => "debounce",
            Self::Absence(_) => "absence",
        }
    }

    /// The condition as a deadline condition, if it is one.
    pub fn timed(&self) -> Option<Timed<'_>> {
        match self {
            Self::Debounce(d) => Some(Timed::Debounce(d)),
            Self::Absence(a) => Some(Timed::Absence(a)),
            Self::Sequence(q) => q.then_not.as_ref().map(|b| Timed::ThenNot(q, b)),
            Self::Every | Self::Threshold(_) => None,
        }
    }
}

/// A condition kept in a window of event time ([`threshold::Window`]): what evaluate-events
/// counts in DynamoDB and fires once per crossing.
#[derive(Debug, Clone, Copy)]
pub enum Windowed<'a> {
    Threshold(&'a Threshold),
    Sequence(&'a Sequence),
}

impl Condition {
    /// The condition as a windowed one, if it is one.
    pub fn windowed(&self) -> Option<Windowed<'_>> {
        match self {
            Self::Threshold(t) => Some(Windowed::Threshold(t)),
            Self::Sequence(q) if q.then_not.is_none() => Some(Windowed::Sequence(q)),
            _ => None,
        }
    }
}

impl Windowed<'_> {
    pub fn group_by(&self) -> &GroupBy {
        match self {
            Self::Threshold(t) => &t.group_by,
            Self::Sequence(q) => &q.group_by,
        }
    }

    pub fn within(&self) -> Span {
        match self {
            Self::Threshold(t) => t.within,
            Self::Sequence(q) => q.within,
        }
    }

    /// What `event` (JSON) adds to its group's window; `None`: it takes no part.
    pub fn sample(&self, event: &Value) -> Option<threshold::Sample> {
        match self {
            Self::Threshold(t) => t.sample(event),
            Self::Sequence(q) => q.sample(event),
        }
    }

    /// The span (or chain) that `event` completes, if any.
    pub fn crossing(
        &self,
        window: &threshold::Window,
        event: &crate::ids::EventId,
    ) -> Option<threshold::Crossing> {
        match self {
            Self::Threshold(t) => t.crossing(window, event),
            Self::Sequence(q) => q.crossing(window, event),
        }
    }

    /// Why the trigger fired.
    pub fn reason(
        &self,
        group: &GroupKey,
        crossing: &threshold::Crossing,
        window: &threshold::Window,
    ) -> Value {
        match self {
            Self::Threshold(t) => t.reason(group, crossing),
            Self::Sequence(q) => q.reason(group, crossing, window),
        }
    }

    /// How far the group is, for an event at `at_ms` that did not fire.
    pub fn progress(&self, window: &threshold::Window, at_ms: i64) -> Value {
        match self {
            Self::Threshold(t) => t.progress(window, at_ms),
            Self::Sequence(q) => q.progress(window),
        }
    }
}

impl TryFrom<Value> for Condition {
    type Error = String;

    /// The stored form, read with the widest limits (a condition stored under a deployment's
    /// limits stays readable if they are later narrowed).
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let limits = ConditionLimits {
            min_window: Duration::from_millis(1),
            max_window: Duration::from_secs(366 * 24 * 3600),
            min_timer: Duration::from_millis(1),
            pattern: PatternLimits::stored(),
        };
        match Self::parse(&value, "$.condition", &limits, &mut problems) {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems
                .0
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

impl From<Condition> for Value {
    fn from(condition: Condition) -> Self {
        let mut map = Map::new();
        map.insert("kind".into(), condition.kind().into());
        match &condition {
            Condition::Every => {}
            Condition::Threshold(t) => t.write(&mut map),
            Condition::Sequence(q) => q.write(&mut map),
            Condition::Debounce(d) => d.write(&mut map),
            Condition::Absence(a) => a.write(&mut map),
        }
        Value::Object(map)
    }
}

/// A length of event time written as text (`"90s"`, `"1h 30m"`, `"7d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(Duration);

impl Span {
    /// Reads `raw` as a whole number of seconds (or milliseconds) within `[min, max]`.
    pub fn parse(raw: &str, min: Duration, max: Duration) -> Result<Self, String> {
        let duration = humantime::parse_duration(raw)
            .map_err(|e| format!("is not a duration like \"90s\", \"10m\" or \"1h\" ({e})"))?;
        if duration.subsec_nanos() % 1_000_000 != 0 {
            return Err("must be a whole number of milliseconds".into());
        }
        if duration < min || duration > max {
            return Err(format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(Self(duration))
    }

    /// No time at all (an absence's default `grace`).
    pub const ZERO: Span = Span(Duration::ZERO);

    /// `duration` as a span, to be written as text ([`Span::to_text`]): a limit in a message.
    pub fn from_duration(duration: Duration) -> Self {
        Self(duration)
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.as_millis())
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// Whole milliseconds (every span is a whole number of them, and far below `i64::MAX`).
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// The span as it reads (`"1h"`, `"1h 30m"`, `"1d"`, `"250ms"`; `"0s"`), in the units a
    /// client writes, so a condition reads back as it was sent.
    pub fn to_text(self) -> String {
        let mut ms = self.as_millis();
        if ms == 0 {
            return "0s".into();
        }
        let mut parts = Vec::new();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= size {
                parts.push(format!("{}{unit}", ms / size));
                ms %= size;
            }
        }
        parts.join(" ")
    }
}

/// Reads a required duration field of a condition.
fn span_field<'a>(
    fields: &mut Fields<'a>,
    key: &'a str,
    limits: &ConditionLimits,
    problems: &mut Problems,
) -> Option<Span> {
    let path = fields.path_of(key);
    match fields.required(key, problems)? {
        Value::String(raw) => Span::parse(raw, limits.min_window, limits.max_window)
            .map_err(|m| problems.push(path, m))
            .ok(),
        other => {
            problems.push(
                path,
                format!(
                    "must be a duration string like \"1h\", not {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// Reads an optional `group_by` field (absent or `[]`: one group for the whole trigger).
fn group_by_field<'a>(fields: &mut Fields<'a>, problems: &mut Problems) -> Option<GroupBy> {
    let path = fields.path_of("group_by");
    match fields.get("group_by") {
        None | Some(Value::Null) => Some(GroupBy::default()),
        Some(value) => GroupBy::parse(value, &path, problems),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// Asserts that each condition is refused with a problem at its path.
    pub(crate) fn assert_refused_at(cases: &[(Value, &str)]) {
        for (value, path) in cases {
            let mut problems = Problems::default();
            let parsed = Condition::parse(
                value,
                "$.condition",
                &ConditionLimits::default(),
                &mut problems,
            );
            assert!(
                parsed.is_none() || !problems.is_empty(),
                "{value} should be refused"
            );
            assert!(
                problems.0.iter().any(|p| p.path == *path),
                "{value}: expected {path}, got {:?}",
                problems.0
            );
        }
    }

    fn parse(value: Value) -> Result<Condition, Vec<(String, String)>> {
        let mut problems = Problems::default();
        let parsed = Condition::parse(
            &value,
            "$.condition",
            &ConditionLimits::default(),
            &mut problems,
        );
        match parsed {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems
                .0
                .into_iter()
                .map(|p| (p.path, p.message))
                .collect()),
        }
    }

    #[test]
    fn every_is_the_plain_condition() {
        assert_eq!(parse(json!({"kind": "every"})), Ok(Condition::Every));
    }

    #[test]
    fn the_stored_form_is_the_form_a_client_sends() {
        let sent = json!({"kind": "threshold", "count": 3, "within": "1h",
                          "group_by": ["$.data.customer.id"]});
        let condition = parse(sent.clone()).expect("valid");
        let stored = serde_json::to_value(&condition).expect("serialises");
        assert_eq!(stored, sent);
        let back: Condition = serde_json::from_value(stored).expect("reads back");
        assert_eq!(back, condition);
    }

    #[test]
    fn an_unknown_kind_names_the_supported_ones() {
        let problems = parse(json!({"kind": "sometimes"})).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "$.condition.kind");
        assert!(
            problems[0]
                .1
                .contains("every, threshold, sequence, debounce, absence"),
            "{problems:?}"
        );
    }

    #[test]
    fn spans_are_whole_milliseconds_within_bounds() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(86_400));
        assert_eq!(
            Span::parse("1h 30m", min, max).map(|s| s.as_millis()),
            Ok(5_400_000)
        );
        assert_eq!(
            Span::parse("90s", min, max).map(Span::to_text),
            Ok("1m 30s".into())
        );
        assert!(Span::parse("0s", min, max).is_err());
        assert!(Span::parse("2d", min, max).is_err());
        assert!(Span::parse("1500us", min, max).is_err());
        assert!(Span::parse("soon", min, max).is_err());
    }
}
