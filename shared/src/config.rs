//! Deployment settings read from the environment, each with a default and a clear error.

use std::str::FromStr;
use std::time::Duration;

use crate::pattern::PatternLimits;
use crate::trigger::TriggerLimits;

/// A setting that could not be read: which variable, and why.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

/// Reads `name`, or `default` when unset or empty.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse().map_err(|e: T::Err| ConfigError {
            name: name.to_owned(),
            reason: format!("{raw:?} is not valid ({e})"),
        }),
        _ => Ok(default),
    }
}

/// Reads a required variable.
pub fn env_required(name: &str) -> Result<String, ConfigError> {
    env_optional(name).ok_or_else(|| ConfigError {
        name: name.to_owned(),
        reason: "is required".into(),
    })
}

/// Reads `name`, trimmed; `None` when unset or empty.
pub fn env_optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|raw| raw.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The AWS region Lambda sets: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn aws_region_from_env() -> Option<String> {
    env_optional("AWS_REGION").or_else(|| env_optional("AWS_DEFAULT_REGION"))
}

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
                min_cooldown: defaults.min_cooldown,
                max_cooldown: Duration::from_secs(max_cooldown_days * 86_400),
                allow_http_webhooks: env_or("ALLOW_HTTP_WEBHOOKS", false)?,
                pattern: PatternLimits {
                    max_chars: env_or("MAX_PATTERN_CHARS", pattern_defaults.max_chars)?,
                    max_depth: env_or("MAX_PATTERN_DEPTH", pattern_defaults.max_depth)?,
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
