//! Deliveries: one firing's webhook to one action, the attempts made at it, and what
//! deliver-webhooks decided after each attempt.
//!
//! A delivery is `pending` from its creation until an attempt is answered 2xx (`delivered`),
//! the retry schedule runs out (`failed`) or the target is gone (`disabled`, e.g. 410). A retry
//! through the API starts a new [`Generation`]; reports of an older generation are kept as
//! attempts and change nothing else.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike as _, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ActionId, AttemptId, DeliveryId, FiringId, Generation, TenantId, TriggerId};
use crate::webhook::AttemptOutcome;

/// Where a delivery stands. Stored as text; a value this build does not know is an error when
/// read, never taken for another status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "postgres",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// On its way: queued, between attempts, or being recorded.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// No further attempts: the retry schedule was exhausted, the action was deleted, or a
    /// 410 came from a URL the action no longer has (`final_reason` says which).
    Failed,
    /// The receiver is gone (410) or its address refused, and the action was disabled; or the
    /// action was disabled before the next attempt.
    Disabled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    /// Whether a retry through the API may start a new generation.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Failed | Self::Disabled)
    }
}

/// A claim to put a delivery's message on a queue that is older than this belongs to a sender
/// that died between its commit and its send: twice the longest timeout of the functions that
/// claim (evaluate-events 60 s, record-deliveries 30 s, retry-delivery 10 s).
pub const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(2);

/// A pending delivery whose due attempt has had no report for this long is taken for stuck (its
/// message lost, or parked poisoned) and may be retried through the API. An attempt is made
/// seconds after it is due and reported seconds later; a delivery that was only late and is
/// retried anyway costs the receiver one more webhook with the same `webhook-id`.
pub const OVERDUE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Where a pending delivery's current message stands: on its way, or stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When the next attempt is due (set by a `retrying` report).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Set while a message is being put on a queue; `enqueued_at` once it is there.
    pub enqueue_claimed_at: Option<DateTime<Utc>>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Progress {
    /// Stuck: its message never reached a queue and nobody is sending it (no claim, or one
    /// older than [`STALE_CLAIM`]); or its due attempt — the next one, else the one whose message
    /// went on the queue — has been due for more than [`OVERDUE_AFTER`] without a report.
    pub fn is_stuck(&self, now: DateTime<Utc>) -> bool {
        let unsent = self.enqueued_at.is_none()
            && self
                .enqueue_claimed_at
                .is_none_or(|claimed| claimed < now - STALE_CLAIM);
        let due = self
            .next_attempt_at
            .or(self.enqueued_at)
            .unwrap_or(self.created_at);
        unsent || due < now - OVERDUE_AFTER
    }
}

/// What deliver-webhooks decided after an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// The receiver answered 2xx.
    Delivered,
    /// Another attempt is on the queue for `next_attempt_at`.
    Retrying { next_attempt_at: DateTime<Utc> },
    /// The schedule is exhausted.
    Failed { reason: String },
    /// The target is gone (410) or refused: the action is to be disabled.
    Disabled { reason: String },
}

/// The name of a [`Decision`], as stored with each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "postgres",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Delivered,
    Retrying,
    Failed,
    Disabled,
}

impl Decision {
    pub fn kind(&self) -> DecisionKind {
        match self {
            Self::Delivered => DecisionKind::Delivered,
            Self::Retrying { .. } => DecisionKind::Retrying,
            Self::Failed { .. } => DecisionKind::Failed,
            Self::Disabled { .. } => DecisionKind::Disabled,
        }
    }

    /// The name stored with the attempt.
    pub fn as_str(&self) -> &'static str {
        self.kind().as_str()
    }

    /// When the next attempt is due, while retrying.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Retrying { next_attempt_at } => Some(*next_attempt_at),
            _ => None,
        }
    }

    /// The status a `pending` delivery of the same generation takes after this decision
    /// (`Retrying` leaves it pending).
    pub fn status(&self) -> DeliveryStatus {
        match self {
            Self::Delivered => DeliveryStatus::Delivered,
            Self::Retrying { .. } => DeliveryStatus::Pending,
            Self::Failed { .. } => DeliveryStatus::Failed,
            Self::Disabled { .. } => DeliveryStatus::Disabled,
        }
    }
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }
}

/// Which run of which delivery: the identity every delivery message and every attempt report
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryKey {
    /// Also the `webhook-id`: stable across every attempt of the delivery.
    pub delivery_id: DeliveryId,
    pub firing_id: FiringId,
    pub trigger_id: TriggerId,
    pub action_id: ActionId,
    pub generation: Generation,
}

#[cfg(test)]
impl DeliveryKey {
    /// Fresh ids, the first generation (tests).
    pub(crate) fn fresh() -> Self {
        Self {
            delivery_id: DeliveryId::new(),
            firing_id: FiringId::new(),
            trigger_id: TriggerId::new(),
            action_id: ActionId::new(),
            generation: Generation::FIRST,
        }
    }
}

/// A delivery as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub firing_id: FiringId,
    pub trigger_id: TriggerId,
    pub action_id: ActionId,
    pub url: String,
    pub status: DeliveryStatus,
    pub generation: Generation,
    pub attempt_count: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub final_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// The identity of this delivery's current generation.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey {
            delivery_id: self.id,
            firing_id: self.firing_id,
            trigger_id: self.trigger_id,
            action_id: self.action_id,
            generation: self.generation,
        }
    }
}

/// A delivery to create with its firing: one per enabled webhook action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub action_id: ActionId,
    pub url: String,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub generation: Generation,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    pub outcome: DecisionKind,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What deliver-webhooks reports after one attempt, for record-deliveries to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub key: DeliveryKey,
    /// The URL the attempt went to: a 410 disables the action only while the action still has
    /// it. Absent in reports of builds before it was added (the delivery's URL stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The attempt's number within its generation, from 1.
    pub attempt: u32,
    /// Made by deliver-webhooks, so a report delivered twice is recorded once.
    pub attempt_id: AttemptId,
    pub outcome: AttemptOutcome,
    pub decision: Decision,
}

impl AttemptReport {
    /// This report with every text that came from outside (the receiver's answer, error texts,
    /// the reason built from them) made storable by [`storable_text`]. record-deliveries keeps
    /// only this form.
    pub fn storable(&self) -> Self {
        self.map_texts(|text| storable_text(text).into_owned())
    }

    /// The last resort when Postgres still refuses [`Self::storable`]: every text reduced to
    /// printable ASCII (anything else as `\u{…}`), and times Postgres cannot store (before
    /// 4713 BC or after 294276 AD) replaced by `now`. Kept so that the delivery moves on; what
    /// was changed stays recognisable.
    pub fn escaped(&self, now: DateTime<Utc>) -> Self {
        let mut escaped = self.map_texts(ascii_text);
        let storable = |t: DateTime<Utc>| {
            if (-4712..=294_275).contains(&t.year()) {
                t
            } else {
                now
            }
        };
        escaped.outcome.started_at = storable(escaped.outcome.started_at);
        if let Decision::Retrying { next_attempt_at } = &mut escaped.decision {
            *next_attempt_at = storable(*next_attempt_at);
        }
        escaped
    }

    fn map_texts(&self, clean: impl Fn(&str) -> String) -> Self {
        let mut report = self.clone();
        let outcome = &mut report.outcome;
        outcome.response_snippet = outcome.response_snippet.as_deref().map(&clean);
        if let Some(error) = &mut outcome.error {
            error.message = clean(&error.message);
        }
        match &mut report.decision {
            Decision::Failed { reason } | Decision::Disabled { reason } => *reason = clean(reason),
            Decision::Delivered | Decision::Retrying { .. } => {}
        }
        report.url = report.url.as_deref().map(&clean);
        report
    }
}

/// Text from outside made storable and readable: Postgres `text` and `jsonb` cannot hold
/// U+0000, and the other control characters (except tab, line feed and carriage return) garble
/// what the API shows; each becomes its escape `\u{…}`, so a receiver that answered with NUL
/// bytes is recorded, and shown as such.
pub fn storable_text(text: &str) -> Cow<'_, str> {
    let keep = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    if text.chars().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

fn ascii_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_texts_escape_nul_and_control_characters_but_keep_whitespace() {
        assert!(matches!(storable_text("fine\ttext\r\n"), Cow::Borrowed(_)));
        assert_eq!(
            storable_text("ok\0no\u{1}\u{7f}\u{9b}é"),
            "ok\\u{0000}no\\u{0001}\\u{007f}\\u{009b}é"
        );
        assert_eq!(ascii_text("é\0 a"), "\\u{00e9}\\u{0000} a");
    }

    #[test]
    fn a_storable_report_has_no_control_characters_left() {
        let report = AttemptReport {
            tenant_id: TenantId::new(),
            key: DeliveryKey::fresh(),
            url: Some("https://hooks.example.com/x".into()),
            attempt: 1,
            attempt_id: AttemptId::new(),
            outcome: AttemptOutcome {
                started_at: DateTime::<Utc>::MIN_UTC,
                latency: std::time::Duration::ZERO,
                status: Some(410),
                error: Some(crate::webhook::AttemptError::new(
                    crate::webhook::AttemptErrorKind::Body,
                    "bad\0",
                )),
                response_snippet: Some("gone\0\0".into()),
                retry_after: None,
                remote_addr: None,
            },
            decision: Decision::Disabled {
                reason: "410\u{1b}[31m".into(),
            },
        };
        let storable = report.storable();
        let texts = |r: &AttemptReport| {
            let reason = match &r.decision {
                Decision::Disabled { reason } => reason.clone(),
                _ => String::new(),
            };
            [
                r.outcome.response_snippet.clone().unwrap_or_default(),
                r.outcome
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
                reason,
            ]
        };
        for text in texts(&storable) {
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
        assert_eq!(
            storable.outcome.response_snippet.as_deref(),
            Some("gone\\u{0000}\\u{0000}")
        );
        let now = Utc::now();
        let escaped = report.escaped(now);
        assert_eq!(
            escaped.outcome.started_at, now,
            "a time Postgres cannot store"
        );
        for text in texts(&escaped) {
            assert!(
                text.chars().all(|c| c.is_ascii() && !c.is_control()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_pending_delivery_is_stuck_when_unsent_by_anyone_or_long_overdue() {
        let now = Utc::now();
        let minutes = chrono::Duration::minutes;
        let on_its_way = Progress {
            next_attempt_at: Some(now + minutes(30)),
            enqueue_claimed_at: Some(now - minutes(40)),
            enqueued_at: Some(now - minutes(40)),
            created_at: now - minutes(60),
        };
        assert!(!on_its_way.is_stuck(now));
        // Its next attempt due 20 minutes ago, and no report since: the message was lost.
        let lost = Progress {
            next_attempt_at: Some(now - minutes(20)),
            ..on_its_way
        };
        assert!(lost.is_stuck(now));
        // Committed but never sent: stuck once nobody holds a fresh claim.
        let being_sent = Progress {
            next_attempt_at: None,
            enqueue_claimed_at: Some(now - chrono::Duration::seconds(30)),
            enqueued_at: None,
            created_at: now - minutes(1),
        };
        assert!(!being_sent.is_stuck(now));
        let sender_died = Progress {
            enqueue_claimed_at: Some(now - minutes(3)),
            ..being_sent
        };
        assert!(sender_died.is_stuck(now));
        let given_back = Progress {
            enqueue_claimed_at: None,
            ..being_sent
        };
        assert!(given_back.is_stuck(now));
        // A first attempt on the queue for 20 minutes without a report.
        let first_lost = Progress {
            next_attempt_at: None,
            enqueue_claimed_at: Some(now - minutes(20)),
            enqueued_at: Some(now - minutes(20)),
            created_at: now - minutes(20),
        };
        assert!(first_lost.is_stuck(now));
    }

    #[test]
    fn decisions_name_their_kind_and_the_status_they_lead_to() {
        let at = Utc::now();
        let retrying = Decision::Retrying {
            next_attempt_at: at,
        };
        assert_eq!(retrying.as_str(), "retrying");
        assert_eq!(retrying.next_attempt_at(), Some(at));
        assert_eq!(retrying.status(), DeliveryStatus::Pending);
        let failed = Decision::Failed {
            reason: "gave up".into(),
        };
        assert_eq!(failed.kind(), DecisionKind::Failed);
        assert_eq!(failed.status(), DeliveryStatus::Failed);
        assert_eq!(Decision::Delivered.status(), DeliveryStatus::Delivered);
        assert!(DeliveryStatus::Disabled.is_retryable());
        assert!(!DeliveryStatus::Pending.is_retryable());
    }

    #[test]
    fn a_key_serialises_flat_with_a_numeric_generation() {
        let key = DeliveryKey::fresh();
        let value = serde_json::to_value(key).unwrap();
        assert_eq!(value["generation"], 1);
        assert_eq!(value["delivery_id"], key.delivery_id.to_string());
        let mut bad = value.clone();
        bad["generation"] = serde_json::json!(0);
        assert!(serde_json::from_value::<DeliveryKey>(bad).is_err());
    }
}
