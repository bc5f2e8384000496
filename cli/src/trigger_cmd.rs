//! `triggeriq trigger test`: a trigger run over a file of events, offline, on a simulated clock
//! ([`triggeriq::condition::simulate`]): the same matcher and condition logic as the pipeline,
//! no stack, no side effects. The events are read as `POST /v1/triggers/test` reads them
//! ([`triggeriq::condition::trial`]); the trigger is held to relaxed limits (any webhook
//! target, timers of a second), the run to a far larger firing cap.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use triggeriq::condition::simulate::SimulateLimits;
use triggeriq::condition::trial::{self, Trial};
use triggeriq::event::{Event, EventLimits};
use triggeriq::problem::{FieldError, Problem};
use triggeriq::trigger::{BodyKind, ConditionLimits, TriggerBody, TriggerLimits};
use triggeriq::webhook::ssrf::TargetPolicy;

/// Try a trigger before trusting it.
#[derive(Debug, clap::Args)]
pub struct TriggerCmd {
    #[command(subcommand)]
    command: TriggerSub,
}

#[derive(Debug, clap::Subcommand)]
enum TriggerSub {
    /// Run a trigger over events, offline: prints one JSON line per firing, in firing order:
    /// {"time", "group", "event_ids", "reason"}. Exits 0 whether or not anything fired (also
    /// when it stops at --max-firings, with a warning on standard error), 2 on an invalid
    /// trigger or event (a problem+json document on standard error).
    Test {
        /// A trigger body, as POST /v1/triggers takes it (JSON).
        #[arg(long)]
        trigger: PathBuf,
        /// One event per line (JSON); each needs `time`, the event's time. Lines are taken in
        /// file order, as arrival order, which may differ from the times.
        #[arg(long)]
        events: PathBuf,
        /// How long the clock runs past the last event, for deadlines (absence, debounce).
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        until: Duration,
        /// Stop after this many firings, with a warning on standard error: a long --until
        /// over a short timer would otherwise fire without end. Far beyond what a file asks
        /// for on purpose (POST /v1/triggers/test stops at 1,000).
        #[arg(long, default_value_t = 100_000)]
        max_firings: usize,
    },
}

/// Runs a `trigger` subcommand.
pub fn run(cmd: TriggerCmd) -> anyhow::Result<ExitCode> {
    let TriggerSub::Test {
        trigger,
        events,
        until,
        max_firings,
    } = cmd.command;
    let spec = match read_trigger(&trigger)? {
        Ok(spec) => spec,
        Err(problem) => return Ok(refuse(&problem)),
    };
    let events = match read_events(&events)? {
        Ok(events) => events,
        Err(problem) => return Ok(refuse(&problem)),
    };
    let trial = Trial {
        spec,
        events,
        until,
    };
    // No allowance for matching: the work is the operator's own, on their machine.
    let limits = SimulateLimits {
        max_firings,
        max_match_steps: u64::MAX,
    };
    let ran = match trial.run(limits) {
        Ok(ran) => ran,
        // Unreachable with an allowance of u64::MAX steps; answered as the route would.
        Err(e) => {
            return Ok(refuse(
                &Problem::new(422, "invalid-trigger", "The trigger is not valid")
                    .with_errors(vec![FieldError::new("$.pattern", e.to_string())]),
            ));
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for firing in &ran.firings {
        serde_json::to_writer(&mut out, firing)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if ran.truncated {
        eprintln!(
            "warning: stopped after {} firings (--max-firings); later events and deadlines \
             were not run",
            ran.firings.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn refuse(problem: &Problem) -> ExitCode {
    eprintln!(
        "{}",
        serde_json::to_string_pretty(problem).unwrap_or_else(|_| problem.title.clone())
    );
    ExitCode::from(2)
}

fn read_trigger(path: &Path) -> anyhow::Result<Result<triggeriq::trigger::TriggerSpec, Problem>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let body: Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(e) => {
            return Ok(Err(Problem::new(
                422,
                "invalid-trigger",
                "The trigger is not valid JSON",
            )
            .with_detail(format!("{}: {e}", path.display()))));
        }
    };
    // Offline: any webhook target is fine (nothing is sent), and deadlines may be seconds.
    let limits = TriggerLimits {
        webhook_targets: TargetPolicy::local_development(),
        condition: ConditionLimits {
            min_timer: Duration::from_secs(1),
            ..ConditionLimits::default()
        },
        ..TriggerLimits::default()
    };
    Ok(TriggerBody::parse(&body, BodyKind::Create, &limits)
        .map(|b| b.spec)
        .map_err(|errors| {
            Problem::new(422, "invalid-trigger", "The trigger is not valid")
                .with_detail(path.display().to_string())
                .with_errors(errors)
        }))
}

/// The events file: one event per line (blank lines skipped), each read as the route reads
/// the elements of `events` ([`triggeriq::condition::trial::read_events`]), its problems
/// named by line.
fn read_events(path: &Path) -> anyhow::Result<Result<Vec<Event>, Problem>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (format!("line {}: $", i + 1), line));
    Ok(
        trial::read_events(lines, &EventLimits::default()).map_err(|errors| {
            Problem::new(422, "invalid-events", "Some events are not valid")
                .with_detail(path.display().to_string())
                .with_errors(errors)
        }),
    )
}
