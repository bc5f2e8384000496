//! The local demo data `make dev` keeps in place: the demo tenant, its fixed API key and the
//! demo trigger that the samples in events/ name (see events/README.md). Idempotent: what
//! exists is left as it is.
//!
//! The fixed key is public (it is in the repository), so it exists only in local databases:
//! nothing but `triggeriq dev --demo` and the hidden `tenant create --api-key` writes a
//! chosen key.

use anyhow::{Context as _, bail};
use serde_json::json;
use sqlx::PgPool;
use triggeriq::postgres::{tenants, triggers};
use triggeriq::tenant::{Scopes, TenantId, hash_api_key, looks_like_api_key};
use triggeriq::trigger::{BodyKind, TriggerBody, TriggerId, TriggerLimits};
use triggeriq::webhook::TargetPolicy;
use uuid::Uuid;

/// The demo tenant's id.
pub const TENANT: Uuid = Uuid::from_u128(0x0190f0a0_0000_7000_8000_000000000001);
/// The demo tenant's API key (local development only).
pub const API_KEY: &str = "tiq_DEMO-local-development-key-0000000000000000";
/// The id the demo key is stored under (the samples' `api_key_id`).
pub const API_KEY_ID: Uuid = Uuid::from_u128(0x0190f0a0_0000_7000_8000_0000000000a1);
/// The demo trigger the get/update/delete samples name.
pub const TRIGGER: Uuid = Uuid::from_u128(0x0190f0a0_0000_7000_8000_0000000000f1);

/// Stores `key` (plain text, shown by the caller) for `tenant` under `key_id` with `scopes`;
/// nothing when the tenant already has that key (its scopes are left as they are). Refuses
/// anything that is not shaped like our keys.
pub async fn insert_key(
    db: impl sqlx::PgExecutor<'_>,
    tenant: TenantId,
    key_id: Uuid,
    key: &str,
    name: &str,
    scopes: Scopes,
) -> anyhow::Result<()> {
    if !looks_like_api_key(key) {
        bail!("an API key must be `tiq_` followed by 43 characters of A-Z, a-z, 0-9, - or _");
    }
    let owner: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix, scopes)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (key_hash) DO UPDATE SET key_hash = EXCLUDED.key_hash
         RETURNING tenant_id",
    )
    .bind(key_id)
    .bind(tenant.as_uuid())
    .bind(name)
    .bind(&hash_api_key(key)[..])
    .bind(&key[..10])
    .bind(scopes.names())
    .fetch_optional(db)
    .await
    .context("storing the API key")?;
    if owner.is_some_and(|o| o != tenant.as_uuid()) {
        bail!("that API key already belongs to another tenant");
    }
    Ok(())
}

/// Makes sure the demo tenant, key and trigger exist; the trigger posts to `webhook_url`.
pub async fn seed(pool: &PgPool, webhook_url: &str) -> anyhow::Result<()> {
    let tenant = TenantId(TENANT);
    let mut tx = pool.begin().await?;
    if tenants::get(pool, tenant).await?.is_none() {
        tenants::create(&mut *tx, tenant, "Demo tenant (local)").await?;
    }
    insert_key(
        &mut *tx,
        tenant,
        API_KEY_ID,
        API_KEY,
        "demo key (local only)",
        Scopes::ALL,
    )
    .await?;
    tx.commit().await?;

    if triggers::get(pool, tenant, TriggerId(TRIGGER))
        .await?
        .is_none()
    {
        // The local stack's setting: plain http to a receiver on this machine.
        let limits = TriggerLimits {
            webhook_targets: TargetPolicy::local_development(),
            ..TriggerLimits::default()
        };
        let body = json!({
            "name": "Demo: payment failed",
            "description": "Created by make dev; posts to the local demo receiver",
            "pattern": {"type": ["payment.failed"]},
            "actions": [{"type": "webhook", "url": webhook_url}],
        });
        let parsed = TriggerBody::parse(&body, BodyKind::Create, &limits)
            .map_err(|problems| anyhow::anyhow!("the demo trigger is invalid: {problems:?}"))?;
        triggers::create_with_id(
            pool,
            tenant,
            TriggerId(TRIGGER),
            &parsed.spec,
            (&limits).into(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo trigger: {e}"))?;
    }
    Ok(())
}

/// Makes sure the demo tenant has a webhook signing secret in `table` (its first one, made with
/// the tenant as `triggeriq tenant create` makes it; an existing one is left as it is).
pub async fn seed_signing_secret(
    clients: &triggeriq::aws::AwsClients,
    table: &str,
    signing_key: &str,
) -> anyhow::Result<()> {
    let store = triggeriq::dynamodb::SigningSecretStore::new(
        triggeriq::dynamodb::Table::new(clients.dynamodb.clone(), table),
        triggeriq::kms::Sealer::new(clients.kms.clone(), signing_key),
    );
    store
        .get_or_create(TenantId(TENANT), chrono::Utc::now())
        .await
        .context("making the demo tenant's signing secret")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn seeding_twice_keeps_one_tenant_key_and_trigger(pool: PgPool) {
        seed(&pool, "http://127.0.0.1:9100/hooks/demo")
            .await
            .expect("seeded");
        seed(&pool, "http://127.0.0.1:9100/hooks/demo")
            .await
            .expect("seeded again");
        let owner = triggeriq::postgres::api_keys::authenticate(&pool, API_KEY)
            .await
            .expect("lookup");
        assert_eq!(
            owner.map(|o| (o.tenant_id, o.key_id)),
            Some((TenantId(TENANT), API_KEY_ID))
        );
        let trigger = triggers::get(&pool, TenantId(TENANT), TriggerId(TRIGGER))
            .await
            .expect("get");
        assert!(trigger.is_some());
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(keys, 1);
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn chosen_keys_must_look_like_keys_and_cannot_be_shared(pool: PgPool) {
        let a = TenantId(Uuid::now_v7());
        let b = TenantId(Uuid::now_v7());
        tenants::create(&pool, a, "a").await.expect("tenant a");
        tenants::create(&pool, b, "b").await.expect("tenant b");
        let err = insert_key(&pool, a, Uuid::now_v7(), "sk_live_nope", "x", Scopes::ALL)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("tiq_"), "{err}");
        insert_key(&pool, a, Uuid::now_v7(), API_KEY, "x", Scopes::ALL)
            .await
            .expect("stored");
        let err = insert_key(&pool, b, Uuid::now_v7(), API_KEY, "x", Scopes::ALL)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("another tenant"), "{err}");
    }
}
