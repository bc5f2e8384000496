//! The HTTP API's Lambda authorizer: wiring only; the logic is `triggeriq::authorizer`.

use triggeriq::authorizer::{self, Authorizer};
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let state = Authorizer::new(&Clients::from_env())?;
    authorizer::run(state).await
}
