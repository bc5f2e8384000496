//! Putting deliveries on the deliveries queue: the webhook body goes into a claim-check
//! envelope (S3 when large), the header around it, and the messages out in batches.
//! Used by evaluate (new firings) and redeliver (a retry through the API).

use chrono::Utc;
use futures::StreamExt as _;
use serde_json::value::RawValue;

use super::messages::{DeliveryMessage, VERSION};
use crate::delivery::DeliveryKey;
use crate::firing::WebhookPayload;
use crate::ids::{DeliveryId, TenantId};
use crate::s3::{ClaimCheck, ClaimCheckError};
use crate::sqs::{OutgoingMessage, SendError, SqsSender};

/// Claim-check writes in flight at once.
const WRAP_CONCURRENCY: usize = 8;

/// A delivery to put on the queue: which run of which delivery, and where it goes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub key: DeliveryKey,
    pub url: String,
}

/// Sends deliveries to one queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    claims: ClaimCheck,
    sqs: SqsSender,
    queue_url: String,
}

impl Outbox {
    /// `claims` should use [`crate::config::pipeline::DELIVERY_BODY_THRESHOLD`], leaving room
    /// for the header.
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
                tenant,
                &delivery.key.delivery_id.to_string(),
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
            key: delivery.key,
            url: delivery.url.clone(),
            attempt: 1,
            not_before: None,
            body,
        })
    }

    /// Sends one message (a retry through the API); the caller decides what a failure means.
    pub async fn send_one(&self, message: &DeliveryMessage) -> Result<(), SendError> {
        self.sqs
            .send_one(
                &self.queue_url,
                OutgoingMessage::new(message.key.delivery_id.to_string(), message.to_json()),
            )
            .await
            .map(|_| ())
    }

    /// Builds and sends the messages of `deliveries`; one result per delivery, by id.
    pub async fn send(
        &self,
        tenant: TenantId,
        deliveries: Vec<(Outgoing, WebhookPayload)>,
    ) -> Vec<(DeliveryId, Result<(), String>)> {
        // Futures collected first, so the caller's future stays `Send` for any lifetime.
        let builds: Vec<_> = deliveries
            .iter()
            .map(|(delivery, payload)| async move {
                (
                    delivery.key.delivery_id,
                    self.message(tenant, delivery, payload).await,
                )
            })
            .collect();
        let built: Vec<(DeliveryId, Result<DeliveryMessage, ClaimCheckError>)> =
            futures::stream::iter(builds)
                .buffered(WRAP_CONCURRENCY)
                .collect()
                .await;
        let mut results = Vec::with_capacity(built.len());
        let mut ids = Vec::with_capacity(built.len());
        let mut messages = Vec::with_capacity(built.len());
        for (id, message) in built {
            match message {
                Ok(message) => {
                    messages.push(OutgoingMessage::new(id.to_string(), message.to_json()));
                    ids.push(id);
                }
                Err(e) => results.push((id, Err(format!("claim check: {e}")))),
            }
        }
        // One result per message, in the order sent.
        let sent = self.sqs.send_batch(&self.queue_url, messages).await;
        for (id, (_, sent)) in ids.into_iter().zip(sent) {
            results.push((id, sent.map(|_| ()).map_err(|e: SendError| e.to_string())));
        }
        results
    }
}
