//! Conditions over time, as evaluate-events applies them to one matched event: which group the
//! event belongs to, what it adds to the group's window, and whether this event fires.
//!
//! # Order of work for a threshold or a sequence (a windowed condition), and why
//!
//! 1. Count the event in its group's window (one conditional `UpdateItem` that returns the
//!    window; a redelivered event is refused and gets the window as it is).
//! 2. If the window says this event already fired (a first evaluation wrote the firing to the
//!    window and died before Postgres), fire again with the same reason: the firing row is
//!    unique per (trigger, event), so it is recorded once.
//! 3. Find the span this event completes, if any. None: the group is in progress.
//! 4. With a cooldown, take the group's cooldown lock on the event's behalf (as `every` does:
//!    a redelivery is granted it again). Refused: cooling down; the window is untouched, so a
//!    later event fires once the cooldown ends.
//! 5. Write the firing to the window, conditional on the epoch read in step 1. Of concurrent
//!    evaluations that saw the crossing, one writes; the others read the window again and
//!    find their event consumed (or a new crossing of their own).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::trigger_cache::CompiledTrigger;
use crate::condition::Windowed;
use crate::condition::threshold::{Entry, REDELIVERY_HORIZON_MS, Window};
use crate::dynamodb::windows::MAX_REMOVALS_PER_WRITE;
use crate::dynamodb::{CooldownLock, DynamoError, Lock, WindowKey, WindowStore};
use crate::event::Event;
use crate::ids::{EventId, TenantId};

/// Times a firing write may lose to a concurrent one before the message is retried. Each loss
/// means another evaluation fired, so the group makes progress either way.
const MAX_FIRE_ATTEMPTS: u32 = 8;
/// Entries a window may hold that it no longer needs before a separate write removes them.
const PRUNE_BATCH: usize = 32;
/// How long a window outlives its newest event (wall clock) beyond `within`.
const WINDOW_RETENTION: chrono::Duration = chrono::Duration::days(1);

/// What a condition made of one matched event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The trigger fires on this event, for this reason.
    Fire(Value),
    /// The condition is met but the group's cooldown is running (until then, when known).
    CoolingDown(Option<DateTime<Utc>>),
    /// Counted; not (yet) enough. The value says how far the group is.
    InProgress(Value),
    /// The event does not take part, for the reason given: no group (a `group_by` field is
    /// missing), or nothing to count (a summed field that is not a number).
    NotCounted(&'static str),
}

/// Windows of thresholds and sequences, and cooldowns, for evaluate-events.
#[derive(Debug, Clone)]
pub struct Conditions {
    windows: WindowStore,
    cooldowns: CooldownLock,
}

impl Outcome {
    /// How `GET /v1/events/{id}` shows an outcome that did not fire (`None` for a firing,
    /// which the event's firings show).
    pub fn note(&self) -> Option<Value> {
        match self {
            Self::Fire(_) => None,
            Self::CoolingDown(until) => Some(match until {
                Some(until) => serde_json::json!({"outcome": "cooling_down",
                    "until": until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
                None => serde_json::json!({"outcome": "cooling_down"}),
            }),
            Self::InProgress(progress) => {
                Some(serde_json::json!({"outcome": "in_progress", "progress": progress}))
            }
            Self::NotCounted(reason) => {
                Some(serde_json::json!({"outcome": "not_counted", "reason": reason}))
            }
        }
    }
}

impl Conditions {
    pub fn new(windows: WindowStore, cooldowns: CooldownLock) -> Self {
        Self { windows, cooldowns }
    }

    /// Applies the windowed condition of `trigger` to `event` (whose JSON form is `document`), received
    /// at `received_at` (the cooldown's clock and the window's retention run on it).
    pub async fn windowed(
        &self,
        tenant: TenantId,
        trigger: &CompiledTrigger,
        threshold: Windowed<'_>,
        event: &Event,
        document: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Outcome, DynamoError> {
        let Some(group) = threshold.group_by().key_of(document) else {
            return Ok(Outcome::NotCounted(
                "no group: a group_by field is missing or null (or its values exceed 1 KB)",
            ));
        };
        let Some(sample) = threshold.sample(document) else {
            return Ok(Outcome::NotCounted(
                "nothing to count: the measured field is missing, null, or not a number for a sum",
            ));
        };
        let key = WindowKey {
            tenant,
            trigger: trigger.id,
            version: trigger.condition_version,
            group: &group,
        };
        let entry = Entry {
            at_ms: event.time.timestamp_millis(),
            sample,
            reason: None,
            consumed: false,
        };
        let keep_until = received_at
            + chrono::Duration::milliseconds(threshold.within().as_millis())
            + chrono::Duration::milliseconds(REDELIVERY_HORIZON_MS)
            + WINDOW_RETENTION;
        let mut window = self
            .windows
            .observe(key, &event.id, &entry, keep_until)
            .await?
            .window;
        for _ in 0..MAX_FIRE_ATTEMPTS {
            if let Some(reason) = window.fired_reason(&event.id) {
                return Ok(Outcome::Fire(reason.clone()));
            }
            let Some(crossing) = threshold.crossing(&window, &event.id) else {
                self.tidy(key, &window, threshold.within()).await;
                return Ok(Outcome::InProgress(
                    threshold.progress(&window, entry.at_ms),
                ));
            };
            if let Some(cooldown) = trigger.cooldown {
                let lock = self
                    .cooldowns
                    .try_acquire_group_for(
                        tenant,
                        trigger.id,
                        &group.digest(),
                        &event.id,
                        cooldown,
                        received_at,
                    )
                    .await?;
                if let Lock::Held { until } = lock {
                    return Ok(Outcome::CoolingDown(until));
                }
            }
            let reason = threshold.reason(&group, &crossing, &window);
            let mut after = window.clone();
            after.fire(&crossing, &event.id, reason.clone());
            let prune = after.prunable(threshold.within());
            if self
                .windows
                .fire(key, window.epoch, &crossing, &event.id, &reason, &prune)
                .await?
            {
                return Ok(Outcome::Fire(reason));
            }
            window = self.windows.read(key).await?;
        }
        Err(DynamoError::Contention {
            operation: "UpdateItem (window firing)",
            attempts: MAX_FIRE_ATTEMPTS,
        })
    }

    /// Removes what the window no longer needs once enough has gathered (one write per
    /// [`PRUNE_BATCH`] or so counted events); a failure only postpones it.
    async fn tidy(&self, key: WindowKey<'_>, window: &Window, within: crate::condition::Span) {
        let prune: Vec<EventId> = window.prunable(within);
        if prune.len() < PRUNE_BATCH.min(MAX_REMOVALS_PER_WRITE) {
            return;
        }
        if let Err(e) = self.windows.prune(key, &prune).await {
            tracing::warn!(error = %crate::error_chain(&e), "window not pruned; the next event tries again");
        }
    }
}
