//! The identifiers of the domain, one type each, so that a firing id can never be passed where
//! a delivery id is expected.
//!
//! Server-made ids are UUIDv7 (they sort by creation time). An event's id is the client's own
//! string ([`EventId`]). Each id serialises as its bare value and, with the `postgres` feature,
//! is stored as its bare value too (`sqlx(transparent)`).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "postgres", derive(sqlx::Type), sqlx(transparent))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id in `text`, if it is one.
            pub fn parse(text: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(text).map(Self)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A tenant. Route handlers get it only from the authorizer context.
    TenantId
);
uuid_id!(
    /// A trigger.
    TriggerId
);
uuid_id!(
    /// One action of a trigger; stable across updates when the client sends it back.
    ActionId
);
uuid_id!(
    /// One firing: a trigger that fired on an event.
    FiringId
);
uuid_id!(
    /// One delivery of a firing to one action; also the webhook's `webhook-id`.
    DeliveryId
);
uuid_id!(
    /// One recorded delivery attempt (made by deliver-webhooks, so a result reported twice is
    /// recorded once).
    AttemptId
);

/// An event's id: the client's own string (validated at ingest: 1 to 256 characters, no
/// U+0000), or a UUIDv7 made for it when the client sent none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// An id made for an event that came without one.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    /// An id that was validated when its event was accepted (read back from a queue message
    /// or the database, or written by a test).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for EventId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Which run of a delivery an attempt belongs to: 1 for the first, one more for each retry
/// through the API. Results of an older generation change nothing. Stored as a Postgres
/// `integer` (at least 1), carried as a JSON number in queue messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Generation(u32);

impl Generation {
    pub const FIRST: Self = Self(1);

    /// The generation after this one.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A generation outside `1..=i32::MAX` (a corrupt row or message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("generation {0} is out of range (1 to 2147483647)")]
pub struct GenerationOutOfRange(pub i64);

impl TryFrom<i32> for Generation {
    type Error = GenerationOutOfRange;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v >= 1)
            .map(Self)
            .ok_or(GenerationOutOfRange(i64::from(value)))
    }
}

impl TryFrom<u32> for Generation {
    type Error = GenerationOutOfRange;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        (1..=i32::MAX as u32)
            .contains(&value)
            .then_some(Self(value))
            .ok_or(GenerationOutOfRange(i64::from(value)))
    }
}

impl From<Generation> for u32 {
    fn from(g: Generation) -> Self {
        g.0
    }
}

impl From<Generation> for i32 {
    fn from(g: Generation) -> Self {
        // Every constructor keeps the value within i32 (`next` saturates at u32::MAX only
        // after 2^31 retries of one delivery, which the API cannot reach in practice).
        i32::try_from(g.0).unwrap_or(i32::MAX)
    }
}

#[cfg(feature = "postgres")]
mod generation_sql {
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type};

    use super::Generation;

    impl Type<Postgres> for Generation {
        fn type_info() -> PgTypeInfo {
            <i32 as Type<Postgres>>::type_info()
        }
    }

    impl Encode<'_, Postgres> for Generation {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            <i32 as Encode<Postgres>>::encode(i32::from(*self), buf)
        }
    }

    impl Decode<'_, Postgres> for Generation {
        fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
            let raw = <i32 as Decode<Postgres>>::decode(value)?;
            Ok(Generation::try_from(raw)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_start_at_one_and_refuse_what_cannot_be_stored() {
        assert_eq!(Generation::FIRST.get(), 1);
        assert_eq!(Generation::FIRST.next().get(), 2);
        assert_eq!(Generation::try_from(3i32), Ok(Generation(3)));
        assert!(Generation::try_from(0i32).is_err());
        assert!(Generation::try_from(-1i32).is_err());
        assert!(Generation::try_from(0u32).is_err());
        assert!(Generation::try_from(u32::MAX).is_err());
        assert_eq!(i32::from(Generation(7)), 7);
        let json = serde_json::to_string(&Generation(4)).unwrap();
        assert_eq!(json, "4");
        assert!(serde_json::from_str::<Generation>("0").is_err());
    }

    #[test]
    fn ids_serialise_as_their_bare_values() {
        let id = FiringId::new();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        assert_eq!(FiringId::parse(&id.to_string()), Ok(id));
        let event = EventId::new("evt #1");
        assert_eq!(serde_json::to_string(&event).unwrap(), "\"evt #1\"");
        assert_eq!(&*event, "evt #1");
    }
}
