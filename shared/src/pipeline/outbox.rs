//! Putting deliveries on the deliveries queue: the webhook body goes into a claim-check
//! envelope (S3 when large), the header around it, and the messages out in batches.
//! Used by evaluate-events for new firings and by retry-delivery.

use chrono::Utc;
use futures::StreamExt as _;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::messages::{DeliveryMessage, VERSION, WebhookPayload};
use crate::s3::{ClaimCheck, ClaimCheckError};
use crate::sqs::{OutgoingMessage, SendError, SqsSender};
use crate::tenant::TenantId;

/// Claim-check writes in flight at once.
const WRAP_CONCURRENCY: usize = 8;

/// A delivery to put on the queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    pub firing_id: Uuid,
    pub trigger_id: Uuid,
    pub action_id: Uuid,
    pub url: String,
    pub generation: u32,
}

/// Sends deliveries to one queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    claims: ClaimCheck,
    sqs: SqsSender,
    queue_url: String,
}

impl Outbox {
    /// `claims` should use [`super::config::DELIVERY_BODY_THRESHOLD`], leaving room for the header.
    pub fn new(claims: ClaimCheck, sqs: SqsSender, queue_url: impl Into<String>) -> Self {
        Self {
            claims,
            sqs,
            queue_url: queue_url.into(),
        }
    }

    /// The first attempt's message for `delivery`, with `payload` as its body.
    pub async fn message(
        &self,
        tenant: TenantId,
        delivery: &Outgoing,
        payload: &WebhookPayload,
    ) -> Result<DeliveryMessage, ClaimCheckError> {
        let body = payload.to_json();
        let wrapped = self
            .claims
            .wrap(
                &tenant.to_string(),
                &delivery.delivery_id.to_string(),
                &body,
                Utc::now(),
            )
            .await?;
        let body =
            RawValue::from_string(wrapped.body).map_err(|e| ClaimCheckError::InvalidInput {
                field: "body",
                reason: e.to_string(),
            })?;
        Ok(DeliveryMessage {
            v: VERSION,
            tenant_id: tenant,
            delivery_id: delivery.delivery_id,
            firing_id: delivery.firing_id,
            trigger_id: delivery.trigger_id,
            action_id: delivery.action_id,
            url: delivery.url.clone(),
            generation: delivery.generation,
            attempt: 1,
            not_before: None,
            body,
        })
    }

    /// Builds and sends the messages of `deliveries`; one result per delivery, by id.
    pub async fn send(
        &self,
        tenant: TenantId,
        deliveries: Vec<(Outgoing, WebhookPayload)>,
    ) -> Vec<(Uuid, Result<(), String>)> {
        // Futures collected first, so the caller's future stays `Send` for any lifetime.
        let builds: Vec<_> = deliveries
            .iter()
            .map(|(delivery, payload)| async move {
                (
                    delivery.delivery_id,
                    self.message(tenant, delivery, payload).await,
                )
            })
            .collect();
        let built: Vec<(Uuid, Result<DeliveryMessage, ClaimCheckError>)> =
            futures::stream::iter(builds)
                .buffered(WRAP_CONCURRENCY)
                .collect()
                .await;
        let mut results = Vec::with_capacity(built.len());
        let mut messages = Vec::with_capacity(built.len());
        for (id, message) in built {
            match message {
                Ok(message) => {
                    messages.push(OutgoingMessage::new(id.to_string(), message.to_json()))
                }
                Err(e) => results.push((id, Err(format!("claim check: {e}")))),
            }
        }
        for (id, sent) in self.sqs.send_batch(&self.queue_url, messages).await {
            let id = Uuid::parse_str(&id).unwrap_or_default();
            results.push((id, sent.map(|_| ()).map_err(|e: SendError| e.to_string())));
        }
        results
    }
}
