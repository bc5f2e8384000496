//! SQS delivery-results queue: wiring only; the handler is
//! `triggeriq::consumers::record::handle`, the stage `triggeriq::pipeline::record`.

use triggeriq::config::RecordConfig;
use triggeriq::consumers::{self, record};
use triggeriq::pipeline::record::Recorder;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = RecordConfig::from_env()?;
    let state = Recorder::new(config, &Clients::from_env())?;
    consumers::run(state, record::CONCURRENCY, record::handle).await
}
