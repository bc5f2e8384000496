//! `POST /v1/signing-secret/rotate`: wiring only; the handler is
//! `triggeriq::api::signing::rotate`.

use triggeriq::api::{self, signing};
use triggeriq::aws::{AwsOptions, dynamodb_client, load_sdk_config};
use triggeriq::config::env_required;
use triggeriq::dynamodb::{SigningSecretStore, Table};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table_name = env_required("TABLE_NAME")?;
    // DynamoDB only: each further SDK client costs init time.
    let sdk = load_sdk_config(&AwsOptions::from_env()).await;
    let state = signing::SigningApi {
        secrets: SigningSecretStore::new(Table::new(dynamodb_client(&sdk), table_name)),
    };
    api::run(state, signing::rotate).await
}
