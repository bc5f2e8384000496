//! Tenants in Postgres.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::tenant::TenantId;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Set while the tenant is suspended: the authorizer refuses its keys.
    pub suspended_at: Option<DateTime<Utc>>,
}

/// Creates a tenant (with `id` when given, so demo and test tenants can be fixed).
pub async fn create(
    db: impl sqlx::PgExecutor<'_>,
    id: TenantId,
    name: &str,
) -> sqlx::Result<Tenant> {
    let row = sqlx::query!(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING created_at",
        id.as_uuid(),
        name
    )
    .fetch_one(db)
    .await?;
    Ok(Tenant {
        id,
        name: name.to_owned(),
        created_at: row.created_at,
        suspended_at: None,
    })
}

pub async fn get(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<Tenant>> {
    let row = sqlx::query!(
        "SELECT name, created_at, suspended_at FROM tenants WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Tenant {
        id,
        name: r.name,
        created_at: r.created_at,
        suspended_at: r.suspended_at,
    }))
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Tenant>> {
    let rows = sqlx::query!(
        "SELECT id, name, created_at, suspended_at FROM tenants ORDER BY created_at, id"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Tenant {
            id: TenantId(r.id),
            name: r.name,
            created_at: r.created_at,
            suspended_at: r.suspended_at,
        })
        .collect())
}

/// Suspends a tenant: the authorizer refuses its keys from now on (answers API Gateway cached
/// earlier aside). `None`: no such tenant; `Some(false)`: it already was suspended.
pub async fn suspend(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"UPDATE tenants t SET suspended_at = coalesce(old.suspended_at, now())
           FROM (SELECT id, suspended_at FROM tenants WHERE id = $1 FOR UPDATE) old
           WHERE t.id = old.id
           RETURNING old.suspended_at IS NULL AS "changed!""#,
        id.as_uuid()
    )
    .fetch_optional(pool)
    .await
}

/// Lifts a suspension. `None`: no such tenant; `Some(false)`: it was not suspended.
pub async fn resume(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"UPDATE tenants t SET suspended_at = NULL
           FROM (SELECT id, suspended_at FROM tenants WHERE id = $1 FOR UPDATE) old
           WHERE t.id = old.id
           RETURNING old.suspended_at IS NOT NULL AS "changed!""#,
        id.as_uuid()
    )
    .fetch_optional(pool)
    .await
}

/// The counter bumped by every change to the tenant's triggers (`None`: no such tenant).
pub async fn trigger_revision(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT trigger_revision FROM tenants WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(pool)
    .await
}
