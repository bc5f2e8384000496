//! Tenants and their API keys: identifiers, key generation and hashing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A tenant's identifier. Route handlers get it only from the authorizer context.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl TenantId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Every key starts with this, so leaked keys are easy to recognise (secret scanners).
pub const API_KEY_PREFIX: &str = "tiq_";
/// Random bytes per key: 256 bits, base64url-encoded to 43 characters.
const API_KEY_RANDOM_BYTES: usize = 32;
/// Characters of the key kept in clear for listings (`tiq_` plus 6 random characters).
const DISPLAY_PREFIX_CHARS: usize = 10;

/// A freshly generated API key. The plain text exists only here and is shown once.
pub struct NewApiKey {
    pub plain: String,
    pub hash: [u8; 32],
    pub display_prefix: String,
}

impl NewApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; API_KEY_RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let plain = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        Self {
            hash: hash_api_key(&plain),
            display_prefix: plain[..DISPLAY_PREFIX_CHARS].to_owned(),
            plain,
        }
    }
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of the key. Keys are long random strings, so a fast hash resists guessing as well
/// as a slow one would, and keeps the authorizer to one indexed lookup.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `candidate` has the shape of one of our keys (checked before touching the database).
pub fn looks_like_api_key(candidate: &str) -> bool {
    candidate.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_differ() {
        let a = NewApiKey::generate();
        let b = NewApiKey::generate();
        assert!(looks_like_api_key(&a.plain), "{}", a.plain);
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.hash, hash_api_key(&a.plain));
        assert!(a.plain.starts_with(&a.display_prefix));
    }

    #[test]
    fn malformed_keys_are_recognised_without_a_lookup() {
        assert!(!looks_like_api_key("tiq_short"));
        assert!(!looks_like_api_key(
            "sk_live_0000000000000000000000000000000000000000000"
        ));
        assert!(!looks_like_api_key(&format!("tiq_{}", "!".repeat(43))));
    }
}
