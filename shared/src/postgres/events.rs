//! Recent events in Postgres, scoped by tenant.

use crate::event::{Event, EventId};
use crate::ids::{TenantId, TriggerId};
use crate::json::RawJson;

/// The most later receipts of one id that are remembered.
const MAX_REUSES: i32 = 100;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

/// An event as kept, with what evaluation made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub received_at: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    pub matched_trigger_ids: Vec<TriggerId>,
    /// When the same id came again after the idempotency window and was not evaluated.
    pub reused_at: Vec<DateTime<Utc>>,
    /// What each matched trigger that did not fire made of the event, by trigger id.
    pub outcomes: Value,
}

/// When the kept event `id` was received, if it is kept.
pub async fn received_at(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: &EventId,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT received_at FROM events WHERE tenant_id = $1 AND id = $2",
        tenant.0,
        id.as_str()
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
    matched_trigger_ids: &[TriggerId],
    outcomes: &Value,
) -> sqlx::Result<bool> {
    let matched: Vec<_> = matched_trigger_ids.iter().map(|t| t.0).collect();
    let done = sqlx::query!(
        r#"INSERT INTO events (tenant_id, id, type, source, subject, time, data, attributes,
                              received_at, matched_trigger_ids, outcomes)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (tenant_id, id) DO NOTHING"#,
        tenant.0,
        event.id.as_str(),
        event.kind,
        event.source,
        event.subject,
        event.time,
        event.data.as_ref().map(Json) as _,
        Json(&event.attributes) as _,
        received_at,
        &matched,
        outcomes
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An `events` row as [`get`] and [`get_many`] read it.
struct Row {
    id: EventId,
    r#type: String,
    source: Option<String>,
    subject: Option<String>,
    time: DateTime<Utc>,
    data: Option<Json<RawJson>>,
    attributes: Json<BTreeMap<String, Value>>,
    received_at: DateTime<Utc>,
    evaluated_at: DateTime<Utc>,
    matched_trigger_ids: Vec<TriggerId>,
    reused_at: Vec<DateTime<Utc>>,
    outcomes: Value,
}

impl From<Row> for StoredEvent {
    fn from(r: Row) -> Self {
        Self {
            event: Event {
                id: r.id,
                kind: r.r#type,
                source: r.source,
                subject: r.subject,
                time: r.time,
                data: r.data.map(|d| d.0).filter(|d| d.get() != "null"),
                attributes: r.attributes.0,
            },
            received_at: r.received_at,
            evaluated_at: r.evaluated_at,
            matched_trigger_ids: r.matched_trigger_ids,
            reused_at: r.reused_at,
            outcomes: r.outcomes,
        }
    }
}

/// The kept event `id` of `tenant`.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: &str,
) -> sqlx::Result<Option<StoredEvent>> {
    // A plain `&str`: the API looks events up by whatever id the client put in the path.
    Ok(get_many(db, tenant, &[id]).await?.pop())
}

/// The kept events of `tenant` among `ids`, in no particular order (an id not kept is left
/// out): [`get`] for many events in one query.
pub async fn get_many(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    ids: &[&str],
) -> sqlx::Result<Vec<StoredEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: EventId", type, source, subject, time,
                  data AS "data: Json<RawJson>",
                  attributes AS "attributes: Json<BTreeMap<String, Value>>", received_at,
                  evaluated_at, matched_trigger_ids AS "matched_trigger_ids: Vec<TriggerId>",
                  reused_at, outcomes
           FROM events WHERE tenant_id = $1 AND id = ANY($2::text[])"#,
        tenant.0,
        ids as _
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Notes that event `id` came again, received at `received_at`, and was not evaluated (at
/// most [`MAX_REUSES`] such receipts are kept; a receipt noted twice counts once).
pub async fn note_reuse(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: &EventId,
    received_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE events SET reused_at = array_append(reused_at, $3)
           WHERE tenant_id = $1 AND id = $2 AND NOT ($3 = ANY(reused_at))
             AND cardinality(reused_at) < $4"#,
        tenant.0,
        id.as_str(),
        received_at,
        MAX_REUSES
    )
    .execute(db)
    .await?;
    Ok(())
}
