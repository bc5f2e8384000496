//! `GET /v1/signing-secret`: the tenant's current webhook signing secret (made now if the tenant
//! has none yet, so the answer is always one receivers can verify with).
//!
//! `POST /v1/signing-secret/rotate`: a new webhook signing secret for the tenant, shown once.
//! Webhooks are signed with the new secret and, for 24 hours, with the ones it replaced too,
//! so receivers can switch at their own pace (see [`crate::dynamodb::signing_secrets`]). At most
//! 4 replaced secrets sign at once: a rotation that would end one of them before its 24 hours
//! answers 409 with `Retry-After` (and the time in the detail) instead of breaking that promise.

use chrono::{DateTime, SubsecRound as _, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{ApiError, secret_json, tenant};
use crate::config::SigningConfig;
use crate::dynamodb::{Rotation, SigningSecretStore, Table};
use crate::event::rfc3339_micros;
use crate::kms::Sealer;
use crate::wiring::{Clients, InitError};

/// What the signing-secret routes need, built once per container.
pub struct SigningApi {
    pub secrets: SigningSecretStore,
}

impl SigningApi {
    /// DynamoDB and KMS, built now: every request needs both.
    pub fn new(config: SigningConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        Ok(Self {
            secrets: SigningSecretStore::new(
                Table::new(aws.dynamodb.clone().built(), config.table_name),
                Sealer::new(aws.kms.clone().built(), config.signing_key_id),
            ),
        })
    }
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

/// The answer to a read of the current secret.
#[derive(Debug, Serialize)]
pub struct CurrentSecret {
    /// The `whsec_…` secret webhooks are signed with first.
    pub secret: String,
    /// When it was made (whole seconds: the store keeps no more).
    #[serde(with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// While secrets it replaced still sign too: until when the last of them does. Absent
    /// when webhooks carry only this secret's signature.
    #[serde(with = "optional_time", skip_serializing_if = "Option::is_none")]
    pub previous_secrets_valid_until: Option<DateTime<Utc>>,
}

mod optional_time {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::event::rfc3339_micros::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// `GET /v1/signing-secret`. A tenant created before `tenant create` made its first secret,
/// that has sent no webhook yet, gets it made here (the same `get_or_create` deliver-webhooks
/// uses), so the answer is always the secret webhooks will be signed with.
pub async fn get(api: &SigningApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let now = Utc::now().trunc_subsecs(0);
    let secrets = api.secrets.get_or_create(tenant, now).await?;
    let previous_secrets_valid_until = secrets
        .previous
        .iter()
        .map(|p| p.expires_at)
        .filter(|expires| *expires > now)
        .max();
    Ok(secret_json(
        StatusCode::OK,
        &CurrentSecret {
            secret: secrets.current.expose().to_owned(),
            created_at: secrets.current_since,
            previous_secrets_valid_until,
        },
    ))
}

/// `POST /v1/signing-secret/rotate`
pub async fn rotate(api: &SigningApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    let now = Utc::now().trunc_subsecs(6);
    let secret = match api.secrets.rotate(tenant, now).await? {
        Rotation::Rotated(secret) => secret,
        Rotation::Refused { next_possible_at } => {
            let wait = (next_possible_at - now).num_seconds().max(1);
            return Err(ApiError::ConflictUntil {
                detail: format!(
                    "{} replaced secrets are still signing webhooks, each for 24 hours after its \
                     rotation; another rotation now would end the oldest early. The next rotation \
                     is possible at {}.",
                    api.secrets.max_previous(),
                    next_possible_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                retry_after_seconds: u64::try_from(wait).unwrap_or(1),
            });
        }
    };
    tracing::info!(tenant_id = %tenant, "signing secret rotated");
    let overlap = chrono::Duration::from_std(api.secrets.overlap()).unwrap_or_default();
    Ok(secret_json(
        StatusCode::OK,
        &RotatedSecret {
            secret: secret.expose().to_owned(),
            created_at: now,
            previous_secrets_valid_until: now + overlap,
        },
    ))
}
