//! Ingest: from a request body to events durably on the events queue, with an honest outcome
//! for each event.
//!
//! 1. Read the body ([`IngestBody`]); invalid events are rejected with their paths. An id
//!    repeated within one request is processed once; its repeats share the first one's fate
//!    (a duplicate of it when it was accepted).
//! 2. Take one token per valid event from the tenant's bucket ([`RateLimiter`]); too few
//!    tokens refuse the whole request with `Retry-After`.
//! 3. Claim each id for 24 hours ([`IdempotencyStore`], a conditional write); an id already
//!    claimed is a duplicate and is not queued again.
//! 4. Wrap each claimed event for the queue ([`ClaimCheck`]: messages over the threshold are
//!    stored in S3 first and only their reference is queued).
//! 5. `SendMessageBatch`, 10 per call, calls in parallel ([`SqsSender`]); an event is accepted
//!    only when SQS listed it as sent.
//! 6. Every claimed event that did not reach the queue has its claim released (and its S3
//!    object deleted), so the client's retry is not mistaken for a duplicate.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt as _;
use serde::Serialize;

use super::config::IngestConfig;
use super::messages::EventMessage;
use crate::aws::AwsClients;
use crate::dynamodb::{
    Claim, ClaimToken, IdempotencyStore, RateDecision, RateLimit, RateLimiter, Table,
};
use crate::event::{BodyError, Event, EventLimits, IngestBody, Rejected};
use crate::problem::FieldError;
use crate::s3::{ClaimCheck, S3Ref};
use crate::sqs::{OutgoingMessage, SqsSender};
use crate::tenant::TenantId;

/// Claim-check writes in flight at once (only large events touch S3).
const WRAP_CONCURRENCY: usize = 8;
/// Tries to release one claim before giving up (and logging it).
const RELEASE_TRIES: usize = 3;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// On the queue.
    Accepted,
    /// Seen within the idempotency window; not queued again.
    Duplicate,
    /// Not on the queue; `retryable` when sending it again may succeed.
    Rejected { retryable: bool },
}

/// One event's outcome, in request order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventOutcome {
    pub id: Option<String>,
    #[serde(flatten)]
    pub status: Status,
    pub errors: Vec<FieldError>,
}

impl EventOutcome {
    fn accepted(id: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            status: Status::Accepted,
            errors: Vec::new(),
        }
    }

    fn duplicate(id: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            status: Status::Duplicate,
            errors: Vec::new(),
        }
    }

    fn failed(id: &str, path: &str, message: impl Into<String>) -> Self {
        Self {
            id: Some(id.to_owned()),
            status: Status::Rejected { retryable: true },
            errors: vec![FieldError::new(path, message)],
        }
    }

    fn invalid(rejected: Rejected) -> Self {
        Self {
            id: rejected.id,
            status: Status::Rejected { retryable: false },
            errors: rejected.errors,
        }
    }
}

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// One per event of the request, in its order.
    pub events: Vec<EventOutcome>,
    /// Whether the body was `{"events": [...]}`.
    #[serde(skip)]
    pub batch: bool,
}

impl IngestReport {
    fn new(batch: bool, events: Vec<EventOutcome>) -> Self {
        let count = |f: fn(&Status) -> bool| events.iter().filter(|e| f(&e.status)).count();
        Self {
            accepted: count(|s| *s == Status::Accepted),
            duplicates: count(|s| *s == Status::Duplicate),
            rejected: count(|s| matches!(s, Status::Rejected { .. })),
            events,
            batch,
        }
    }
}

/// Why a whole request is refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the body is not a valid ingest body")]
    Body(BodyError),
    #[error("rate limited for {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("ingest is unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Everything ingest needs, built once per container.
#[derive(Debug, Clone)]
pub struct Ingestor {
    pub limits: EventLimits,
    pub rate_limit: RateLimit,
    pub idempotency_ttl: Duration,
    idempotency: IdempotencyStore,
    rate_limiter: RateLimiter,
    claims: ClaimCheck,
    sqs: SqsSender,
    queue_url: String,
}

/// An event that won its idempotency claim, on its way to the queue.
struct Claimed<'a> {
    index: usize,
    event: &'a Event,
    token: ClaimToken,
}

impl Ingestor {
    /// An ingestor over `clients`, configured by `config`.
    pub fn new(clients: &AwsClients, config: &IngestConfig) -> Self {
        let table = Table::new(clients.dynamodb.clone(), &config.table_name);
        Self {
            limits: config.limits.clone(),
            rate_limit: RateLimit {
                capacity: config.rate_burst,
                per_second: config.rate_per_second,
            },
            idempotency_ttl: config.idempotency_ttl,
            idempotency: IdempotencyStore::new(table.clone()),
            rate_limiter: RateLimiter::new(table),
            claims: ClaimCheck::new(clients.s3.clone(), &config.bucket_name)
                .with_threshold(config.claim_check_threshold),
            sqs: SqsSender::new(clients.sqs.clone()),
            queue_url: config.events_queue_url.clone(),
        }
    }

    /// Ingests one request body for `tenant`, received at `now`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, bytes = body.len()))]
    pub async fn ingest(
        &self,
        tenant: TenantId,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IngestReport, IngestError> {
        let now = now.trunc_subsecs(6);
        let parsed = IngestBody::parse(body, &self.limits, now).map_err(IngestError::Body)?;
        let tenant_key = tenant.to_string();

        // Outcomes by index; an id's repeats point at its first occurrence.
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; parsed.items.len()];
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut first_index: HashMap<&str, usize> = HashMap::new();
        let mut valid: Vec<(usize, &Event)> = Vec::new();
        for item in &parsed.items {
            match &item.parsed {
                Ok(event) => match first_index.get(event.id.as_str()) {
                    Some(&first) => repeats.push((item.index, first)),
                    None => {
                        first_index.insert(&event.id, item.index);
                        valid.push((item.index, event));
                    }
                },
                Err(rejected) => {
                    outcomes[item.index] = Some(EventOutcome::invalid(rejected.clone()))
                }
            }
        }

        if !valid.is_empty() {
            let cost = u32::try_from(valid.len()).unwrap_or(u32::MAX);
            match self
                .rate_limiter
                .acquire(&tenant_key, self.rate_limit, cost, now)
                .await
            {
                Ok(RateDecision::Allowed) => {}
                Ok(limited @ RateDecision::Limited { .. }) => {
                    return Err(IngestError::RateLimited {
                        retry_after_seconds: limited.retry_after_seconds().unwrap_or(1),
                    });
                }
                Err(e) => return Err(IngestError::Unavailable(e.into())),
            }
            self.enqueue(
                parsed.batch,
                &tenant_key,
                tenant,
                &valid,
                now,
                &mut outcomes,
            )
            .await;
        }

        for (index, first) in repeats {
            let outcome = match &outcomes[first] {
                Some(EventOutcome {
                    id,
                    status: Status::Accepted | Status::Duplicate,
                    ..
                }) => EventOutcome::duplicate(id.as_deref().unwrap_or_default()),
                Some(other) => other.clone(),
                None => EventOutcome {
                    id: None,
                    status: Status::Rejected { retryable: true },
                    errors: Vec::new(),
                },
            };
            outcomes[index] = Some(outcome);
        }
        let events = outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(EventOutcome {
                    id: None,
                    status: Status::Rejected { retryable: true },
                    errors: Vec::new(),
                })
            })
            .collect();
        Ok(IngestReport::new(parsed.batch, events))
    }

    /// Claims, wraps and sends `valid`, recording each one's outcome; releases what failed.
    async fn enqueue(
        &self,
        batch: bool,
        tenant_key: &str,
        tenant: TenantId,
        valid: &[(usize, &Event)],
        now: DateTime<Utc>,
        outcomes: &mut [Option<EventOutcome>],
    ) {
        let path_of = |index: usize| {
            if batch {
                crate::json::index("$.events", index)
            } else {
                "$".to_owned()
            }
        };

        let ids: Vec<&str> = valid.iter().map(|(_, e)| e.id.as_str()).collect();
        let claims = self
            .idempotency
            .claim_many(tenant_key, &ids, self.idempotency_ttl, now)
            .await;
        let mut claimed: Vec<Claimed<'_>> = Vec::with_capacity(valid.len());
        for ((index, event), claim) in valid.iter().zip(claims) {
            match claim {
                Ok(Claim::Claimed(token)) => claimed.push(Claimed {
                    index: *index,
                    event,
                    token,
                }),
                Ok(Claim::Duplicate { .. }) => {
                    outcomes[*index] = Some(EventOutcome::duplicate(&event.id));
                }
                Err(e) => {
                    tracing::error!(error = ?e, event_id = %event.id, "idempotency claim failed");
                    outcomes[*index] = Some(EventOutcome::failed(
                        &event.id,
                        &path_of(*index),
                        "could not be recorded; send it again",
                    ));
                }
            }
        }
        if claimed.is_empty() {
            return;
        }

        // Wrap every claimed event for the queue (S3 only for the large ones).
        // Futures collected first, so the route's future stays `Send` for any lifetime.
        let wraps: Vec<_> = claimed
            .iter()
            .map(|c| async move {
                let text =
                    EventMessage::to_json(tenant, now, c.event).map_err(|e| e.to_string())?;
                let claim_id = format!("{}.{}", c.event.id, uuid::Uuid::now_v7().simple());
                self.claims
                    .wrap(tenant_key, &claim_id, &text, now)
                    .await
                    .map(|q| (q.body, q.claim))
                    .map_err(|e| {
                        tracing::error!(error = ?e, event_id = %c.event.id, "claim check failed");
                        "could not be stored; send it again".to_owned()
                    })
            })
            .collect();
        let wrapped: Vec<Result<(String, Option<S3Ref>), String>> = futures::stream::iter(wraps)
            .buffered(WRAP_CONCURRENCY)
            .collect()
            .await;
        let mut to_send = Vec::with_capacity(claimed.len());
        let mut sent_claims: Vec<(usize, Option<S3Ref>)> = Vec::with_capacity(claimed.len());
        let mut failed: Vec<usize> = Vec::new();
        for (position, result) in wrapped.into_iter().enumerate() {
            let c = &claimed[position];
            match result {
                Ok((body, s3)) => {
                    to_send.push(OutgoingMessage::new(position.to_string(), body));
                    sent_claims.push((position, s3));
                }
                Err(message) => {
                    outcomes[c.index] = Some(EventOutcome::failed(
                        &c.event.id,
                        &path_of(c.index),
                        message,
                    ));
                    failed.push(position);
                }
            }
        }

        let results = self.sqs.send_batch(&self.queue_url, to_send).await;
        let mut orphaned: Vec<S3Ref> = Vec::new();
        for ((position, s3), (_, result)) in sent_claims.into_iter().zip(results) {
            let c = &claimed[position];
            match result {
                Ok(_) => outcomes[c.index] = Some(EventOutcome::accepted(&c.event.id)),
                Err(e) => {
                    tracing::warn!(error = %e, event_id = %c.event.id, "event not queued");
                    let message = if e.is_retryable() {
                        "could not be queued; send it again".to_owned()
                    } else {
                        format!("could not be queued: {e}")
                    };
                    outcomes[c.index] = Some(EventOutcome {
                        id: Some(c.event.id.clone()),
                        status: Status::Rejected {
                            retryable: e.is_retryable(),
                        },
                        errors: vec![FieldError::new(path_of(c.index), message)],
                    });
                    failed.push(position);
                    orphaned.extend(s3);
                }
            }
        }
        if failed.is_empty() {
            return;
        }

        let releases: Vec<(&str, &ClaimToken)> = failed
            .iter()
            .map(|&p| (claimed[p].event.id.as_str(), &claimed[p].token))
            .collect();
        self.release(tenant_key, releases).await;
        for reference in orphaned {
            // The lifecycle rule on claims/ removes what this misses.
            if let Err(e) = self.claims.discard(&reference).await {
                tracing::warn!(error = ?e, key = %reference.key, "orphaned claim-check object left");
            }
        }
    }

    /// Releases claims of events that are not on the queue, trying each a few times: a claim
    /// left behind would turn the client's retry into a false duplicate.
    async fn release(&self, tenant_key: &str, mut pending: Vec<(&str, &ClaimToken)>) {
        for round in 1..=RELEASE_TRIES {
            let results = self.idempotency.release_many(tenant_key, &pending).await;
            pending = pending
                .into_iter()
                .zip(results)
                .filter_map(|(claim, result)| match result {
                    Ok(_) => None,
                    Err(e) => {
                        if round == RELEASE_TRIES {
                            tracing::error!(
                                error = ?e,
                                event_id = %claim.0,
                                "idempotency claim of an unqueued event could not be released; \
                                 the client's retry will be answered as a duplicate until it expires"
                            );
                        }
                        Some(claim)
                    }
                })
                .collect();
            if pending.is_empty() {
                return;
            }
        }
    }
}
