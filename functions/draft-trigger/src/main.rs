//! `POST /v1/triggers/draft`: wiring only; the handler is `triggeriq::api::drafts::draft`.

use triggeriq::api::{self, drafts};
use triggeriq::aws::{AwsOptions, bedrock_client, sdk_config};
use triggeriq::config::{ApiConfig, DraftConfig};
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = ApiConfig::from_env()?;
    let draft = DraftConfig::from_env()?;
    let clients = Clients::from_env();
    // Its own Bedrock client (one attempt, a model-sized timeout): the shared clients leave
    // Bedrock out so that the other functions do not link it.
    let bedrock = bedrock_client(&sdk_config(&AwsOptions::from_env()));
    let state = drafts::DraftApi::new(config, draft, &clients, bedrock)?;
    api::serve(env!("CARGO_PKG_NAME"), &clients, state, drafts::draft).await
}
