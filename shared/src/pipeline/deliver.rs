//! Deliver: one signed attempt per message, and what happened reported to the
//! delivery-results queue, with the next attempt when the schedule says there is one.
//!
//! deliver-webhooks runs outside the VPC and never touches Postgres: everything it needs is in
//! the message (the webhook body in a claim-check envelope), the tenant's signing secrets are
//! in DynamoDB, and record-deliveries, in the VPC, writes what happened and owns the schedule.
//! For each message:
//!
//! 1. `not_before` still ahead (a message from before record-deliveries held the waits) →
//!    hand it to record-deliveries as a [`ScheduledRetry`]; no attempt.
//! 2. Attempt: `POST` the body with `webhook-id` (the delivery id, the same on every attempt),
//!    `webhook-timestamp` and `webhook-signature` (one signature per active secret), behind
//!    the SSRF guard, 15 s at most. The secrets are sealed with KMS and this function may
//!    only open them: it never makes one. A tenant without a secret (created before `tenant
//!    create` made the first one, and not yet given one by `triggeriq tenant seal-secrets` or
//!    `GET /v1/signing-secret`) fails the message as transient, so no webhook ever goes out
//!    unsigned and none is lost while the operator makes the secret.
//! 3. Decide ([`RetryPolicy::next_step`]) and report the result *first*, with the URL the
//!    attempt went to; then, when the schedule goes on, send the next attempt to the
//!    delivery-results queue as a [`ScheduledRetry`], delayed until it is due (at most 15
//!    minutes at a time). record-deliveries reads the action again when it is due and releases
//!    it to the deliveries queue with the action's current URL, or ends the delivery if the
//!    action was disabled or deleted meanwhile. If a send fails, the message fails and comes
//!    back, and the attempt is made again: the receiver may see a webhook twice (it
//!    de-duplicates on `webhook-id`), but record-deliveries releases each attempt once, so the
//!    schedule never forks into two chains.
//!
//! An exhausted schedule needs nothing more here: the report says `failed`, the delivery's
//! state is in Postgres, and retry-delivery can send it again. Nothing is parked in the
//! deliveries DLQ, which (through the redrive policy) holds only messages that crash this
//! consumer, and pages operators.

use bytes::Bytes;
use chrono::Utc;

use super::StageError;
use super::messages::{DeliveryMessage, DeliveryResultMessage, ScheduledRetry};
use crate::config::DeliverConfig;
use crate::delivery::{AttemptReport, Decision};
use crate::dynamodb::{SigningSecretStore, Table};
use crate::ids::AttemptId;
use crate::kms::Sealer;
use crate::s3::ClaimCheck;
use crate::sqs::{OutgoingMessage, SqsSender};
use crate::webhook::{
    AttemptOutcome, RetryPolicy, Step, Wake, WebhookClient, WebhookClientConfig, WebhookRequest,
};
use crate::wiring::{Clients, InitError};

/// What deliver-webhooks needs, built once per container.
pub struct Deliverer {
    claims: ClaimCheck,
    sqs: SqsSender,
    secrets: SigningSecretStore,
    client: WebhookClient,
    /// The retry schedule (tests shorten it).
    pub retry: RetryPolicy,
    results_queue_url: String,
}

impl Deliverer {
    /// SQS and DynamoDB are built now (every message needs them), S3 on first use (only large
    /// webhook bodies go through it).
    pub fn new(config: DeliverConfig, clients: &Clients) -> Result<Self, InitError> {
        let aws = clients.aws()?;
        let client = WebhookClient::new(WebhookClientConfig {
            targets: config.targets,
            timeout: config.timeout,
            ..WebhookClientConfig::default()
        })
        .map_err(|e| InitError::Client {
            what: "the webhook HTTP client",
            reason: e.to_string(),
        })?;
        Ok(Self {
            claims: ClaimCheck::new(aws.s3.clone(), &config.bucket_name),
            sqs: SqsSender::new(aws.sqs.clone().built()),
            // KMS on first use: most deliveries find their tenant's secrets already opened.
            secrets: SigningSecretStore::new(
                Table::new(aws.dynamodb.clone().built(), &config.table_name),
                Sealer::new(aws.kms.clone(), config.signing_key_id),
            ),
            client,
            retry: config.retry,
            results_queue_url: config.results_queue_url,
        })
    }

    /// One deliveries-queue message (see the module documentation for the steps).
    pub async fn process(&self, text: &str) -> Result<(), StageError> {
        let delivery = DeliveryMessage::parse(text)?;
        let key = delivery.key;
        let now = Utc::now();
        if let Some(not_before) = delivery.not_before
            && let Wake::Defer { delay_seconds } = Wake::at(not_before, now)
        {
            // record-deliveries holds the waits (and reads the action when it is due).
            self.sqs
                .send_one(
                    &self.results_queue_url,
                    OutgoingMessage::new(key.delivery_id.to_string(), ScheduledRetry::wrap(text))
                        .with_delay(delay_seconds),
                )
                .await?;
            tracing::debug!(delivery_id = %key.delivery_id, delay_seconds, "not due yet; handed back to record-deliveries");
            return Ok(());
        }

        let payload = self.claims.unwrap(delivery.body.get()).await?;
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
            delivery_id = %key.delivery_id,
            attempt = delivery.attempt,
            status = ?outcome.status,
            error = outcome.error.as_ref().map(|e| e.to_string()),
            decision = decision.as_str(),
            "webhook attempt"
        );

        let result = DeliveryResultMessage::new(AttemptReport {
            tenant_id: delivery.tenant_id,
            key,
            url: Some(delivery.url.clone()),
            attempt: delivery.attempt,
            attempt_id: AttemptId::new(),
            outcome,
            decision,
        });
        self.sqs
            .send_one(
                &self.results_queue_url,
                OutgoingMessage::new(key.delivery_id.to_string(), result.to_json()),
            )
            .await?;

        if let Step::Retry { attempt, at } = step {
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
                    &self.results_queue_url,
                    OutgoingMessage::new(
                        key.delivery_id.to_string(),
                        ScheduledRetry::to_json(&next),
                    )
                    .with_delay(delay_seconds),
                )
                .await?;
        }
        Ok(())
    }

    /// Makes the attempt (the client judges the target first: scheme, address, port).
    async fn attempt(
        &self,
        delivery: &DeliveryMessage,
        payload: String,
    ) -> Result<AttemptOutcome, StageError> {
        // No secret: the message comes back (transient) until one is made; never unsigned.
        let secrets = self.secrets.active(delivery.tenant_id, Utc::now()).await?;
        Ok(self
            .client
            .deliver(&WebhookRequest {
                url: delivery.url.clone(),
                msg_id: delivery.key.delivery_id.to_string(),
                body: Bytes::from(payload),
                secrets,
            })
            .await)
    }
}
