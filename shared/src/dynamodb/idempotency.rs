//! Idempotency claims, in two phases: the first request to claim `(tenant, event id)` marks
//! it *pending*, sends the event to the queue, then marks it *queued*. A repeat within the
//! time-to-live (24 h for ingest) is a duplicate only once the claim is queued.
//!
//! Why two phases: a claim taken before the send says nothing about the send. A function that
//! dies, times out or loses its answer from SQS between the two would leave a claim for an
//! event that may not be on the queue, and the client's retry would be told "duplicate" for an
//! event that is lost. So a retry that finds a *pending* claim sends the event again (with the
//! first receipt time, so both messages are the same event; evaluate is idempotent per
//! trigger and event) and only a *queued* claim answers "duplicate".
//!
//! - [`IdempotencyStore::claim`]: one conditional `PutItem` (`attribute_not_exists(pk) OR
//!   expires_at <= now`), so of two concurrent first requests exactly one claims; the other
//!   finds the pending claim and sends too.
//! - [`IdempotencyStore::mark_queued`]: after SQS acknowledged the events, `BatchWriteItem`s of
//!   25 set them queued (an unconditional put: the event *is* on the queue, whoever claimed it).
//!   If that fails, the claims stay pending and a retry sends again: a repeated message, never
//!   a lost event.
//! - [`IdempotencyStore::release`]: a claimer whose send failed for certain deletes its own
//!   pending claim (by token), so that the retry is a first request again.
//!
//! Items written before claims had a `state` count as queued (they were the one-phase claims).

use std::time::Duration;

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;

use super::{DynamoError, Table, conditional, epoch_seconds_ceil, get_s, n, partition_key, s};
use crate::ids::{EventId, TenantId};

const SORT_KEY: &str = "IDEM";
/// DynamoDB calls in flight at once for `claim_many` / `release_many` / `mark_queued`.
const CONCURRENCY: usize = 16;
/// Items per `BatchWriteItem`, DynamoDB's maximum.
const BATCH_WRITE_ITEMS: usize = 25;
/// Rounds of `BatchWriteItem` for the items DynamoDB left unprocessed (throttling).
const BATCH_WRITE_ROUNDS: usize = 3;
const PENDING: &str = "pending";
const QUEUED: &str = "queued";

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
    /// This caller holds the claim and should send the event.
    Claimed(ClaimToken),
    /// Another request claimed the event and has not confirmed it is on the queue (it is
    /// still running, or it died between its claim and its send): this caller sends it too,
    /// received at the first claim's time.
    Pending { received_at: DateTime<Utc> },
    /// On the queue, and the claim has not expired.
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
        tenant: TenantId,
        event_id: &EventId,
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
            .item("state", s(PENDING))
            .item("expires_at", n(expires_at))
            .item(
                "claimed_at",
                s(now.to_rfc3339_opts(SecondsFormat::Micros, true)),
            )
            .item("claim_token", s(&token.0))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let refused = match conditional(put, "PutItem")? {
            Ok(_) => return Ok(Claim::Claimed(token)),
            Err(refused) => refused,
        };
        let PutItemError::ConditionalCheckFailedException(failed) = refused else {
            return Ok(Claim::Duplicate { first_seen: None });
        };
        let Some(item) = failed.item() else {
            return Ok(Claim::Duplicate { first_seen: None });
        };
        let claimed_at = get_s(item, &pk, "claimed_at")?
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        match (get_s(item, &pk, "state")?, claimed_at) {
            (Some(PENDING), Some(received_at)) => Ok(Claim::Pending { received_at }),
            _ => Ok(Claim::Duplicate {
                first_seen: claimed_at,
            }),
        }
    }

    /// Deletes the claim if `token` still holds it and it is still pending. `Ok(false)` when it
    /// was already gone, belongs to another claim or is queued.
    #[tracing::instrument(skip(self, token))]
    pub async fn release(
        &self,
        tenant: TenantId,
        event_id: &EventId,
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
            .condition_expression("claim_token = :token AND #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":token", s(&token.0))
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await;
        Ok(conditional(deleted, "DeleteItem")?.is_ok())
    }

    /// [`Self::claim`] for many ids of one tenant, concurrently; results in input order.
    pub async fn claim_many(
        &self,
        tenant: TenantId,
        event_ids: &[&EventId],
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Result<Claim, DynamoError>> {
        // The futures are collected before streaming them: a stream holding a closure over
        // borrowed items makes the caller's future `Send` for one lifetime only, which async
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
        tenant: TenantId,
        claims: &[(&EventId, &ClaimToken)],
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

impl IdempotencyStore {
    /// Marks the claims of `events` (each with the time it was received, which is also the
    /// claim's `claimed_at`) as queued until `ttl` after their receipt. The ids whose mark
    /// could not be written stay pending: a retry of those sends again, never loses them.
    pub async fn mark_queued(
        &self,
        tenant: TenantId,
        events: &[(&EventId, DateTime<Utc>)],
        ttl: Duration,
    ) -> Result<(), DynamoError> {
        let ttl = chrono::Duration::from_std(ttl).map_err(|_| DynamoError::InvalidInput {
            field: "ttl",
            reason: "too long".to_owned(),
        })?;
        let mut requests = Vec::with_capacity(events.len());
        for (id, received_at) in events {
            let item = HashMap::from([
                ("pk".to_owned(), s(key(tenant, id)?)),
                ("sk".to_owned(), s(SORT_KEY)),
                ("state".to_owned(), s(QUEUED)),
                (
                    "expires_at".to_owned(),
                    n(epoch_seconds_ceil(*received_at + ttl)),
                ),
                (
                    "claimed_at".to_owned(),
                    s(received_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
                ),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| DynamoError::InvalidInput {
                    field: "item",
                    reason: e.to_string(),
                })?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let writes: Vec<_> = requests
            .chunks(BATCH_WRITE_ITEMS)
            .map(|chunk| self.write_batch(chunk.to_vec()))
            .collect();
        let results: Vec<Result<(), DynamoError>> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// One `BatchWriteItem`, with the items it leaves unprocessed written again.
    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), DynamoError> {
        for _ in 0..BATCH_WRITE_ROUNDS {
            let written = self
                .table
                .client()
                .batch_write_item()
                .request_items(self.table.name(), requests)
                .send()
                .await
                .map_err(|e| DynamoError::sdk("BatchWriteItem", e))?;
            requests = written
                .unprocessed_items()
                .and_then(|left| left.get(self.table.name()))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(DynamoError::Contention {
            operation: "BatchWriteItem (idempotency)",
            attempts: BATCH_WRITE_ROUNDS as u32,
        })
    }
}

fn key(tenant: TenantId, event_id: &EventId) -> Result<String, DynamoError> {
    partition_key(
        "IDEM",
        &[("tenant", &tenant.to_string()), ("event_id", event_id)],
    )
}
