//! `triggeriq`: the TriggerIQ command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod pattern_cmd;

#[derive(Debug, Parser)]
#[command(name = "triggeriq", version, about = "TriggerIQ command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Test, validate and try event patterns.
    Pattern(pattern_cmd::PatternCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pattern(cmd) => pattern_cmd::run(cmd),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}
