//! `coldstart run`: measure every function's cold start against the hello worlds and print the
//! table. `coldstart sizes`: print the arm64 zip sizes against the 4 MB budget.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coldstart::harness::{self, Options, budget};

#[derive(Parser)]
#[command(about = "Cold-start harness for TriggerIQ's Lambda functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every function and the hello worlds, interleaved, and print the table.
    Run {
        /// Measured rounds (one warm-up round comes first).
        #[arg(long, default_value_t = 21)]
        rounds: usize,
        /// Only these functions (comma-separated); all of functions/ by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Give up on one run after this many seconds without an answer.
        #[arg(long, default_value_t = 20)]
        timeout_secs: u64,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Print each function's arm64 zip size (from `cargo lambda build --output-format zip`).
    Sizes {
        #[command(flatten)]
        dirs: Dirs,
    },
}

#[derive(clap::Args)]
struct Dirs {
    /// The repository root.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The cargo target directory (default: $CARGO_TARGET_DIR, else <repo>/target).
    #[arg(long, env = "CARGO_TARGET_DIR")]
    target_dir: Option<PathBuf>,
}

impl Dirs {
    fn target(&self) -> PathBuf {
        self.target_dir
            .clone()
            .unwrap_or_else(|| self.repo.join("target"))
    }
}

fn sizes(dirs: &Dirs) -> anyhow::Result<bool> {
    let lambda_dir = dirs.target().join("lambda");
    let mut all_built = true;
    println!("| function | zip MB (arm64) | bootstrap MB | budget (4 MB) |");
    println!("|---|---:|---:|---|");
    for name in harness::function_names(&dirs.repo)? {
        let zip = harness::zip_size(&lambda_dir, &name);
        let binary = std::fs::metadata(lambda_dir.join(&name).join("bootstrap"))
            .ok()
            .map(|m| m.len());
        let verdict = match zip {
            None => {
                all_built = false;
                "not built"
            }
            Some(b) if b > budget::ZIP_BYTES => "**over**",
            Some(_) => "ok",
        };
        let mb = |b: Option<u64>| b.map_or("—".to_owned(), |b| format!("{:.2}", b as f64 / 1e6));
        println!("| {name} | {} | {} | {verdict} |", mb(zip), mb(binary));
    }
    Ok(all_built)
}

async fn run(
    dirs: &Dirs,
    rounds: usize,
    only: Vec<String>,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let target = dirs.target();
    let options = Options {
        repo: dirs.repo.clone(),
        bin_dir: target.join("release"),
        lambda_dir: target.join("lambda"),
        work_dir: target.join("coldstart"),
        rounds: rounds.max(1),
        only,
        timeout,
    };
    let candidates = harness::candidates(&options)?;
    let samples = harness::run(&options, &candidates).await?;
    print!("{}", harness::render(&candidates, &samples, options.rounds));
    let all_answered = samples
        .values()
        .flatten()
        .all(|s| s.init.is_some() && s.outcome.is_some());
    Ok(all_answered)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sizes { dirs } => sizes(&dirs),
        Command::Run {
            rounds,
            only,
            timeout_secs,
            dirs,
        } => {
            // One thread: the stand-in must not compete with the bootstrap for more than it needs.
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(&dirs, rounds, only, Duration::from_secs(timeout_secs))),
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("coldstart: some functions were not built or did not answer (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("coldstart: {error:#}");
            ExitCode::FAILURE
        }
    }
}
