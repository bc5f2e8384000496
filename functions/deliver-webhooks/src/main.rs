//! SQS deliveries queue: wiring only; the handler is
//! `triggeriq::consumers::deliver::Deliverer::handle`.

use triggeriq::aws::{AwsClients, AwsOptions};
use triggeriq::consumers::{self, deliver};
use triggeriq::pipeline::config::DeliverConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = DeliverConfig::from_env()?;
    let clients = AwsClients::load(&AwsOptions::from_env()).await;
    let deliverer = deliver::Deliverer::new(&clients, &config)?;
    consumers::run(deliverer, deliver::CONCURRENCY, deliver::Deliverer::handle).await
}
