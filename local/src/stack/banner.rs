//! What `triggeriq dev` says once everything is up: the banner with the URLs, the demo key
//! and two curl lines to try, and, for scripts, the same as JSON in the ready file.

use std::net::SocketAddr;

use anyhow::Context as _;

use super::DevArgs;
use crate::demo;

/// Where the stack answers.
pub(super) struct Addresses {
    pub api: String,
    pub receiver: String,
    pub bedrock: String,
    pub watch: SocketAddr,
}

/// Writes the ready file `--ready-file` names (URLs, ports, this process), if any.
pub(super) fn write_ready_file(args: &DevArgs, at: &Addresses) -> anyhow::Result<()> {
    let Some(path) = &args.ready_file else {
        return Ok(());
    };
    let summary = serde_json::json!({
        "api": at.api, "receiver": at.receiver, "bedrock": at.bedrock,
        "watch": format!("http://{}", at.watch), "aws_endpoint": args.aws_endpoint,
        "env_file": args.env_file, "pid": std::process::id(),
    });
    std::fs::write(path, summary.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// The banner: where everything is and, with `--demo`, what to try first.
pub(super) fn print(args: &DevArgs, at: &Addresses) {
    let Addresses {
        api,
        receiver,
        bedrock,
        watch,
    } = at;
    let key = demo::API_KEY;
    let hook = format!("{receiver}/hooks/{}", demo::TENANT);
    println!();
    println!("TriggerIQ is running locally.");
    println!();
    println!("  API            {api}");
    if args.demo {
        println!("  demo API key   {key}   (tenant {})", demo::TENANT);
    }
    if args.receiver_port != 0 {
        println!("  webhooks       {hook}   (demo receiver, verifies signatures)");
    }
    println!(
        "  functions      http://{watch}   (cargo lambda watch; environment in {})",
        args.env_file.display()
    );
    println!(
        "  AWS emulator   {}   (moto: SQS, DynamoDB, S3)",
        args.aws_endpoint
    );
    println!(
        "  Bedrock        {bedrock}{}",
        if args.bedrock_endpoint.is_none() {
            "   (stand-in)"
        } else {
            ""
        }
    );
    println!();
    if args.demo {
        println!("Create a trigger that posts to the demo receiver:");
        println!();
        println!(
            "  curl -s {api}/v1/triggers -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"name\":\"Big order\",\"pattern\":{{\"type\":[\"order.placed\"],\"data\":{{\"total\":[{{\"numeric\":[\">\",100]}}]}}}},\"actions\":[{{\"type\":\"webhook\",\"url\":\"{hook}\"}}]}}'"
        );
        println!();
        println!("Send an event that matches it (watch the webhook arrive below):");
        println!();
        println!(
            "  curl -s {api}/v1/events -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"type\":\"order.placed\",\"source\":\"shop\",\"data\":{{\"total\":250}}}}'"
        );
        println!();
    }
    println!("Ctrl-C stops everything `make dev` started.");
    println!();
}
