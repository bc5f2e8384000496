//! deliver-webhooks, the deliveries queue's consumer: the stage is [`crate::pipeline::deliver`].

use aws_lambda_events::sqs::SqsMessage;

use super::{StageError, body};
use crate::pipeline::deliver::Deliverer;

/// Messages of one batch delivered at once: each mostly waits on a receiver.
pub const CONCURRENCY: usize = 10;

/// One deliveries-queue message.
pub async fn handle(deliverer: &Deliverer, message: SqsMessage) -> Result<(), StageError> {
    deliverer.process(body(&message)?).await
}
