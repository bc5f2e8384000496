//! Tenants and their API keys: identifiers, key generation and hashing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

pub use crate::ids::TenantId;

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

/// What a key may do. Each route needs exactly one scope (`crate::api::routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `POST /v1/events`.
    Ingest,
    /// The `GET` routes, `POST /v1/patterns/test` and `POST /v1/triggers/test`.
    Read,
    /// Trigger writes, delivery retries, the signing secret.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a scope (ingest, read or admin)"))
    }
}

/// A set of scopes. Written as their names separated by spaces (`"ingest read"`), the form
/// of the authorizer's `scopes` context value and of OAuth's `scope` claim.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope: what a request whose context names none gets.
    pub const NONE: Scopes = Scopes(0);
    /// Every scope (keys made before scopes existed).
    pub const ALL: Scopes = Scopes(7);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
    pub fn with(self, scope: Scope) -> Self {
        Scopes(self.0 | scope.bit())
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The scopes in the set, in the order ingest, read, admin.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
    /// The names, for storing (`text[]`).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
    /// A list of names separated by spaces or commas; every name must be a scope.
    pub fn parse_list(raw: &str) -> Result<Self, String> {
        raw.split([' ', ','])
            .filter(|part| !part.is_empty())
            .try_fold(Scopes::NONE, |set, part| Ok(set.with(part.parse()?)))
    }
    /// A space-separated context value, leniently: names that are not scopes are ignored
    /// (never granted), so a claim carrying other OAuth scopes still works.
    pub fn from_context(raw: &str) -> Self {
        raw.split_ascii_whitespace()
            .filter_map(|part| part.parse::<Scope>().ok())
            .fold(Scopes::NONE, Scopes::with)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Scopes::NONE, Scopes::with)
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
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
    fn scope_lists_parse_strictly_and_context_values_leniently() {
        assert_eq!(
            Scopes::parse_list("read"),
            Ok(Scopes::NONE.with(Scope::Read))
        );
        assert_eq!(Scopes::parse_list("ingest,read admin"), Ok(Scopes::ALL));
        assert_eq!(
            Scopes::parse_list("read,read")
                .map(|s| s.to_string())
                .as_deref(),
            Ok("read")
        );
        assert!(
            Scopes::parse_list("read,write")
                .unwrap_err()
                .contains("\"write\"")
        );
        assert!(
            Scopes::parse_list("Admin").is_err(),
            "names are case-sensitive"
        );
        assert_eq!(Scopes::parse_list(""), Ok(Scopes::NONE));
        // Context: unknown names (other OAuth scopes) are dropped, never granted.
        assert_eq!(
            Scopes::from_context("openid admin  ingest"),
            Scopes::NONE.with(Scope::Admin).with(Scope::Ingest)
        );
        assert_eq!(
            Scopes::from_context("read,admin"),
            Scopes::NONE,
            "commas do not separate context scopes"
        );
        assert_eq!(Scopes::from_context(""), Scopes::NONE);
        assert_eq!(Scopes::ALL.to_string(), "ingest read admin");
        assert_eq!(Scopes::from_context(&Scopes::ALL.to_string()), Scopes::ALL);
    }

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
