//! `sequence`: one event per step, in order of event time, for one group, within `within`.
//!
//! ```json
//! {"kind": "sequence", "steps": [{"type": ["trial.started"]}, {"type": ["usage.limit_hit"]}],
//!  "within": "7d", "group_by": ["$.data.account_id"]}
//! ```
//!
//! Each step is an event pattern; the trigger's own pattern is the filter every step's events
//! pass first. A group's events that match any step are kept in the same [`Window`] as a
//! threshold's (one entry per event, with the steps it matches), so counting an event and
//! firing once are the threshold's DynamoDB writes. Order is by event `time`, not arrival: a
//! step's event that arrives before the previous step's still completes the sequence.
//!
//! The sequence completes for event `e` when there is a chain of live events, one per step,
//! whose times do not decrease from step to step, that includes `e`, and whose first and last
//! are at most `within` apart. Of the chains around `e`, the tightest is taken: for the steps
//! before `e`'s, the latest fitting events; for those after, the earliest. The firing consumes
//! the chain's events; other events stay for later chains.

use serde_json::{Map, Value, json};

use super::path::GroupKey;
use super::threshold::{Crossing, Entry, Reached, Sample, Window};
use super::{ConditionLimits, GroupBy, Span, group_by_field, span_field};
use crate::ids::EventId;
use crate::json::{self, Fields, Problems, type_name};
use crate::pattern::Pattern;

/// Fewest and most steps.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 5;

/// A `sequence` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub steps: Vec<Pattern>,
    /// With one step: "the step, not followed by this within `within`" — a deadline condition
    /// ([`super::then_not`]) instead of a windowed one.
    pub then_not: Option<Pattern>,
    pub within: Span,
    pub group_by: GroupBy,
}

impl Sequence {
    pub(super) fn parse<'a>(
        fields: &mut Fields<'a>,
        limits: &ConditionLimits,
        problems: &mut Problems,
    ) -> Option<Self> {
        let within = span_field(fields, "within", limits, problems);
        let group_by = group_by_field(fields, problems);
        let then_not = match fields.get("then_not") {
            None | Some(Value::Null) => Some(None),
            Some(value) => {
                let at = fields.path_of("then_not");
                Pattern::from_value(value, &limits.pattern)
                    .map(Some)
                    .map_err(|invalid| {
                        for e in invalid.errors {
                            problems.push(json::reroot(&at, &e.path), e.message);
                        }
                    })
                    .ok()
            }
        };
        // "A, then not B" waits on a deadline, which evaluate-timers checks every minute.
        let within = match (&then_not, within) {
            (Some(Some(_)), Some(w)) if w.as_duration() < limits.min_timer => {
                problems.push(
                    fields.path_of("within"),
                    format!(
                        "must be at least {} with `then_not` (deadlines are checked on a schedule)",
                        humantime::format_duration(limits.min_timer)
                    ),
                );
                None
            }
            (_, within) => within,
        };
        // "A, then not B": one step; otherwise two to five.
        // (`None`: `then_not` was given but is invalid, which also asks for one step.)
        let (min, max) = match then_not {
            Some(None) => (MIN_STEPS, MAX_STEPS),
            _ => (1, 1),
        };
        let path = fields.path_of("steps");
        let steps = match fields.required("steps", problems) {
            Some(Value::Array(items)) if (min..=max).contains(&items.len()) => {
                let before = problems.0.len();
                let steps: Vec<Pattern> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        let at = json::index(&path, i);
                        Pattern::from_value(item, &limits.pattern)
                            .map_err(|invalid| {
                                for e in invalid.errors {
                                    problems.push(json::reroot(&at, &e.path), e.message);
                                }
                            })
                            .ok()
                    })
                    .collect();
                (problems.0.len() == before).then_some(steps)
            }
            Some(Value::Array(_)) if max == 1 => {
                problems.push(
                    path,
                    "must have exactly one step with `then_not` (\"this, not followed by that\")",
                );
                None
            }
            Some(Value::Array(_)) => {
                problems.push(
                    path,
                    format!("must have {MIN_STEPS} to {MAX_STEPS} steps (event patterns)"),
                );
                None
            }
            Some(other) => {
                problems.push(
                    path,
                    format!(
                        "must be an array of event patterns, not {}",
                        type_name(other)
                    ),
                );
                None
            }
            None => None,
        };
        Some(Self {
            steps: steps?,
            then_not: then_not?,
            within: within?,
            group_by: group_by?,
        })
    }

    pub(super) fn write(&self, map: &mut Map<String, Value>) {
        let steps: Vec<&Value> = self.steps.iter().map(Pattern::as_value).collect();
        map.insert("steps".into(), json!(steps));
        if let Some(then_not) = &self.then_not {
            map.insert("then_not".into(), then_not.as_value().clone());
        }
        map.insert("within".into(), json!(self.within.to_text()));
        super::timed::write_group_by(&self.group_by, map);
    }

    /// The cost of matching the steps (added to the trigger's pattern cost in the tenant's
    /// budget).
    pub fn cost(&self) -> usize {
        self.steps
            .iter()
            .chain(&self.then_not)
            .map(Pattern::cost)
            .fold(0, usize::saturating_add)
    }

    /// The steps `event` matches; `None` when it matches none.
    pub fn sample(&self, event: &Value) -> Option<Sample> {
        let mask = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, p)| p.matches_value(event))
            .fold(0u32, |mask, (i, _)| mask | (1 << i));
        (mask != 0).then_some(Sample::Steps(mask))
    }

    /// The tightest chain around `event` that completes the sequence, if there is one.
    pub fn crossing(&self, window: &Window, event: &EventId) -> Option<Crossing> {
        let live = window.live();
        let idx = live.iter().position(|(id, _)| *id == event)?;
        let own = steps_of(live[idx].1);
        let n = self.steps.len();
        (0..n)
            .filter(|k| own & (1 << k) != 0)
            .find_map(|k| self.chain_through(&live, idx, k))
            .and_then(|chain| {
                let first = live[*chain.first()?].1.at_ms;
                let last = live[*chain.last()?].1.at_ms;
                (last - first <= self.within.as_millis()).then(|| Crossing {
                    events: chain.iter().map(|i| live[*i].0.clone()).collect(),
                    from_ms: first,
                    to_ms: last,
                    reached: Reached::Count(n),
                })
            })
    }

    /// Indices into `live` of a chain with `live[idx]` at step `k`: latest events before,
    /// earliest after.
    fn chain_through(
        &self,
        live: &[(&EventId, &Entry)],
        idx: usize,
        k: usize,
    ) -> Option<Vec<usize>> {
        let n = self.steps.len();
        let mut chain = vec![usize::MAX; n];
        chain[k] = idx;
        for step in (0..k).rev() {
            let bound = live[chain[step + 1]].1.at_ms;
            chain[step] = (0..live.len()).rev().find(|&i| {
                live[i].1.at_ms <= bound
                    && steps_of(live[i].1) & (1 << step) != 0
                    && !chain.contains(&i)
            })?;
        }
        for step in k + 1..n {
            let bound = live[chain[step - 1]].1.at_ms;
            chain[step] = (0..live.len()).find(|&i| {
                live[i].1.at_ms >= bound
                    && steps_of(live[i].1) & (1 << step) != 0
                    && !chain.contains(&i)
            })?;
        }
        Some(chain)
    }

    /// How far the group is: the steps that have a live event.
    pub fn progress(&self, window: &Window) -> Value {
        let seen = window
            .live()
            .iter()
            .fold(0u32, |mask, (_, e)| mask | steps_of(e));
        let done: Vec<usize> = (0..self.steps.len())
            .filter(|k| seen & (1 << k) != 0)
            .map(|k| k + 1)
            .collect();
        json!({"steps_seen": done, "of": self.steps.len(), "within": self.within.to_text()})
    }

    /// Why the trigger fired: the event of each step.
    pub fn reason(&self, group: &GroupKey, crossing: &Crossing, window: &Window) -> Value {
        let steps: Vec<Value> = crossing
            .events
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let at = window.entries.get(id).map(|e| e.at_ms).unwrap_or_default();
                json!({"step": i + 1, "event_id": id, "time": super::threshold::millis_text(at)})
            })
            .collect();
        json!({
            "condition": "sequence",
            "group": group.values(),
            "within": self.within.to_text(),
            "steps": steps,
            "window": {
                "from": super::threshold::millis_text(crossing.from_ms),
                "to": super::threshold::millis_text(crossing.to_ms),
            },
            "event_ids": crossing.events,
            "event_count": crossing.events.len(),
        })
    }
}

fn steps_of(entry: &Entry) -> u32 {
    match entry.sample {
        Sample::Steps(mask) => mask,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::condition::Condition;

    const HOUR: i64 = 3_600_000;

    fn sequence(value: Value) -> Sequence {
        match serde_json::from_value(value).expect("valid") {
            Condition::Sequence(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn trial_then_limit() -> Sequence {
        sequence(json!({"kind": "sequence", "within": "7d",
            "steps": [{"type": ["trial.started"]}, {"type": ["usage.limit_hit"]}]}))
    }

    /// Feeds `(id, type, hour)` in the order given; answers each firing's chain.
    fn run(s: &Sequence, events: &[(&str, &str, i64)]) -> Vec<Vec<String>> {
        let mut window = Window::default();
        let mut fired = Vec::new();
        for (id, kind, hour) in events {
            let Some(sample) = s.sample(&json!({"type": kind})) else {
                continue;
            };
            let id = EventId::new(*id);
            window.observe(
                id.clone(),
                Entry {
                    at_ms: hour * HOUR,
                    sample,
                    reason: None,
                    consumed: false,
                },
            );
            if let Some(c) = s.crossing(&window, &id) {
                fired.push(c.events.iter().map(|e| e.as_str().to_owned()).collect());
                window.fire(&c, &id, json!({}));
            }
        }
        fired
    }

    #[test]
    fn trial_started_and_then_the_usage_limit_within_seven_days_fires() {
        let fired = run(
            &trial_then_limit(),
            &[
                ("t", "trial.started", 0),
                ("other", "x", 1),
                ("u", "usage.limit_hit", 50),
            ],
        );
        assert_eq!(fired, [vec!["t", "u"]]);
    }

    #[test]
    fn order_is_by_event_time_not_arrival() {
        // The limit event arrives first but happened after the trial started.
        let fired = run(
            &trial_then_limit(),
            &[("u", "usage.limit_hit", 50), ("t", "trial.started", 0)],
        );
        assert_eq!(fired, [vec!["t", "u"]]);
        // Steps in the wrong order of time never complete.
        let none = run(
            &trial_then_limit(),
            &[("u", "usage.limit_hit", 0), ("t", "trial.started", 50)],
        );
        assert!(none.is_empty());
    }

    #[test]
    fn a_chain_longer_than_within_does_not_fire() {
        let none = run(
            &trial_then_limit(),
            &[
                ("t", "trial.started", 0),
                ("u", "usage.limit_hit", 24 * 7 + 1),
            ],
        );
        assert!(none.is_empty());
        let edge = run(
            &trial_then_limit(),
            &[("t", "trial.started", 0), ("u", "usage.limit_hit", 24 * 7)],
        );
        assert_eq!(edge.len(), 1, "both ends included");
    }

    #[test]
    fn each_event_serves_one_completion() {
        let fired = run(
            &trial_then_limit(),
            &[
                ("t1", "trial.started", 0),
                ("u1", "usage.limit_hit", 1),
                ("u2", "usage.limit_hit", 2),
                ("t2", "trial.started", 3),
                ("u3", "usage.limit_hit", 4),
            ],
        );
        assert_eq!(fired, [vec!["t1", "u1"], vec!["t2", "u3"]]);
    }

    #[test]
    fn three_steps_take_the_tightest_chain_around_the_last_arrival() {
        let s = sequence(json!({"kind": "sequence", "within": "1d",
            "steps": [{"type": ["a"]}, {"type": ["b"]}, {"type": ["c"]}]}));
        let fired = run(
            &s,
            &[
                ("a1", "a", 0),
                ("a2", "a", 2),
                ("c1", "c", 5),
                ("b1", "b", 3),
            ],
        );
        assert_eq!(fired, [vec!["a2", "b1", "c1"]]);
    }

    #[test]
    fn invalid_sequences_name_the_field() {
        let cases = [
            (
                json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}]}),
                "$.condition.steps",
            ),
            (
                json!({"kind": "sequence", "within": "1h", "steps": "a"}),
                "$.condition.steps",
            ),
            (
                json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}, {"type": "b"}]}),
                "$.condition.steps[1].type",
            ),
            (
                json!({"kind": "sequence", "steps": [{"type": ["a"]}, {"type": ["b"]}]}),
                "$.condition.within",
            ),
            (
                json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}, {"type": ["b"]}], "then_not": {"type": ["c"]}}),
                "$.condition.steps",
            ),
            (
                json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}], "then_not": {"type": "c"}}),
                "$.condition.then_not.type",
            ),
            (
                json!({"kind": "sequence", "within": "10s", "steps": [{"type": ["a"]}], "then_not": {"type": ["c"]}}),
                "$.condition.within",
            ),
        ];
        crate::condition::tests::assert_refused_at(&cases);
    }

    #[test]
    fn a_sequence_is_stored_as_sent() {
        let sent = json!({"kind": "sequence", "steps": [{"type": ["a"]}, {"type": ["b"]}], "within": "7d", "group_by": ["$.data.account"]});
        let c: Condition = serde_json::from_value(sent.clone()).expect("valid");
        assert_eq!(serde_json::to_value(&c).expect("json"), sent);
        let sent = json!({"kind": "sequence", "steps": [{"type": ["cart.created"]}], "then_not": {"type": ["checkout.completed"]}, "within": "1h", "group_by": ["$.data.cart"]});
        let c: Condition = serde_json::from_value(sent.clone()).expect("valid");
        assert_eq!(serde_json::to_value(&c).expect("json"), sent);
    }
}
