//! Recent events in Postgres, scoped by tenant.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::event::Event;
use crate::tenant::TenantId;

/// An event as kept, with what evaluation made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub received_at: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    pub matched_trigger_ids: Vec<Uuid>,
}

/// When the kept event `id` was received, if it is kept.
pub async fn received_at(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT received_at FROM events WHERE tenant_id = $1 AND id = $2",
        tenant.as_uuid(),
        id
    )
    .fetch_optional(db)
    .await
}

/// Keeps `event` unless an event with its id is already kept; `true` when this call kept it.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    event: &Event,
    received_at: DateTime<Utc>,
    matched_trigger_ids: &[Uuid],
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"INSERT INTO events (tenant_id, id, type, source, subject, time, data, received_at, matched_trigger_ids)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (tenant_id, id) DO NOTHING"#,
        tenant.as_uuid(),
        event.id,
        event.kind,
        event.source,
        event.subject,
        event.time,
        event.data.as_ref() as Option<&Value>,
        received_at,
        matched_trigger_ids
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The kept event `id` of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: &str,
) -> sqlx::Result<Option<StoredEvent>> {
    let row = sqlx::query!(
        r#"SELECT id, type, source, subject, time, data, received_at, evaluated_at, matched_trigger_ids
           FROM events WHERE tenant_id = $1 AND id = $2"#,
        tenant.as_uuid(),
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| StoredEvent {
        event: Event {
            id: r.id,
            kind: r.r#type,
            source: r.source,
            subject: r.subject,
            time: r.time,
            data: r.data.filter(|d| !d.is_null()),
        },
        received_at: r.received_at,
        evaluated_at: r.evaluated_at,
        matched_trigger_ids: r.matched_trigger_ids,
    }))
}
