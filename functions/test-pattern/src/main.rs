//! `POST /v1/patterns/test`: wiring only; the handler is `triggeriq::api::patterns::test`.

use triggeriq::api::{self, patterns};
use triggeriq::config::ApiConfig;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = ApiConfig::from_env()?;
    let clients = Clients::from_env();
    let state = patterns::PatternApi::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, patterns::test).await
}
