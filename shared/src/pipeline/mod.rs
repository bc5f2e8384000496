//! The event pipeline: ingest → events queue → evaluate → deliveries queue → deliver →
//! delivery-results queue → record. See `docs/pipeline.md` for the whole picture.
//!
//! - [`messages`]: the versioned queue messages and the webhook body, for every producer and
//!   consumer.
//! - [`config`]: each pipeline function's settings from the environment.
//! - [`ingest`]: from a request body to events on the queue, with an outcome per event.
//! - [`triggers`]: a tenant's compiled triggers and the per-container cache.
//! - [`outbox`]: putting deliveries on their queue.
//!
//! The SQS handlers themselves are in [`crate::consumers`], the routes in [`crate::api`].

pub mod config;
pub mod messages;

#[cfg(feature = "aws")]
pub mod ingest;
#[cfg(feature = "aws")]
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod triggers;
