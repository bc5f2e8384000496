//! The triggers evaluate-events compiles: a tenant's enabled triggers, read in one query.

use crate::ids::{TenantId, TriggerId};
use crate::trigger::Action;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;

/// An enabled trigger as evaluation needs it. The condition stays JSON so that a kind this
/// build does not know (a newer writer) skips one trigger instead of failing the query.
#[derive(Debug, Clone)]
pub struct MatchableTrigger {
    pub id: TriggerId,
    pub name: String,
    pub version: i64,
    pub condition_version: i64,
    pub pattern: Value,
    pub condition: Value,
    pub cooldown_seconds: Option<i64>,
    pub actions: Vec<Action>,
}

/// Every enabled trigger of `tenant`.
pub async fn enabled(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Vec<MatchableTrigger>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: TriggerId", name, version, condition_version, pattern, condition, cooldown_seconds,
                  actions AS "actions: Json<Vec<Action>>"
           FROM triggers WHERE tenant_id = $1 AND enabled ORDER BY id"#,
        tenant.as_uuid()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MatchableTrigger {
            id: r.id,
            name: r.name,
            version: r.version,
            condition_version: r.condition_version,
            pattern: r.pattern,
            condition: r.condition,
            cooldown_seconds: r.cooldown_seconds,
            actions: r.actions.0,
        })
        .collect())
}
