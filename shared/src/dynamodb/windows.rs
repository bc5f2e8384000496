//! Threshold windows: one item per (trigger version, group) holding the group's counted
//! events ([`crate::condition::threshold::Window`]).
//!
//! Each event is its own top-level attribute `e:<digest of the event id>` (a map: `i` the id,
//! `t` the event time in ms, `n` a summed number or `x` a distinct value, `r` the firing's
//! reason on the entry of an event that fired), so counting an event is one `UpdateItem` that
//! needs no read first and is refused when the attribute exists or the event was consumed: a
//! redelivered event counts once, and the refusal returns the item as it is (`ALL_OLD`), so
//! either way one round trip yields the window. A firing is a second `UpdateItem`,
//! conditional on the `epoch` the evaluation read, that bumps it and adds the span's entry
//! names to the string set `consumed`: of concurrent evaluations that saw the same crossing
//! exactly one writes it. `consumed` outlives the entries it names until they are older than
//! the window and the redelivery horizon, so a redelivered event is refused even after its
//! entry was pruned.
//!
//! The trigger's version is part of the key, so updating a trigger starts its windows afresh;
//! the old items expire through TTL.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{
    DynamoError, Table, conditional, epoch_seconds_ceil, get_n, get_s, n, partition_key, s,
};
use crate::condition::GroupKey;
use crate::condition::threshold::{Crossing, Entry, Sample, Window};
use crate::ids::{EventId, TenantId, TriggerId};

const SORT_KEY: &str = "WINDOW";
const ENTRY_PREFIX: &str = "e:";
/// The string set of consumed entries' attribute names (a reserved word: always `#consumed`).
const CONSUMED: &str = "consumed";
/// Attributes removed by one write at most (update expressions are limited to 4 KB).
pub const MAX_REMOVALS_PER_WRITE: usize = 100;

/// Which window: a trigger version's group.
#[derive(Debug, Clone, Copy)]
pub struct WindowKey<'a> {
    pub tenant: TenantId,
    pub trigger: TriggerId,
    pub version: i64,
    pub group: &'a GroupKey,
}

impl WindowKey<'_> {
    fn pk(&self) -> Result<String, DynamoError> {
        let (tenant, trigger, version) = (
            self.tenant.to_string(),
            self.trigger.to_string(),
            self.version.to_string(),
        );
        partition_key(
            "WINDOW",
            &[
                ("tenant", tenant.as_str()),
                ("trigger_id", trigger.as_str()),
                ("version", version.as_str()),
                ("group", &self.group.digest()),
            ],
        )
    }
}

/// A window as one `observe` found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub window: Window,
    /// `false`: the event had been counted before (a redelivery).
    pub new: bool,
}

/// Threshold windows in the shared table.
#[derive(Debug, Clone)]
pub struct WindowStore {
    table: Table,
}

impl WindowStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// An `UpdateItem` of the window item `pk`.
    fn update(
        &self,
        pk: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.table
            .client()
            .update_item()
            .table_name(self.table.name())
            .key("pk", s(pk))
            .key("sk", s(SORT_KEY))
    }

    /// Counts `entry` for event `id` in the window at `key`, keeping the item until at least
    /// `keep_until`; answers the window with the entry in it.
    pub async fn observe(
        &self,
        key: WindowKey<'_>,
        id: &EventId,
        entry: &Entry,
        keep_until: DateTime<Utc>,
    ) -> Result<Observed, DynamoError> {
        let pk = key.pk()?;
        let result = self
            .update(&pk)
            .update_expression(
                "SET #e = :entry, #group = :group, expires_at = :exp, epoch = if_not_exists(epoch, :zero)",
            )
            .condition_expression("attribute_not_exists(#e) AND NOT contains(#consumed, :name)")
            .expression_attribute_names("#consumed", CONSUMED)
            .expression_attribute_names("#e", attribute_of(id))
            .expression_attribute_values(":name", s(attribute_of(id)))
            .expression_attribute_names("#group", "group")
            .expression_attribute_values(":entry", entry_value(id, entry))
            .expression_attribute_values(":group", s(key.group.as_text()))
            .expression_attribute_values(":exp", n(epoch_seconds_ceil(keep_until)))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional(result, "UpdateItem (window)")? {
            Ok(output) => Ok(Observed {
                window: window_of(&pk, output.attributes())?,
                new: true,
            }),
            Err(UpdateItemError::ConditionalCheckFailedException(c)) => {
                let window = match c.item() {
                    Some(item) => window_of(&pk, Some(item))?,
                    // Refused, so the item exists; read it when the refusal did not carry it.
                    None => self.read(key).await?,
                };
                Ok(Observed { window, new: false })
            }
            Err(other) => Err(DynamoError::sdk("UpdateItem (window)", other)),
        }
    }

    /// The window at `key`, read consistently (empty when there is none).
    pub async fn read(&self, key: WindowKey<'_>) -> Result<Window, DynamoError> {
        let pk = key.pk()?;
        let output = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::sdk("GetItem (window)", e))?;
        window_of(&pk, output.item())
    }

    /// Writes the firing of `crossing` by `firer` if the window is still at `seen_epoch`;
    /// removes `prune` (at most [`MAX_REMOVALS_PER_WRITE`] of them, never the firer) in the
    /// same write. `Ok(false)`: another evaluation fired first.
    pub async fn fire(
        &self,
        key: WindowKey<'_>,
        seen_epoch: u64,
        crossing: &Crossing,
        firer: &EventId,
        reason: &Value,
        prune: &[EventId],
    ) -> Result<bool, DynamoError> {
        let pk = key.pk()?;
        if crossing.events.is_empty() {
            return Err(DynamoError::InvalidInput {
                field: "crossing",
                reason: "has no events".to_owned(),
            });
        }
        let mut update = self
            .update(&pk)
            .condition_expression("epoch = :seen")
            .expression_attribute_names("#f", attribute_of(firer))
            .expression_attribute_names("#consumed", CONSUMED)
            .expression_attribute_values(":seen", n(seen_epoch))
            .expression_attribute_values(":next", n(seen_epoch + 1))
            .expression_attribute_values(
                ":spent",
                AttributeValue::Ss(crossing.events.iter().map(attribute_of).collect()),
            )
            .expression_attribute_values(":reason", s(reason.to_string()));
        let mut expression = "SET epoch = :next, #f.r = :reason ADD #consumed :spent".to_owned();
        let removals: Vec<&EventId> = prune
            .iter()
            .filter(|id| *id != firer)
            .take(MAX_REMOVALS_PER_WRITE)
            .collect();
        for (i, id) in removals.iter().enumerate() {
            expression.push_str(if i == 0 { " REMOVE " } else { ", " });
            expression.push_str(&format!("#p{i}"));
            update = update.expression_attribute_names(format!("#p{i}"), attribute_of(id));
        }
        let result = update.update_expression(expression).send().await;
        Ok(conditional(result, "UpdateItem (window firing)")?.is_ok())
    }

    /// Removes entries the window no longer needs (at most [`MAX_REMOVALS_PER_WRITE`]), and
    /// their names from `consumed`.
    pub async fn prune(&self, key: WindowKey<'_>, ids: &[EventId]) -> Result<(), DynamoError> {
        if ids.is_empty() {
            return Ok(());
        }
        let pk = key.pk()?;
        let mut update = self
            .update(&pk)
            // Never create an empty item for a window that expired meanwhile.
            .condition_expression("attribute_exists(pk)");
        let ids = &ids[..ids.len().min(MAX_REMOVALS_PER_WRITE)];
        let mut expression = String::from("REMOVE ");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                expression.push_str(", ");
            }
            expression.push_str(&format!("#p{i}"));
            update = update.expression_attribute_names(format!("#p{i}"), attribute_of(id));
        }
        expression.push_str(" DELETE #consumed :pruned");
        update = update
            .expression_attribute_names("#consumed", CONSUMED)
            .expression_attribute_values(
                ":pruned",
                AttributeValue::Ss(ids.iter().map(attribute_of).collect()),
            );
        let result = update.update_expression(expression).send().await;
        conditional(result, "UpdateItem (window prune)")?.ok();
        Ok(())
    }
}

/// The attribute that holds event `id`'s entry: fixed length whatever the id.
fn attribute_of(id: &EventId) -> String {
    let digest = hex::encode(Sha256::digest(id.as_str().as_bytes()));
    format!("{ENTRY_PREFIX}{}", &digest[..32])
}

fn entry_value(id: &EventId, entry: &Entry) -> AttributeValue {
    let mut map = HashMap::from([
        ("i".to_owned(), s(id.as_str())),
        ("t".to_owned(), n(entry.at_ms)),
    ]);
    match &entry.sample {
        Sample::One => {}
        Sample::Number(x) => {
            map.insert("n".to_owned(), n(x));
        }
        Sample::Value(v) => {
            map.insert("x".to_owned(), s(v.as_str()));
        }
        Sample::Steps(mask) => {
            map.insert("s".to_owned(), n(mask));
        }
    }
    if let Some(reason) = &entry.reason {
        map.insert("r".to_owned(), s(reason.to_string()));
    }
    AttributeValue::M(map)
}

fn window_of(
    pk: &str,
    item: Option<&HashMap<String, AttributeValue>>,
) -> Result<Window, DynamoError> {
    let Some(item) = item else {
        return Ok(Window::default());
    };
    let corrupt = |reason: &str| DynamoError::CorruptItem {
        pk: pk.to_owned(),
        reason: reason.to_owned(),
    };
    let epoch = get_n(item, pk, "epoch")?.unwrap_or(0);
    let consumed: HashSet<&str> = match item.get(CONSUMED) {
        None => HashSet::new(),
        Some(value) => value
            .as_ss()
            .map_err(|_| corrupt("`consumed` is not a string set"))?
            .iter()
            .map(String::as_str)
            .collect(),
    };
    let mut window = Window {
        epoch: u64::try_from(epoch).map_err(|_| corrupt("`epoch` is negative"))?,
        entries: Default::default(),
    };
    for (name, value) in item {
        if !name.starts_with(ENTRY_PREFIX) {
            continue;
        }
        let map = value.as_m().map_err(|_| corrupt("an entry is not a map"))?;
        let id = get_s(map, pk, "i")?.ok_or_else(|| corrupt("an entry has no `i`"))?;
        let at_ms = get_n(map, pk, "t")?.ok_or_else(|| corrupt("an entry has no `t`"))?;
        let steps = get_n(map, pk, "s")?;
        let sample = match (map.get("n"), get_s(map, pk, "x")?, steps) {
            (Some(AttributeValue::N(x)), None, None) => Sample::Number(
                x.parse::<f64>()
                    .map_err(|_| corrupt("an entry's `n` is not a number"))?,
            ),
            (None, Some(x), None) => Sample::Value(x.to_owned()),
            (None, None, Some(mask)) => Sample::Steps(
                u32::try_from(mask).map_err(|_| corrupt("an entry's `s` is not a step mask"))?,
            ),
            (None, None, None) => Sample::One,
            _ => return Err(corrupt("an entry's sample is malformed")),
        };
        let reason = get_s(map, pk, "r")?
            .map(serde_json::from_str::<Value>)
            .transpose()
            .map_err(|_| corrupt("an entry's `r` is not JSON"))?;
        window.entries.insert(
            EventId::new(id),
            Entry {
                at_ms,
                sample,
                reason,
                consumed: consumed.contains(name.as_str()),
            },
        );
    }
    Ok(window)
}
