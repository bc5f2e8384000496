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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The version at which the pattern, condition or enabled flag last changed: the
    /// condition's state (windows, deadlines) belongs to it (migration 0010).
    pub condition_version: i64,
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

impl CompiledTriggers {
    /// Compiles `rows`; a trigger that cannot be compiled is logged and left out.
    pub fn compile(tenant: TenantId, revision: i64, rows: Vec<MatchableTrigger>) -> Self {
        let limits = PatternLimits::stored();
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
                id: row.id,
                name: row.name,
                version: row.version,
                condition_version: row.condition_version,
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

    /// The enabled trigger `id`, if the set holds it.
    pub fn by_id(&self, id: TriggerId) -> Option<&CompiledTrigger> {
        self.triggers.iter().find(|t| t.id == id)
    }

    /// The triggers whose pattern matches the event's JSON, in id order.
    pub fn matching(&self, event: &[u8]) -> Result<Vec<&CompiledTrigger>, EventError> {
        let mut indices = self.set.matches(event)?;
        indices.sort_unstable();
        Ok(indices.into_iter().map(|i| &self.triggers[i]).collect())
    }

    /// The compiled set's estimated size in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.set.approx_bytes()
    }

    /// Number of compiled triggers.
    pub fn len(&self) -> usize {
        self.triggers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }
}

/// A tenant's place in the cache. Its lock is held while the tenant's set is loaded, so a
/// batch of one tenant's events compiles once; other tenants never wait on it.
#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<Option<Entry>>,
    /// The compiled set's estimated size, for the cache's byte budget.
    bytes: AtomicUsize,
    /// When the set was last used, in milliseconds since the cache was made (LRU order).
    used_ms: AtomicU64,
}

struct Entry {
    compiled: Arc<CompiledTriggers>,
    checked_at: Instant,
}

/// What a load found in Postgres.
pub enum Loaded {
    /// No such tenant.
    Missing,
    /// The tenant's revision is the one already compiled.
    Unchanged,
    /// A new revision, with the tenant's enabled triggers.
    Changed {
        revision: i64,
        rows: Vec<MatchableTrigger>,
    },
}

/// Compiled trigger sets by tenant, for the life of a container.
///
/// One lock per tenant (single flight): a tenant whose set is slow to load or compile delays
/// only its own events. The map of tenants is locked only to find or drop a tenant's slot.
/// The cache is bounded by tenants (1,000) and by the compiled sets' estimated bytes; past
/// either, the least recently used tenants are dropped (and compiled again when they return).
pub struct TriggerCache {
    slots: Mutex<HashMap<TenantId, Arc<Slot>>>,
    max_age: Duration,
    max_tenants: usize,
    max_bytes: usize,
    epoch: Instant,
}

impl TriggerCache {
    /// A cache that re-checks a tenant's revision after `max_age` and keeps at most 1,000
    /// tenants and 128 MiB of compiled sets.
    pub fn new(max_age: Duration) -> Self {
        Self::with_bounds(max_age, 1000, 128 << 20)
    }

    /// A cache with other bounds (tests).
    pub fn with_bounds(max_age: Duration, max_tenants: usize, max_bytes: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max_age,
            max_tenants: max_tenants.max(1),
            max_bytes,
            epoch: Instant::now(),
        }
    }

    /// How long a compiled set is trusted without asking Postgres.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How many tenants' sets the cache holds now.
    pub fn tenants(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// The tenant's compiled triggers, fresh within [`Self::max_age`]; `None` when the tenant
    /// does not exist.
    pub async fn get(
        &self,
        pool: &PgPool,
        tenant: TenantId,
    ) -> anyhow::Result<Option<Arc<CompiledTriggers>>> {
        self.get_with(tenant, |known| async move {
            let Some(revision) = tenants::trigger_revision(pool, tenant).await? else {
                return Ok(Loaded::Missing);
            };
            if known == Some(revision) {
                return Ok(Loaded::Unchanged);
            }
            let rows = trigger_sets::enabled(pool, tenant).await?;
            Ok(Loaded::Changed { revision, rows })
        })
        .await
    }

    /// [`Self::get`] with the load from Postgres given: `load` gets the revision already
    /// compiled, if any.
    pub async fn get_with<F, Fut>(
        &self,
        tenant: TenantId,
        load: F,
    ) -> anyhow::Result<Option<Arc<CompiledTriggers>>>
    where
        F: FnOnce(Option<i64>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Loaded>>,
    {
        let slot = self.slot(tenant);
        let mut state = slot.state.lock().await;
        let now = Instant::now();
        slot.used_ms.store(self.millis(now), Ordering::Relaxed);
        if let Some(entry) = state.as_ref()
            && now.duration_since(entry.checked_at) < self.max_age
        {
            return Ok(Some(entry.compiled.clone()));
        }
        let known = state.as_ref().map(|e| e.compiled.revision);
        match load(known).await? {
            Loaded::Missing => {
                *state = None;
                drop(state);
                self.forget(tenant);
                Ok(None)
            }
            Loaded::Unchanged => match state.as_mut() {
                Some(entry) => {
                    entry.checked_at = now;
                    Ok(Some(entry.compiled.clone()))
                }
                None => Err(anyhow::anyhow!("the cache lost the set it said it had")),
            },
            Loaded::Changed { revision, rows } => {
                let started = Instant::now();
                // CPU work off the async workers, so the container's other messages go on.
                let compiled = tokio::task::spawn_blocking(move || {
                    CompiledTriggers::compile(tenant, revision, rows)
                })
                .await?;
                let compiled = Arc::new(compiled);
                tracing::info!(
                    %tenant,
                    revision,
                    triggers = compiled.len(),
                    bytes = compiled.approx_bytes(),
                    compile_ms = started.elapsed().as_millis() as u64,
                    "compiled the tenant's triggers"
                );
                slot.bytes.store(compiled.approx_bytes(), Ordering::Relaxed);
                *state = Some(Entry {
                    compiled: compiled.clone(),
                    checked_at: now,
                });
                drop(state);
                self.evict(tenant);
                Ok(Some(compiled))
            }
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn slot(&self, tenant: TenantId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(tenant).or_default().clone()
    }

    fn forget(&self, tenant: TenantId) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(&tenant);
    }

    /// Drops the least recently used tenants (never `keep`) until the cache is within its
    /// bounds.
    fn evict(&self, keep: TenantId) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let bytes: usize = slots
                .values()
                .map(|s| s.bytes.load(Ordering::Relaxed))
                .sum();
            if slots.len() <= self.max_tenants && bytes <= self.max_bytes {
                return;
            }
            let oldest = slots
                .iter()
                .filter(|(t, _)| **t != keep)
                .min_by_key(|(_, s)| s.used_ms.load(Ordering::Relaxed))
                .map(|(t, _)| *t);
            match oldest {
                Some(tenant) => {
                    slots.remove(&tenant);
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: u128, pattern: serde_json::Value, enabled_actions: &[bool]) -> MatchableTrigger {
        MatchableTrigger {
            id: TriggerId(uuid::Uuid::from_u128(id)),
            name: format!("t{id}"),
            version: 1,
            condition_version: 1,
            pattern,
            condition: json!({"kind": "every"}),
            cooldown_seconds: None,
            actions: enabled_actions
                .iter()
                .map(|enabled| Action {
                    id: crate::ids::ActionId::new(),
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

    fn loaded(revision: i64, patterns: &[serde_json::Value]) -> Loaded {
        Loaded::Changed {
            revision,
            rows: patterns
                .iter()
                .enumerate()
                .map(|(i, p)| row(i as u128 + 1, p.clone(), &[true]))
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_tenant_slow_to_load_delays_only_its_own_events() {
        let cache = Arc::new(TriggerCache::new(Duration::from_secs(5)));
        let (slow, fast) = (TenantId::new(), TenantId::new());
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let stuck = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get_with(slow, |_| async move {
                        let _ = held.await;
                        Ok(loaded(1, &[json!({"type": ["a"]})]))
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        // The slow tenant's load is in progress; another tenant is served meanwhile.
        let other = cache
            .get_with(fast, |_| async { Ok(loaded(1, &[json!({"type": ["b"]})])) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other.len(), 1);
        assert!(!stuck.is_finished(), "the slow load was still running");
        release.send(()).unwrap();
        assert_eq!(stuck.await.unwrap().unwrap().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_events_of_one_tenant_load_its_set_once() {
        let cache = Arc::new(TriggerCache::new(Duration::from_secs(5)));
        let tenant = TenantId::new();
        let loads = Arc::new(AtomicUsize::new(0));
        let gets: Vec<_> = (0..8)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_with(tenant, |known| async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            Ok(match known {
                                Some(_) => Loaded::Unchanged,
                                None => loaded(1, &[json!({"type": ["a"]})]),
                            })
                        })
                        .await
                })
            })
            .collect();
        for get in gets {
            assert!(get.await.unwrap().unwrap().is_some());
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one load, then the fresh set"
        );
    }

    #[tokio::test]
    async fn the_cache_keeps_within_its_byte_budget_by_dropping_the_least_recently_used() {
        let big: Vec<serde_json::Value> = (0..50)
            .map(|i| json!({"type": [format!("t{i}")], "data": {"k": (0..40).map(|j| format!("v{j}")).collect::<Vec<_>>()}}))
            .collect();
        let one = CompiledTriggers::compile(
            TenantId::new(),
            1,
            big.iter()
                .enumerate()
                .map(|(i, p)| row(i as u128, p.clone(), &[true]))
                .collect(),
        )
        .approx_bytes();
        // Room for two tenants' sets, not three.
        let cache = TriggerCache::with_bounds(Duration::from_secs(5), 1000, one * 2 + one / 2);
        let tenants: Vec<TenantId> = (0..3).map(|_| TenantId::new()).collect();
        for t in &tenants {
            let patterns = big.clone();
            cache
                .get_with(*t, |_| async move { Ok(loaded(1, &patterns)) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(cache.tenants(), 2, "the first tenant was dropped");
        let reloaded = Arc::new(AtomicUsize::new(0));
        let counter = reloaded.clone();
        cache
            .get_with(tenants[0], |known| async move {
                counter.fetch_add(1, Ordering::SeqCst);
                assert_eq!(known, None, "dropped: compiled again");
                Ok(loaded(1, &[json!({"type": ["a"]})]))
            })
            .await
            .unwrap();
        assert_eq!(reloaded.load(Ordering::SeqCst), 1);
    }
}
