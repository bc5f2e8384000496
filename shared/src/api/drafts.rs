//! `POST /v1/triggers/draft`: a trigger drafted by a model from a sentence
//! ([`crate::pipeline::draft`]), validated as `POST /v1/triggers` validates a body, and
//! neither created nor enabled.

use aws_sdk_bedrockruntime::Client as BedrockClient;
use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::{ApiError, json, json_bytes, tenant};
use crate::ai::draft::{DraftInput, DraftLimits, MAX_DRAFT_DEPTH};
use crate::bedrock::{BedrockError, Converse};
use crate::config::{ApiConfig, DraftConfig};
use crate::dynamodb::{Table, TokenBudget};
use crate::json::strict;
use crate::pipeline::draft::{DraftError, Drafter};
use crate::wiring::{Clients, InitError};

/// How long a client should wait after Bedrock throttled or did not answer.
pub const MODEL_RETRY_AFTER_SECONDS: u64 = 10;

/// Settings and clients of the draft route, built once per container.
pub struct DraftApi {
    pub max_request_bytes: usize,
    pub drafter: Drafter,
}

impl DraftApi {
    /// DynamoDB (the budget, built now: every request reads it) and `bedrock`, the function's
    /// own Bedrock client (`crate::aws::bedrock_client`: no other function links one).
    pub fn new(
        config: ApiConfig,
        draft: DraftConfig,
        clients: &Clients,
        bedrock: BedrockClient,
    ) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        let budget = TokenBudget::new(Table::new(aws.dynamodb.clone().built(), draft.table_name));
        Ok(Self {
            max_request_bytes: config.max_request_bytes,
            drafter: Drafter::new(
                Converse::new(bedrock),
                budget,
                draft.model_id,
                draft.tokens_per_day,
                config.triggers,
                DraftLimits::default(),
            ),
        })
    }
}

/// Body `{"text": "…", "example_events": [...]}`; answers
/// `{"draft", "explanation", "warnings", "example_matches"}`.
pub async fn draft(api: &DraftApi, req: Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(&req)?;
    // The one JSON rule, with room for the events' own depth inside `example_events`.
    let body: serde_json::Value =
        strict::read(json_bytes(&req, api.max_request_bytes)?, MAX_DRAFT_DEPTH)?;
    let now = Utc::now();
    let input =
        DraftInput::parse(&body, api.drafter.limits(), now).map_err(ApiError::Validation)?;
    let drafted = api
        .drafter
        .draft(tenant, &input, now)
        .await
        .map_err(|e| match e {
            DraftError::OverBudget {
                retry_after_seconds,
            } => ApiError::AiBudgetExhausted {
                retry_after_seconds,
            },
            DraftError::Invalid(errors) => ApiError::DraftInvalid(errors),
            DraftError::Model(BedrockError::Retryable(cause)) => {
                tracing::warn!(%cause, "Bedrock gave no draft, for now");
                ApiError::Unavailable {
                    detail: "The model is busy or did not answer in time; send the request again."
                        .into(),
                    retry_after_seconds: MODEL_RETRY_AFTER_SECONDS,
                    errors: Vec::new(),
                }
            }
            DraftError::Model(BedrockError::Permanent(cause)) => {
                tracing::error!(%cause, "Bedrock refused a draft request");
                ApiError::BadGateway(
                    "The model service refused the request: a problem of this deployment's \
                     model settings, not of your request."
                        .into(),
                )
            }
            DraftError::Budget(cause) => {
                tracing::error!(error = %crate::error_chain(&cause), "token budget unavailable");
                ApiError::Unavailable {
                    detail: "Nothing was drafted; send the request again.".into(),
                    retry_after_seconds: 1,
                    errors: Vec::new(),
                }
            }
        })?;
    tracing::info!(
        calls = drafted.calls,
        input_tokens = drafted.usage.input_tokens,
        output_tokens = drafted.usage.output_tokens,
        "drafted"
    );
    Ok(json(StatusCode::OK, &drafted))
}
