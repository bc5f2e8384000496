//! `POST /v1/patterns/test`: TriggerIQ's TestEventPattern.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json as json_value};

use super::{ApiError, json, json_body, tenant};
use crate::config::ApiConfig;
use crate::json::{Fields, Problems, reroot};
use crate::pattern::{DEFAULT_MATCH_STEPS, Pattern, PatternLimits};
use crate::wiring::{Clients, InitError};

/// Settings of the pattern test route.
pub struct PatternApi {
    pub max_request_bytes: usize,
    pub limits: PatternLimits,
}

impl PatternApi {
    /// No clients: the route only reads its body.
    pub fn new(config: ApiConfig, _clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            max_request_bytes: config.max_request_bytes,
            limits: config.triggers.pattern,
        })
    }
}

/// Body `{"pattern": {...}, "event": {...}}`; answers `{"matches": bool}`.
pub async fn test(api: &PatternApi, req: Request) -> Result<Response<Body>, ApiError> {
    tenant(&req)?;
    let body = json_body(&req, api.max_request_bytes)?;
    let mut problems = Problems::default();
    let Some(mut fields) = Fields::of(&body, "$", &mut problems) else {
        return Err(ApiError::Validation(problems.0));
    };
    let pattern = fields.required("pattern", &mut problems).and_then(|value| {
        Pattern::from_value(value, &api.limits)
            .map_err(|invalid| {
                for e in invalid.errors {
                    problems.push(reroot("$.pattern", &e.path), e.message);
                }
            })
            .ok()
    });
    let event = match fields.required("event", &mut problems) {
        Some(event @ Value::Object(_)) => Some(event),
        Some(_) => {
            problems.push("$.event", "must be a JSON object");
            None
        }
        None => None,
    };
    fields.finish(&mut problems);
    match (pattern, event) {
        (Some(pattern), Some(event)) if problems.is_empty() => {
            let bytes = serde_json::to_vec(event).map_err(anyhow::Error::from)?;
            // The reference interpreter under an allowance of work: a large event against a
            // pattern of many cases must not cost seconds of CPU per request.
            let matches = pattern
                .matches_within(&bytes, DEFAULT_MATCH_STEPS)
                .map_err(|e| {
                    ApiError::Validation(vec![crate::problem::FieldError::new(
                        "$.event",
                        e.to_string(),
                    )])
                })?;
            Ok(json(StatusCode::OK, &json_value!({ "matches": matches })))
        }
        _ => Err(ApiError::Validation(problems.0)),
    }
}
