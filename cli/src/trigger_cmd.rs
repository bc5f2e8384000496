//! `triggeriq trigger test`: a trigger run over a file of events, offline, on a simulated clock
//! ([`triggeriq::condition::simulate`]): the same matcher and condition logic as the pipeline,
//! no stack, no side effects.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde_json::Value;
use triggeriq::condition::simulate::simulate;
use triggeriq::event::{Event, EventLimits, IngestBody};
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
    /// {"time", "group", "event_ids", "reason"}. Exits 0 whether or not anything fired, 2 on
    /// an invalid trigger or event (a problem+json document on standard error).
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
    },
}

/// Runs a `trigger` subcommand.
pub fn run(cmd: TriggerCmd) -> anyhow::Result<ExitCode> {
    let TriggerSub::Test {
        trigger,
        events,
        until,
    } = cmd.command;
    let spec = match read_trigger(&trigger)? {
        Ok(spec) => spec,
        Err(problem) => return Ok(refuse(&problem)),
    };
    let events = match read_events(&events)? {
        Ok(events) => events,
        Err(problem) => return Ok(refuse(&problem)),
    };
    let fired = simulate(
        &spec.pattern,
        &spec.condition,
        spec.cooldown.map(|c| c.as_duration()),
        &events,
        until,
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for firing in fired {
        serde_json::to_writer(&mut out, &firing)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
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

fn read_events(path: &Path) -> anyhow::Result<Result<Vec<Event>, Problem>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let limits = EventLimits::default();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", i + 1);
        let has_time = serde_json::from_str::<Value>(line)
            .ok()
            .is_some_and(|v| v.get("time").is_some_and(Value::is_string));
        if !has_time {
            errors.push(FieldError::new(
                format!("{at}: $.time"),
                "is required: a JSON object with its `time` (the simulated clock reads it)",
            ));
            continue;
        }
        match IngestBody::parse(line.as_bytes(), &limits, Utc::now()) {
            Ok(body) if !body.batch => {
                for item in body.items {
                    match item.parsed {
                        Ok(event) => events.push(event),
                        Err(rejected) => errors.extend(
                            rejected
                                .errors
                                .into_iter()
                                .map(|e| FieldError::new(format!("{at}: {}", e.path), e.message)),
                        ),
                    }
                }
            }
            Ok(_) => errors.push(FieldError::new(at, "must hold one event, not a batch")),
            Err(e) => errors.push(FieldError::new(at, format!("{e:?}"))),
        }
    }
    if errors.is_empty() {
        Ok(Ok(events))
    } else {
        Ok(Err(Problem::new(
            422,
            "invalid-events",
            "Some events are not valid",
        )
        .with_detail(path.display().to_string())
        .with_errors(errors)))
    }
}
