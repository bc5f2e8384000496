//! API keys in Postgres: only hashes are stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::tenant::{NewApiKey, TenantId, hash_api_key};

/// A key as listed: never the key itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a key authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub tenant_id: TenantId,
}

/// Stores a new key for `tenant`; returns its id and the key (the only time it is seen).
pub async fn create(
    db: impl sqlx::PgExecutor<'_>,
    tenant: TenantId,
    name: &str,
) -> sqlx::Result<(Uuid, NewApiKey)> {
    let key = NewApiKey::generate();
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix) VALUES ($1, $2, $3, $4, $5)",
        id,
        tenant.as_uuid(),
        name,
        &key.hash[..],
        key.display_prefix
    )
    .execute(db)
    .await?;
    Ok((id, key))
}

pub async fn list(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Vec<ApiKeyInfo>> {
    let rows = sqlx::query!(
        "SELECT id, name, key_prefix, created_at, revoked_at FROM api_keys
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

/// The tenant a presented key belongs to, when the key exists and is not revoked.
pub async fn authenticate(pool: &PgPool, presented: &str) -> sqlx::Result<Option<KeyOwner>> {
    let hash = hash_api_key(presented);
    let row = sqlx::query!(
        "SELECT id, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        &hash[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| KeyOwner {
        key_id: r.id,
        tenant_id: TenantId(r.tenant_id),
    }))
}
