//! `GET /v1/events/{id}`: a kept event, the triggers it matched and the firings it caused.

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::Serialize;
use uuid::Uuid;

use super::firings::{FiringView, ReadApi};
use super::{ApiError, json, tenant};
use crate::event::{Event, rfc3339_micros};
use crate::postgres::{events, firings};

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
    pub matched_trigger_ids: Vec<Uuid>,
    pub firings: Vec<FiringView>,
}

/// `GET /v1/events/{id}` (the client's id, URL-encoded in the path).
pub async fn get(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = req
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(ApiError::NotFound("event"))?;
    let pool = api.db.pool().await?;
    let stored = events::get(pool, tenant, &id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let firings = firings::for_event(pool, tenant, &id).await?;
    Ok(json(
        StatusCode::OK,
        &EventView {
            event: stored.event,
            received_at: stored.received_at,
            evaluated_at: stored.evaluated_at,
            matched_trigger_ids: stored.matched_trigger_ids,
            firings: firings.into_iter().map(Into::into).collect(),
        },
    ))
}
