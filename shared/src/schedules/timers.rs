//! evaluate-timers: fires the deadline conditions that have come ([`crate::pipeline::timers`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pipeline::StageError;
use crate::pipeline::timers::TimerRunner;

/// What one run answers (and logs).
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub due: usize,
    pub fired: usize,
    pub dropped: usize,
    pub enqueued: usize,
}

/// One scheduled run at `now`.
pub async fn handle(runner: &TimerRunner, now: DateTime<Utc>) -> Result<RunSummary, StageError> {
    let run = runner.run(now).await?;
    Ok(RunSummary {
        due: run.due,
        fired: run.fired,
        dropped: run.dropped,
        enqueued: run.enqueued,
    })
}
