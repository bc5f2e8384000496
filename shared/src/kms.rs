//! Envelope encryption with a KMS key: what the signing secrets are stored as.
//!
//! [`Sealer::seal`] asks KMS for a fresh 256-bit data key (`GenerateDataKey`), encrypts the
//! plaintext with it locally (AES-256-GCM, ring) and keeps only the data key as KMS encrypted
//! it; [`Sealer::open`] has KMS decrypt that data key (`Decrypt`) and opens the ciphertext. The
//! KMS key never leaves KMS, and a copy of the table (a backup, an export, a function that may
//! read the item) holds nothing usable without `kms:Decrypt` on that key.
//!
//! Both calls carry an encryption context (for the signing secrets: the tenant and the
//! purpose). KMS binds the data key to it, so a sealed value copied into another tenant's item
//! does not open, and IAM policies and CloudTrail can name it. The same context, with the
//! caller's own associated data, is the AES-GCM associated data too.
//!
//! A data key seals exactly one value, so a random 96-bit nonce is never reused under a key.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::aws::Lazy;

/// A value sealed by [`Sealer::seal`]: what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The data key, encrypted by KMS under the key and the encryption context.
    pub encrypted_key: Vec<u8>,
    /// The AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// The AES-256-GCM ciphertext, tag appended.
    pub ciphertext: Vec<u8>,
}

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The KMS call failed after the SDK's retries (throttling, 5xx, timeouts, access denied,
    /// a disabled key, a data key sealed under another context).
    #[error("KMS {operation} failed")]
    Sdk {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_kms::Error>,
    },
    /// KMS answered without the expected field, or with a data key of the wrong size.
    #[error("KMS {operation} answered without a usable {what}")]
    BadAnswer {
        operation: &'static str,
        what: &'static str,
    },
    /// The ciphertext does not open under its data key and associated data: altered, or
    /// copied from another item.
    #[error("the sealed value does not open: altered, or not sealed for this item")]
    Tampered,
}

impl KmsError {
    fn sdk(operation: &'static str, e: impl Into<aws_sdk_kms::Error>) -> Self {
        Self::Sdk {
            operation,
            source: Box::new(e.into()),
        }
    }
}

/// Seals and opens values with one KMS key; cheap to clone.
#[derive(Debug, Clone)]
pub struct Sealer {
    client: Lazy<aws_sdk_kms::Client>,
    key_id: String,
}

impl Sealer {
    /// Values sealed under the KMS key `key_id` (an id, ARN or `alias/…`).
    pub fn new(client: impl Into<Lazy<aws_sdk_kms::Client>>, key_id: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            key_id: key_id.into(),
        }
    }

    /// The KMS key's id as configured.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext` under a fresh data key bound to `context`; `aad` is authenticated
    /// but not encrypted (e.g. the item's key).
    pub async fn seal(
        &self,
        context: &[(&str, &str)],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Sealed, KmsError> {
        const OP: &str = "GenerateDataKey";
        let mut request = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256);
        for (k, v) in context {
            request = request.encryption_context(*k, *v);
        }
        let answer = request.send().await.map_err(|e| KmsError::sdk(OP, e))?;
        let data_key = answer.plaintext().ok_or(KmsError::BadAnswer {
            operation: OP,
            what: "Plaintext",
        })?;
        let encrypted_key = answer
            .ciphertext_blob()
            .ok_or(KmsError::BadAnswer {
                operation: OP,
                what: "CiphertextBlob",
            })?
            .as_ref()
            .to_vec();
        let key = aes_key(data_key.as_ref(), OP)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let mut ciphertext = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(context, aad)),
            &mut ciphertext,
        )
        .map_err(|_| KmsError::Tampered)?;
        Ok(Sealed {
            encrypted_key,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// The plaintext of `sealed`, which must have been sealed with the same `context` and
    /// `aad`.
    pub async fn open(
        &self,
        context: &[(&str, &str)],
        aad: &[u8],
        sealed: &Sealed,
    ) -> Result<Vec<u8>, KmsError> {
        const OP: &str = "Decrypt";
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| KmsError::Tampered)?;
        let mut request = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed.encrypted_key.clone()));
        for (k, v) in context {
            request = request.encryption_context(*k, *v);
        }
        let answer = request.send().await.map_err(|e| KmsError::sdk(OP, e))?;
        let data_key = answer.plaintext().ok_or(KmsError::BadAnswer {
            operation: OP,
            what: "Plaintext",
        })?;
        let key = aes_key(data_key.as_ref(), OP)?;
        let mut buffer = sealed.ciphertext.clone();
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(context, aad)),
                &mut buffer,
            )
            .map_err(|_| KmsError::Tampered)?;
        let len = opened.len();
        buffer.truncate(len);
        Ok(buffer)
    }
}

fn aes_key(bytes: &[u8], operation: &'static str) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::BadAnswer {
            operation,
            what: "256-bit data key",
        })
}

/// The context (sorted, length-prefixed, so no two contexts serialise alike) and `aad`.
fn associated_data(context: &[(&str, &str)], aad: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<_> = context.to_vec();
    pairs.sort_unstable();
    let mut out = Vec::new();
    for part in pairs
        .iter()
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
        .chain(std::iter::once(aad))
    {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn associated_data_is_unambiguous_and_order_free() {
        let a = associated_data(&[("tenant", "ab"), ("purpose", "c")], b"k");
        let b = associated_data(&[("purpose", "c"), ("tenant", "ab")], b"k");
        assert_eq!(a, b, "the context's order does not matter");
        let shifted = associated_data(&[("tenant", "a"), ("purpose", "bc")], b"k");
        assert_ne!(a, shifted, "a byte moved between fields changes the data");
        assert_ne!(
            a,
            associated_data(&[("tenant", "ab"), ("purpose", "c")], b"x")
        );
    }
}
