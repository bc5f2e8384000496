//! Redeliver: a delivery retried through the API goes back on the queue as a new generation
//! and starts the retry schedule over, to its action's URL as it is now.
//!
//! # Which deliveries
//!
//! A `failed` or `disabled` one; a `delivered` one is done. A `pending` one only when it is
//! stuck ([`is_stuck`](crate::delivery::Progress::is_stuck)): its message never reached the queue and nobody is sending it,
//! or its due attempt has had no report for more than [`OVERDUE_AFTER`](crate::delivery::OVERDUE_AFTER) (15 minutes) — the
//! message was lost, or parked poisoned. Its old generation's messages, should any still come,
//! change nothing (record-deliveries ignores reports and retries of older generations). And only
//! while its action is there and enabled: a retry is an attempt like the others, checked against
//! the action first (enable a disabled action with `PUT /v1/triggers/{id}`, then retry).
//!
//! # Commit, then send
//!
//! The new generation is committed first, claimed for enqueueing, with no row lock held across
//! S3 and SQS; then the message is built (a large webhook body goes to S3) and sent, then noted
//! as sent. Two retries of one delivery cannot both start a generation: the second finds it
//! `pending` and not stuck (its claim is fresh). A send that fails gives the claim back and
//! answers 503: the delivery is then pending and unsent with no claim, which a retry accepts at
//! once. A crash between the commit and the send leaves a claim that goes stale after
//! [`STALE_CLAIM`](crate::delivery::STALE_CLAIM) (2 minutes), after which a retry is accepted again.

use chrono::Utc;

use super::outbox::{Outbox, Outgoing};
use crate::config::RetryDeliveryConfig;
use crate::config::pipeline::DELIVERY_BODY_THRESHOLD;
use crate::delivery::{Delivery, DeliveryStatus};
use crate::event::EventId;
use crate::firing::WebhookPayload;
use crate::ids::{DeliveryId, TenantId};
use crate::postgres::triggers::{self, ActionNow};
use crate::postgres::{Database, deliveries, events, firings};
use crate::s3::ClaimCheck;
use crate::sqs::SqsSender;
use crate::wiring::{Clients, InitError};

/// Why a delivery was not retried.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    /// No such delivery for this tenant.
    #[error("no such delivery")]
    NotFound,
    /// Delivered, or pending and on its way.
    #[error("the delivery is {0:?}")]
    NotRetryable(DeliveryStatus),
    /// The action (or its trigger) was deleted: there is nowhere to send it.
    #[error("the delivery's action no longer exists")]
    ActionGone,
    /// The action is disabled: enable it first.
    #[error("the delivery's action is disabled")]
    ActionDisabled,
    /// The event is no longer kept, so the webhook body cannot be rebuilt.
    #[error("the event {0} is no longer kept")]
    EventGone(EventId),
    /// The message could not be queued; the delivery can be retried again at once.
    #[error("the delivery could not be queued")]
    NotQueued(#[source] anyhow::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for RedeliverError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// What retry-delivery needs, built once per container.
pub struct Redeliverer {
    pub db: Database,
    outbox: Outbox,
}

impl Redeliverer {
    /// SQS is built now (every retry sends), S3 on first use (only large webhook bodies).
    pub fn new(config: RetryDeliveryConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        Ok(Self {
            db: clients.database()?,
            outbox: Outbox::new(
                ClaimCheck::new(aws.s3.clone(), &config.bucket_name)
                    .with_threshold(DELIVERY_BODY_THRESHOLD),
                SqsSender::new(aws.sqs.clone().built()),
                &config.deliveries_queue_url,
            ),
        })
    }

    /// Retries delivery `id` of `tenant` as a new generation; the delivery as it now stands.
    pub async fn retry(
        &self,
        tenant: TenantId,
        id: DeliveryId,
    ) -> Result<Delivery, RedeliverError> {
        let pool = self.db.pool().await?;
        let (restarted, payload) = self.restart(tenant, id).await?;
        let generation = restarted.generation;
        let outgoing = Outgoing {
            key: restarted.key(),
            url: restarted.url.clone(),
        };
        let sent = match self.outbox.message(tenant, &outgoing, &payload).await {
            Ok(message) => self.outbox.send_one(&message).await.map_err(Into::into),
            Err(e) => Err(anyhow::Error::from(e)),
        };
        if let Err(e) = sent {
            tracing::error!(error = %format!("{e:#}"), delivery_id = %id, "retry not queued");
            if let Err(release) =
                deliveries::release_attempt_claim(pool, tenant, id, generation, 1).await
            {
                // The claim goes stale instead: a retry is accepted again after STALE_CLAIM.
                tracing::warn!(error = %crate::error_chain(&release), "could not give the claim back");
            }
            return Err(RedeliverError::NotQueued(e));
        }
        if let Err(e) = deliveries::mark_attempt_sent(pool, tenant, id, generation, 1).await {
            tracing::warn!(error = %crate::error_chain(&e), "could not note the retry as sent");
        }
        tracing::info!(tenant_id = %tenant, delivery_id = %id, %generation, "delivery retried");
        Ok(restarted)
    }

    /// Decides and commits the new generation (see the module documentation); the delivery as
    /// restarted and the webhook body to send.
    async fn restart(
        &self,
        tenant: TenantId,
        id: DeliveryId,
    ) -> Result<(Delivery, WebhookPayload), RedeliverError> {
        let mut tx = self.db.pool().await?.begin().await?;
        let delivery = deliveries::lock(&mut tx, tenant, id)
            .await?
            .ok_or(RedeliverError::NotFound)?;
        let retryable = match delivery.status {
            DeliveryStatus::Failed | DeliveryStatus::Disabled => true,
            DeliveryStatus::Delivered => false,
            DeliveryStatus::Pending => deliveries::progress(&mut tx, tenant, id)
                .await?
                .is_some_and(|progress| progress.is_stuck(Utc::now())),
        };
        if !retryable {
            return Err(RedeliverError::NotRetryable(delivery.status));
        }
        let url = match triggers::action(&mut tx, tenant, delivery.trigger_id, delivery.action_id)
            .await?
        {
            ActionNow::Found(action) if action.enabled => action.url.as_str().to_owned(),
            ActionNow::Found(_) => return Err(RedeliverError::ActionDisabled),
            ActionNow::TriggerGone | ActionNow::ActionGone => {
                return Err(RedeliverError::ActionGone);
            }
        };
        let firing = firings::get(&mut *tx, tenant, delivery.firing_id)
            .await?
            .ok_or(RedeliverError::NotFound)?;
        let event = events::get(&mut *tx, tenant, &firing.event_id)
            .await?
            .ok_or_else(|| RedeliverError::EventGone(firing.event_id.clone()))?;
        let generation = delivery.generation.next();
        let restarted = deliveries::restart(&mut tx, tenant, id, generation, &url).await?;
        tx.commit().await?;
        let payload = WebhookPayload::for_firing(&firing, &event.event, event.received_at);
        Ok((restarted, payload))
    }
}
