//! EventBridge schedule (every minute): wiring only; the handler is
//! `triggeriq::schedules::timers::handle`, the stage `triggeriq::pipeline::timers`.

use triggeriq::config::EvaluateConfig;
use triggeriq::pipeline::timers::TimerRunner;
use triggeriq::schedules::{self, timers};
use triggeriq::wiring::{self, Clients};

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    let config = EvaluateConfig::from_env()?;
    let state = TimerRunner::new(config, &Clients::from_env())?;
    schedules::run(state, timers::handle).await
}
