//! `POST /v1/signing-secret/rotate`: wiring only; the handler is
//! `triggeriq::api::signing::rotate`.

use triggeriq::api::{self, signing};
use triggeriq::aws::{AwsClients, AwsOptions};
use triggeriq::config::env_required;
use triggeriq::dynamodb::{SigningSecretStore, Table};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table_name = env_required("TABLE_NAME")?;
    let clients = AwsClients::load(&AwsOptions::from_env()).await;
    let state = signing::SigningApi {
        secrets: SigningSecretStore::new(Table::new(clients.dynamodb, table_name)),
    };
    api::run(state, signing::rotate).await
}
