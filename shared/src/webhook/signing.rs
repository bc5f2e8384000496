//! Standard Webhooks signing: the per-tenant secret (`whsec_…`) and the
//! `webhook-signature` header value.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}` and each
//! signature is `v1,` followed by the base64 (standard alphabet, padded)
//! HMAC-SHA256 of it under the secret's key bytes. During a rotation the
//! header carries one signature per active secret, separated by spaces, so a
//! receiver that still holds the old secret and one that already holds the new
//! one both verify (the specification's "multiple signatures").

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Prefix of every signing secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Number of random bytes in a secret that TriggerIQ generates.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Shortest key the Standard Webhooks specification allows (and we accept on parse).
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest key the Standard Webhooks specification allows.
pub const MAX_SECRET_BYTES: usize = 64;

/// Header names of the Standard Webhooks specification.
pub const HEADER_ID: &str = "webhook-id";
/// Unix seconds at which the attempt was signed.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// A tenant's webhook signing secret.
///
/// Only [`SigningSecret::generate`] and [`SigningSecret::parse`] make one, so a
/// value always holds 24–64 key bytes and its canonical `whsec_` text.
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
}

/// Why a string is not a signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("signing secret must start with `{SECRET_PREFIX}`")]
    MissingPrefix,
    #[error("signing secret is not valid base64 after `{SECRET_PREFIX}`")]
    NotBase64,
    #[error("signing secret key must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, found {0}")]
    BadLength(usize),
}

impl SigningSecret {
    /// A fresh secret: `whsec_` + base64 of 32 bytes from the OS-seeded CSPRNG.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self::from_key(key)
    }

    /// Parses the `whsec_…` text form (as stored, or as given by a tenant).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        // Re-encode so that equal keys always have equal text.
        Ok(Self::from_key(key))
    }

    fn from_key(key: Vec<u8>) -> Self {
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        Self { text, key }
    }

    /// The `whsec_…` text: what is stored and what the tenant is shown once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// One `v1,<base64>` signature of `{msg_id}.{timestamp}.{body}`.
    pub fn signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; the length was checked on construction anyway.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 accepts a key of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_…redacted)")
    }
}

/// The `webhook-signature` header value: one signature per secret, in the
/// order given (current first), separated by single spaces.
///
/// Returns `None` when `secrets` is empty: an unsigned webhook must never be sent.
pub fn sign(
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[SigningSecret],
) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| secret.signature(msg_id, timestamp, body))
        .collect();
    Some(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vector published with the Standard Webhooks specification
    // (standard-webhooks/spec, also used by the reference libraries' tests).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signature_matches_the_specification_test_vector() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.signature(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn header_holds_one_signature_per_secret_current_first() {
        let old = SigningSecret::parse(SPEC_SECRET).unwrap();
        let new = SigningSecret::generate();
        let header = sign(
            SPEC_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY.as_bytes(),
            &[new.clone(), old],
        )
        .unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            new.signature(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes())
        );
        assert_eq!(parts[1], SPEC_SIGNATURE);
    }

    #[test]
    fn no_secrets_means_no_header() {
        assert_eq!(sign("id", 1, b"{}", &[]), None);
    }

    #[test]
    fn generated_secrets_are_distinct_and_round_trip() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(a.expose()).unwrap(), a);
        assert_eq!(STANDARD.decode(&a.expose()[6..]).unwrap().len(), 32);
    }

    #[test]
    fn parse_rejects_bad_secrets_with_the_reason() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        // 16 bytes: too short for the specification.
        let short = format!("whsec_{}", STANDARD.encode([7u8; 16]));
        assert_eq!(
            SigningSecret::parse(&short),
            Err(SecretError::BadLength(16))
        );
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(SigningSecret::parse(&long), Err(SecretError::BadLength(65)));
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
    }
}
