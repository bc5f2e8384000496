//! Per-tenant webhook signing secrets and their rotation.
//!
//! One item per tenant holds the current secret and the previous secrets that
//! are still honoured, each with its expiry. Rotation makes a new current
//! secret and keeps the old one for [`SigningSecretStore::overlap`] (24 h by
//! default), during which webhooks carry a signature for each active secret,
//! so receivers can switch at their own pace. Rotating again within the
//! overlap keeps every secret that is still inside its own 24 hours, so no
//! secret handed out by a rotation stops working early. At most
//! [`SigningSecretStore::max_previous`] (4) replaced secrets sign at once (each
//! adds a signature to every webhook): a rotation that would push a fifth one
//! out before its 24 hours is refused ([`Rotation::Refused`], with the time the
//! oldest expires), rather than silently cutting that secret's overlap short.
//!
//! Every write is a whole-item `PutItem` conditioned on the `version` that
//! was read (or on absence, for the first secret), retried on conflict: two
//! concurrent rotations both succeed, one after the other, and neither
//! secret is lost.
//!
//! The secrets are stored as their `whsec_` text; the table is encrypted at
//! rest with its KMS key, and only the functions that sign or rotate should
//! be granted `GetItem`/`PutItem` on `SIGNING#*` keys (IAM
//! `dynamodb:LeadingKeys`). The item has no TTL.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::{DynamoError, Table, conditional, get_n, get_s, n, partition_key, s};
use crate::ids::TenantId;
use crate::webhook::signing::SigningSecret;

const SORT_KEY: &str = "SIGNING";
const MAX_ROUNDS: u32 = 5;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The new current secret.
    Rotated(SigningSecret),
    /// Refused: [`SigningSecretStore::max_previous`] replaced secrets still sign, and replacing
    /// the current one would end the oldest before its 24 hours. Possible again at
    /// `next_possible_at`, when the oldest of them expires.
    Refused { next_possible_at: DateTime<Utc> },
}

impl Rotation {
    /// The new secret, if the rotation was made.
    pub fn rotated(self) -> Option<SigningSecret> {
        match self {
            Self::Rotated(secret) => Some(secret),
            Self::Refused { .. } => None,
        }
    }
}

/// A secret from before the last rotation(s), honoured until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    pub expires_at: DateTime<Utc>,
}

/// A tenant's stored secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSecrets {
    /// The secret webhooks are signed with first.
    pub current: SigningSecret,
    /// When `current` was made.
    pub current_since: DateTime<Utc>,
    /// Older secrets, newest first (may include expired ones until the next write).
    pub previous: Vec<PreviousSecret>,
    /// Incremented on every write (optimistic concurrency).
    pub version: u64,
}

impl TenantSecrets {
    /// The secrets to sign with at `now`: current first, then the unexpired previous ones.
    pub fn active(&self, now: DateTime<Utc>) -> Vec<SigningSecret> {
        std::iter::once(self.current.clone())
            .chain(
                self.previous
                    .iter()
                    .filter(|p| p.expires_at > now)
                    .map(|p| p.secret.clone()),
            )
            .collect()
    }
}

/// Signing secrets in the shared table.
#[derive(Debug, Clone)]
pub struct SigningSecretStore {
    table: Table,
    overlap: Duration,
    max_previous: usize,
}

impl SigningSecretStore {
    /// Secrets stored in `table`, with a 24-hour overlap and at most 4 previous secrets.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            overlap: Duration::from_secs(24 * 3600),
            max_previous: 4,
        }
    }

    /// How long a replaced secret is still used to sign.
    pub fn overlap(&self) -> Duration {
        self.overlap
    }

    /// How many previous secrets are kept at most (bounds the header size).
    pub fn max_previous(&self) -> usize {
        self.max_previous
    }

    /// The stored secrets, if the tenant has any (strongly consistent read).
    pub async fn get(&self, tenant: TenantId) -> Result<Option<TenantSecrets>, DynamoError> {
        let pk = key(tenant)?;
        let got = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(&pk))
            .key("sk", s(SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::sdk("GetItem", e))?;
        got.item().map(|item| decode(&pk, item)).transpose()
    }

    /// The stored secrets, creating a first secret if the tenant has none.
    #[tracing::instrument(skip(self, now))]
    pub async fn get_or_create(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<TenantSecrets, DynamoError> {
        let pk = key(tenant)?;
        for _ in 0..MAX_ROUNDS {
            if let Some(existing) = self.get(tenant).await? {
                return Ok(existing);
            }
            let fresh = TenantSecrets {
                current: SigningSecret::generate(),
                current_since: now,
                previous: Vec::new(),
                version: 1,
            };
            if self.write(&pk, &fresh, None).await? {
                return Ok(fresh);
            }
            // Another request created it first: read theirs.
        }
        Err(DynamoError::Contention {
            operation: "PutItem (signing secret)",
            attempts: MAX_ROUNDS,
        })
    }

    /// Replaces the current secret with a new one and returns the new one; the replaced
    /// secret stays active for [`Self::overlap`]. Refused while [`Self::max_previous`] replaced
    /// secrets are still active (see the module documentation).
    #[tracing::instrument(skip(self, now))]
    pub async fn rotate(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Rotation, DynamoError> {
        let pk = key(tenant)?;
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or(chrono::Duration::days(1));
        for _ in 0..MAX_ROUNDS {
            let existing = self.get(tenant).await?;
            let new_secret = SigningSecret::generate();
            let (next, expected) = match existing {
                None => (
                    TenantSecrets {
                        current: new_secret.clone(),
                        current_since: now,
                        previous: Vec::new(),
                        version: 1,
                    },
                    None,
                ),
                Some(old) => {
                    let kept: Vec<PreviousSecret> = old
                        .previous
                        .into_iter()
                        .filter(|p| p.expires_at > now)
                        .collect();
                    if kept.len() >= self.max_previous {
                        // One more would push the oldest out before its promised 24 hours.
                        let next_possible_at =
                            kept.iter().map(|p| p.expires_at).min().unwrap_or(now);
                        return Ok(Rotation::Refused { next_possible_at });
                    }
                    let mut previous = vec![PreviousSecret {
                        secret: old.current,
                        expires_at: now + overlap,
                    }];
                    previous.extend(kept);
                    (
                        TenantSecrets {
                            current: new_secret.clone(),
                            current_since: now,
                            previous,
                            version: old.version + 1,
                        },
                        Some(old.version),
                    )
                }
            };
            if self.write(&pk, &next, expected).await? {
                return Ok(Rotation::Rotated(new_secret));
            }
        }
        Err(DynamoError::Contention {
            operation: "PutItem (signing secret rotation)",
            attempts: MAX_ROUNDS,
        })
    }

    /// The secrets to sign with at `now`, current first (creating the
    /// tenant's first secret if needed, so the result is never empty).
    pub async fn active(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningSecret>, DynamoError> {
        Ok(self.get_or_create(tenant, now).await?.active(now))
    }

    /// Writes `secrets` if the stored version is `expected` (`None`: absent).
    /// `Ok(false)` when another writer got there first.
    async fn write(
        &self,
        pk: &str,
        secrets: &TenantSecrets,
        expected: Option<u64>,
    ) -> Result<bool, DynamoError> {
        let previous = secrets
            .previous
            .iter()
            .map(|p| {
                AttributeValue::M(HashMap::from([
                    ("secret".to_owned(), s(p.secret.expose())),
                    ("expires_at".to_owned(), n(p.expires_at.timestamp())),
                ]))
            })
            .collect();
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(pk))
            .item("sk", s(SORT_KEY))
            .item("current", s(secrets.current.expose()))
            .item("current_since", n(secrets.current_since.timestamp()))
            .item("previous", AttributeValue::L(previous))
            .item("version", n(secrets.version));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(version)),
        };
        Ok(conditional(put.send().await, "PutItem")?.is_ok())
    }
}

fn key(tenant: TenantId) -> Result<String, DynamoError> {
    partition_key("SIGNING", &[("tenant", &tenant.to_string())])
}

fn corrupt(pk: &str, reason: impl Into<String>) -> DynamoError {
    DynamoError::CorruptItem {
        pk: pk.to_owned(),
        reason: reason.into(),
    }
}

fn secret(pk: &str, text: &str, field: &str) -> Result<SigningSecret, DynamoError> {
    SigningSecret::parse(text).map_err(|e| corrupt(pk, format!("`{field}`: {e}")))
}

fn time(pk: &str, seconds: i64, field: &str) -> Result<DateTime<Utc>, DynamoError> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| corrupt(pk, format!("`{field}` out of range")))
}

fn decode(pk: &str, item: &HashMap<String, AttributeValue>) -> Result<TenantSecrets, DynamoError> {
    let current = get_s(item, pk, "current")?.ok_or_else(|| corrupt(pk, "`current` missing"))?;
    let current_since = get_n(item, pk, "current_since")?.unwrap_or(0);
    let version = get_n(item, pk, "version")?.ok_or_else(|| corrupt(pk, "`version` missing"))?;
    let mut previous = Vec::new();
    if let Some(list) = item.get("previous") {
        let list = list
            .as_l()
            .map_err(|_| corrupt(pk, "`previous` is not a list"))?;
        for (i, entry) in list.iter().enumerate() {
            let map = entry
                .as_m()
                .map_err(|_| corrupt(pk, format!("`previous[{i}]` is not a map")))?;
            let field = format!("previous[{i}]");
            let text = get_s(map, pk, "secret")?
                .ok_or_else(|| corrupt(pk, format!("`{field}.secret` missing")))?;
            let expires = get_n(map, pk, "expires_at")?
                .ok_or_else(|| corrupt(pk, format!("`{field}.expires_at` missing")))?;
            previous.push(PreviousSecret {
                secret: secret(pk, text, &field)?,
                expires_at: time(pk, expires, &field)?,
            });
        }
    }
    Ok(TenantSecrets {
        current: secret(pk, current, "current")?,
        current_since: time(pk, current_since, "current_since")?,
        previous,
        version: u64::try_from(version).map_err(|_| corrupt(pk, "`version` is negative"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_lists_current_first_then_unexpired_previous() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let current = SigningSecret::generate();
        let fresh = SigningSecret::generate();
        let stale = SigningSecret::generate();
        let secrets = TenantSecrets {
            current: current.clone(),
            current_since: now,
            previous: vec![
                PreviousSecret {
                    secret: fresh.clone(),
                    expires_at: now + chrono::Duration::hours(3),
                },
                PreviousSecret {
                    secret: stale,
                    expires_at: now - chrono::Duration::seconds(1),
                },
            ],
            version: 3,
        };
        assert_eq!(secrets.active(now), vec![current, fresh]);
    }
}
