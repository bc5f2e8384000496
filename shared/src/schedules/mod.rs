//! The EventBridge schedules' edge: each schedule function runs one pipeline call per
//! invocation; a failed run fails the invocation (EventBridge retries it, and the function's
//! error alarm sees it).
//!
//! - [`timers`]: evaluate-timers, every minute ([`crate::pipeline::timers`]).

pub mod timers;

use std::future::Future;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

/// Runs the Lambda loop of a schedule function: `handler` gets `state` and the scheduled time.
pub async fn run<S, F, Fut, T>(state: S, handler: F) -> Result<(), lambda_runtime::Error>
where
    S: Sync + 'static,
    F: Fn(&'static S, chrono::DateTime<chrono::Utc>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<T, crate::pipeline::StageError>> + Send + 'static,
    T: serde::Serialize,
{
    let state: &'static S = Box::leak(Box::new(state));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: lambda_runtime::LambdaEvent<EventBridgeEvent<Value>>| async move {
            // A run (or EventBridge's retry of one) works at its own now: everything due by
            // then, however late the run is.
            handler(state, chrono::Utc::now())
                .await
                .map_err(|e| lambda_runtime::Error::from(e.to_string()))
        },
    ))
    .await
}
