//! Deadline conditions (debounce, absence): what an event does to its group's timer, and
//! evaluate-timers, the schedule that fires the deadlines that have come.
//!
//! # Where deadlines live, and why
//!
//! In Postgres (`condition_timers`, one row per trigger and group, indexed on `due_at`),
//! beside the events and firings they concern:
//! - an event changes its group's row in the transaction that keeps the event, so a
//!   redelivered message changes nothing (the event is kept already) and a crash between the
//!   two cannot happen;
//! - a run takes due rows with `FOR UPDATE SKIP LOCKED` and records their firings in the same
//!   transaction that changes or deletes the rows: a deadline fires once, overlapping runs
//!   share the work instead of repeating it, and a run that dies rolls back to rows that are
//!   still due, which the next run (or a late one) takes;
//! - the next deadline is a plain indexed column, so a run costs one query per batch however
//!   many groups are waiting, where DynamoDB would need a scan or a second index and SQS
//!   delays cap at 15 minutes.
//!
//! # evaluate-timers, one run
//!
//! 1. Take up to [`BATCH`] due rows (locked; others' rows skipped).
//! 2. For each: if its trigger is gone, disabled, or of another version, delete the row (a
//!    trigger's update resets its state; deleting it cascades). Otherwise apply the deadline
//!    ([`crate::condition::Timed::on_due`]), record the firing it decides with its
//!    deliveries, and write or delete the row. The batch's firings, deliveries, updates and
//!    deletes are each one statement.
//! 3. Commit; then send the new deliveries (their events read with one query per tenant,
//!    the messages in `SendMessageBatch` calls of ten; a failure releases their claims).
//! 4. Repeat while batches come back full; then sweep deliveries whose message never reached
//!    the queue (their sender died after its commit) once their claim is stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::StageError;
use super::fire::{self, Fresh};
use super::outbox::{Outbox, Outgoing};
use super::trigger_cache::{CompiledTrigger, CompiledTriggers, TriggerCache};
use crate::condition::{Arrival, GroupKey, Seen, TimerFiring};
use crate::config::EvaluateConfig;
use crate::config::pipeline::DELIVERY_BODY_THRESHOLD;
use crate::event::Event;
use crate::firing::WebhookPayload;
use crate::ids::{FiringId, TenantId};
use crate::postgres::events::StoredEvent;
use crate::postgres::timers::TimerWrite;
use crate::postgres::{Database, deliveries, events, firings, timers};
use crate::s3::ClaimCheck;
use crate::sqs::SqsSender;
use crate::wiring::{Clients, InitError};

/// Due rows one transaction takes.
pub const BATCH: i64 = 200;
/// Batches one run takes at most (a run leaves the rest to the next one, a minute later).
const MAX_BATCHES: usize = 100;
/// Firings whose unsent deliveries one sweep looks at.
const SWEEP_LIMIT: i64 = 500;

/// Applies `event` (received at `received_at`, JSON `document`) to the deadline condition of
/// `trigger`, inside the caller's transaction; answers the firing it decides, if any.
pub async fn on_event(
    tx: &mut PgConnection,
    tenant: TenantId,
    trigger: &CompiledTrigger,
    event: &Event,
    document: &Value,
    received_at: DateTime<Utc>,
) -> sqlx::Result<Option<TimerFiring>> {
    let Some(timed) = trigger.condition.timed() else {
        return Ok(None);
    };
    let Some(group) = timed.group_by().key_of(document) else {
        return Ok(None);
    };
    let state = timers::lock(tx, tenant, trigger.id, trigger.condition_version, &group).await?;
    let arrival = Arrival {
        seen: Seen {
            id: event.id.clone(),
            at: received_at,
        },
        time: event.time,
        document,
    };
    let step = timed.on_event(state, &arrival, &group);
    match &step.state {
        Some(state) => {
            timers::put(
                tx,
                tenant,
                trigger.id,
                trigger.condition_version,
                group.as_text(),
                state,
                step.due,
            )
            .await?
        }
        None => timers::delete(tx, tenant, trigger.id, group.as_text()).await?,
    }
    Ok(step.fire)
}

/// What one run of evaluate-timers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerRun {
    /// Due rows taken.
    pub due: usize,
    /// Firings recorded.
    pub fired: usize,
    /// Rows deleted because their trigger is gone, disabled or changed.
    pub dropped: usize,
    /// Delivery messages sent (new ones and swept ones).
    pub enqueued: usize,
}

/// What evaluate-timers needs, built once per container.
pub struct TimerRunner {
    pub db: Database,
    pub cache: TriggerCache,
    outbox: Outbox,
    /// A delivery claimed longer ago than this and still not on the queue is swept.
    pub stale_claim_after: Duration,
}

impl TimerRunner {
    /// evaluate-timers reads the settings of evaluate-events (its table name is unused).
    pub fn new(config: EvaluateConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        Ok(Self {
            db: clients.database()?,
            cache: TriggerCache::new(config.trigger_cache_max_age),
            outbox: Outbox::new(
                ClaimCheck::new(aws.s3.clone(), &config.bucket_name)
                    .with_threshold(DELIVERY_BODY_THRESHOLD),
                SqsSender::new(aws.sqs.clone()),
                &config.deliveries_queue_url,
            ),
            stale_claim_after: Duration::from_secs(120),
        })
    }

    /// One run at `now`: every deadline due by then (see the module documentation).
    pub async fn run(&self, now: DateTime<Utc>) -> Result<TimerRun, StageError> {
        let mut total = TimerRun::default();
        for _ in 0..MAX_BATCHES {
            let (taken, fresh) = self.batch(now, &mut total).await?;
            for (tenant, fresh) in fresh {
                total.enqueued += self.send(tenant, &fresh).await?;
            }
            if taken < BATCH as usize {
                break;
            }
        }
        total.enqueued += self.sweep(now).await?;
        tracing::info!(
            due = total.due,
            fired = total.fired,
            dropped = total.dropped,
            enqueued = total.enqueued,
            "timers run"
        );
        Ok(total)
    }

    /// Steps 1–3 for one batch: answers how many rows it took and the firings per tenant.
    ///
    /// Each row is decided in memory, then the batch is written with a fixed number of
    /// statements (firings, their deliveries, rows updated, rows deleted) however many rows it
    /// took: statements per row made 10,000 deadlines some 40,000 round trips to Postgres (in
    /// AWS, through RDS Proxy), where batches make them about 400.
    async fn batch(
        &self,
        now: DateTime<Utc>,
        total: &mut TimerRun,
    ) -> Result<(usize, Vec<(TenantId, Vec<Fresh>)>), StageError> {
        let pool = self.db.pool().await?;
        let mut tx = pool.begin().await?;
        let due = timers::due(&mut tx, now, BATCH).await?;
        let taken = due.len();
        total.due += taken;
        let matched_at = now.trunc_subsecs(6);
        // Each tenant's triggers are looked up once per batch, not once per row: the whole
        // batch is decided with one set.
        let mut sets: Vec<(TenantId, Option<Arc<CompiledTriggers>>)> = Vec::new();
        let mut pending = Vec::new();
        let mut writes = Vec::new();
        let mut deletes = Vec::new();
        for row in due {
            let compiled = match sets.iter().find(|(t, _)| *t == row.tenant) {
                Some((_, compiled)) => compiled.clone(),
                None => {
                    let compiled = self.cache.get(pool, row.tenant).await?;
                    sets.push((row.tenant, compiled.clone()));
                    compiled
                }
            };
            let trigger = compiled
                .as_deref()
                .and_then(|c| c.by_id(row.trigger))
                .filter(|t| t.condition_version == row.condition_version);
            let timed = trigger.and_then(|t| t.condition.timed().map(|timed| (t, timed)));
            let (Some((trigger, timed)), Some(state)) = (timed, row.state) else {
                deletes.push((row.tenant, row.trigger, row.group_key));
                total.dropped += 1;
                continue;
            };
            let values: Vec<Value> = serde_json::from_value(row.group_values).unwrap_or_default();
            let group = GroupKey::from_values(values);
            let step = timed.on_due(state, now, &group);
            if let Some(f) = step.fire {
                pending.push(fire::Pending::new(
                    row.tenant,
                    trigger,
                    &f.event_id,
                    f.occasion,
                    f.reason,
                    matched_at,
                ));
            }
            match step.state {
                Some(state) => writes.push(TimerWrite {
                    tenant: row.tenant,
                    trigger: row.trigger,
                    version: row.condition_version,
                    group_key: row.group_key,
                    state,
                    due_at: step.due,
                }),
                None => deletes.push((row.tenant, row.trigger, row.group_key)),
            }
        }
        let recorded = fire::record_many(&mut tx, pending).await?;
        timers::put_many(&mut tx, &writes).await?;
        timers::delete_many(&mut tx, &deletes).await?;
        tx.commit().await?;
        total.fired += recorded.len();
        let mut fresh: Vec<(TenantId, Vec<Fresh>)> = Vec::new();
        for (tenant, recorded) in recorded {
            match fresh.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, list)) => list.push(recorded),
                None => fresh.push((tenant, vec![recorded])),
            }
        }
        Ok((taken, fresh))
    }

    /// Sends the deliveries of `fresh` (firings of `tenant`), each with its event (read with
    /// one query for them all).
    async fn send(&self, tenant: TenantId, fresh: &[Fresh]) -> Result<usize, StageError> {
        let pool = self.db.pool().await?;
        let mut ids: Vec<&str> = fresh.iter().map(|f| f.0.event_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let stored = events::get_many(pool, tenant, &ids).await?;
        let by_id: HashMap<&str, &StoredEvent> =
            stored.iter().map(|s| (s.event.id.as_str(), s)).collect();
        let mut outgoing = Vec::new();
        for one in fresh {
            let Some(stored) = by_id.get(one.0.event_id.as_str()) else {
                tracing::warn!(firing_id = %one.0.id, "the firing's event is not kept; its deliveries wait for the sweep");
                continue;
            };
            outgoing.extend(fire::outgoing(
                std::slice::from_ref(one),
                &stored.event,
                stored.received_at,
            ));
        }
        fire::enqueue(&self.outbox, pool, tenant, outgoing).await
    }

    /// Step 4: deliveries that never reached the queue, once their claim is stale.
    async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, StageError> {
        let pool = self.db.pool().await?;
        let stale_before = now
            - chrono::Duration::from_std(self.stale_claim_after)
                .unwrap_or(chrono::Duration::minutes(2));
        let mut sent = 0;
        for (tenant, firing_ids) in
            deliveries::unsent_firings(pool, stale_before, SWEEP_LIMIT).await?
        {
            let unsent = deliveries::claim_unsent(pool, tenant, &firing_ids, stale_before).await?;
            let mut outgoing: Vec<(Outgoing, WebhookPayload)> = Vec::new();
            for d in unsent {
                let payload = self.payload(tenant, d.firing_id).await?;
                let Some(payload) = payload else {
                    continue;
                };
                tracing::info!(delivery_id = %d.id, "sending a delivery that never reached the queue");
                outgoing.push((
                    Outgoing {
                        key: d.key(),
                        url: d.url,
                    },
                    payload,
                ));
            }
            sent += fire::enqueue(&self.outbox, pool, tenant, outgoing).await?;
        }
        Ok(sent)
    }

    async fn payload(
        &self,
        tenant: TenantId,
        firing: FiringId,
    ) -> Result<Option<WebhookPayload>, StageError> {
        let pool = self.db.pool().await?;
        let Some(firing) = firings::get(pool, tenant, firing).await? else {
            return Ok(None);
        };
        let Some(stored) = events::get(pool, tenant, firing.event_id.as_str()).await? else {
            return Ok(None);
        };
        Ok(Some(WebhookPayload::for_firing(
            &firing,
            &stored.event,
            stored.received_at,
        )))
    }
}
