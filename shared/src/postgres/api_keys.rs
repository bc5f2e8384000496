//! API keys in Postgres: only hashes are stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::tenant::{NewApiKey, Scopes, TenantId, hash_api_key};

/// A key as listed: never the key itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a key authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub tenant_id: TenantId,
    pub scopes: Scopes,
}

/// Scopes as stored: names that are not scopes (none can be: the column's CHECK) are dropped.
fn scopes_of(names: &[String]) -> Scopes {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// Stores a new key for `tenant` with `scopes` (at least one: the column refuses none);
/// returns its id and the key (the only time it is seen).
pub async fn create(
    db: impl sqlx::PgExecutor<'_>,
    tenant: TenantId,
    name: &str,
    scopes: Scopes,
) -> sqlx::Result<(Uuid, NewApiKey)> {
    let key = NewApiKey::generate();
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix, scopes)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        tenant.as_uuid(),
        name,
        &key.hash[..],
        key.display_prefix,
        &scopes.names()[..]
    )
    .execute(db)
    .await?;
    Ok((id, key))
}

pub async fn list(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Vec<ApiKeyInfo>> {
    let rows = sqlx::query!(
        "SELECT id, name, key_prefix, scopes, created_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 ORDER BY created_at, id",
        tenant.as_uuid()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiKeyInfo {
            id: r.id,
            tenant_id: tenant,
            name: r.name,
            prefix: r.key_prefix,
            scopes: scopes_of(&r.scopes),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
        .collect())
}

/// Revokes a key of `tenant`; `false` when the tenant has no such (unrevoked) key.
pub async fn revoke(pool: &PgPool, tenant: TenantId, key_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        tenant.as_uuid(),
        key_id
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenant a presented key belongs to and what the key may do, when the key exists, is
/// not revoked and its tenant is not suspended.
pub async fn authenticate(pool: &PgPool, presented: &str) -> sqlx::Result<Option<KeyOwner>> {
    let hash = hash_api_key(presented);
    let row = sqlx::query!(
        "SELECT k.id, k.tenant_id, k.scopes FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND t.suspended_at IS NULL",
        &hash[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| KeyOwner {
        key_id: r.id,
        tenant_id: TenantId(r.tenant_id),
        scopes: scopes_of(&r.scopes),
    }))
}
