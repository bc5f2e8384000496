//! The `lambda_runtime` hello world the cold-start harness compares every SQS/authorizer function
//! with: what `cargo lambda new` generates (tracing subscriber, echo handler), built by the same
//! release profile as the functions.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
