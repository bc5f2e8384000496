//! DynamoDB: the one table of hot per-event state that needs atomic
//! conditional writes.
//!
//! # Table
//!
//! One table, string keys `pk` (partition) and `sk` (sort), TTL on the number
//! attribute `expires_at` (epoch seconds). Each kind of item has its own `pk`
//! prefix, and every item that a tenant's traffic touches per event has its
//! own partition key, so one busy tenant spreads over many partitions instead
//! of heating one:
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | idempotency claim ([`idempotency`]) | `IDEM#<tenant>#<event id>` | `IDEM` | `state` (`pending`, `queued`), `expires_at`, `claimed_at`, `claim_token` |
//! | rate limit ([`rate_limit`]) | `RATE#<tenant>` | `RATE` | `tat_us`, `expires_at` |
//! | cooldown lock ([`cooldown`]) | `COOLDOWN#<tenant>#<trigger>[#<group>]` | `COOLDOWN` | `until_ms`, `expires_at`, `owner` (optional) |
//! | threshold window ([`windows`]) | `WINDOW#<tenant>#<trigger>#<version>#<group digest>` | `WINDOW` | `epoch`, `reset_t`, `reset_id`, `group`, `expires_at`, one `e:<event digest>` map per counted event |
//! | signing secrets ([`signing_secrets`]) | `SIGNING#<tenant>` | `SIGNING` | `sealed` (KMS envelope: `key`, `nonce`, `data`), `current_since`, `version` (no TTL) |
//! | cached verdict ([`ai`]) | `AICACHE#<tenant>#<cache key>` | `AICACHE` | `verdict`, `confidence`, `reason`, `model`, `expires_at` |
//! | judging claim ([`ai`]) | `AIJUDGE#<tenant>#<trigger>#<event id>` | `AIJUDGE` | `state` (`judging`, `done`), `owner`, `lease_until_ms`, `outcome` (JSON), `expires_at` |
//! | AI usage of a day ([`ai`]) | `AIUSAGE#<tenant>` | `DAY#<yyyy-mm-dd>` | `day`, `input_tokens`, `output_tokens`, `checks`, `expires_at` |
//!
//! Key components are escaped (`%` → `%25`, `#` → `%23`) so that a client-chosen
//! event id containing `#` can never collide with another tenant's key.
//!
//! DynamoDB deletes expired items lazily (typically within days), so every
//! condition that relies on expiry also compares `expires_at` (or a finer
//! timestamp) with the caller's `now`: an expired item is treated as absent.
//! All operations take `now` from the caller, which makes expiry testable
//! without waiting and keeps one clock per request.

pub mod ai;
pub mod cooldown;
pub mod idempotency;
pub mod rate_limit;
pub mod signing_secrets;
pub mod windows;

use std::collections::HashMap;

use crate::aws::Lazy;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

pub use ai::{CachedVerdict, DayUsage, Finished, Judging, JudgingClaim, TokenBudget, VerdictCache};
pub use cooldown::{CooldownLock, Lock};
pub use idempotency::{Claim, ClaimToken, IdempotencyStore};
pub use rate_limit::{RateDecision, RateLimit, RateLimiter};
pub use signing_secrets::{
    PreviousSecret, Rotation, SealOutcome, SecretsError, SigningSecretStore, TenantSecrets,
};
pub use windows::{Observed, WindowKey, WindowStore};

/// Largest partition key DynamoDB accepts, in bytes.
const MAX_PARTITION_KEY_BYTES: usize = 2048;

/// A failure of a DynamoDB-backed store.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// The SDK call failed after its retries (throttling, 5xx, timeouts, access…).
    #[error("DynamoDB {operation} failed")]
    Sdk {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// An argument cannot be used; `field` names it.
    #[error("{field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// A stored item does not have the expected shape.
    #[error("DynamoDB item {pk} is malformed: {reason}")]
    CorruptItem { pk: String, reason: String },
    /// Concurrent writers kept winning; the caller may retry later.
    #[error("DynamoDB {operation} lost {attempts} races in a row")]
    Contention {
        operation: &'static str,
        attempts: u32,
    },
}

impl DynamoError {
    pub(crate) fn sdk(operation: &'static str, e: impl Into<aws_sdk_dynamodb::Error>) -> Self {
        Self::Sdk {
            operation,
            source: Box::new(e.into()),
        }
    }
}

/// The table and the client that reaches it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Table {
    client: Lazy<aws_sdk_dynamodb::Client>,
    name: String,
}

impl Table {
    /// The table `name`, reached through `client`.
    pub fn new(client: impl Into<Lazy<aws_sdk_dynamodb::Client>>, name: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            name: name.into(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }
}

/// Creates the table as the stores expect it (on-demand, TTL on
/// `expires_at`) if it does not exist. For local development and tests; in
/// AWS the SAM template owns the table.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), DynamoError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| DynamoError::InvalidInput {
                field: "table",
                reason: e.to_string(),
            })
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| DynamoError::InvalidInput {
                field: "table",
                reason: e.to_string(),
            })
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(DynamoError::sdk("CreateTable", e)),
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("expires_at")
        .enabled(true)
        .build()
        .map_err(|e| DynamoError::InvalidInput {
            field: "table",
            reason: e.to_string(),
        })?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| DynamoError::sdk("UpdateTimeToLive", e))?;
    Ok(())
}

/// Escapes one key component so that `#` only ever separates components.
fn escape(component: &str) -> String {
    component.replace('%', "%25").replace('#', "%23")
}

/// Builds a partition key `PREFIX#a#b…` from named, non-empty components.
pub(crate) fn partition_key(
    prefix: &str,
    components: &[(&'static str, &str)],
) -> Result<String, DynamoError> {
    let mut key = prefix.to_owned();
    for (field, value) in components {
        if value.is_empty() {
            return Err(DynamoError::InvalidInput {
                field,
                reason: "must not be empty".to_owned(),
            });
        }
        key.push('#');
        key.push_str(&escape(value));
    }
    if key.len() > MAX_PARTITION_KEY_BYTES {
        let field = components.last().map_or("key", |(f, _)| *f);
        return Err(DynamoError::InvalidInput {
            field,
            reason: format!(
                "too long: the DynamoDB key would be {} bytes, at most {MAX_PARTITION_KEY_BYTES}",
                key.len()
            ),
        });
    }
    Ok(key)
}

/// Sorts a conditional write's result: `Ok(Ok(output))` when it was written, `Ok(Err(error))`
/// when its condition failed (the error may carry the item the condition saw), `Err` for
/// every other failure. The one place that recognises DynamoDB's "condition failed" answer.
pub(crate) fn conditional<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &'static str,
) -> Result<Result<T, E>, DynamoError>
where
    E: ProvideErrorMetadata,
    SdkError<E, R>: Into<aws_sdk_dynamodb::Error>,
{
    match result {
        Ok(output) => Ok(Ok(output)),
        Err(SdkError::ServiceError(service)) if service.err().code() == Some(CONDITION_FAILED) => {
            Ok(Err(service.into_err()))
        }
        Err(e) => Err(DynamoError::sdk(operation, e)),
    }
}

const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Epoch seconds rounded up: an item must not expire before its time.
pub(crate) fn epoch_seconds_ceil(at: DateTime<Utc>) -> i64 {
    let seconds = at.timestamp();
    if at.timestamp_subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

pub(crate) fn get_n(
    item: &HashMap<String, AttributeValue>,
    pk: &str,
    name: &str,
) -> Result<Option<i64>, DynamoError> {
    match item.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value.as_n().map_err(|_| DynamoError::CorruptItem {
                pk: pk.to_owned(),
                reason: format!("`{name}` is not a number"),
            })?;
            text.parse::<i64>()
                .map(Some)
                .map_err(|_| DynamoError::CorruptItem {
                    pk: pk.to_owned(),
                    reason: format!("`{name}` is not an integer: {text}"),
                })
        }
    }
}

pub(crate) fn get_s<'a>(
    item: &'a HashMap<String, AttributeValue>,
    pk: &str,
    name: &str,
) -> Result<Option<&'a str>, DynamoError> {
    match item.get(name) {
        None => Ok(None),
        Some(value) => {
            value
                .as_s()
                .map(|s| Some(s.as_str()))
                .map_err(|_| DynamoError::CorruptItem {
                    pk: pk.to_owned(),
                    reason: format!("`{name}` is not a string"),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_components_apart() {
        let a = partition_key("IDEM", &[("tenant", "t#a"), ("id", "b")]).unwrap();
        let b = partition_key("IDEM", &[("tenant", "t"), ("id", "a#b")]).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, "IDEM#t%23a#b");
        assert_eq!(b, "IDEM#t#a%23b");
        assert_eq!(partition_key("X", &[("id", "50%#")]).unwrap(), "X#50%25%23");
    }

    #[test]
    fn empty_and_oversized_components_name_the_field() {
        let err = partition_key("IDEM", &[("tenant", "t"), ("event_id", "")]).unwrap_err();
        assert_eq!(err.to_string(), "event_id: must not be empty");
        let long = "x".repeat(2100);
        let err = partition_key("IDEM", &[("tenant", "t"), ("event_id", &long)]).unwrap_err();
        assert!(err.to_string().starts_with("event_id: too long"), "{err}");
    }

    #[test]
    fn expiry_rounds_up() {
        let at = DateTime::from_timestamp(100, 1).unwrap();
        assert_eq!(epoch_seconds_ceil(at), 101);
        assert_eq!(
            epoch_seconds_ceil(DateTime::from_timestamp(100, 0).unwrap()),
            100
        );
    }
}
