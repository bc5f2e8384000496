//! The `authorize-request` Lambda authorizer: API key → tenant id.
//!
//! HTTP API, REQUEST type, simple responses. The answer's context carries the key's tenant
//! (`tenant_id`), the key (`api_key_id`) and what it may do (`scopes`, space-separated, e.g.
//! `"ingest read"`); the routes check the scope (`crate::api::routes`). Unknown, revoked or
//! malformed keys and the keys of a suspended tenant are refused.
//!
//! API Gateway caches the answer by the `Authorization` header (the identity source) for the
//! configured TTL, so a revoked key, a changed scope or a suspension takes effect within that
//! TTL (60 s in template.yaml), not instantly.

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::http::header;
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::postgres::{Database, api_keys};
use crate::tenant::looks_like_api_key;
use crate::wiring::{Clients, InitError};

/// What the authorizer needs, built once per container.
pub struct Authorizer {
    pub db: Database,
}

impl Authorizer {
    pub fn new(clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            db: clients.database()?,
        })
    }
}

/// Why a request could not be decided (never a "no": that is an answer). API Gateway answers
/// 500 and does not cache it, so the client's retry is decided afresh.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    #[error("the key store is unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl From<sqlx::Error> for AuthorizerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<anyhow::Error> for AuthorizerError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}

impl From<AuthorizerError> for Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        // The cause stays in the function's log; the runtime's report names only the kind.
        Diagnostic {
            error_type: "AuthorizerUnavailable".into(),
            error_message: e.to_string(),
        }
    }
}

/// A simple authorizer response. `context` reaches the route as `requestContext.authorizer.lambda`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    pub is_authorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthContext>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    pub tenant_id: String,
    pub api_key_id: String,
    /// The key's scopes, space-separated (`crate::tenant::Scopes`' display form).
    pub scopes: String,
}

impl SimpleResponse {
    fn deny() -> Self {
        Self {
            is_authorized: false,
            context: None,
        }
    }
}

/// The key in `Authorization: Bearer <key>`, if the header has that shape.
pub fn bearer_key(request: &ApiGatewayV2CustomAuthorizerV2Request) -> Option<&str> {
    let value = request
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Decides one request. Database failures are errors (API Gateway answers 500 and does
/// not cache them); unknown, malformed or revoked keys, and every key of a suspended tenant,
/// are a plain "no" (403).
pub async fn authorize(
    authorizer: &Authorizer,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<SimpleResponse, AuthorizerError> {
    let Some(key) = bearer_key(request).filter(|k| looks_like_api_key(k)) else {
        return Ok(SimpleResponse::deny());
    };
    match api_keys::authenticate(authorizer.db.pool().await?, key).await? {
        Some(owner) => {
            tracing::info!(tenant_id = %owner.tenant_id, api_key_id = %owner.key_id, scopes = %owner.scopes, "authorized");
            Ok(SimpleResponse {
                is_authorized: true,
                context: Some(AuthContext {
                    tenant_id: owner.tenant_id.to_string(),
                    api_key_id: owner.key_id.to_string(),
                    scopes: owner.scopes.to_string(),
                }),
            })
        }
        None => Ok(SimpleResponse::deny()),
    }
}

/// Serves the authorizer for the life of the container.
pub async fn run(authorizer: Authorizer) -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let authorizer: &'static Authorizer = Box::leak(Box::new(authorizer));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorize(authorizer, &event.payload)
                .await
                .inspect_err(|err| {
                    tracing::error!(error = %crate::error_chain(err), "authorizer failed");
                })
        },
    ))
    .await
}
