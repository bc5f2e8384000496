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
