//! `GET /v1/events/{id}`: wiring only; the handler is `triggeriq::api::events::get`.

use triggeriq::api::{self, events, firings};
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let clients = Clients::from_env();
    let state = firings::ReadApi::new(&clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, events::get).await
}
