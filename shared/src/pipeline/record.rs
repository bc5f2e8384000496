//! Record: keeps each attempt deliver-webhooks reports and moves the delivery's status, in one
//! transaction per report; and owns the retry schedule: each next attempt waits on the
//! delivery-results queue until it is due, and is released to deliver-webhooks from here, once,
//! after the action is read again. Attempts therefore appear in the API a little after they
//! happen: the results queue's batching window (2 s) plus one batch.
//!
//! # Which report moves the status
//!
//! A report changes the delivery only while the delivery is `pending` and of the report's
//! generation. A report that arrives late, twice, or for an older generation (the delivery
//! was retried through the API since) is kept as an attempt and changes nothing else. Reports
//! of one delivery may arrive out of order: a `retrying` report sets the next attempt's time
//! only when no later attempt of its generation is recorded.
//!
//! A `disabled` report (410 Gone, a refused target) disables the action only while the action
//! still has the URL the attempt went to: a 410 from a URL the tenant has since replaced says
//! nothing about the new one, so the action stays on, and the delivery ends `failed` with a
//! reason that says so (a retry through the API sends it to the new URL).
//!
//! # Text from outside
//!
//! A report carries what the receiver answered; a receiver may answer NUL bytes, which
//! Postgres cannot store. Every such text is made storable first
//! ([`AttemptReport::storable`]: control characters escaped). Should Postgres still refuse a
//! value (SQLSTATE class 22), retrying cannot help: the report is recorded once more in its
//! [`AttemptReport::escaped`] form (ASCII only, impossible times replaced), so the delivery
//! moves on instead of staying `pending` while the message fails forever; only if even that is
//! refused is the message poison, logged with its escaped form, for the dead-letter queue.
//!
//! # Releasing the next attempt
//!
//! deliver-webhooks sends the next attempt here as a [`ScheduledRetry`], delayed until it is
//! due. When it arrives:
//!
//! 1. Not due yet (a wait longer than SQS's 15 minutes) → re-sent to this queue with the
//!    remaining delay (at most 900 s); Postgres is not touched.
//! 2. Due → under the delivery's row lock: nothing happens unless the delivery is still
//!    `pending`, of the message's generation, and this attempt was not released before
//!    (`scheduled_attempt`): a duplicate (a redelivered message, an attempt made twice) is
//!    dropped, so **the schedule never forks into two chains**. A release claimed by another
//!    consumer less than [`STALE_CLAIM`] ago is left to it: that consumer's own message comes
//!    back if its send fails or it dies (the queue's visibility timeout is longer than
//!    [`STALE_CLAIM`]).
//! 3. The action is read again: deleted (or its trigger) → the delivery ends `failed`; disabled
//!    → it ends `disabled`; each with a `final_reason` naming the attempt that was not made.
//!    Otherwise the attempt is claimed with the action's current URL and committed, **then**
//!    sent to the deliveries queue (**report before acting**: what was decided is in Postgres
//!    first), then noted as sent. A failed send gives the claim back and fails the message, which
//!    comes back and is released then (**at least once**); a crash after the send but before the
//!    note leaves a claim that goes stale, and the message that comes back sends the attempt
//!    again: the receiver may see it twice, the schedule still does not fork, because the
//!    duplicate attempts' own next attempts meet here again and only one is released.
//!
//! The URL a retry goes to is therefore the action's as it was a moment before the attempt
//! (the time it takes the deliveries queue to hand the message over), never the one captured
//! when the trigger fired.

use chrono::Utc;

use super::StageError;
use super::messages::{DeliveryMessage, ResultsQueueMessage};
use crate::config::RecordConfig;
use crate::delivery::{AttemptReport, Decision, DeliveryStatus, STALE_CLAIM};
use crate::postgres::triggers::{ActionNow, Disabled};
use crate::postgres::{Database, deliveries, is_invalid_input, triggers};
use crate::sqs::{OutgoingMessage, SqsSender};
use crate::webhook::Wake;
use crate::wiring::{Clients, InitError};

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded and the delivery's status follows it.
    Applied,
    /// The attempt was recorded; the delivery had moved on (final, or a newer generation).
    AttemptOnly,
    /// This attempt was already recorded (the report came twice).
    AlreadyRecorded,
    /// No such delivery for the tenant (deleted with its tenant).
    UnknownDelivery,
}

/// What became of a scheduled retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Sent to deliver-webhooks, to the action's URL as it is now.
    Sent { url: String },
    /// Not due: waits another hop of this many seconds.
    Waiting { delay_seconds: u32 },
    /// The action is gone or disabled: no attempt; the delivery ended in this status.
    Ended(DeliveryStatus),
    /// Nothing to do: the delivery moved on, or this attempt was released already.
    Dropped(&'static str),
}

/// What one delivery-results message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Report(Recorded),
    Retry(Released),
}

/// What record-deliveries needs, built once per container.
pub struct Recorder {
    pub db: Database,
    sqs: SqsSender,
    deliveries_queue_url: String,
    results_queue_url: String,
}

impl Recorder {
    /// SQS is built on first use: most messages are reports, which need only Postgres.
    pub fn new(config: RecordConfig, clients: &Clients) -> Result<Self, InitError> {
        Ok(Self {
            db: clients.database()?,
            sqs: SqsSender::new(clients.aws()?.sqs.clone()),
            deliveries_queue_url: config.deliveries_queue_url,
            results_queue_url: config.results_queue_url,
        })
    }

    /// One delivery-results message: a report, or a next attempt waiting to be released.
    pub async fn process(&self, text: &str) -> Result<Processed, StageError> {
        match ResultsQueueMessage::parse(text)? {
            ResultsQueueMessage::Report(report) => self.process_report(&report).await,
            ResultsQueueMessage::Retry(next) => {
                let released = self.release(&next, text).await?;
                let delivery_id = next.key.delivery_id;
                match &released {
                    Released::Waiting { .. } => {
                        tracing::debug!(%delivery_id, ?released, "retry not due yet")
                    }
                    _ => tracing::info!(
                        tenant_id = %next.tenant_id, %delivery_id,
                        attempt = next.attempt, ?released, "scheduled retry"
                    ),
                }
                Ok(Processed::Retry(released))
            }
        }
    }

    async fn process_report(&self, report: &AttemptReport) -> Result<Processed, StageError> {
        let recorded = self.record_storable(report).await?;
        let (tenant_id, delivery_id) = (report.tenant_id, report.key.delivery_id);
        match recorded {
            Recorded::UnknownDelivery => tracing::warn!(
                %tenant_id, %delivery_id,
                "result for a delivery that does not exist; dropped"
            ),
            other => tracing::info!(
                %tenant_id, %delivery_id,
                attempt = report.attempt,
                decision = report.decision.as_str(),
                recorded = ?other,
                "delivery attempt recorded"
            ),
        }
        Ok(Processed::Report(recorded))
    }

    /// Records a report in its storable form, or in its escaped form when Postgres refuses a
    /// value of that (see the module documentation).
    pub async fn record_storable(&self, report: &AttemptReport) -> Result<Recorded, StageError> {
        let storable = report.storable();
        let refused = match self.record(&storable).await {
            Err(StageError::Transient(e)) => match e.downcast_ref::<sqlx::Error>() {
                Some(db) if is_invalid_input(db) => e,
                _ => return Err(StageError::Transient(e)),
            },
            other => return other,
        };
        let escaped = report.escaped(Utc::now());
        let text = serde_json::to_string(&escaped).unwrap_or_default();
        match self.record(&escaped).await {
            Ok(recorded) => {
                tracing::error!(
                    delivery_id = %report.key.delivery_id,
                    error = %format!("{refused:#}"),
                    "Postgres refused a value of the report; its escaped form was recorded"
                );
                Ok(recorded)
            }
            Err(StageError::Transient(e))
                if e.downcast_ref::<sqlx::Error>()
                    .is_some_and(is_invalid_input) =>
            {
                Err(StageError::poison(format!(
                    "Postgres refuses the report even escaped ({e:#}): {text}"
                )))
            }
            Err(other) => Err(other),
        }
    }

    /// Records one attempt as given and applies its decision (see the module documentation);
    /// [`Self::record_storable`] is what the queue's messages go through.
    pub async fn record(&self, report: &AttemptReport) -> Result<Recorded, StageError> {
        let tenant = report.tenant_id;
        let id = report.key.delivery_id;
        let mut tx = self.db.pool().await?.begin().await?;
        let Some(state) = deliveries::lock_state(&mut tx, tenant, id).await? else {
            return Ok(Recorded::UnknownDelivery);
        };
        if !deliveries::insert_attempt(&mut tx, report).await? {
            tx.commit().await?;
            return Ok(Recorded::AlreadyRecorded);
        }
        deliveries::count_attempt(&mut tx, tenant, id, &report.outcome).await?;
        let attempted_url = report.url.as_deref().unwrap_or(&state.url);
        let disabled = match &report.decision {
            // The receiver's answer is about the endpoint, whatever became of this delivery.
            Decision::Disabled { reason } => Some(
                triggers::disable_action(
                    &mut tx,
                    tenant,
                    report.key.trigger_id,
                    report.key.action_id,
                    attempted_url,
                    reason,
                )
                .await?,
            ),
            _ => None,
        };
        if state.status != DeliveryStatus::Pending || state.generation != report.key.generation {
            tx.commit().await?;
            return Ok(Recorded::AttemptOnly);
        }
        let generation = state.generation;
        match &report.decision {
            Decision::Retrying { next_attempt_at } => {
                deliveries::set_next_attempt(
                    &mut tx,
                    tenant,
                    id,
                    generation,
                    report.attempt,
                    *next_attempt_at,
                )
                .await?;
            }
            Decision::Delivered => {
                deliveries::finish(&mut tx, tenant, id, DeliveryStatus::Delivered, None).await?;
            }
            Decision::Failed { reason } => {
                deliveries::finish(&mut tx, tenant, id, DeliveryStatus::Failed, Some(reason))
                    .await?;
            }
            Decision::Disabled { reason } => {
                let (status, reason) = match disabled {
                    Some(Disabled::Moved) => (
                        DeliveryStatus::Failed,
                        format!(
                            "{reason} at {attempted_url}; the action has another URL since and \
                             stays enabled: retry the delivery to send it there"
                        ),
                    ),
                    Some(Disabled::Gone) => (
                        DeliveryStatus::Failed,
                        format!("{reason}; the action no longer exists"),
                    ),
                    _ => (DeliveryStatus::Disabled, reason.clone()),
                };
                deliveries::finish(&mut tx, tenant, id, status, Some(&reason)).await?;
            }
        }
        tx.commit().await?;
        Ok(Recorded::Applied)
    }

    /// Releases a scheduled retry when it is due (see the module documentation). `text` is the
    /// message as it came, re-sent unchanged while it waits.
    pub async fn release(
        &self,
        next: &DeliveryMessage,
        text: &str,
    ) -> Result<Released, StageError> {
        let (tenant, key, attempt) = (next.tenant_id, next.key, next.attempt);
        if let Some(not_before) = next.not_before
            && let Wake::Defer { delay_seconds } = Wake::at(not_before, Utc::now())
        {
            self.sqs
                .send_one(
                    &self.results_queue_url,
                    OutgoingMessage::new(key.delivery_id.to_string(), text)
                        .with_delay(delay_seconds),
                )
                .await?;
            return Ok(Released::Waiting { delay_seconds });
        }

        let pool = self.db.pool().await?;
        let mut tx = pool.begin().await?;
        let Some(schedule) = deliveries::lock_schedule(&mut tx, tenant, key.delivery_id).await?
        else {
            return Ok(Released::Dropped("no such delivery"));
        };
        if schedule.status != DeliveryStatus::Pending {
            return Ok(Released::Dropped("the delivery is final"));
        }
        if schedule.generation != key.generation {
            return Ok(Released::Dropped("a newer generation of the delivery runs"));
        }
        let attempt_number = i32::try_from(attempt).unwrap_or(i32::MAX);
        if attempt_number < schedule.scheduled_attempt {
            return Ok(Released::Dropped("a later attempt was released already"));
        }
        if attempt_number == schedule.scheduled_attempt {
            if schedule.enqueued_at.is_some() {
                return Ok(Released::Dropped("this attempt was released already"));
            }
            if schedule
                .enqueue_claimed_at
                .is_some_and(|claimed| claimed > Utc::now() - STALE_CLAIM)
            {
                // Another consumer is sending it: if that send fails, its claim is given back
                // and its own message comes back; if it dies, its message comes back after the
                // visibility timeout (longer than STALE_CLAIM) and finds the claim stale.
                return Ok(Released::Dropped(
                    "another consumer is releasing this attempt",
                ));
            }
            // A stale claim: its consumer died between the claim and the note; send again.
        }

        let url = match triggers::action(&mut tx, tenant, key.trigger_id, key.action_id).await? {
            ActionNow::Found(action) if action.enabled => action.url.as_str().to_owned(),
            ActionNow::Found(action) => {
                let reason = match action.disabled_reason.as_deref() {
                    Some(why) => {
                        format!("the action was disabled before attempt {attempt} ({why})")
                    }
                    None => format!("the action was disabled before attempt {attempt}"),
                };
                let status = DeliveryStatus::Disabled;
                deliveries::finish(&mut tx, tenant, key.delivery_id, status, Some(&reason)).await?;
                tx.commit().await?;
                return Ok(Released::Ended(status));
            }
            gone => {
                let what = if gone == ActionNow::TriggerGone {
                    "trigger"
                } else {
                    "action"
                };
                let reason =
                    format!("the {what} was deleted before attempt {attempt}; no further attempts");
                let status = DeliveryStatus::Failed;
                deliveries::finish(&mut tx, tenant, key.delivery_id, status, Some(&reason)).await?;
                tx.commit().await?;
                return Ok(Released::Ended(status));
            }
        };
        deliveries::claim_attempt(&mut tx, tenant, key.delivery_id, attempt, &url).await?;
        tx.commit().await?;

        let message = DeliveryMessage {
            url: url.clone(),
            ..next.clone()
        };
        let sent = self
            .sqs
            .send_one(
                &self.deliveries_queue_url,
                OutgoingMessage::new(key.delivery_id.to_string(), message.to_json()),
            )
            .await;
        if let Err(e) = sent {
            if let Err(release) = deliveries::release_attempt_claim(
                pool,
                tenant,
                key.delivery_id,
                key.generation,
                attempt,
            )
            .await
            {
                // The claim goes stale instead; the message that comes back sends it then.
                tracing::warn!(error = %crate::error_chain(&release), "could not give the claim back");
            }
            return Err(e.into());
        }
        if let Err(e) =
            deliveries::mark_attempt_sent(pool, tenant, key.delivery_id, key.generation, attempt)
                .await
        {
            // The attempt is on the queue; only the note lags (a retry through the API may then
            // take the delivery for stuck, which starts a new generation: harmless).
            tracing::warn!(error = %crate::error_chain(&e), "could not note the retry as sent");
        }
        Ok(Released::Sent { url })
    }
}
