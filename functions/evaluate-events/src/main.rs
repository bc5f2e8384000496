//! SQS events queue: wiring only; the handler is `triggeriq::consumers::evaluate::handle`, the
//! stage `triggeriq::pipeline::evaluate`.

use triggeriq::config::EvaluateConfig;
use triggeriq::consumers::{self, evaluate};
use triggeriq::pipeline::evaluate::Evaluator;
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = EvaluateConfig::from_env()?;
    let state = Evaluator::new(config, &Clients::from_env())?;
    consumers::run(state, evaluate::CONCURRENCY, evaluate::handle).await
}
