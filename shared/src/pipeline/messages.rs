//! The queue messages of the event pipeline and the webhook body, defined once for producers
//! and consumers alike.
//!
//! Every message carries `"v": 1`. Readers refuse a version they do not know (a newer producer
//! than this consumer: the message waits in the queue, then the DLQ, for a consumer that reads
//! it) but ignore unknown fields, so a producer may add optional fields without a new version.
//!
//! | queue | message | producer → consumer |
//! |---|---|---|
//! | events | [`EventMessage`], inside a claim-check envelope ([`crate::s3`]) | ingest-events → evaluate-events |
//! | deliveries | [`DeliveryMessage`]; its `body` is a claim-check envelope of the webhook body | evaluate-events, retry-delivery, deliver-webhooks (retries) → deliver-webhooks |
//! | delivery-results | [`DeliveryResultMessage`] | deliver-webhooks → record-deliveries |
//!
//! A delivery message keeps the webhook body apart from its header so that a retry (a new
//! message with the next attempt number) reuses the body, and the S3 object behind a large
//! one, unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{Event, rfc3339_micros};
use crate::tenant::TenantId;
use crate::webhook::AttemptOutcome;

/// The message version this code writes and reads.
pub const VERSION: u32 = 1;

/// The `type` of every webhook TriggerIQ sends for a firing.
pub const TRIGGER_FIRED: &str = "trigger.fired";

/// A message whose version this code does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message version {found} is not supported (this build reads {VERSION})")]
pub struct UnsupportedVersion {
    pub found: u32,
}

fn check(v: u32) -> Result<(), UnsupportedVersion> {
    if v == VERSION {
        Ok(())
    } else {
        Err(UnsupportedVersion { found: v })
    }
}

/// Why a queued message cannot be read. Never transient: the same bytes fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not a valid message: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error(transparent)]
    Version(#[from] UnsupportedVersion),
}

/// One accepted event on the events queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub v: u32,
    pub tenant_id: TenantId,
    /// When ingest-events accepted the event; cooldowns are measured on this clock, so a
    /// redelivered message gets the same cooldown decision.
    #[serde(with = "rfc3339_micros")]
    pub received_at: DateTime<Utc>,
    pub event: Event,
}

impl EventMessage {
    pub fn new(tenant_id: TenantId, received_at: DateTime<Utc>, event: Event) -> Self {
        Self {
            v: VERSION,
            tenant_id,
            received_at,
            event,
        }
    }

    /// Reads a message (already taken out of its claim-check envelope).
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let message: Self = serde_json::from_str(text)?;
        check(message.v)?;
        Ok(message)
    }

    /// The text of the message for `event`, without copying the event.
    pub fn to_json(
        tenant_id: TenantId,
        received_at: DateTime<Utc>,
        event: &Event,
    ) -> Result<String, serde_json::Error> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u32,
            tenant_id: TenantId,
            #[serde(with = "rfc3339_micros")]
            received_at: DateTime<Utc>,
            event: &'a Event,
        }
        serde_json::to_string(&Borrowed {
            v: VERSION,
            tenant_id,
            received_at,
            event,
        })
    }
}

/// One webhook delivery attempt to make, on the deliveries queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub v: u32,
    pub tenant_id: TenantId,
    /// Also the `webhook-id`: stable across every attempt of the delivery.
    pub delivery_id: Uuid,
    pub firing_id: Uuid,
    pub trigger_id: Uuid,
    pub action_id: Uuid,
    pub url: String,
    /// Bumped by each retry through the API; results of older generations change nothing.
    pub generation: u32,
    /// The attempt this message makes, 1 for the first of its generation.
    pub attempt: u32,
    /// Not before this instant: waits longer than SQS's 15 minutes are hops (see
    /// [`crate::webhook::retry`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// The webhook body inside a claim-check envelope (`{"v":1,"inline":…}` or `{"v":1,"s3":…}`).
    pub body: Box<RawValue>,
}

impl DeliveryMessage {
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let message: Self = serde_json::from_str(text)?;
        check(message.v)?;
        Ok(message)
    }

    /// The message text.
    pub fn to_json(&self) -> String {
        // Only strings, numbers, uuids, times and already-valid raw JSON: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
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
    /// The schedule is exhausted; the message went to the deliveries DLQ.
    Failed { reason: String },
    /// The target is gone (410) or refused: the action is to be disabled.
    Disabled { reason: String },
}

impl Decision {
    /// The name stored with the attempt.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying { .. } => "retrying",
            Self::Failed { .. } => "failed",
            Self::Disabled { .. } => "disabled",
        }
    }
}

/// One attempt's outcome, on the delivery-results queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryResultMessage {
    pub v: u32,
    pub tenant_id: TenantId,
    pub delivery_id: Uuid,
    pub firing_id: Uuid,
    pub trigger_id: Uuid,
    pub action_id: Uuid,
    pub generation: u32,
    pub attempt: u32,
    /// Made by deliver-webhooks, so a result delivered twice is recorded once.
    pub attempt_id: Uuid,
    pub outcome: AttemptOutcome,
    pub decision: Decision,
}

impl DeliveryResultMessage {
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let message: Self = serde_json::from_str(text)?;
        check(message.v)?;
        Ok(message)
    }
}

/// The trigger as it was when it fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredTrigger {
    pub id: Uuid,
    pub name: String,
    pub version: i64,
}

/// What a firing's webhook says: `data` of the Standard Webhooks body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringData {
    pub firing_id: Uuid,
    pub trigger: FiredTrigger,
    #[serde(with = "rfc3339_micros")]
    pub matched_at: DateTime<Utc>,
    /// Why it fired, for conditions that have reasons (empty for `every`).
    pub reasons: Value,
    pub event: Event,
    #[serde(with = "rfc3339_micros")]
    pub received_at: DateTime<Utc>,
}

/// The webhook body, in the Standard Webhooks shape `{type, timestamp, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "rfc3339_micros")]
    pub timestamp: DateTime<Utc>,
    pub data: FiringData,
}

impl WebhookPayload {
    /// The body for a firing of `trigger` on `event`.
    pub fn fired(data: FiringData) -> Self {
        Self {
            kind: TRIGGER_FIRED.to_owned(),
            timestamp: data.matched_at,
            data,
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SubsecRound as _, TimeZone as _};

    fn event() -> Event {
        Event {
            id: "evt-1".into(),
            kind: "payment.failed".into(),
            source: Some("billing".into()),
            subject: None,
            time: Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 0).unwrap(),
            data: Some(serde_json::json!({"amount": 120})),
        }
    }

    #[test]
    fn event_messages_round_trip_and_ignore_unknown_fields() {
        let tenant = TenantId::new();
        let message = EventMessage::new(tenant, Utc::now().trunc_subsecs(6), event());
        let text = EventMessage::to_json(tenant, message.received_at, &message.event).unwrap();
        assert_eq!(text, serde_json::to_string(&message).unwrap());
        let mut value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["v"], 1);
        value["added_later"] = serde_json::json!(true);
        let back = EventMessage::parse(&value.to_string()).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn unknown_versions_are_refused_by_name() {
        let mut value =
            serde_json::to_value(EventMessage::new(TenantId::new(), Utc::now(), event())).unwrap();
        value["v"] = serde_json::json!(2);
        let err = EventMessage::parse(&value.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "message version 2 is not supported (this build reads 1)"
        );
        assert!(matches!(
            DeliveryResultMessage::parse("{}"),
            Err(MessageError::Invalid(_))
        ));
    }

    #[test]
    fn delivery_messages_keep_the_body_envelope_verbatim() {
        let body = RawValue::from_string(r#"{"v":1,"inline":{"a" : 1.50}}"#.to_owned()).unwrap();
        let message = DeliveryMessage {
            v: VERSION,
            tenant_id: TenantId::new(),
            delivery_id: Uuid::now_v7(),
            firing_id: Uuid::now_v7(),
            trigger_id: Uuid::now_v7(),
            action_id: Uuid::now_v7(),
            url: "https://example.com/hook".into(),
            generation: 1,
            attempt: 1,
            not_before: None,
            body,
        };
        let text = message.to_json();
        assert!(!text.contains("not_before"), "{text}");
        let back = DeliveryMessage::parse(&text).unwrap();
        assert_eq!(back.body.get(), r#"{"v":1,"inline":{"a" : 1.50}}"#);
    }

    #[test]
    fn the_webhook_body_is_standard_webhooks_shaped() {
        let matched_at = Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 1).unwrap();
        let payload = WebhookPayload::fired(FiringData {
            firing_id: Uuid::now_v7(),
            trigger: FiredTrigger {
                id: Uuid::now_v7(),
                name: "Payment failed".into(),
                version: 3,
            },
            matched_at,
            reasons: serde_json::json!([]),
            event: event(),
            received_at: matched_at,
        });
        let value: Value = serde_json::from_str(&payload.to_json()).unwrap();
        assert_eq!(value["type"], "trigger.fired");
        assert_eq!(value["timestamp"], "2026-05-17T09:30:01Z");
        assert_eq!(value["data"]["trigger"]["name"], "Payment failed");
        assert_eq!(value["data"]["event"]["data"]["amount"], 120);
        assert_eq!(value["data"]["reasons"], serde_json::json!([]));
    }
}
