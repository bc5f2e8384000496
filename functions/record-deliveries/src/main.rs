//! SQS delivery-results queue: wiring only; the handler is
//! `triggeriq::consumers::record::Recorder::handle`.

use triggeriq::consumers::{self, record};
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let recorder = record::Recorder::new(Database::from_env()?);
    consumers::run(recorder, record::CONCURRENCY, record::Recorder::handle).await
}
