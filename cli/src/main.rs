//! `triggeriq`: operator and developer command line.

mod admin;
mod pattern_cmd;
mod trigger_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "triggeriq",
    version,
    about = "TriggerIQ operator and developer tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Test, validate and try event patterns.
    Pattern(pattern_cmd::PatternCmd),
    /// Try a trigger (pattern, condition, cooldown) over a file of events, offline.
    Trigger(trigger_cmd::TriggerCmd),
    /// Manage tenants (talks to Postgres directly; needs DATABASE_URL).
    #[command(subcommand)]
    Tenant(admin::TenantCmd),
    /// Manage API keys (talks to Postgres directly; needs DATABASE_URL).
    #[command(subcommand, name = "api-key")]
    ApiKey(admin::ApiKeyCmd),
    /// Database maintenance.
    #[command(subcommand)]
    Db(admin::DbCmd),
    /// Run the whole stack locally from template.yaml (what `make dev` starts).
    Dev(Box<triggeriq_local::DevArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pattern(cmd) => pattern_cmd::run(cmd),
        Command::Trigger(cmd) => trigger_cmd::run(cmd),
        Command::Tenant(cmd) => admin::tenant(cmd).await.map(|()| ExitCode::SUCCESS),
        Command::ApiKey(cmd) => admin::api_key(cmd).await.map(|()| ExitCode::SUCCESS),
        Command::Db(cmd) => admin::db(cmd).await.map(|()| ExitCode::SUCCESS),
        Command::Dev(args) => triggeriq_local::run(*args)
            .await
            .map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}
