//! The queue messages of the event pipeline, defined once for producers and consumers alike
//! (the webhook body itself is [`crate::firing::WebhookPayload`]).
//!
//! Every message carries `"v": 1`. Readers refuse a version they do not know (a newer producer
//! than this consumer: the message waits in the queue, then the DLQ, for a consumer that reads
//! it) but ignore unknown fields, so a producer may add optional fields without a new version.
//!
//! | queue | message | producer → consumer |
//! |---|---|---|
//! | events | [`EventMessage`], inside a claim-check envelope ([`crate::s3`]) | ingest-events → evaluate-events |
//! | deliveries | [`DeliveryMessage`]; its `body` is a claim-check envelope of the webhook body | evaluate-events, retry-delivery, record-deliveries (retries, when due) → deliver-webhooks |
//! | delivery-results | [`DeliveryResultMessage`] (an attempt's report) or a [`ScheduledRetry`] (the next attempt, waiting until it is due) | deliver-webhooks, record-deliveries (waits) → record-deliveries |
//!
//! A delivery message keeps the webhook body apart from its header so that a retry (a new
//! message with the next attempt number) reuses the body, and the S3 object behind a large
//! one, unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::delivery::{AttemptReport, DeliveryKey};
use crate::event::{Event, rfc3339_micros};
use crate::ids::TenantId;

/// The message version this code writes and reads.
pub const VERSION: u32 = 1;

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
pub enum UnreadableMessage {
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
    pub fn parse(text: &str) -> Result<Self, UnreadableMessage> {
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

/// One webhook delivery attempt to make, on the deliveries queue. On the wire its key's fields
/// sit beside the others (see [`wire`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "wire::DeliveryMessage", into = "wire::DeliveryMessage")]
pub struct DeliveryMessage {
    pub v: u32,
    pub tenant_id: TenantId,
    /// Which delivery and which of its generations (results of older ones change nothing).
    pub key: DeliveryKey,
    pub url: String,
    /// The attempt this message makes, 1 for the first of its generation.
    pub attempt: u32,
    /// Not before this instant: waits longer than SQS's 15 minutes are hops (see
    /// [`crate::webhook::retry`]).
    pub not_before: Option<DateTime<Utc>>,
    /// The webhook body inside a claim-check envelope (`{"v":1,"inline":…}` or `{"v":1,"s3":…}`).
    pub body: Box<RawValue>,
}

impl DeliveryMessage {
    pub fn parse(text: &str) -> Result<Self, UnreadableMessage> {
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

/// The deliveries queue's message as it is written. serde's `flatten` cannot carry the body's
/// raw JSON (it buffers fields into values first), so the key's fields are listed here, once.
mod wire {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use serde_json::value::RawValue;

    use crate::delivery::DeliveryKey;
    use crate::ids::{ActionId, DeliveryId, FiringId, Generation, TenantId, TriggerId};

    #[derive(Serialize, Deserialize)]
    pub(super) struct DeliveryMessage {
        v: u32,
        tenant_id: TenantId,
        delivery_id: DeliveryId,
        firing_id: FiringId,
        trigger_id: TriggerId,
        action_id: ActionId,
        url: String,
        generation: Generation,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<DateTime<Utc>>,
        body: Box<RawValue>,
    }

    impl From<DeliveryMessage> for super::DeliveryMessage {
        fn from(w: DeliveryMessage) -> Self {
            Self {
                v: w.v,
                tenant_id: w.tenant_id,
                key: DeliveryKey {
                    delivery_id: w.delivery_id,
                    firing_id: w.firing_id,
                    trigger_id: w.trigger_id,
                    action_id: w.action_id,
                    generation: w.generation,
                },
                url: w.url,
                attempt: w.attempt,
                not_before: w.not_before,
                body: w.body,
            }
        }
    }

    impl From<super::DeliveryMessage> for DeliveryMessage {
        fn from(m: super::DeliveryMessage) -> Self {
            Self {
                v: m.v,
                tenant_id: m.tenant_id,
                delivery_id: m.key.delivery_id,
                firing_id: m.key.firing_id,
                trigger_id: m.key.trigger_id,
                action_id: m.key.action_id,
                url: m.url,
                generation: m.key.generation,
                attempt: m.attempt,
                not_before: m.not_before,
                body: m.body,
            }
        }
    }
}

/// One attempt's report, on the delivery-results queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryResultMessage {
    pub v: u32,
    #[serde(flatten)]
    pub report: AttemptReport,
}

impl DeliveryResultMessage {
    pub fn new(report: AttemptReport) -> Self {
        Self { v: VERSION, report }
    }

    pub fn parse(text: &str) -> Result<Self, UnreadableMessage> {
        let message: Self = serde_json::from_str(text)?;
        check(message.v)?;
        Ok(message)
    }

    /// The message text.
    pub fn to_json(&self) -> String {
        // Ids, numbers, times and strings only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A delivery's next attempt on the delivery-results queue: `{"v":1,"retry":{…a delivery
/// message…}}`. deliver-webhooks hands it to record-deliveries, which keeps it waiting until it
/// is due (re-sent with a delay of at most 15 minutes at a time), then reads the action again and
/// releases the attempt to the deliveries queue with the action's current URL, once.
pub struct ScheduledRetry;

impl ScheduledRetry {
    /// The text of the retry message for `delivery` (its attempt and `not_before` set).
    pub fn to_json(delivery: &DeliveryMessage) -> String {
        Self::wrap(&delivery.to_json())
    }

    /// Wraps a delivery message's text as it is, without reading it again.
    pub fn wrap(delivery_json: &str) -> String {
        format!("{{\"v\":{VERSION},\"retry\":{delivery_json}}}")
    }
}

/// A message on the delivery-results queue.
#[derive(Debug)]
pub enum ResultsQueueMessage {
    /// An attempt's report.
    Report(AttemptReport),
    /// A next attempt, waiting to be released (see [`ScheduledRetry`]).
    Retry(DeliveryMessage),
}

impl ResultsQueueMessage {
    pub fn parse(text: &str) -> Result<Self, UnreadableMessage> {
        #[derive(Deserialize)]
        struct Envelope {
            v: u32,
            #[serde(default)]
            retry: Option<Box<RawValue>>,
        }
        let envelope: Envelope = serde_json::from_str(text)?;
        check(envelope.v)?;
        match envelope.retry {
            Some(retry) => Ok(Self::Retry(DeliveryMessage::parse(retry.get())?)),
            None => Ok(Self::Report(DeliveryResultMessage::parse(text)?.report)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SubsecRound as _, TimeZone as _};
    use serde_json::Value;

    use crate::ids::EventId;

    fn event() -> Event {
        Event {
            id: EventId::new("evt-1"),
            kind: "payment.failed".into(),
            source: Some("billing".into()),
            subject: None,
            time: Utc.with_ymd_and_hms(2026, 5, 17, 9, 30, 0).unwrap(),
            data: Some(crate::json::RawJson::of(
                &serde_json::json!({"amount": 120}),
            )),
            attributes: Default::default(),
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
            Err(UnreadableMessage::Invalid(_))
        ));
    }

    #[test]
    fn delivery_messages_keep_the_body_envelope_verbatim() {
        let body = RawValue::from_string(r#"{"v":1,"inline":{"a" : 1.50}}"#.to_owned()).unwrap();
        let message = DeliveryMessage {
            v: VERSION,
            tenant_id: TenantId::new(),
            key: DeliveryKey::fresh(),
            url: "https://example.com/hook".into(),
            attempt: 1,
            not_before: None,
            body,
        };
        let text = message.to_json();
        assert!(!text.contains("not_before"), "{text}");
        let flat: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(flat["generation"], 1, "the key's fields sit at the top");
        assert_eq!(flat["delivery_id"], message.key.delivery_id.to_string());
        let back = DeliveryMessage::parse(&text).unwrap();
        assert_eq!(back.body.get(), r#"{"v":1,"inline":{"a" : 1.50}}"#);

        // As a scheduled retry on the results queue, the body still travels verbatim.
        let retry = ScheduledRetry::to_json(&back);
        match ResultsQueueMessage::parse(&retry).unwrap() {
            ResultsQueueMessage::Retry(again) => {
                assert_eq!(again.body.get(), r#"{"v":1,"inline":{"a" : 1.50}}"#);
                assert_eq!(again.key, message.key);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ResultsQueueMessage::parse(r#"{"v":2,"retry":{}}"#),
            Err(UnreadableMessage::Version(_))
        ));
    }
}
