//! `POST /v1/events`: one event, or `{"events": [...]}` with up to 500.
//!
//! The answer lists every event's outcome in request order (`accepted`, `duplicate` or
//! `rejected` with its errors). The status says what the request achieved as a whole:
//!
//! - 202 when at least one event is on the queue (accepted now or earlier: duplicates);
//!   rejected events in the same request are listed with `retryable`;
//! - 422 when every event is invalid (problem+json, every error with its path);
//! - 503 with `Retry-After` when no event could be queued for a reason on our side;
//! - 413 for a body over 5 MB or an event over 1 MB (naming each such event);
//! - 429 with `Retry-After` when the tenant is over its rate (a token per event, see
//!   [`crate::dynamodb::rate_limit`]: API Gateway HTTP APIs cannot limit per tenant).

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::{ApiError, json, json_bytes, tenant};
use crate::event::BodyError;
use crate::pipeline::ingest::{IngestError, IngestReport, Ingestor, Status};

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Body(BodyError::Malformed(detail)) => ApiError::MalformedJson(detail),
            IngestError::Body(BodyError::EventsTooLarge(errors)) => ApiError::PartsTooLarge(errors),
            IngestError::Body(BodyError::Invalid(errors)) => ApiError::Validation(errors),
            IngestError::RateLimited {
                retry_after_seconds,
            } => ApiError::TooManyRequests {
                retry_after_seconds,
            },
            IngestError::Unavailable(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "ingest unavailable");
                ApiError::Unavailable {
                    detail: "No event was queued; send the request again.".into(),
                    retry_after_seconds: 1,
                    errors: Vec::new(),
                }
            }
        }
    }
}

/// `POST /v1/events`
pub async fn ingest(ingestor: &Ingestor, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let bytes = json_bytes(&req, ingestor.limits.max_body_bytes)?;
    let report = ingestor.ingest(tenant, bytes, Utc::now()).await?;
    tracing::info!(
        tenant_id = %tenant,
        accepted = report.accepted,
        duplicates = report.duplicates,
        rejected = report.rejected,
        "events ingested"
    );
    answer(report)
}

/// 202 with the report when any event is on the queue; otherwise the problem that explains
/// why none is.
fn answer(report: IngestReport) -> Result<Response<Body>, ApiError> {
    if report.accepted + report.duplicates > 0 {
        return Ok(json(StatusCode::ACCEPTED, &report));
    }
    let retryable = report
        .events
        .iter()
        .any(|e| matches!(e.status, Status::Rejected { retryable: true }));
    let errors = report.events.into_iter().flat_map(|e| e.errors).collect();
    Err(if retryable {
        ApiError::Unavailable {
            detail: "No event was queued; send them again.".into(),
            retry_after_seconds: 1,
            errors,
        }
    } else {
        ApiError::Validation(errors)
    })
}
