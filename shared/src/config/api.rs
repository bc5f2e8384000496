//! Settings of the HTTP API routes.

use std::time::Duration;

use super::{ConfigError, env_or, webhook_targets_from_env};
use crate::pattern::PatternLimits;
use crate::trigger::{ConditionLimits, TriggerLimits};

/// Settings of the HTTP API functions.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted by the trigger routes, in bytes (`MAX_REQUEST_BYTES`).
    pub max_request_bytes: usize,
    pub triggers: TriggerLimits,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = TriggerLimits::default();
        let pattern_defaults = PatternLimits::default();
        let max_cooldown_days: u64 = env_or(
            "MAX_COOLDOWN_DAYS",
            defaults.max_cooldown.as_secs() / 86_400,
        )?;
        Ok(Self {
            max_request_bytes: env_or("MAX_REQUEST_BYTES", 256 * 1024)?,
            triggers: TriggerLimits {
                max_name_chars: env_or("MAX_TRIGGER_NAME_CHARS", defaults.max_name_chars)?,
                max_description_chars: env_or(
                    "MAX_TRIGGER_DESCRIPTION_CHARS",
                    defaults.max_description_chars,
                )?,
                max_actions: env_or("MAX_ACTIONS_PER_TRIGGER", defaults.max_actions)?,
                max_url_chars: defaults.max_url_chars,
                max_triggers_per_tenant: env_or(
                    "MAX_TRIGGERS_PER_TENANT",
                    defaults.max_triggers_per_tenant,
                )?,
                max_pattern_cost_per_tenant: env_or(
                    "MAX_PATTERN_COST_PER_TENANT",
                    defaults.max_pattern_cost_per_tenant,
                )?,
                min_cooldown: defaults.min_cooldown,
                max_cooldown: Duration::from_secs(max_cooldown_days * 86_400),
                webhook_targets: webhook_targets_from_env()?,
                pattern: PatternLimits {
                    max_chars: env_or("MAX_PATTERN_CHARS", pattern_defaults.max_chars)?,
                    max_depth: env_or("MAX_PATTERN_DEPTH", pattern_defaults.max_depth)?,
                },
                condition: ConditionLimits {
                    min_timer: Duration::from_secs(env_or(
                        "MIN_CONDITION_TIMER_SECONDS",
                        defaults.condition.min_timer.as_secs(),
                    )?),
                    ..defaults.condition
                },
            },
        })
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 256 * 1024,
            triggers: TriggerLimits::default(),
        }
    }
}

/// One class of routes' per-tenant limit: bursts of `burst` requests, refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRate {
    pub per_second: f64,
    pub burst: u32,
}

/// The per-tenant request limits of the routes other than ingest (ingest counts events:
/// [`super::IngestConfig`]). Every route function but ingest reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// `TABLE_NAME`: where the buckets are kept.
    pub table_name: String,
    /// `RATE_LIMIT_READS_PER_SECOND` (100) and `RATE_LIMIT_READS_BURST` (500): the `GET` routes,
    /// `POST /v1/patterns/test` and `POST /v1/triggers/test`, together, per tenant.
    pub reads: RouteRate,
    /// `RATE_LIMIT_WRITES_PER_SECOND` (20) and `RATE_LIMIT_WRITES_BURST` (100): trigger
    /// writes, delivery retries and signing-secret routes, together, per tenant.
    pub writes: RouteRate,
}

impl ThrottleConfig {
    pub const DEFAULT_READS: RouteRate = RouteRate {
        per_second: 100.0,
        burst: 500,
    };
    pub const DEFAULT_WRITES: RouteRate = RouteRate {
        per_second: 20.0,
        burst: 100,
    };

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: super::env_required("TABLE_NAME")?,
            reads: route_rate("READS", Self::DEFAULT_READS)?,
            writes: route_rate("WRITES", Self::DEFAULT_WRITES)?,
        })
    }
}

fn route_rate(class: &str, default: RouteRate) -> Result<RouteRate, ConfigError> {
    let rate_name = format!("RATE_LIMIT_{class}_PER_SECOND");
    let per_second: f64 = env_or(&rate_name, default.per_second)?;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(ConfigError {
            name: rate_name,
            reason: format!("must be a positive number, found {per_second}"),
        });
    }
    let burst_name = format!("RATE_LIMIT_{class}_BURST");
    let burst: u32 = env_or(&burst_name, default.burst)?;
    if burst == 0 {
        return Err(ConfigError {
            name: burst_name,
            reason: "must be at least 1".into(),
        });
    }
    Ok(RouteRate { per_second, burst })
}

/// The model a deployment drafts triggers with when `BEDROCK_MODEL_ID` is unset: low-cost,
/// on demand, and able to call a forced tool (docs/ai.md: Claude 3 and later, Amazon Nova).
pub const DEFAULT_BEDROCK_MODEL_ID: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
/// A tenant's AI tokens per UTC day when `AI_TOKENS_PER_DAY` is unset: about a hundred drafts.
pub const DEFAULT_AI_TOKENS_PER_DAY: u64 = 200_000;

/// Settings of draft-trigger (`POST /v1/triggers/draft`), beside [`ApiConfig`]'s limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftConfig {
    /// `TABLE_NAME`: the request buckets and the tenants' token budgets.
    pub table_name: String,
    /// `BEDROCK_MODEL_ID` (the template's `BedrockModelId`): a model id, inference profile id
    /// or ARN; the function's role may invoke this model and no other.
    pub model_id: String,
    /// `AI_TOKENS_PER_DAY` (200,000): a tenant's input and output tokens per UTC day, for
    /// drafts (and AI checks, which share the budget).
    pub tokens_per_day: u64,
}

impl DraftConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let model_id = env_or("BEDROCK_MODEL_ID", DEFAULT_BEDROCK_MODEL_ID.to_owned())?;
        crate::ai::check_model_id(&model_id).map_err(|reason| ConfigError {
            name: "BEDROCK_MODEL_ID".into(),
            reason: format!("{model_id:?} {reason}"),
        })?;
        Ok(Self {
            table_name: super::env_required("TABLE_NAME")?,
            model_id,
            tokens_per_day: env_or("AI_TOKENS_PER_DAY", DEFAULT_AI_TOKENS_PER_DAY)?,
        })
    }
}
