//! Firings: a trigger that fired on an event, as kept, and the webhook body that tells the
//! tenant's receivers (the Standard Webhooks shape `{type, timestamp, data}`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, rfc3339_micros};
use crate::ids::{EventId, FiringId, TriggerId};

/// The `type` of every webhook TriggerIQ sends for a firing.
pub const TRIGGER_FIRED: &str = "trigger.fired";

/// The trigger as it was when it fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredTrigger {
    pub id: TriggerId,
    pub name: String,
    pub version: i64,
}

/// A trigger firing on an event, with the trigger as it was. One per (trigger, event).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub id: FiringId,
    pub trigger: FiredTrigger,
    pub event_id: EventId,
    pub matched_at: DateTime<Utc>,
    /// Why it fired, for conditions that have reasons (empty for `every`).
    pub reasons: Value,
}

/// What a firing's webhook says: `data` of the Standard Webhooks body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringData {
    pub firing_id: FiringId,
    pub trigger: FiredTrigger,
    #[serde(with = "rfc3339_micros")]
    pub matched_at: DateTime<Utc>,
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
    /// The body of `firing` on `event`, which was received at `received_at`: the same bytes
    /// for the first delivery and for every retry of it.
    pub fn for_firing(firing: &Firing, event: &Event, received_at: DateTime<Utc>) -> Self {
        Self {
            kind: TRIGGER_FIRED.to_owned(),
            timestamp: firing.matched_at,
            data: FiringData {
                firing_id: firing.id,
                trigger: firing.trigger.clone(),
                matched_at: firing.matched_at,
                reasons: firing.reasons.clone(),
                event: event.clone(),
                received_at,
            },
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_json(&self) -> String {
        // Strings, numbers, ids, times and JSON values only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn the_webhook_body_is_standard_webhooks_shaped() {
        let matched_at = Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 1).unwrap();
        let firing = Firing {
            id: FiringId::new(),
            trigger: FiredTrigger {
                id: TriggerId::new(),
                name: "Payment failed".into(),
                version: 3,
            },
            event_id: EventId::new("evt-1"),
            matched_at,
            reasons: serde_json::json!([]),
        };
        let event = Event {
            id: EventId::new("evt-1"),
            kind: "payment.failed".into(),
            source: Some("billing".into()),
            subject: None,
            time: Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 0).unwrap(),
            data: Some(crate::json::RawJson::of(
                &serde_json::json!({"amount": 120}),
            )),
            attributes: Default::default(),
        };
        let payload = WebhookPayload::for_firing(&firing, &event, matched_at);
        let value: Value = serde_json::from_str(&payload.to_json()).unwrap();
        assert_eq!(value["type"], "trigger.fired");
        assert_eq!(value["timestamp"], "2026-05-17T09:30:01Z");
        assert_eq!(value["data"]["firing_id"], firing.id.to_string());
        assert_eq!(value["data"]["trigger"]["name"], "Payment failed");
        assert_eq!(value["data"]["event"]["data"]["amount"], 120);
        assert_eq!(value["data"]["reasons"], serde_json::json!([]));
    }
}
