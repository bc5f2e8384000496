//! `POST /v1/events`: wiring only; the handler is `triggeriq::api::ingest::ingest`.

use triggeriq::api::{self, ingest};
use triggeriq::aws::{AwsClients, AwsOptions};
use triggeriq::pipeline::config::IngestConfig;
use triggeriq::pipeline::ingest::Ingestor;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = IngestConfig::from_env()?;
    let clients = AwsClients::load(&AwsOptions::from_env()).await;
    let state = ingest::IngestApi {
        ingestor: Ingestor::new(&clients, &config),
    };
    api::run(state, ingest::ingest).await
}
