//! `sequence` with `then_not`: "this, not followed by that within T" — a cart created and no
//! checkout within an hour.
//!
//! ```json
//! {"kind": "sequence", "steps": [{"type": ["cart.created"]}], "then_not": {"type": ["checkout.completed"]},
//!  "within": "1h", "group_by": ["$.data.cart_id"]}
//! ```
//!
//! A deadline condition, kept like `debounce` and `absence` ([`super::timed`]): each event that
//! matches the step (an *opener*) waits `within` from its receipt; an event of the same group
//! that matches `then_not` (a *closer*) and whose event time is at or after the opener's ends
//! the wait (when its time is also within `within` of the opener's); a wait that reaches its deadline fires, once, on the opener. Order is by event
//! time, so a closer that arrives before its opener (SQS does not order) still closes it: the
//! group remembers its latest closer for `within`. An event that matches both patterns counts
//! as a closer. A group keeps at most [`MAX_PENDING`] open waits; later openers are dropped
//! until one ends (said in docs/conditions.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::timed::{Arrival, Step, TimerFiring, TimerState};
use super::{GroupKey, Sequence};
use crate::ids::EventId;
use crate::pattern::Pattern;

/// Open waits one group keeps at most.
pub const MAX_PENDING: usize = 100;

/// An event a wait is about: its id, its own time, and when it was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marked {
    pub id: EventId,
    pub time: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl Sequence {
    /// The group's state after `arrival`, for `then_not`.
    pub(super) fn not_followed_on_event(
        &self,
        then_not: &Pattern,
        state: Option<TimerState>,
        arrival: &Arrival<'_>,
    ) -> Step {
        let (mut open, mut closer) = match state {
            Some(TimerState::ThenNot { open, closer }) => (open, closer),
            _ => (Vec::new(), None),
        };
        let marked = Marked {
            id: arrival.seen.id.clone(),
            time: arrival.time,
            at: arrival.seen.at,
        };
        if then_not.matches_value(arrival.document) {
            open.retain(|o| !self.closes(&marked, o));
            if closer.as_ref().is_none_or(|c| c.time <= marked.time) {
                closer = Some(marked);
            }
        } else if self
            .steps
            .first()
            .is_some_and(|step| step.matches_value(arrival.document))
        {
            let closed = closer.as_ref().is_some_and(|c| self.closes(c, &marked));
            if !closed && open.len() < MAX_PENDING && !open.iter().any(|o| o.id == marked.id) {
                open.push(marked);
            }
        }
        self.not_followed_step(open, closer, None)
    }

    /// The group's state at `now` (its deadline come), for `then_not`: the oldest expired
    /// wait fires; a closer older than `within` is forgotten.
    pub(super) fn not_followed_on_due(
        &self,
        state: TimerState,
        now: DateTime<Utc>,
        group: &GroupKey,
    ) -> Step {
        let TimerState::ThenNot { mut open, closer } = state else {
            return self.not_followed_step(Vec::new(), None, None);
        };
        let within = self.within.as_chrono();
        let closer = closer.filter(|c| c.at + within > now);
        let expired = open
            .iter()
            .enumerate()
            .filter(|(_, o)| o.at + within <= now)
            .min_by_key(|(_, o)| (o.at, o.time))
            .map(|(i, _)| i);
        let fire = expired.map(|i| {
            let o = open.remove(i);
            TimerFiring {
                event_id: o.id.clone(),
                occasion: "",
                reason: json!({
                    "condition": "sequence",
                    "state": "not_followed",
                    "group": group.values(),
                    "within": self.within.to_text(),
                    "step_time": super::timed::millis(o.time),
                    "waited_until": super::timed::millis(o.at + within),
                    "event_ids": [o.id],
                }),
            }
        });
        self.not_followed_step(open, closer, fire)
    }

    /// Whether `closer` ends the wait of `opener`: its event time is at or after the opener's,
    /// and within `within` of it.
    fn closes(&self, closer: &Marked, opener: &Marked) -> bool {
        closer.time >= opener.time && closer.time <= opener.time + self.within.as_chrono()
    }

    fn not_followed_step(
        &self,
        open: Vec<Marked>,
        closer: Option<Marked>,
        fire: Option<TimerFiring>,
    ) -> Step {
        let within = self.within.as_chrono();
        let due = open
            .iter()
            .map(|o| o.at + within)
            .min()
            .or_else(|| closer.as_ref().map(|c| c.at + within));
        let state =
            (!open.is_empty() || closer.is_some()).then_some(TimerState::ThenNot { open, closer });
        Step { state, due, fire }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::{Value, json};

    use super::*;
    use crate::condition::{Condition, GroupBy, Seen};

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn cart_then_no_checkout() -> Condition {
        serde_json::from_value(json!({"kind": "sequence", "within": "1h",
            "steps": [{"type": ["cart.created"]}], "then_not": {"type": ["checkout.completed"]}}))
        .expect("valid")
    }

    /// Runs `events` (id, type, event time in minutes, received in minutes) in the order given
    /// through the condition's deadline logic, checking deadlines before each arrival and at
    /// `end`; answers (minute fired, event id) per firing.
    fn run(
        condition: &Condition,
        events: &[(&str, &str, i64, i64)],
        end: i64,
    ) -> Vec<(i64, String)> {
        let timed = condition.timed().expect("a deadline condition");
        let group = GroupBy::default().key_of(&json!({})).expect("one group");
        let mut state: Option<TimerState> = None;
        let mut due: Option<DateTime<Utc>> = None;
        let mut fired = Vec::new();
        let mut drain = |state: &mut Option<TimerState>, due: &mut Option<DateTime<Utc>>, now| {
            while let (Some(d), Some(s)) = (*due, state.clone()) {
                if d > now {
                    break;
                }
                let step = timed.on_due(s, d, &group);
                if let Some(f) = step.fire {
                    fired.push(((d - t(0)).num_minutes(), f.event_id.as_str().to_owned()));
                }
                *state = step.state;
                *due = step.due;
            }
        };
        for (id, kind, time, received) in events {
            drain(&mut state, &mut due, t(*received));
            let document: Value = json!({"id": id, "type": kind});
            let arrival = Arrival {
                seen: Seen {
                    id: EventId::new(*id),
                    at: t(*received),
                },
                time: t(*time),
                document: &document,
            };
            let step = timed.on_event(state.take(), &arrival, &group);
            assert!(step.fire.is_none(), "an arrival never fires a then_not");
            state = step.state;
            due = step.due;
        }
        drain(&mut state, &mut due, t(end));
        assert!(
            state.is_none() || due.is_some_and(|d| d > t(end)),
            "state left without a deadline"
        );
        fired
    }

    #[test]
    fn a_cart_created_and_no_checkout_within_an_hour_fires_at_the_deadline() {
        let fired = run(
            &cart_then_no_checkout(),
            &[("c1", "cart.created", 0, 0)],
            120,
        );
        assert_eq!(fired, [(60, "c1".to_owned())]);
    }

    #[test]
    fn a_checkout_in_time_ends_the_wait() {
        let fired = run(
            &cart_then_no_checkout(),
            &[
                ("c1", "cart.created", 0, 0),
                ("k1", "checkout.completed", 59, 59),
            ],
            600,
        );
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn a_checkout_that_arrives_before_its_cart_still_closes_it() {
        // SQS does not order: the checkout (time 5) is received before the cart (time 1).
        let fired = run(
            &cart_then_no_checkout(),
            &[
                ("k1", "checkout.completed", 5, 5),
                ("c1", "cart.created", 1, 6),
            ],
            600,
        );
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn a_checkout_older_than_the_cart_or_later_than_within_does_not_close_it() {
        let fired = run(
            &cart_then_no_checkout(),
            &[
                ("k0", "checkout.completed", 0, 0),
                ("c1", "cart.created", 10, 10),
                // Received in time (before 11:10), but its event time is past the hour.
                ("k1", "checkout.completed", 75, 30),
            ],
            600,
        );
        assert_eq!(fired, [(70, "c1".to_owned())]);
    }

    #[test]
    fn each_cart_waits_on_its_own_and_the_oldest_fires_first() {
        let fired = run(
            &cart_then_no_checkout(),
            &[
                ("c1", "cart.created", 0, 0),
                ("c2", "cart.created", 30, 30),
                ("c3", "cart.created", 40, 40),
                // Closes c2 and c3 (times 30 and 40 are before 50, within the hour); c1 has
                // fired at minute 60? No: 50 < 60, so it closes c1 too.
                ("k1", "checkout.completed", 50, 50),
                ("c4", "cart.created", 55, 55),
            ],
            600,
        );
        assert_eq!(fired, [(115, "c4".to_owned())]);
        let fired = run(
            &cart_then_no_checkout(),
            &[
                ("c1", "cart.created", 0, 0),
                ("c2", "cart.created", 30, 30),
                ("k1", "checkout.completed", 70, 70),
            ],
            600,
        );
        assert_eq!(
            fired,
            [(60, "c1".to_owned())],
            "c1 expired before k1; k1 closes c2"
        );
    }

    #[test]
    fn an_event_matching_both_patterns_counts_as_the_closer() {
        let both: Condition = serde_json::from_value(json!({"kind": "sequence", "within": "1h",
            "steps": [{"type": [{"prefix": "cart."}]}], "then_not": {"type": ["cart.paid"]}}))
        .expect("valid");
        let fired = run(
            &both,
            &[("c1", "cart.created", 0, 0), ("p1", "cart.paid", 10, 10)],
            600,
        );
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn a_group_keeps_at_most_the_bound_of_open_waits_and_forgets_its_closer() {
        let c = cart_then_no_checkout();
        let timed = c.timed().expect("timed");
        let group = GroupBy::default().key_of(&json!({})).expect("one group");
        let document = json!({"type": "cart.created"});
        let mut state = None;
        for i in 0..(MAX_PENDING + 20) {
            let arrival = Arrival {
                seen: Seen {
                    id: EventId::new(format!("c{i}")),
                    at: t(0),
                },
                time: t(0),
                document: &document,
            };
            state = timed.on_event(state, &arrival, &group).state;
        }
        let Some(TimerState::ThenNot { open, .. }) = &state else {
            panic!("{state:?}");
        };
        assert_eq!(open.len(), MAX_PENDING);
        // A lone closer is remembered for `within`, then the group's state goes.
        let closer = json!({"type": "checkout.completed"});
        let arrival = Arrival {
            seen: Seen {
                id: EventId::new("k"),
                at: t(0),
            },
            time: t(0),
            document: &closer,
        };
        let step = timed.on_event(None, &arrival, &group);
        assert_eq!(step.due, Some(t(60)));
        let step = timed.on_due(step.state.expect("remembered"), t(60), &group);
        assert!(step.fire.is_none() && step.state.is_none() && step.due.is_none());
    }

    #[test]
    fn the_firing_says_why() {
        let c = cart_then_no_checkout();
        let timed = c.timed().expect("timed");
        let group = GroupBy::default().key_of(&json!({})).expect("one group");
        let document = json!({"type": "cart.created"});
        let arrival = Arrival {
            seen: Seen {
                id: EventId::new("c1"),
                at: t(0),
            },
            time: t(-1),
            document: &document,
        };
        let step = timed.on_event(None, &arrival, &group);
        let fired = timed.on_due(step.state.expect("waiting"), t(60), &group);
        let reason = fired.fire.expect("fires").reason;
        assert_eq!(
            reason,
            json!({"condition": "sequence", "state": "not_followed", "group": [],
                "within": "1h", "step_time": "2026-04-01T08:59:00.000Z",
                "waited_until": "2026-04-01T10:00:00.000Z", "event_ids": ["c1"]})
        );
    }
}
