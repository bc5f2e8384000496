//! `GET /v1/firings` (filter by trigger and time range, newest first, cursor pagination) and
//! `GET /v1/firings/{id}` (with its deliveries and their attempts).

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::page::{self, page};
use super::views::FiringView;
use super::{ApiError, json, path_id, query, tenant};
use crate::ids::{FiringId, TriggerId};
use crate::postgres::firings::{self, FiringFilter};
use crate::postgres::{Database, deliveries};
use crate::problem::FieldError;
use crate::wiring::{Clients, InitError};

/// What the read routes need, built once per container.
pub struct ReadApi {
    pub db: Database,
}

impl ReadApi {
    pub fn new(clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            db: clients.database()?,
        })
    }
}

fn time_param(req: &Request, name: &str, problems: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let raw = query(req, name)?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            problems.push(FieldError::new(
                format!("?{name}"),
                "must be an RFC 3339 time like 2026-05-17T09:30:00Z",
            ));
            None
        }
    }
}

/// The filter of a list request, or every problem with its parameters.
fn filter(req: &Request) -> Result<(FiringFilter, i64), ApiError> {
    let mut problems = Vec::new();
    let (limit, after) = page::params(req, &mut problems);
    let trigger_id = query(req, "trigger_id").and_then(|raw| {
        TriggerId::parse(raw)
            .map_err(|_| problems.push(FieldError::new("?trigger_id", "is not a trigger id")))
            .ok()
    });
    let since = time_param(req, "since", &mut problems);
    let until = time_param(req, "until", &mut problems);
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        problems.push(FieldError::new("?since", "is after ?until"));
    }
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let filter = FiringFilter {
        trigger_id,
        since,
        until,
        after,
    };
    Ok((filter, limit))
}

/// `GET /v1/firings?trigger_id=&since=&until=&limit=&cursor=`
pub async fn list(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let (filter, limit) = filter(&req)?;
    let rows = firings::list(api.db.pool().await?, tenant, &filter, limit + 1).await?;
    let page = page(rows, limit, |f| (f.matched_at, f.id), FiringView::from);
    Ok(json(StatusCode::OK, &page))
}

/// `GET /v1/firings/{id}`: the firing, its deliveries and every attempt.
pub async fn get(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = FiringId(path_id(&req, "id", "firing")?);
    let pool = api.db.pool().await?;
    let firing = firings::get(pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("firing"))?;
    let deliveries = deliveries::for_firing(pool, tenant, id).await?;
    let attempts = deliveries::attempts_for_firing(pool, tenant, id).await?;
    let view = FiringView::with_deliveries(firing, deliveries, attempts);
    Ok(json(StatusCode::OK, &view))
}
