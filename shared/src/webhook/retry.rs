//! The webhook retry schedule and the decision after each attempt.
//!
//! # Schedule
//!
//! After a failed first attempt, retries follow after 5 s, 5 min, 30 min,
//! 2 h, 5 h, 10 h and 10 h: eight attempts over about 28 hours. Each wait is
//! spread by ±20 % jitter (uniform) so that a receiver that comes back after
//! an outage is not hit by every queued delivery in the same second. A
//! `Retry-After` from the receiver lengthens a wait, never shortens it, and is
//! capped ([`RetryPolicy::max_retry_after`], 10 h by default) so a receiver
//! cannot park a delivery forever.
//!
//! Every non-2xx answer and every transport failure is retried (as the
//! Standard Webhooks reference implementations do: a 4xx is often a receiver
//! deploying or misconfigured, and fixed within the schedule). Permanent
//! answers stop the schedule: `410 Gone` and a target refused by the SSRF
//! guard or not a valid URL disable the action ([`Step::Disable`]).
//!
//! # Waits longer than SQS allows
//!
//! An SQS message can be delayed by at most 15 minutes, so the next attempt carries
//! `not_before` (the [`Step::Retry::at`] instant) and waits as a chain of hops:
//!
//! 1. after an attempt, [`RetryPolicy::next_step`]: `Retry{at}` → the next attempt (`attempt +
//!    1`, `not_before = at`) is sent to the delivery-results queue with delay
//!    `Wake::at(at, now)`; `Delivered`, `Disable` and `GiveUp` only report;
//! 2. record-deliveries, on such a message, calls [`Wake::at`]`(not_before, now)`: on
//!    [`Wake::Defer`] it re-sends the same message with that `delay_seconds` (at most 900) — a
//!    10-hour wait is 40 cheap hops, without touching Postgres; on [`Wake::Now`] it reads the
//!    delivery and its action and releases the attempt to the deliveries queue (see
//!    `pipeline::record`).
//!
//! Re-sending (rather than `ChangeMessageVisibility`, which reaches 12 h) keeps the attempt
//! number and `not_before` in the body, exact, instead of relying on `ApproximateReceiveCount`,
//! and leaves the queues' redrive policies for what they are good at: moving a message that
//! crashes its consumer repeatedly to a DLQ. A re-send and its acknowledgement are not atomic,
//! so a crash between them can duplicate a message; record-deliveries releases each attempt of
//! a delivery once, and receivers de-duplicate on the stable `webhook-id`, as the specification
//! expects.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::attempt::{AttemptErrorKind, AttemptOutcome};

/// The waits before retries 1–7.
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest delay SQS accepts on a message (15 minutes).
pub const MAX_SQS_DELAY_SECONDS: u32 = 900;

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The receiver answered 2xx.
    Delivered,
    /// Try again: attempt number `attempt`, not before `at`.
    Retry { attempt: u32, at: DateTime<Utc> },
    /// Stop and disable the action; `reason` is for the tenant.
    Disable { reason: String },
    /// The schedule is exhausted: the delivery is failed (retry-delivery can send it again).
    GiveUp { reason: String },
}

/// The retry schedule with its jitter and `Retry-After` bound.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Waits before each retry; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Relative jitter: each wait is multiplied by a uniform factor in `[1 - j, 1 + j]`.
    pub jitter: f64,
    /// The longest wait a `Retry-After` can impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(10 * 3600),
        }
    }
}

impl RetryPolicy {
    /// Attempts in all: the first plus one per scheduled wait.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The decision after attempt number `attempt` (1 for the first) ended
    /// with `outcome`, using the thread-local random generator for jitter.
    pub fn next_step(&self, attempt: u32, outcome: &AttemptOutcome, now: DateTime<Utc>) -> Step {
        self.next_step_with_rng(attempt, outcome, now, &mut rand::rng())
    }

    /// [`Self::next_step`] with a chosen random generator (tests use a seeded one).
    pub fn next_step_with_rng<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
        rng: &mut R,
    ) -> Step {
        if outcome.is_success() {
            return Step::Delivered;
        }
        if outcome.status == Some(410) {
            return Step::Disable {
                reason: "the receiver answered 410 Gone".to_owned(),
            };
        }
        if outcome.status.is_none() {
            if let Some(error) = &outcome.error {
                if matches!(
                    error.kind,
                    AttemptErrorKind::Refused | AttemptErrorKind::InvalidTarget
                ) {
                    return Step::Disable {
                        reason: error.message.clone(),
                    };
                }
            }
        }
        let index = attempt.max(1) as usize - 1;
        let Some(wait) = self.schedule.get(index) else {
            return Step::GiveUp {
                reason: format!(
                    "no 2xx after {} attempts; last: {}",
                    attempt,
                    describe(outcome)
                ),
            };
        };
        let jittered = self.jittered(*wait, rng);
        let wait = match outcome.retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        };
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        Step::Retry {
            attempt: attempt.max(1) + 1,
            at: now
                .checked_add_signed(wait)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    fn jittered<R: Rng + ?Sized>(&self, wait: Duration, rng: &mut R) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return wait;
        }
        wait.mul_f64(rng.random_range((1.0 - jitter)..=(1.0 + jitter)))
    }
}

fn describe(outcome: &AttemptOutcome) -> String {
    match (&outcome.status, &outcome.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.to_string(),
        (None, None) => "no response".to_owned(),
    }
}

/// Whether a delivery message that arrived at `now` is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Attempt now.
    Now,
    /// Re-queue with this SQS delay (1–900 seconds).
    Defer { delay_seconds: u32 },
}

impl Wake {
    /// Due when `not_before` is at most one second away (SQS delays are whole
    /// seconds, and a hop for less is not worth it); otherwise the delay of the
    /// next hop: the remaining time rounded up, at most 900 seconds.
    pub fn at(not_before: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let remaining_ms = (not_before - now).num_milliseconds();
        if remaining_ms <= 1000 {
            return Self::Now;
        }
        let seconds = (remaining_ms + 999) / 1000;
        Self::Defer {
            delay_seconds: u32::try_from(seconds)
                .unwrap_or(u32::MAX)
                .min(MAX_SQS_DELAY_SECONDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::attempt::AttemptError;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn status(code: u16) -> AttemptOutcome {
        AttemptOutcome {
            started_at: now(),
            latency: Duration::from_millis(30),
            status: Some(code),
            error: None,
            response_snippet: None,
            retry_after: None,
            remote_addr: None,
        }
    }

    fn failed(kind: AttemptErrorKind) -> AttemptOutcome {
        AttemptOutcome {
            status: None,
            error: Some(AttemptError::new(kind, "detail")),
            ..status(0)
        }
    }

    fn wait_of(step: &Step) -> Duration {
        match step {
            Step::Retry { at, .. } => (*at - now()).to_std().unwrap(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn any_2xx_is_delivered() {
        let policy = RetryPolicy::default();
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(policy.next_step(1, &status(code), now()), Step::Delivered);
        }
    }

    #[test]
    fn waits_follow_the_schedule_within_the_jitter() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for (i, base) in DEFAULT_SCHEDULE.iter().enumerate() {
            let attempt = i as u32 + 1;
            for _ in 0..50 {
                let step = policy.next_step_with_rng(attempt, &status(500), now(), &mut rng);
                let Step::Retry { attempt: next, .. } = step else {
                    panic!("{step:?}")
                };
                assert_eq!(next, attempt + 1);
                let wait = wait_of(&step);
                assert!(
                    wait >= base.mul_f64(0.8) && wait <= base.mul_f64(1.2),
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_actually_spreads_the_waits() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(42);
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| wait_of(&policy.next_step_with_rng(2, &status(503), now(), &mut rng)))
            .collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn without_jitter_the_schedule_is_exact() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let waits: Vec<Duration> = (1..=7)
            .map(|n| wait_of(&policy.next_step(n, &status(502), now())))
            .collect();
        assert_eq!(waits, DEFAULT_SCHEDULE.to_vec());
    }

    #[test]
    fn the_eighth_failure_gives_up() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 8);
        match policy.next_step(8, &status(500), now()) {
            Step::GiveUp { reason } => assert!(
                reason.contains("8 attempts") && reason.contains("HTTP 500"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        match policy.next_step(8, &failed(AttemptErrorKind::Timeout), now()) {
            Step::GiveUp { reason } => assert!(reason.contains("timeout"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gone_disables_the_action() {
        assert!(matches!(
            RetryPolicy::default().next_step(3, &status(410), now()),
            Step::Disable { .. }
        ));
    }

    #[test]
    fn refused_and_invalid_targets_disable_but_transport_errors_retry() {
        let policy = RetryPolicy::default();
        assert!(matches!(
            policy.next_step(1, &failed(AttemptErrorKind::Refused), now()),
            Step::Disable { .. }
        ));
        assert!(matches!(
            policy.next_step(1, &failed(AttemptErrorKind::InvalidTarget), now()),
            Step::Disable { .. }
        ));
        for kind in [
            AttemptErrorKind::Dns,
            AttemptErrorKind::Connect,
            AttemptErrorKind::Timeout,
            AttemptErrorKind::Request,
        ] {
            assert!(
                matches!(
                    policy.next_step(1, &failed(kind), now()),
                    Step::Retry { .. }
                ),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn client_errors_are_retried_too() {
        let policy = RetryPolicy::default();
        for code in [400, 401, 404, 429, 500, 503] {
            assert!(
                matches!(
                    policy.next_step(1, &status(code), now()),
                    Step::Retry { .. }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_and_is_capped() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut busy = status(429);
        busy.retry_after = Some(Duration::from_secs(120));
        assert_eq!(
            wait_of(&policy.next_step(1, &busy, now())),
            Duration::from_secs(120)
        );
        // Asking for less than the schedule's 5 min does not shorten it.
        assert_eq!(
            wait_of(&policy.next_step(2, &busy, now())),
            Duration::from_secs(300)
        );
        busy.retry_after = Some(Duration::from_secs(30 * 24 * 3600));
        assert_eq!(
            wait_of(&policy.next_step(1, &busy, now())),
            Duration::from_secs(10 * 3600)
        );
    }

    #[test]
    fn wake_defers_in_hops_of_at_most_fifteen_minutes() {
        let t = now();
        assert_eq!(Wake::at(t, t), Wake::Now);
        assert_eq!(Wake::at(t - chrono::Duration::hours(1), t), Wake::Now);
        assert_eq!(
            Wake::at(t + chrono::Duration::milliseconds(900), t),
            Wake::Now
        );
        assert_eq!(
            Wake::at(t + chrono::Duration::milliseconds(4500), t),
            Wake::Defer { delay_seconds: 5 }
        );
        assert_eq!(
            Wake::at(t + chrono::Duration::minutes(15), t),
            Wake::Defer { delay_seconds: 900 }
        );
        assert_eq!(
            Wake::at(t + chrono::Duration::hours(10), t),
            Wake::Defer { delay_seconds: 900 }
        );
    }

    #[test]
    fn a_ten_hour_wait_is_forty_hops() {
        let start = now();
        let not_before = start + chrono::Duration::hours(10);
        let mut clock = start;
        let mut hops = 0;
        while let Wake::Defer { delay_seconds } = Wake::at(not_before, clock) {
            clock += chrono::Duration::seconds(i64::from(delay_seconds));
            hops += 1;
            assert!(hops < 100);
        }
        assert_eq!(hops, 40);
        assert!(clock >= not_before - chrono::Duration::seconds(1));
    }
}
