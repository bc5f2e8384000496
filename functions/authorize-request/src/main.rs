//! The HTTP API's Lambda authorizer: wiring only; the logic is `triggeriq::authorizer`.

use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    triggeriq::authorizer::run(Database::from_env()?).await
}
