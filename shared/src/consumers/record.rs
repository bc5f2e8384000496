//! record-deliveries: writes each attempt deliver-webhooks reports, and the delivery's new
//! status, to Postgres; a `disabled` decision (410 Gone, a refused target) also disables the
//! action in its trigger. Attempts therefore appear in the API a little after they happen:
//! the results queue's batching window (2 s) plus one batch.

use aws_lambda_events::sqs::SqsMessage;

use super::{MessageError, body};
use crate::pipeline::messages::DeliveryResultMessage;
use crate::postgres::Database;
use crate::postgres::deliveries::{self, Recorded};

/// Results of one batch recorded at once (the pool holds 2 connections).
pub const CONCURRENCY: usize = 2;

/// What record-deliveries needs, built once per container.
pub struct Recorder {
    pub db: Database,
}

impl Recorder {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The handler of one delivery-results message.
    pub async fn handle(&self, message: SqsMessage) -> Result<(), MessageError> {
        let text = body(&message)?;
        let result = DeliveryResultMessage::parse(text).map_err(MessageError::poison)?;
        let pool = self.db.pool().await?;
        let recorded = deliveries::record(pool, &result)
            .await
            .map_err(anyhow::Error::from)?;
        match recorded {
            Recorded::UnknownDelivery => tracing::warn!(
                tenant_id = %result.tenant_id,
                delivery_id = %result.delivery_id,
                "result for a delivery that does not exist; dropped"
            ),
            other => tracing::info!(
                tenant_id = %result.tenant_id,
                delivery_id = %result.delivery_id,
                attempt = result.attempt,
                decision = result.decision.as_str(),
                recorded = ?other,
                "delivery attempt recorded"
            ),
        }
        Ok(())
    }
}
