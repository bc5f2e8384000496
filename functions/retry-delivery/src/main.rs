//! `POST /v1/deliveries/{id}/retry`: wiring only; the handler is
//! `triggeriq::api::deliveries::retry`.

use triggeriq::api::{self, deliveries};
use triggeriq::aws::{AwsOptions, lazy, load_sdk_config, s3_client, sqs_client};
use triggeriq::pipeline::config::RetryDeliveryConfig;
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RetryDeliveryConfig::from_env()?;
    let sdk = load_sdk_config(&AwsOptions::from_env()).await;
    let state = deliveries::RetryApi::new(
        Database::from_env()?,
        sqs_client(&sdk),
        lazy(&sdk, s3_client),
        &config,
    );
    api::run(state, deliveries::retry).await
}
