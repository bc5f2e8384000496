//! A tenant's enabled triggers compiled into one [`PatternSet`], and the per-container cache
//! that keeps them between invocations.
//!
//! # Staleness
//!
//! Every change to a tenant's triggers bumps `tenants.trigger_revision` in the same
//! transaction. The cache trusts a compiled set for [`TriggerCache::max_age`] (5 s by default,
//! `TRIGGER_CACHE_SECONDS`, at most 30 s); after that, the next event of the tenant first reads
//! the revision (one indexed row) and recompiles only when it moved. So an event evaluated at
//! time `t` sees every trigger change committed before `t - max_age`: a new, changed, disabled
//! or deleted trigger takes effect within `max_age` in every container.
//!
//! The revision is read before the triggers: a change that lands between the two reads is
//! compiled in, but filed under the older revision, so the next check recompiles once more —
//! harmless, where the other order could keep a stale set under a fresh revision.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::pattern::{EventError, Pattern, PatternLimits, PatternSet};
use crate::postgres::tenants;
use crate::postgres::trigger_sets::{self, MatchableTrigger};
use crate::tenant::TenantId;
use crate::trigger::{Action, ActionKind, Condition, TriggerId};

/// One trigger, ready to fire.
#[derive(Debug, Clone)]
pub struct CompiledTrigger {
    pub id: TriggerId,
    pub name: String,
    pub version: i64,
    pub condition: Condition,
    pub cooldown: Option<Duration>,
    /// The enabled webhook actions: one delivery each when the trigger fires.
    pub actions: Vec<Action>,
}

/// A tenant's enabled triggers as one matcher.
#[derive(Debug)]
pub struct CompiledTriggers {
    pub revision: i64,
    set: PatternSet<usize>,
    triggers: Vec<CompiledTrigger>,
}

/// Stored patterns were validated under the deployment's limits when written; reading them
/// back must not refuse one because a limit was lowered since.
fn stored_pattern_limits() -> PatternLimits {
    PatternLimits {
        max_chars: 1 << 20,
        max_depth: 128,
    }
}

impl CompiledTriggers {
    /// Compiles `rows`; a trigger that cannot be compiled is logged and left out.
    pub fn compile(tenant: TenantId, revision: i64, rows: Vec<MatchableTrigger>) -> Self {
        let limits = stored_pattern_limits();
        let mut set = PatternSet::new();
        let mut triggers = Vec::with_capacity(rows.len());
        for row in rows {
            let condition: Condition = match serde_json::from_value(row.condition.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(%tenant, trigger_id = %row.id, error = %e, "trigger skipped: unknown condition");
                    continue;
                }
            };
            let pattern = match Pattern::from_value(&row.pattern, &limits) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(%tenant, trigger_id = %row.id, error = ?e.errors, "trigger skipped: stored pattern is invalid");
                    continue;
                }
            };
            if let Err(e) = set.insert(triggers.len(), &pattern) {
                tracing::error!(%tenant, trigger_id = %row.id, error = %e, "trigger skipped: pattern set is full");
                continue;
            }
            triggers.push(CompiledTrigger {
                id: TriggerId(row.id),
                name: row.name,
                version: row.version,
                condition,
                cooldown: row
                    .cooldown_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs),
                actions: row
                    .actions
                    .into_iter()
                    .filter(|a| a.enabled && a.kind == ActionKind::Webhook)
                    .collect(),
            });
        }
        Self {
            revision,
            set,
            triggers,
        }
    }

    /// The triggers whose pattern matches the event's JSON, in id order. The bytes must be
    /// valid JSON (evaluate-events serialises the event it read from its message): the
    /// fields no trigger names are skipped unvalidated
    /// ([`PatternSet::matches_trusted`](crate::pattern::PatternSet::matches_trusted)).
    pub fn matching(&self, event: &[u8]) -> Result<Vec<&CompiledTrigger>, EventError> {
        let mut indices = self.set.matches_trusted(event)?;
        indices.sort_unstable();
        Ok(indices.into_iter().map(|i| &self.triggers[i]).collect())
    }

    /// Number of compiled triggers.
    pub fn len(&self) -> usize {
        self.triggers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }
}

struct Entry {
    compiled: Arc<CompiledTriggers>,
    checked_at: Instant,
    used_at: Instant,
}

/// Compiled trigger sets by tenant, for the life of a container.
pub struct TriggerCache {
    entries: tokio::sync::Mutex<HashMap<TenantId, Entry>>,
    max_age: Duration,
    max_tenants: usize,
}

impl TriggerCache {
    /// A cache that re-checks a tenant's revision after `max_age` and keeps at most 1,000
    /// tenants (the least recently used go first).
    pub fn new(max_age: Duration) -> Self {
        Self {
            entries: tokio::sync::Mutex::new(HashMap::new()),
            max_age,
            max_tenants: 1000,
        }
    }

    /// How long a compiled set is trusted without asking Postgres.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The tenant's compiled triggers, fresh within [`Self::max_age`]; `None` when the tenant
    /// does not exist. Loads are serialised, so a batch of one tenant's events compiles once.
    pub async fn get(
        &self,
        pool: &PgPool,
        tenant: TenantId,
    ) -> anyhow::Result<Option<Arc<CompiledTriggers>>> {
        let mut entries = self.entries.lock().await;
        let now = Instant::now();
        if let Some(entry) = entries.get_mut(&tenant)
            && now.duration_since(entry.checked_at) < self.max_age
        {
            entry.used_at = now;
            return Ok(Some(entry.compiled.clone()));
        }
        let Some(revision) = tenants::trigger_revision(pool, tenant).await? else {
            entries.remove(&tenant);
            return Ok(None);
        };
        if let Some(entry) = entries.get_mut(&tenant)
            && entry.compiled.revision == revision
        {
            entry.checked_at = now;
            entry.used_at = now;
            return Ok(Some(entry.compiled.clone()));
        }
        let rows = trigger_sets::enabled(pool, tenant).await?;
        let started = Instant::now();
        let compiled = Arc::new(CompiledTriggers::compile(tenant, revision, rows));
        tracing::info!(
            %tenant,
            revision,
            triggers = compiled.len(),
            compile_ms = started.elapsed().as_millis() as u64,
            "compiled the tenant's triggers"
        );
        if entries.len() >= self.max_tenants && !entries.contains_key(&tenant) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.used_at)
                .map(|(t, _)| *t);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            tenant,
            Entry {
                compiled: compiled.clone(),
                checked_at: now,
                used_at: now,
            },
        );
        Ok(Some(compiled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: u128, pattern: serde_json::Value, enabled_actions: &[bool]) -> MatchableTrigger {
        MatchableTrigger {
            id: uuid::Uuid::from_u128(id),
            name: format!("t{id}"),
            version: 1,
            pattern,
            condition: json!({"kind": "every"}),
            cooldown_seconds: None,
            actions: enabled_actions
                .iter()
                .map(|enabled| Action {
                    id: uuid::Uuid::now_v7(),
                    kind: ActionKind::Webhook,
                    url: crate::trigger::WebhookUrl::parse(
                        "https://example.com/h",
                        &Default::default(),
                    )
                    .unwrap(),
                    enabled: *enabled,
                    disabled_reason: None,
                })
                .collect(),
        }
    }

    #[test]
    fn only_matching_triggers_with_their_enabled_actions_come_back() {
        let mut unknown = row(3, json!({"type": ["a"]}), &[true]);
        unknown.condition = json!({"kind": "threshold", "count": 3});
        let compiled = CompiledTriggers::compile(
            TenantId::new(),
            7,
            vec![
                row(1, json!({"type": ["a"]}), &[true, false]),
                row(2, json!({"type": ["b"]}), &[true]),
                unknown,
                row(4, json!({"type": [{"prefix": "a"}]}), &[]),
            ],
        );
        assert_eq!(compiled.len(), 3, "the unknown condition is skipped");
        let hits = compiled.matching(br#"{"type": "a"}"#).unwrap();
        let ids: Vec<u128> = hits.iter().map(|t| t.id.0.as_u128()).collect();
        assert_eq!(ids, vec![1, 4]);
        assert_eq!(hits[0].actions.len(), 1);
        assert!(hits[1].actions.is_empty());
    }
}
