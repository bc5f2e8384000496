//! Webhook deliveries and their attempts in Postgres, scoped by tenant.
//!
//! Rows are created with their firing (evaluate), put on the queue under an enqueue claim,
//! and updated from the attempts deliver-webhooks reports; which report moves a delivery's
//! status is decided in [`crate::pipeline::record`], with the primitives here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::delivery::{Attempt, AttemptReport, Delivery, DeliveryStatus, NewDelivery, Progress};
use crate::ids::{DeliveryId, FiringId, Generation, TenantId, TriggerId};
use crate::webhook::AttemptOutcome;

/// Creates the deliveries of a new firing, claimed for enqueueing by the caller.
pub async fn insert_claimed(
    conn: &mut PgConnection,
    tenant: TenantId,
    firing_id: FiringId,
    trigger_id: TriggerId,
    deliveries: &[NewDelivery],
) -> sqlx::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<_> = deliveries.iter().map(|d| d.id.0).collect();
    let actions: Vec<_> = deliveries.iter().map(|d| d.action_id.0).collect();
    let urls: Vec<String> = deliveries.iter().map(|d| d.url.clone()).collect();
    sqlx::query!(
        r#"INSERT INTO deliveries (id, tenant_id, firing_id, trigger_id, action_id, url, enqueue_claimed_at)
           SELECT d.id, $1, $2, $3, d.action_id, d.url, now()
           FROM UNNEST($4::uuid[], $5::uuid[], $6::text[]) AS d(id, action_id, url)
           ON CONFLICT (firing_id, action_id) DO NOTHING"#,
        tenant.0,
        firing_id.0,
        trigger_id.0,
        &ids,
        &actions,
        &urls
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`insert_claimed`] for the deliveries of many new firings (of any tenants) in one
/// statement: each is `(tenant, firing, trigger, delivery)`.
pub async fn insert_claimed_many(
    conn: &mut PgConnection,
    deliveries: &[(TenantId, FiringId, TriggerId, &NewDelivery)],
) -> sqlx::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<_> = deliveries.iter().map(|(_, _, _, d)| d.id.0).collect();
    let tenants: Vec<_> = deliveries.iter().map(|(t, _, _, _)| t.0).collect();
    let firings: Vec<_> = deliveries.iter().map(|(_, f, _, _)| f.0).collect();
    let triggers: Vec<_> = deliveries.iter().map(|(_, _, t, _)| t.0).collect();
    let actions: Vec<_> = deliveries
        .iter()
        .map(|(_, _, _, d)| d.action_id.0)
        .collect();
    let urls: Vec<String> = deliveries
        .iter()
        .map(|(_, _, _, d)| d.url.clone())
        .collect();
    sqlx::query!(
        r#"INSERT INTO deliveries (id, tenant_id, firing_id, trigger_id, action_id, url, enqueue_claimed_at)
           SELECT d.id, d.tenant_id, d.firing_id, d.trigger_id, d.action_id, d.url, now()
           FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[])
                AS d(id, tenant_id, firing_id, trigger_id, action_id, url)
           ON CONFLICT (firing_id, action_id) DO NOTHING"#,
        &ids,
        &tenants,
        &firings,
        &triggers,
        &actions,
        &urls
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims, for enqueueing, the deliveries of `firing_ids` that were never put on the queue
/// and whose last claim (if any) is older than `stale_before`: the sender that claimed them
/// is gone. A fresh claim belongs to a concurrent evaluation of the same event, which sends
/// them itself.
pub async fn claim_unsent(
    pool: &PgPool,
    tenant: TenantId,
    firing_ids: &[FiringId],
    stale_before: DateTime<Utc>,
) -> sqlx::Result<Vec<Delivery>> {
    if firing_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<_> = firing_ids.iter().map(|f| f.0).collect();
    sqlx::query_as!(
        Delivery,
        r#"UPDATE deliveries SET enqueue_claimed_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND firing_id = ANY($2) AND status = 'pending'
             AND attempt_count = 0 AND enqueued_at IS NULL
             AND (enqueue_claimed_at IS NULL OR enqueue_claimed_at < $3)
           RETURNING id AS "id: DeliveryId", firing_id AS "firing_id: FiringId",
                     trigger_id AS "trigger_id: TriggerId", action_id AS "action_id: _",
                     url, status AS "status: DeliveryStatus",
                     generation AS "generation: Generation", attempt_count, last_attempt_at,
                     last_status_code, next_attempt_at, final_reason, created_at, updated_at"#,
        tenant.0,
        &ids,
        stale_before
    )
    .fetch_all(pool)
    .await
}

/// Firings with a delivery whose message never reached the queue and whose claim is older than
/// `stale_before` (or was released), by tenant: what the sweep of evaluate-timers sends with
/// [`claim_unsent`]. At most `limit` firings, the oldest claims first.
pub async fn unsent_firings(
    pool: &PgPool,
    stale_before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(TenantId, Vec<FiringId>)>> {
    let rows = sqlx::query!(
        r#"SELECT tenant_id, firing_id FROM (
               SELECT DISTINCT ON (firing_id) tenant_id, firing_id, enqueue_claimed_at
               FROM deliveries
               WHERE enqueued_at IS NULL AND status = 'pending' AND attempt_count = 0
                 AND (enqueue_claimed_at IS NULL OR enqueue_claimed_at < $1)
               ORDER BY firing_id
           ) unsent
           ORDER BY enqueue_claimed_at NULLS FIRST
           LIMIT $2"#,
        stale_before,
        limit
    )
    .fetch_all(pool)
    .await?;
    let mut by_tenant: Vec<(TenantId, Vec<FiringId>)> = Vec::new();
    for r in rows {
        let (tenant, firing) = (TenantId(r.tenant_id), FiringId(r.firing_id));
        match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, list)) => list.push(firing),
            None => by_tenant.push((tenant, vec![firing])),
        }
    }
    Ok(by_tenant)
}

/// Notes that the messages of `ids` reached the queue.
pub async fn mark_enqueued(
    pool: &PgPool,
    tenant: TenantId,
    ids: &[DeliveryId],
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<_> = ids.iter().map(|d| d.0).collect();
    sqlx::query!(
        "UPDATE deliveries SET enqueued_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = ANY($2)",
        tenant.0,
        &ids
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up the enqueue claims of `ids` (their messages did not reach the queue), so that the
/// redelivered event sends them at once.
pub async fn release_claims(
    pool: &PgPool,
    tenant: TenantId,
    ids: &[DeliveryId],
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<_> = ids.iter().map(|d| d.0).collect();
    sqlx::query!(
        r#"UPDATE deliveries SET enqueue_claimed_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND id = ANY($2) AND enqueued_at IS NULL"#,
        tenant.0,
        &ids
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The deliveries of one firing, by id.
pub async fn for_firing(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    firing_id: FiringId,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id AS "id: DeliveryId", firing_id AS "firing_id: FiringId",
                  trigger_id AS "trigger_id: TriggerId", action_id AS "action_id: _",
                  url, status AS "status: DeliveryStatus",
                  generation AS "generation: Generation", attempt_count, last_attempt_at,
                  last_status_code, next_attempt_at, final_reason, created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND firing_id = $2 ORDER BY id"#,
        tenant.0,
        firing_id.0
    )
    .fetch_all(db)
    .await
}

/// One delivery of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id AS "id: DeliveryId", firing_id AS "firing_id: FiringId",
                  trigger_id AS "trigger_id: TriggerId", action_id AS "action_id: _",
                  url, status AS "status: DeliveryStatus",
                  generation AS "generation: Generation", attempt_count, last_attempt_at,
                  last_status_code, next_attempt_at, final_reason, created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0
    )
    .fetch_optional(db)
    .await
}

/// Every attempt of the deliveries of one firing, oldest first.
pub async fn attempts_for_firing(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    firing_id: FiringId,
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as!(
        Attempt,
        r#"SELECT a.id AS "id: _", a.delivery_id AS "delivery_id: DeliveryId",
                  a.generation AS "generation: Generation", a.attempt, a.started_at,
                  a.latency_ms, a.status_code, a.error_kind, a.error, a.response_snippet,
                  a.outcome AS "outcome: _", a.next_attempt_at
           FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
           WHERE d.tenant_id = $1 AND d.firing_id = $2
           ORDER BY a.started_at, a.id"#,
        tenant.0,
        firing_id.0
    )
    .fetch_all(db)
    .await
}

/// Locks a delivery for a retry through the API.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id AS "id: DeliveryId", firing_id AS "firing_id: FiringId",
                  trigger_id AS "trigger_id: TriggerId", action_id AS "action_id: _",
                  url, status AS "status: DeliveryStatus",
                  generation AS "generation: Generation", attempt_count, last_attempt_at,
                  last_status_code, next_attempt_at, final_reason, created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.0,
        id.0
    )
    .fetch_optional(conn)
    .await
}

/// Where the message of a (locked) delivery stands.
pub async fn progress(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Option<Progress>> {
    sqlx::query_as!(
        Progress,
        r#"SELECT next_attempt_at, enqueue_claimed_at, enqueued_at, created_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0
    )
    .fetch_optional(conn)
    .await
}

/// Starts generation `generation` of a locked delivery, to `url`, claimed for enqueueing: its
/// first attempt's message is sent after the commit, then noted with [`mark_attempt_sent`].
pub async fn restart(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
    generation: Generation,
    url: &str,
) -> sqlx::Result<Delivery> {
    sqlx::query_as!(
        Delivery,
        r#"UPDATE deliveries
           SET status = 'pending', generation = $3, scheduled_attempt = 1, url = $4,
               next_attempt_at = NULL, final_reason = NULL, enqueue_claimed_at = now(),
               enqueued_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND id = $2
           RETURNING id AS "id: DeliveryId", firing_id AS "firing_id: FiringId",
                     trigger_id AS "trigger_id: TriggerId", action_id AS "action_id: _",
                     url, status AS "status: DeliveryStatus",
                     generation AS "generation: Generation", attempt_count, last_attempt_at,
                     last_status_code, next_attempt_at, final_reason, created_at, updated_at"#,
        tenant.0,
        id.0,
        i32::from(generation),
        url
    )
    .fetch_one(conn)
    .await
}

/// What recording an attempt needs of its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    pub status: DeliveryStatus,
    pub generation: Generation,
    /// Where the delivery goes now (a report from before reports carried their URL was sent
    /// here).
    pub url: String,
}

/// Locks a delivery for recording an attempt; its state, if it exists.
pub async fn lock_state(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Option<RecordState>> {
    sqlx::query_as!(
        RecordState,
        r#"SELECT status AS "status: DeliveryStatus", generation AS "generation: Generation", url
           FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.0,
        id.0
    )
    .fetch_optional(conn)
    .await
}

/// What releasing a scheduled attempt needs of its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    pub status: DeliveryStatus,
    pub generation: Generation,
    /// The attempt of this generation last released (or being released) to the deliveries
    /// queue.
    pub scheduled_attempt: i32,
    /// Set while a release is under way; `enqueued_at` once its message is on the queue.
    pub enqueue_claimed_at: Option<DateTime<Utc>>,
    pub enqueued_at: Option<DateTime<Utc>>,
}

/// Locks a delivery for releasing its next attempt; its schedule, if it exists.
pub async fn lock_schedule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Option<ScheduleState>> {
    sqlx::query_as!(
        ScheduleState,
        r#"SELECT status AS "status: DeliveryStatus", generation AS "generation: Generation",
                  scheduled_attempt, enqueue_claimed_at, enqueued_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.0,
        id.0
    )
    .fetch_optional(conn)
    .await
}

/// Claims the release of `attempt` of a locked delivery, which goes to `url` (the action's URL
/// now): it becomes the scheduled attempt, and its message is about to be sent.
pub async fn claim_attempt(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
    attempt: u32,
    url: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries
           SET scheduled_attempt = $3, url = $4, enqueue_claimed_at = now(), enqueued_at = NULL,
               updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0,
        i32::try_from(attempt).unwrap_or(i32::MAX),
        url
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Notes that the message of `attempt` of `generation` reached the queue.
pub async fn mark_attempt_sent(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
    generation: Generation,
    attempt: u32,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries SET enqueued_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND id = $2 AND generation = $3 AND scheduled_attempt = $4"#,
        tenant.0,
        id.0,
        i32::from(generation),
        i32::try_from(attempt).unwrap_or(i32::MAX)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Gives up the claim on `attempt` of `generation` (its message did not reach the queue), so
/// that the retry message, when it comes back, releases it at once.
pub async fn release_attempt_claim(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
    generation: Generation,
    attempt: u32,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries SET enqueue_claimed_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND id = $2 AND generation = $3 AND scheduled_attempt = $4
             AND enqueued_at IS NULL"#,
        tenant.0,
        id.0,
        i32::from(generation),
        i32::try_from(attempt).unwrap_or(i32::MAX)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Keeps one reported attempt; `false` when it was already kept (the report came twice).
pub async fn insert_attempt(conn: &mut PgConnection, report: &AttemptReport) -> sqlx::Result<bool> {
    let outcome = &report.outcome;
    let inserted = sqlx::query!(
        r#"INSERT INTO delivery_attempts
             (id, tenant_id, delivery_id, generation, attempt, started_at, latency_ms, status_code,
              error_kind, error, response_snippet, remote_addr, outcome, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (id) DO NOTHING"#,
        report.attempt_id.0,
        report.tenant_id.0,
        report.key.delivery_id.0,
        i32::from(report.key.generation),
        i32::try_from(report.attempt).unwrap_or(i32::MAX),
        outcome.started_at,
        i64::try_from(outcome.latency.as_millis()).unwrap_or(i64::MAX),
        outcome.status.map(i32::from),
        outcome.error.as_ref().map(|e| e.kind.as_str()),
        outcome.error.as_ref().map(|e| e.message.as_str()),
        outcome.response_snippet.as_deref(),
        outcome.remote_addr.map(|a| a.to_string()),
        report.decision.as_str(),
        report.decision.next_attempt_at()
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Counts one more attempt on a delivery; the last status code follows the latest attempt
/// (attempts may be recorded out of order).
pub async fn count_attempt(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
    outcome: &AttemptOutcome,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries
           SET attempt_count = attempt_count + 1,
               last_status_code = CASE WHEN last_attempt_at IS NULL OR $3 >= last_attempt_at
                                       THEN $4 ELSE last_status_code END,
               last_attempt_at = GREATEST(last_attempt_at, $3),
               updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0,
        outcome.started_at,
        outcome.status.map(i32::from)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets when the next attempt of `generation` is due, unless an attempt later than `attempt`
/// is already recorded (its schedule is the one that counts).
pub async fn set_next_attempt(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
    generation: Generation,
    attempt: u32,
    next_attempt_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries SET next_attempt_at = $3
           WHERE tenant_id = $1 AND id = $2 AND NOT EXISTS (
               SELECT 1 FROM delivery_attempts
               WHERE delivery_id = $2 AND generation = $4 AND attempt > $5)"#,
        tenant.0,
        id.0,
        next_attempt_at,
        i32::from(generation),
        i32::try_from(attempt).unwrap_or(i32::MAX)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a delivery in a final `status`, with the reason for failed and disabled ones.
pub async fn finish(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
    status: DeliveryStatus,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE deliveries SET status = $3, next_attempt_at = NULL, final_reason = $4
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0,
        status as DeliveryStatus,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}
