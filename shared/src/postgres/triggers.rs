//! Triggers in Postgres. Every statement is scoped by tenant; every change bumps the
//! trigger's version and the tenant's `trigger_revision` in one transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::tenant::TenantId;
use crate::trigger::{
    Action, ActionId, Condition, Trigger, TriggerId, TriggerSpec, assign_action_ids,
};

#[derive(Debug, thiserror::Error)]
pub enum TriggerWriteError {
    #[error("no such trigger")]
    NotFound,
    #[error("version {expected} is stale: the trigger is at version {current}")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("the tenant already has {limit} triggers, the most allowed")]
    LimitReached { limit: i64 },
    /// The tenant's enabled patterns would hold more values to match than its budget.
    #[error("the enabled triggers would hold {total} values to match, over the budget of {budget}")]
    CostBudget { total: usize, budget: usize },
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

async fn bump_revision(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET trigger_revision = trigger_revision + 1 WHERE id = $1",
        tenant.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What one tenant's triggers may add up to.
#[derive(Debug, Clone, Copy)]
pub struct TenantBudget {
    pub max_triggers: i64,
    /// The sum of the enabled patterns' [`crate::pattern::Pattern::cost`].
    pub max_pattern_cost: usize,
}

impl From<&crate::trigger::TriggerLimits> for TenantBudget {
    fn from(limits: &crate::trigger::TriggerLimits) -> Self {
        Self {
            max_triggers: limits.max_triggers_per_tenant,
            max_pattern_cost: limits.max_pattern_cost_per_tenant,
        }
    }
}

/// Locks the tenant's row: writes of one tenant's triggers run one at a time, so that the
/// counts and sums they check stay true until they commit.
async fn lock_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<(), TriggerWriteError> {
    sqlx::query_scalar!(
        "SELECT id FROM tenants WHERE id = $1 FOR UPDATE",
        tenant.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .ok_or(TriggerWriteError::NoTenant)?;
    Ok(())
}

/// Refuses a write that would take the tenant's enabled patterns over their cost budget:
/// the other enabled triggers (all but `except`) plus `spec` when it is enabled. The stored
/// patterns are read and costed afresh (at most the tenant's trigger limit of them), so the
/// check needs no stored figure that could drift from the compiler's.
async fn check_cost(
    conn: &mut PgConnection,
    tenant: TenantId,
    except: Option<TriggerId>,
    spec: &TriggerSpec,
    budget: TenantBudget,
) -> Result<(), TriggerWriteError> {
    if !spec.enabled {
        return Ok(());
    }
    let rows = sqlx::query!(
        "SELECT pattern, condition FROM triggers WHERE tenant_id = $1 AND enabled AND ($2::uuid IS NULL OR id <> $2)",
        tenant.as_uuid(),
        except.map(|id| id.0)
    )
    .fetch_all(conn)
    .await?;
    let limits = crate::pattern::PatternLimits::stored();
    // A sequence's step patterns are matched too: they count with the trigger's pattern.
    let stored: usize = rows
        .iter()
        .map(|r| {
            let pattern =
                crate::pattern::Pattern::from_value(&r.pattern, &limits).map_or(0, |p| p.cost());
            let steps =
                serde_json::from_value::<Condition>(r.condition.clone()).map_or(0, |c| c.cost());
            pattern.saturating_add(steps)
        })
        .fold(0, usize::saturating_add);
    let total = stored
        .saturating_add(spec.pattern.cost())
        .saturating_add(spec.condition.cost());
    if total > budget.max_pattern_cost {
        return Err(TriggerWriteError::CostBudget {
            total,
            budget: budget.max_pattern_cost,
        });
    }
    Ok(())
}

/// Creates a trigger, refusing when the tenant already has its most triggers, or when the
/// trigger would take its enabled patterns over their cost budget.
pub async fn create(
    pool: &PgPool,
    tenant: TenantId,
    spec: &TriggerSpec,
    budget: TenantBudget,
) -> Result<Trigger, TriggerWriteError> {
    create_with_id(pool, tenant, TriggerId::new(), spec, budget).await
}

/// [`create`] under a chosen id (demo data and tests).
pub async fn create_with_id(
    pool: &PgPool,
    tenant: TenantId,
    id: TriggerId,
    spec: &TriggerSpec,
    budget: TenantBudget,
) -> Result<Trigger, TriggerWriteError> {
    let limit = budget.max_triggers;
    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, tenant).await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM triggers WHERE tenant_id = $1"#,
        tenant.as_uuid()
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= limit {
        return Err(TriggerWriteError::LimitReached { limit });
    }
    check_cost(&mut tx, tenant, None, spec, budget).await?;
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
    budget: TenantBudget,
) -> Result<Trigger, TriggerWriteError> {
    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, tenant).await?;
    let current = sqlx::query!(
        r#"SELECT version, actions AS "actions: Json<Vec<Action>>", pattern, condition, enabled
           FROM triggers WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
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
    check_cost(&mut tx, tenant, Some(id), spec, budget).await?;
    let actions = assign_action_ids(&spec.actions, &current.actions.0);
    // What decides which events the condition's state has seen: when it changes, the state
    // starts afresh (a new condition version); a rename, a cooldown or an action does not.
    let condition = serde_json::to_value(&spec.condition).map_err(sqlx::Error::decode)?;
    let resets = current.pattern != *spec.pattern.as_value()
        || current.condition != condition
        || current.enabled != spec.enabled;
    let row = sqlx::query_as!(
        Row,
        r#"UPDATE triggers
           SET name = $3, description = $4, enabled = $5, pattern = $6, condition = $7,
               cooldown_seconds = $8, actions = $9, version = version + 1, updated_at = now(),
               condition_version = CASE WHEN $10 THEN version + 1 ELSE condition_version END
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
        resets,
    )
    .fetch_one(&mut *tx)
    .await?;
    // A new condition version starts afresh: pending deadlines of the old one go.
    if resets {
        super::timers::forget_trigger(&mut tx, tenant, id).await?;
    }
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

/// An action as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionNow {
    /// The trigger was deleted.
    TriggerGone,
    /// The trigger no longer has this action.
    ActionGone,
    Found(Action),
}

/// One action of a trigger, as it is now (read before a retry is released).
pub async fn action(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger_id: TriggerId,
    action_id: ActionId,
) -> sqlx::Result<ActionNow> {
    let actions = sqlx::query_scalar!(
        r#"SELECT actions AS "actions: Json<Vec<Action>>" FROM triggers
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        trigger_id.0
    )
    .fetch_optional(conn)
    .await?;
    Ok(match actions {
        None => ActionNow::TriggerGone,
        Some(actions) => actions
            .0
            .into_iter()
            .find(|a| a.id == action_id)
            .map_or(ActionNow::ActionGone, ActionNow::Found),
    })
}

/// What [`disable_action`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// The action was on and is now off.
    Now,
    /// The action was off already.
    Already,
    /// The action points elsewhere now: the answer was about a URL it no longer has.
    Moved,
    /// The trigger or the action is gone.
    Gone,
}

/// Turns off one action of a trigger and says why, bumping the trigger's version and the
/// tenant's trigger revision (so evaluate-events stops creating deliveries for it within its
/// cache bound) — only while the action still has `url`, the URL whose receiver answered: a
/// 410 from a URL the tenant has since replaced says nothing about the new one.
pub async fn disable_action(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger_id: TriggerId,
    action_id: ActionId,
    url: &str,
    reason: &str,
) -> sqlx::Result<Disabled> {
    let Some(mut actions) = sqlx::query_scalar!(
        r#"SELECT actions AS "actions: Json<Vec<Action>>" FROM triggers
           WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
        tenant.0,
        trigger_id.0
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Disabled::Gone);
    };
    let Some(action) = actions.0.iter_mut().find(|a| a.id == action_id) else {
        return Ok(Disabled::Gone);
    };
    if action.url.as_str() != url {
        return Ok(Disabled::Moved);
    }
    if !action.enabled {
        return Ok(Disabled::Already);
    }
    action.enabled = false;
    action.disabled_reason = Some(reason.to_owned());
    sqlx::query!(
        r#"UPDATE triggers SET actions = $3, version = version + 1, updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        trigger_id.0,
        actions as _
    )
    .execute(&mut *conn)
    .await?;
    bump_revision(conn, tenant).await?;
    tracing::warn!(%tenant, %trigger_id, %action_id, reason, "webhook action disabled");
    Ok(Disabled::Now)
}
