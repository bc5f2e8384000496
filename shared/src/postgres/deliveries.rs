//! Webhook deliveries and their attempts in Postgres, scoped by tenant.
//!
//! Rows are created with their firing (evaluate-events), put on the queue under an enqueue
//! claim, and updated from the results deliver-webhooks reports (record-deliveries). A result
//! changes the delivery's status only while the delivery is `pending` and of the same
//! generation; a result that arrives late, twice, or for an older generation is kept as an
//! attempt and changes nothing else.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::pipeline::messages::{Decision, DeliveryResultMessage};
use crate::tenant::TenantId;
use crate::trigger::Action;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// On its way: queued, between attempts, or being recorded.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The retry schedule was exhausted.
    Failed,
    /// The receiver is gone (410) or its address refused; the action was disabled.
    Disabled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "disabled" => Self::Disabled,
            _ => Self::Pending,
        }
    }
}

/// A delivery as kept (and, serialised, as the API shows it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub firing_id: Uuid,
    pub trigger_id: Uuid,
    pub action_id: Uuid,
    pub url: String,
    pub status: DeliveryStatus,
    pub generation: i32,
    pub attempt_count: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub final_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

struct Row {
    id: Uuid,
    firing_id: Uuid,
    trigger_id: Uuid,
    action_id: Uuid,
    url: String,
    status: String,
    generation: i32,
    attempt_count: i32,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    next_attempt_at: Option<DateTime<Utc>>,
    final_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Delivery {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            firing_id: r.firing_id,
            trigger_id: r.trigger_id,
            action_id: r.action_id,
            url: r.url,
            status: DeliveryStatus::parse(&r.status),
            generation: r.generation,
            attempt_count: r.attempt_count,
            last_attempt_at: r.last_attempt_at,
            last_status_code: r.last_status_code,
            next_attempt_at: r.next_attempt_at,
            final_reason: r.final_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub generation: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery to create with its firing.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub action_id: Uuid,
    pub url: String,
}

/// Creates the deliveries of a new firing, claimed for enqueueing by the caller.
pub async fn insert_claimed(
    conn: &mut PgConnection,
    tenant: TenantId,
    firing_id: Uuid,
    trigger_id: Uuid,
    deliveries: &[NewDelivery],
) -> sqlx::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let actions: Vec<Uuid> = deliveries.iter().map(|d| d.action_id).collect();
    let urls: Vec<String> = deliveries.iter().map(|d| d.url.clone()).collect();
    sqlx::query!(
        r#"INSERT INTO deliveries (id, tenant_id, firing_id, trigger_id, action_id, url, enqueue_claimed_at)
           SELECT d.id, $1, $2, $3, d.action_id, d.url, now()
           FROM UNNEST($4::uuid[], $5::uuid[], $6::text[]) AS d(id, action_id, url)
           ON CONFLICT (firing_id, action_id) DO NOTHING"#,
        tenant.as_uuid(),
        firing_id,
        trigger_id,
        &ids,
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
    firing_ids: &[Uuid],
    stale_before: DateTime<Utc>,
) -> sqlx::Result<Vec<Delivery>> {
    if firing_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as!(
        Row,
        r#"UPDATE deliveries SET enqueue_claimed_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND firing_id = ANY($2) AND status = 'pending'
             AND attempt_count = 0 AND enqueued_at IS NULL
             AND (enqueue_claimed_at IS NULL OR enqueue_claimed_at < $3)
           RETURNING id, firing_id, trigger_id, action_id, url, status, generation, attempt_count,
                     last_attempt_at, last_status_code, next_attempt_at, final_reason,
                     created_at, updated_at"#,
        tenant.as_uuid(),
        firing_ids,
        stale_before
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Notes that the messages of `ids` reached the queue.
pub async fn mark_enqueued(pool: &PgPool, tenant: TenantId, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE deliveries SET enqueued_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = ANY($2)",
        tenant.as_uuid(),
        ids
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up the enqueue claims of `ids` (their messages did not reach the queue), so that the
/// redelivered event sends them at once.
pub async fn release_claims(pool: &PgPool, tenant: TenantId, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"UPDATE deliveries SET enqueue_claimed_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND id = ANY($2) AND enqueued_at IS NULL"#,
        tenant.as_uuid(),
        ids
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The deliveries of one firing, by id.
pub async fn for_firing(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    firing_id: Uuid,
) -> sqlx::Result<Vec<Delivery>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, firing_id, trigger_id, action_id, url, status, generation, attempt_count,
                  last_attempt_at, last_status_code, next_attempt_at, final_reason,
                  created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND firing_id = $2 ORDER BY id"#,
        tenant.as_uuid(),
        firing_id
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One delivery of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, firing_id, trigger_id, action_id, url, status, generation, attempt_count,
                  last_attempt_at, last_status_code, next_attempt_at, final_reason,
                  created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// Every attempt of the deliveries of one firing, oldest first.
pub async fn attempts_for_firing(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    firing_id: Uuid,
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as!(
        Attempt,
        r#"SELECT a.id, a.delivery_id, a.generation, a.attempt, a.started_at, a.latency_ms,
                  a.status_code, a.error_kind, a.error, a.response_snippet, a.outcome,
                  a.next_attempt_at
           FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
           WHERE d.tenant_id = $1 AND d.firing_id = $2
           ORDER BY a.started_at, a.id"#,
        tenant.as_uuid(),
        firing_id
    )
    .fetch_all(db)
    .await
}

/// Locks a delivery for a retry through the API.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, firing_id, trigger_id, action_id, url, status, generation, attempt_count,
                  last_attempt_at, last_status_code, next_attempt_at, final_reason,
                  created_at, updated_at
           FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.as_uuid(),
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// Starts generation `generation` of a locked delivery whose message is on the queue.
pub async fn restart(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    generation: i32,
) -> sqlx::Result<Delivery> {
    let row = sqlx::query_as!(
        Row,
        r#"UPDATE deliveries
           SET status = 'pending', generation = $3, next_attempt_at = NULL, final_reason = NULL,
               enqueue_claimed_at = now(), enqueued_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND id = $2
           RETURNING id, firing_id, trigger_id, action_id, url, status, generation, attempt_count,
                     last_attempt_at, last_status_code, next_attempt_at, final_reason,
                     created_at, updated_at"#,
        tenant.as_uuid(),
        id,
        generation
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// What recording a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded and the delivery's status follows it.
    Applied,
    /// The attempt was recorded; the delivery had moved on (final, or a newer generation).
    AttemptOnly,
    /// This attempt was already recorded (the result message came twice).
    AlreadyRecorded,
    /// No such delivery for the tenant (deleted with its tenant).
    UnknownDelivery,
}

/// Records one attempt and applies its decision, in one transaction. A `disabled` decision
/// disables the action in its trigger (see [`disable_action`]).
pub async fn record(pool: &PgPool, result: &DeliveryResultMessage) -> sqlx::Result<Recorded> {
    let tenant = result.tenant_id;
    let generation = i32::try_from(result.generation).unwrap_or(i32::MAX);
    let mut tx = pool.begin().await?;
    let Some(current) = sqlx::query!(
        "SELECT status, generation FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant.as_uuid(),
        result.delivery_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Recorded::UnknownDelivery);
    };
    let outcome = &result.outcome;
    let next_attempt_at = match &result.decision {
        Decision::Retrying { next_attempt_at } => Some(*next_attempt_at),
        _ => None,
    };
    let inserted = sqlx::query!(
        r#"INSERT INTO delivery_attempts
             (id, tenant_id, delivery_id, generation, attempt, started_at, latency_ms, status_code,
              error_kind, error, response_snippet, remote_addr, outcome, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (id) DO NOTHING"#,
        result.attempt_id,
        tenant.as_uuid(),
        result.delivery_id,
        generation,
        i32::try_from(result.attempt).unwrap_or(i32::MAX),
        outcome.started_at,
        i64::try_from(outcome.latency.as_millis()).unwrap_or(i64::MAX),
        outcome.status.map(i32::from),
        outcome.error.as_ref().map(|e| e.kind.as_str()),
        outcome.error.as_ref().map(|e| e.message.as_str()),
        outcome.response_snippet.as_deref(),
        outcome.remote_addr.map(|a| a.to_string()),
        result.decision.as_str(),
        next_attempt_at
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(Recorded::AlreadyRecorded);
    }
    sqlx::query!(
        r#"UPDATE deliveries
           SET attempt_count = attempt_count + 1,
               last_status_code = CASE WHEN last_attempt_at IS NULL OR $3 >= last_attempt_at
                                       THEN $4 ELSE last_status_code END,
               last_attempt_at = GREATEST(last_attempt_at, $3),
               updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        result.delivery_id,
        outcome.started_at,
        outcome.status.map(i32::from)
    )
    .execute(&mut *tx)
    .await?;

    if let Decision::Disabled { reason } = &result.decision {
        // The receiver's answer is about the endpoint, whatever became of this delivery.
        disable_action(&mut tx, tenant, result.trigger_id, result.action_id, reason).await?;
    }
    let applies =
        current.status == DeliveryStatus::Pending.as_str() && current.generation == generation;
    if !applies {
        tx.commit().await?;
        return Ok(Recorded::AttemptOnly);
    }
    match &result.decision {
        Decision::Delivered => {
            sqlx::query!(
                r#"UPDATE deliveries SET status = 'delivered', next_attempt_at = NULL, final_reason = NULL
                   WHERE tenant_id = $1 AND id = $2"#,
                tenant.as_uuid(),
                result.delivery_id
            )
            .execute(&mut *tx)
            .await?;
        }
        Decision::Retrying { next_attempt_at } => {
            // Results of one delivery may arrive out of order: only the latest attempt's
            // schedule counts.
            sqlx::query!(
                r#"UPDATE deliveries SET next_attempt_at = $3
                   WHERE tenant_id = $1 AND id = $2 AND NOT EXISTS (
                       SELECT 1 FROM delivery_attempts
                       WHERE delivery_id = $2 AND generation = $4 AND attempt > $5)"#,
                tenant.as_uuid(),
                result.delivery_id,
                next_attempt_at,
                generation,
                i32::try_from(result.attempt).unwrap_or(i32::MAX)
            )
            .execute(&mut *tx)
            .await?;
        }
        Decision::Failed { reason } | Decision::Disabled { reason } => {
            sqlx::query!(
                r#"UPDATE deliveries SET status = $3, next_attempt_at = NULL, final_reason = $4
                   WHERE tenant_id = $1 AND id = $2"#,
                tenant.as_uuid(),
                result.delivery_id,
                result.decision.as_str(),
                reason
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Recorded::Applied)
}

/// Turns off one action of a trigger and says why, bumping the trigger's version and the
/// tenant's trigger revision (so evaluate-events stops creating deliveries for it within its
/// cache bound). `false` when the trigger or the action is gone, or the action already off.
pub async fn disable_action(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger_id: Uuid,
    action_id: Uuid,
    reason: &str,
) -> sqlx::Result<bool> {
    let Some(mut actions) = sqlx::query_scalar!(
        r#"SELECT actions AS "actions: Json<Vec<Action>>" FROM triggers
           WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.as_uuid(),
        trigger_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(false);
    };
    let Some(action) = actions
        .0
        .iter_mut()
        .find(|a| a.id == action_id && a.enabled)
    else {
        return Ok(false);
    };
    action.enabled = false;
    action.disabled_reason = Some(reason.to_owned());
    sqlx::query!(
        r#"UPDATE triggers SET actions = $3, version = version + 1, updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        trigger_id,
        actions as _
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE tenants SET trigger_revision = trigger_revision + 1 WHERE id = $1",
        tenant.as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    tracing::warn!(%tenant, %trigger_id, %action_id, reason, "webhook action disabled");
    Ok(true)
}
