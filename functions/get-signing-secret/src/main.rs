//! `GET /v1/signing-secret`: wiring only; the handler is
//! `triggeriq::api::signing::get`.

use triggeriq::api::{self, signing};
use triggeriq::config::SigningConfig;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = SigningConfig::from_env()?;
    let clients = Clients::from_env();
    let state = signing::SigningApi::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, signing::get).await
}
