//! `GET /v1/firings/{id}`: wiring only; the handler is `triggeriq::api::firings::get`.

use triggeriq::api::{self, firings};
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = firings::ReadApi {
        db: Database::from_env()?,
    };
    api::run(state, firings::get).await
}
