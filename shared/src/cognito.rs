//! The `cognito-pre-token` function: the Cognito user pool's pre-token-generation trigger
//! (event version 2), which puts the user's tenant into the tokens as the `tenant_id` claim
//! the routes read (`crate::api::tenant`).
//!
//! The tenant comes from the user attribute `custom:tenant_id` and from nothing else: not
//! from the client metadata, the user's groups or the requested scopes, which a user (or the
//! app acting for them) chooses. template.yaml's app client may read that attribute but not
//! write it, so only an administrator (`AdminUpdateUserAttributes`, with IAM) sets it. A user
//! without a valid tenant gets no tokens at all: the trigger fails, and Cognito refuses the
//! sign-in rather than issue a token no route would accept.

use aws_lambda_events::cognito::{
    ClaimsAndScopeOverrideDetailsV2, CognitoAccessTokenGenerationV2,
    CognitoEventUserPoolsPreTokenGenV2, CognitoIdTokenGenerationV2,
};
use serde_json::Value;

use crate::tenant::TenantId;

/// The admin-only attribute that holds the user's tenant.
pub const TENANT_ATTRIBUTE: &str = "custom:tenant_id";
/// The claim the routes read.
pub const TENANT_CLAIM: &str = "tenant_id";

/// Why a user gets no tokens. The message reaches the signing-in client through Cognito, so
/// it says what to fix without echoing the attribute's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreTokenError {
    #[error("the user belongs to no tenant: an administrator must set {TENANT_ATTRIBUTE}")]
    NoTenant,
    #[error("the user's {TENANT_ATTRIBUTE} is not a tenant id: an administrator must correct it")]
    BadTenant,
}

impl From<PreTokenError> for lambda_runtime::Diagnostic {
    fn from(e: PreTokenError) -> Self {
        let error_type = match e {
            PreTokenError::NoTenant => "NoTenant",
            PreTokenError::BadTenant => "BadTenant",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// The event with its response set: `tenant_id` added to the access token and the ID token.
pub fn pre_token_generation(
    mut event: CognitoEventUserPoolsPreTokenGenV2,
) -> Result<CognitoEventUserPoolsPreTokenGenV2, PreTokenError> {
    let raw = event
        .request
        .user_attributes
        .get(TENANT_ATTRIBUTE)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or(PreTokenError::NoTenant)?;
    let tenant = TenantId::parse(raw).map_err(|_| PreTokenError::BadTenant)?;
    let claim = (TENANT_CLAIM.to_owned(), Value::String(tenant.to_string()));

    let mut access = CognitoAccessTokenGenerationV2::default();
    access.claims_to_add_or_override.extend([claim.clone()]);
    let mut id = CognitoIdTokenGenerationV2::default();
    id.claims_to_add_or_override.extend([claim]);
    let mut details = ClaimsAndScopeOverrideDetailsV2::default();
    details.access_token_generation = Some(access);
    details.id_token_generation = Some(id);
    event.response.claims_and_scope_override_details = Some(details);
    Ok(event)
}

/// Serves the trigger for the life of the container.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<CognitoEventUserPoolsPreTokenGenV2>| async move {
            let user = event
                .payload
                .cognito_event_user_pools_header
                .user_name
                .clone();
            pre_token_generation(event.payload)
                .inspect(|_| tracing::info!(user = ?user, "tenant claim added"))
                .inspect_err(|e| tracing::warn!(user = ?user, error = %e, "no tokens"))
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pre-token-generation event (version 2) as Cognito sends it.
    fn event(attributes: Value, client_metadata: Value) -> CognitoEventUserPoolsPreTokenGenV2 {
        serde_json::from_value(json!({
            "version": "2",
            "triggerSource": "TokenGeneration_Authentication",
            "region": "us-east-1",
            "userPoolId": "us-east-1_example",
            "userName": "ana",
            "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
            "request": {
                "userAttributes": attributes,
                "groupConfiguration": {"groupsToOverride": [], "iamRolesToOverride": [], "preferredRole": null},
                "clientMetadata": client_metadata,
                "scopes": ["triggeriq/read", "triggeriq/admin"]
            },
            "response": {"claimsAndScopeOverrideDetails": null}
        }))
        .expect("a Cognito event")
    }

    const TENANT: &str = "0190f0a0-0000-7000-8000-000000000001";

    fn claims(out: &CognitoEventUserPoolsPreTokenGenV2) -> (Option<&Value>, Option<&Value>) {
        let details = out
            .response
            .claims_and_scope_override_details
            .as_ref()
            .expect("details");
        (
            details
                .access_token_generation
                .as_ref()
                .and_then(|a| a.claims_to_add_or_override.get(TENANT_CLAIM)),
            details
                .id_token_generation
                .as_ref()
                .and_then(|i| i.claims_to_add_or_override.get(TENANT_CLAIM)),
        )
    }

    #[test]
    fn the_admin_set_attribute_becomes_the_tenant_claim_of_both_tokens() {
        let out = pre_token_generation(event(
            json!({"sub": "s", "email": "ana@example.com", "custom:tenant_id": TENANT}),
            json!({}),
        ))
        .expect("tokens");
        assert_eq!(claims(&out), (Some(&json!(TENANT)), Some(&json!(TENANT))));
        // The scopes are left as the app client granted them: no scope is added.
        let access = out
            .response
            .claims_and_scope_override_details
            .as_ref()
            .and_then(|d| d.access_token_generation.as_ref())
            .expect("access");
        assert!(access.scopes_to_add.is_empty());
        // As JSON, in the shape Cognito reads.
        let answer = serde_json::to_value(&out).expect("json");
        assert_eq!(
            answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
                ["tenant_id"],
            TENANT
        );
    }

    #[test]
    fn the_sample_event_gets_the_demo_tenant() {
        let sample: CognitoEventUserPoolsPreTokenGenV2 =
            serde_json::from_str(include_str!("../../events/cognito-pre-token.json"))
                .expect("the sample parses");
        let out = pre_token_generation(sample).expect("tokens");
        assert_eq!(claims(&out).0, Some(&json!(TENANT)));
    }

    #[test]
    fn the_tenant_the_client_asks_for_is_ignored() {
        // The client metadata is whatever the signing-in app sends.
        let other = "0190f0a0-0000-7000-8000-0000000000ff";
        let out = pre_token_generation(event(
            json!({"custom:tenant_id": TENANT}),
            json!({"tenant_id": other, "custom:tenant_id": other}),
        ))
        .expect("tokens");
        assert_eq!(claims(&out).0, Some(&json!(TENANT)));
        // Without the attribute, asking for a tenant gets no token at all.
        let refused = pre_token_generation(event(
            json!({"tenant_id": other, "custom:tenant": other}),
            json!({"tenant_id": other}),
        ));
        assert_eq!(refused.err(), Some(PreTokenError::NoTenant));
    }

    #[test]
    fn a_missing_blank_or_malformed_tenant_gets_no_tokens() {
        for (attributes, expected) in [
            (json!({}), PreTokenError::NoTenant),
            (json!({"custom:tenant_id": ""}), PreTokenError::NoTenant),
            (json!({"custom:tenant_id": "   "}), PreTokenError::NoTenant),
            (
                json!({"custom:tenant_id": "acme"}),
                PreTokenError::BadTenant,
            ),
            (
                json!({"custom:tenant_id": "\u{0}"}),
                PreTokenError::BadTenant,
            ),
            (
                json!({"custom:tenant_id": format!("{TENANT} {TENANT}")}),
                PreTokenError::BadTenant,
            ),
        ] {
            let got = pre_token_generation(event(attributes.clone(), json!({})));
            assert_eq!(got.err(), Some(expected.clone()), "{attributes}");
        }
        // The message names the attribute, never the value it held.
        let message = PreTokenError::BadTenant.to_string();
        assert!(message.contains(TENANT_ATTRIBUTE) && !message.contains("acme"));
    }
}
