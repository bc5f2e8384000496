//! Firings in Postgres: one per (trigger, event), scoped by tenant.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::firing::{FiredTrigger, Firing};
use crate::ids::{EventId, FiringId, TenantId, TriggerId};

struct Row {
    id: FiringId,
    trigger_id: TriggerId,
    trigger_name: String,
    trigger_version: i64,
    event_id: EventId,
    matched_at: DateTime<Utc>,
    reasons: Value,
}

impl From<Row> for Firing {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            trigger: FiredTrigger {
                id: r.trigger_id,
                name: r.trigger_name,
                version: r.trigger_version,
            },
            event_id: r.event_id,
            matched_at: r.matched_at,
            reasons: r.reasons,
        }
    }
}

/// Records `firing` unless `(trigger, event, occasion)` already fired; `true` when this call
/// did. `occasion` is empty for event-driven firings; a deadline firing names its kind
/// (`down`, `recovered`), so one event may carry both.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    firing: &Firing,
    occasion: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO firings (id, tenant_id, trigger_id, event_id, trigger_name, trigger_version, matched_at, reasons, occasion)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (trigger_id, event_id, occasion) DO NOTHING
           RETURNING id"#,
        firing.id.0,
        tenant.0,
        firing.trigger.id.0,
        firing.event_id.as_str(),
        firing.trigger.name,
        firing.trigger.version,
        firing.matched_at,
        firing.reasons,
        occasion
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// [`insert`] for many firings (of any tenants) in one statement: answers the ids of those
/// this call recorded; a firing whose `(trigger, event, occasion)` had fired already, or
/// repeats one earlier in `firings`, is left out.
pub async fn insert_many(
    conn: &mut PgConnection,
    firings: &[(TenantId, &Firing, &str)],
) -> sqlx::Result<HashSet<FiringId>> {
    if firings.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids = Vec::with_capacity(firings.len());
    let mut tenants = Vec::with_capacity(firings.len());
    let mut triggers = Vec::with_capacity(firings.len());
    let mut events = Vec::with_capacity(firings.len());
    let mut names = Vec::with_capacity(firings.len());
    let mut versions = Vec::with_capacity(firings.len());
    let mut matched = Vec::with_capacity(firings.len());
    let mut reasons = Vec::with_capacity(firings.len());
    let mut occasions = Vec::with_capacity(firings.len());
    for (tenant, firing, occasion) in firings {
        ids.push(firing.id.0);
        tenants.push(tenant.0);
        triggers.push(firing.trigger.id.0);
        events.push(firing.event_id.as_str().to_owned());
        names.push(firing.trigger.name.clone());
        versions.push(firing.trigger.version);
        matched.push(firing.matched_at);
        reasons.push(firing.reasons.clone());
        occasions.push((*occasion).to_owned());
    }
    // ON CONFLICT DO NOTHING also skips a row that repeats an earlier row of the same
    // statement, as separate inserts in one transaction would.
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO firings (id, tenant_id, trigger_id, event_id, trigger_name, trigger_version, matched_at, reasons, occasion)
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                $6::bigint[], $7::timestamptz[], $8::jsonb[], $9::text[])
           ON CONFLICT (trigger_id, event_id, occasion) DO NOTHING
           RETURNING id"#,
        &ids,
        &tenants,
        &triggers,
        &events,
        &names,
        &versions,
        &matched,
        &reasons,
        &occasions
    )
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().map(FiringId).collect())
}

/// The firings of one event, by trigger id.
pub async fn for_event(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    event_id: &EventId,
) -> sqlx::Result<Vec<Firing>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: FiringId", trigger_id AS "trigger_id: TriggerId", trigger_name,
                  trigger_version, event_id AS "event_id: EventId", matched_at, reasons
           FROM firings WHERE tenant_id = $1 AND event_id = $2 ORDER BY trigger_id"#,
        tenant.0,
        event_id.as_str()
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One firing of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: FiringId,
) -> sqlx::Result<Option<Firing>> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: FiringId", trigger_id AS "trigger_id: TriggerId", trigger_name,
                  trigger_version, event_id AS "event_id: EventId", matched_at, reasons
           FROM firings WHERE tenant_id = $1 AND id = $2"#,
        tenant.0,
        id.0
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// Which firings to list.
#[derive(Debug, Clone, Default)]
pub struct FiringFilter {
    pub trigger_id: Option<TriggerId>,
    /// Matched at or after.
    pub since: Option<DateTime<Utc>>,
    /// Matched before.
    pub until: Option<DateTime<Utc>>,
    /// Continue after this `(matched_at, id)` (the last item of the previous page).
    pub after: Option<(DateTime<Utc>, FiringId)>,
}

/// One page of firings, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    filter: &FiringFilter,
    limit: i64,
) -> sqlx::Result<Vec<Firing>> {
    let (after_at, after_id) = filter.after.unzip();
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: FiringId", trigger_id AS "trigger_id: TriggerId", trigger_name,
                  trigger_version, event_id AS "event_id: EventId", matched_at, reasons
           FROM firings
           WHERE tenant_id = $1
             AND ($2::uuid IS NULL OR trigger_id = $2)
             AND ($3::timestamptz IS NULL OR matched_at >= $3)
             AND ($4::timestamptz IS NULL OR matched_at < $4)
             AND ($5::timestamptz IS NULL OR (matched_at, id) < ($5, $6::uuid))
           ORDER BY matched_at DESC, id DESC
           LIMIT $7"#,
        tenant.0,
        filter.trigger_id.map(|t| t.0),
        filter.since,
        filter.until,
        after_at,
        after_id.map(|f| f.0),
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
