//! The JSON shapes the read routes answer with: views built from the domain types, so that a
//! stored row can change without changing the API (`openapi.yaml` describes these).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::delivery::{Attempt, DecisionKind, Delivery, DeliveryStatus};
use crate::event::{Event, rfc3339_micros};
use crate::firing::{FiredTrigger, Firing};
use crate::ids::{ActionId, AttemptId, DeliveryId, EventId, FiringId, Generation, TriggerId};
use crate::postgres::events::StoredEvent;

/// A firing as the API shows it.
#[derive(Debug, Serialize)]
pub struct FiringView {
    pub id: FiringId,
    /// The trigger as it was when it fired.
    pub trigger: FiredTrigger,
    pub event_id: EventId,
    #[serde(with = "rfc3339_micros")]
    pub matched_at: DateTime<Utc>,
    pub reasons: Value,
    /// Present on `GET /v1/firings/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryView>>,
}

impl From<Firing> for FiringView {
    fn from(f: Firing) -> Self {
        Self {
            id: f.id,
            trigger: f.trigger,
            event_id: f.event_id,
            matched_at: f.matched_at,
            reasons: f.reasons,
            deliveries: None,
        }
    }
}

impl FiringView {
    /// The firing with its deliveries, each with its attempts (`attempts` of any order).
    pub fn with_deliveries(
        firing: Firing,
        deliveries: Vec<Delivery>,
        attempts: Vec<Attempt>,
    ) -> Self {
        let mut attempts: Vec<Option<Attempt>> = attempts.into_iter().map(Some).collect();
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let mine = attempts
                    .iter_mut()
                    .filter(|a| a.as_ref().is_some_and(|a| a.delivery_id == d.id))
                    .filter_map(Option::take)
                    .map(AttemptView::from)
                    .collect();
                DeliveryView {
                    attempts: Some(mine),
                    ..DeliveryView::from(d)
                }
            })
            .collect();
        Self {
            deliveries: Some(deliveries),
            ..Self::from(firing)
        }
    }
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
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
    /// Present on `GET /v1/firings/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            firing_id: d.firing_id,
            trigger_id: d.trigger_id,
            action_id: d.action_id,
            url: d.url,
            status: d.status,
            generation: d.generation,
            attempt_count: d.attempt_count,
            last_attempt_at: d.last_attempt_at,
            last_status_code: d.last_status_code,
            next_attempt_at: d.next_attempt_at,
            final_reason: d.final_reason,
            created_at: d.created_at,
            updated_at: d.updated_at,
            attempts: None,
        }
    }
}

/// Why an attempt got no usable answer.
#[derive(Debug, Serialize)]
pub struct AttemptErrorView {
    pub kind: String,
    pub message: String,
}

/// One delivery attempt as the API shows it.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub id: AttemptId,
    pub generation: Generation,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<AttemptErrorView>,
    /// The first bytes (up to 1 KiB) of the response body.
    pub response_snippet: Option<String>,
    /// `delivered`, `retrying`, `failed` or `disabled`.
    pub outcome: DecisionKind,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        let error = match (a.error_kind, a.error) {
            (None, None) => None,
            (kind, message) => Some(AttemptErrorView {
                kind: kind.unwrap_or_default(),
                message: message.unwrap_or_default(),
            }),
        };
        Self {
            id: a.id,
            generation: a.generation,
            attempt: a.attempt,
            started_at: a.started_at,
            latency_ms: a.latency_ms,
            status_code: a.status_code,
            error,
            response_snippet: a.response_snippet,
            outcome: a.outcome,
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// An event as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(flatten)]
    pub event: Event,
    #[serde(with = "rfc3339_micros")]
    pub received_at: DateTime<Utc>,
    #[serde(with = "rfc3339_micros")]
    pub evaluated_at: DateTime<Utc>,
    /// Every enabled trigger whose pattern matched, whether or not it fired.
    pub matched_trigger_ids: Vec<TriggerId>,
    /// For each matched trigger, what became of the event: `fired` (with the firing's id),
    /// `cooling_down`, `in_progress` (with how far its condition is), `not_counted` (with
    /// why), or `not_fired` for events kept before outcomes were recorded.
    pub matched: Vec<Value>,
    pub firings: Vec<FiringView>,
    /// Later receipts of the same id, after the idempotency window: accepted by ingest, not
    /// evaluated again (an id names one event).
    pub later_receipts: Vec<LaterReceipt>,
}

/// A receipt of an event id that was already kept.
#[derive(Debug, Serialize)]
pub struct LaterReceipt {
    #[serde(with = "rfc3339_micros")]
    pub received_at: DateTime<Utc>,
    /// Always `not_evaluated`.
    pub outcome: &'static str,
}

impl EventView {
    pub fn new(stored: StoredEvent, firings: Vec<Firing>) -> Self {
        Self {
            event: stored.event,
            received_at: stored.received_at,
            evaluated_at: stored.evaluated_at,
            matched: stored
                .matched_trigger_ids
                .iter()
                .map(|id| {
                    let fired = firings.iter().find(|f| f.trigger.id == *id);
                    let mut note = match (fired, stored.outcomes.get(id.to_string())) {
                        (Some(f), _) => serde_json::json!({"outcome": "fired", "firing_id": f.id}),
                        (None, Some(note)) => note.clone(),
                        (None, None) => serde_json::json!({"outcome": "not_fired"}),
                    };
                    if let Some(map) = note.as_object_mut() {
                        map.insert("trigger_id".into(), serde_json::json!(id));
                    }
                    note
                })
                .collect(),
            matched_trigger_ids: stored.matched_trigger_ids,
            firings: firings.into_iter().map(Into::into).collect(),
            later_receipts: stored
                .reused_at
                .into_iter()
                .map(|received_at| LaterReceipt {
                    received_at,
                    outcome: "not_evaluated",
                })
                .collect(),
        }
    }
}
