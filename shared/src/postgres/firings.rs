//! Firings in Postgres: one per (trigger, event), scoped by tenant.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::tenant::TenantId;

/// A trigger firing on an event, with the trigger as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub id: Uuid,
    pub trigger_id: Uuid,
    pub trigger_name: String,
    pub trigger_version: i64,
    pub event_id: String,
    pub matched_at: DateTime<Utc>,
    pub reasons: Value,
}

/// Records `firing` unless `(trigger, event)` already fired; `true` when this call did.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    firing: &Firing,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO firings (id, tenant_id, trigger_id, event_id, trigger_name, trigger_version, matched_at, reasons)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (trigger_id, event_id) DO NOTHING
           RETURNING id"#,
        firing.id,
        tenant.as_uuid(),
        firing.trigger_id,
        firing.event_id,
        firing.trigger_name,
        firing.trigger_version,
        firing.matched_at,
        firing.reasons
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// The firings of one event, by trigger id.
pub async fn for_event(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    event_id: &str,
) -> sqlx::Result<Vec<Firing>> {
    sqlx::query_as!(
        Firing,
        r#"SELECT id, trigger_id, trigger_name, trigger_version, event_id, matched_at, reasons
           FROM firings WHERE tenant_id = $1 AND event_id = $2 ORDER BY trigger_id"#,
        tenant.as_uuid(),
        event_id
    )
    .fetch_all(db)
    .await
}

/// One firing of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: Uuid,
) -> sqlx::Result<Option<Firing>> {
    sqlx::query_as!(
        Firing,
        r#"SELECT id, trigger_id, trigger_name, trigger_version, event_id, matched_at, reasons
           FROM firings WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        id
    )
    .fetch_optional(db)
    .await
}

/// Which firings to list.
#[derive(Debug, Clone, Default)]
pub struct FiringFilter {
    pub trigger_id: Option<Uuid>,
    /// Matched at or after.
    pub since: Option<DateTime<Utc>>,
    /// Matched before.
    pub until: Option<DateTime<Utc>>,
    /// Continue after this `(matched_at, id)` (the last item of the previous page).
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// One page of firings, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    filter: &FiringFilter,
    limit: i64,
) -> sqlx::Result<Vec<Firing>> {
    let (after_at, after_id) = filter.after.unzip();
    sqlx::query_as!(
        Firing,
        r#"SELECT id, trigger_id, trigger_name, trigger_version, event_id, matched_at, reasons
           FROM firings
           WHERE tenant_id = $1
             AND ($2::uuid IS NULL OR trigger_id = $2)
             AND ($3::timestamptz IS NULL OR matched_at >= $3)
             AND ($4::timestamptz IS NULL OR matched_at < $4)
             AND ($5::timestamptz IS NULL OR (matched_at, id) < ($5, $6::uuid))
           ORDER BY matched_at DESC, id DESC
           LIMIT $7"#,
        tenant.as_uuid(),
        filter.trigger_id,
        filter.since,
        filter.until,
        after_at,
        after_id,
        limit
    )
    .fetch_all(pool)
    .await
}
