//! `POST /v1/events`: wiring only; the handler is `triggeriq::api::ingest::ingest`, the stage
//! `triggeriq::pipeline::ingest`.

use triggeriq::api::{self, ingest};
use triggeriq::config::IngestConfig;
use triggeriq::pipeline::ingest::Ingestor;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = IngestConfig::from_env()?;
    let clients = Clients::from_env();
    let state = Ingestor::new(config, &clients)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, ingest::ingest).await
}
