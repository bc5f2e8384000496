//! Triggers in Postgres. Every statement is scoped by tenant; every change bumps the
//! trigger's version and the tenant's `trigger_revision` in one transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::tenant::TenantId;
use crate::trigger::{Action, Condition, Trigger, TriggerId, TriggerSpec, assign_action_ids};

#[derive(Debug, thiserror::Error)]
pub enum TriggerWriteError {
    #[error("no such trigger")]
    NotFound,
    #[error("version {expected} is stale: the trigger is at version {current}")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("the tenant already has {limit} triggers, the most allowed")]
    LimitReached { limit: i64 },
    #[error("no such tenant")]
    NoTenant,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    description: String,
    enabled: bool,
    pattern: Value,
    condition: Json<Condition>,
    cooldown_seconds: Option<i64>,
    actions: Json<Vec<Action>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Trigger {
    fn from(r: Row) -> Self {
        Trigger {
            id: TriggerId(r.id),
            tenant_id: Some(TenantId(r.tenant_id)),
            name: r.name,
            description: r.description,
            enabled: r.enabled,
            pattern: r.pattern,
            condition: r.condition.0,
            cooldown: r
                .cooldown_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(|s| crate::trigger::Cooldown::from_secs(s).to_text()),
            actions: r.actions.0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn cooldown_seconds(spec: &TriggerSpec) -> Option<i64> {
    spec.cooldown.and_then(|c| i64::try_from(c.as_secs()).ok())
}

async fn bump_revision(tx: &mut Transaction<'_, Postgres>, tenant: TenantId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET trigger_revision = trigger_revision + 1 WHERE id = $1",
        tenant.as_uuid()
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a trigger, refusing when the tenant already has `limit` triggers.
pub async fn create(
    pool: &PgPool,
    tenant: TenantId,
    spec: &TriggerSpec,
    limit: i64,
) -> Result<Trigger, TriggerWriteError> {
    create_with_id(pool, tenant, TriggerId::new(), spec, limit).await
}

/// [`create`] under a chosen id (demo data and tests).
pub async fn create_with_id(
    pool: &PgPool,
    tenant: TenantId,
    id: TriggerId,
    spec: &TriggerSpec,
    limit: i64,
) -> Result<Trigger, TriggerWriteError> {
    let mut tx = pool.begin().await?;
    // Locking the tenant row serialises concurrent creates, so the count below stays true.
    sqlx::query_scalar!(
        "SELECT id FROM tenants WHERE id = $1 FOR UPDATE",
        tenant.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TriggerWriteError::NoTenant)?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM triggers WHERE tenant_id = $1"#,
        tenant.as_uuid()
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= limit {
        return Err(TriggerWriteError::LimitReached { limit });
    }
    let actions = assign_action_ids(&spec.actions, &[]);
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO triggers (id, tenant_id, name, description, enabled, pattern, condition, cooldown_seconds, actions)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           RETURNING id, tenant_id, name, description, enabled, pattern,
                     condition AS "condition: Json<Condition>", cooldown_seconds,
                     actions AS "actions: Json<Vec<Action>>", version, created_at, updated_at"#,
        id.0,
        tenant.as_uuid(),
        spec.name,
        spec.description,
        spec.enabled,
        spec.pattern.as_value(),
        Json(&spec.condition) as _,
        cooldown_seconds(spec),
        Json(&actions) as _,
    )
    .fetch_one(&mut *tx)
    .await?;
    bump_revision(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn get(pool: &PgPool, tenant: TenantId, id: TriggerId) -> sqlx::Result<Option<Trigger>> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, name, description, enabled, pattern,
                  condition AS "condition: Json<Condition>", cooldown_seconds,
                  actions AS "actions: Json<Vec<Action>>", version, created_at, updated_at
           FROM triggers WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        id.0
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// One page of a tenant's triggers in id (creation) order, after `after` when given.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    enabled: Option<bool>,
    after: Option<TriggerId>,
    limit: i64,
) -> sqlx::Result<Vec<Trigger>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, name, description, enabled, pattern,
                  condition AS "condition: Json<Condition>", cooldown_seconds,
                  actions AS "actions: Json<Vec<Action>>", version, created_at, updated_at
           FROM triggers
           WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::boolean IS NULL OR enabled = $3)
           ORDER BY id LIMIT $4"#,
        tenant.as_uuid(),
        after.map(|a| a.0),
        enabled,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Replaces a trigger's definition if it is still at `expected_version`.
pub async fn replace(
    pool: &PgPool,
    tenant: TenantId,
    id: TriggerId,
    spec: &TriggerSpec,
    expected_version: i64,
) -> Result<Trigger, TriggerWriteError> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        r#"SELECT version, actions AS "actions: Json<Vec<Action>>" FROM triggers
           WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.as_uuid(),
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TriggerWriteError::NotFound)?;
    if current.version != expected_version {
        return Err(TriggerWriteError::VersionMismatch {
            expected: expected_version,
            current: current.version,
        });
    }
    let actions = assign_action_ids(&spec.actions, &current.actions.0);
    let row = sqlx::query_as!(
        Row,
        r#"UPDATE triggers
           SET name = $3, description = $4, enabled = $5, pattern = $6, condition = $7,
               cooldown_seconds = $8, actions = $9, version = version + 1, updated_at = now()
           WHERE tenant_id = $1 AND id = $2
           RETURNING id, tenant_id, name, description, enabled, pattern,
                     condition AS "condition: Json<Condition>", cooldown_seconds,
                     actions AS "actions: Json<Vec<Action>>", version, created_at, updated_at"#,
        tenant.as_uuid(),
        id.0,
        spec.name,
        spec.description,
        spec.enabled,
        spec.pattern.as_value(),
        Json(&spec.condition) as _,
        cooldown_seconds(spec),
        Json(&actions) as _,
    )
    .fetch_one(&mut *tx)
    .await?;
    bump_revision(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Deletes a trigger; with `expected_version`, only if it is still at that version.
pub async fn delete(
    pool: &PgPool,
    tenant: TenantId,
    id: TriggerId,
    expected_version: Option<i64>,
) -> Result<(), TriggerWriteError> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query_scalar!(
        "SELECT version FROM triggers WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant.as_uuid(),
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TriggerWriteError::NotFound)?;
    if let Some(expected) = expected_version
        && expected != current
    {
        return Err(TriggerWriteError::VersionMismatch { expected, current });
    }
    sqlx::query!(
        "DELETE FROM triggers WHERE tenant_id = $1 AND id = $2",
        tenant.as_uuid(),
        id.0
    )
    .execute(&mut *tx)
    .await?;
    bump_revision(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(())
}
