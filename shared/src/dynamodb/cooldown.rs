//! Cooldown locks: after a trigger fires, it may not fire again (for the same
//! group, if any) until its cooldown has passed.
//!
//! One conditional `PutItem` that succeeds only when no unexpired lock exists;
//! the lock's end is kept in milliseconds (`until_ms`) because cooldowns can
//! be short, and `expires_at` (seconds, rounded up) lets TTL remove it later.
//! Whoever wins the put owns this cooldown period, so of several concurrent
//! evaluations of one trigger exactly one fires.
//!
//! # Owned locks
//!
//! [`CooldownLock::try_acquire_for`] records who took the lock (evaluate-events passes the
//! event id) and grants it again to the same owner while it runs. A redelivered event whose
//! first evaluation took the lock but died before recording its firing therefore still
//! fires, instead of losing the firing to its own cooldown. Owned locks are kept
//! [`OWNED_LOCK_RETENTION`] past their end, so that a redelivery within that time gets the
//! same answer as the first evaluation (a lock removed by TTL would grant it afresh).

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use super::{DynamoError, Table, conditional, epoch_seconds_ceil, n, partition_key, s};
use crate::ids::{EventId, TenantId, TriggerId};

const SORT_KEY: &str = "COOLDOWN";

/// The answer to an owned lock request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// The caller may fire.
    Granted,
    /// A cooldown is running, until then (`None`: the running lock's end was not returned).
    Held { until: Option<DateTime<Utc>> },
}

impl Lock {
    pub fn granted(self) -> bool {
        self == Self::Granted
    }
}

/// How long an owned lock's item outlives its cooldown before TTL may remove it.
pub const OWNED_LOCK_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Cooldown locks in the shared table.
#[derive(Debug, Clone)]
pub struct CooldownLock {
    table: Table,
}

impl CooldownLock {
    /// Locks stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Takes the cooldown of `(tenant, trigger_id)` for `cooldown` from `now`.
    /// `Ok(true)`: the caller may fire; `Ok(false)`: a cooldown is running.
    pub async fn try_acquire(
        &self,
        tenant: TenantId,
        trigger: TriggerId,
        cooldown: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, DynamoError> {
        Ok(self
            .put(key(tenant, trigger, None)?, cooldown, now, None)
            .await?
            .granted())
    }

    /// [`Self::try_acquire`] on behalf of `owner`: also granted while the running cooldown
    /// is `owner`'s own (see the module documentation).
    pub async fn try_acquire_for(
        &self,
        tenant: TenantId,
        trigger: TriggerId,
        owner: &EventId,
        cooldown: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lock, DynamoError> {
        self.put_owned(key(tenant, trigger, None)?, owner, cooldown, now)
            .await
    }

    /// [`Self::try_acquire_for`] for one group of a trigger (`group` is the group's digest).
    pub async fn try_acquire_group_for(
        &self,
        tenant: TenantId,
        trigger: TriggerId,
        group: &str,
        owner: &EventId,
        cooldown: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lock, DynamoError> {
        self.put_owned(key(tenant, trigger, Some(group))?, owner, cooldown, now)
            .await
    }

    /// [`Self::try_acquire`] for one group of a trigger (for example one
    /// customer, when the trigger groups by `data.customer_id`).
    pub async fn try_acquire_group(
        &self,
        tenant: TenantId,
        trigger: TriggerId,
        group: &str,
        cooldown: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, DynamoError> {
        Ok(self
            .put(key(tenant, trigger, Some(group))?, cooldown, now, None)
            .await?
            .granted())
    }

    /// [`Self::put`] on behalf of `owner`, which must name someone.
    async fn put_owned(
        &self,
        pk: String,
        owner: &EventId,
        cooldown: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lock, DynamoError> {
        if owner.is_empty() {
            return Err(DynamoError::InvalidInput {
                field: "owner",
                reason: "must not be empty".to_owned(),
            });
        }
        self.put(pk, cooldown, now, Some(owner.as_str())).await
    }

    #[tracing::instrument(skip(self, cooldown, now))]
    async fn put(
        &self,
        pk: String,
        cooldown: Duration,
        now: DateTime<Utc>,
        owner: Option<&str>,
    ) -> Result<Lock, DynamoError> {
        let cooldown =
            chrono::Duration::from_std(cooldown).map_err(|_| DynamoError::InvalidInput {
                field: "cooldown",
                reason: "too long".to_owned(),
            })?;
        let until = now + cooldown;
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(&pk))
            .item("sk", s(SORT_KEY))
            .item("until_ms", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            // A refusal carries the running lock: when it ends is part of the answer
            // (`GET /v1/events/{id}` says "cooling down until …").
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = match owner {
            None => put
                .item("expires_at", n(epoch_seconds_ceil(until)))
                .condition_expression("attribute_not_exists(pk) OR until_ms <= :now"),
            Some(owner) => {
                let retention = chrono::Duration::from_std(OWNED_LOCK_RETENTION)
                    .unwrap_or(chrono::Duration::days(1));
                put.item("owner", s(owner))
                    .item("expires_at", n(epoch_seconds_ceil(until + retention)))
                    .condition_expression(
                        "attribute_not_exists(pk) OR until_ms <= :now OR #owner = :owner",
                    )
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":owner", s(owner))
            }
        };
        Ok(match conditional(put.send().await, "PutItem")? {
            Ok(_) => Lock::Granted,
            Err(refused) => Lock::Held {
                until: match refused {
                    PutItemError::ConditionalCheckFailedException(e) => e
                        .item()
                        .and_then(|item| item.get("until_ms"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|ms| ms.parse::<i64>().ok())
                        .and_then(DateTime::<Utc>::from_timestamp_millis),
                    _ => None,
                },
            },
        })
    }
}

fn key(tenant: TenantId, trigger: TriggerId, group: Option<&str>) -> Result<String, DynamoError> {
    let (tenant, trigger) = (tenant.to_string(), trigger.to_string());
    let mut components = vec![
        ("tenant", tenant.as_str()),
        ("trigger_id", trigger.as_str()),
    ];
    components.extend(group.map(|g| ("group", g)));
    partition_key("COOLDOWN", &components)
}
