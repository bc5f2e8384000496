//! `POST /v1/deliveries/{id}/retry`: wiring only; the handler is
//! `triggeriq::api::deliveries::retry`, the stage `triggeriq::pipeline::redeliver`.

use triggeriq::api::{self, deliveries};
use triggeriq::config::RetryDeliveryConfig;
use triggeriq::pipeline::redeliver::Redeliverer;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = RetryDeliveryConfig::from_env()?;
    let clients = Clients::from_env();
    let state = Redeliverer::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, deliveries::retry).await
}
