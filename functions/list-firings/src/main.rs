//! `GET /v1/firings`: wiring only; the handler is `triggeriq::api::firings::list`.

use triggeriq::api::{self, firings};
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let clients = Clients::from_env();
    let state = firings::ReadApi::new(&clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, firings::list).await
}
