//! `POST /v1/triggers`: wiring only; the handler is `triggeriq::api::triggers::create`.

use triggeriq::api::{self, triggers};
use triggeriq::config::ApiConfig;
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = triggers::TriggerApi::new(Database::from_env()?, ApiConfig::from_env()?);
    api::run(state, triggers::create).await
}
