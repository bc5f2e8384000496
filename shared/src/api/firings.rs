//! `GET /v1/firings` (filter by trigger and time range, newest first, cursor pagination) and
//! `GET /v1/firings/{id}` (with its deliveries and their attempts). Also the JSON views of
//! firings, deliveries and attempts that the other pipeline routes answer with.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{ApiError, json, page_limit, path_id, query, tenant};
use crate::event::rfc3339_micros;
use crate::pipeline::messages::FiredTrigger;
use crate::postgres::Database;
use crate::postgres::deliveries::{self, Attempt, Delivery};
use crate::postgres::firings::{self, Firing, FiringFilter};
use crate::problem::FieldError;

/// What the read routes need, built once per container.
pub struct ReadApi {
    pub db: Database,
}

/// A firing as the API shows it.
#[derive(Debug, Serialize)]
pub struct FiringView {
    pub id: Uuid,
    /// The trigger as it was when it fired.
    pub trigger: FiredTrigger,
    pub event_id: String,
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
            trigger: FiredTrigger {
                id: f.trigger_id,
                name: f.trigger_name,
                version: f.trigger_version,
            },
            event_id: f.event_id,
            matched_at: f.matched_at,
            reasons: f.reasons,
            deliveries: None,
        }
    }
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// The delivery's fields, as kept.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Present on `GET /v1/firings/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> Self {
        Self {
            delivery,
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
    pub id: Uuid,
    pub generation: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<AttemptErrorView>,
    /// The first bytes (up to 1 KiB) of the response body.
    pub response_snippet: Option<String>,
    /// `delivered`, `retrying`, `failed` or `disabled`.
    pub outcome: String,
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

/// One page of firings and the cursor of the next page, if any.
#[derive(Debug, Serialize)]
pub struct FiringPage {
    pub items: Vec<FiringView>,
    pub next_cursor: Option<String>,
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp_micros()))
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (micros, id) = text.split_once(':')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::parse_str(id).ok()?,
    ))
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

/// `GET /v1/firings?trigger_id=&since=&until=&limit=&cursor=`
pub async fn list(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let mut problems = Vec::new();
    let limit = page_limit(&req, &mut problems);
    let trigger_id = query(&req, "trigger_id").and_then(|raw| match Uuid::parse_str(raw) {
        Ok(id) => Some(id),
        Err(_) => {
            problems.push(FieldError::new("?trigger_id", "is not a trigger id"));
            None
        }
    });
    let since = time_param(&req, "since", &mut problems);
    let until = time_param(&req, "until", &mut problems);
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        problems.push(FieldError::new("?since", "is after ?until"));
    }
    let after = query(&req, "cursor").and_then(|raw| {
        let decoded = decode_cursor(raw);
        if decoded.is_none() {
            problems.push(FieldError::new(
                "?cursor",
                "is not a cursor this API returned",
            ));
        }
        decoded
    });
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let filter = FiringFilter {
        trigger_id,
        since,
        until,
        after,
    };
    let mut rows = firings::list(api.db.pool().await?, tenant, &filter, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|f| encode_cursor(f.matched_at, f.id))
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &FiringPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        },
    ))
}

/// `GET /v1/firings/{id}`: the firing, its deliveries and every attempt.
pub async fn get(api: &ReadApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let id = path_id(&req, "id", "firing")?;
    let pool = api.db.pool().await?;
    let firing = firings::get(pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("firing"))?;
    let deliveries = deliveries::for_firing(pool, tenant, id).await?;
    let mut attempts = deliveries::attempts_for_firing(pool, tenant, id).await?;
    let mut view = FiringView::from(firing);
    view.deliveries = Some(
        deliveries
            .into_iter()
            .map(|d| {
                let mut delivery = DeliveryView::from(d);
                let (mine, rest): (Vec<Attempt>, Vec<Attempt>) = std::mem::take(&mut attempts)
                    .into_iter()
                    .partition(|a| a.delivery_id == delivery.delivery.id);
                attempts = rest;
                delivery.attempts = Some(mine.into_iter().map(Into::into).collect());
                delivery
            })
            .collect(),
    );
    Ok(json(StatusCode::OK, &view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let at = DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12:nope")), None);
    }
}
