//! `POST /v1/triggers/test`: a trigger run over events on a simulated clock
//! ([`crate::condition::trial`]), stored nowhere.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::{ApiError, json, json_bytes, tenant};
use crate::condition::trial::{MAX_TRIAL_DEPTH, Trial, TrialLimits};
use crate::config::ApiConfig;
use crate::json::strict;
use crate::problem::FieldError;
use crate::trigger::TriggerLimits;
use crate::wiring::{Clients, InitError};

/// Settings of the trigger test route.
pub struct TrialApi {
    pub max_request_bytes: usize,
    /// The deployment's trigger limits, as create-trigger holds triggers to them (its minimum
    /// timer too: a trial of a trigger that could not be created would mislead).
    pub triggers: TriggerLimits,
    pub limits: TrialLimits,
}

impl TrialApi {
    /// No clients: the route only reads its body.
    pub fn new(config: ApiConfig, _clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            max_request_bytes: config.max_request_bytes,
            triggers: config.triggers,
            limits: TrialLimits::default(),
        })
    }
}

/// Body `{"trigger": {...}, "events": [...], "until": "10m"}`; answers
/// `{"firings": [{"time", "group", "event_ids", "reason"}], "truncated": bool}`.
pub async fn test(api: &TrialApi, req: Request) -> Result<Response<Body>, ApiError> {
    tenant(&req)?;
    // The one JSON rule, with room for the events' own depth inside `events`.
    let body: serde_json::Value =
        strict::read(json_bytes(&req, api.max_request_bytes)?, MAX_TRIAL_DEPTH)?;
    let trial = Trial::parse(&body, &api.triggers, &api.limits).map_err(ApiError::Validation)?;
    let ran = trial.run(api.limits.simulate).map_err(|e| {
        ApiError::Validation(vec![FieldError::new("$.trigger.pattern", e.to_string())])
    })?;
    Ok(json(StatusCode::OK, &ran))
}
