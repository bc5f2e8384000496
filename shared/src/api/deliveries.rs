//! `POST /v1/deliveries/{id}/retry`: puts a failed or disabled delivery back on the queue as a
//! new generation, starting the retry schedule over (409 while it is pending or once it is
//! delivered). The retry does not re-enable a disabled action: new firings still skip it
//! until the trigger is updated.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::firings::DeliveryView;
use super::{ApiError, json, path_id, tenant};
use crate::aws::{Lazy, LazyS3};
use crate::consumers::evaluate::payload;
use crate::pipeline::config::{DELIVERY_BODY_THRESHOLD, RetryDeliveryConfig};
use crate::pipeline::outbox::{Outbox, Outgoing};
use crate::postgres::deliveries::{self, DeliveryStatus};
use crate::postgres::{Database, events, firings};
use crate::s3::ClaimCheck;
use crate::sqs::{OutgoingMessage, SqsSender};

/// What the retry route needs, built once per container.
pub struct RetryApi {
    pub db: Database,
    outbox: Outbox,
    sqs: SqsSender,
    queue_url: String,
}

impl RetryApi {
    /// SQS and S3 only (S3 when first used): the route never calls DynamoDB.
    pub fn new(
        db: Database,
        sqs: impl Into<Lazy<aws_sdk_sqs::Client>>,
        s3: impl Into<LazyS3>,
        config: &RetryDeliveryConfig,
    ) -> Self {
        let sqs = SqsSender::new(sqs);
        Self {
            db,
            outbox: Outbox::new(
                ClaimCheck::new(s3, &config.bucket_name).with_threshold(DELIVERY_BODY_THRESHOLD),
                sqs.clone(),
                &config.deliveries_queue_url,
            ),
            sqs,
            queue_url: config.deliveries_queue_url.clone(),
        }
    }
}

/// `POST /v1/deliveries/{id}/retry`
pub async fn retry(api: &RetryApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = path_id(&req, "id", "delivery")?;
    let pool = api.db.pool().await?;
    // The row stays locked until the message is on the queue and the new generation is
    // committed, so two retries of one delivery cannot both send.
    let mut tx = pool.begin().await?;
    let delivery = deliveries::lock(&mut tx, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    if matches!(
        delivery.status,
        DeliveryStatus::Pending | DeliveryStatus::Delivered
    ) {
        return Err(ApiError::Conflict(format!(
            "The delivery is {}; only failed or disabled deliveries can be retried.",
            delivery.status.as_str()
        )));
    }
    let firing = firings::get(&mut *tx, tenant, delivery.firing_id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let event = events::get(&mut *tx, tenant, &firing.event_id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "The event {} of this delivery is no longer kept, so its webhook cannot be rebuilt.",
                firing.event_id
            ))
        })?;
    let generation = delivery.generation + 1;
    let message = api
        .outbox
        .message(
            tenant,
            &Outgoing {
                delivery_id: delivery.id,
                firing_id: firing.id,
                trigger_id: delivery.trigger_id,
                action_id: delivery.action_id,
                url: delivery.url.clone(),
                generation: u32::try_from(generation).unwrap_or(u32::MAX),
            },
            &payload(&firing, &event.event, event.received_at),
        )
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    api.sqs
        .send_one(
            &api.queue_url,
            OutgoingMessage::new(delivery.id.to_string(), message.to_json()),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, delivery_id = %delivery.id, "retry not queued");
            ApiError::Unavailable {
                detail: "The delivery could not be queued; try again.".into(),
                retry_after_seconds: 1,
                errors: Vec::new(),
            }
        })?;
    let restarted = deliveries::restart(&mut tx, tenant, id, generation).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant, delivery_id = %id, generation, "delivery retried");
    Ok(json(StatusCode::ACCEPTED, &DeliveryView::from(restarted)))
}
