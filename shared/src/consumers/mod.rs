//! The SQS edge: evaluate-events, deliver-webhooks, record-deliveries. Each handler takes one
//! message's body to its pipeline stage ([`crate::pipeline`]) and nothing more.
//!
//! [`process_batch`] runs the messages of a batch concurrently, each in its own tracing span
//! named by its message id, and answers with the ids of the failed messages only
//! (`ReportBatchItemFailures`, which every event source mapping in `template.yaml` sets). A
//! failed message comes back after the queue's visibility timeout; one that can never succeed
//! ([`StageError::Poison`]) is logged with its reason at every receive and reaches the
//! dead-letter queue through the redrive policy (`maxReceiveCount`).

#[cfg(all(feature = "aws", feature = "webhook-client"))]
pub mod deliver;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod evaluate;
#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod record;

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt as _;
use tracing::Instrument as _;

pub use crate::pipeline::StageError;

/// Processes every message of `event` with `handler`, at most `concurrency` at once, and
/// lists the failed ones.
pub async fn process_batch<'a, S, F, Fut>(
    state: &'a S,
    event: SqsEvent,
    concurrency: usize,
    handler: F,
) -> SqsBatchResponse
where
    S: ?Sized,
    F: Fn(&'a S, SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), StageError>> + 'a,
{
    // Futures collected first: a stream holding the closure would make the batch's future
    // `Send` only for one lifetime, which the Lambda runtime cannot use.
    let work: Vec<_> = event
        .records
        .into_iter()
        .map(|message| {
            let id = message.message_id.clone().unwrap_or_default();
            let receives = message
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default();
            let span = tracing::info_span!("message", message_id = %id, receive_count = %receives);
            let work = handler(state, message);
            async move { (id, work.await) }.instrument(span)
        })
        .collect();
    let results: Vec<(String, Result<(), StageError>)> = futures::stream::iter(work)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, result) in results {
        match result {
            Ok(()) => {}
            Err(StageError::Transient(e)) => {
                tracing::warn!(message_id = %id, error = %format!("{e:#}"), "message failed; it will come back");
                response.add_failure(id);
            }
            Err(StageError::Poison(reason)) => {
                tracing::error!(
                    message_id = %id,
                    %reason,
                    "message can never be processed; the redrive policy moves it to the dead-letter queue"
                );
                response.add_failure(id);
            }
        }
    }
    response
}

/// Serves one queue for the life of the container: `state` is built once (clients, pools,
/// caches) and lent to every invocation.
pub async fn run<S, F, Fut>(
    state: S,
    concurrency: usize,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    S: Sync + 'static,
    F: Fn(&'static S, SqsMessage) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<(), StageError>> + Send + 'static,
{
    let state: &'static S = Box::leak(Box::new(state));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            Ok::<_, std::convert::Infallible>(
                process_batch(state, event.payload, concurrency, handler).await,
            )
        },
    ))
    .await
}

/// The body of a message, or why there is none.
pub fn body(message: &SqsMessage) -> Result<&str, StageError> {
    message
        .body
        .as_deref()
        .ok_or_else(|| StageError::poison("the message has no body"))
}
