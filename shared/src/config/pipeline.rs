//! Settings of the pipeline functions, read from the environment: each names its variable and
//! says why it is wrong. The SAM template sets the required ones; the rest have defaults.

use std::time::Duration;

use super::{ConfigError, env_or, env_required, webhook_targets_from_env};
use crate::event::EventLimits;
use crate::webhook::{RetryPolicy, TargetPolicy};

/// Claim-check threshold for whole event messages: SQS's classic 256 KiB, less room for
/// attributes (the claim check's default).
pub const EVENT_CLAIM_THRESHOLD: usize = 256_000;

/// Claim-check threshold for webhook bodies: a delivery message adds a header (ids, the URL
/// of up to 2 KB) around the body, so the body gets 6 KB less than a whole event.
pub const DELIVERY_BODY_THRESHOLD: usize = EVENT_CLAIM_THRESHOLD - 6 * 1024;

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    name: &str,
    value: T,
) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError {
            name: name.to_owned(),
            reason: format!("must be greater than 0, not {value}"),
        })
    }
}

/// Settings of ingest-events.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `TABLE_NAME`: idempotency claims and rate-limit buckets.
    pub table_name: String,
    /// `BUCKET_NAME`: claim checks of large events.
    pub bucket_name: String,
    /// `EVENTS_QUEUE_URL`.
    pub events_queue_url: String,
    /// `MAX_INGEST_BODY_BYTES` (5 MB), `MAX_EVENTS_PER_REQUEST` (500), `MAX_EVENT_BYTES` (1 MiB).
    pub limits: EventLimits,
    /// `IDEMPOTENCY_TTL_HOURS` (24): how long an event id counts as seen.
    pub idempotency_ttl: Duration,
    /// `CLAIM_CHECK_THRESHOLD_BYTES` (256,000): larger queue messages go through S3.
    pub claim_check_threshold: usize,
    /// `RATE_LIMIT_EVENTS_PER_SECOND` (100): each tenant's sustained rate.
    pub rate_per_second: f64,
    /// `RATE_LIMIT_BURST_EVENTS` (1,000): each tenant's burst; at least one full request.
    pub rate_burst: u32,
    /// `INGEST_BUDGET_MS` (8,000): how long one request may take, every step together. Below
    /// the function's timeout (10 s in template.yaml), so that a slow dependency ends as an
    /// answer that names each event's fate rather than as a killed function.
    pub budget: Duration,
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = EventLimits::default();
        let limits = EventLimits {
            max_body_bytes: positive(
                "MAX_INGEST_BODY_BYTES",
                env_or("MAX_INGEST_BODY_BYTES", defaults.max_body_bytes)?,
            )?,
            max_events: positive(
                "MAX_EVENTS_PER_REQUEST",
                env_or("MAX_EVENTS_PER_REQUEST", defaults.max_events)?,
            )?,
            max_event_bytes: positive(
                "MAX_EVENT_BYTES",
                env_or("MAX_EVENT_BYTES", defaults.max_event_bytes)?,
            )?,
            ..defaults
        };
        let rate_burst: u32 = env_or("RATE_LIMIT_BURST_EVENTS", 1000)?;
        if (rate_burst as usize) < limits.max_events {
            return Err(ConfigError {
                name: "RATE_LIMIT_BURST_EVENTS".into(),
                reason: format!(
                    "must be at least MAX_EVENTS_PER_REQUEST ({}), or a full request could never pass",
                    limits.max_events
                ),
            });
        }
        let rate_per_second: f64 = env_or("RATE_LIMIT_EVENTS_PER_SECOND", 100.0)?;
        if !(rate_per_second.is_finite() && rate_per_second > 0.0) {
            return Err(ConfigError {
                name: "RATE_LIMIT_EVENTS_PER_SECOND".into(),
                reason: "must be a positive number".into(),
            });
        }
        let hours: u64 = positive(
            "IDEMPOTENCY_TTL_HOURS",
            env_or("IDEMPOTENCY_TTL_HOURS", 24)?,
        )?;
        Ok(Self {
            table_name: env_required("TABLE_NAME")?,
            bucket_name: env_required("BUCKET_NAME")?,
            events_queue_url: env_required("EVENTS_QUEUE_URL")?,
            limits,
            idempotency_ttl: Duration::from_secs(hours * 3600),
            claim_check_threshold: positive(
                "CLAIM_CHECK_THRESHOLD_BYTES",
                env_or("CLAIM_CHECK_THRESHOLD_BYTES", EVENT_CLAIM_THRESHOLD)?,
            )?,
            rate_per_second,
            rate_burst,
            budget: Duration::from_millis(positive(
                "INGEST_BUDGET_MS",
                env_or("INGEST_BUDGET_MS", 8_000u64)?,
            )?),
        })
    }
}

/// The longest a container may match with a stale trigger set.
pub const MAX_TRIGGER_CACHE_AGE: Duration = Duration::from_secs(30);

/// Settings of evaluate-events.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    /// `TABLE_NAME`: cooldown locks.
    pub table_name: String,
    /// `BUCKET_NAME`: claim checks of large events and webhook bodies.
    pub bucket_name: String,
    /// `DELIVERIES_QUEUE_URL`.
    pub deliveries_queue_url: String,
    /// `TRIGGER_CACHE_SECONDS` (5, at most 30): how long a container trusts its compiled
    /// triggers before asking Postgres whether the tenant's `trigger_revision` moved.
    pub trigger_cache_max_age: Duration,
}

impl EvaluateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let seconds: u64 = env_or("TRIGGER_CACHE_SECONDS", 5)?;
        if Duration::from_secs(seconds) > MAX_TRIGGER_CACHE_AGE {
            return Err(ConfigError {
                name: "TRIGGER_CACHE_SECONDS".into(),
                reason: format!(
                    "must be at most {} (the promised bound on how stale triggers may be)",
                    MAX_TRIGGER_CACHE_AGE.as_secs()
                ),
            });
        }
        Ok(Self {
            table_name: env_required("TABLE_NAME")?,
            bucket_name: env_required("BUCKET_NAME")?,
            deliveries_queue_url: env_required("DELIVERIES_QUEUE_URL")?,
            trigger_cache_max_age: Duration::from_secs(seconds),
        })
    }
}

/// Settings of deliver-webhooks.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// `TABLE_NAME`: signing secrets.
    pub table_name: String,
    /// `SIGNING_KEY_ID`: the KMS key the signing secrets are sealed with.
    pub signing_key_id: String,
    /// `BUCKET_NAME`: large webhook bodies.
    pub bucket_name: String,
    /// `DELIVERY_RESULTS_QUEUE_URL`: every attempt's outcome, and the next attempt, for
    /// record-deliveries.
    pub results_queue_url: String,
    /// `ALLOW_HTTP_WEBHOOKS`, `ALLOW_PRIVATE_WEBHOOK_TARGETS`, `WEBHOOK_ALLOWED_PORTS`: which
    /// targets an attempt may go to (see [`super::webhook_targets_from_env`]).
    pub targets: TargetPolicy,
    /// `WEBHOOK_TIMEOUT_SECONDS` (15): a 2xx must arrive within this.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_SCHEDULE` (`5s,5m,30m,2h,5h,10h,10h`) and `WEBHOOK_RETRY_JITTER` (0.2).
    pub retry: RetryPolicy,
}

impl DeliverConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut retry = RetryPolicy::default();
        if let Ok(raw) = std::env::var("WEBHOOK_RETRY_SCHEDULE")
            && !raw.trim().is_empty()
        {
            retry.schedule = parse_schedule(&raw).map_err(|reason| ConfigError {
                name: "WEBHOOK_RETRY_SCHEDULE".into(),
                reason,
            })?;
        }
        retry.jitter = env_or("WEBHOOK_RETRY_JITTER", retry.jitter)?;
        if !(0.0..=1.0).contains(&retry.jitter) {
            return Err(ConfigError {
                name: "WEBHOOK_RETRY_JITTER".into(),
                reason: "must be between 0 and 1".into(),
            });
        }
        Ok(Self {
            table_name: env_required("TABLE_NAME")?,
            signing_key_id: env_required("SIGNING_KEY_ID")?,
            bucket_name: env_required("BUCKET_NAME")?,
            results_queue_url: env_required("DELIVERY_RESULTS_QUEUE_URL")?,
            targets: webhook_targets_from_env()?,
            timeout: Duration::from_secs(positive(
                "WEBHOOK_TIMEOUT_SECONDS",
                env_or("WEBHOOK_TIMEOUT_SECONDS", 15u64)?,
            )?),
            retry,
        })
    }
}

/// `5s,5m,30m` → the waits before retries 1, 2, 3.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, part)| {
            humantime::parse_duration(part).map_err(|e| {
                format!(
                    "wait {} ({part:?}) is not a duration like \"5m\": {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// Settings of record-deliveries.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// `DELIVERIES_QUEUE_URL`: where a retry goes when it is due.
    pub deliveries_queue_url: String,
    /// `DELIVERY_RESULTS_QUEUE_URL`: its own queue, where a retry waits until it is due.
    pub results_queue_url: String,
}

impl RecordConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            deliveries_queue_url: env_required("DELIVERIES_QUEUE_URL")?,
            results_queue_url: env_required("DELIVERY_RESULTS_QUEUE_URL")?,
        })
    }
}

/// Settings of retry-delivery.
#[derive(Debug, Clone)]
pub struct RetryDeliveryConfig {
    /// `BUCKET_NAME`: large webhook bodies.
    pub bucket_name: String,
    /// `DELIVERIES_QUEUE_URL`.
    pub deliveries_queue_url: String,
}

impl RetryDeliveryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bucket_name: env_required("BUCKET_NAME")?,
            deliveries_queue_url: env_required("DELIVERIES_QUEUE_URL")?,
        })
    }
}

/// Settings of get-signing-secret and rotate-signing-secret.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// `TABLE_NAME`: signing secrets.
    pub table_name: String,
    /// `SIGNING_KEY_ID`: the KMS key the signing secrets are sealed with.
    pub signing_key_id: String,
}

impl SigningConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_required("TABLE_NAME")?,
            signing_key_id: env_required("SIGNING_KEY_ID")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_name_the_bad_wait() {
        assert_eq!(
            parse_schedule("5s, 5m,2h").unwrap(),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200)
            ]
        );
        let err = parse_schedule("5s,soon").unwrap_err();
        assert!(err.starts_with("wait 2 (\"soon\")"), "{err}");
    }
}
