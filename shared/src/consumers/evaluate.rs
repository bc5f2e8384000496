//! evaluate-events: match each event against its tenant's triggers, record firings and their
//! deliveries in Postgres, keep the event, and put the deliveries on their queue.
//!
//! # Order of work for one event, and why
//!
//! 1. Match against the tenant's compiled triggers (cached, see [`TriggerCache`]).
//! 2. Read which of the matched triggers already fired on this event: a redelivered message
//!    must not fire them again, nor take their cooldown again.
//! 3. For each matched trigger that has not fired and has a cooldown, take the cooldown lock
//!    ([`CooldownLock::try_acquire_for`]) *before* writing the firing, in the event's receipt
//!    time and on the event's behalf. A refused lock means the trigger is cooling down and
//!    does not fire. Because the lock is owned by the event and timed by its receipt, a
//!    redelivery of the same event gets the same answer: a first evaluation that took the
//!    lock and died before committing is granted the lock again and fires (the firing is not
//!    lost to its own lock), and one that was refused is refused again. Taking the lock after
//!    the commit instead would record firings the cooldown should have stopped.
//! 4. One transaction: keep the event (once), insert each firing under
//!    `UNIQUE (trigger_id, event_id)` with `ON CONFLICT DO NOTHING RETURNING` (of concurrent
//!    evaluations of one event exactly one inserts), and the firing's deliveries, one per
//!    enabled webhook action, claimed for enqueueing.
//! 5. After the commit, send the new deliveries; then, for firings that already existed, the
//!    deliveries that never reached the queue and whose claim is stale (their sender died
//!    between commit and send). A failed send releases the claim and fails the message, so
//!    its redelivery sends them; a fresh claim belongs to a concurrent evaluation, which
//!    sends them itself. So a delivery is queued once, and never lost.

use std::collections::HashSet;
use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt as _;
use uuid::Uuid;

use super::{MessageError, body};
use crate::aws::AwsClients;
use crate::dynamodb::{CooldownLock, Table};
use crate::event::Event;
use crate::pipeline::config::{DELIVERY_BODY_THRESHOLD, EVENT_CLAIM_THRESHOLD, EvaluateConfig};
use crate::pipeline::messages::{EventMessage, FiredTrigger, FiringData, WebhookPayload};
use crate::pipeline::outbox::{Outbox, Outgoing};
use crate::pipeline::triggers::{CompiledTrigger, TriggerCache};
use crate::postgres::deliveries::{self, NewDelivery};
use crate::postgres::firings::{self, Firing};
use crate::postgres::{Database, events};
use crate::s3::{ClaimCheck, ClaimCheckError};
use crate::sqs::SqsSender;
use crate::tenant::TenantId;
use crate::trigger::Condition;

/// Messages of one batch evaluated at once (the pool holds 2 connections; matching and
/// DynamoDB calls overlap with the other's queries).
pub const CONCURRENCY: usize = 4;

/// Cooldown locks taken at once for one event.
const LOCK_CONCURRENCY: usize = 8;

/// What became of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Every enabled trigger whose pattern matched.
    pub matched: Vec<Uuid>,
    /// Firings this evaluation recorded.
    pub fired: Vec<Uuid>,
    /// Matched triggers that did not fire because their cooldown was running.
    pub cooling_down: Vec<Uuid>,
    /// Delivery messages this evaluation put on the queue.
    pub enqueued: usize,
    /// The event id was already kept from another receipt (reused after the idempotency
    /// window): not evaluated again.
    pub reused_id: bool,
}

/// What evaluate-events needs, built once per container.
pub struct Evaluator {
    pub db: Database,
    pub cache: TriggerCache,
    cooldowns: CooldownLock,
    claims: ClaimCheck,
    outbox: Outbox,
    /// A delivery claimed for enqueueing longer ago than this, and still not on the queue, is
    /// sent by the next evaluation of its event (2 minutes: twice the function's timeout).
    pub stale_claim_after: Duration,
}

impl Evaluator {
    pub fn new(db: Database, clients: &AwsClients, config: &EvaluateConfig) -> Self {
        let table = Table::new(clients.dynamodb.clone(), &config.table_name);
        Self {
            db,
            cache: TriggerCache::new(config.trigger_cache_max_age),
            cooldowns: CooldownLock::new(table),
            claims: ClaimCheck::new(clients.s3.clone(), &config.bucket_name)
                .with_threshold(EVENT_CLAIM_THRESHOLD),
            outbox: Outbox::new(
                ClaimCheck::new(clients.s3.clone(), &config.bucket_name)
                    .with_threshold(DELIVERY_BODY_THRESHOLD),
                SqsSender::new(clients.sqs.clone()),
                &config.deliveries_queue_url,
            ),
            stale_claim_after: Duration::from_secs(120),
        }
    }

    /// The handler of one events-queue message.
    pub async fn handle(&self, message: SqsMessage) -> Result<(), MessageError> {
        let text = body(&message)?;
        let inner = self.claims.unwrap(text).await.map_err(|e| match e {
            ClaimCheckError::S3 { .. } | ClaimCheckError::Mismatch { .. } => {
                MessageError::Transient(e.into())
            }
            other => MessageError::poison(other),
        })?;
        let event = EventMessage::parse(&inner).map_err(MessageError::poison)?;
        let evaluation = self.evaluate(&event).await?;
        tracing::info!(
            tenant_id = %event.tenant_id,
            event_id = %event.event.id,
            matched = evaluation.matched.len(),
            fired = evaluation.fired.len(),
            cooling_down = evaluation.cooling_down.len(),
            enqueued = evaluation.enqueued,
            "event evaluated"
        );
        Ok(())
    }

    /// Evaluates one event (see the module documentation for the order of work).
    pub async fn evaluate(&self, message: &EventMessage) -> Result<Evaluation, MessageError> {
        let tenant = message.tenant_id;
        let event = &message.event;
        let pool = self.db.pool().await?;
        let Some(compiled) = self.cache.get(pool, tenant).await? else {
            return Err(MessageError::poison(format!(
                "tenant {tenant} does not exist"
            )));
        };
        let bytes = serde_json::to_vec(event).map_err(MessageError::poison)?;
        let matched = compiled.matching(&bytes).map_err(MessageError::poison)?;
        let mut evaluation = Evaluation {
            matched: matched.iter().map(|t| t.id.0).collect(),
            ..Evaluation::default()
        };

        if let Some(kept) = events::received_at(pool, tenant, &event.id)
            .await
            .map_err(anyhow::Error::from)?
            && kept != message.received_at
        {
            tracing::warn!(%tenant, event_id = %event.id, first_received_at = %kept,
                "event id reused after the idempotency window; not evaluated again");
            evaluation.reused_id = true;
            return Ok(evaluation);
        }
        let existing = firings::for_event(pool, tenant, &event.id)
            .await
            .map_err(anyhow::Error::from)?;
        let already: HashSet<Uuid> = existing.iter().map(|f| f.trigger_id).collect();
        let candidates: Vec<&CompiledTrigger> = matched
            .iter()
            .copied()
            .filter(|t| !already.contains(&t.id.0))
            .filter(|t| matches!(t.condition, Condition::Every))
            .collect();
        let allowed = self
            .take_cooldowns(
                tenant,
                event,
                message.received_at,
                candidates,
                &mut evaluation,
            )
            .await?;

        let matched_at = Utc::now().trunc_subsecs(6);
        let mut fresh: Vec<(Firing, Vec<NewDelivery>)> = Vec::new();
        let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
        events::insert(
            &mut tx,
            tenant,
            event,
            message.received_at,
            &evaluation.matched,
        )
        .await
        .map_err(anyhow::Error::from)?;
        for trigger in allowed {
            let firing = Firing {
                id: Uuid::now_v7(),
                trigger_id: trigger.id.0,
                trigger_name: trigger.name.clone(),
                trigger_version: trigger.version,
                event_id: event.id.clone(),
                matched_at,
                reasons: serde_json::json!([]),
            };
            if !firings::insert(&mut tx, tenant, &firing)
                .await
                .map_err(anyhow::Error::from)?
            {
                // A concurrent evaluation of this event fired it and sends its deliveries.
                continue;
            }
            let new: Vec<NewDelivery> = trigger
                .actions
                .iter()
                .map(|a| NewDelivery {
                    id: Uuid::now_v7(),
                    action_id: a.id,
                    url: a.url.as_str().to_owned(),
                })
                .collect();
            deliveries::insert_claimed(&mut tx, tenant, firing.id, trigger.id.0, &new)
                .await
                .map_err(anyhow::Error::from)?;
            fresh.push((firing, new));
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        evaluation.fired = fresh.iter().map(|(f, _)| f.id).collect();

        let mut outgoing: Vec<(Outgoing, WebhookPayload)> = Vec::new();
        for (firing, new) in &fresh {
            for d in new {
                outgoing.push((
                    Outgoing {
                        delivery_id: d.id,
                        firing_id: firing.id,
                        trigger_id: firing.trigger_id,
                        action_id: d.action_id,
                        url: d.url.clone(),
                        generation: 1,
                    },
                    payload(firing, event, message.received_at),
                ));
            }
        }
        if !existing.is_empty() {
            let stale_before = Utc::now()
                - chrono::Duration::from_std(self.stale_claim_after)
                    .unwrap_or(chrono::Duration::minutes(2));
            let ids: Vec<Uuid> = existing.iter().map(|f| f.id).collect();
            let unsent = deliveries::claim_unsent(pool, tenant, &ids, stale_before)
                .await
                .map_err(anyhow::Error::from)?;
            for d in unsent {
                let Some(firing) = existing.iter().find(|f| f.id == d.firing_id) else {
                    continue;
                };
                tracing::info!(delivery_id = %d.id, "sending a delivery its first evaluation did not send");
                outgoing.push((
                    Outgoing {
                        delivery_id: d.id,
                        firing_id: d.firing_id,
                        trigger_id: d.trigger_id,
                        action_id: d.action_id,
                        url: d.url,
                        generation: u32::try_from(d.generation).unwrap_or(1),
                    },
                    payload(firing, event, message.received_at),
                ));
            }
        }
        if outgoing.is_empty() {
            return Ok(evaluation);
        }

        let results = self.outbox.send(tenant, outgoing).await;
        let (sent, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
        let sent: Vec<Uuid> = sent.into_iter().map(|(id, _)| id).collect();
        evaluation.enqueued = sent.len();
        let marked = deliveries::mark_enqueued(pool, tenant, &sent).await;
        if let Err(e) = marked {
            // They are on the queue; only the bookkeeping lags, and the claim stays fresh.
            tracing::warn!(error = ?e, "could not note deliveries as enqueued");
        }
        if failed.is_empty() {
            return Ok(evaluation);
        }
        let failed_ids: Vec<Uuid> = failed.iter().map(|(id, _)| *id).collect();
        for (id, error) in &failed {
            tracing::warn!(delivery_id = %id, error = error.as_ref().err().map(String::as_str).unwrap_or(""), "delivery not queued");
        }
        deliveries::release_claims(pool, tenant, &failed_ids)
            .await
            .map_err(anyhow::Error::from)?;
        Err(MessageError::Transient(anyhow::anyhow!(
            "{} of the event's deliveries could not be queued; the event will be evaluated again",
            failed_ids.len()
        )))
    }

    /// The candidates whose cooldown (if any) lets them fire now.
    async fn take_cooldowns<'t>(
        &self,
        tenant: TenantId,
        event: &Event,
        received_at: DateTime<Utc>,
        candidates: Vec<&'t CompiledTrigger>,
        evaluation: &mut Evaluation,
    ) -> Result<Vec<&'t CompiledTrigger>, MessageError> {
        let tenant_key = tenant.to_string();
        // Futures collected first: a stream holding the closure would make the handler's
        // future `Send` only for one lifetime, which the Lambda runtime cannot use.
        let lookups: Vec<_> = candidates
            .into_iter()
            .map(|trigger| {
                let tenant_key = &tenant_key;
                async move {
                    let decision = match trigger.cooldown {
                        None => Ok(true),
                        Some(cooldown) => {
                            self.cooldowns
                                .try_acquire_for(
                                    tenant_key,
                                    &trigger.id.to_string(),
                                    &event.id,
                                    cooldown,
                                    received_at,
                                )
                                .await
                        }
                    };
                    (trigger, decision)
                }
            })
            .collect();
        let decisions: Vec<(&CompiledTrigger, Result<bool, crate::dynamodb::DynamoError>)> =
            futures::stream::iter(lookups)
                .buffered(LOCK_CONCURRENCY)
                .collect()
                .await;
        let mut allowed = Vec::with_capacity(decisions.len());
        for (trigger, decision) in decisions {
            match decision {
                Ok(true) => allowed.push(trigger),
                Ok(false) => evaluation.cooling_down.push(trigger.id.0),
                Err(e) => return Err(MessageError::Transient(e.into())),
            }
        }
        Ok(allowed)
    }
}

/// The webhook body of `firing` on `event`.
pub fn payload(firing: &Firing, event: &Event, received_at: DateTime<Utc>) -> WebhookPayload {
    WebhookPayload::fired(FiringData {
        firing_id: firing.id,
        trigger: FiredTrigger {
            id: firing.trigger_id,
            name: firing.trigger_name.clone(),
            version: firing.trigger_version,
        },
        matched_at: firing.matched_at,
        reasons: firing.reasons.clone(),
        event: event.clone(),
        received_at,
    })
}
