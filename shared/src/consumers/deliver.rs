//! deliver-webhooks: one signed attempt per message, then the next step of the retry
//! schedule, and the outcome reported to the delivery-results queue.
//!
//! This function runs outside the VPC and never touches Postgres: everything it needs is in
//! the message (the webhook body in a claim-check envelope), the tenant's signing secrets are
//! in DynamoDB, and record-deliveries writes what happened. For each message:
//!
//! 1. `not_before` still ahead → re-send the same message with a delay (at most 15 minutes,
//!    see [`crate::webhook::retry`]) and stop; no attempt, no result.
//! 2. Attempt: `POST` the body with `webhook-id` (the delivery id, the same on every attempt),
//!    `webhook-timestamp` and `webhook-signature` (one signature per active secret), behind
//!    the SSRF guard, 15 s at most. A tenant without a secret yet gets one made now, so no
//!    webhook ever goes out unsigned; rotating shows the tenant a secret that verifies.
//! 3. Decide ([`RetryPolicy::next_step`]) and report the result *first*, then act: re-send
//!    the message for the next attempt, or park it in the deliveries DLQ when the schedule is
//!    exhausted. If the re-send fails, the message fails and comes back, and the attempt is
//!    made again: the receiver may see a webhook twice (it de-duplicates on `webhook-id`), but
//!    the schedule never forks into two chains, as it could if the re-send came first.

use aws_lambda_events::sqs::SqsMessage;
use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use super::{MessageError, body};
use crate::aws::AwsClients;
use crate::dynamodb::{SigningSecretStore, Table};
use crate::pipeline::config::DeliverConfig;
use crate::pipeline::messages::{Decision, DeliveryMessage, DeliveryResultMessage, VERSION};
use crate::s3::{ClaimCheck, ClaimCheckError};
use crate::sqs::{OutgoingMessage, SqsSender};
use crate::webhook::client::ClientBuildError;
use crate::webhook::{
    AddressPolicy, AttemptError, AttemptErrorKind, AttemptOutcome, RetryPolicy, Step, Wake,
    WebhookClient, WebhookClientConfig, WebhookRequest,
};

/// Messages of one batch delivered at once: each mostly waits on a receiver.
pub const CONCURRENCY: usize = 10;

/// What deliver-webhooks needs, built once per container.
pub struct Deliverer {
    claims: ClaimCheck,
    sqs: SqsSender,
    secrets: SigningSecretStore,
    client: WebhookClient,
    /// The retry schedule (tests shorten it).
    pub retry: RetryPolicy,
    deliveries_queue_url: String,
    results_queue_url: String,
    dead_letter_queue_url: String,
    allow_http: bool,
}

impl Deliverer {
    pub fn new(clients: &AwsClients, config: &DeliverConfig) -> Result<Self, ClientBuildError> {
        let client = WebhookClient::new(WebhookClientConfig {
            policy: if config.allow_private_targets {
                AddressPolicy::local_development()
            } else {
                AddressPolicy::strict()
            },
            timeout: config.timeout,
            ..WebhookClientConfig::default()
        })?;
        Ok(Self {
            claims: ClaimCheck::new(clients.s3.clone(), &config.bucket_name),
            sqs: SqsSender::new(clients.sqs.clone()),
            secrets: SigningSecretStore::new(Table::new(
                clients.dynamodb.clone(),
                &config.table_name,
            )),
            client,
            retry: config.retry.clone(),
            deliveries_queue_url: config.deliveries_queue_url.clone(),
            results_queue_url: config.results_queue_url.clone(),
            dead_letter_queue_url: config.dead_letter_queue_url.clone(),
            allow_http: config.allow_http,
        })
    }

    /// The handler of one deliveries-queue message.
    pub async fn handle(&self, message: SqsMessage) -> Result<(), MessageError> {
        let text = body(&message)?;
        let delivery = DeliveryMessage::parse(text).map_err(MessageError::poison)?;
        let now = Utc::now();
        if let Some(not_before) = delivery.not_before
            && let Wake::Defer { delay_seconds } = Wake::at(not_before, now)
        {
            self.sqs
                .send_one(
                    &self.deliveries_queue_url,
                    OutgoingMessage::new(delivery.delivery_id.to_string(), text)
                        .with_delay(delay_seconds),
                )
                .await
                .map_err(|e| MessageError::Transient(e.into()))?;
            tracing::debug!(delivery_id = %delivery.delivery_id, delay_seconds, "not due yet; waiting another hop");
            return Ok(());
        }

        let payload = self
            .claims
            .unwrap(delivery.body.get())
            .await
            .map_err(|e| match e {
                ClaimCheckError::S3 { .. } | ClaimCheckError::Mismatch { .. } => {
                    MessageError::Transient(e.into())
                }
                other => MessageError::poison(other),
            })?;
        let outcome = self.attempt(&delivery, payload).await?;
        let step = self.retry.next_step(delivery.attempt, &outcome, Utc::now());
        let decision = match &step {
            Step::Delivered => Decision::Delivered,
            Step::Retry { at, .. } => Decision::Retrying {
                next_attempt_at: *at,
            },
            Step::Disable { reason } => Decision::Disabled {
                reason: reason.clone(),
            },
            Step::GiveUp { reason } => Decision::Failed {
                reason: reason.clone(),
            },
        };
        tracing::info!(
            tenant_id = %delivery.tenant_id,
            delivery_id = %delivery.delivery_id,
            attempt = delivery.attempt,
            status = ?outcome.status,
            error = outcome.error.as_ref().map(|e| e.to_string()),
            decision = decision.as_str(),
            "webhook attempt"
        );

        let result = DeliveryResultMessage {
            v: VERSION,
            tenant_id: delivery.tenant_id,
            delivery_id: delivery.delivery_id,
            firing_id: delivery.firing_id,
            trigger_id: delivery.trigger_id,
            action_id: delivery.action_id,
            generation: delivery.generation,
            attempt: delivery.attempt,
            attempt_id: Uuid::now_v7(),
            outcome,
            decision,
        };
        let result_text = serde_json::to_string(&result).map_err(anyhow::Error::from)?;
        self.sqs
            .send_one(
                &self.results_queue_url,
                OutgoingMessage::new(delivery.delivery_id.to_string(), result_text),
            )
            .await
            .map_err(|e| MessageError::Transient(e.into()))?;

        match step {
            Step::Retry { attempt, at } => {
                let delay_seconds = match Wake::at(at, Utc::now()) {
                    Wake::Now => 0,
                    Wake::Defer { delay_seconds } => delay_seconds,
                };
                let next = DeliveryMessage {
                    attempt,
                    not_before: Some(at),
                    ..delivery
                };
                self.sqs
                    .send_one(
                        &self.deliveries_queue_url,
                        OutgoingMessage::new(next.delivery_id.to_string(), next.to_json())
                            .with_delay(delay_seconds),
                    )
                    .await
                    .map_err(|e| MessageError::Transient(e.into()))?;
            }
            Step::GiveUp { .. } => {
                self.sqs
                    .send_one(
                        &self.dead_letter_queue_url,
                        OutgoingMessage::new(delivery.delivery_id.to_string(), text),
                    )
                    .await
                    .map_err(|e| MessageError::Transient(e.into()))?;
            }
            Step::Delivered | Step::Disable { .. } => {}
        }
        Ok(())
    }

    /// Makes the attempt, or explains why none could be made.
    async fn attempt(
        &self,
        delivery: &DeliveryMessage,
        payload: String,
    ) -> Result<AttemptOutcome, MessageError> {
        let refused = |kind, message: &str| AttemptOutcome {
            started_at: Utc::now(),
            latency: std::time::Duration::ZERO,
            status: None,
            error: Some(AttemptError::new(kind, message)),
            response_snippet: None,
            retry_after: None,
            remote_addr: None,
        };
        if !self.allow_http && delivery.url.starts_with("http://") {
            return Ok(refused(
                AttemptErrorKind::InvalidTarget,
                "plain http webhooks are not allowed in this deployment; use https",
            ));
        }
        // A tenant that never rotated gets a first secret now: webhooks are never sent
        // unsigned, and the tenant's first rotation shows one that verifies (the one made
        // here keeps signing beside it for the overlap).
        let secrets = self
            .secrets
            .active(&delivery.tenant_id.to_string(), Utc::now())
            .await
            .map_err(|e| MessageError::Transient(e.into()))?;
        Ok(self
            .client
            .deliver(&WebhookRequest {
                url: delivery.url.clone(),
                msg_id: delivery.delivery_id.to_string(),
                body: Bytes::from(payload),
                secrets,
            })
            .await)
    }
}
