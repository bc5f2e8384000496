//! Ingest: from a request body to events durably on the events queue, with an honest outcome
//! for each event.
//!
//! 1. Read the body ([`IngestBody`]); invalid events are rejected with their paths. An id
//!    repeated within one request is processed once; its repeats share the first one's fate
//!    (a duplicate of it when it was accepted).
//! 2. Take one token per valid event from the tenant's bucket ([`RateLimiter`]); too few
//!    tokens refuse the whole request with `Retry-After`.
//! 3. Claim each id ([`IdempotencyStore`], a conditional write), *pending*. An id whose claim
//!    is already *queued* is a duplicate and is not queued again; one whose claim is still
//!    pending (an earlier request died, timed out or is still running) is sent again, with
//!    the first receipt time.
//! 4. Wrap each event for the queue ([`ClaimCheck`]: messages over the threshold are stored in
//!    S3 first and only their reference is queued).
//! 5. `SendMessageBatch`, 10 per call, calls in parallel ([`SqsSender`]); an event is accepted
//!    only when SQS listed it as sent.
//! 6. Mark the sent events' claims *queued*. From then on a repeat is a duplicate.
//! 7. A claim of ours whose event certainly did not reach the queue is released (and its S3
//!    object deleted), so the client's retry is a first request again.
//!
//! So "duplicate" is answered only for an event SQS acknowledged, and a crash or a timeout at
//! any step leaves a pending claim that the client's retry sends again: an event answered 202
//! is on the queue, and a retry never hides an event that is not.
//!
//! # Time
//!
//! The whole request has [`IngestConfig::budget`] (8 s of the function's 10 s, the gateway
//! waits 11 s). Each step runs within what is left; a step that runs out leaves its events
//! "rejected, retryable" without releasing their claims, since their send may have happened.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt as _;
use serde::Serialize;

use super::messages::EventMessage;
use crate::config::IngestConfig;
use crate::dynamodb::{
    Claim, ClaimToken, IdempotencyStore, RateDecision, RateLimit, RateLimiter, Table,
};
use crate::event::{BodyError, Event, EventId, EventLimits, IngestBody, Rejected};
use crate::problem::FieldError;
use crate::s3::{ClaimCheck, S3Ref};
use crate::sqs::{OutgoingMessage, SqsSender};
use crate::tenant::TenantId;
use crate::wiring::{Clients, InitError};

/// Claim-check writes in flight at once (only large events touch S3).
const WRAP_CONCURRENCY: usize = 8;
/// What a client is told about an event whose fate ran out of time.
const OUT_OF_TIME: &str = "may not have been queued (ingest ran out of time); send it again: \
                           it will not be evaluated twice";
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
    /// The time a request may take, all steps together.
    pub budget: Duration,
    idempotency: IdempotencyStore,
    rate_limiter: RateLimiter,
    claims: ClaimCheck,
    sqs: SqsSender,
    queue_url: String,
}

/// An event on its way to the queue: ours to send, by our claim or by a pending one.
struct Claimed<'a> {
    index: usize,
    event: &'a Event,
    /// When the event was received: now, or the pending claim's first receipt.
    received_at: DateTime<Utc>,
    /// Our claim's token (`None` when sending again for a pending claim of an earlier request,
    /// which is not ours to release).
    token: Option<ClaimToken>,
}

/// An event ready for the queue (its message body, and the S3 object behind it if any), or
/// why it is not.
type Wrapped = Result<(String, Option<S3Ref>), String>;

/// The time left of a request's budget.
#[derive(Debug, Clone, Copy)]
struct Deadline(tokio::time::Instant);

impl Deadline {
    /// `step`, or `None` when the budget runs out first.
    async fn run<T>(self, step: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.0, step).await.ok()
    }
}

impl Claimed<'_> {
    /// Our claim, to release when the event certainly did not reach the queue.
    fn release(&self) -> Option<(&EventId, &ClaimToken)> {
        self.token.as_ref().map(|token| (&self.event.id, token))
    }
}

impl Ingestor {
    /// DynamoDB and SQS are built now (every request needs them), S3 on first use (only
    /// large events go through it).
    pub fn new(config: IngestConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        let table = Table::new(aws.dynamodb.clone().built(), &config.table_name);
        Ok(Self {
            limits: config.limits.clone(),
            rate_limit: RateLimit {
                capacity: config.rate_burst,
                per_second: config.rate_per_second,
            },
            idempotency_ttl: config.idempotency_ttl,
            budget: config.budget,
            idempotency: IdempotencyStore::new(table.clone()),
            rate_limiter: RateLimiter::new(table),
            claims: ClaimCheck::new(aws.s3.clone(), &config.bucket_name)
                .with_threshold(config.claim_check_threshold),
            sqs: SqsSender::new(aws.sqs.clone().built()),
            queue_url: config.events_queue_url,
        })
    }

    /// Ingests one request body for `tenant`, received at `now`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, bytes = body.len()))]
    pub async fn ingest(
        &self,
        tenant: TenantId,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IngestReport, IngestError> {
        let deadline = Deadline(tokio::time::Instant::now() + self.budget);
        let now = now.trunc_subsecs(6);
        let parsed = IngestBody::parse(body, &self.limits, now).map_err(IngestError::Body)?;

        // Outcomes by index; an id's repeats point at its first occurrence.
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; parsed.items.len()];
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut first_index: HashMap<&EventId, usize> = HashMap::new();
        let mut valid: Vec<(usize, &Event)> = Vec::new();
        for item in &parsed.items {
            match &item.parsed {
                Ok(event) => match first_index.get(&event.id) {
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
            let decision = deadline
                .run(
                    self.rate_limiter
                        .acquire(tenant, self.rate_limit, cost, now),
                )
                .await;
            match decision {
                Some(Ok(RateDecision::Allowed)) => {}
                Some(Ok(limited @ RateDecision::Limited { .. })) => {
                    return Err(IngestError::RateLimited {
                        retry_after_seconds: limited.retry_after_seconds().unwrap_or(1),
                    });
                }
                Some(Err(e)) => return Err(IngestError::Unavailable(e.into())),
                None => {
                    return Err(IngestError::Unavailable(anyhow::anyhow!(
                        "the rate limit did not answer within the request's budget"
                    )));
                }
            }
            let paths: Vec<&str> = parsed.items.iter().map(|i| i.path.as_str()).collect();
            self.enqueue(&paths, tenant, &valid, now, deadline, &mut outcomes)
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

    /// Claims, wraps and sends `valid`, recording each one's outcome; marks what was sent as
    /// queued and releases what certainly was not.
    async fn enqueue(
        &self,
        paths: &[&str],
        tenant: TenantId,
        valid: &[(usize, &Event)],
        now: DateTime<Utc>,
        deadline: Deadline,
        outcomes: &mut [Option<EventOutcome>],
    ) {
        let path_of = |index: usize| paths.get(index).copied().unwrap_or("$").to_owned();

        let ids: Vec<&EventId> = valid.iter().map(|(_, e)| &e.id).collect();
        let Some(claims) = deadline
            .run(
                self.idempotency
                    .claim_many(tenant, &ids, self.idempotency_ttl, now),
            )
            .await
        else {
            for (index, event) in valid {
                outcomes[*index] = Some(EventOutcome::failed(
                    &event.id,
                    &path_of(*index),
                    OUT_OF_TIME,
                ));
            }
            return;
        };
        let mut claimed: Vec<Claimed<'_>> = Vec::with_capacity(valid.len());
        for ((index, event), claim) in valid.iter().zip(claims) {
            let (index, event) = (*index, *event);
            match claim {
                Ok(Claim::Claimed(token)) => claimed.push(Claimed {
                    index,
                    event,
                    received_at: now,
                    token: Some(token),
                }),
                Ok(Claim::Pending { received_at }) => {
                    tracing::info!(event_id = %event.id, %received_at,
                        "an earlier request claimed this event and did not confirm it queued; sending it again");
                    claimed.push(Claimed {
                        index,
                        event,
                        received_at,
                        token: None,
                    });
                }
                Ok(Claim::Duplicate { .. }) => {
                    outcomes[index] = Some(EventOutcome::duplicate(&event.id));
                }
                Err(e) => {
                    tracing::error!(error = %crate::error_chain(&e), event_id = %event.id, "idempotency claim failed");
                    outcomes[index] = Some(EventOutcome::failed(
                        &event.id,
                        &path_of(index),
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
                let text = EventMessage::to_json(tenant, c.received_at, c.event)
                    .map_err(|e| e.to_string())?;
                let claim_id = format!("{}.{}", c.event.id, uuid::Uuid::now_v7().simple());
                self.claims
                    .wrap(tenant, &claim_id, &text, now)
                    .await
                    .map(|q| (q.body, q.claim))
                    .map_err(|e| {
                        tracing::error!(error = %crate::error_chain(&e), event_id = %c.event.id, "claim check failed");
                        "could not be stored; send it again".to_owned()
                    })
            })
            .collect();
        let wrapped: Option<Vec<Wrapped>> = deadline
            .run(
                futures::stream::iter(wraps)
                    .buffered(WRAP_CONCURRENCY)
                    .collect(),
            )
            .await;
        let Some(wrapped) = wrapped else {
            // Nothing was sent: the claims are released, the retry is a first request.
            for c in &claimed {
                outcomes[c.index] = Some(EventOutcome::failed(
                    &c.event.id,
                    &path_of(c.index),
                    OUT_OF_TIME,
                ));
            }
            self.release(
                tenant,
                claimed.iter().filter_map(Claimed::release).collect(),
            )
            .await;
            return;
        };
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

        let Some(results) = deadline
            .run(self.sqs.send_batch(&self.queue_url, to_send))
            .await
        else {
            // Some may be on the queue: their claims stay pending, so a retry sends them again
            // (never a duplicate answer for an event that is not queued).
            for (position, _) in &sent_claims {
                let c = &claimed[*position];
                outcomes[c.index] = Some(EventOutcome::failed(
                    &c.event.id,
                    &path_of(c.index),
                    OUT_OF_TIME,
                ));
            }
            self.release(
                tenant,
                failed
                    .iter()
                    .filter_map(|&p| claimed[p].release())
                    .collect(),
            )
            .await;
            return;
        };
        let mut orphaned: Vec<S3Ref> = Vec::new();
        let mut queued: Vec<(&EventId, DateTime<Utc>)> = Vec::with_capacity(sent_claims.len());
        for ((position, s3), (_, result)) in sent_claims.into_iter().zip(results) {
            let c = &claimed[position];
            match result {
                Ok(_) => {
                    outcomes[c.index] = Some(EventOutcome::accepted(&c.event.id));
                    queued.push((&c.event.id, c.received_at));
                }
                Err(e) => {
                    tracing::warn!(error = %e, event_id = %c.event.id, "event not queued");
                    let message = if e.is_retryable() {
                        "could not be queued; send it again".to_owned()
                    } else {
                        format!("could not be queued: {e}")
                    };
                    outcomes[c.index] = Some(EventOutcome {
                        id: Some(c.event.id.to_string()),
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

        if !queued.is_empty() {
            let marked = deadline
                .run(
                    self.idempotency
                        .mark_queued(tenant, &queued, self.idempotency_ttl),
                )
                .await;
            if !matches!(marked, Some(Ok(()))) {
                // The events are on the queue; their claims stay pending, so a retry sends
                // them again (evaluate is idempotent) instead of answering "duplicate".
                let error = match marked {
                    Some(Err(e)) => crate::error_chain(&e),
                    _ => "out of time".to_owned(),
                };
                tracing::warn!(%error, events = queued.len(), "claims not marked queued");
            }
        }
        if failed.is_empty() {
            return;
        }
        self.release(
            tenant,
            failed
                .iter()
                .filter_map(|&p| claimed[p].release())
                .collect(),
        )
        .await;
        for reference in orphaned {
            // The lifecycle rule on claims/ removes what this misses.
            if let Err(e) = self.claims.discard(&reference).await {
                tracing::warn!(error = %crate::error_chain(&e), key = %reference.key, "orphaned claim-check object left");
            }
        }
    }

    /// Releases our claims of events that are not on the queue, trying each a few times. A
    /// claim left behind is only pending: the client's retry sends the event again.
    async fn release(&self, tenant: TenantId, mut pending: Vec<(&EventId, &ClaimToken)>) {
        if pending.is_empty() {
            return;
        }
        for round in 1..=RELEASE_TRIES {
            let results = self.idempotency.release_many(tenant, &pending).await;
            pending = pending
                .into_iter()
                .zip(results)
                .filter_map(|(claim, result)| match result {
                    Ok(_) => None,
                    Err(e) => {
                        if round == RELEASE_TRIES {
                            tracing::warn!(
                                error = %crate::error_chain(&e),
                                event_id = %claim.0,
                                "idempotency claim of an unqueued event not released; it stays \
                                 pending, and the client's retry sends the event"
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
