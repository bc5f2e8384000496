//! The event pipeline's decisions, one module per stage: ingest → events queue → evaluate →
//! deliveries queue → deliver → delivery-results queue → record; and redeliver (a delivery
//! retried through the API). See `docs/pipeline.md` for the whole picture and
//! `docs/architecture.md` for the layers.
//!
//! A stage takes what its edge parsed (a request body, a queue message's text), calls the
//! adapters (Postgres, DynamoDB, SQS, S3) in the order its promises need, and returns a result
//! its edge turns into an HTTP answer or a batch-item failure. The edges ([`crate::api`],
//! [`crate::consumers`]) hold no decisions of their own.
//!
//! - [`messages`]: the versioned queue messages, for every producer and consumer.
//! - [`trigger_cache`]: a tenant's compiled triggers and the per-container cache.
//! - [`outbox`]: putting deliveries on their queue.
//! - [`throttle`]: the per-tenant request limits of the routes other than ingest.
//! - [`draft`]: a trigger drafted by a model from a sentence (`POST /v1/triggers/draft`).

pub mod messages;

#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod conditions;
#[cfg(all(feature = "aws", feature = "webhook-client"))]
pub mod deliver;
#[cfg(feature = "aws")]
pub mod draft;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod evaluate;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod fire;
#[cfg(feature = "aws")]
pub mod ingest;
#[cfg(feature = "aws")]
pub mod outbox;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod record;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod redeliver;
pub mod throttle;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod timers;
#[cfg(feature = "postgres")]
pub mod trigger_cache;

/// Why a stage could not finish one unit of work (one queue message).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// May succeed when the message comes back (a dependency failed or timed out).
    #[error("transient failure: {0:#}")]
    Transient(#[from] anyhow::Error),
    /// Can never succeed: the message is malformed, of an unknown version, or names
    /// something that does not exist.
    #[error("poison message: {0}")]
    Poison(String),
}

impl StageError {
    pub fn poison(reason: impl std::fmt::Display) -> Self {
        Self::Poison(reason.to_string())
    }
}

impl From<messages::UnreadableMessage> for StageError {
    fn from(e: messages::UnreadableMessage) -> Self {
        Self::poison(e)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for StageError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(e.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::dynamodb::DynamoError> for StageError {
    fn from(e: crate::dynamodb::DynamoError) -> Self {
        Self::Transient(e.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::dynamodb::SecretsError> for StageError {
    fn from(e: crate::dynamodb::SecretsError) -> Self {
        Self::Transient(e.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::sqs::SendError> for StageError {
    fn from(e: crate::sqs::SendError) -> Self {
        Self::Transient(e.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::s3::ClaimCheckError> for StageError {
    fn from(e: crate::s3::ClaimCheckError) -> Self {
        if e.is_transient() {
            Self::Transient(e.into())
        } else {
            Self::poison(e)
        }
    }
}
