//! `POST /v1/signing-secret/rotate`: a new webhook signing secret for the tenant, shown once.
//! Webhooks are signed with the new secret and, for 24 hours, with the ones it replaced too,
//! so receivers can switch at their own pace (see [`crate::dynamodb::signing_secrets`]).

use chrono::{DateTime, SubsecRound as _, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{ApiError, json, tenant};
use crate::dynamodb::SigningSecretStore;
use crate::event::rfc3339_micros;

/// What the rotation route needs, built once per container.
pub struct SigningApi {
    pub secrets: SigningSecretStore,
}

/// The answer to a rotation.
#[derive(Debug, Serialize)]
pub struct RotatedSecret {
    /// The new `whsec_…` secret: configure it in the receivers. It is not shown again.
    pub secret: String,
    #[serde(with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// Until when webhooks also carry signatures of the secrets this rotation replaced.
    #[serde(with = "rfc3339_micros")]
    pub previous_secrets_valid_until: DateTime<Utc>,
}

/// `POST /v1/signing-secret/rotate`
pub async fn rotate(api: &SigningApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let now = Utc::now().trunc_subsecs(6);
    let secret = api
        .secrets
        .rotate(&tenant.to_string(), now)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tracing::info!(tenant_id = %tenant, "signing secret rotated");
    let overlap = chrono::Duration::from_std(api.secrets.overlap()).unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &RotatedSecret {
            secret: secret.expose().to_owned(),
            created_at: now,
            previous_secrets_valid_until: now + overlap,
        },
    ))
}
