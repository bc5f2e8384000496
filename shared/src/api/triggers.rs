//! Trigger management routes: create, list, get, replace (optimistic concurrency), delete.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::page::{self, page};
use super::{ApiError, json, json_body, path_id, query, tenant};
use crate::config::ApiConfig;
use crate::postgres::Database;
use crate::postgres::triggers::{self as repo, TriggerWriteError};
use crate::problem::FieldError;
use crate::trigger::{BodyKind, TriggerBody, TriggerId};
use crate::wiring::{Clients, InitError};

/// What the trigger routes need, built once per container.
pub struct TriggerApi {
    pub db: Database,
    pub config: ApiConfig,
}

impl TriggerApi {
    pub fn new(config: ApiConfig, clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            db: clients.database()?,
            config,
        })
    }
}

fn with_etag(mut response: Response<Body>, version: i64) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn write_error(err: TriggerWriteError, via_if_match: bool) -> ApiError {
    match err {
        TriggerWriteError::NotFound | TriggerWriteError::NoTenant => ApiError::NotFound("trigger"),
        TriggerWriteError::VersionMismatch { expected, current } => {
            let detail = format!(
                "You sent version {expected}, but the trigger is at version {current}; read it again and reapply your change."
            );
            if via_if_match {
                ApiError::PreconditionFailed(detail)
            } else {
                ApiError::Conflict(detail)
            }
        }
        TriggerWriteError::LimitReached { limit } => ApiError::LimitReached(format!(
            "A tenant can have at most {limit} triggers; delete one before creating another."
        )),
        TriggerWriteError::CostBudget { total, budget } => ApiError::LimitReached(format!(
            "With this trigger the tenant's enabled patterns would hold {total} values to match \
             ($or cases expanded), over the tenant's budget of {budget}; simplify a pattern or \
             disable a trigger."
        )),
        TriggerWriteError::Db(e) => e.into(),
    }
}

/// `If-Match`: `"3"`, `W/"3"` or `3` name version 3; `*` matches any version (`Some(None)`).
fn if_match(req: &Request) -> Result<Option<Option<i64>>, ApiError> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<i64>().map(|v| Some(Some(v))).map_err(|_| {
        ApiError::BadRequest(vec![FieldError::new(
            "If-Match",
            "must be the trigger's ETag, e.g. \"3\" (its version), or *",
        )])
    })
}

/// `POST /v1/triggers`
pub async fn create(api: &TriggerApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let body = json_body(&req, api.config.max_request_bytes)?;
    let parsed = TriggerBody::parse(&body, BodyKind::Create, &api.config.triggers)
        .map_err(ApiError::Validation)?;
    let pool = api.db.pool().await?;
    let trigger = repo::create(pool, tenant, &parsed.spec, (&api.config.triggers).into())
        .await
        .map_err(|e| write_error(e, false))?;
    tracing::info!(tenant_id = %tenant, trigger_id = %trigger.id, "trigger created");
    let mut response = with_etag(json(StatusCode::CREATED, &trigger), trigger.version);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/triggers/{}", trigger.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v1/triggers/{id}`
pub async fn get(api: &TriggerApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = TriggerId(path_id(&req, "id", "trigger")?);
    let trigger = repo::get(api.db.pool().await?, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("trigger"))?;
    Ok(with_etag(json(StatusCode::OK, &trigger), trigger.version))
}

/// `GET /v1/triggers?limit=&cursor=&enabled=`
pub async fn list(api: &TriggerApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let mut problems = Vec::new();
    let (limit, after) = page::params::<TriggerId>(&req, &mut problems);
    let enabled = match query(&req, "enabled") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            problems.push(FieldError::new("?enabled", "must be true or false"));
            None
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let rows = repo::list(api.db.pool().await?, tenant, enabled, after, limit + 1).await?;
    Ok(json(StatusCode::OK, &page(rows, limit, |t| t.id, |t| t)))
}

/// `PUT /v1/triggers/{id}`: full replacement, based on the version in `If-Match` or the body.
pub async fn update(api: &TriggerApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = TriggerId(path_id(&req, "id", "trigger")?);
    let header_version = if_match(&req)?;
    let body = json_body(&req, api.config.max_request_bytes)?;
    let parsed = TriggerBody::parse(&body, BodyKind::Replace, &api.config.triggers)
        .map_err(ApiError::Validation)?;
    if parsed.id.is_some_and(|body_id| body_id != id) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "$.id",
            "differs from the trigger id in the path",
        )]));
    }
    let pool = api.db.pool().await?;
    let (expected, via_if_match) = match (header_version, parsed.version) {
        (Some(Some(h)), Some(b)) if h != b => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "$.version",
                format!("is {b} but If-Match names version {h}; send one or make them agree"),
            )]));
        }
        (Some(Some(h)), _) => (h, true),
        (Some(None), Some(b)) | (None, Some(b)) => (b, false),
        (Some(None), None) => {
            // `If-Match: *` — any current version will do.
            let current = repo::get(pool, tenant, id)
                .await?
                .ok_or(ApiError::NotFound("trigger"))?;
            (current.version, true)
        }
        (None, None) => {
            return Err(ApiError::PreconditionRequired(
                "Send the version you read, in If-Match (the ETag) or as \"version\" in the body."
                    .into(),
            ));
        }
    };
    let budget = (&api.config.triggers).into();
    let trigger = repo::replace(pool, tenant, id, &parsed.spec, expected, budget)
        .await
        .map_err(|e| write_error(e, via_if_match))?;
    tracing::info!(tenant_id = %tenant, trigger_id = %trigger.id, version = trigger.version, "trigger replaced");
    Ok(with_etag(json(StatusCode::OK, &trigger), trigger.version))
}

/// `DELETE /v1/triggers/{id}` (honours `If-Match` when sent).
pub async fn delete(api: &TriggerApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = TriggerId(path_id(&req, "id", "trigger")?);
    let expected = if_match(&req)?.flatten();
    repo::delete(api.db.pool().await?, tenant, id, expected)
        .await
        .map_err(|e| write_error(e, true))?;
    tracing::info!(tenant_id = %tenant, trigger_id = %id, "trigger deleted");
    Ok(super::empty(StatusCode::NO_CONTENT))
}
