//! Per-tenant rate limiting: token buckets kept in DynamoDB. Ingest takes a token per event
//! from the tenant's event bucket; every other route a token per request from the tenant's
//! bucket for its class of route (`reads`, `writes`: [`RateLimiter::acquire_in`]), so that
//! one class cannot starve another.
//!
//! # Why DynamoDB and not API Gateway usage plans
//!
//! Usage plans exist only for API Gateway REST APIs and key on API Gateway
//! API keys; TriggerIQ's API is an HTTP API (payload 2.0) whose tenants are
//! identified by our own Lambda authorizer, and HTTP APIs offer only
//! route-wide throttling, the same for every tenant. Usage plans also count
//! requests, while a fair limit for ingest counts events: one request may
//! carry 500. So each tenant has a bucket here, and a batch of N events costs
//! N tokens. (Route-level throttling in API Gateway stays on as a coarse guard
//! for the whole service.)
//!
//! # Algorithm
//!
//! The bucket is stored as GCRA ("generic cell rate algorithm"), which is a
//! token bucket expressed by one number: the theoretical arrival time `tat`,
//! the instant at which the bucket would be full again. With capacity `C`,
//! refill `r` tokens per second and `T = 1/r`, a request for `n` tokens at
//! `now` is allowed when `max(tat, now) + n·T − now ≤ C·T`, and then
//! `tat ← max(tat, now) + n·T`. A denied request can be retried after
//! `max(tat, now) + n·T − now − C·T`: that is the `Retry-After`.
//!
//! DynamoDB update expressions have no `max`, so the two branches are two
//! conditional `UpdateItem`s, with `ReturnValuesOnConditionCheckFailure` so
//! that a failed condition tells which branch applies without a read:
//!
//! - busy bucket (`now ≤ tat ≤ now + (C − n)·T`): `SET tat = tat + n·T`;
//! - idle bucket (no item, or `tat < now`): `SET tat = now + n·T`.
//!
//! The busy branch is tried first, so a tenant sending steadily costs one
//! write per request, a denied request one write attempt, and an idle tenant's
//! first request two. Times are integer microseconds. The item's
//! `expires_at` is set to when the bucket is full again (plus a second): a
//! deleted item and a full bucket are the same state.

use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use super::{DynamoError, Table, conditional, get_n, n, partition_key, s};
use crate::ids::TenantId;

/// The sort key of a tenant's event bucket (ingest); named buckets are `RATE#<name>`.
const SORT_KEY: &str = "RATE";
/// Races lost in a row before giving up with [`DynamoError::Contention`].
const MAX_ROUNDS: u32 = 5;

/// A tenant's limit: bursts of up to `capacity` events, refilled at
/// `per_second` events per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: the largest burst, and the largest cost of one request.
    pub capacity: u32,
    /// Sustained rate, in tokens per second (> 0).
    pub per_second: f64,
}

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Tokens taken; go ahead.
    Allowed,
    /// Not enough tokens; the same request would be allowed after `retry_after`.
    Limited { retry_after: Duration },
}

impl RateDecision {
    /// `Retry-After` seconds for a 429 (rounded up, at least 1).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::Allowed => None,
            Self::Limited { retry_after } => {
                let whole = retry_after.as_secs();
                Some(
                    if retry_after.subsec_nanos() > 0 {
                        whole + 1
                    } else {
                        whole
                    }
                    .max(1),
                )
            }
        }
    }
}

/// Token buckets in the shared table.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    table: Table,
}

enum Branch {
    Busy,
    Idle,
}

impl RateLimiter {
    /// Buckets stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Takes `cost` tokens from `tenant`'s event bucket (ingest) if it holds them.
    pub async fn acquire(
        &self,
        tenant: TenantId,
        limit: RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, DynamoError> {
        self.take(tenant, SORT_KEY.to_owned(), limit, cost, now)
            .await
    }

    /// Takes `cost` tokens from `tenant`'s bucket named `bucket` (a class of routes, such as
    /// `reads`), which is independent of its event bucket and of its other named buckets.
    pub async fn acquire_in(
        &self,
        tenant: TenantId,
        bucket: &str,
        limit: RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, DynamoError> {
        if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(DynamoError::InvalidInput {
                field: "bucket",
                reason: format!("{bucket:?} must be lower-case letters and dashes"),
            });
        }
        self.take(tenant, format!("{SORT_KEY}#{bucket}"), limit, cost, now)
            .await
    }

    /// Takes `cost` tokens from `tenant`'s bucket stored under `sort_key`.
    ///
    /// A `cost` above `limit.capacity` can never be allowed and is an
    /// [`DynamoError::InvalidInput`] (configure the capacity at least as large
    /// as the largest batch). A `cost` of 0 is allowed without a call.
    #[tracing::instrument(skip(self, now))]
    async fn take(
        &self,
        tenant: TenantId,
        sort_key: String,
        limit: RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, DynamoError> {
        if !(limit.per_second.is_finite() && limit.per_second > 0.0) {
            return Err(DynamoError::InvalidInput {
                field: "per_second",
                reason: format!("must be a positive number, found {}", limit.per_second),
            });
        }
        if cost > limit.capacity {
            return Err(DynamoError::InvalidInput {
                field: "cost",
                reason: format!(
                    "{cost} tokens exceed the bucket capacity of {}",
                    limit.capacity
                ),
            });
        }
        if cost == 0 {
            return Ok(RateDecision::Allowed);
        }
        let pk = partition_key("RATE", &[("tenant", &tenant.to_string())])?;
        // Emission interval T in microseconds, at least 1.
        let interval = ((1_000_000.0 / limit.per_second).round() as i64).max(1);
        let burst = interval.saturating_mul(i64::from(limit.capacity));
        let increment = interval.saturating_mul(i64::from(cost));
        let now_us = now.timestamp_micros();
        // Latest `tat` that still admits this request.
        let ceiling = now_us + burst - increment;
        // Once `tat` has passed, the bucket is full and the item is redundant.
        let expires_at = (now_us + burst) / 1_000_000 + 2;

        let mut branch = Branch::Busy;
        for _ in 0..MAX_ROUNDS {
            let update = self
                .table
                .client()
                .update_item()
                .table_name(self.table.name())
                .key("pk", s(&pk))
                .key("sk", s(&sort_key))
                .expression_attribute_values(":now", n(now_us))
                .expression_attribute_values(":inc", n(increment))
                .expression_attribute_values(":exp", n(expires_at))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let update = match branch {
                Branch::Busy => update
                    .update_expression("SET tat_us = tat_us + :inc, expires_at = :exp")
                    .condition_expression("tat_us >= :now AND tat_us <= :ceiling")
                    .expression_attribute_values(":ceiling", n(ceiling)),
                Branch::Idle => update
                    .update_expression("SET tat_us = :now + :inc, expires_at = :exp")
                    .condition_expression("attribute_not_exists(tat_us) OR tat_us < :now"),
            };
            let old_tat = match conditional(update.send().await, "UpdateItem")? {
                Ok(_) => return Ok(RateDecision::Allowed),
                Err(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(item) => get_n(item, &pk, "tat_us")?,
                    None => None,
                },
                Err(_) => None,
            };
            branch = match old_tat {
                None => Branch::Idle,
                Some(tat) if tat < now_us => Branch::Idle,
                Some(tat) if tat > ceiling => {
                    let wait_us = u64::try_from(tat - ceiling).unwrap_or(0);
                    return Ok(RateDecision::Limited {
                        retry_after: Duration::from_micros(wait_us),
                    });
                }
                // Another request moved `tat` between our guess and our write.
                Some(_) => Branch::Busy,
            };
        }
        Err(DynamoError::Contention {
            operation: "UpdateItem (rate limit)",
            attempts: MAX_ROUNDS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let limited = |ms| RateDecision::Limited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(limited(1).retry_after_seconds(), Some(1));
        assert_eq!(limited(1000).retry_after_seconds(), Some(1));
        assert_eq!(limited(1001).retry_after_seconds(), Some(2));
        assert_eq!(limited(0).retry_after_seconds(), Some(1));
        assert_eq!(RateDecision::Allowed.retry_after_seconds(), None);
    }
}
