//! State of AI judgement (`ai_check`, judged by Amazon Bedrock): the verdict cache, the
//! at-most-once judging claim per (trigger, event), and each tenant's daily token budget.
//!
//! - [`VerdictCache`]: one item per (tenant, cache key), the key being the caller's hex digest
//!   of (model, prompt, selected fields). Kept 7 days ([`VERDICT_TTL`]): the same ticket text
//!   judged by the same question and model never costs twice in that time. The cache is per
//!   tenant on purpose: a cache shared across tenants would tell one tenant, by a hit (its
//!   answer or its speed), that another tenant judged the same text.
//! - [`JudgingClaim`]: SQS delivers at least once, and a model call costs money, so judging
//!   (trigger, event) is claimed first with one conditional `PutItem`; of concurrent or
//!   repeated deliveries one wins. The winner holds a lease: a delivery that finds the claim
//!   *judging* with its lease run out (the winner died or timed out) takes it over; one that
//!   finds it *done* gets the recorded outcome, so a redelivery answers as the first delivery
//!   did without asking the model again. "At most once" therefore holds while the winner
//!   lives; after its lease, a second call is the price of not losing the event.
//! - [`TokenBudget`]: per tenant and UTC day, the input and output tokens Converse reported
//!   and the number of model calls, added atomically (`ADD`). The budget is checked before a
//!   call and charged after it (a call's tokens are known only from its answer), so concurrent
//!   calls may overshoot the limit by at most their own usage.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use serde_json::Value;

use super::{
    DynamoError, Table, conditional, epoch_seconds_ceil, get_n, get_s, n, partition_key, s,
};
use crate::ids::{EventId, TenantId, TriggerId};

/// How long a cached verdict is used.
pub const VERDICT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a finished judging outcome is kept: SQS's longest message retention, so that any
/// redelivery still finds it.
pub const OUTCOME_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long a day's usage is kept after the day: a month of history plus a few days' margin.
pub const USAGE_RETENTION_DAYS: i64 = 35;
/// The longest range [`TokenBudget::usage`] reads, in days.
pub const MAX_USAGE_DAYS: i64 = 31;
/// Longest verdict reason kept, in characters (the `verdict` tool's schema says the same).
pub const MAX_REASON_CHARS: usize = 300;
/// Longest model id accepted, in characters.
pub const MAX_MODEL_CHARS: usize = 200;
/// Longest cache key accepted, in hex digits (a SHA-256 is 64).
pub const MAX_CACHE_KEY_CHARS: usize = 128;
/// Longest judging outcome accepted, in bytes of JSON (a verdict, a reason and a few
/// figures; a bound keeps one claim item far from DynamoDB's 400 KB).
pub const MAX_OUTCOME_BYTES: usize = 8 * 1024;
/// Longest owner token accepted, in bytes.
const MAX_OWNER_BYTES: usize = 256;

const CACHE_SORT_KEY: &str = "AICACHE";
const JUDGE_SORT_KEY: &str = "AIJUDGE";
const JUDGING: &str = "judging";
const DONE: &str = "done";

fn invalid(field: &'static str, reason: impl Into<String>) -> DynamoError {
    DynamoError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn corrupt(pk: &str, reason: impl Into<String>) -> DynamoError {
    DynamoError::CorruptItem {
        pk: pk.to_owned(),
        reason: reason.into(),
    }
}

fn chrono_duration(field: &'static str, d: Duration) -> Result<chrono::Duration, DynamoError> {
    chrono::Duration::from_std(d).map_err(|_| invalid(field, "too long"))
}

// ---------------------------------------------------------------- verdict cache

/// A verdict as the cache keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedVerdict {
    pub verdict: bool,
    /// 0 to 1 (stored to six decimals).
    pub confidence: f64,
    /// At most [`MAX_REASON_CHARS`] characters (longer ones are cut when stored).
    pub reason: String,
    /// The model that judged (at most [`MAX_MODEL_CHARS`] characters).
    pub model: String,
}

/// Cached verdicts in the shared table.
#[derive(Debug, Clone)]
pub struct VerdictCache {
    table: Table,
}

impl VerdictCache {
    /// Verdicts stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// The verdict cached for `key_hex` in `tenant`'s cache, unless absent or expired at `now`.
    #[tracing::instrument(skip(self, now))]
    pub async fn get(
        &self,
        tenant: TenantId,
        key_hex: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedVerdict>, DynamoError> {
        let pk = cache_key(tenant, key_hex)?;
        let got = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(CACHE_SORT_KEY))
            .send()
            .await
            .map_err(|e| DynamoError::sdk("GetItem", e))?;
        let Some(item) = got.item() else {
            return Ok(None);
        };
        // TTL deletes lazily: an item past its time is absent even while DynamoDB still has it.
        let expires_at = get_n(item, &pk, "expires_at")?
            .ok_or_else(|| corrupt(&pk, "`expires_at` is missing"))?;
        if expires_at <= now.timestamp() {
            return Ok(None);
        }
        let verdict = match item.get("verdict") {
            Some(AttributeValue::Bool(b)) => *b,
            _ => return Err(corrupt(&pk, "`verdict` is not a boolean")),
        };
        let confidence = get_f64(item, &pk, "confidence")?;
        let reason = get_s(item, &pk, "reason")?
            .ok_or_else(|| corrupt(&pk, "`reason` is missing"))?
            .to_owned();
        let model = get_s(item, &pk, "model")?
            .ok_or_else(|| corrupt(&pk, "`model` is missing"))?
            .to_owned();
        Ok(Some(CachedVerdict {
            verdict,
            confidence,
            reason,
            model,
        }))
    }

    /// Caches `verdict` under `key_hex` in `tenant`'s cache for [`VERDICT_TTL`] from `now`.
    /// Unconditional: two judges of the same key asked the same question about the same data,
    /// and either answer will do.
    #[tracing::instrument(skip(self, verdict, now))]
    pub async fn put(
        &self,
        tenant: TenantId,
        key_hex: &str,
        verdict: &CachedVerdict,
        now: DateTime<Utc>,
    ) -> Result<(), DynamoError> {
        let pk = cache_key(tenant, key_hex)?;
        if !(verdict.confidence.is_finite() && (0.0..=1.0).contains(&verdict.confidence)) {
            return Err(invalid(
                "confidence",
                format!("must be between 0 and 1, found {}", verdict.confidence),
            ));
        }
        if verdict.model.is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        if verdict.model.chars().count() > MAX_MODEL_CHARS {
            return Err(invalid(
                "model",
                format!("longer than {MAX_MODEL_CHARS} characters"),
            ));
        }
        // The reason is the model's own text; cutting it keeps the item bounded without
        // losing the verdict.
        let reason: String = verdict.reason.chars().take(MAX_REASON_CHARS).collect();
        let expires_at = epoch_seconds_ceil(now + chrono_duration("ttl", VERDICT_TTL)?);
        self.table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(&pk))
            .item("sk", s(CACHE_SORT_KEY))
            .item("verdict", AttributeValue::Bool(verdict.verdict))
            // Six decimals: plenty for a confidence, and never a number DynamoDB refuses
            // (its smallest magnitude is 1E-130).
            .item("confidence", n((verdict.confidence * 1e6).round() / 1e6))
            .item("reason", s(reason))
            .item("model", s(&verdict.model))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map_err(|e| DynamoError::sdk("PutItem", e))?;
        Ok(())
    }
}

fn cache_key(tenant: TenantId, key_hex: &str) -> Result<String, DynamoError> {
    if key_hex.len() > MAX_CACHE_KEY_CHARS || !key_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "key_hex",
            format!("must be at most {MAX_CACHE_KEY_CHARS} hex digits"),
        ));
    }
    // Digests differing only in case are the same digest.
    partition_key(
        "AICACHE",
        &[
            ("tenant", &tenant.to_string()),
            ("key_hex", &key_hex.to_ascii_lowercase()),
        ],
    )
}

fn get_f64(
    item: &HashMap<String, AttributeValue>,
    pk: &str,
    name: &str,
) -> Result<f64, DynamoError> {
    let text = item
        .get(name)
        .ok_or_else(|| corrupt(pk, format!("`{name}` is missing")))?
        .as_n()
        .map_err(|_| corrupt(pk, format!("`{name}` is not a number")))?;
    text.parse::<f64>()
        .map_err(|_| corrupt(pk, format!("`{name}` is not a number: {text}")))
}

// ---------------------------------------------------------------- judging claims

/// The answer to a judging claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Judging {
    /// This caller judges the event (first claim, a takeover after the lease, or the same
    /// owner claiming again) and then calls [`JudgingClaim::finish`].
    Won,
    /// Another delivery is judging it, its lease running until `lease_until` (`None`: not
    /// returned); the caller tries again later (the message's redelivery).
    Held { lease_until: Option<DateTime<Utc>> },
    /// Judged already: the outcome recorded by [`JudgingClaim::finish`].
    Done(Value),
}

/// The answer to [`JudgingClaim::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// This outcome is the recorded one.
    Recorded,
    /// Another judge (one that took over after this caller's lease ran out) recorded its
    /// outcome first; that one stands, and the caller should act on it, so that every
    /// delivery of the event gives the same answer.
    AlreadyDone(Value),
}

/// At-most-once judging claims in the shared table.
#[derive(Debug, Clone)]
pub struct JudgingClaim {
    table: Table,
}

impl JudgingClaim {
    /// Claims stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Claims judging `event_id` for `trigger_id` on behalf of `owner` (a token unique to this
    /// delivery, e.g. a fresh UUID) for `lease` from `now`. One conditional `PutItem`, granted
    /// when there is no live item, when the item is judging and its lease has run out, or when
    /// it is `owner`'s own claim.
    #[tracing::instrument(skip(self, now, lease))]
    pub async fn claim(
        &self,
        tenant: TenantId,
        trigger_id: TriggerId,
        event_id: &EventId,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Judging, DynamoError> {
        let pk = judge_key(tenant, trigger_id, event_id)?;
        check_owner(owner)?;
        if lease.is_zero() {
            return Err(invalid("lease", "must be longer than zero"));
        }
        let lease_until = now + chrono_duration("lease", lease)?;
        // A judging item outlives its lease as long as an outcome would, so a claim whose
        // judge died is taken over by a redelivery rather than removed under it.
        let expires_at =
            epoch_seconds_ceil(lease_until + chrono_duration("retention", OUTCOME_RETENTION)?);
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(&pk))
            .item("sk", s(JUDGE_SORT_KEY))
            .item("state", s(JUDGING))
            .item("owner", s(owner))
            .item("lease_until_ms", n(lease_until.timestamp_millis()))
            .item("expires_at", n(expires_at))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at <= :now \
                 OR (#state = :judging AND (lease_until_ms <= :now_ms OR #owner = :owner))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":judging", s(JUDGING))
            .expression_attribute_values(":owner", s(owner))
            // A refusal carries the item: whether it is done (and with what) or held (until
            // when) is the answer, without a second read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let refused = match conditional(put, "PutItem")? {
            Ok(_) => return Ok(Judging::Won),
            Err(refused) => refused,
        };
        let item = match &refused {
            PutItemError::ConditionalCheckFailedException(failed) => failed.item(),
            _ => None,
        };
        let Some(item) = item else {
            return Ok(Judging::Held { lease_until: None });
        };
        match get_s(item, &pk, "state")? {
            Some(DONE) => Ok(Judging::Done(outcome_of(item, &pk)?)),
            _ => Ok(Judging::Held {
                lease_until: get_n(item, &pk, "lease_until_ms")?
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
            }),
        }
    }

    /// Records `outcome` as the result of judging `event_id` for `trigger_id`, kept
    /// [`OUTCOME_RETENTION`] from `now`. The first outcome recorded stands: a judge whose lease
    /// ran out and was overtaken records its outcome only if the other has not yet (either
    /// made the model call; one answer must win), and otherwise gets the recorded one.
    #[tracing::instrument(skip(self, outcome, now))]
    pub async fn finish(
        &self,
        tenant: TenantId,
        trigger_id: TriggerId,
        event_id: &EventId,
        owner: &str,
        outcome: &Value,
        now: DateTime<Utc>,
    ) -> Result<Finished, DynamoError> {
        let pk = judge_key(tenant, trigger_id, event_id)?;
        check_owner(owner)?;
        let text = outcome.to_string();
        if text.len() > MAX_OUTCOME_BYTES {
            return Err(invalid(
                "outcome",
                format!("{} bytes of JSON, at most {MAX_OUTCOME_BYTES}", text.len()),
            ));
        }
        let expires_at = epoch_seconds_ceil(now + chrono_duration("retention", OUTCOME_RETENTION)?);
        let update = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(JUDGE_SORT_KEY))
            .update_expression(
                "SET #state = :done, outcome = :outcome, #owner = :owner, expires_at = :exp \
                 REMOVE lease_until_ms",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR #state <> :done OR expires_at <= :now",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":outcome", s(text))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let refused = match conditional(update, "UpdateItem")? {
            Ok(_) => return Ok(Finished::Recorded),
            Err(refused) => refused,
        };
        match refused {
            UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item() {
                Some(item) => Ok(Finished::AlreadyDone(outcome_of(item, &pk)?)),
                None => Err(corrupt(&pk, "the recorded outcome was not returned")),
            },
            other => Err(DynamoError::sdk("UpdateItem", other)),
        }
    }
}

fn judge_key(
    tenant: TenantId,
    trigger_id: TriggerId,
    event_id: &EventId,
) -> Result<String, DynamoError> {
    partition_key(
        "AIJUDGE",
        &[
            ("tenant", &tenant.to_string()),
            ("trigger_id", &trigger_id.to_string()),
            ("event_id", event_id),
        ],
    )
}

fn check_owner(owner: &str) -> Result<(), DynamoError> {
    if owner.is_empty() {
        return Err(invalid("owner", "must not be empty"));
    }
    if owner.len() > MAX_OWNER_BYTES {
        return Err(invalid(
            "owner",
            format!("longer than {MAX_OWNER_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn outcome_of(item: &HashMap<String, AttributeValue>, pk: &str) -> Result<Value, DynamoError> {
    let text = get_s(item, pk, "outcome")?.ok_or_else(|| corrupt(pk, "`outcome` is missing"))?;
    serde_json::from_str(text).map_err(|e| corrupt(pk, format!("`outcome` is not JSON: {e}")))
}

// ---------------------------------------------------------------- token budget

/// One tenant's AI usage on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUsage {
    pub day: NaiveDate,
    /// Input tokens, as Converse's `usage.inputTokens` reported them.
    pub input_tokens: u64,
    /// Output tokens, as Converse's `usage.outputTokens` reported them.
    pub output_tokens: u64,
    /// Model calls charged.
    pub checks: u64,
}

impl DayUsage {
    /// Input and output tokens: what the budget counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The UTC day of `now`, the budget's unit.
pub fn utc_day(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

/// Daily token counters in the shared table.
///
/// Key design: one partition per tenant (`AIUSAGE#<tenant>`), one item per day (sort key
/// `DAY#<yyyy-mm-dd>`), so that a range of days is one `Query` (`sk BETWEEN`), in day order
/// with no sorting or unprocessed-key rounds as a `BatchGetItem` of per-day partitions would
/// need. This gives up nothing: the only item written is today's, and a single item's write
/// rate is the bound either way.
#[derive(Debug, Clone)]
pub struct TokenBudget {
    table: Table,
}

impl TokenBudget {
    /// Counters stored in `table`.
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Whether `tenant` is under `limit` tokens (input + output) on `day`: `false` once the
    /// day's tokens reached the limit. A consistent read, so a charge just made counts.
    #[tracing::instrument(skip(self))]
    pub async fn check(
        &self,
        tenant: TenantId,
        day: NaiveDate,
        limit: u64,
    ) -> Result<bool, DynamoError> {
        let (pk, sk) = usage_key(tenant, day)?;
        let got = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(&sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::sdk("GetItem", e))?;
        let used = match got.item() {
            None => 0,
            Some(item) => usage_of(item, &pk)?.tokens(),
        };
        Ok(used < limit)
    }

    /// Charges one model call's tokens to `tenant`'s `day`: one `UpdateItem` that `ADD`s the
    /// input and output tokens and one call, atomic under concurrent charges. Answers the
    /// day's totals after the charge.
    #[tracing::instrument(skip(self))]
    pub async fn add(
        &self,
        tenant: TenantId,
        day: NaiveDate,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<DayUsage, DynamoError> {
        let (pk, sk) = usage_key(tenant, day)?;
        let expires_at = day
            .checked_add_days(chrono::Days::new(USAGE_RETENTION_DAYS as u64 + 1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(|| invalid("day", format!("{day} is out of range")))?;
        let updated = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(&sk))
            .update_expression(
                "ADD input_tokens :in, output_tokens :out, checks :one SET #day = :day, expires_at = :exp",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":in", n(input_tokens))
            .expression_attribute_values(":out", n(output_tokens))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":day", s(day.to_string()))
            .expression_attribute_values(":exp", n(expires_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| DynamoError::sdk("UpdateItem", e))?;
        let item = updated
            .attributes()
            .ok_or_else(|| corrupt(&pk, "the updated counters were not returned"))?;
        usage_of(item, &pk)
    }

    /// `tenant`'s usage on the days from `from` to `to` (both included, at most
    /// [`MAX_USAGE_DAYS`]), in day order. Days without usage are absent.
    #[tracing::instrument(skip(self))]
    pub async fn usage(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayUsage>, DynamoError> {
        if to < from {
            return Err(invalid("to", format!("{to} is before {from}")));
        }
        let span = (to - from).num_days() + 1;
        if span > MAX_USAGE_DAYS {
            return Err(invalid(
                "to",
                format!("{span} days from {from}, at most {MAX_USAGE_DAYS}"),
            ));
        }
        let (pk, from_sk) = usage_key(tenant, from)?;
        let (_, to_sk) = usage_key(tenant, to)?;
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        // 31 small items fit in one page; the loop is for the page limit's sake only.
        loop {
            let page = self
                .table
                .client()
                .query()
                .table_name(self.table.name())
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":from", s(&from_sk))
                .expression_attribute_values(":to", s(&to_sk))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| DynamoError::sdk("Query", e))?;
            for item in page.items() {
                out.push(usage_of(item, &pk)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(out)
    }
}

fn usage_key(tenant: TenantId, day: NaiveDate) -> Result<(String, String), DynamoError> {
    // Four-digit years keep the sort keys' text order the days' order.
    if !(1..=9999).contains(&day.year()) {
        return Err(invalid("day", format!("{day} is out of range")));
    }
    let pk = partition_key("AIUSAGE", &[("tenant", &tenant.to_string())])?;
    Ok((pk, format!("DAY#{day}")))
}

fn usage_of(item: &HashMap<String, AttributeValue>, pk: &str) -> Result<DayUsage, DynamoError> {
    let count = |name: &str| -> Result<u64, DynamoError> {
        let value = get_n(item, pk, name)?.unwrap_or(0);
        u64::try_from(value).map_err(|_| corrupt(pk, format!("`{name}` is negative: {value}")))
    };
    let day = get_s(item, pk, "day")?.ok_or_else(|| corrupt(pk, "`day` is missing"))?;
    let day = day
        .parse::<NaiveDate>()
        .map_err(|_| corrupt(pk, format!("`day` is not a date: {day}")))?;
    Ok(DayUsage {
        day,
        input_tokens: count("input_tokens")?,
        output_tokens: count("output_tokens")?,
        checks: count("checks")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_by_tenant_and_validated() {
        let a = TenantId::new();
        let b = TenantId::new();
        let digest = "AB".repeat(32);
        assert_ne!(
            cache_key(a, &digest).unwrap(),
            cache_key(b, &digest).unwrap()
        );
        assert_eq!(
            cache_key(a, &digest).unwrap(),
            cache_key(a, &digest.to_lowercase()).unwrap()
        );
        let err = cache_key(a, "not hex").unwrap_err();
        assert!(err.to_string().starts_with("key_hex:"), "{err}");
        let err = cache_key(a, &"a".repeat(129)).unwrap_err();
        assert!(err.to_string().starts_with("key_hex:"), "{err}");
        assert_eq!(
            cache_key(a, "").unwrap_err().to_string(),
            "key_hex: must not be empty"
        );
        assert!(check_owner("").is_err());
        assert!(check_owner(&"o".repeat(257)).is_err());
    }

    #[test]
    fn day_sort_keys_sort_as_days() {
        let t = TenantId::new();
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        let (_, early) = usage_key(t, d(2026, 9, 30)).unwrap();
        let (_, late) = usage_key(t, d(2026, 10, 1)).unwrap();
        assert_eq!(early, "DAY#2026-09-30");
        assert!(early < late);
        assert!(usage_key(t, d(10000, 1, 1)).is_err());
    }
}
