//! Idempotency claims: the first request to claim `(tenant, event id)` wins;
//! a repeat within the time-to-live (24 h for ingest) is a duplicate.
//!
//! A claim is one conditional `PutItem` (`attribute_not_exists(pk) OR
//! expires_at <= now`), so two concurrent requests with the same id cannot
//! both win. The winner gets a random [`ClaimToken`]; [`IdempotencyStore::release`]
//! deletes the claim only while it still holds that token, so a caller whose
//! enqueue failed removes its own claim and never someone else's.
//!
//! Ingest flow: `claim_many` → enqueue the claimed events → `release_many`
//! the claims of the events that did not reach the queue, so that the client's
//! retry of those events is not mistaken for a duplicate.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;

use super::{DynamoError, Table, epoch_seconds_ceil, get_s, n, partition_key, s};

const SORT_KEY: &str = "IDEM";
/// DynamoDB calls in flight at once for `claim_many` / `release_many`.
const CONCURRENCY: usize = 16;

/// Proof of a won claim, needed to release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// The token's text (for logs; a token is not a secret).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and should process the event.
    Claimed(ClaimToken),
    /// Already claimed, and the claim has not expired.
    Duplicate {
        /// When the winning claim was made, if recorded.
        first_seen: Option<DateTime<Utc>>,
    },
}

/// Idempotency claims in the shared table.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    table: Table,
}

impl IdempotencyStore {
    /// Claims stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Claims `(tenant, event_id)` for `ttl` from `now`.
    #[tracing::instrument(skip(self, ttl, now))]
    pub async fn claim(
        &self,
        tenant: &str,
        event_id: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claim, DynamoError> {
        let pk = key(tenant, event_id)?;
        let ttl = chrono::Duration::from_std(ttl).map_err(|_| DynamoError::InvalidInput {
            field: "ttl",
            reason: "too long".to_owned(),
        })?;
        let expires_at = epoch_seconds_ceil(now + ttl);
        let token = ClaimToken(uuid::Uuid::new_v4().to_string());
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(&pk))
            .item("sk", s(SORT_KEY))
            .item("expires_at", n(expires_at))
            .item("claimed_at", s(now.to_rfc3339()))
            .item("claim_token", s(&token.0))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Claimed(token)),
            Err(e) => match e.as_service_error() {
                Some(service) if service.is_conditional_check_failed_exception() => {
                    let first_seen = match service {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c
                            .item()
                            .and_then(|item| get_s(item, &pk, "claimed_at").ok().flatten())
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&Utc)),
                        _ => None,
                    };
                    Ok(Claim::Duplicate { first_seen })
                }
                _ => Err(DynamoError::sdk("PutItem", e)),
            },
        }
    }

    /// Deletes the claim if `token` still holds it. `Ok(false)` when it was
    /// already gone or belongs to another claim.
    #[tracing::instrument(skip(self, token))]
    pub async fn release(
        &self,
        tenant: &str,
        event_id: &str,
        token: &ClaimToken,
    ) -> Result<bool, DynamoError> {
        let pk = key(tenant, event_id)?;
        let deleted = self
            .table
            .client()
            .delete_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(SORT_KEY))
            .condition_expression("claim_token = :token")
            .expression_attribute_values(":token", s(&token.0))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(DynamoError::sdk("DeleteItem", e)),
        }
    }

    /// [`Self::claim`] for many ids of one tenant, concurrently; results in input order.
    pub async fn claim_many(
        &self,
        tenant: &str,
        event_ids: &[&str],
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Result<Claim, DynamoError>> {
        // The futures are collected before streaming them: a stream holding a closure over
        // `&str` items makes the caller's future `Send` for one lifetime only, which async
        // runtimes (the Lambda runtime's `Send` bound) reject.
        let claims: Vec<_> = event_ids
            .iter()
            .map(|id| self.claim(tenant, id, ttl, now))
            .collect();
        futures::stream::iter(claims)
            .buffered(CONCURRENCY)
            .collect()
            .await
    }

    /// [`Self::release`] for many claims of one tenant, concurrently; results in input order.
    pub async fn release_many(
        &self,
        tenant: &str,
        claims: &[(&str, &ClaimToken)],
    ) -> Vec<Result<bool, DynamoError>> {
        // Collected first, for the reason given in `claim_many`.
        let releases: Vec<_> = claims
            .iter()
            .map(|(id, token)| self.release(tenant, id, token))
            .collect();
        futures::stream::iter(releases)
            .buffered(CONCURRENCY)
            .collect()
            .await
    }
}

fn key(tenant: &str, event_id: &str) -> Result<String, DynamoError> {
    partition_key("IDEM", &[("tenant", tenant), ("event_id", event_id)])
}
