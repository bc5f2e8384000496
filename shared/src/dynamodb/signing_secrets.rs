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
//! The secrets are envelope-encrypted with a dedicated KMS key ([`crate::kms`]): the item
//! holds `version` and `current_since` in clear and everything else (the `whsec_` texts and
//! the previous secrets' expiries) sealed under a data key that KMS encrypted with the
//! encryption context `{tenant_id, purpose: webhook-signing-secrets}`. Reading the table is
//! not enough to read a secret: that needs `kms:Decrypt` on the key, which only the functions
//! that sign or show secrets have; only those that make secrets have `kms:GenerateDataKey`.
//! deliver-webhooks never makes one ([`SigningSecretStore::active`]).
//!
//! Items written before the encryption (`current` and `previous` in clear) are still read;
//! the next write seals them, and [`SigningSecretStore::seal_legacy`] (`triggeriq tenant
//! seal-secrets`) seals them all at once. The item has no TTL.
//!
//! deliver-webhooks reads the item on every delivery (strongly consistent, so a rotation
//! signs the next webhook) but calls KMS only when the sealed value changed since it last
//! opened it: the opened secrets are kept in memory per tenant for the container's life,
//! keyed by the sealed bytes themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoError, Table, conditional, get_n, get_s, n, partition_key, s};
use crate::ids::TenantId;
use crate::kms::{KmsError, Sealed, Sealer};
use crate::webhook::signing::SigningSecret;

const SORT_KEY: &str = "SIGNING";
const MAX_ROUNDS: u32 = 5;
/// The `purpose` of the KMS encryption context (IAM policies may require it).
pub const PURPOSE: &str = "webhook-signing-secrets";
/// Tenants whose opened secrets one container keeps (about 300 bytes each).
const OPENED_CAP: usize = 10_000;

/// Why the secrets could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Store(#[from] DynamoError),
    /// KMS refused or failed, or the sealed value does not open.
    #[error("the signing secrets in {pk} could not be sealed or opened")]
    Sealing {
        pk: String,
        #[source]
        source: KmsError,
    },
    /// deliver-webhooks never makes a secret (it may only decrypt): the tenant was created
    /// before `tenant create` made one and has never asked for it.
    #[error(
        "tenant {0} has no webhook signing secret yet; `triggeriq tenant seal-secrets` (or GET \
         /v1/signing-secret) makes it"
    )]
    Missing(TenantId),
}

/// What [`SigningSecretStore::seal_legacy`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealOutcome {
    /// Stored in clear before; sealed now.
    Sealed,
    /// Already sealed: nothing to do.
    AlreadySealed,
    /// The tenant had no secret; its first one was made (sealed).
    Created,
}

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

/// Signing secrets in the shared table; cheap to clone (clones share the opened secrets).
#[derive(Debug, Clone)]
pub struct SigningSecretStore {
    table: Table,
    sealer: Sealer,
    overlap: Duration,
    max_previous: usize,
    opened: Arc<Mutex<HashMap<TenantId, (Sealed, TenantSecrets)>>>,
}

/// What is sealed: the secrets' texts and the previous ones' expiries.
#[derive(Serialize, Deserialize)]
struct SealedSecrets {
    current: String,
    previous: Vec<SealedPrevious>,
}

#[derive(Serialize, Deserialize)]
struct SealedPrevious {
    secret: String,
    expires_at: i64,
}

/// A stored item, before the sealed part is opened.
enum Stored {
    Clear(TenantSecrets),
    Sealed {
        sealed: Sealed,
        current_since: DateTime<Utc>,
        version: u64,
    },
}

impl SigningSecretStore {
    /// Secrets stored in `table`, sealed by `sealer`, with a 24-hour overlap and at most 4
    /// previous secrets.
    pub fn new(table: Table, sealer: Sealer) -> Self {
        Self {
            table,
            sealer,
            overlap: Duration::from_secs(24 * 3600),
            max_previous: 4,
            opened: Arc::default(),
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
    pub async fn get(&self, tenant: TenantId) -> Result<Option<TenantSecrets>, SecretsError> {
        let pk = key(tenant)?;
        match self.read(&pk).await? {
            None => Ok(None),
            Some(Stored::Clear(secrets)) => Ok(Some(secrets)),
            Some(Stored::Sealed {
                sealed,
                current_since,
                version,
            }) => {
                let cached = self
                    .opened
                    .lock()
                    .ok()
                    .and_then(|opened| opened.get(&tenant).cloned())
                    .filter(|(seen, _)| *seen == sealed);
                if let Some((_, secrets)) = cached {
                    return Ok(Some(secrets));
                }
                let secrets = self
                    .open(tenant, &pk, &sealed, current_since, version)
                    .await?;
                if let Ok(mut opened) = self.opened.lock() {
                    if opened.len() >= OPENED_CAP {
                        opened.clear();
                    }
                    opened.insert(tenant, (sealed, secrets.clone()));
                }
                Ok(Some(secrets))
            }
        }
    }

    /// Whether the tenant's item is stored in clear (written before the encryption); `None`
    /// when the tenant has no item.
    pub async fn is_clear(&self, tenant: TenantId) -> Result<Option<bool>, SecretsError> {
        let pk = key(tenant)?;
        Ok(self
            .read(&pk)
            .await?
            .map(|stored| matches!(stored, Stored::Clear(_))))
    }

    async fn read(&self, pk: &str) -> Result<Option<Stored>, DynamoError> {
        let got = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(pk))
            .key("sk", s(SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::sdk("GetItem", e))?;
        got.item().map(|item| decode(pk, item)).transpose()
    }

    async fn open(
        &self,
        tenant: TenantId,
        pk: &str,
        sealed: &Sealed,
        current_since: DateTime<Utc>,
        version: u64,
    ) -> Result<TenantSecrets, SecretsError> {
        let tenant_text = tenant.to_string();
        let plain = self
            .sealer
            .open(&context(&tenant_text), &aad(pk, version), sealed)
            .await
            .map_err(|source| SecretsError::Sealing {
                pk: pk.to_owned(),
                source,
            })?;
        let inner: SealedSecrets = serde_json::from_slice(&plain)
            .map_err(|e| corrupt(pk, format!("the sealed secrets are not readable: {e}")))?;
        let mut previous = Vec::with_capacity(inner.previous.len());
        for (i, p) in inner.previous.iter().enumerate() {
            let field = format!("previous[{i}]");
            previous.push(PreviousSecret {
                secret: secret(pk, &p.secret, &field)?,
                expires_at: time(pk, p.expires_at, &field)?,
            });
        }
        Ok(TenantSecrets {
            current: secret(pk, &inner.current, "current")?,
            current_since,
            previous,
            version,
        })
    }

    /// The stored secrets, creating a first secret if the tenant has none.
    #[tracing::instrument(skip(self, now))]
    pub async fn get_or_create(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<TenantSecrets, SecretsError> {
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
            if self.write(tenant, &pk, &fresh, None).await? {
                return Ok(fresh);
            }
            // Another request created it first: read theirs.
        }
        Err(DynamoError::Contention {
            operation: "PutItem (signing secret)",
            attempts: MAX_ROUNDS,
        }
        .into())
    }

    /// Seals the tenant's secrets if they are stored in clear, or makes its first secret if
    /// it has none: what `triggeriq tenant seal-secrets` runs for every tenant after an
    /// upgrade. The secrets themselves do not change.
    pub async fn seal_legacy(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<SealOutcome, SecretsError> {
        let pk = key(tenant)?;
        for _ in 0..MAX_ROUNDS {
            match self.read(&pk).await? {
                Some(Stored::Sealed { .. }) => return Ok(SealOutcome::AlreadySealed),
                Some(Stored::Clear(clear)) => {
                    let expected = clear.version;
                    let next = TenantSecrets {
                        version: expected + 1,
                        ..clear
                    };
                    if self.write(tenant, &pk, &next, Some(expected)).await? {
                        return Ok(SealOutcome::Sealed);
                    }
                }
                None => {
                    self.get_or_create(tenant, now).await?;
                    return Ok(SealOutcome::Created);
                }
            }
        }
        Err(DynamoError::Contention {
            operation: "PutItem (sealing signing secrets)",
            attempts: MAX_ROUNDS,
        }
        .into())
    }

    /// Replaces the current secret with a new one and returns the new one; the replaced
    /// secret stays active for [`Self::overlap`]. Refused while [`Self::max_previous`] replaced
    /// secrets are still active (see the module documentation).
    #[tracing::instrument(skip(self, now))]
    pub async fn rotate(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Rotation, SecretsError> {
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
            if self.write(tenant, &pk, &next, expected).await? {
                return Ok(Rotation::Rotated(new_secret));
            }
        }
        Err(DynamoError::Contention {
            operation: "PutItem (signing secret rotation)",
            attempts: MAX_ROUNDS,
        }
        .into())
    }

    /// The secrets to sign with at `now`, current first (never empty). Never makes a secret
    /// (deliver-webhooks may decrypt, not encrypt): a tenant without one is
    /// [`SecretsError::Missing`].
    pub async fn active(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningSecret>, SecretsError> {
        match self.get(tenant).await? {
            Some(secrets) => Ok(secrets.active(now)),
            None => Err(SecretsError::Missing(tenant)),
        }
    }

    /// Seals `secrets` and writes them if the stored version is `expected` (`None`: absent).
    /// `Ok(false)` when another writer got there first.
    async fn write(
        &self,
        tenant: TenantId,
        pk: &str,
        secrets: &TenantSecrets,
        expected: Option<u64>,
    ) -> Result<bool, SecretsError> {
        let inner = SealedSecrets {
            current: secrets.current.expose().to_owned(),
            previous: secrets
                .previous
                .iter()
                .map(|p| SealedPrevious {
                    secret: p.secret.expose().to_owned(),
                    expires_at: p.expires_at.timestamp(),
                })
                .collect(),
        };
        let plain = serde_json::to_vec(&inner)
            .map_err(|e| corrupt(pk, format!("the secrets cannot be serialised: {e}")))?;
        let tenant_text = tenant.to_string();
        let sealed = self
            .sealer
            .seal(&context(&tenant_text), &aad(pk, secrets.version), &plain)
            .await
            .map_err(|source| SecretsError::Sealing {
                pk: pk.to_owned(),
                source,
            })?;
        let sealed_item = HashMap::from([
            (
                "key".to_owned(),
                AttributeValue::B(Blob::new(sealed.encrypted_key)),
            ),
            (
                "nonce".to_owned(),
                AttributeValue::B(Blob::new(sealed.nonce)),
            ),
            (
                "data".to_owned(),
                AttributeValue::B(Blob::new(sealed.ciphertext)),
            ),
        ]);
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .item("pk", s(pk))
            .item("sk", s(SORT_KEY))
            .item("sealed", AttributeValue::M(sealed_item))
            .item("current_since", n(secrets.current_since.timestamp()))
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

/// The KMS encryption context of a tenant's secrets.
fn context(tenant: &str) -> [(&str, &str); 2] {
    [("tenant_id", tenant), ("purpose", PURPOSE)]
}

/// The item a sealed value belongs to, and its version: a sealed value copied to another
/// item, or back to an older version of the same item, does not open.
fn aad(pk: &str, version: u64) -> Vec<u8> {
    format!("{pk}#{version}").into_bytes()
}

fn blob(
    pk: &str,
    map: &HashMap<String, AttributeValue>,
    field: &str,
) -> Result<Vec<u8>, DynamoError> {
    map.get(field)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt(pk, format!("`sealed.{field}` missing or not binary")))
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

fn decode(pk: &str, item: &HashMap<String, AttributeValue>) -> Result<Stored, DynamoError> {
    let current_since = get_n(item, pk, "current_since")?.unwrap_or(0);
    let version = get_n(item, pk, "version")?.ok_or_else(|| corrupt(pk, "`version` missing"))?;
    let version = u64::try_from(version).map_err(|_| corrupt(pk, "`version` is negative"))?;
    if let Some(sealed) = item.get("sealed") {
        let map = sealed
            .as_m()
            .map_err(|_| corrupt(pk, "`sealed` is not a map"))?;
        return Ok(Stored::Sealed {
            sealed: Sealed {
                encrypted_key: blob(pk, map, "key")?,
                nonce: blob(pk, map, "nonce")?,
                ciphertext: blob(pk, map, "data")?,
            },
            current_since: time(pk, current_since, "current_since")?,
            version,
        });
    }
    // Written before the encryption: the secrets in clear.
    let current = get_s(item, pk, "current")?.ok_or_else(|| corrupt(pk, "`current` missing"))?;
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
    Ok(Stored::Clear(TenantSecrets {
        current: secret(pk, current, "current")?,
        current_since: time(pk, current_since, "current_since")?,
        previous,
        version,
    }))
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
