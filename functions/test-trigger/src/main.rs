//! `POST /v1/triggers/test`: wiring only; the handler is `triggeriq::api::trials::test`.

use triggeriq::api::{self, trials};
use triggeriq::config::ApiConfig;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = ApiConfig::from_env()?;
    let clients = Clients::from_env();
    let state = trials::TrialApi::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, trials::test).await
}
