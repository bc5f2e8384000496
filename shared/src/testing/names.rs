//! Fixed ids from names, so that a test's tenants, triggers and events read as names: the
//! same name gives the same id in every test (each test has a table of its own).

use sha2::Digest as _;

use crate::ids::{EventId, TenantId, TriggerId};

/// A fixed id per (kind, name).
pub fn id_of(kind: &str, name: &str) -> uuid::Uuid {
    let digest = sha2::Sha256::digest(format!("{kind}/{name}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(bytes)
}

/// The tenant called `name`.
pub fn tenant(name: &str) -> TenantId {
    TenantId(id_of("tenant", name))
}

/// The trigger called `name`.
pub fn trigger(name: &str) -> TriggerId {
    TriggerId(id_of("trigger", name))
}

/// The event whose id is `id`.
pub fn ev(id: &str) -> EventId {
    EventId::new(id)
}
