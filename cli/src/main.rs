//! `triggeriq`: operator and developer command line.

mod admin;
mod dev;

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
    Dev(dev::DevArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Tenant(cmd) => admin::tenant(cmd).await,
        Command::ApiKey(cmd) => admin::api_key(cmd).await,
        Command::Db(cmd) => admin::db(cmd).await,
        Command::Dev(args) => dev::run(args).await,
    }
}
