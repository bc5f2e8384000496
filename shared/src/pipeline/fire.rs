//! Recording a firing with its deliveries, and putting those deliveries on their queue: the
//! steps evaluate-events (a matching event) and evaluate-timers (a deadline) share.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::StageError;
use super::outbox::{Outbox, Outgoing};
use super::trigger_cache::CompiledTrigger;
use crate::delivery::{DeliveryKey, NewDelivery};
use crate::event::Event;
use crate::firing::{FiredTrigger, Firing, WebhookPayload};
use crate::ids::{DeliveryId, EventId, FiringId, Generation, TenantId};
use crate::postgres::{deliveries, firings};

/// A firing recorded by this transaction, with the deliveries it claimed for enqueueing.
pub type Fresh = (Firing, Vec<NewDelivery>);

/// A firing of `trigger` on `event_id`, not recorded yet, with one delivery per enabled
/// webhook action.
fn prepare(
    trigger: &CompiledTrigger,
    event_id: &EventId,
    reasons: Value,
    matched_at: DateTime<Utc>,
) -> Fresh {
    let firing = Firing {
        id: FiringId::new(),
        trigger: FiredTrigger {
            id: trigger.id,
            name: trigger.name.clone(),
            version: trigger.version,
        },
        event_id: event_id.clone(),
        matched_at,
        reasons,
    };
    let new: Vec<NewDelivery> = trigger
        .actions
        .iter()
        .map(|a| NewDelivery {
            id: DeliveryId::new(),
            action_id: a.id,
            url: a.url.as_str().to_owned(),
        })
        .collect();
    (firing, new)
}

/// Records a firing of `trigger` on `event_id` (and `occasion`, see [`firings::insert`]) with
/// one delivery per enabled webhook action, claimed for enqueueing; `None` when that firing
/// exists already (a concurrent or earlier evaluation recorded it and sends its deliveries).
pub async fn record(
    tx: &mut PgConnection,
    tenant: TenantId,
    trigger: &CompiledTrigger,
    event_id: &EventId,
    occasion: &str,
    reasons: Value,
    matched_at: DateTime<Utc>,
) -> sqlx::Result<Option<Fresh>> {
    let (firing, new) = prepare(trigger, event_id, reasons, matched_at);
    if !firings::insert(&mut *tx, tenant, &firing, occasion).await? {
        return Ok(None);
    }
    deliveries::insert_claimed(tx, tenant, firing.id, trigger.id, &new).await?;
    Ok(Some((firing, new)))
}

/// A firing for [`record_many`], prepared as [`record`] would.
#[derive(Debug, Clone)]
pub struct Pending {
    tenant: TenantId,
    occasion: &'static str,
    fresh: Fresh,
}

impl Pending {
    pub fn new(
        tenant: TenantId,
        trigger: &CompiledTrigger,
        event_id: &EventId,
        occasion: &'static str,
        reasons: Value,
        matched_at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            occasion,
            fresh: prepare(trigger, event_id, reasons, matched_at),
        }
    }
}

/// [`record`] for many firings (of any tenants) in two statements, whatever their number:
/// answers, in the order given, those this call recorded (a firing that exists already is
/// left out, as [`record`] answers `None` for it).
pub async fn record_many(
    tx: &mut PgConnection,
    pending: Vec<Pending>,
) -> sqlx::Result<Vec<(TenantId, Fresh)>> {
    let rows: Vec<(TenantId, &Firing, &str)> = pending
        .iter()
        .map(|p| (p.tenant, &p.fresh.0, p.occasion))
        .collect();
    let inserted = firings::insert_many(&mut *tx, &rows).await?;
    let recorded: Vec<(TenantId, Fresh)> = pending
        .into_iter()
        .filter(|p| inserted.contains(&p.fresh.0.id))
        .map(|p| (p.tenant, p.fresh))
        .collect();
    let new: Vec<_> = recorded
        .iter()
        .flat_map(|(tenant, (firing, new))| {
            new.iter()
                .map(move |d| (*tenant, firing.id, firing.trigger.id, d))
        })
        .collect();
    deliveries::insert_claimed_many(tx, &new).await?;
    Ok(recorded)
}

/// The first messages of the deliveries of `fresh`, whose firings are on `event`.
pub fn outgoing(
    fresh: &[Fresh],
    event: &Event,
    received_at: DateTime<Utc>,
) -> Vec<(Outgoing, WebhookPayload)> {
    let mut out = Vec::new();
    for (firing, new) in fresh {
        for d in new {
            out.push((
                Outgoing {
                    key: DeliveryKey {
                        delivery_id: d.id,
                        firing_id: firing.id,
                        trigger_id: firing.trigger.id,
                        action_id: d.action_id,
                        generation: Generation::FIRST,
                    },
                    url: d.url.clone(),
                },
                WebhookPayload::for_firing(firing, event, received_at),
            ));
        }
    }
    out
}

/// Sends `outgoing` and notes which reached the queue; a delivery that did not has its claim
/// released, and the call fails so that the work is retried. Answers how many were sent.
pub async fn enqueue(
    outbox: &Outbox,
    pool: &PgPool,
    tenant: TenantId,
    outgoing: Vec<(Outgoing, WebhookPayload)>,
) -> Result<usize, StageError> {
    if outgoing.is_empty() {
        return Ok(0);
    }
    let results = outbox.send(tenant, outgoing).await;
    let (sent, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
    let sent: Vec<DeliveryId> = sent.into_iter().map(|(id, _)| id).collect();
    if let Err(e) = deliveries::mark_enqueued(pool, tenant, &sent).await {
        // They are on the queue; only the bookkeeping lags, and the claim stays fresh.
        tracing::warn!(error = %crate::error_chain(&e), "could not note deliveries as enqueued");
    }
    if failed.is_empty() {
        return Ok(sent.len());
    }
    let failed_ids: Vec<DeliveryId> = failed.iter().map(|(id, _)| *id).collect();
    for (id, error) in &failed {
        tracing::warn!(delivery_id = %id, error = error.as_ref().err().map(String::as_str).unwrap_or(""), "delivery not queued");
    }
    deliveries::release_claims(pool, tenant, &failed_ids).await?;
    Err(StageError::Transient(anyhow::anyhow!(
        "{} deliveries could not be queued; they will be sent again",
        failed_ids.len()
    )))
}
