//! SQS events queue: wiring only; the handler is
//! `triggeriq::consumers::evaluate::Evaluator::handle`.

use triggeriq::aws::{AwsClients, AwsOptions, load_sdk_config};
use triggeriq::consumers::{self, evaluate};
use triggeriq::pipeline::config::EvaluateConfig;
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = EvaluateConfig::from_env()?;
    // Each client on first use: an event that matches no trigger needs none of them.
    let clients = AwsClients::on_first_use(&load_sdk_config(&AwsOptions::from_env()).await);
    let evaluator = evaluate::Evaluator::new(Database::from_env()?, &clients, &config);
    consumers::run(
        evaluator,
        evaluate::CONCURRENCY,
        evaluate::Evaluator::handle,
    )
    .await
}
