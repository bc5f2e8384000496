//! `POST /v1/patterns/test`: wiring only; the handler is `triggeriq::api::patterns::test`.

use triggeriq::api::{self, patterns};
use triggeriq::config::ApiConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = ApiConfig::from_env()?;
    let state = patterns::PatternApi {
        max_request_bytes: config.max_request_bytes,
        limits: config.triggers.pattern,
    };
    api::run(state, patterns::test).await
}
