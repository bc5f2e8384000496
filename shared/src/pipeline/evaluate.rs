//! Evaluate: match each event against its tenant's triggers, record firings and their
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

use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt as _;

use serde_json::Value;

use super::StageError;
use super::conditions::{Conditions, Outcome};
use super::fire::{self, Fresh};
use super::messages::EventMessage;
use super::outbox::{Outbox, Outgoing};
use super::timers;
use super::trigger_cache::{CompiledTrigger, TriggerCache};
use crate::condition::Windowed;
use crate::config::EvaluateConfig;
use crate::config::pipeline::{DELIVERY_BODY_THRESHOLD, EVENT_CLAIM_THRESHOLD};
use crate::dynamodb::{CooldownLock, Lock, Table, WindowStore};
use crate::event::Event;
use crate::firing::WebhookPayload;
use crate::ids::{FiringId, TenantId, TriggerId};
use crate::postgres::{Database, deliveries, events, firings};
use crate::s3::ClaimCheck;
use crate::sqs::SqsSender;
use crate::trigger::Condition;
use crate::wiring::{Clients, InitError};

/// How `GET /v1/events/{id}` shows a deadline condition's event that did not fire.
fn timed_note(condition: &Condition) -> Value {
    match condition {
        Condition::Debounce(d) => serde_json::json!({"outcome": "in_progress",
            "progress": {"condition": "debounce", "fires_after_quiet": d.quiet.to_text()}}),
        Condition::Absence(a) => serde_json::json!({"outcome": "in_progress",
            "progress": {"condition": "absence", "expected": a.expected_json()}}),
        Condition::Sequence(q) if q.then_not.is_some() => serde_json::json!({
            "outcome": "in_progress",
            "progress": {"condition": "sequence", "fires_unless_followed_within": q.within.to_text()}}),
        other => {
            serde_json::json!({"outcome": "in_progress", "progress": {"condition": other.kind()}})
        }
    }
}

/// Cooldown locks taken at once for one event.
const LOCK_CONCURRENCY: usize = 8;

/// What became of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Every enabled trigger whose pattern matched.
    pub matched: Vec<TriggerId>,
    /// Firings this evaluation recorded.
    pub fired: Vec<FiringId>,
    /// Matched triggers that did not fire because their cooldown was running.
    pub cooling_down: Vec<TriggerId>,
    /// Matched triggers whose condition counted the event without being met yet.
    pub in_progress: Vec<TriggerId>,
    /// What each matched trigger that did not fire made of the event (kept with the event,
    /// shown by `GET /v1/events/{id}`).
    pub notes: Vec<(TriggerId, Value)>,
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
    conditions: Conditions,
    claims: ClaimCheck,
    outbox: Outbox,
    /// A delivery claimed for enqueueing longer ago than this, and still not on the queue, is
    /// sent by the next evaluation of its event (2 minutes: twice the function's timeout).
    pub stale_claim_after: Duration,
}

impl Evaluator {
    /// Every client on first use: an event that matches no trigger needs none of them.
    pub fn new(config: EvaluateConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        let table = Table::new(aws.dynamodb.clone(), &config.table_name);
        Ok(Self {
            db: clients.database()?,
            cache: TriggerCache::new(config.trigger_cache_max_age),
            cooldowns: CooldownLock::new(table.clone()),
            conditions: Conditions::new(WindowStore::new(table.clone()), CooldownLock::new(table)),
            claims: ClaimCheck::new(aws.s3.clone(), &config.bucket_name)
                .with_threshold(EVENT_CLAIM_THRESHOLD),
            outbox: Outbox::new(
                ClaimCheck::new(aws.s3.clone(), &config.bucket_name)
                    .with_threshold(DELIVERY_BODY_THRESHOLD),
                SqsSender::new(aws.sqs.clone()),
                &config.deliveries_queue_url,
            ),
            stale_claim_after: Duration::from_secs(120),
        })
    }

    /// One events-queue message: out of its claim-check envelope, read, evaluated.
    pub async fn process(&self, body: &str) -> Result<Evaluation, StageError> {
        let inner = self.claims.unwrap(body).await?;
        let message = EventMessage::parse(&inner)?;
        let evaluation = self.evaluate(&message).await?;
        tracing::info!(
            tenant_id = %message.tenant_id,
            event_id = %message.event.id,
            matched = evaluation.matched.len(),
            fired = evaluation.fired.len(),
            cooling_down = evaluation.cooling_down.len(),
            in_progress = evaluation.in_progress.len(),
            enqueued = evaluation.enqueued,
            "event evaluated"
        );
        Ok(evaluation)
    }

    /// Evaluates one event (see the module documentation for the order of work).
    pub async fn evaluate(&self, message: &EventMessage) -> Result<Evaluation, StageError> {
        let tenant = message.tenant_id;
        let event = &message.event;
        let pool = self.db.pool().await?;
        let Some(compiled) = self.cache.get(pool, tenant).await? else {
            return Err(StageError::poison(format!(
                "tenant {tenant} does not exist"
            )));
        };
        let bytes = serde_json::to_vec(event).map_err(StageError::poison)?;
        let matched = compiled.matching(&bytes).map_err(StageError::poison)?;
        let mut evaluation = Evaluation {
            matched: matched.iter().map(|t| t.id).collect(),
            ..Evaluation::default()
        };

        if let Some(kept) = events::received_at(pool, tenant, &event.id).await?
            && kept != message.received_at
        {
            tracing::warn!(%tenant, event_id = %event.id, first_received_at = %kept,
                "event id reused after the idempotency window; not evaluated again");
            // Said where the client can see it: GET /v1/events/{id} lists this receipt.
            events::note_reuse(pool, tenant, &event.id, message.received_at).await?;
            evaluation.reused_id = true;
            return Ok(evaluation);
        }
        let existing = firings::for_event(pool, tenant, &event.id).await?;
        let already: HashSet<TriggerId> = existing.iter().map(|f| f.trigger.id).collect();
        let unfired: Vec<&CompiledTrigger> = matched
            .iter()
            .copied()
            .filter(|t| !already.contains(&t.id))
            .collect();
        let every = unfired
            .iter()
            .copied()
            .filter(|t| matches!(t.condition, Condition::Every))
            .collect();
        let mut allowed: Vec<(&CompiledTrigger, Value)> = self
            .take_cooldowns(tenant, event, message.received_at, every, &mut evaluation)
            .await?
            .into_iter()
            .map(|t| (t, Value::Array(Vec::new())))
            .collect();
        allowed.extend(
            self.apply_conditions(
                tenant,
                event,
                message.received_at,
                &unfired,
                &mut evaluation,
            )
            .await?,
        );

        let timed: Vec<&CompiledTrigger> = unfired
            .iter()
            .copied()
            .filter(|t| t.condition.timed().is_some())
            .collect();
        for t in &timed {
            evaluation.notes.push((t.id, timed_note(&t.condition)));
        }
        let notes: serde_json::Map<String, Value> = evaluation
            .notes
            .iter()
            .map(|(id, note)| (id.to_string(), note.clone()))
            .collect();
        let fresh = self
            .record_firings(
                tenant,
                message,
                &evaluation.matched,
                &notes.into(),
                allowed,
                &timed,
            )
            .await?;
        evaluation.fired = fresh.iter().map(|(f, _)| f.id).collect();

        let mut outgoing = fire::outgoing(&fresh, event, message.received_at);
        if !existing.is_empty() {
            let stale_before = Utc::now()
                - chrono::Duration::from_std(self.stale_claim_after)
                    .unwrap_or(chrono::Duration::minutes(2));
            let ids: Vec<FiringId> = existing.iter().map(|f| f.id).collect();
            let unsent = deliveries::claim_unsent(pool, tenant, &ids, stale_before).await?;
            for d in unsent {
                let Some(firing) = existing.iter().find(|f| f.id == d.firing_id) else {
                    continue;
                };
                tracing::info!(delivery_id = %d.id, "sending a delivery its first evaluation did not send");
                outgoing.push((
                    Outgoing {
                        key: d.key(),
                        url: d.url,
                    },
                    WebhookPayload::for_firing(firing, event, message.received_at),
                ));
            }
        }
        evaluation.enqueued = fire::enqueue(&self.outbox, pool, tenant, outgoing).await?;
        Ok(evaluation)
    }

    /// Step 4: keeps the event and records the firings of `allowed` with their deliveries,
    /// in one transaction; if the event is kept by this call (not a redelivery), applies it to
    /// the deadline conditions of `timed` in the same transaction (so it changes them once),
    /// recording the firings they decide (a group that came back). Answers the firings this
    /// call inserted.
    async fn record_firings(
        &self,
        tenant: TenantId,
        message: &EventMessage,
        matched: &[TriggerId],
        notes: &Value,
        allowed: Vec<(&CompiledTrigger, Value)>,
        timed: &[&CompiledTrigger],
    ) -> Result<Vec<Fresh>, StageError> {
        let event = &message.event;
        let matched_at = Utc::now().trunc_subsecs(6);
        let mut fresh = Vec::new();
        let mut tx = self.db.pool().await?.begin().await?;
        let kept =
            events::insert(&mut tx, tenant, event, message.received_at, matched, notes).await?;
        for (trigger, reasons) in allowed {
            // `None`: a concurrent evaluation of this event fired it and sends its deliveries.
            fresh.extend(
                fire::record(&mut tx, tenant, trigger, &event.id, "", reasons, matched_at).await?,
            );
        }
        if kept && !timed.is_empty() {
            let document = serde_json::to_value(event).map_err(StageError::poison)?;
            for trigger in timed {
                let decided = timers::on_event(
                    &mut tx,
                    tenant,
                    trigger,
                    event,
                    &document,
                    message.received_at,
                )
                .await?;
                if let Some(f) = decided {
                    fresh.extend(
                        fire::record(
                            &mut tx,
                            tenant,
                            trigger,
                            &f.event_id,
                            f.occasion,
                            f.reason,
                            matched_at,
                        )
                        .await?,
                    );
                }
            }
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// The matched triggers with a condition over time, applied to the event: those that fire
    /// now, with their reasons (see [`Conditions`]).
    async fn apply_conditions<'t>(
        &self,
        tenant: TenantId,
        event: &Event,
        received_at: DateTime<Utc>,
        unfired: &[&'t CompiledTrigger],
        evaluation: &mut Evaluation,
    ) -> Result<Vec<(&'t CompiledTrigger, Value)>, StageError> {
        let thresholds: Vec<(&CompiledTrigger, Windowed)> = unfired
            .iter()
            .filter_map(|t| t.condition.windowed().map(|w| (*t, w)))
            .collect();
        if thresholds.is_empty() {
            return Ok(Vec::new());
        }
        let document = serde_json::to_value(event).map_err(StageError::poison)?;
        let document = &document;
        let applications: Vec<_> = thresholds
            .into_iter()
            .map(|(trigger, threshold)| async move {
                let outcome = self
                    .conditions
                    .windowed(tenant, trigger, threshold, event, document, received_at)
                    .await;
                (trigger, outcome)
            })
            .collect();
        let outcomes: Vec<(
            &CompiledTrigger,
            Result<Outcome, crate::dynamodb::DynamoError>,
        )> = futures::stream::iter(applications)
            .buffered(LOCK_CONCURRENCY)
            .collect()
            .await;
        let mut firing = Vec::new();
        for (trigger, outcome) in outcomes {
            let outcome = outcome?;
            evaluation
                .notes
                .extend(outcome.note().map(|n| (trigger.id, n)));
            match outcome {
                Outcome::Fire(reason) => firing.push((trigger, reason)),
                Outcome::CoolingDown(_) => evaluation.cooling_down.push(trigger.id),
                Outcome::InProgress(_) => evaluation.in_progress.push(trigger.id),
                Outcome::NotCounted(_) => {}
            }
        }
        Ok(firing)
    }

    /// The candidates whose cooldown (if any) lets them fire now.
    async fn take_cooldowns<'t>(
        &self,
        tenant: TenantId,
        event: &Event,
        received_at: DateTime<Utc>,
        candidates: Vec<&'t CompiledTrigger>,
        evaluation: &mut Evaluation,
    ) -> Result<Vec<&'t CompiledTrigger>, StageError> {
        // Futures collected first: a stream holding the closure would make the handler's
        // future `Send` only for one lifetime, which the Lambda runtime cannot use.
        let lookups: Vec<_> = candidates
            .into_iter()
            .map(|trigger| async move {
                let decision = match trigger.cooldown {
                    None => Ok(Lock::Granted),
                    Some(cooldown) => {
                        self.cooldowns
                            .try_acquire_for(tenant, trigger.id, &event.id, cooldown, received_at)
                            .await
                    }
                };
                (trigger, decision)
            })
            .collect();
        let decisions: Vec<(&CompiledTrigger, Result<Lock, crate::dynamodb::DynamoError>)> =
            futures::stream::iter(lookups)
                .buffered(LOCK_CONCURRENCY)
                .collect()
                .await;
        let mut allowed = Vec::with_capacity(decisions.len());
        for (trigger, decision) in decisions {
            match decision? {
                Lock::Granted => allowed.push(trigger),
                Lock::Held { until } => {
                    evaluation.cooling_down.push(trigger.id);
                    evaluation
                        .notes
                        .extend(Outcome::CoolingDown(until).note().map(|n| (trigger.id, n)));
                }
            }
        }
        Ok(allowed)
    }
}
