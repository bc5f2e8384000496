//! Outgoing webhooks: Standard Webhooks signing, the SSRF guard, the HTTP
//! client that makes one attempt, and the retry schedule between attempts.
//!
//! Everything here but [`client`] is pure (no network); the client needs the
//! `webhook-client` feature.

pub mod attempt;
#[cfg(feature = "webhook-client")]
pub mod client;
pub mod retry;
pub mod signing;
pub mod ssrf;

pub use attempt::{AttemptError, AttemptErrorKind, AttemptOutcome};
#[cfg(feature = "webhook-client")]
pub use client::{WebhookClient, WebhookClientConfig, WebhookRequest};
pub use retry::{RetryPolicy, Step, Wake};
pub use signing::{SigningSecret, sign};
pub use ssrf::{AddressPolicy, GuardedResolver, SsrfError, TargetPolicy};
