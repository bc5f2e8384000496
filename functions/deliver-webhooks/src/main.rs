//! SQS deliveries queue: wiring only; the handler is `triggeriq::consumers::deliver::handle`,
//! the stage `triggeriq::pipeline::deliver`.

use triggeriq::config::DeliverConfig;
use triggeriq::consumers::{self, deliver};
use triggeriq::pipeline::deliver::Deliverer;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = DeliverConfig::from_env()?;
    let state = Deliverer::new(config, &Clients::from_env())?;
    consumers::run(state, deliver::CONCURRENCY, deliver::handle).await
}
