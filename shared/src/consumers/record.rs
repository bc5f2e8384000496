//! record-deliveries, the delivery-results queue's consumer: the stage is
//! [`crate::pipeline::record`].

use aws_lambda_events::sqs::SqsMessage;

use super::{StageError, body};
use crate::pipeline::record::Recorder;

/// Results of one batch recorded at once (the pool holds 2 connections).
pub const CONCURRENCY: usize = 2;

/// One delivery-results message.
pub async fn handle(recorder: &Recorder, message: SqsMessage) -> Result<(), StageError> {
    recorder.process(body(&message)?).await.map(drop)
}
