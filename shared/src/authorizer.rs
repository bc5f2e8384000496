//! The `authorize-request` Lambda authorizer: API key → tenant id.
//!
//! HTTP API, REQUEST type, simple responses. API Gateway caches the answer by the
//! `Authorization` header (the identity source) for the configured TTL, so a revoked key
//! stops working within that TTL (300 s in template.yaml), not instantly.

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::http::header;
use serde::{Deserialize, Serialize};

use crate::postgres::{Database, api_keys};
use crate::tenant::looks_like_api_key;

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
/// not cache them); unknown, malformed or revoked keys are a plain "no" (403).
pub async fn authorize(
    db: &Database,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> anyhow::Result<SimpleResponse> {
    let Some(key) = bearer_key(request).filter(|k| looks_like_api_key(k)) else {
        return Ok(SimpleResponse::deny());
    };
    match api_keys::authenticate(db.pool().await?, key).await? {
        Some(owner) => {
            tracing::info!(tenant_id = %owner.tenant_id, api_key_id = %owner.key_id, "authorized");
            Ok(SimpleResponse {
                is_authorized: true,
                context: Some(AuthContext {
                    tenant_id: owner.tenant_id.to_string(),
                    api_key_id: owner.key_id.to_string(),
                }),
            })
        }
        None => Ok(SimpleResponse::deny()),
    }
}

/// Serves the authorizer for the life of the container.
pub async fn run(db: Database) -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let db: &'static Database = Box::leak(Box::new(db));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorize(db, &event.payload).await.map_err(|err| {
                tracing::error!(error = ?err, "authorizer failed");
                lambda_runtime::Error::from(err)
            })
        },
    ))
    .await
}
