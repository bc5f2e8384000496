//! `POST /v1/deliveries/{id}/retry`: the stage is [`crate::pipeline::redeliver`]. 202 with the
//! delivery's new generation; 409 once it is delivered, while it is pending and on its way,
//! or when its action is disabled or deleted.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::views::DeliveryView;
use super::{ApiError, json, path_id, tenant};
use crate::delivery::{DeliveryStatus, OVERDUE_AFTER};
use crate::ids::DeliveryId;
use crate::pipeline::redeliver::{RedeliverError, Redeliverer};

impl From<RedeliverError> for ApiError {
    fn from(e: RedeliverError) -> Self {
        match e {
            RedeliverError::NotFound => ApiError::NotFound("delivery"),
            RedeliverError::NotRetryable(DeliveryStatus::Pending) => ApiError::Conflict(format!(
                "The delivery is pending: its next attempt is on its way. A pending delivery can be \
                 retried once that attempt is more than {} minutes overdue.",
                OVERDUE_AFTER.num_minutes()
            )),
            RedeliverError::NotRetryable(status) => ApiError::Conflict(format!(
                "The delivery is {}; only failed, disabled or stuck deliveries can be retried.",
                status.as_str()
            )),
            RedeliverError::ActionGone => ApiError::Conflict(
                "The action of this delivery was deleted; there is nowhere to send it.".into(),
            ),
            RedeliverError::ActionDisabled => ApiError::Conflict(
                "The action of this delivery is disabled; enable it (PUT /v1/triggers/{id}) and \
                 retry the delivery."
                    .into(),
            ),
            RedeliverError::EventGone(event_id) => ApiError::Conflict(format!(
                "The event {event_id} of this delivery is no longer kept, so its webhook cannot be rebuilt."
            )),
            RedeliverError::NotQueued(_) => ApiError::Unavailable {
                detail: "The delivery could not be queued; it is pending and unsent, and can be \
                         retried again at once."
                    .into(),
                retry_after_seconds: 1,
                errors: Vec::new(),
            },
            RedeliverError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// `POST /v1/deliveries/{id}/retry`
pub async fn retry(redeliverer: &Redeliverer, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = DeliveryId(path_id(&req, "id", "delivery")?);
    let restarted = redeliverer.retry(tenant, id).await?;
    Ok(json(StatusCode::ACCEPTED, &DeliveryView::from(restarted)))
}
