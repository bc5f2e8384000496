//! `GET /v1/triggers/{id}`: wiring only; the handler is `triggeriq::api::triggers::get`.

use triggeriq::api::{self, triggers};
use triggeriq::config::ApiConfig;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = ApiConfig::from_env()?;
    let clients = Clients::from_env();
    let state = triggers::TriggerApi::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, triggers::get).await
}
