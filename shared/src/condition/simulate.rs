//! A trigger run over a list of events on a simulated clock, with no side effects: what
//! `triggeriq trigger test` prints and `POST /v1/triggers/test` answers. The same pattern
//! matcher and condition logic as the pipeline, with in-memory state instead of DynamoDB and
//! Postgres.
//!
//! The clock: events are taken in the order given (arrival order, which may differ from their
//! `time`); the clock moves to an event's `time` when that is later than the clock, never
//! back. Before each event, and at the end (the last event's time plus `until`), deadlines due
//! by the clock fire, oldest first. Thresholds count by event time; cooldowns, debounce and
//! absence run on the clock, as they run on receipt time in the pipeline.
//!
//! The work is bounded ([`SimulateLimits`]), because the route runs it for any tenant on any
//! trigger: the run stops at the firing after the last one it may keep, and says so
//! (`truncated`), so an `until` of days cannot turn into millions of deadline firings; and the
//! trigger's pattern is matched within one allowance of steps for all the events together.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::threshold::{Entry, Window};
use super::{Arrival, Condition, GroupKey, Seen, TimerState};
use crate::event::Event;
use crate::ids::EventId;
use crate::pattern::Pattern;

/// A firing the simulation produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulatedFiring {
    /// When it fired, on the simulated clock.
    #[serde(with = "crate::event::rfc3339_micros")]
    pub time: DateTime<Utc>,
    /// The group's values (`[]` for an ungrouped condition).
    pub group: Vec<Value>,
    /// The events involved.
    pub event_ids: Vec<EventId>,
    pub reason: Value,
}

/// What one run may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulateLimits {
    /// The most firings a run keeps; it stops at the next one.
    pub max_firings: usize,
    /// Steps of the pattern interpreter for the trigger's pattern, over every event together
    /// (see [`Pattern::matches_value_drawing`]).
    pub max_match_steps: u64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulated {
    /// The firings, in firing order.
    pub firings: Vec<SimulatedFiring>,
    /// The run stopped at [`SimulateLimits::max_firings`]: more would have fired (later events
    /// and deadlines were not looked at).
    pub truncated: bool,
}

/// Matching the trigger's pattern against the events took more than the allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the pattern is too expensive to match against these events: it takes more than {max_steps} steps; simplify the pattern (fewer \"$or\" cases or values) or send fewer or smaller events"
)]
pub struct TooExpensive {
    pub max_steps: u64,
}

/// Runs `pattern` and `condition` (with `cooldown`) over `events`, in the order given; then
/// lets the clock run `until` past the last event. Answers the firings in firing order, at most
/// `limits.max_firings` of them.
pub fn simulate(
    pattern: &Pattern,
    condition: &Condition,
    cooldown: Option<Duration>,
    events: &[Event],
    until: Duration,
    limits: SimulateLimits,
) -> Result<Simulated, TooExpensive> {
    let mut sim = Simulation {
        condition,
        cooldown: cooldown.and_then(|c| chrono::Duration::from_std(c).ok()),
        clock: DateTime::<Utc>::MIN_UTC,
        cooling_until: BTreeMap::new(),
        windows: BTreeMap::new(),
        timers: BTreeMap::new(),
        fired: Vec::new(),
        max_firings: limits.max_firings,
        truncated: false,
        // A deadline step fires (the one past `max_firings` ends the run), unless an event
        // made its deadline stale, at most once per event: more steps than that can only be a
        // state that never settles, and the run must end whatever the condition logic does.
        deadline_steps: limits
            .max_firings
            .saturating_add(1)
            .saturating_add(events.len()),
    };
    let mut allowance = limits.max_match_steps;
    for event in events {
        sim.clock = sim.clock.max(event.time);
        sim.fire_due();
        if sim.truncated {
            return Ok(sim.finish());
        }
        let Ok(document) = serde_json::to_value(event) else {
            continue;
        };
        let too_expensive = |_| TooExpensive {
            max_steps: limits.max_match_steps,
        };
        let matched = pattern
            .matches_value_drawing(&document, &mut allowance)
            .map_err(too_expensive)?;
        if matched {
            // The condition's own patterns (a sequence's steps, `then_not`) match this event
            // too: their work is drawn from the same allowance first, so the condition logic
            // below repeats only work already paid for.
            for step in condition.patterns() {
                step.matches_value_drawing(&document, &mut allowance)
                    .map_err(too_expensive)?;
            }
            sim.on_event(event, &document);
        }
        if sim.truncated {
            return Ok(sim.finish());
        }
    }
    if let Some(end) = chrono::Duration::from_std(until)
        .ok()
        .and_then(|u| sim.clock.checked_add_signed(u))
    {
        sim.clock = end;
    }
    sim.fire_due();
    Ok(sim.finish())
}

struct Simulation<'a> {
    condition: &'a Condition,
    cooldown: Option<chrono::Duration>,
    clock: DateTime<Utc>,
    /// Per group text (`""` for a trigger-wide cooldown).
    cooling_until: BTreeMap<String, DateTime<Utc>>,
    windows: BTreeMap<String, (GroupKey, Window)>,
    timers: BTreeMap<String, (GroupKey, TimerState, Option<DateTime<Utc>>)>,
    fired: Vec<SimulatedFiring>,
    max_firings: usize,
    /// A firing beyond `max_firings` came: the run is over.
    truncated: bool,
    /// Deadline steps the run may still take.
    deadline_steps: usize,
}

impl Simulation<'_> {
    fn finish(self) -> Simulated {
        Simulated {
            firings: self.fired,
            truncated: self.truncated,
        }
    }

    /// Keeps `firing`, or ends the run when it is one too many.
    fn push(&mut self, firing: SimulatedFiring) {
        if self.fired.len() < self.max_firings {
            self.fired.push(firing);
        } else {
            self.truncated = true;
        }
    }

    /// Takes the cooldown of `group` at the clock, if it is free.
    fn cooldown_free(&mut self, group: &str) -> bool {
        let Some(cooldown) = self.cooldown else {
            return true;
        };
        if self
            .cooling_until
            .get(group)
            .is_some_and(|until| *until > self.clock)
        {
            return false;
        }
        self.cooling_until
            .insert(group.to_owned(), self.clock + cooldown);
        true
    }

    fn on_event(&mut self, event: &Event, document: &Value) {
        match self.condition {
            Condition::Every => {
                if self.cooldown_free("") {
                    self.push(SimulatedFiring {
                        time: self.clock,
                        group: Vec::new(),
                        event_ids: vec![event.id.clone()],
                        reason: json!([]),
                    });
                }
            }
            Condition::Threshold(_) | Condition::Sequence(_)
                if self.condition.windowed().is_some() =>
            {
                let Some(windowed) = self.condition.windowed() else {
                    return;
                };
                let Some(group) = windowed.group_by().key_of(document) else {
                    return;
                };
                let Some(sample) = windowed.sample(document) else {
                    return;
                };
                let text = group.as_text().to_owned();
                let (_, window) = self
                    .windows
                    .entry(text.clone())
                    .or_insert_with(|| (group.clone(), Window::default()));
                window.observe(
                    event.id.clone(),
                    Entry {
                        at_ms: event.time.timestamp_millis(),
                        sample,
                        reason: None,
                        consumed: false,
                    },
                );
                let Some(crossing) = windowed.crossing(window, &event.id) else {
                    return;
                };
                let reason = windowed.reason(&group, &crossing, window);
                if !self.cooldown_free(&text) {
                    return;
                }
                if let Some((_, window)) = self.windows.get_mut(&text) {
                    window.fire(&crossing, &event.id, reason.clone());
                }
                self.push(SimulatedFiring {
                    time: self.clock,
                    group: group.values().to_vec(),
                    event_ids: crossing.events,
                    reason,
                });
            }
            Condition::Debounce(_) | Condition::Absence(_) | Condition::Sequence(_)
                if self.condition.timed().is_some() =>
            {
                let Some(timed) = self.condition.timed() else {
                    return;
                };
                let Some(group) = timed.group_by().key_of(document) else {
                    return;
                };
                let text = group.as_text().to_owned();
                let state = self.timers.remove(&text).map(|(_, s, _)| s);
                let arrival = Arrival {
                    seen: Seen {
                        id: event.id.clone(),
                        at: self.clock,
                    },
                    time: event.time,
                    document,
                };
                let step = timed.on_event(state, &arrival, &group);
                if let Some(fire) = step.fire {
                    self.push_timer_firing(&group, fire.reason);
                }
                if let Some(state) = step.state {
                    self.timers.insert(text, (group, state, step.due));
                }
            }
            // A condition that is neither windowed nor timed has no other form.
            Condition::Threshold(_)
            | Condition::Sequence(_)
            | Condition::Debounce(_)
            | Condition::Absence(_) => {}
        }
    }

    /// Fires every deadline due by the clock, oldest first, each at its due time; stops when
    /// the run is over (too many firings, or no deadline steps left).
    fn fire_due(&mut self) {
        let Some(timed) = self.condition.timed() else {
            return;
        };
        while !self.truncated {
            let next = self
                .timers
                .iter()
                .filter_map(|(k, (_, _, due))| {
                    due.filter(|d| *d <= self.clock).map(|d| (d, k.clone()))
                })
                .min();
            let Some((due, key)) = next else {
                return;
            };
            let Some(left) = self.deadline_steps.checked_sub(1) else {
                self.truncated = true;
                return;
            };
            self.deadline_steps = left;
            let Some((group, state, _)) = self.timers.remove(&key) else {
                return;
            };
            let step = timed.on_due(state, due, &group);
            if let Some(fire) = step.fire {
                let now = std::mem::replace(&mut self.clock, due);
                self.push_timer_firing(&group, fire.reason);
                self.clock = now;
            }
            if let Some(state) = step.state {
                self.timers.insert(key, (group, state, step.due));
            }
        }
    }

    fn push_timer_firing(&mut self, group: &GroupKey, reason: Value) {
        let event_ids = reason["event_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(EventId::new)
                    .collect()
            })
            .unwrap_or_default();
        self.push(SimulatedFiring {
            time: self.clock,
            group: group.values().to_vec(),
            event_ids,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    fn event(id: &str, minute: i64, data: Value) -> Event {
        let time =
            Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minute);
        serde_json::from_value(
            json!({"id": id, "type": "t", "time": time.to_rfc3339(), "data": data}),
        )
        .expect("event")
    }

    /// Far beyond what these tests fire or match.
    const ROOMY: SimulateLimits = SimulateLimits {
        max_firings: 1000,
        max_match_steps: u64::MAX,
    };

    fn run_within(
        condition: Value,
        cooldown: Option<u64>,
        events: &[Event],
        until_minutes: u64,
        limits: SimulateLimits,
    ) -> Result<Simulated, TooExpensive> {
        let pattern = Pattern::parse(r#"{"type": ["t"]}"#).expect("pattern");
        let condition: Condition = serde_json::from_value(condition).expect("condition");
        simulate(
            &pattern,
            &condition,
            cooldown.map(Duration::from_secs),
            events,
            Duration::from_secs(until_minutes * 60),
            limits,
        )
    }

    fn run(
        condition: Value,
        cooldown: Option<u64>,
        events: &[Event],
        until_minutes: u64,
    ) -> Vec<SimulatedFiring> {
        let ran = run_within(condition, cooldown, events, until_minutes, ROOMY).expect("cheap");
        assert!(!ran.truncated);
        ran.firings
    }

    #[test]
    fn every_fires_on_each_match_within_the_cooldown() {
        let events = [
            event("a", 0, json!({})),
            event("b", 1, json!({})),
            event("c", 11, json!({})),
        ];
        let fired = run(json!({"kind": "every"}), Some(600), &events, 0);
        let ids: Vec<&str> = fired.iter().map(|f| f.event_ids[0].as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
    }

    #[test]
    fn a_threshold_fires_per_group() {
        let events: Vec<Event> = [
            ("a1", 0, "A"),
            ("b1", 1, "B"),
            ("a2", 2, "A"),
            ("a3", 3, "A"),
            ("b2", 4, "B"),
        ]
        .iter()
        .map(|(id, m, c)| event(id, *m, json!({"customer": c})))
        .collect();
        let fired = run(
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.data.customer"]}),
            None,
            &events,
            0,
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].group, vec![json!("A")]);
        assert_eq!(
            fired[0].event_ids,
            [EventId::new("a1"), EventId::new("a2"), EventId::new("a3")]
        );
    }

    #[test]
    fn deadlines_fire_at_their_time_on_the_simulated_clock() {
        let events = [
            event("hb1", 0, json!({})),
            event("hb2", 5, json!({})),
            event("hb3", 40, json!({})),
        ];
        let fired = run(
            json!({"kind": "absence", "every": "10m", "grace": "2m"}),
            None,
            &events,
            30,
        );
        let summary: Vec<(String, &str)> = fired
            .iter()
            .map(|f| {
                (
                    f.time.format("%H:%M").to_string(),
                    f.reason["state"].as_str().unwrap_or(""),
                )
            })
            .collect();
        // hb2 at 09:05, due 09:17: down; hb3 at 09:40: recovered; due 09:52 within the 30
        // minutes after it: down again.
        assert_eq!(
            summary,
            [
                ("09:17".into(), "down"),
                ("09:40".into(), "recovered"),
                ("09:52".into(), "down")
            ]
        );
    }

    #[test]
    fn a_debounce_fires_once_the_burst_is_over() {
        let events = [
            event("e1", 0, json!({})),
            event("e2", 2, json!({})),
            event("e3", 30, json!({})),
        ];
        let fired = run(
            json!({"kind": "debounce", "quiet": "5m"}),
            None,
            &events,
            10,
        );
        let at: Vec<(String, Vec<EventId>)> = fired
            .iter()
            .map(|f| (f.time.format("%H:%M").to_string(), f.event_ids.clone()))
            .collect();
        assert_eq!(
            at,
            [
                ("09:07".into(), vec![EventId::new("e2")]),
                ("09:35".into(), vec![EventId::new("e3")])
            ]
        );
    }

    /// Heartbeats of one device every 5 minutes, for [`flapping_absence`]: each gap fires
    /// `down` and the heartbeat after it `recovered`; `until` adds the last `down` (2n - 1).
    fn flapping(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| event(&format!("hb{i}"), i * 5, json!({})))
            .collect()
    }

    fn flapping_absence() -> Value {
        json!({"kind": "absence", "every": "1m"})
    }

    #[test]
    fn a_run_stops_at_its_firing_cap_and_says_it_was_cut_short() {
        let events = flapping(20);
        let all = run(flapping_absence(), None, &events, 30 * 24 * 60);
        assert_eq!(
            all.len(),
            2 * 20 - 1,
            "every gap, and the last heartbeat's deadline"
        );
        let capped = run_within(
            flapping_absence(),
            None,
            &events,
            30 * 24 * 60,
            SimulateLimits {
                max_firings: 7,
                ..ROOMY
            },
        )
        .expect("cheap");
        assert!(capped.truncated);
        assert_eq!(
            capped.firings,
            all[..7],
            "the first firings, as an uncapped run"
        );
    }

    #[test]
    fn a_run_that_fires_exactly_its_cap_is_not_cut_short() {
        let events = flapping(3);
        let exact = run_within(
            flapping_absence(),
            None,
            &events,
            60,
            SimulateLimits {
                max_firings: 5,
                ..ROOMY
            },
        )
        .expect("cheap");
        assert_eq!((exact.firings.len(), exact.truncated), (5, false));
        let one_short = run_within(
            flapping_absence(),
            None,
            &events,
            60,
            SimulateLimits {
                max_firings: 4,
                ..ROOMY
            },
        )
        .expect("cheap");
        assert_eq!((one_short.firings.len(), one_short.truncated), (4, true));
    }

    #[test]
    fn the_pattern_is_matched_within_one_allowance_for_all_the_events() {
        let pattern = Pattern::parse(r#"{"type": ["t"], "data": {"n": [1, 2, 3]}}"#).expect("p");
        let long: Vec<i64> = vec![0; 1000];
        let events: Vec<Event> = (0..3)
            .map(|i| event(&format!("e{i}"), i, json!({"n": long})))
            .collect();
        let condition = Condition::Every;
        let try_with = |max_match_steps, events: &[Event]| {
            simulate(
                &pattern,
                &condition,
                None,
                events,
                Duration::ZERO,
                SimulateLimits {
                    max_match_steps,
                    ..ROOMY
                },
            )
        };
        // Enough for one event, not for three: the allowance is the run's, not each event's.
        let one = 5_000;
        assert!(try_with(one, &events[..1]).is_ok());
        assert_eq!(try_with(one, &events), Err(TooExpensive { max_steps: one }));
        assert_eq!(try_with(u64::MAX, &events).map(|r| r.firings.len()), Ok(0));
    }

    #[test]
    fn a_sequences_step_patterns_draw_on_the_same_allowance() {
        let cheap = Pattern::parse(r#"{"type": ["t"]}"#).expect("p");
        let condition: Condition = serde_json::from_value(json!({"kind": "sequence",
            "within": "1h", "steps": [{"data": {"n": [1, 2, 3]}}, {"data": {"n": [4]}}]}))
        .expect("valid");
        let long: Vec<i64> = vec![0; 1000];
        let events: Vec<Event> = (0..3)
            .map(|i| event(&format!("e{i}"), i, json!({"n": long})))
            .collect();
        let run = |max_match_steps| {
            simulate(
                &cheap,
                &condition,
                None,
                &events,
                Duration::ZERO,
                SimulateLimits {
                    max_match_steps,
                    ..ROOMY
                },
            )
        };
        // The trigger's pattern alone is a few steps per event; the steps are thousands.
        assert_eq!(run(5_000), Err(TooExpensive { max_steps: 5_000 }));
        assert_eq!(run(u64::MAX).map(|r| r.firings.len()), Ok(0));
    }
}
