//! The per-tenant request limits of every route but ingest (which counts events, see
//! [`super::ingest`]): each class of routes has its own token bucket per tenant
//! ([`RateLimiter::acquire_in`]), a request costs one token, and a tenant over its limit is
//! answered 429 with `Retry-After`. Separate buckets mean that a tenant polling its firings
//! cannot use up the tokens of its trigger writes, and neither touches its event bucket;
//! and buckets are per tenant, so one tenant's traffic never limits another's.
//!
//! The check fails closed: when DynamoDB does not answer within [`CHECK_BUDGET`], the request
//! is answered 503 (`Retry-After: 1`) rather than served without a limit.

#[cfg(feature = "aws")]
pub use checked::*;

/// A class of routes sharing one bucket per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `POST /v1/events`: limited per event by ingest itself, not here.
    Ingest,
    /// The `GET` routes and `POST /v1/patterns/test`.
    Reads,
    /// Trigger writes, delivery retries, the signing-secret routes.
    Writes,
}

#[cfg(feature = "aws")]
mod checked {
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::RouteClass;
    use crate::config::{RouteRate, ThrottleConfig};
    use crate::dynamodb::{RateDecision, RateLimit, RateLimiter, Table};
    use crate::tenant::TenantId;
    use crate::wiring::{Clients, InitError};

    /// How long the bucket may take to answer before the request is refused as unavailable.
    pub const CHECK_BUDGET: Duration = Duration::from_secs(2);

    /// Why a request is not admitted.
    #[derive(Debug, thiserror::Error)]
    pub enum Throttled {
        #[error("over the limit for {retry_after_seconds} s")]
        Limited { retry_after_seconds: u64 },
        #[error("the rate limit could not be checked")]
        Unavailable(#[source] anyhow::Error),
    }

    /// The buckets of the routes, built once per container.
    #[derive(Debug, Clone)]
    pub struct Throttle {
        limiter: RateLimiter,
        reads: RateLimit,
        writes: RateLimit,
    }

    fn limit(rate: RouteRate) -> RateLimit {
        RateLimit {
            capacity: rate.burst,
            per_second: rate.per_second,
        }
    }

    impl Throttle {
        /// DynamoDB is built now: every request needs it.
        pub fn new(config: ThrottleConfig, clients: &Clients) -> Result<Self, InitError> {
            let dynamodb = clients.aws()?.dynamodb.clone().built();
            Ok(Self::with_table(
                Table::new(dynamodb, config.table_name.as_str()),
                &config,
            ))
        }

        /// The buckets in `table` with `config`'s limits (its table name unused).
        pub fn with_table(table: Table, config: &ThrottleConfig) -> Self {
            Self {
                limiter: RateLimiter::new(table),
                reads: limit(config.reads),
                writes: limit(config.writes),
            }
        }

        /// Takes one token from `tenant`'s bucket for `class`.
        pub async fn admit(
            &self,
            tenant: TenantId,
            class: RouteClass,
            now: DateTime<Utc>,
        ) -> Result<(), Throttled> {
            let (bucket, limit) = match class {
                RouteClass::Ingest => return Ok(()),
                RouteClass::Reads => ("reads", self.reads),
                RouteClass::Writes => ("writes", self.writes),
            };
            let check = self.limiter.acquire_in(tenant, bucket, limit, 1, now);
            match tokio::time::timeout(CHECK_BUDGET, check).await {
                Ok(Ok(RateDecision::Allowed)) => Ok(()),
                Ok(Ok(limited @ RateDecision::Limited { .. })) => Err(Throttled::Limited {
                    retry_after_seconds: limited.retry_after_seconds().unwrap_or(1),
                }),
                Ok(Err(e)) => Err(Throttled::Unavailable(e.into())),
                Err(_) => Err(Throttled::Unavailable(anyhow::anyhow!(
                    "the rate limit did not answer within {CHECK_BUDGET:?}"
                ))),
            }
        }
    }
}
