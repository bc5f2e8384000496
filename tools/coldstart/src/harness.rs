//! The cold-start comparison: finds the functions and baselines, runs them interleaved round by
//! round, and prints the table with the budget verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::body::Bytes;

use crate::env::{Template, lambda_environment};
use crate::measure::{Launch, Sample, cold_start, median_p90};
use crate::runtime_api::{RuntimeApi, Trap};

/// The `lambda_runtime` hello world's binary name (a bin of this crate).
pub const HELLO_RUNTIME: &str = "hello-runtime";
/// The `lambda_http` hello world's binary name (a bin of this crate).
pub const HELLO_HTTP: &str = "hello-http";

/// Budgets from issue 6. Sizes are decimal megabytes.
pub mod budget {
    /// Init above the matching hello world, measured locally (1.5× a hello-world Lambda's init).
    pub const INIT_ABOVE_HELLO_MS: f64 = 7.0;
    /// Peak RSS after the first invocation.
    pub const PEAK_RSS_BYTES: u64 = 24_000_000;
    /// The arm64 deployment zip.
    pub const ZIP_BYTES: u64 = 4_000_000;
}

/// Where to find things.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository root (holds `functions/`, `events/`, `template.yaml`).
    pub repo: PathBuf,
    /// Release binaries for this machine: the functions' and the hello worlds'.
    pub bin_dir: PathBuf,
    /// `cargo lambda build` output (`<fn>/bootstrap.zip`), for the zip sizes.
    pub lambda_dir: PathBuf,
    /// Logs and the empty HOME of the bootstraps.
    pub work_dir: PathBuf,
    /// Measured rounds (after one warm-up round that is discarded).
    pub rounds: usize,
    /// Only these functions (all of `functions/` when empty).
    pub only: Vec<String>,
    /// Give up on a run after this long without an answer.
    pub timeout: Duration,
}

/// One thing to measure.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Function (crate) name, or a hello world's.
    pub name: String,
    /// The baseline it is compared with; `None` for the baselines themselves.
    pub baseline: Option<&'static str>,
    /// The built bootstrap.
    pub program: PathBuf,
    /// The first invocation's event.
    pub event: Bytes,
    /// Size of `<lambda_dir>/<name>/bootstrap.zip`, when built.
    pub zip_bytes: Option<u64>,
}

/// The function crates under `functions/`, sorted.
pub fn function_names(repo: &Path) -> anyhow::Result<Vec<String>> {
    let dir = repo.join("functions");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("Cargo.toml").is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Size of the arm64 zip `cargo lambda build --output-format zip` wrote for `name`.
pub fn zip_size(lambda_dir: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(lambda_dir.join(name).join("bootstrap.zip"))
        .ok()
        .map(|m| m.len())
}

/// The baselines and the functions to measure; fails naming every missing binary.
pub fn candidates(options: &Options) -> anyhow::Result<Vec<Candidate>> {
    let mut list = vec![
        Candidate {
            name: HELLO_RUNTIME.to_owned(),
            baseline: None,
            program: options.bin_dir.join(HELLO_RUNTIME),
            event: Bytes::from_static(include_bytes!("../events/hello-runtime.json")),
            zip_bytes: zip_size(&options.lambda_dir, HELLO_RUNTIME),
        },
        Candidate {
            name: HELLO_HTTP.to_owned(),
            baseline: None,
            program: options.bin_dir.join(HELLO_HTTP),
            event: Bytes::from_static(include_bytes!("../events/hello-http.json")),
            zip_bytes: zip_size(&options.lambda_dir, HELLO_HTTP),
        },
    ];
    let names = function_names(&options.repo)?;
    for wanted in &options.only {
        if !names.contains(wanted) {
            bail!("--only {wanted}: there is no functions/{wanted}");
        }
    }
    for name in names {
        if !options.only.is_empty() && !options.only.contains(&name) {
            continue;
        }
        let manifest_path = options
            .repo
            .join("functions")
            .join(&name)
            .join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        // API routes run lambda_http's adapter; everything else is a plain lambda_runtime loop.
        // A route's main names it through `api::serve` (which calls lambda_http), not in its
        // manifest.
        let main_path = options
            .repo
            .join("functions")
            .join(&name)
            .join("src/main.rs");
        let main = std::fs::read_to_string(&main_path)
            .with_context(|| format!("reading {}", main_path.display()))?;
        let baseline = if manifest.contains("lambda_http") || main.contains("api::serve(") {
            HELLO_HTTP
        } else {
            HELLO_RUNTIME
        };
        let event_path = options.repo.join("events").join(format!("{name}.json"));
        let event = std::fs::read(&event_path).with_context(|| {
            format!(
                "reading {} (the sample event for the first invocation)",
                event_path.display()
            )
        })?;
        list.push(Candidate {
            program: options.bin_dir.join(&name),
            zip_bytes: zip_size(&options.lambda_dir, &name),
            name,
            baseline: Some(baseline),
            event: Bytes::from(event),
        });
    }
    let missing: Vec<String> = list
        .iter()
        .filter(|c| !c.program.is_file())
        .map(|c| c.program.display().to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing release binaries (build them with `make coldstart`): {}",
            missing.join(", ")
        );
    }
    Ok(list)
}

/// Every sample of every candidate, in round order.
pub type Samples = BTreeMap<String, Vec<Sample>>;

/// Runs one warm-up round and `options.rounds` measured rounds, each candidate once per round in
/// the same order, so that drift on the machine hits every candidate alike.
pub async fn run(options: &Options, candidates: &[Candidate]) -> anyhow::Result<Samples> {
    let api = RuntimeApi::start().await?;
    let trap = Trap::start().await?;
    let template_path = options.repo.join("template.yaml");
    let template = if template_path.is_file() {
        Some(Template::load(&template_path)?)
    } else {
        None
    };
    let logs = options.work_dir.join("logs");
    let home = options.work_dir.join("home");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;

    let launches: Vec<Launch> = candidates
        .iter()
        .map(|c| {
            let declared = template
                .as_ref()
                .and_then(|t| t.function(&c.name, trap.port()));
            Launch {
                name: c.name.clone(),
                program: c.program.clone(),
                env: lambda_environment(
                    &c.name,
                    &api.address(),
                    trap.port(),
                    declared.as_ref(),
                    options.bin_dir.as_path(),
                    &home,
                ),
                event: c.event.clone(),
                log: logs.join(format!("{}.log", c.name)),
            }
        })
        .collect();

    let mut samples = Samples::new();
    let mut run_id = 0;
    for round in 0..=options.rounds {
        if round == 0 {
            eprintln!("coldstart: warm-up round");
        } else {
            eprintln!("coldstart: round {round}/{}", options.rounds);
        }
        for launch in &launches {
            run_id += 1;
            let sample = cold_start(&api, &trap, launch, run_id, options.timeout).await?;
            if round > 0 {
                samples.entry(launch.name.clone()).or_default().push(sample);
            }
        }
    }
    Ok(samples)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const MIB: f64 = 1024.0 * 1024.0;

/// Summary figures of one candidate.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Median and p90 of exec → first `next`, ms.
    pub init_ms: Option<(f64, f64)>,
    /// Median and p90 of first `next` → answered, ms.
    pub invoke_ms: Option<(f64, f64)>,
    /// Median peak RSS, bytes.
    pub peak_rss: Option<f64>,
    /// Runs that never asked for work or never answered.
    pub failed_runs: usize,
    /// The first invocation's outcomes and how often each came.
    pub outcomes: BTreeMap<String, usize>,
    /// Runs with a network call during init (trap hit or a foreign socket at the first `next`).
    pub runs_with_init_network: usize,
    /// Foreign sockets seen at a first `next`, and trap hits during init, for the notes.
    pub init_network_detail: Vec<String>,
}

/// Summarises a candidate's samples.
pub fn summarise(samples: &[Sample]) -> Summary {
    let init: Vec<f64> = samples.iter().filter_map(|s| s.init.map(ms)).collect();
    let invoke: Vec<f64> = samples.iter().filter_map(|s| s.invoke.map(ms)).collect();
    let rss: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.peak_rss.map(|b| b as f64))
        .collect();
    let mut summary = Summary {
        init_ms: median_p90(&init),
        invoke_ms: median_p90(&invoke),
        peak_rss: median_p90(&rss).map(|(m, _)| m),
        ..Summary::default()
    };
    for sample in samples {
        if sample.init.is_none() || sample.outcome.is_none() {
            summary.failed_runs += 1;
        }
        let label = match (&sample.outcome, &sample.exited) {
            (Some(outcome), _) => outcome.label(),
            (None, Some(status)) => format!("exited ({status})"),
            (None, None) => "no answer (timeout)".to_owned(),
        };
        *summary.outcomes.entry(label).or_default() += 1;
        if sample.trap_hits_during_init > 0 || !sample.sockets_at_first_next.is_empty() {
            summary.runs_with_init_network += 1;
            let mut detail = sample.sockets_at_first_next.clone();
            if sample.trap_hits_during_init > 0 {
                detail.push(format!(
                    "{} connection(s) to the trap",
                    sample.trap_hits_during_init
                ));
            }
            for d in detail {
                if !summary.init_network_detail.contains(&d) {
                    summary.init_network_detail.push(d);
                }
            }
        }
    }
    summary
}

/// The Markdown table and the notes under it.
pub fn render(candidates: &[Candidate], samples: &Samples, rounds: usize) -> String {
    let summaries: BTreeMap<&str, Summary> = candidates
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                summarise(samples.get(&c.name).map_or(&[][..], Vec::as_slice)),
            )
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| function | init ms (median / p90) | vs hello world | 1st invoke ms | 1st invocation | peak RSS MiB | zip MB (arm64) | budgets |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---|");
    let mut notes = Vec::new();
    for candidate in candidates {
        let s = &summaries[candidate.name.as_str()];
        let init = s
            .init_ms
            .map_or("—".to_owned(), |(m, p)| format!("{m:.2} / {p:.2}"));
        let base = candidate
            .baseline
            .and_then(|b| summaries.get(b))
            .and_then(|b| b.init_ms);
        let delta = match (s.init_ms, base) {
            (Some((m, _)), Some((b, _))) => Some(m - b),
            _ => None,
        };
        let versus = match (candidate.baseline, s.init_ms, base) {
            (Some(b), Some((m, _)), Some((bm, _))) => {
                format!("{:+.2} ms ({:.2}×) vs {b}", m - bm, m / bm)
            }
            (None, _, _) => "baseline".to_owned(),
            _ => "—".to_owned(),
        };
        let invoke = s
            .invoke_ms
            .map_or("—".to_owned(), |(m, _)| format!("{m:.2}"));
        let outcome = s
            .outcomes
            .iter()
            .map(|(label, n)| {
                if *n == rounds {
                    label.clone()
                } else {
                    format!("{label} ({n}/{rounds})")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let rss = s
            .peak_rss
            .map_or("—".to_owned(), |b| format!("{:.1}", b / MIB));
        let zip = candidate
            .zip_bytes
            .map_or("—".to_owned(), |b| format!("{:.2}", b as f64 / 1e6));

        let mut misses = Vec::new();
        if candidate.baseline.is_some() {
            match delta {
                Some(d) if d > budget::INIT_ABOVE_HELLO_MS => {
                    misses.push(format!("init +{d:.1} ms"))
                }
                None => misses.push("init not measured".to_owned()),
                _ => {}
            }
            match candidate.zip_bytes {
                Some(b) if b > budget::ZIP_BYTES => misses.push("zip".to_owned()),
                None => misses.push("zip not built".to_owned()),
                _ => {}
            }
        }
        if s.peak_rss
            .is_some_and(|b| b > budget::PEAK_RSS_BYTES as f64)
        {
            misses.push("RSS".to_owned());
        }
        if s.runs_with_init_network > 0 {
            misses.push("network during init".to_owned());
            notes.push(format!(
                "- {}: network during init in {}/{} runs: {}",
                candidate.name,
                s.runs_with_init_network,
                rounds,
                s.init_network_detail.join(", ")
            ));
        }
        if s.failed_runs > 0 {
            misses.push(format!("{}/{rounds} runs failed", s.failed_runs));
        }
        let verdict = if misses.is_empty() {
            "ok".to_owned()
        } else {
            format!("**{}**", misses.join(", "))
        };
        let _ = writeln!(
            out,
            "| {} | {init} | {versus} | {invoke} | {outcome} | {rss} | {zip} | {verdict} |",
            candidate.name
        );
    }
    let _ = writeln!(
        out,
        "\n{rounds} interleaved rounds after a warm-up round. init: exec → first `GET /runtime/invocation/next`; \
         1st invoke: that request → the function's response or error (no database or AWS service is \
         running, so functions that need one answer with an error after a refused connection). \
         Budgets: init at most {:.0} ms above the matching hello world (the local reading of \
         \"1.5× a hello-world Lambda\"), peak RSS (VmHWM after the first invocation) at most 24 MB, \
         arm64 zip at most 4 MB.",
        budget::INIT_ABOVE_HELLO_MS
    );
    if !notes.is_empty() {
        let _ = writeln!(out, "\n{}", notes.join("\n"));
    }
    out
}
