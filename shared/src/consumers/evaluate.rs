//! evaluate-events, the events queue's consumer: the stage is [`crate::pipeline::evaluate`].

use aws_lambda_events::sqs::SqsMessage;

use super::{StageError, body};
use crate::pipeline::evaluate::Evaluator;

/// Messages of one batch evaluated at once (the pool holds 2 connections; matching and
/// DynamoDB calls overlap with the other's queries).
pub const CONCURRENCY: usize = 4;

/// One events-queue message.
pub async fn handle(evaluator: &Evaluator, message: SqsMessage) -> Result<(), StageError> {
    evaluator.process(body(&message)?).await.map(drop)
}
