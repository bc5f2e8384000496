//! `GET /v1/events/{id}`: a kept event, the triggers it matched and the firings it caused.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt as _, Response};

use super::firings::ReadApi;
use super::views::EventView;
use super::{ApiError, json, tenant};
use crate::postgres::{events, firings};

/// `GET /v1/events/{id}` (the client's id, URL-encoded in the path).
pub async fn get(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = req
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        // No stored id is empty, holds U+0000 or is longer than 256 characters: such a path is
        // simply not found (Postgres would refuse a NUL in the query).
        .filter(|id| !id.is_empty() && !id.contains('\0') && id.chars().count() <= 256)
        .map(str::to_owned)
        .ok_or(ApiError::NotFound("event"))?;
    let pool = api.db.pool().await?;
    let stored = events::get(pool, tenant, &id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let firings = firings::for_event(pool, tenant, &stored.event.id).await?;
    Ok(json(StatusCode::OK, &EventView::new(stored, firings)))
}
