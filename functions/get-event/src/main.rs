//! `GET /v1/events/{id}`: wiring only; the handler is `triggeriq::api::events::get`.

use triggeriq::api::firings::ReadApi;
use triggeriq::api::{self, events};
use triggeriq::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = ReadApi {
        db: Database::from_env()?,
    };
    api::run(state, events::get).await
}
