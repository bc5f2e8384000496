//! Conditions that fire on a deadline: `debounce` (fire once the group has been quiet),
//! `absence` (fire when a group that has been seen stops sending) and a `sequence` with
//! `then_not` (fire when a step's event is not followed by another in time; [`super::then_not`]).
//!
//! ```json
//! {"kind": "debounce", "quiet": "5m", "max_wait": "1h", "deliver": "last", "group_by": ["$.subject"]}
//! {"kind": "absence", "every": "10m", "grace": "2m", "group_by": ["$.data.device_id"]}
//! ```
//!
//! A group's [`TimerState`] changes on each matching event ([`TimerState::on_event`]) and on
//! its deadline ([`TimerState::on_due`]); both take the time as an argument. evaluate-events
//! calls the first (with the event's receipt time), evaluate-timers the second (with its run's
//! time), and the offline `triggeriq trigger test` both, on a simulated clock. Deadlines run on
//! the clock that checks them, so these conditions use receipt time, not event time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use chrono_tz::Tz;

use super::calendar::{self, CronSpec, Quiet};
use super::path::FieldPath;
use super::then_not::Marked;
use super::{ConditionLimits, GroupBy, GroupKey, Sequence, Span, group_by_field};
use crate::ids::EventId;
use crate::json::{Fields, Problems, type_name};

/// Event ids a `debounce` with `deliver: all` keeps and reports at most.
pub const MAX_DEBOUNCE_EVENTS: usize = 100;

/// Which event a debounce firing carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    First,
    Last,
    All,
}

/// `debounce`: once per burst, when the group has been quiet for `quiet` (or `max_wait` after
/// the burst's first event at the latest).
#[derive(Debug, Clone, PartialEq)]
pub struct Debounce {
    pub quiet: Span,
    pub max_wait: Option<Span>,
    pub deliver: Deliver,
    pub group_by: GroupBy,
}

/// `absence`: each group that has been seen must send a matching event at least every
/// `every` (or at least once per interval of a cron `schedule`, in `timezone`); one that misses
/// it by more than `grace` fires once (`down`), and once more when it comes back
/// (`recovered`, unless `recovered: false`). A deadline that falls in a `quiet` window moves to
/// the window's end plus `grace`.
#[derive(Debug, Clone, PartialEq)]
pub struct Absence {
    pub expected: Expected,
    pub grace: Span,
    pub recovered: bool,
    pub quiet: Vec<Quiet>,
    /// The zone of `schedule` and of the quiet windows (UTC unless given).
    pub timezone: Tz,
    pub group_by: GroupBy,
}

/// How often an `absence` expects its groups.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// At least one event every span.
    Every(Span),
    /// At least one event in each interval between two occurrences of the schedule (boxed: a
    /// parsed cron is large beside a span).
    Schedule(Box<CronSpec>),
}

/// An event as a timer keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub id: EventId,
    pub at: DateTime<Utc>,
}

/// A matching event as a deadline condition meets it: its id and receipt time (the clock
/// deadlines run on), its own `time`, and its JSON (a `then_not` asks which pattern it matches).
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub seen: Seen,
    pub time: DateTime<Utc>,
    pub document: &'a Value,
}

/// One group's state under a deadline condition (stored as JSON with its deadline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerState {
    /// A burst in progress.
    Debounce {
        first: Seen,
        last: Seen,
        count: u64,
        /// The burst's event ids, oldest first (at most [`MAX_DEBOUNCE_EVENTS`]).
        ids: Vec<EventId>,
    },
    /// A group that has been seen; `down` once its absence fired.
    Absence { last: Seen, down: bool },
    /// A `then_not`'s open waits (oldest first) and the group's latest closing event.
    ThenNot {
        open: Vec<Marked>,
        closer: Option<Marked>,
    },
}

/// A firing a timer decided: the event it is recorded on, what kind of firing it is (part of
/// the firing's identity, so a group's `down` and `recovered` on one event are two firings),
/// and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerFiring {
    pub event_id: EventId,
    pub occasion: &'static str,
    pub reason: Value,
}

/// What an event or a deadline did to a group's timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The group's state afterwards; `None`: nothing to keep.
    pub state: Option<TimerState>,
    /// When the group next needs looking at; `None`: never, until an event.
    pub due: Option<DateTime<Utc>>,
    pub fire: Option<TimerFiring>,
}

/// A deadline condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Timed<'a> {
    Debounce(&'a Debounce),
    Absence(&'a Absence),
    /// A `sequence` with `then_not` (the pattern).
    ThenNot(&'a Sequence, &'a crate::pattern::Pattern),
}

impl Timed<'_> {
    pub fn group_by(&self) -> &GroupBy {
        match self {
            Self::Debounce(d) => &d.group_by,
            Self::Absence(a) => &a.group_by,
            Self::ThenNot(q, _) => &q.group_by,
        }
    }

    /// The group's state after `arrival`. `state` is the stored one (`None` when the group
    /// has none, or it belonged to another kind of condition).
    pub fn on_event(
        &self,
        state: Option<TimerState>,
        arrival: &Arrival<'_>,
        group: &GroupKey,
    ) -> Step {
        let seen = arrival.seen.clone();
        match (self, state) {
            (Self::ThenNot(q, then_not), state) => {
                q.not_followed_on_event(then_not, state, arrival)
            }
            (
                Self::Debounce(d),
                Some(TimerState::Debounce {
                    first,
                    last,
                    count,
                    mut ids,
                }),
            ) => {
                // The later of the two is the burst's last (events may arrive out of order).
                let last = if seen.at >= last.at {
                    seen.clone()
                } else {
                    last
                };
                if ids.len() < MAX_DEBOUNCE_EVENTS && !ids.contains(&seen.id) {
                    ids.push(seen.id);
                }
                let state = TimerState::Debounce {
                    first,
                    last,
                    count: count + 1,
                    ids,
                };
                Step {
                    due: d.due(&state),
                    state: Some(state),
                    fire: None,
                }
            }
            (Self::Debounce(d), _) => {
                let state = TimerState::Debounce {
                    first: seen.clone(),
                    last: seen.clone(),
                    count: 1,
                    ids: vec![seen.id],
                };
                Step {
                    due: d.due(&state),
                    state: Some(state),
                    fire: None,
                }
            }
            (Self::Absence(a), Some(TimerState::Absence { last, down })) => {
                let newest = if seen.at >= last.at {
                    seen.clone()
                } else {
                    last.clone()
                };
                let fire = (down && a.recovered).then(|| TimerFiring {
                    event_id: seen.id.clone(),
                    occasion: "recovered",
                    reason: json!({
                        "condition": "absence",
                        "state": "recovered",
                        "group": group.values(),
                        "expected": a.expected_json(),
                        "grace": a.grace.to_text(),
                        "last_seen": last.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "last_event_id": last.id,
                        "event_ids": [seen.id],
                    }),
                });
                Step {
                    due: a.due_after(newest.at),
                    state: Some(TimerState::Absence {
                        last: newest,
                        down: false,
                    }),
                    fire,
                }
            }
            (Self::Absence(a), _) => Step {
                due: a.due_after(seen.at),
                state: Some(TimerState::Absence {
                    last: seen,
                    down: false,
                }),
                fire: None,
            },
        }
    }

    /// The group's state when its deadline has come (`now` at or after it).
    pub fn on_due(&self, state: TimerState, now: DateTime<Utc>, group: &GroupKey) -> Step {
        match (self, state) {
            (Self::ThenNot(q, _), state) => q.not_followed_on_due(state, now, group),
            (Self::Debounce(d), state @ TimerState::Debounce { .. }) => {
                let Some(due) = d.due(&state) else {
                    return Step {
                        state: None,
                        due: None,
                        fire: None,
                    };
                };
                if due > now {
                    return Step {
                        state: Some(state),
                        due: Some(due),
                        fire: None,
                    };
                }
                let TimerState::Debounce {
                    first,
                    last,
                    count,
                    ids,
                } = state
                else {
                    return Step {
                        state: None,
                        due: None,
                        fire: None,
                    };
                };
                let quiet_end = last.at + d.quiet.as_chrono();
                let why = if quiet_end <= due {
                    "quiet"
                } else {
                    "max_wait"
                };
                let event_id = match d.deliver {
                    Deliver::First => first.id.clone(),
                    Deliver::Last | Deliver::All => last.id.clone(),
                };
                let listed: Vec<&EventId> = match d.deliver {
                    Deliver::All => ids.iter().collect(),
                    Deliver::First => vec![&first.id],
                    Deliver::Last => vec![&last.id],
                };
                Step {
                    state: None,
                    due: None,
                    fire: Some(TimerFiring {
                        event_id,
                        occasion: "",
                        reason: json!({
                            "condition": "debounce",
                            "group": group.values(),
                            "because": why,
                            "quiet": d.quiet.to_text(),
                            "max_wait": d.max_wait.map(Span::to_text),
                            "first_at": millis(first.at),
                            "last_at": millis(last.at),
                            "event_count": count,
                            "event_ids": listed,
                        }),
                    }),
                }
            }
            (Self::Absence(a), TimerState::Absence { last, down: false }) => {
                let due = a.due_after(last.at);
                if due.is_none_or(|due| due > now) {
                    return Step {
                        state: Some(TimerState::Absence { last, down: false }),
                        due,
                        fire: None,
                    };
                }
                Step {
                    fire: Some(TimerFiring {
                        event_id: last.id.clone(),
                        occasion: "down",
                        reason: json!({
                            "condition": "absence",
                            "state": "down",
                            "group": group.values(),
                            "expected": a.expected_json(),
                            "grace": a.grace.to_text(),
                            "last_seen": millis(last.at),
                            "missed_since": a.missed_since(last.at).map(millis),
                            "event_ids": [last.id],
                        }),
                    }),
                    state: Some(TimerState::Absence { last, down: true }),
                    due: None,
                }
            }
            // Down already, or a state of another kind (the trigger changed): nothing due.
            (_, state @ TimerState::Absence { down: true, .. }) => Step {
                state: Some(state),
                due: None,
                fire: None,
            },
            _ => Step {
                state: None,
                due: None,
                fire: None,
            },
        }
    }
}

pub(super) fn millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Debounce {
    fn due(&self, state: &TimerState) -> Option<DateTime<Utc>> {
        let TimerState::Debounce { first, last, .. } = state else {
            return None;
        };
        let quiet_end = last.at + self.quiet.as_chrono();
        Some(match self.max_wait {
            Some(max) => quiet_end.min(first.at + max.as_chrono()),
            None => quiet_end,
        })
    }

    pub(super) fn parse<'a>(
        fields: &mut Fields<'a>,
        limits: &ConditionLimits,
        problems: &mut Problems,
    ) -> Option<Self> {
        let quiet = timer_span(fields, "quiet", limits, problems, true);
        let max_wait = timer_span(fields, "max_wait", limits, problems, false);
        let deliver = match fields.get("deliver") {
            None | Some(Value::Null) => Some(Deliver::Last),
            Some(Value::String(s)) if s == "first" => Some(Deliver::First),
            Some(Value::String(s)) if s == "last" => Some(Deliver::Last),
            Some(Value::String(s)) if s == "all" => Some(Deliver::All),
            Some(other) => {
                problems.push(
                    fields.path_of("deliver"),
                    format!("must be \"first\", \"last\" or \"all\", not {other}"),
                );
                None
            }
        };
        let group_by = group_by_field(fields, problems);
        let quiet = quiet??;
        let max_wait = max_wait?;
        if let Some(max) = max_wait
            && max < quiet
        {
            problems.push(
                fields.path_of("max_wait"),
                "must be at least `quiet` (it caps how long a burst may delay the firing)",
            );
            return None;
        }
        Some(Self {
            quiet,
            max_wait,
            deliver: deliver?,
            group_by: group_by?,
        })
    }

    pub(super) fn write(&self, map: &mut Map<String, Value>) {
        map.insert("quiet".into(), json!(self.quiet.to_text()));
        if let Some(max) = self.max_wait {
            map.insert("max_wait".into(), json!(max.to_text()));
        }
        map.insert("deliver".into(), json!(self.deliver));
        write_group_by(&self.group_by, map);
    }
}

impl Absence {
    /// When a group last seen at `last` is missing: the first moment it should have sent
    /// again (`last` + `every`, or the start of the schedule's next interval).
    fn missed_since(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.expected {
            Expected::Every(every) => Some(last + every.as_chrono()),
            Expected::Schedule(cron) => cron.next_after(last, self.timezone),
        }
    }

    /// The deadline of a group last seen at `last`: the end of the interval after the one it
    /// was seen in, plus grace, moved past quiet windows. `None`: the schedule never comes
    /// round again.
    fn due_after(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let missed = self.missed_since(last)?;
        let end = match &self.expected {
            Expected::Every(_) => missed,
            Expected::Schedule(cron) => cron.next_after(missed, self.timezone)?,
        };
        Some(calendar::outside_quiet(
            &self.quiet,
            end + self.grace.as_chrono(),
            self.grace,
            self.timezone,
        ))
    }

    /// What the group is expected to do, for reasons and progress notes.
    pub fn expected_json(&self) -> Value {
        match &self.expected {
            Expected::Every(every) => json!({"every": every.to_text()}),
            Expected::Schedule(cron) => {
                json!({"schedule": cron.as_str(), "timezone": self.timezone.name()})
            }
        }
    }

    pub(super) fn parse<'a>(
        fields: &mut Fields<'a>,
        limits: &ConditionLimits,
        problems: &mut Problems,
    ) -> Option<Self> {
        let expected = match (fields.get("every"), fields.get("schedule")) {
            (Some(_), Some(_)) => {
                problems.push(
                    fields.path_of("schedule"),
                    "cannot be given with `every`: an absence has one or the other",
                );
                None
            }
            (_, Some(value)) => calendar::cron_value(value, &fields.path_of("schedule"), problems)
                .map(|cron| Expected::Schedule(Box::new(cron))),
            _ => timer_span(fields, "every", limits, problems, true)
                .flatten()
                .map(Expected::Every),
        };
        let timezone = calendar::timezone_field(fields, problems);
        let quiet = calendar::quiet_field(fields, limits, problems);
        let grace = match fields.get("grace") {
            None | Some(Value::Null) => Some(Some(Span::ZERO)),
            Some(_) => timer_span(fields, "grace", limits, problems, false),
        };
        let recovered = match fields.get("recovered") {
            None | Some(Value::Null) => Some(true),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                problems.push(
                    fields.path_of("recovered"),
                    format!("must be a boolean, not {}", type_name(other)),
                );
                None
            }
        };
        let group_by = group_by_field(fields, problems);
        Some(Self {
            expected: expected?,
            grace: grace??,
            recovered: recovered?,
            quiet: quiet?,
            timezone: timezone?,
            group_by: group_by?,
        })
    }

    pub(super) fn write(&self, map: &mut Map<String, Value>) {
        match &self.expected {
            Expected::Every(every) => {
                map.insert("every".into(), json!(every.to_text()));
            }
            Expected::Schedule(cron) => {
                map.insert("schedule".into(), json!(cron.as_str()));
            }
        }
        if self.timezone != Tz::UTC || matches!(self.expected, Expected::Schedule(_)) {
            map.insert("timezone".into(), json!(self.timezone.name()));
        }
        map.insert("grace".into(), json!(self.grace.to_text()));
        map.insert("recovered".into(), json!(self.recovered));
        calendar::write_quiet(&self.quiet, map);
        write_group_by(&self.group_by, map);
    }
}

pub(super) fn write_group_by(group_by: &GroupBy, map: &mut Map<String, Value>) {
    let paths: Vec<&str> = group_by.paths().iter().map(FieldPath::as_str).collect();
    map.insert("group_by".into(), json!(paths));
}

/// A deadline duration: at least [`ConditionLimits::min_timer`] (a `grace` may also be `"0s"`).
/// Outer `None`: a problem was reported; inner `None`: absent and optional.
fn timer_span<'a>(
    fields: &mut Fields<'a>,
    key: &'a str,
    limits: &ConditionLimits,
    problems: &mut Problems,
    required: bool,
) -> Option<Option<Span>> {
    let path = fields.path_of(key);
    let value = if required {
        fields.required(key, problems)
    } else {
        fields.get(key)
    };
    let raw = match value {
        None => return (!required).then_some(None),
        Some(Value::Null) if !required => return Some(None),
        Some(Value::String(raw)) => raw,
        Some(other) => {
            problems.push(
                path,
                format!(
                    "must be a duration string like \"10m\", not {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    let min = if key == "grace" {
        std::time::Duration::ZERO
    } else {
        limits.min_timer
    };
    match Span::parse(raw, min, limits.max_window) {
        Ok(span) => Some(Some(span)),
        Err(m) => {
            problems.push(path, m);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;
    use crate::condition::Condition;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    static NO_DOCUMENT: Value = Value::Null;

    fn seen(id: &str, minutes: i64) -> Arrival<'static> {
        Arrival {
            seen: Seen {
                id: EventId::new(id),
                at: t(minutes),
            },
            time: t(minutes),
            document: &NO_DOCUMENT,
        }
    }

    fn group() -> GroupKey {
        GroupBy::default().key_of(&json!({})).expect("one group")
    }

    fn debounce(value: Value) -> Debounce {
        match serde_json::from_value(value).expect("valid") {
            Condition::Debounce(d) => d,
            other => panic!("{other:?}"),
        }
    }

    fn absence(value: Value) -> Absence {
        match serde_json::from_value(value).expect("valid") {
            Condition::Absence(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_burst_of_errors_fires_once_when_it_is_over() {
        let d = debounce(json!({"kind": "debounce", "quiet": "5m", "deliver": "all"}));
        let timed = Timed::Debounce(&d);
        let mut state = None;
        let mut due = None;
        for (id, m) in [("a", 0), ("b", 2), ("c", 4)] {
            let step = timed.on_event(state, &seen(id, m), &group());
            state = step.state;
            due = step.due;
        }
        assert_eq!(due, Some(t(9)), "five quiet minutes after the last");
        let early = timed.on_due(state.clone().expect("state"), t(8), &group());
        assert!(early.fire.is_none());
        let step = timed.on_due(state.expect("state"), t(9), &group());
        let fire = step.fire.expect("fires");
        assert_eq!(fire.event_id, EventId::new("c"));
        assert_eq!(fire.reason["event_ids"], json!(["a", "b", "c"]));
        assert_eq!(fire.reason["because"], "quiet");
        assert_eq!(step.state, None, "the next burst starts afresh");
    }

    #[test]
    fn a_burst_that_never_stops_fires_at_max_wait_with_its_first_event() {
        let d = debounce(
            json!({"kind": "debounce", "quiet": "5m", "max_wait": "1h", "deliver": "first"}),
        );
        let timed = Timed::Debounce(&d);
        let mut step = timed.on_event(None, &seen("e0", 0), &group());
        for m in 1..=70 {
            if step.due.is_some_and(|due| due <= t(m)) {
                break;
            }
            step = timed.on_event(step.state, &seen(&format!("e{m}"), m), &group());
        }
        assert_eq!(step.due, Some(t(60)));
        let fired = timed
            .on_due(step.state.expect("state"), t(60), &group())
            .fire
            .expect("fires");
        assert_eq!(fired.event_id, EventId::new("e0"));
        assert_eq!(fired.reason["because"], "max_wait");
    }

    #[test]
    fn a_silent_device_fires_once_down_and_once_recovered() {
        let a = absence(json!({"kind": "absence", "every": "10m", "grace": "2m"}));
        let timed = Timed::Absence(&a);
        let step = timed.on_event(None, &seen("hb1", 0), &group());
        assert_eq!(step.due, Some(t(12)));
        let step = timed.on_event(step.state, &seen("hb2", 9), &group());
        assert_eq!(step.due, Some(t(21)));
        assert!(
            timed
                .on_due(step.state.clone().expect("state"), t(20), &group())
                .fire
                .is_none()
        );
        let down = timed.on_due(step.state.expect("state"), t(21), &group());
        let fire = down.fire.expect("down");
        assert_eq!((fire.occasion, fire.event_id.as_str()), ("down", "hb2"));
        assert_eq!(fire.reason["state"], "down");
        assert_eq!(down.due, None, "down once, not every run");
        let again = timed.on_due(down.state.clone().expect("state"), t(40), &group());
        assert!(again.fire.is_none());
        let back = timed.on_event(down.state, &seen("hb3", 45), &group());
        let fire = back.fire.expect("recovered");
        assert_eq!(
            (fire.occasion, fire.event_id.as_str()),
            ("recovered", "hb3")
        );
        assert_eq!(back.due, Some(t(57)));
    }

    #[test]
    fn recovery_can_be_left_unreported() {
        let a = absence(json!({"kind": "absence", "every": "10m", "recovered": false}));
        let timed = Timed::Absence(&a);
        let step = timed.on_event(None, &seen("hb1", 0), &group());
        assert_eq!(step.due, Some(t(10)), "no grace: due after the period");
        let down = timed.on_due(step.state.expect("state"), t(10), &group());
        assert!(down.fire.is_some());
        assert!(
            timed
                .on_event(down.state, &seen("hb2", 30), &group())
                .fire
                .is_none()
        );
    }

    #[test]
    fn a_late_heartbeat_does_not_move_the_deadline_back() {
        let a = absence(json!({"kind": "absence", "every": "10m"}));
        let timed = Timed::Absence(&a);
        let step = timed.on_event(None, &seen("new", 30), &group());
        let step = timed.on_event(step.state, &seen("old", 5), &group());
        assert_eq!(step.due, Some(t(40)));
    }

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, d, h, m, 0).unwrap()
    }

    fn arrival_at(id: &str, at: DateTime<Utc>) -> Arrival<'static> {
        Arrival {
            seen: Seen {
                id: EventId::new(id),
                at,
            },
            time: at,
            document: &NO_DOCUMENT,
        }
    }

    #[test]
    fn a_daily_report_due_each_weekday_morning_in_berlin_fires_when_a_morning_passes_without_one() {
        // 2026-04-01 is a Wednesday; Berlin is UTC+2 in April, so 09:00 there is 07:00 UTC.
        let a = absence(
            json!({"kind": "absence", "schedule": "cron(0 9 * * MON-FRI)",
            "timezone": "Europe/Berlin", "grace": "30m"}),
        );
        let timed = Timed::Absence(&a);
        // Wednesday's report at 08:50 Berlin: Thursday 09:00's interval must see the next one,
        // checked at Thursday 09:30 Berlin.
        let step = timed.on_event(None, &arrival_at("wed", utc(1, 6, 50)), &group());
        assert_eq!(step.due, Some(utc(2, 7, 30)));
        // Thursday's comes at 08:55: the deadline moves to Friday 09:30.
        let step = timed.on_event(step.state, &arrival_at("thu", utc(2, 6, 55)), &group());
        assert_eq!(step.due, Some(utc(3, 7, 30)));
        // Friday's never comes: down at Friday 09:30 Berlin; missed since Thursday 09:00.
        let down = timed.on_due(step.state.expect("state"), utc(3, 7, 30), &group());
        let fire = down.fire.expect("down");
        assert_eq!(fire.reason["missed_since"], "2026-04-02T07:00:00.000Z");
        assert_eq!(
            fire.reason["expected"],
            json!({"schedule": "cron(0 9 * * MON-FRI)", "timezone": "Europe/Berlin"})
        );
        // A report on Friday 10:00 (late) interval Fri 09:00–Mon 09:00: next due Tuesday 09:30.
        let step = timed.on_event(down.state, &arrival_at("fri", utc(3, 8, 0)), &group());
        assert_eq!(step.fire.expect("recovered").occasion, "recovered");
        assert_eq!(step.due, Some(utc(7, 7, 30)));
    }

    #[test]
    fn absence_is_not_reported_in_a_quiet_window_but_after_it_plus_grace() {
        // Heartbeats every 10 minutes; maintenance on Sunday 02:00–04:00 UTC (2026-04-05).
        let a = absence(json!({"kind": "absence", "every": "10m", "grace": "5m",
            "quiet": [{"schedule": "cron(0 2 * * SUN)", "for": "2h"}]}));
        let timed = Timed::Absence(&a);
        let step = timed.on_event(None, &arrival_at("hb", utc(5, 1, 55)), &group());
        assert_eq!(
            step.due,
            Some(utc(5, 4, 5)),
            "02:10 is quiet: 04:00 plus grace"
        );
        let early = timed.on_due(step.state.clone().expect("state"), utc(5, 3, 0), &group());
        assert!(early.fire.is_none());
        assert_eq!(early.due, Some(utc(5, 4, 5)));
        let down = timed.on_due(step.state.expect("state"), utc(5, 4, 5), &group());
        assert_eq!(down.fire.expect("down").occasion, "down");
        // A weekday's deadline is untouched.
        let step = timed.on_event(None, &arrival_at("hb", utc(6, 1, 55)), &group());
        assert_eq!(step.due, Some(utc(6, 2, 10)));
    }

    #[test]
    fn invalid_timers_name_the_field() {
        let cases = [
            (json!({"kind": "debounce"}), "$.condition.quiet"),
            (
                json!({"kind": "debounce", "quiet": "10s"}),
                "$.condition.quiet",
            ),
            (
                json!({"kind": "debounce", "quiet": "5m", "max_wait": "1m"}),
                "$.condition.max_wait",
            ),
            (
                json!({"kind": "debounce", "quiet": "5m", "deliver": "most"}),
                "$.condition.deliver",
            ),
            (
                json!({"kind": "absence", "every": 600}),
                "$.condition.every",
            ),
            (
                json!({"kind": "absence", "every": "10m", "recovered": "yes"}),
                "$.condition.recovered",
            ),
            (
                json!({"kind": "absence", "every": "10m", "grace": "-1m"}),
                "$.condition.grace",
            ),
            (
                json!({"kind": "absence", "every": "10m", "schedule": "cron(0 9 * * *)"}),
                "$.condition.schedule",
            ),
            (
                json!({"kind": "absence", "schedule": "cron(0 9 * *)"}),
                "$.condition.schedule",
            ),
            (
                json!({"kind": "absence", "schedule": "cron(0 9 * * *)", "timezone": "Mars/Olympus"}),
                "$.condition.timezone",
            ),
            (
                json!({"kind": "absence", "every": "10m", "quiet": [{"schedule": "cron(0 2 * * SUN)"}]}),
                "$.condition.quiet[0].for",
            ),
            (
                json!({"kind": "absence", "every": "10m", "quiet": [{"schedule": "cron(0 2 * * SUN)", "for": "4h", "x": 1}]}),
                "$.condition.quiet[0].x",
            ),
            (
                json!({"kind": "absence", "every": "10m", "quiet": [{"schedule": 5, "for": "4h"}]}),
                "$.condition.quiet[0].schedule",
            ),
            (
                json!({"kind": "absence", "every": "10m", "quiet": [{}, {}, {}, {}, {}, {}]}),
                "$.condition.quiet",
            ),
        ];
        crate::condition::tests::assert_refused_at(&cases);
    }

    #[test]
    fn timer_conditions_store_as_sent() {
        for sent in [
            json!({"kind": "debounce", "quiet": "5m", "max_wait": "1h", "deliver": "all", "group_by": ["$.subject"]}),
            json!({"kind": "absence", "every": "10m", "grace": "2m", "recovered": true, "group_by": ["$.data.device"]}),
            json!({"kind": "absence", "schedule": "cron(0 9 * * MON-FRI)", "timezone": "Europe/Berlin",
                   "grace": "30m", "recovered": false,
                   "quiet": [{"schedule": "cron(0 2 * * SUN)", "for": "4h"}], "group_by": []}),
        ] {
            let c: Condition = serde_json::from_value(sent.clone()).expect("valid");
            assert_eq!(serde_json::to_value(&c).expect("json"), sent);
        }
    }
}
