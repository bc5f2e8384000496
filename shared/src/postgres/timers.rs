//! Deadline-condition state in Postgres: one row per (trigger, group), scoped by tenant.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::condition::{GroupKey, TimerState};
use crate::ids::{TenantId, TriggerId};

/// A due row, as evaluate-timers takes it.
#[derive(Debug, Clone)]
pub struct DueTimer {
    pub tenant: TenantId,
    pub trigger: TriggerId,
    pub condition_version: i64,
    pub group_key: String,
    pub group_values: Value,
    /// `None` when the stored state cannot be read (left by another version of the code).
    pub state: Option<TimerState>,
    pub due_at: DateTime<Utc>,
}

/// Locks the row of `(trigger, group)` for the rest of the transaction, creating it if
/// needed; answers its state when it belongs to `version` (`None` for a new row, a row of
/// another trigger version, or one whose state cannot be read).
pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger: TriggerId,
    version: i64,
    group: &GroupKey,
) -> sqlx::Result<Option<TimerState>> {
    // A placeholder first, so that two first events of one group queue on the same row
    // instead of both inserting.
    sqlx::query!(
        r#"INSERT INTO condition_timers (tenant_id, trigger_id, condition_version, group_key, group_values, state)
           VALUES ($1, $2, $3, $4, $5, 'null'::jsonb)
           ON CONFLICT (trigger_id, group_key) DO NOTHING"#,
        tenant.0,
        trigger.0,
        version,
        group.as_text(),
        Json(group.values()) as _
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query!(
        r#"SELECT condition_version, state FROM condition_timers
           WHERE tenant_id = $1 AND trigger_id = $2 AND group_key = $3 FOR UPDATE"#,
        tenant.0,
        trigger.0,
        group.as_text()
    )
    .fetch_one(&mut *conn)
    .await?;
    if row.condition_version != version {
        return Ok(None);
    }
    Ok(serde_json::from_value(row.state).ok())
}

/// Writes the state and deadline of a row taken with [`lock`] or [`due`].
pub async fn put(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger: TriggerId,
    version: i64,
    group_key: &str,
    state: &TimerState,
    due_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE condition_timers SET condition_version = $4, state = $5, due_at = $6, updated_at = now()
           WHERE tenant_id = $1 AND trigger_id = $2 AND group_key = $3"#,
        tenant.0,
        trigger.0,
        group_key,
        version,
        Json(state) as _,
        due_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A row's new state and deadline, for [`put_many`].
#[derive(Debug, Clone)]
pub struct TimerWrite {
    pub tenant: TenantId,
    pub trigger: TriggerId,
    pub version: i64,
    pub group_key: String,
    pub state: TimerState,
    pub due_at: Option<DateTime<Utc>>,
}

/// [`put`] for many rows (of any tenants) in one statement; each row appears once (rows are
/// keyed by trigger and group, and a run takes each once).
pub async fn put_many(conn: &mut PgConnection, writes: &[TimerWrite]) -> sqlx::Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let tenants: Vec<_> = writes.iter().map(|w| w.tenant.0).collect();
    let triggers: Vec<_> = writes.iter().map(|w| w.trigger.0).collect();
    let keys: Vec<&str> = writes.iter().map(|w| w.group_key.as_str()).collect();
    let versions: Vec<i64> = writes.iter().map(|w| w.version).collect();
    let states: Vec<Json<&TimerState>> = writes.iter().map(|w| Json(&w.state)).collect();
    let due: Vec<Option<DateTime<Utc>>> = writes.iter().map(|w| w.due_at).collect();
    sqlx::query!(
        r#"UPDATE condition_timers AS t
           SET condition_version = u.version, state = u.state, due_at = u.due_at, updated_at = now()
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::jsonb[], $6::timestamptz[])
                AS u(tenant_id, trigger_id, group_key, version, state, due_at)
           WHERE t.tenant_id = u.tenant_id AND t.trigger_id = u.trigger_id
             AND t.group_key = u.group_key"#,
        &tenants,
        &triggers,
        &keys as _,
        &versions,
        &states as _,
        &due as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`delete`] for many rows (of any tenants) in one statement: each is
/// `(tenant, trigger, group key)`.
pub async fn delete_many(
    conn: &mut PgConnection,
    rows: &[(TenantId, TriggerId, String)],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tenants: Vec<_> = rows.iter().map(|(t, _, _)| t.0).collect();
    let triggers: Vec<_> = rows.iter().map(|(_, t, _)| t.0).collect();
    let keys: Vec<&str> = rows.iter().map(|(_, _, k)| k.as_str()).collect();
    sqlx::query!(
        r#"DELETE FROM condition_timers AS t
           USING UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS d(tenant_id, trigger_id, group_key)
           WHERE t.tenant_id = d.tenant_id AND t.trigger_id = d.trigger_id
             AND t.group_key = d.group_key"#,
        &tenants,
        &triggers,
        &keys as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the row of `(trigger, group)`.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger: TriggerId,
    group_key: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM condition_timers WHERE tenant_id = $1 AND trigger_id = $2 AND group_key = $3",
        tenant.0,
        trigger.0,
        group_key
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes every row of `trigger` (it was updated, disabled or deleted: its pending deadlines
/// go with its old state).
pub async fn forget_trigger(
    conn: &mut PgConnection,
    tenant: TenantId,
    trigger: TriggerId,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM condition_timers WHERE tenant_id = $1 AND trigger_id = $2",
        tenant.0,
        trigger.0
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Takes up to `limit` rows due at `now`, oldest deadline first, locked for the transaction;
/// rows another run holds are skipped, so overlapping runs share the work.
pub async fn due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<DueTimer>> {
    let rows = sqlx::query!(
        r#"SELECT tenant_id, trigger_id, condition_version, group_key, group_values, state,
                  due_at AS "due_at!"
           FROM condition_timers
           WHERE due_at <= $1
           ORDER BY due_at
           LIMIT $2
           FOR UPDATE SKIP LOCKED"#,
        now,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DueTimer {
            tenant: TenantId(r.tenant_id),
            trigger: TriggerId(r.trigger_id),
            condition_version: r.condition_version,
            group_key: r.group_key,
            group_values: r.group_values,
            state: serde_json::from_value(r.state).ok(),
            due_at: r.due_at,
        })
        .collect())
}
